/*
 * harness.ts — how bpfsim measures throughput: rounds, medians, and ratios against a baseline
 * measured in the same run; plus a multi-worker throughput harness for plain-JS baselines.
 *
 * Rules (DESIGN.md §5, STYLE.md "Benchmarks"):
 *  - A figure is never reported alone: every case names a baseline case of the same run (a JS Map
 *    for lookup/update, preallocated for the dynamic modes, 1 CPU for scaling) and the table shows
 *    the ratio of medians. A baseline case is its own baseline (ratio 1).
 *  - Rounds interleave the cases (round r starts at case r mod n), so slow drift of the machine
 *    (thermal, other processes) spreads over every case instead of biasing the last ones.
 *  - One warm-up run per case, not recorded.
 *  - Tables carry the Node version and the core count: a figure without its machine means little.
 *
 * Worker harness: runWorkers() starts `threads` worker_threads running one built-in kernel (a JS
 * Map workload), releases them together through a shared control word, lets them run `seconds`,
 * stops them through the same word, and sums their operations. The worker entry is this very
 * module (it recognises its workerData), so the harness stays one file. Control words:
 *   ctl[0] phase: 0 = get ready, 1 = go, 2 = stop   (main writes, workers read)
 *   ctl[1] ready: workers that built their data      (workers add, main reads)
 *   ctl[2] lock:  the global lock of `locked` kernels (CAS 0 -> 1)
 */
import { Worker, isMainThread, workerData, parentPort } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import Table from 'cli-table3';

// ---------------------------------------------------------------------------------------------
// Cases, measurements, figures

export interface Measurement {
  /** Operations completed (all CPUs together). */
  readonly ops: number;
  readonly elapsedNs: number;
  /** Kernel memory in use during the run (htab_mem), bytes. */
  readonly memory?: { readonly avgBytes: number; readonly peakBytes: number };
}

export type Tags = Readonly<Record<string, string | number>>;

export interface BenchCase {
  /** Unique in the run, e.g. "map_perf/hash/bpf_mem_alloc". */
  readonly id: string;
  /** Which benchmark it belongs to ("map_perf", "lookup", …). */
  readonly bench: string;
  readonly label: string;
  /** Machine-readable facets (map, alloc, cpus, op, workload) used by the report's charts. */
  readonly tags?: Tags;
  /** Id of the case this one is reported against; absent: this case is a baseline. */
  readonly baseline?: string;
  /** Minimum ratio the design targets (DESIGN.md §5), if any. */
  readonly target?: number;
  run(seconds: number): Promise<Measurement>;
}

export interface BenchFigure {
  readonly id: string;
  readonly bench: string;
  readonly label: string;
  readonly tags: Tags;
  readonly unit: 'ops/s';
  /** ops/s of every recorded round, in round order. */
  readonly samples: readonly number[];
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** The baseline's id (its own id for a baseline). */
  readonly baseline: string;
  readonly baselineLabel: string;
  readonly baselineMedian: number;
  /** median / baselineMedian (1 for a baseline). */
  readonly ratio: number;
  readonly target: number | null;
  readonly meetsTarget: boolean | null;
  readonly memory: { readonly avgBytes: number; readonly peakBytes: number } | null;
}

export interface RoundEvent {
  readonly round: number;
  readonly rounds: number;
  readonly warmup: boolean;
  readonly id: string;
  readonly label: string;
  readonly opsPerSec: number;
}

export interface RoundOptions {
  readonly rounds: number;
  /** Length of one measurement. */
  readonly seconds: number;
  /** Length of the warm-up run of each case. @defaultValue min(0.25, seconds) */
  readonly warmupSeconds?: number;
  readonly onRound?: (e: RoundEvent) => void;
  /** Stops after the current measurement; figures then use the rounds recorded so far. */
  readonly signal?: AbortSignal;
}

/** Median of a non-empty list (mean of the two middle values for an even count). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError('median of an empty list');
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** value / baseline, or 0 when the baseline measured nothing (never NaN or Infinity). */
export function ratio(value: number, baseline: number): number {
  return baseline > 0 && Number.isFinite(value) ? value / baseline : 0;
}

export function opsPerSec(m: Measurement): number {
  return m.elapsedNs > 0 ? (m.ops * 1e9) / m.elapsedNs : 0;
}

/** Check ids are unique and every baseline exists; throws a RangeError naming the problem. */
export function validateCases(cases: readonly BenchCase[]): void {
  const ids = new Set<string>();
  for (const c of cases) {
    if (ids.has(c.id)) throw new RangeError(`bench case id '${c.id}' is used twice`);
    ids.add(c.id);
  }
  for (const c of cases) {
    if (c.baseline !== undefined && !ids.has(c.baseline)) {
      throw new RangeError(`bench case '${c.id}' names baseline '${c.baseline}', which is not in this run`);
    }
  }
}

/** Run every case `rounds` times, interleaved, and compute medians and ratios. */
export async function runRounds(cases: readonly BenchCase[], o: RoundOptions): Promise<BenchFigure[]> {
  validateCases(cases);
  if (!Number.isInteger(o.rounds) || o.rounds < 1) throw new RangeError(`rounds must be a positive integer; got ${String(o.rounds)}`);
  if (!(o.seconds > 0)) throw new RangeError(`seconds must be > 0; got ${String(o.seconds)}`);
  const n = cases.length;
  const samples: number[][] = cases.map(() => []);
  const memAvg: number[][] = cases.map(() => []);
  const memPeak: number[][] = cases.map(() => []);
  const warm = o.warmupSeconds ?? Math.min(0.25, o.seconds);
  if (warm > 0) {
    for (const c of cases) {
      if (o.signal?.aborted) break;
      const m = await c.run(warm);
      o.onRound?.({ round: 0, rounds: o.rounds, warmup: true, id: c.id, label: c.label, opsPerSec: opsPerSec(m) });
    }
  }
  outer: for (let r = 0; r < o.rounds; r++) {
    for (let k = 0; k < n; k++) {
      if (o.signal?.aborted && samples.every((s) => s.length > 0)) break outer;
      const i = (r + k) % n;
      const c = cases[i]!;
      const m = await c.run(o.seconds);
      const v = opsPerSec(m);
      samples[i]!.push(v);
      if (m.memory !== undefined) { memAvg[i]!.push(m.memory.avgBytes); memPeak[i]!.push(m.memory.peakBytes); }
      o.onRound?.({ round: r + 1, rounds: o.rounds, warmup: false, id: c.id, label: c.label, opsPerSec: v });
    }
  }
  const medians = new Map<string, number>();
  cases.forEach((c, i) => medians.set(c.id, median(samples[i]!)));
  return cases.map((c, i): BenchFigure => {
    const s = samples[i]!;
    const base = cases.find((b) => b.id === (c.baseline ?? c.id))!;
    const med = medians.get(c.id)!;
    const baseMed = medians.get(base.id)!;
    const rt = c.baseline === undefined ? 1 : ratio(med, baseMed);
    return {
      id: c.id, bench: c.bench, label: c.label, tags: c.tags ?? {}, unit: 'ops/s', samples: s,
      median: med, min: Math.min(...s), max: Math.max(...s),
      baseline: base.id, baselineLabel: base.label, baselineMedian: baseMed, ratio: rt,
      target: c.target ?? null, meetsTarget: c.target === undefined ? null : rt >= c.target,
      memory: memAvg[i]!.length > 0 ? { avgBytes: median(memAvg[i]!), peakBytes: Math.max(...memPeak[i]!) } : null,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Environment and tables

export interface BenchEnvironment {
  readonly node: string;
  readonly v8: string;
  readonly platform: string;
  readonly arch: string;
  readonly cores: number;
  readonly cpuModel: string;
  readonly totalMemBytes: number;
}

export function benchEnvironment(): BenchEnvironment {
  return {
    node: process.version,
    v8: process.versions.v8,
    platform: process.platform,
    arch: process.arch,
    cores: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    totalMemBytes: os.totalmem(),
  };
}

/** "12.3 M/s" */
export function formatRate(v: number): string {
  if (!Number.isFinite(v)) return '–';
  const units: [number, string][] = [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
  for (const [d, u] of units) if (Math.abs(v) >= d) return `${(v / d).toFixed(v / d >= 100 ? 0 : v / d >= 10 ? 1 : 2)} ${u}/s`;
  return `${v.toFixed(0)} /s`;
}

export function formatRatio(r: number): string {
  return `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

function mib(b: number): string { return `${(b / 1048576).toFixed(1)}`; }

/** One-line description of the machine, printed above every table. */
export function environmentLine(env: BenchEnvironment): string {
  return `Node ${env.node} (V8 ${env.v8}) · ${env.cores} cores · ${env.cpuModel} · ${env.platform}/${env.arch}`;
}

/** The figures as a table (cli-table3), grouped by bench, with the machine line above it. */
export function formatFigureTable(figures: readonly BenchFigure[], env: BenchEnvironment, o: { rounds: number; seconds: number }): string {
  const withMem = figures.some((f) => f.memory !== null);
  const head = ['case', 'median', 'min – max', 'baseline', 'ratio', 'target'];
  if (withMem) head.push('mem avg/peak MiB');
  const table = new Table({ head, style: { head: [], border: [] }, colAligns: ['left', 'right', 'right', 'left', 'right', 'left'] });
  let bench = '';
  for (const f of figures) {
    if (f.bench !== bench) {
      bench = f.bench;
      table.push([{ content: bench, colSpan: head.length }]);
    }
    const isBase = f.baseline === f.id;
    const row = [
      f.label,
      formatRate(f.median),
      `${formatRate(f.min)} – ${formatRate(f.max)}`,
      isBase ? '(baseline)' : f.baselineLabel,
      isBase ? '1×' : formatRatio(f.ratio),
      f.target === null ? '' : `≥ ${f.target}× ${f.meetsTarget === true ? 'ok' : 'MISSED'}`,
    ];
    if (withMem) row.push(f.memory === null ? '' : `${mib(f.memory.avgBytes)} / ${mib(f.memory.peakBytes)}`);
    table.push(row);
  }
  return `${environmentLine(env)}\nmedians of ${o.rounds} round(s) × ${o.seconds} s; ratios against a baseline measured in the same run\n${table.toString()}`;
}

// ---------------------------------------------------------------------------------------------
// Multi-worker throughput harness (plain-JS baselines)

export const WORKER_KERNELS = ['js_map_get', 'js_map_set', 'js_map_set_delete'] as const;
export type WorkerKernel = (typeof WORKER_KERNELS)[number];

export interface WorkersSpec {
  readonly threads: number;
  readonly seconds: number;
  readonly kernel: WorkerKernel;
  /** Entries each worker's Map holds (keys 0..entries-1). @defaultValue 100_000 */
  readonly entries?: number;
  /** Take a global lock (CAS on a shared word) around every operation. @defaultValue false */
  readonly locked?: boolean;
}

interface HarnessWorkerData {
  readonly bpfsimHarness: 1;
  readonly ctl: SharedArrayBuffer;
  readonly kernel: WorkerKernel;
  readonly entries: number;
  readonly locked: boolean;
}

interface HarnessWorkerResult { readonly ops: number; readonly elapsedNs: number; readonly sink: number }

const PHASE = 0, READY = 1, LOCK = 2;
const BATCH = 1024;
const STRIDE = 7919;

function isHarnessWorkerData(v: unknown): v is HarnessWorkerData {
  return typeof v === 'object' && v !== null && (v as { bpfsimHarness?: unknown }).bpfsimHarness === 1;
}

function isHarnessWorkerResult(v: unknown): v is HarnessWorkerResult {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return typeof r.ops === 'number' && typeof r.elapsedNs === 'number';
}

function harnessWorkerUrl(): URL {
  // Node 20 cannot start a .ts worker: from the sources (vitest) use the compiled harness.
  const here = import.meta.url;
  return here.endsWith('.ts') ? new URL('../dist/bench/harness.js', here) : new URL(here);
}

/** Run `kernel` on `threads` workers for `seconds`; total operations over wall time. */
export async function runWorkers(spec: WorkersSpec): Promise<Measurement> {
  if (!Number.isInteger(spec.threads) || spec.threads < 1) throw new RangeError(`threads must be a positive integer; got ${String(spec.threads)}`);
  if (!(spec.seconds > 0)) throw new RangeError(`seconds must be > 0; got ${String(spec.seconds)}`);
  const ctlBuf = new SharedArrayBuffer(64);
  const data: HarnessWorkerData = {
    bpfsimHarness: 1, ctl: ctlBuf, kernel: spec.kernel, entries: spec.entries ?? 100_000, locked: spec.locked ?? false,
  };
  const url = harnessWorkerUrl();
  const run = await runTimedWorkers({
    url, threads: spec.threads, seconds: spec.seconds, ctl: ctlBuf, label: 'bench worker',
    workerData: () => data, name: (t) => `bench${t}`, isResult: isHarnessWorkerResult,
  });
  // Throughput over the time the workers actually ran (they stop within one batch of the flag).
  return { ops: run.results.reduce((a, r) => a + r.ops, 0), elapsedNs: run.elapsedNs };
}

export interface TimedWorkersSpec<R extends { readonly ops: number; readonly elapsedNs: number }> {
  readonly url: URL;
  readonly threads: number;
  readonly seconds: number;
  /** ctl words: PHASE (0 get ready, 1 go, 2 stop; written here), READY (each worker adds 1) */
  readonly ctl: SharedArrayBuffer;
  readonly workerData: (thread: number) => unknown;
  readonly name: (thread: number) => string;
  readonly isResult: (v: unknown) => v is R;
  /** names the workers in errors */
  readonly label: string;
}

/**
 * The measuring protocol every same-run JS baseline uses: start `threads` workers, wait until all
 * are ready (30 s at most), let them run `seconds`, stop them, collect one result each. The time
 * is the longest a worker ran, bounded by the wall time between go and the last result.
 */
export async function runTimedWorkers<R extends { readonly ops: number; readonly elapsedNs: number }>(spec: TimedWorkersSpec<R>): Promise<{ results: R[]; elapsedNs: number }> {
  const ctl = new Int32Array(spec.ctl);
  const workers: Worker[] = [];
  const results: Promise<R>[] = [];
  for (let t = 0; t < spec.threads; t++) {
    const w = new Worker(fileURLToPath(spec.url), { workerData: spec.workerData(t), name: spec.name(t) });
    workers.push(w);
    results.push(new Promise((resolve, reject) => {
      w.once('message', (m: unknown) => (spec.isResult(m) ? resolve(m) : reject(new Error(`${spec.label}: malformed result`))));
      w.once('error', reject);
      w.once('exit', (code) => reject(new Error(`${spec.label} exited with code ${code} before reporting`)));
    }));
  }
  try {
    const deadline = Date.now() + 30_000;
    while (Atomics.load(ctl, READY) < spec.threads) {
      if (Date.now() > deadline) throw new Error(`${spec.label}s did not get ready within 30 s`);
      await Promise.race([sleep(2), ...results]);
    }
    const t0 = process.hrtime.bigint();
    Atomics.store(ctl, PHASE, 1);
    Atomics.notify(ctl, PHASE);
    await sleep(spec.seconds * 1000);
    Atomics.store(ctl, PHASE, 2);
    const rs = await Promise.all(results);
    const wallNs = Number(process.hrtime.bigint() - t0);
    return { results: rs, elapsedNs: Math.min(Math.max(...rs.map((r) => r.elapsedNs), 1), wallNs) };
  } finally {
    Atomics.store(ctl, PHASE, 2);
    Atomics.notify(ctl, PHASE);
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function workerMain(d: HarnessWorkerData, port: NonNullable<typeof parentPort>): void {
  const ctl = new Int32Array(d.ctl);
  const n = d.entries;
  const m = new Map<number, number>();
  for (let k = 0; k < n; k++) m.set(k, k);
  Atomics.add(ctl, READY, 1);
  Atomics.notify(ctl, READY);
  while (Atomics.load(ctl, PHASE) === 0) Atomics.wait(ctl, PHASE, 0, 50);
  const t0 = process.hrtime.bigint();
  let ops = 0, k = 0, sink = 0;
  const locked = d.locked;
  const kernel = d.kernel;
  while (Atomics.load(ctl, PHASE) === 1) {
    for (let i = 0; i < BATCH; i++) {
      k += STRIDE; if (k >= n) k -= n;
      if (locked) while (Atomics.compareExchange(ctl, LOCK, 0, 1) !== 0) { /* spin */ }
      if (kernel === 'js_map_get') sink += m.get(k) ?? 0;
      else if (kernel === 'js_map_set') m.set(k, i);
      else { m.set(k + n, i); m.delete(k + n); }
      if (locked) Atomics.store(ctl, LOCK, 0);
    }
    ops += BATCH;
  }
  const elapsedNs = Number(process.hrtime.bigint() - t0);
  port.postMessage({ ops, elapsedNs, sink } satisfies HarnessWorkerResult);
}

if (!isMainThread && parentPort !== null && isHarnessWorkerData(workerData)) {
  workerMain(workerData, parentPort);
}
