/*
 * timer_latency.ts — timer fire latency ('timers'): bpf timer callbacks against setTimeout and a
 * bare waitAsync wake, on the real clock (`bpfsim bench timers` after its suite; bench/timers.bench.ts).
 *
 * A sample is how late a wake ran after the time it asked for, in ms. bpf timers: each CPU's
 * timer is re-armed periodUs ahead by its own callback (bench_timers.ts 'latency'), which stores
 * the lateness in the map's array slots (LATENCY_BASE + cpu * SAMPLES_PER_CPU + i); the first
 * sample of each CPU is cold and dropped. Baselines, measured in the same call: setTimeout on the
 * main thread, and a worker's Atomics.notify waking the main thread's Atomics.waitAsync (what
 * every bpf timer wake goes through, so the bpf figure cannot beat it).
 *
 * measureTimerLatency boots a runtime of its own: call it with no other runtime running in this
 * thread (after the suite's close()).
 */
import { Worker } from 'node:worker_threads';
import { Runtime } from '../runtime/runtime.js';
import type { TimerLatencySeries } from '../cli/engine_api.js';
import { BENCH_TIMER_VALUE_SIZE, LATENCY_BASE, SAMPLES_PER_CPU, type BenchTimerArgs } from '../cli/programs/bench_timers.js';
import { cpuRange } from './runtime_helpers.js';

const PROG = {
  timers: new URL('../cli/programs/bench_timers.js', import.meta.url),
};

export const TIMER_LATENCY_PERIOD_US = 1000;
export const TIMER_LATENCY_SAMPLES = 300;

/** bpf timers: every CPU re-arms its own timer periodUs ahead, `samples` times (real clock). */
async function bpfTimerLatency(cpus: number, samples: number, periodUs: number, seed: number): Promise<number[]> {
  const rt = await Runtime.start({ cpus, memoryBytes: 64 << 20, seed });
  try {
    const m = rt.createMap({
      type: 'array', name: 'bench_timers', keySize: 4, valueSize: BENCH_TIMER_VALUE_SIZE,
      maxEntries: LATENCY_BASE + 64 * SAMPLES_PER_CPU, fields: [{ type: 'bpf_timer', offset: 8 }],
    });
    const prog = await rt.loadProgram(PROG.timers, { maps: { m } });
    const args: BenchTimerArgs = { op: 'latency', periodUs, samples };
    await Promise.all(cpuRange(cpus).map((c) => prog.testRun({ cpu: c, args })));
    const k = (n: number): Uint8Array => new Uint8Array(new Uint32Array([n]).buffer);
    const u64 = (b: Uint8Array | undefined): number => (b === undefined ? 0 : Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true)));
    const fires = (c: number): number => u64(m.lookup(k(c)));
    const deadline = performance.now() + 30_000;
    while (cpuRange(cpus).some((c) => fires(c) < samples) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const out: number[] = [];
    for (let c = 0; c < cpus; c++) {
      const n = Math.min(fires(c), SAMPLES_PER_CPU);
      for (let i = 1; i < n; i++) out.push(u64(m.lookup(k(LATENCY_BASE + c * SAMPLES_PER_CPU + i))) / 1e6); // the first is cold
    }
    await prog.unload();
    await m.close();
    return out;
  } finally {
    await rt.stop();
  }
}

/** setTimeout(fn, periodUs / 1000) lateness on the main thread, ms. */
async function setTimeoutLatency(samples: number, periodUs: number): Promise<number[]> {
  const out: number[] = [];
  const ms = periodUs / 1000;
  for (let i = 0; i < samples; i++) {
    const due = performance.now() + ms;
    await new Promise<void>((r) => setTimeout(r, ms));
    out.push(Math.max(0, performance.now() - due));
  }
  return out;
}

/** A worker stores its clock and notifies every periodUs; the main thread's waitAsync wakes, ms. */
async function waitAsyncLatency(samples: number, periodUs: number): Promise<number[]> {
  const sab = new SharedArrayBuffer(24); // i32[0] sequence, f64[1] notify time, i32[4] done
  const i32 = new Int32Array(sab);
  const f64 = new Float64Array(sab);
  const src = `
    const { workerData } = require('node:worker_threads');
    const i32 = new Int32Array(workerData.sab); const f64 = new Float64Array(workerData.sab);
    const gap = new Int32Array(new SharedArrayBuffer(4));
    while (Atomics.load(i32, 4) === 0) { // until the main thread has its samples
      Atomics.wait(gap, 0, 0, workerData.ms);
      f64[1] = performance.timeOrigin + performance.now();
      Atomics.add(i32, 0, 1); Atomics.notify(i32, 0);
    }`;
  const w = new Worker(src, { eval: true, workerData: { sab, ms: periodUs / 1000 } });
  const out: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const seen = Atomics.load(i32, 0);
      const r = Atomics.waitAsync(i32, 0, seen, 5000);
      if (r.async) await r.value;
      out.push(Math.max(0, performance.timeOrigin + performance.now() - f64[1]!));
    }
  } finally {
    Atomics.store(i32, 4, 1);
    await w.terminate();
  }
  return out;
}

/**
 * Timer fire latency on the real clock: bpf timer callbacks on `cpus` CPUs (each timer re-armed
 * periodUs ahead by its callback), setTimeout on the main thread, and a bare Atomics.waitAsync
 * wake (worker -> main thread). Boots its own runtime: call with no other runtime running.
 */
export async function measureTimerLatency(cpus: number, seed = 1, samples = TIMER_LATENCY_SAMPLES, periodUs = TIMER_LATENCY_PERIOD_US): Promise<TimerLatencySeries[]> {
  const bpf = await bpfTimerLatency(cpus, samples, periodUs, seed);
  const st = await setTimeoutLatency(samples, periodUs);
  const wa = await waitAsyncLatency(samples, periodUs);
  return [
    { label: `bpf_timer callback (${cpus} CPU${cpus > 1 ? 's' : ''}, ${periodUs} us ahead)`, samplesMs: bpf },
    { label: `setTimeout(${periodUs / 1000} ms), main thread`, samplesMs: st },
    { label: 'Atomics.waitAsync wake (worker -> main thread)', samplesMs: wa },
  ];
}
