/*
 * schedule.bench.ts — how fast do deterministic schedules go? Two figures:
 *
 *  1. the sweep: schedules per second, operations checked per second and steps per second of
 *     `bpfsim stress --schedule` (seeds as tasks on a piscina pool of min(2, cores) threads, each
 *     run a fresh runtime, its history checked), random and PCT, over several rounds (median and
 *     min–max of the rounds);
 *  2. the price of one CPU at a time: inside one runtime, the same workload (3 CPUs × N
 *     iterations of stress_mix on a contended hash map) scheduled vs free-running, the ratio of
 *     their wall times in each round (the baseline is the free run of the same round).
 *
 *   npm run build && node dist/bench/schedule.bench.js [--rounds 3] [--runs 8]
 */
import { Runtime } from '../src/index.js';
import { sweepSchedules } from '../src/cli/schedule_sweep.js';
import type { ScheduledRunConfig } from '../src/cli/schedule_run.js';

const argv = process.argv.slice(2);
const opt = (name: string, d: number): number => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : d;
};
const ROUNDS = opt('rounds', 3);
const RUNS = opt('runs', 8);
const ITER = opt('iterations', 200);

function spread(xs: readonly number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const med = s[Math.floor(s.length / 2)]!;
  const f = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(2));
  return `${f(med)} (${f(s[0]!)}–${f(s[s.length - 1]!)})`;
}

const base: Omit<ScheduledRunConfig, 'seed' | 'mode'> = {
  map: 'hash', alloc: 'prealloc', cpus: 3, iterations: ITER, keys: 6, maxEntries: 16, depth: 3, steps: 3600, faults: 0, preemptRt: false,
};

const sweep: Record<string, { sps: number[]; ops: number[]; steps: number[] }> = {};
for (let r = 0; r < ROUNDS; r++) {
  for (const mode of ['random', 'pct'] as const) {
    const s = await sweepSchedules({ base: { ...base, mode }, firstSeed: 1000 * r + 1, runs: RUNS, all: true });
    const e = (sweep[mode] ??= { sps: [], ops: [], steps: [] });
    e.sps.push(s.schedulesPerSec); e.ops.push(s.opsCheckedPerSec); e.steps.push(s.stepsPerSec);
  }
}
console.log(`sweep (${RUNS} runs per round, ${ROUNDS} rounds, 3 CPUs × ${ITER} iterations, median (min–max)):`);
for (const [mode, e] of Object.entries(sweep)) {
  console.log(`  ${mode.padEnd(6)}  schedules/s ${spread(e.sps)}   ops checked/s ${spread(e.ops)}   steps/s ${spread(e.steps)}`);
}

// the price of one CPU at a time: scheduled / free, same runtime configuration, same round
const ratios: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const times: number[] = [];
  for (const schedule of [false, { mode: 'random', seed: r + 1 }] as const) {
    const rt = await Runtime.start({ cpus: 3, memoryBytes: 32 << 20, schedule });
    const m = rt.createMap({ type: 'hash', name: 'h', keySize: 4, valueSize: 8, maxEntries: 16 });
    const prog = await rt.loadProgram(new URL('../src/cli/programs/stress_mix.js', import.meta.url), { maps: { m } });
    const args = { updateBelow: 26000, deleteBelow: 42000, keys: 6, kind: 'hash' };
    const t0 = performance.now();
    await Promise.all([0, 1, 2].map((c) => rt.runWorkload({ program: prog, cpus: [c], iterations: ITER * 10, args })));
    times.push(performance.now() - t0);
    await rt.stop();
  }
  ratios.push(times[1]! / times[0]!);
}
console.log(`scheduled / free-running wall time, 3 CPUs × ${ITER * 10} iterations: ${spread(ratios)}× (per round: ${ratios.map((x) => x.toFixed(1)).join(', ')})`);
