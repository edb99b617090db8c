/*
 * timers.bench.ts — how fast are BPF timers here? Two questions, each against baselines measured
 * in the same run:
 *
 *  1. arm + cancel throughput per CPU: bpf_timer_start (1 s ahead) + bpf_timer_cancel_async pairs
 *     on each CPU's own timer, on 1, 2, 4 … CPUs (the `bpfsim bench timers` cases, defined in
 *     src/cli/engine.ts). Baseline: setTimeout + clearTimeout pairs on the main thread; CPU counts
 *     above 1 against the 1-CPU figure.
 *  2. fire latency: how late a callback runs after its requested expiry (real clock; each CPU's
 *     timer re-armed PERIOD_US ahead by its own callback, SAMPLES per CPU, all CPUs at once),
 *     p50 / p99 / max. Baselines: setTimeout(fn, 1) lateness on the main thread, and the wake
 *     latency of a bare Atomics.waitAsync (a worker notifies, the main thread's waitAsync resolves).
 *     A bpf timer fires through the coordinator (expiry check on the main thread, a softirq
 *     raised on the CPU, its idle waitAsync woken), so it cannot beat the bare wake.
 *
 *   npm run build && node dist/bench/timers.bench.js [--cpus 2] [--rounds 5] [--seconds 0.5] [--json]
 */
import { Worker } from 'node:worker_threads';
import { runSuiteMain, medianOf, textTable } from './bench_main.js';
import { formatRatio, type BenchFigure } from './harness.js';
import { Runtime } from '../src/index.js';
import { BENCH_TIMER_VALUE_SIZE, LATENCY_BASE, SAMPLES_PER_CPU, BT_FIRES, type BenchTimerArgs } from '../src/cli/programs/bench_timers.js';

const PERIOD_US = 1000;
const SAMPLES = 300;

function pct(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

interface Latency { readonly label: string; readonly n: number; readonly p50Us: number; readonly p99Us: number; readonly maxUs: number }

function summarize(label: string, ns: readonly number[]): Latency {
  return { label, n: ns.length, p50Us: pct(ns, 50) / 1e3, p99Us: pct(ns, 99) / 1e3, maxUs: Math.max(...ns) / 1e3 };
}

/** bpf timers: every CPU re-arms its own timer PERIOD_US ahead SAMPLES times. */
async function bpfTimerLatency(cpus: number): Promise<number[]> {
  const rt = await Runtime.start({ cpus, memoryBytes: 64 << 20 });
  try {
    const m = rt.createMap({
      type: 'array', name: 'bench_timers', keySize: 4, valueSize: BENCH_TIMER_VALUE_SIZE,
      maxEntries: LATENCY_BASE + 64 * SAMPLES_PER_CPU, fields: [{ type: 'bpf_timer', offset: 8 }],
    });
    const prog = await rt.loadProgram(new URL('../src/cli/programs/bench_timers.js', import.meta.url), { maps: { m } });
    const args: BenchTimerArgs = { op: 'latency', periodUs: PERIOD_US, samples: SAMPLES };
    await Promise.all([...Array(cpus).keys()].map((c) => prog.testRun({ cpu: c, args })));
    const k = (n: number): Uint8Array => new Uint8Array(new Uint32Array([n]).buffer);
    const u64 = (b: Uint8Array | undefined, off = 0): number => (b === undefined ? 0 : Number(new DataView(b.buffer, b.byteOffset).getBigUint64(off, true)));
    const deadline = performance.now() + 30_000;
    while ([...Array(cpus).keys()].some((c) => u64(m.lookup(k(c)), BT_FIRES) < SAMPLES) && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const out: number[] = [];
    for (let c = 0; c < cpus; c++) {
      const n = Math.min(u64(m.lookup(k(c)), BT_FIRES), SAMPLES_PER_CPU);
      for (let i = 1; i < n; i++) out.push(u64(m.lookup(k(LATENCY_BASE + c * SAMPLES_PER_CPU + i)))); // skip the first (cold)
    }
    await prog.unload();
    await m.close();
    return out;
  } finally {
    await rt.stop();
  }
}

/** setTimeout(fn, PERIOD_US / 1000) lateness on the main thread. */
async function setTimeoutLatency(n: number): Promise<number[]> {
  const out: number[] = [];
  const ms = PERIOD_US / 1000;
  for (let i = 0; i < n; i++) {
    const due = performance.now() + ms;
    await new Promise<void>((r) => setTimeout(r, ms));
    out.push(Math.max(0, (performance.now() - due) * 1e6));
  }
  return out;
}

/** A worker stores its clock and notifies every PERIOD_US; the main thread's waitAsync wakes. */
async function waitAsyncLatency(n: number): Promise<number[]> {
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
  const w = new Worker(src, { eval: true, workerData: { sab, ms: PERIOD_US / 1000 } });
  const out: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const seen = Atomics.load(i32, 0);
      const r = Atomics.waitAsync(i32, 0, seen, 5000);
      if (r.async) await r.value;
      out.push(Math.max(0, (performance.timeOrigin + performance.now() - f64[1]!) * 1e6));
    }
  } finally {
    Atomics.store(i32, 4, 1);
    await w.terminate();
  }
  return out;
}

let latencyRows: Latency[] = [];

function summary(figures: readonly BenchFigure[]): string {
  const one = medianOf(figures, 'timers/arm_cancel/1');
  const js = medianOf(figures, 'timers/js_timeout_pair');
  const lines = [''];
  if (one !== undefined && js !== undefined) lines.push(`arm+cancel: 1 CPU ${formatRatio(one / js)} of setTimeout+clearTimeout on the main thread`);
  return lines.join('\n');
}

await runSuiteMain({
  name: 'timers',
  title: 'bpfsim timers (arm+cancel throughput per CPU; fire latency)',
  cpus: 2,
  maps: ['array'],
  alloc: ['prealloc'],
  rounds: 5,
  seconds: 0.5,
  summary,
  after: async ({ log, req }) => {
    log(`fire latency: ${req.cpus} CPUs, each timer re-armed ${PERIOD_US} us ahead by its callback, ${SAMPLES} samples per CPU (real clock)`);
    const bpf = await bpfTimerLatency(req.cpus);
    const st = await setTimeoutLatency(SAMPLES);
    const wa = await waitAsyncLatency(SAMPLES);
    latencyRows = [
      summarize(`bpf_timer callback (${req.cpus} CPUs)`, bpf),
      summarize(`setTimeout(${PERIOD_US / 1000} ms), main thread`, st),
      summarize('Atomics.waitAsync wake (worker -> main)', wa),
    ];
    const text = `\nfire latency (how late after the requested time)\n${textTable(['what', 'samples', 'p50 us', 'p99 us', 'max us'],
      latencyRows.map((r) => [r.label, String(r.n), r.p50Us.toFixed(0), r.p99Us.toFixed(0), r.maxUs.toFixed(0)]))}`;
    return { text, json: { periodUs: PERIOD_US, latency: latencyRows } };
  },
  summaryJson: (f) => ({ armCancelVsSetTimeout: (medianOf(f, 'timers/arm_cancel/1') ?? Number.NaN) / (medianOf(f, 'timers/js_timeout_pair') ?? Number.NaN) }),
});
