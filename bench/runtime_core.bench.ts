/*
 * runtime_core.bench.ts — the runtime core's headline costs, each beside a baseline measured in
 * the same run: raw spinlock acquire+release (1 CPU; 2 CPUs one lock; 8 CPUs one lock on 2 cores)
 * against a bare Atomics.compareExchange loop; the idle window (one Atomics.load) against an
 * empty loop body; boot time for 2/4/8 CPUs against bare Worker spawns.
 *
 *   npm run build && node dist/bench/runtime_core.bench.js [--json]
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { Bench } from 'tinybench';
import { Runtime } from '../src/runtime/runtime.js';
import { kzalloc } from '../src/mm/slab.js';
import { OWNER_KERNEL } from '../src/mm/owners.js';
import { window } from '../src/cpu/window.js';
import { defineSite } from '../src/cpu/sites.js';

const json = process.argv.includes('--json');
const programs = new URL('../../bench/programs/', import.meta.url);
const INNER = 1000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function lockThroughput(cpus: number, which: 'spin' | 'cas', rounds: number): Promise<number> {
  const rt = await Runtime.start({ cpus, memoryBytes: 16 << 20 });
  try {
    const lock = kzalloc(8, OWNER_KERNEL);
    const prog = await rt.loadProgram(new URL(`${which}.mjs`, programs));
    const rates: number[] = [];
    await rt.runWorkload({ cpus: 'all', program: prog, iterations: 50, args: { lock, inner: INNER } }); // warm up
    for (let r = 0; r < rounds; r++) {
      const res = await rt.runWorkload({ cpus: 'all', program: prog, seconds: 0.4, args: { lock, inner: INNER } });
      rates.push((res.ops * INNER) / (res.wallNs / 1e9));
    }
    return median(rates);
  } finally {
    await rt.stop();
  }
}

async function bootTimes(cpus: number, rounds: number): Promise<{ runtime: number; bare: number }> {
  const rt: number[] = [];
  const bare: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    const ws = Array.from({ length: cpus }, () => new Worker('require("node:worker_threads").parentPort.postMessage(1)', { eval: true }));
    await Promise.all(ws.map((w) => new Promise((res) => w.once('message', res))));
    bare.push(performance.now() - t0);
    await Promise.all(ws.map((w) => w.terminate()));
    const r0 = await Runtime.start({ cpus, memoryBytes: 64 << 20 });
    rt.push(r0.bootMs);
    await r0.stop();
  }
  return { runtime: median(rt), bare: median(bare) };
}

async function windowCost(): Promise<{ windowNs: number; emptyNs: number }> {
  const rt = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20 });
  try {
    const site = defineSite('bench.window');
    const N = 1000;
    let sink = 0;
    const bench = new Bench({ time: 500 });
    bench
      .add('empty loop x1000', () => { for (let i = 0; i < N; i++) sink += i; })
      .add('window() x1000, nothing pending', () => { for (let i = 0; i < N; i++) { window(site); sink += i; } });
    await bench.run();
    const [empty, win] = bench.tasks.map((t) => ((t.result?.latency.mean ?? NaN) * 1e6) / N);
    if (sink === -1) console.log(sink);
    return { windowNs: win! - empty!, emptyNs: empty! };
  } finally {
    await rt.stop();
  }
}

const rounds = 3;
const out: Record<string, unknown> = { node: process.version, cores: availableParallelism() };
const lock: Record<string, { spinPerSec: number; casPerSec: number; ratio: number }> = {};
for (const cpus of [1, 2, 8]) {
  const cas = await lockThroughput(cpus, 'cas', rounds);
  const spin = await lockThroughput(cpus, 'spin', rounds);
  lock[`${cpus}cpu`] = { spinPerSec: Math.round(spin), casPerSec: Math.round(cas), ratio: +(spin / cas).toFixed(3) };
}
out.lock = lock;
out.window = await windowCost();
const boot: Record<string, unknown> = {};
for (const cpus of [2, 4, 8]) boot[`${cpus}cpu`] = await bootTimes(cpus, 3);
out.bootMs = boot;

if (json) {
  console.log(JSON.stringify(out, null, 2));
} else {
  console.log(`bpfsim runtime core — node ${process.version}, ${availableParallelism()} cores, medians of ${rounds} rounds`);
  console.table(lock);
  console.log('idle window cost (ns, over an empty loop body):', out.window);
  console.table(boot);
}
