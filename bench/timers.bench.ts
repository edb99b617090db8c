/*
 * timers.bench.ts — how fast are BPF timers here? Two questions, each against baselines measured
 * in the same run:
 *
 *  1. arm + cancel throughput per CPU: bpf_timer_start (1 s ahead) + bpf_timer_cancel_async pairs
 *     on each CPU's own timer, on 1, 2, 4 … CPUs (the `bpfsim bench timers` cases, defined in
 *     src/bench/cases.ts). Baseline: setTimeout + clearTimeout pairs on the main thread; CPU counts
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
import { runSuiteMain, medianOf, textTable } from './bench_main.js';
import { formatRatio, type BenchFigure } from '../src/bench/harness.js';
import { measureTimerLatency, TIMER_LATENCY_PERIOD_US as PERIOD_US, TIMER_LATENCY_SAMPLES as SAMPLES } from '../src/bench/timer_latency.js';

function pct(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

interface Latency { readonly label: string; readonly n: number; readonly p50Us: number; readonly p99Us: number; readonly maxUs: number }

function summarize(label: string, ms: readonly number[]): Latency {
  return { label, n: ms.length, p50Us: pct(ms, 50) * 1e3, p99Us: pct(ms, 99) * 1e3, maxUs: Math.max(...ms) * 1e3 };
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
    latencyRows = (await measureTimerLatency(req.cpus, req.seed)).map((x) => summarize(x.label, x.samplesMs));
    const text = `\nfire latency (how late after the requested time)\n${textTable(['what', 'samples', 'p50 us', 'p99 us', 'max us'],
      latencyRows.map((r) => [r.label, String(r.n), r.p50Us.toFixed(0), r.p99Us.toFixed(0), r.maxUs.toFixed(0)]))}`;
    return { text, json: { periodUs: PERIOD_US, latency: latencyRows } };
  },
  summaryJson: (f) => ({ armCancelVsSetTimeout: (medianOf(f, 'timers/arm_cancel/1') ?? Number.NaN) / (medianOf(f, 'timers/js_timeout_pair') ?? Number.NaN) }),
});
