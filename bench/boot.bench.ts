/*
 * boot.bench.ts — how long Runtime.start({ cpus: 8 }) takes to ready (then stop), next to 8 bare
 * worker threads that import nothing (the baseline), over interleaved rounds; the breakdown: 8
 * workers that import the CPU worker's module, and the arena's SharedArrayBuffer alone (the rest is
 * the per-CPU boot calls, the main thread's global init and the control channel). Unit: ms.
 *
 * Same cases as `bpfsim bench boot` (definitions in src/bench/cases.ts, probes in src/bench/harness.ts).
 *
 *   npm run build && node dist/bench/boot.bench.js [--rounds 7] [--json]
 */
import { runSuiteMain } from './bench_main.js';
import { bootSummary } from '../src/cli/cmd_bench.js';

await runSuiteMain({
  name: 'boot',
  title: 'bpfsim boot (Runtime.start of 8 CPUs vs 8 bare worker threads)',
  cpus: 2,
  maps: ['hash'],
  alloc: ['prealloc'],
  rounds: 7,
  seconds: 0.1,
  summary: (f) => `\n${bootSummary(f).join('\n')}`,
  summaryJson: (f) => bootSummary(f),
});
