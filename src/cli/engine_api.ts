/*
 * engine_api.ts — the one seam between the `bpfsim` command and the simulation library.
 *
 * Everything the CLI needs from the library goes through `Engine` (created in engine.ts from
 * stress*.ts, scenario_adapter.ts and src/bench/, the only modules behind it that import
 * the library). The command modules (cmd_*.ts) own argument parsing, progress, verdicts, exit
 * codes, results.json and the report; the engine owns runtimes, maps,
 * programs, workloads and the raw figures. This file holds types and name tables only, so the CLI
 * type-checks and runs (`--help`, argument errors) even while the library is incomplete, and tests
 * can drive the commands with a fake engine.
 *
 * Contract notes:
 *  - The engine never decides pass/fail for stress runs: it reports splats, invariant checks and the
 *    leak check as data; cmd_stress.ts turns them into a verdict and an exit code.
 *  - A scenario's verdict *is* decided by the engine (the scenario knows what it expects, including
 *    splats it provokes on purpose).
 *  - Benchmarks: the engine only supplies measurable cases (`BenchCase.run`); rounds, medians and
 *    ratios against a baseline are computed by src/bench/harness.ts.
 */
import type { BenchCase } from '../bench/harness.js';

export const MAP_TYPES = [
  'hash', 'percpu_hash', 'lru_hash', 'lru_percpu_hash', 'array', 'percpu_array', 'hash_of_maps',
  'array_of_maps',
] as const;
export type MapType = (typeof MAP_TYPES)[number];

export const ALLOC_MODES = ['prealloc', 'bpf_mem_alloc', 'kmalloc'] as const;
/** How a map's elements are allocated: preallocated, or BPF_F_NO_PREALLOC with the runtime's dynAlloc. */
export type AllocMode = (typeof ALLOC_MODES)[number];

export const MIX_OPS = ['update', 'delete', 'lookup'] as const;
export type MixOp = (typeof MIX_OPS)[number];
/** Relative weights of the operations a stress workload performs (any scale; sum > 0). */
export type Mix = Readonly<Record<MixOp, number>>;

/**
 * The benchmarks `bpfsim bench` (and `all`) runs. 'baselines': bpfsim's hash map next to what a
 * Node user would pick (sharedmap, a JS Map per worker); 'boot': Runtime.start of 8 CPUs next to
 * 8 bare worker threads; 'oversub': 8 CPUs against 2 on a lock-heavy mix (bench cases: src/bench/cases.ts).
 */
export const BENCH_NAMES = ['map_perf', 'htab_mem', 'lookup', 'scaling', 'baselines', 'boot', 'oversub'] as const;
/** Every benchmark name accepted: 'timers' and 'graph' run only when named (`bpfsim bench timers`). */
export const ALL_BENCH_NAMES = [...BENCH_NAMES, 'timers', 'graph'] as const;
export type BenchName = (typeof ALL_BENCH_NAMES)[number];

/** Test-only fault switches (src/mem/layout.ts FAULT_*). Never set by default. */
export const FAULT_NAMES = ['drop_freelist_push', 'lost_update', 'phantom_delete', 'noexist_overwrite'] as const;
export type FaultName = (typeof FAULT_NAMES)[number];

export type ContextName = 'task' | 'softirq' | 'hardirq' | 'nmi';

/**
 * Whether a map type can use an allocation mode (reference §2–3): arrays are always preallocated;
 * LRU maps reject BPF_F_NO_PREALLOC (-ENOTSUPP). Returns null when supported, else the reason.
 */
export function unsupportedReason(map: MapType, alloc: AllocMode): string | null {
  if (alloc === 'prealloc') return null;
  if (map === 'array' || map === 'percpu_array' || map === 'array_of_maps') return 'array maps are always preallocated';
  if (map === 'lru_hash' || map === 'lru_percpu_hash') return 'LRU maps cannot be BPF_F_NO_PREALLOC (ENOTSUPP)';
  return null;
}

// ---------------------------------------------------------------------------------------------
// Stress

export interface StressOptions {
  readonly cpus: number;
  /** Length of the measured phase (workloads running), shared over the cells; boot, setup, checks
   * and teardown come on top. */
  readonly seconds: number;
  readonly maps: readonly MapType[];
  readonly alloc: readonly AllocMode[];
  /** Random NMIs per second per CPU (0 = none); each runs a perf_event program on the same map. */
  readonly nmiRate: number;
  /** Random hardirqs per second per CPU (0 = none). */
  readonly irqRate: number;
  readonly preemptRt: boolean;
  readonly seed: number;
  readonly mix: Mix;
  readonly faults: readonly FaultName[];
  /** Record every map operation and check each mix cell's history for linearizability (bpfsim/check). */
  readonly check?: boolean;
  /** Write the recorded history (JSON lines, docs/CHECK.md) to this file. */
  readonly record?: string;
  /** How often the engine calls onProgress (and samples the timeline); also the longest workload
   * slice, so the measured phase overruns --seconds by at most about this much. */
  readonly sampleIntervalMs: number;
  /** Aborted (Ctrl-C): the running workload stops at once, no further cell starts; the checks,
   * the leak check and teardown still run over what ran. */
  readonly signal?: AbortSignal;
}

/** A snapshot for the live display; cumulative counters since the start of the run. */
export interface LiveStats {
  /** What runs now, e.g. "hash/bpf_mem_alloc", "booting runtime (kmalloc)", "checks and teardown". */
  readonly phase: string;
  /** The measured phase so far: wall time workloads have been running (the panel's clock). */
  readonly elapsedMs: number;
  /** Length of the measured phase (--seconds). */
  readonly totalMs: number;
  /** Wall time since the run began (boot, setup, checks and teardown included). */
  readonly wallMs: number;
  readonly ops: number;
  /** Throughput over the last sample interval. */
  readonly opsPerSec: number;
  /** Failed operations by errno name ("EBUSY", "ENOMEM", …). */
  readonly errors: Readonly<Record<string, number>>;
  readonly splats: number;
  readonly gracePeriods: number;
  readonly memoryBytes: number;
  readonly interrupts: Interrupts;
}

/**
 * One interrupt kind, summed over CPUs. Invariant where all three are known:
 * requested = delivered + coalesced (+ at most one still pending per CPU).
 */
export interface IrqFlow {
  /** Asked for by random injection and perf_event sampling; null where the runtime does not count it. */
  readonly requested: number | null;
  /** Handled by a CPU. */
  readonly delivered: number;
  /** Raised while one was already pending or while the CPU could not take it (merged, as hardware
   * does); null where the runtime does not count it. */
  readonly coalesced: number | null;
}

export interface Interrupts {
  readonly nmi: IrqFlow;
  readonly hardirq: IrqFlow;
  readonly softirq: IrqFlow;
  /** irq_work items run. */
  readonly irqWork: number;
}

export interface SplatRecord {
  readonly kind: string;
  readonly cpu: number;
  readonly context: ContextName;
  readonly site: string;
  readonly heldLocks: readonly string[];
  readonly message: string;
  readonly timeNs: number;
}

export interface StressCell {
  readonly map: MapType;
  readonly alloc: AllocMode;
  /**
   * 'mix': update/delete/lookup (default); 'timers': bpf_timer arm/re-arm/cancel racing update/delete;
   * 'graph': rbtree/list add and remove under bpf_spin_lock, with NMIs using bpf_res_spin_lock,
   * objects and aborts (docs/GRAPH.md).
   */
  readonly workload?: 'mix' | 'timers' | 'graph';
  readonly status: 'ran' | 'skipped';
  /** Set when status is 'skipped'. */
  readonly skipReason?: string;
  readonly ops: number;
  readonly opsPerSec: number;
  readonly errors: Readonly<Record<string, number>>;
  /** Program runs skipped by the recursion guard (bpf_prog_active / prog->active). */
  readonly recursionMisses: number;
  /** Wall time this cell's workload ran (its share of the measured phase); 0 when skipped. */
  readonly measuredMs: number;
  /** --check: the linearizability check of this cell's recorded history. */
  readonly check?: CellCheck;
}

/** What `stress --check` found in one cell's history (bpfsim/check). */
export interface CellCheck {
  /** 'ok' | 'illegal' | 'unknown' (a partition ran out of budget) | 'incomplete' (operations were dropped: not judged) */
  readonly result: 'ok' | 'illegal' | 'unknown' | 'incomplete';
  readonly ops: number;
  readonly opsNotModelled: number;
  readonly partitions: number;
  readonly illegal: number;
  readonly unknown: number;
  /** kernel behaviours that look like violations, by kind (replace_lookup_miss, foreign_read) */
  readonly kernelProperties: Readonly<Record<string, number>>;
  /** operations the recorder lost (ring full): the history is incomplete when > 0 */
  readonly dropped: number;
  readonly elapsedMs: number;
  /** the first illegal partition, shortest window: one line per operation */
  readonly window: readonly string[];
  /** the same window for the report's timeline (Porcupine's view); absent when nothing is illegal */
  readonly timeline?: CellTimeline;
}

/** One operation of an illegal window, as the report draws it (src/cli/report/history_view.ts). */
export interface CellTimelineOp {
  readonly cpu: number;
  /** "update(0a000000, 07000000) = 0" */
  readonly label: string;
  readonly call: number;
  readonly ret: number;
  /** position in the longest linearization found (0-based), -1 if not in it */
  readonly order: number;
  /** the model state after it when linearized ('absent', a value, …), else null */
  readonly state: string | null;
  /** the operation that could not be linearized next */
  readonly stuck: boolean;
  /** still running at the window's end */
  readonly pending: boolean;
}

export interface CellTimeline {
  /** "map 3 key 0a000000 (hash)" */
  readonly title: string;
  readonly fromAnyState: boolean;
  readonly ops: readonly CellTimelineOp[];
}

export interface InvariantCheck {
  /** e.g. "map check()", "allocator accounting", "lock words free", "recursion counters zero". */
  readonly name: string;
  /** "global", or the cell it applies to, e.g. "hash/prealloc". */
  readonly scope: string;
  readonly ok: boolean;
  /** Violations, one line each (empty when ok). */
  readonly details: readonly string[];
}

export interface LeakCheck {
  readonly ok: boolean;
  /** Slab bytes in use before the first map was created. */
  readonly startBytes: number;
  /** Slab bytes in use after every map was freed and every RCU callback ran. */
  readonly endBytes: number;
  readonly details: readonly string[];
}

export interface TimelineSample {
  readonly tMs: number;
  readonly opsPerSec: number;
  readonly memoryBytes: number;
  readonly gracePeriods: number;
}

/** One bpf_mem_alloc per-CPU cache observed over time (free_cnt against its watermarks). */
export interface CacheSeries {
  /** The cache's owner, e.g. "hash/bpf_mem_alloc". */
  readonly cache: string;
  readonly cpu: number;
  readonly unitSize: number;
  readonly low: number;
  readonly high: number;
  /** [tMs, free_cnt] */
  readonly points: readonly (readonly [number, number])[];
}

/** Where the wall time of a stress run went, milliseconds. */
export interface StressPhases {
  /** Runtime.start: one runtime per allocator group (prealloc + bpf_mem_alloc, then kmalloc). */
  readonly boot: number;
  /** Per cell: map creation, program loads, arming the interrupt sources. */
  readonly setup: number;
  /** Workloads running: the measured phase (bounded by --seconds). */
  readonly measured: number;
  /** Between slices: progress samples and the BPF_SYNCHRONIZE after each slice. */
  readonly sampling: number;
  /** Grace period after a cell, map check(), rcu_barrier, global invariants, leak check. */
  readonly checks: number;
  /** Program unloads, map frees (after their grace periods) and Runtime.stop. */
  readonly teardown: number;
}

export interface StressResult {
  readonly seed: number;
  /** Wall time of the whole run (every phase). */
  readonly elapsedMs: number;
  /** The measured phase: wall time workloads ran, over all cells (at most --seconds plus one slice). */
  readonly measuredMs: number;
  readonly phasesMs: StressPhases;
  /** Ctrl-C cut the run short: cells after it were not run (status 'skipped'), the current one ran partly. */
  readonly interrupted: boolean;
  readonly cells: readonly StressCell[];
  readonly interrupts: Interrupts;
  readonly gracePeriods: number;
  readonly splats: readonly SplatRecord[];
  readonly invariants: readonly InvariantCheck[];
  readonly leak: LeakCheck;
  readonly timeline: readonly TimelineSample[];
  readonly caches: readonly CacheSeries[];
  /** Grace-period durations (start to end) recorded by the RCU coordinator, milliseconds. */
  readonly gpLatencyMs: readonly number[];
}

// ---------------------------------------------------------------------------------------------
// Bench

export interface BenchRequest {
  readonly names: readonly BenchName[];
  /** The largest CPU count measured (scaling goes 1, 2, 4, … up to it). */
  readonly cpus: number;
  readonly maps: readonly MapType[];
  readonly alloc: readonly AllocMode[];
  readonly preemptRt: boolean;
  readonly seed: number;
}

/** Live cases for one bench run; the engine keeps runtimes open until close(). */
export interface BenchSuite {
  readonly cases: readonly BenchCase[];
  /** Cases that cannot run here (e.g. a map the library refuses to create), with the reason. */
  readonly skipped: readonly { readonly id: string; readonly reason: string }[];
  close(): Promise<void>;
  /**
   * 'timers' only: measure timer fire latency (bpf timer callbacks and same-run baselines) in
   * runtimes of its own; call after close(). Samples in milliseconds.
   */
  readonly timerLatency?: () => Promise<readonly TimerLatencySeries[]>;
}

/** How late after the requested time a timer (or a baseline wake) ran, ms per sample. */
export interface TimerLatencySeries { readonly label: string; readonly samplesMs: readonly number[] }

// ---------------------------------------------------------------------------------------------
// Scenarios

export interface ScenarioInfo {
  readonly name: string;
  /** Seed file number it reproduces, e.g. "001". */
  readonly seed: string;
  readonly title: string;
  readonly summary: string;
}

export interface ScenarioEvent {
  readonly cpu: number;
  readonly context: ContextName;
  /** What happened: "takes bucket lock of key 7", "map_update_elem -> -EBUSY", … */
  readonly what: string;
  readonly tNs?: number;
}

export interface ScenarioResult {
  readonly name: string;
  readonly seed: string;
  readonly title: string;
  readonly events: readonly ScenarioEvent[];
  readonly verdict: { readonly ok: boolean; readonly expected: string; readonly observed: string };
  /** Every splat raised (expected ones included; the verdict says which were expected). */
  readonly splats: readonly SplatRecord[];
  readonly elapsedMs: number;
}

/** A scenario boots the runtime it needs (CPUs, PREEMPT_RT, lock mode); only the seed is ours. */
export interface ScenarioOptions {
  readonly seed: number;
}

// ---------------------------------------------------------------------------------------------

export interface Engine {
  runStress(opts: StressOptions, onProgress: (s: LiveStats) => void): Promise<StressResult>;
  benchSuite(req: BenchRequest): Promise<BenchSuite>;
  listScenarios(): Promise<readonly ScenarioInfo[]>;
  runScenario(name: string, opts: ScenarioOptions): Promise<ScenarioResult>;
}

/** Thrown by the engine for a request the user can fix (exit code 2), e.g. an unknown scenario. */
export class EngineUsageError extends Error {
  override readonly name = 'EngineUsageError';
}
