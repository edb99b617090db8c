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
 *  - Every ratio carries its spread: the per-round ratios (a case's sample over its baseline's
 *    sample of the same round) and their min–max; a spread that includes 1.0× is "no difference".
 *  - A run says whether the machine was busy (probeLoad / machineLoad): the load average at the
 *    start and the end, and a calibration loop timed at both ends.
 *
 * Worker harness: runWorkers() starts `threads` worker_threads running one built-in kernel (a JS
 * Map workload), releases them together through a shared control word, lets them run `seconds`,
 * stops them through the same word, and sums their operations. The worker entry is this very
 * module (it recognises its workerData), so the harness stays one file. runSharedMap() does the
 * same with the `sharedmap` npm package (one map shared by the threads). The boot probes
 * (spawnUntilReady, allocateArena) time worker start-up and the arena allocation alone. Control words:
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

/**
 * What a case's figure counts. 'ops/s': operations over elapsed time (higher is better); 'ms': the
 * elapsed time of one measurement itself, e.g. a boot (lower is better; `ops` is ignored).
 */
export type BenchUnit = 'ops/s' | 'ms';

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
  /** @defaultValue 'ops/s' */
  readonly unit?: BenchUnit;
  run(seconds: number): Promise<Measurement>;
}

export interface BenchFigure {
  readonly id: string;
  readonly bench: string;
  readonly label: string;
  readonly tags: Tags;
  readonly unit: BenchUnit;
  /** The figure (ops/s, or ms) of every recorded round, in round order. */
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
  /**
   * The ratio of each round: this case's sample over its baseline's sample of the same round (the
   * rounds interleave the cases, so both saw the same state of the machine); [1, …] for a baseline.
   */
  readonly ratioSamples: readonly number[];
  /** The spread of the ratio: min and max of ratioSamples. */
  readonly ratioMin: number;
  readonly ratioMax: number;
  /** The spread of the ratio includes 1.0×: no measurable difference from the baseline. null for a baseline. */
  readonly noDifference: boolean | null;
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
  /** The measurement in the case's unit (ops/s or ms). */
  readonly value: number;
  readonly unit: BenchUnit;
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

/** A measurement as a figure in `unit`: ops/s, or the elapsed milliseconds. */
export function figureValue(m: Measurement, unit: BenchUnit): number {
  return unit === 'ms' ? Math.max(0, m.elapsedNs / 1e6) : opsPerSec(m);
}

/**
 * Per-round ratios: the i-th sample of a case over the i-th sample of its baseline. The harness
 * records sample i of every case in round i (rounds interleave the cases), so each ratio compares
 * two measurements the same drift of the machine fell on. Pairs only as many rounds as both have.
 */
export function roundRatios(samples: readonly number[], baseSamples: readonly number[]): number[] {
  const n = Math.min(samples.length, baseSamples.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(ratio(samples[i]!, baseSamples[i]!));
  return out;
}

/** The spread of a ratio includes 1.0×: the rounds cannot tell the case from its baseline. */
export function spansOne(min: number, max: number): boolean {
  return min <= 1 && max >= 1;
}

export interface RatioSpread { readonly samples: number[]; readonly min: number; readonly max: number; readonly noDifference: boolean }

/** Per-round ratios, their min–max and whether that spread includes 1.0×. */
export function ratioSpread(samples: readonly number[], baseSamples: readonly number[]): RatioSpread {
  const rs = roundRatios(samples, baseSamples);
  if (rs.length === 0) return { samples: [], min: 0, max: 0, noDifference: false };
  const min = Math.min(...rs), max = Math.max(...rs);
  return { samples: rs, min, max, noDifference: spansOne(min, max) };
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
      const unit = c.unit ?? 'ops/s';
      o.onRound?.({ round: 0, rounds: o.rounds, warmup: true, id: c.id, label: c.label, value: figureValue(m, unit), unit });
    }
  }
  outer: for (let r = 0; r < o.rounds; r++) {
    for (let k = 0; k < n; k++) {
      if (o.signal?.aborted && samples.every((s) => s.length > 0)) break outer;
      const i = (r + k) % n;
      const c = cases[i]!;
      const m = await c.run(o.seconds);
      const unit = c.unit ?? 'ops/s';
      const v = figureValue(m, unit);
      samples[i]!.push(v);
      if (m.memory !== undefined) { memAvg[i]!.push(m.memory.avgBytes); memPeak[i]!.push(m.memory.peakBytes); }
      o.onRound?.({ round: r + 1, rounds: o.rounds, warmup: false, id: c.id, label: c.label, value: v, unit });
    }
  }
  const medians = new Map<string, number>();
  cases.forEach((c, i) => medians.set(c.id, median(samples[i]!)));
  return cases.map((c, i): BenchFigure => {
    const s = samples[i]!;
    const bi = cases.findIndex((b) => b.id === (c.baseline ?? c.id));
    const base = cases[bi]!;
    const med = medians.get(c.id)!;
    const baseMed = medians.get(base.id)!;
    const isBase = c.baseline === undefined;
    const rt = isBase ? 1 : ratio(med, baseMed);
    const sp = isBase ? null : ratioSpread(s, samples[bi]!);
    return {
      id: c.id, bench: c.bench, label: c.label, tags: c.tags ?? {}, unit: c.unit ?? 'ops/s', samples: s,
      median: med, min: Math.min(...s), max: Math.max(...s),
      baseline: base.id, baselineLabel: base.label, baselineMedian: baseMed, ratio: rt,
      ratioSamples: sp === null ? s.map(() => 1) : sp.samples,
      ratioMin: sp === null ? 1 : sp.samples.length > 0 ? sp.min : rt,
      ratioMax: sp === null ? 1 : sp.samples.length > 0 ? sp.max : rt,
      noDifference: sp === null ? null : sp.samples.length > 0 ? sp.noDifference : null,
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

/** "12.3 ms" */
export function formatMs(v: number): string {
  if (!Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1000) return `${(v / 1000).toFixed(2)} s`;
  return `${v.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : a >= 0.1 ? 2 : 3)} ms`;
}

/** A figure's value in its unit: "12.3 M/s" or "12.3 ms". */
export function formatValue(v: number, unit: BenchUnit): string {
  return unit === 'ms' ? formatMs(v) : formatRate(v);
}

export function formatRatio(r: number): string {
  return `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

function ratioNumber(r: number): string {
  return r >= 10 ? r.toFixed(1) : r.toFixed(2);
}

/** "1.14× (0.98–1.30)": the ratio of medians and the min–max of the per-round ratios. */
export function formatRatioSpread(f: Pick<BenchFigure, 'ratio' | 'ratioMin' | 'ratioMax'>): string {
  return `${formatRatio(f.ratio)} (${ratioNumber(f.ratioMin)}–${ratioNumber(f.ratioMax)})`;
}

/**
 * What the spread says: 'no difference' when the per-round ratios include 1.0×, else 'higher' or
 * 'lower' (than the baseline: ops/s, or ms for a time); '' for a baseline.
 */
export function differenceWord(f: Pick<BenchFigure, 'noDifference' | 'ratioMin'>): string {
  if (f.noDifference === null) return '';
  if (f.noDifference) return 'no difference';
  return f.ratioMin > 1 ? 'higher' : 'lower';
}

function mib(b: number): string { return (b / 1048576).toFixed(1); }

/** One-line description of the machine, printed above every table. */
export function environmentLine(env: BenchEnvironment): string {
  return `Node ${env.node} (V8 ${env.v8}) · ${env.cores} cores · ${env.cpuModel} · ${env.platform}/${env.arch}`;
}

/** The figures as a table (cli-table3), grouped by bench, with the machine line above it. */
export function formatFigureTable(figures: readonly BenchFigure[], env: BenchEnvironment, o: { rounds: number; seconds: number }): string {
  const withMem = figures.some((f) => f.memory !== null);
  const head = ['case', 'median', 'min – max', 'baseline', 'ratio (min–max)', 'vs baseline', 'target'];
  if (withMem) head.push('mem avg/peak MiB');
  const table = new Table({ head, style: { head: [], border: [] }, colAligns: ['left', 'right', 'right', 'left', 'right', 'left', 'left'] });
  let bench = '';
  for (const f of figures) {
    if (f.bench !== bench) {
      bench = f.bench;
      table.push([{ content: bench, colSpan: head.length }]);
    }
    const isBase = f.baseline === f.id;
    const row = [
      f.label,
      formatValue(f.median, f.unit),
      `${formatValue(f.min, f.unit)} – ${formatValue(f.max, f.unit)}`,
      isBase ? '(baseline)' : f.baselineLabel,
      isBase ? '1×' : formatRatioSpread(f),
      differenceWord(f),
      f.target === null ? '' : `≥ ${f.target}× ${f.meetsTarget === true ? 'ok' : 'MISSED'}`,
    ];
    if (withMem) row.push(f.memory === null ? '' : `${mib(f.memory.avgBytes)} / ${mib(f.memory.peakBytes)}`);
    table.push(row);
  }
  return `${environmentLine(env)}\nmedians of ${o.rounds} round(s) × ${o.seconds} s; ratios against a baseline measured in the same run, `
    + `with the min–max of the per-round ratios; "no difference": that spread includes 1.0×\n${table.toString()}`;
}

// ---------------------------------------------------------------------------------------------
// Was the machine busy? Load average and a calibration loop at the start and the end of a run

/** The calibration loop may slow down by at most this fraction between the start and the end. */
export const CALIBRATION_SLOWDOWN_LIMIT = 0.25;

export interface LoadProbe {
  /** os.loadavg()[0] */
  readonly loadAvg: number;
  /** Median of a few runs of a fixed integer loop on this thread, ms. */
  readonly calibrationMs: number;
  /** process.cpuUsage() (all threads of this process), µs, and when it was read. */
  readonly cpuUsageUs: number;
  readonly atMs: number;
}

/**
 * Whether other work shared the machine with a run. The 1-minute load average at the end includes
 * this run's own threads; ownLoadEnd estimates their share (this process's CPU time over the run,
 * with the load average's 1-minute smoothing) and the end check uses the rest.
 */
export interface MachineLoad {
  readonly cores: number;
  readonly loadAvgStart: number;
  readonly loadAvgEnd: number;
  /** This process's estimated contribution to loadAvgEnd. */
  readonly ownLoadEnd: number;
  readonly calibrationStartMs: number;
  readonly calibrationEndMs: number;
  /** calibrationEndMs / calibrationStartMs − 1 (negative: faster at the end). */
  readonly calibrationSlowdown: number;
  /** CALIBRATION_SLOWDOWN_LIMIT */
  readonly slowdownLimit: number;
  readonly busy: boolean;
  /** One line per reason the machine counts as busy (empty when it was not). */
  readonly warnings: readonly string[];
}

/** Keeps the loop's result alive (exported state the JIT cannot drop). */
export let calibrationSink = 0;

/** One pass of the calibration loop (xorshift over 2^21 steps, a few ms), ms. */
function calibrationPass(): number {
  const t0 = performance.now();
  let x = 0x9e3779b9 | 0, acc = 0;
  for (let i = 0; i < 1 << 21; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; acc = (acc + (x & 0xff)) | 0; }
  calibrationSink ^= acc;
  return performance.now() - t0;
}

/** Load average, the calibration loop (one untimed pass, then the median of 5) and the CPU time so far. */
export function probeLoad(): LoadProbe {
  calibrationPass();
  const runs = [0, 1, 2, 3, 4].map(() => calibrationPass());
  const u = process.cpuUsage();
  return { loadAvg: os.loadavg()[0] ?? 0, calibrationMs: median(runs), cpuUsageUs: u.user + u.system, atMs: performance.now() };
}

/** Compare the probes taken at the start and at the end of a run. */
export function machineLoad(start: LoadProbe, end: LoadProbe, cores = os.availableParallelism(), limit = CALIBRATION_SLOWDOWN_LIMIT): MachineLoad {
  const spanS = Math.max((end.atMs - start.atMs) / 1000, 1e-3);
  const ownThreads = Math.max(0, (end.cpuUsageUs - start.cpuUsageUs) / 1e6 / spanS);
  const ownLoadEnd = ownThreads * (1 - Math.exp(-spanS / 60));
  const slowdown = start.calibrationMs > 0 ? end.calibrationMs / start.calibrationMs - 1 : 0;
  const warnings: string[] = [];
  const la = (v: number): string => v.toFixed(2);
  if (start.loadAvg >= cores) warnings.push(`load average ${la(start.loadAvg)} ≥ ${cores} cores at the start`);
  const othersEnd = end.loadAvg - ownLoadEnd;
  if (othersEnd >= cores) warnings.push(`load average ${la(end.loadAvg)} at the end, ${la(othersEnd)} of it not this run's (≥ ${cores} cores)`);
  if (slowdown > limit) warnings.push(`calibration loop ${(slowdown * 100).toFixed(0)} % slower at the end than at the start (${start.calibrationMs.toFixed(1)} → ${end.calibrationMs.toFixed(1)} ms; limit ${(limit * 100).toFixed(0)} %)`);
  return {
    cores, loadAvgStart: start.loadAvg, loadAvgEnd: end.loadAvg, ownLoadEnd,
    calibrationStartMs: start.calibrationMs, calibrationEndMs: end.calibrationMs, calibrationSlowdown: slowdown, slowdownLimit: limit,
    busy: warnings.length > 0, warnings,
  };
}

/** "machine: load average 1.60 → 2.10 (≈ 1.2 of it this run) on 2 cores; calibration loop 8.1 → 8.4 ms (+4 %)" */
export function formatMachineLine(m: MachineLoad): string {
  const pct = `${m.calibrationSlowdown >= 0 ? '+' : ''}${(m.calibrationSlowdown * 100).toFixed(0)} %`;
  return `machine: load average ${m.loadAvgStart.toFixed(2)} at the start, ${m.loadAvgEnd.toFixed(2)} at the end (≈ ${m.ownLoadEnd.toFixed(1)} of it this run) on ${m.cores} cores; `
    + `calibration loop ${m.calibrationStartMs.toFixed(1)} → ${m.calibrationEndMs.toFixed(1)} ms (${pct})`;
}

/** "warning: the machine was busy during this run (…); …" or null. */
export function machineLoadWarning(m: MachineLoad): string | null {
  if (!m.busy) return null;
  return `warning: the machine was busy during this run (${m.warnings.join('; ')}): absolute figures are less trustworthy; ratios hold up better (their rounds interleave), see their spreads`;
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
  return here.endsWith('.ts') ? new URL('../../dist/src/bench/harness.js', here) : new URL(here);
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

// ---------------------------------------------------------------------------------------------
// sharedmap: what a Node user would pick for one map shared by worker threads
//
// The `sharedmap` npm package (a coalesced-chaining hash map in a SharedArrayBuffer, line locks
// on Atomics), with the keys and workload of bpfsim's `baselines` cases: N u32 keys, 8-byte
// values, lookups or overwrite updates walking the keys with the fixed stride of every other
// baseline here, each thread from its own start (walkStart), on 1, 2, … threads. sharedmap stores
// strings: a key is the u32 in decimal (at most 10 UTF-16 code units), a value 4 non-zero UTF-16
// code units (8 bytes; a 0 unit would end the string). Each worker builds its key strings before
// the clock starts, so the figure is sharedmap at its best (a real caller would also pay String(k)
// per operation). A devDependency: loadSharedMap() returns null when it is not installed, and the
// cases that need it are skipped with that reason.

/** Key length in UTF-16 code units: a u32 in decimal. */
export const SHAREDMAP_KEY_UNITS = 10;
/** Value length in UTF-16 code units: 8 bytes. */
export const SHAREDMAP_VALUE_UNITS = 4;
const SM_BATCH = 256;
const SM_VALUES = 64;

/** The sharedmap instance as it crosses to a worker (structured clone: its typed arrays keep sharing the SAB). */
interface SharedMapLike {
  set(key: string, value: string): void;
  get(key: string): string | undefined;
  readonly length: number;
}
type SharedMapCtor = new (maxSize: number, keySize: number, objSize: number) => SharedMapLike;

export interface SharedMapSpec {
  readonly threads: number;
  readonly seconds: number;
  readonly op: 'lookup' | 'update';
  /** A filled map from createFilledSharedMap(). */
  readonly map: unknown;
  /** Keys 0..keys-1 are in the map. */
  readonly keys: number;
}

interface SharedMapData {
  readonly bpfsimSharedMap: 1;
  readonly ctl: SharedArrayBuffer;
  readonly map: unknown;
  readonly op: 'lookup' | 'update';
  readonly keys: number;
  readonly start: number;
}

interface SharedMapResult { readonly ops: number; readonly elapsedNs: number; readonly sink: number }

/** The package's class, or null when it is not installed. */
export async function loadSharedMap(): Promise<SharedMapCtor | null> {
  const name = 'sharedmap'; // a variable: TypeScript must not read the package's (invalid) typings
  try {
    const mod = (await import(name)) as { default?: unknown };
    const ctor = typeof mod.default === 'function' ? mod.default : (mod.default as { default?: unknown } | undefined)?.default;
    return typeof ctor === 'function' ? (ctor as SharedMapCtor) : null;
  } catch {
    return null;
  }
}

/** 8 bytes as 4 non-zero UTF-16 code units. */
export function sharedMapValue(i: number): string {
  return String.fromCharCode(0x4100 + (i & 0xff), 0x4200 + ((i >>> 8) & 0xff), 0x4300, 0x4400);
}

/** A sharedmap holding keys 0..keys-1 (80 % full: the package keeps its speed up to ~95 %). */
export async function createFilledSharedMap(keys: number): Promise<unknown> {
  const SharedMap = await loadSharedMap();
  if (SharedMap === null) throw new Error('sharedmap is not installed');
  const m = new SharedMap(Math.ceil(keys * 1.25), SHAREDMAP_KEY_UNITS, SHAREDMAP_VALUE_UNITS);
  for (let k = 0; k < keys; k++) m.set(String(k), sharedMapValue(k));
  if (m.length !== keys) throw new Error(`sharedmap holds ${m.length} keys after filling ${keys}`);
  return m;
}

async function sharedMapWorkerMain(d: SharedMapData, port: NonNullable<typeof parentPort>): Promise<void> {
  const SharedMap = await loadSharedMap();
  if (SharedMap === null) throw new Error('sharedmap is not installed');
  const m = d.map as SharedMapLike;
  Object.setPrototypeOf(m, SharedMap.prototype as object); // as the package's README does in a worker (a constructor type's prototype is any)
  const n = d.keys;
  const keys: string[] = [];
  for (let k = 0; k < n; k++) keys.push(String(k));
  const values: string[] = [];
  for (let i = 0; i < SM_VALUES; i++) values.push(sharedMapValue(i));
  const ctl = new Int32Array(d.ctl);
  Atomics.add(ctl, READY, 1);
  Atomics.notify(ctl, READY);
  while (Atomics.load(ctl, PHASE) === 0) Atomics.wait(ctl, PHASE, 0, 50);
  const t0 = process.hrtime.bigint();
  let ops = 0, k = d.start % n, sink = 0;
  const update = d.op === 'update';
  while (Atomics.load(ctl, PHASE) === 1) {
    for (let i = 0; i < SM_BATCH; i++) {
      k += STRIDE; if (k >= n) k -= n;
      if (update) m.set(keys[k]!, values[i & (SM_VALUES - 1)]!);
      else sink += m.get(keys[k]!)?.length ?? 0;
    }
    ops += SM_BATCH;
  }
  const elapsedNs = Number(process.hrtime.bigint() - t0);
  port.postMessage({ ops, elapsedNs, sink } satisfies SharedMapResult);
}

function isSharedMapResult(v: unknown): v is SharedMapResult {
  return typeof v === 'object' && v !== null && typeof (v as SharedMapResult).ops === 'number' && typeof (v as SharedMapResult).elapsedNs === 'number';
}

/** Thread t starts its walk at this key (threads apart, as bpfsim's CPUs are). */
export function walkStart(t: number, keys: number): number {
  return (t * 50_021) % Math.max(1, keys);
}

/** Run `op` on `threads` workers sharing `map` for `seconds`: operations of all threads over the time they ran. */
export async function runSharedMap(spec: SharedMapSpec): Promise<{ ops: number; elapsedNs: number }> {
  if (!Number.isInteger(spec.threads) || spec.threads < 1) throw new RangeError(`threads must be a positive integer; got ${String(spec.threads)}`);
  const ctlBuf = new SharedArrayBuffer(16);
  const run = await runTimedWorkers({
    url: harnessWorkerUrl(), threads: spec.threads, seconds: spec.seconds, ctl: ctlBuf, label: 'sharedmap baseline worker',
    workerData: (t): SharedMapData => ({ bpfsimSharedMap: 1, ctl: ctlBuf, map: spec.map, op: spec.op, keys: spec.keys, start: walkStart(t, spec.keys) }),
    name: (t) => `sharedmap${t}`, isResult: isSharedMapResult,
  });
  return { ops: run.results.reduce((a, r) => a + r.ops, 0), elapsedNs: run.elapsedNs };
}

function isSharedMapData(v: unknown): v is SharedMapData {
  return typeof v === 'object' && v !== null && (v as { bpfsimSharedMap?: unknown }).bpfsimSharedMap === 1;
}


// ---------------------------------------------------------------------------------------------
// Boot probes: the pieces of a runtime boot, measured from outside the runtime (`bench boot`)
//   - N bare worker_threads that import nothing and say they are ready (thread + isolate creation);
//   - N worker_threads that import the CPU worker's entry module first (adds loading and compiling
//     the CPU-side library in every worker);
//   - one SharedArrayBuffer of the arena's size (the kernel memory allocation alone).
// The rest of Runtime.start is the per-CPU boot calls, the main thread's global init and the
// control channel; `bench boot` prints it as the difference.

/** Worker source that imports nothing and reports at once. */
export const BARE_WORKER_SOURCE = 'require("node:worker_threads").parentPort.postMessage(1);';

/** Worker source that imports `url` (an ES module), then reports. */
export function importingWorkerSource(url: URL): string {
  return `import(${JSON.stringify(url.href)}).then(() => require("node:worker_threads").parentPort.postMessage(1), (e) => { throw e; });`;
}

/** Start `n` eval workers running `source`, wait until each has posted once; ns from the first spawn to the last report. */
export async function spawnUntilReady(n: number, source: string): Promise<number> {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`n must be a positive integer; got ${String(n)}`);
  const t0 = process.hrtime.bigint();
  const ws: Worker[] = [];
  try {
    for (let i = 0; i < n; i++) ws.push(new Worker(source, { eval: true, name: `bootprobe${i}` }));
    await Promise.all(ws.map((w) => new Promise<void>((resolve, reject) => {
      w.once('message', () => resolve());
      w.once('error', reject);
      w.once('exit', (code) => reject(new Error(`boot probe worker exited with code ${code} before it was ready`)));
    })));
    return Number(process.hrtime.bigint() - t0);
  } finally {
    await Promise.all(ws.map((w) => w.terminate()));
  }
}

/** Allocate a SharedArrayBuffer of `bytes` and write its first and last word; ns. */
export function allocateArena(bytes: number): number {
  const t0 = process.hrtime.bigint();
  const sab = new SharedArrayBuffer(bytes);
  const i32 = new Int32Array(sab);
  i32[0] = 1; i32[i32.length - 1] = 1;
  return Math.max(Number(process.hrtime.bigint() - t0), 1);
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
} else if (!isMainThread && parentPort !== null && isSharedMapData(workerData)) {
  sharedMapWorkerMain(workerData, parentPort).catch((e: unknown) => { throw e; });
}
