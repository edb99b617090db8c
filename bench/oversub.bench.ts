/*
 * oversub.bench.ts — 8 simulated CPUs on the machine's cores against 2, on a lock-heavy mix (50 %
 * update, 25 % delete, 25 % lookup of 64 keys shared by every CPU; each update and delete takes a
 * bucket lock and a freelist lock), in one 8-CPU runtime: total ops/s, 8 CPUs ÷ 2 CPUs with the
 * min–max of the per-round ratios (issue target ≥ 0.9× on a 2-core machine).
 *
 * Same cases as `bpfsim bench oversub` (definitions in src/bench/cases.ts).
 *
 *   npm run build && node dist/bench/oversub.bench.js [--rounds 5] [--seconds 1] [--json]
 */
import os from 'node:os';
import { runSuiteMain } from './bench_main.js';
import { oversubSummary } from '../src/cli/cmd_bench.js';

await runSuiteMain({
  name: 'oversub',
  title: 'bpfsim oversub (lock-heavy mix on 8 CPUs vs 2)',
  cpus: 2,
  maps: ['hash'],
  alloc: ['prealloc'],
  rounds: 5,
  seconds: 1,
  summary: (f) => `\n${oversubSummary(f, os.availableParallelism()).join('\n')}`,
  summaryJson: (f) => oversubSummary(f, os.availableParallelism()),
});
