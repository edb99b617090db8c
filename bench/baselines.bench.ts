/*
 * baselines.bench.ts — bpfsim's hash map next to what a Node user would pick instead: the
 * `sharedmap` npm package (one map in a SharedArrayBuffer, the baseline; issue target bpfsim
 * ≥ 20×) and a JS Map per worker thread. Same keys and workload on every side: 100k u32 keys,
 * 8-byte values, lookups or overwrite updates walking the keys with one fixed stride, on 1 and 2
 * CPUs / threads. Every ratio with the min–max of its per-round ratios.
 *
 * Same cases as `bpfsim bench baselines` (definitions in src/bench/cases.ts; the sharedmap worker
 * in src/bench/harness.ts, the bpfsim program in bench/programs/baselines_ops.ts).
 *
 *   npm run build && node dist/bench/baselines.bench.js [--rounds 5] [--seconds 0.5] [--json]
 */
import { runSuiteMain } from './bench_main.js';
import { baselinesSummary } from '../src/cli/cmd_bench.js';

await runSuiteMain({
  name: 'baselines',
  title: 'bpfsim baselines (hash map vs sharedmap vs a JS Map per worker)',
  cpus: 2,
  maps: ['hash'],
  alloc: ['prealloc'],
  rounds: 5,
  seconds: 0.5,
  summary: (f) => `\n${baselinesSummary(f).join('\n')}`,
  summaryJson: (f) => baselinesSummary(f),
});
