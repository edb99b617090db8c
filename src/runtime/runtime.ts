/*
 * runtime.ts — Runtime: boots kernel memory and one worker per simulated CPU, and is the public
 * face of the main thread (syscall-side map operations, program loading, injection, workloads,
 * RCU waits, splats and statistics).
 *
 * Boot: the main thread formats the arena, becomes the housekeeping CPU (id = cpus), runs every
 * module's global init, then starts the CPU workers in parallel; each attaches the arena and
 * becomes its CPU. Control calls go to workers through comlink; data never does.
 *
 * Workers: plain worker_threads, not piscina. A CPU is a long-lived thread with a fixed identity
 * whose event loop must keep running between control calls (its idle loop waits with
 * Atomics.waitAsync and takes interrupts); piscina's task model (and its default atomics:'sync'
 * parking) buys nothing here and hides the identity. See README "Design choices".
 *
 * One runtime per thread at a time: the kernel-memory views are module-level bindings for speed.
 * A second Runtime.start while one runs (or is starting: two calls in one Promise.all) is refused.
 *
 * Handles belong to their runtime: after rt.stop() every method of the runtime, of its maps,
 * programs, links and injections throws BpfError EBADF (a closed fd), except splats() and
 * stats(), which return what they were at stop. stop() releases kernel memory (the arena) and
 * settles every promise still pending on a CPU; it returns within a bound even when a CPU is stuck.
 *
 * Nothing hangs: control calls go through CpuFleet (cpu_fleet.ts), whose watchdog reports a stuck
 * or dead CPU as a splat and rejects what was pending on it with a CpuOfflineError.
 */
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { availableParallelism } from 'node:os';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { I32, I64, F64, createArena, detachArena, arenaGeneration, nrCpus, ktimeGetNs } from '../mem/arena.js';
import { perCpuBlock } from '../mem/this_cpu.js';
import {
  computeLayout, MAX_CPUS, FLAG_PREEMPT_RT, FLAG_RQSPINLOCK, FLAG_DYN_KMALLOC, FLAG_LOCKDEP,
  FLAG_VIRTUAL_CLOCK, FLAG_RECORD, FLAG_SCHED, HDR_STOPPING, HDR_VCLOCK_NS, HDR_FAULTS, PC_PENDING, PEND_STOP,
  PC_STAT_NMI, PC_STAT_HARDIRQ, PC_STAT_SOFTIRQ, PC_STAT_IRQ_WORK, PC_STAT_WINDOW_SLOW,
  PC_STAT_KPROBE, ATTACH_KPROBE, ATTACH_PERF_EVENT, ATTACH_HARDIRQ, ATTACH_SOFTIRQ, PC_RUNNING_PROG,
  PC_CUR_SITE, PC_PROGRESS, PC_HELD_MAX, PC_HELD_COUNT, PC_HELD_CLASS, PC_WAIT_LOCK, PC_SCHED_WHERE, FAULT_DROP_FREELIST_PUSH, FAULT_LOST_UPDATE, FAULT_PHANTOM_DELETE, FAULT_NOEXIST_OVERWRITE,
  FAULT_DELETE_UNLOCKED, FAULT_TIMER_MUTUAL_CANCEL,
} from '../mem/layout.js';
import { defineSite, allSites, siteId, siteName } from '../cpu/sites.js';
import { lockClassName } from '../locks/lock_classes.js';
import { irqCounts, offCoreMs, KIND_NMI, KIND_HARDIRQ, KIND_SOFTIRQ } from '../cpu/irq_source.js';
import { readSplats, splatCount, type Splat } from '../debug/splat.js';
import { memInit } from '../mm/slab.js';
import { kzalloc, kfree } from '../mm/slab.js';
import { OWNER_KERNEL, memStats } from '../mm/owners.js';
import { BpfError, EINVAL, EBADF, EPERM, ENOMEM, EOPNOTSUPP } from '../errno.js';
import { historyGlobalInit, historyThreadInit, historyDrain, historyDropped, historyValueHex, type HistoryOp } from '../maps/map_history.js';

/** What rt.historyMaps() says of a map (the checker's CheckOptions.maps). */
export interface HistoryMapInfo {
  readonly type: MapType; readonly keySize: number; readonly valueSize: number; readonly maxEntries: number; readonly name: string;
  /** arrays and per-CPU maps: the zeroed value (an element's first value, a slot no CPU wrote), as the history writes values */
  readonly initialValue?: string;
}
import { rcuGlobalInit, rcuService, synchronizeRcu, rcuBarrier, rcuStats, rcuShutdown } from '../rcu/rcu.js';
import { hrtimerGlobalInit, hrtimerFireDue } from '../timers/hrtimer.js';
import { graphGlobalInit, bpfGlobalMaInit, graphObjStats, type GraphObjStats } from '../graph/bpf_obj.js';
import { resLockStats, type ResLockStats } from '../locks/res_spinlock.js';
import { abortStats } from '../prog/run_state.js';
import type { AbortPolicy } from '../prog/prog_run.js';
import { bpfTimerService, bpfTimersIdle, bpfTimerStats, type BpfTimerStats } from '../timers/bpf_timer.js';
import { htabFreeIdle } from '../maps/hashtab.js';
import { MAP_TIMER_OFF, MAP_LOCK_OFF, MAP_GRAPH_REC } from '../maps/map_ops.js';
import { GREC_RES_LOCK } from '../maps/btf_record.js';
import { MIM_META_TIMER_OFF, isMapInMapType } from '../maps/map_in_map.js';
import { irqWorkService } from '../cpu/irq_work.js';
import { createMap as createMapImpl, bpfMapInc, bpfMapPut, type MapSpec } from '../maps/registry.js';
import type { BpfMapImpl, MapType } from '../maps/map_ops.js';
import { BpfMap, type MapInMapHandle } from '../maps/bpf_map.js';
import {
  progStateBytes, progStateInit, progRefcnt, bpfProgPut, PROG_LINE, PS_LAST_RET, PS_MISSES, PS_RUNS,
  PS_RUN_TIME, PS_ABORTED, PS_REFUSED,
} from '../prog/prog_run.js';
import { TRACING_PROG_TYPES, SPIN_LOCK_REFUSED_TYPES, type ProgType } from '../prog/program.js';
import { bootThread } from './boot.js';
import { Coordinator } from './coordinator.js';
import {
  addIrqSource, armInjection, injectionFired, cancelInjection, attachEntry, detachEntry,
  attachHits, IRQ_KINDS, type IrqKind,
} from './inject.js';
import type { CpuControl, ContextArg, ProgramInfo, TestRunResult, WorkloadCpuResult } from '../ipc/protocol.js';
import { installErrorTransfer } from '../ipc/errors.js';
import { CpuFleet } from './cpu_fleet.js';
import {
  checkObject, checkKnownKeys, checkInt, checkPositive, checkBool, checkOneOf, checkString,
  typeError, rangeError, valueError,
} from './validate.js';
import { CONTEXT_NAMES } from '../cpu/context.js';
import {
  schedInit, schedBeginRun, schedEndRun, schedStats, SCHED_MAX_DEPTH, WHERE_NAMES, type ScheduleConfig, type ScheduleStats,
} from '../cpu/sched.js';
import { ringDoorbell } from '../cpu/doorbell.js';
import { EBUSY } from '../errno.js';

export { CpuOfflineError } from './cpu_fleet.js';
export type { CpuOfflineCode } from './cpu_fleet.js';

installErrorTransfer();

export interface RuntimeOptions {
  /** Simulated CPUs, one worker each. @defaultValue available cores */
  readonly cpus?: number;
  /** PREEMPT_RT semantics (sleeping spinlock_t, RT irq_work, no allocation from atomic context). @defaultValue false */
  readonly preemptRt?: boolean;
  /** Size of kernel memory. @defaultValue 256 MiB */
  readonly memoryBytes?: number;
  /** Allocator behind BPF_F_NO_PREALLOC hash maps. @defaultValue 'bpf_mem_alloc' */
  readonly dynAlloc?: 'bpf_mem_alloc' | 'kmalloc';
  /** Bucket recursion guard: per-CPU map_locked slots (-EBUSY) or rqspinlock (-EDEADLK/-ETIMEDOUT). @defaultValue 'map_locked' */
  readonly bucketLock?: 'map_locked' | 'rqspinlock';
  /** @defaultValue 'real' */
  readonly clock?: 'real' | 'virtual';
  /** Every random choice in the runtime derives from it. @defaultValue 1 */
  readonly seed?: number;
  /** Lock wait before -ETIMEDOUT. @defaultValue 250 */
  readonly lockTimeoutMs?: number;
  /** RCU read section length that raises a stall splat. @defaultValue 1000 */
  readonly rcuStallMs?: number;
  /** Record lock order and report AB-BA. @defaultValue true */
  readonly lockdep?: boolean;
  /** Test-only fault switches (FAULT_* bits). @defaultValue 0 */
  readonly faults?: number;
  /**
   * A CPU that makes no progress this long (no program run ends, its idle loop does not turn)
   * while not waiting for a lock is reported stuck ('cpu_stuck' splat), taken offline, and the
   * calls pending on it reject. Lock waits time out on a holder that made no progress this long.
   * @defaultValue 2000
   */
  readonly watchdogMs?: number;
  /**
   * Record every map operation (programs, workloads, syscall side) for the linearizability
   * checker: rt.history(). `true`, or the most operations to keep (beyond: counted as dropped).
   * @defaultValue false
   */
  readonly record?: boolean | number;
  /**
   * Deterministic schedules (docs/SCHEDULE.md): workloads begun in the same tick form a run in
   * which one CPU runs at a time and, at every window, the scheduler picks from the seed which CPU
   * continues ('random', or 'pct' with `depth` priority change points); time is virtual and moves
   * one microsecond per step. The same seed gives the same interleaving, history and splats.
   * Implies clock: 'virtual'. @defaultValue false
   */
  readonly schedule?: ScheduleOptions | false;
}

/** Runtime.start({ schedule }) (fields: src/cpu/sched.ts ScheduleConfig). `seed` defaults to the runtime's seed. */
export type ScheduleOptions = Omit<ScheduleConfig, 'seed'> & { readonly seed?: number };

/** Where a CPU stands (rt.schedule().cpus, for a halted replay). */
export interface CpuState {
  readonly cpu: number;
  readonly program: string | null;
  readonly site: string;
  /** Lock classes held, outermost first. */
  readonly heldLocks: readonly string[];
  /** The lock it waits for (its class), if any. */
  readonly waitingFor: string | null;
  /** Where it stands in the schedule ('running', 'waiting for its turn', ...). */
  readonly sched: string;
}

export type ResolvedRuntimeOptions = { readonly [K in keyof RuntimeOptions]-?: NonNullable<RuntimeOptions[K]> };

const DEFAULTS: Omit<ResolvedRuntimeOptions, 'cpus'> = Object.freeze({
  preemptRt: false, memoryBytes: 256 << 20, dynAlloc: 'bpf_mem_alloc', bucketLock: 'map_locked',
  clock: 'real', seed: 1, lockTimeoutMs: 250, rcuStallMs: 1000, lockdep: true, faults: 0, watchdogMs: 2000,
  record: false, schedule: false,
});
/** Operations rt.history() keeps by default when recording (record: true). */
const RECORD_DEFAULT_MAX_OPS = 4_000_000;
/** History rings: an eighth of kernel memory (at most 64 MiB) split over the CPU ids, 4 Ki..256 Ki entries each. */
function historyRingEntries(cpus: number, memoryBytes: number): number {
  const budget = Math.min(64 << 20, memoryBytes / 8);
  return Math.max(4096, Math.min(262_144, Math.floor(budget / (cpus + 1) / 64)));
}

const OPTION_NAMES: readonly (keyof RuntimeOptions)[] = [
  'cpus', 'preemptRt', 'memoryBytes', 'dynAlloc', 'bucketLock', 'clock', 'seed', 'lockTimeoutMs',
  'rcuStallMs', 'lockdep', 'faults', 'watchdogMs', 'record', 'schedule',
];
const KNOWN_FAULTS = FAULT_DROP_FREELIST_PUSH | FAULT_LOST_UPDATE | FAULT_PHANTOM_DELETE | FAULT_NOEXIST_OVERWRITE | FAULT_DELETE_UNLOCKED
  | FAULT_TIMER_MUTUAL_CANCEL;

function resolveOptions(options: unknown): ResolvedRuntimeOptions {
  const what = (k: string): string => `Runtime.start: option '${k}'`;
  const o = checkObject('Runtime.start: options', options, true);
  checkKnownKeys('Runtime.start', o, OPTION_NAMES);
  const r = { cpus: Math.min(availableParallelism(), MAX_CPUS), ...DEFAULTS, ...stripUndefined(o) } as ResolvedRuntimeOptions;
  checkInt(what('cpus'), r.cpus, 1, MAX_CPUS);
  checkInt(what('memoryBytes'), r.memoryBytes, 4 << 20, 0x7fff_f000);
  checkInt(what('lockTimeoutMs'), r.lockTimeoutMs, 1, 600_000);
  checkInt(what('rcuStallMs'), r.rcuStallMs, 1, 600_000);
  checkInt(what('watchdogMs'), r.watchdogMs, 50, 600_000);
  checkInt(what('seed'), r.seed, -0x8000_0000, 0xffff_ffff);
  checkInt(what('faults'), r.faults, 0, KNOWN_FAULTS);
  if ((r.faults & ~KNOWN_FAULTS) !== 0) throw rangeError(what('faults'), `a mask of known FAULT_* bits (0x${KNOWN_FAULTS.toString(16)})`, r.faults);
  checkBool(what('preemptRt'), r.preemptRt);
  checkBool(what('lockdep'), r.lockdep);
  checkOneOf(what('dynAlloc'), r.dynAlloc, ['bpf_mem_alloc', 'kmalloc']);
  checkOneOf(what('bucketLock'), r.bucketLock, ['map_locked', 'rqspinlock']);
  checkOneOf(what('clock'), r.clock, ['real', 'virtual']);
  if (typeof r.record !== 'boolean') checkInt(what('record'), r.record, 1, 100_000_000);
  if (r.schedule !== false) {
    const s = checkObject(what('schedule'), r.schedule, false);
    checkKnownKeys('Runtime.start: schedule', s, ['mode', 'seed', 'depth', 'steps', 'stopAt', 'stopAtStamp', 'stopAtSplat', 'maxSteps']);
    const sched: ScheduleOptions = {
      mode: checkOneOf("Runtime.start: option 'schedule.mode'", s.mode, ['random', 'pct']),
      seed: s.seed === undefined ? r.seed : checkInt("Runtime.start: option 'schedule.seed'", s.seed, -0x8000_0000, 0xffff_ffff),
      depth: s.depth === undefined ? 3 : checkInt("Runtime.start: option 'schedule.depth'", s.depth, 1, SCHED_MAX_DEPTH),
      steps: s.steps === undefined ? 20_000 : checkInt("Runtime.start: option 'schedule.steps'", s.steps, 1, 0x7fff_ffff),
      stopAt: s.stopAt === undefined ? 0 : checkInt("Runtime.start: option 'schedule.stopAt'", s.stopAt, 0, 0x7fff_ffff),
      stopAtStamp: s.stopAtStamp === undefined ? 0 : checkInt("Runtime.start: option 'schedule.stopAtStamp'", s.stopAtStamp, 0, 0xffff_ffff),
      stopAtSplat: s.stopAtSplat === undefined ? false : checkBool("Runtime.start: option 'schedule.stopAtSplat'", s.stopAtSplat),
      maxSteps: s.maxSteps === undefined ? 0 : checkInt("Runtime.start: option 'schedule.maxSteps'", s.maxSteps, 0, 0x7fff_ffff),
    };
    if ((o as { clock?: unknown }).clock === 'real') throw valueError(what('clock'), "'virtual' (or nothing) with a schedule: scheduled time is virtual", 'real');
    (r as { schedule: ScheduleOptions }).schedule = sched;
    (r as { clock: string }).clock = 'virtual';
    // a thread of a scheduled run was seen not to run for 2-4 s on a machine loaded ten times
    // over; the run is not wrong for it (its steps do not depend on wall time): wait longer
    if ((o as { watchdogMs?: unknown }).watchdogMs === undefined) (r as { watchdogMs: number }).watchdogMs = 10_000;
  }
  const layout = computeLayout(r.cpus, r.memoryBytes);
  if (layout.npages < 256) throw rangeError(what('memoryBytes'), `large enough for ${r.cpus} CPUs`, r.memoryBytes);
  return r;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

function workerUrl(): URL {
  // From dist/src/runtime/runtime.js the worker is dist/workers/cpu.js; from the TypeScript
  // sources (tests) it is the compiled one too: Node 20 cannot start a .ts worker.
  const here = import.meta.url;
  return here.includes('/dist/') ? new URL('../../workers/cpu.js', here) : new URL('../../dist/workers/cpu.js', here);
}

let activeRuntime: Runtime | null = null;

/** rt.schedule(): the scheduler's figures and where each CPU stands. */
export interface ScheduleReport extends ScheduleStats {
  readonly seed: number;
  readonly depth: number;
  readonly cpus: readonly CpuState[];
}

/** Workloads begun in one tick under a schedule: one scheduled run. */
interface SchedBatch { readonly cpus: Set<number>; users: number; readonly begun: Promise<void>; readonly end: () => void }

/** The housekeeping CPU (this thread) makes progress at every coordinator poll (lock waiters read it). */
const housekeepingProgress = {
  name: 'housekeeping-progress',
  poll(): number { Atomics.add(I32, (perCpuBlock(nrCpus) + PC_PROGRESS) >> 2, 1); return -1; },
} as const;
/** A Runtime.start in progress in this thread (refuses a concurrent one). */
let starting = false;

export type CpuSelector = 'all' | readonly number[] | number;

export interface InjectPrecise {
  readonly cpu: number;
  /** site name (rt.sites()) */
  readonly at: string;
  readonly kind: IrqKind;
  /** @defaultValue 1 */
  readonly times?: number;
  /** program to run in the injected interrupt */
  readonly program?: Program;
}
export interface InjectRandom {
  readonly kind: IrqKind;
  readonly cpus: CpuSelector;
  readonly ratePerSec: number;
  /** program run on every such interrupt on those CPUs */
  readonly program?: Program;
}
export interface Injection {
  /** how many times it fired (precise) or was raised (random) */
  fired(): number;
  cancel(): void;
}

export interface WorkloadOptions {
  readonly cpus: CpuSelector;
  readonly context?: ContextArg;
  readonly program: Program;
  /** per CPU; @defaultValue unbounded when `seconds` is given */
  readonly iterations?: number;
  readonly seconds?: number;
  readonly args?: unknown;
}
export interface WorkloadResult {
  readonly perCpu: readonly WorkloadCpuResult[];
  readonly ops: number;
  readonly errors: Readonly<Record<string, number>>;
  readonly skipped: number;
  /** the program aborted during the workload: it is disabled and the loops ended early */
  readonly disabled: boolean;
  readonly wallNs: number;
}

export interface ProgramStats {
  runCount: number; runTimeNs: number; recursionMisses: number; aborted: boolean;
  /** runs refused because the program is disabled after an abort */
  refused: number;
  /** runs that ended in bpf_throw (ctx.throw) */
  exceptions: number;
  /** runs aborted for a broken rule (src/prog/run_state.ts) */
  violations: number;
  /** what abort unwinding released: locks, owning references dropped, and of those drops, the ones deferred to irq_work (NMI) */
  unwound: { locks: number; objects: number; deferred: number };
}

export interface Link { detach(): Promise<void>; hits(): number }

/** A program loaded into every CPU worker. */
export class Program {
  readonly #rt: Runtime;
  readonly id: number;
  readonly info: ProgramInfo;
  readonly statePtr: number;
  /** Maps the program holds a reference on (bpf_map_inc at load, put at unload). */
  readonly #maps: readonly BpfMapImpl[];
  readonly #links = new Set<Link>();
  readonly #gen: number;
  #unloaded = false;
  #released = false;
  /** Made by rt.loadProgram (kept in the .d.ts so that `new Program()` does not type-check). */
  constructor(rt: Runtime, id: number, info: ProgramInfo, statePtr: number, maps: readonly BpfMapImpl[]) {
    this.#rt = rt; this.id = id; this.info = info; this.statePtr = statePtr; this.#maps = maps;
    this.#gen = arenaGeneration;
  }
  get unloaded(): boolean { return this.#unloaded; }
  /** The statistics at the program's free (its state memory is gone then). */
  #final: ProgramStats | null = null;
  /** Freed: unloaded from every CPU, map references dropped (after unload, once no timer holds it). */
  get released(): boolean { return this.#released; }

  /** EBADF once the runtime is gone; `what` names the call. */
  #live(what: string): void {
    if (this.#gen !== arenaGeneration || !this.#rt.running) throw new BpfError(EBADF, `${what}: program '${this.name}' belongs to a stopped runtime`);
  }
  #loaded(what: string): void {
    this.#live(what);
    if (this.#unloaded) throw new BpfError(EBADF, `${what}: program '${this.name}' is unloaded`);
  }
  /** @internal the runtime this program belongs to */
  belongsTo(rt: Runtime): boolean { return this.#rt === rt && this.#gen === arenaGeneration; }

  /**
   * Drop the user's reference: detach its links; no new runs. When no timer holds the program
   * (bpf_prog_put reached 0) it is freed now: unloaded from every CPU, its map references dropped
   * (a map the user already closed is freed here), its state freed. Otherwise timers whose
   * callback it is keep it (and its maps) alive until map_release_uref or a cancel drops them;
   * the runtime frees it then (rt.idle() waits for that). Idempotent.
   */
  async unload(): Promise<void> {
    if (this.#unloaded) return;
    this.#live('unload');
    this.#unloaded = true;
    for (const l of [...this.#links]) await l.detach();
    if (bpfProgPut(this.statePtr) > 0) { this.#rt.deferRelease(this); return; }
    await this.release();
  }

  /** @internal the free of a program nothing references (its refcount is 0). */
  async release(): Promise<void> {
    // a callback of this program may still be running (its timer's reference was dropped by a
    // cancel or free while it ran): callbacks run in RCU read sections
    if (this.info.callbacks.length > 0) await synchronizeRcu();
    await this.#rt.unloadFromCpus(this.id);
    // its state is freed (and poisoned) below: what stats() and refcnt() say from now on
    this.#final = this.stats();
    kfree(this.statePtr);
    for (const m of this.#maps) bpfMapPut(m);
    this.#released = true;
  }

  /** References held on the program (the user's until unload, plus one per timer using its callbacks). */
  refcnt(): number { return this.#final !== null ? 0 : progRefcnt(this.statePtr, this.#rt.cpus + 1); }

  #track(l: Link): Link {
    const wrapped: Link = {
      detach: async () => {
        if (!this.#links.has(wrapped)) return;
        this.#live('detach');
        this.#links.delete(wrapped);
        await l.detach();
      },
      hits: () => { this.#live('hits'); return l.hits(); },
    };
    this.#links.add(wrapped);
    return wrapped;
  }
  get name(): string { return this.info.name; }
  get type(): ProgType { return this.info.type as ProgType; }

  /** Refuse a run of a program disabled by an abort (EPERM), at once. */
  #enabled(what: string): void {
    if (this.#aborted()) throw new BpfError(EPERM, `${what}: program '${this.name}' is disabled: it aborted earlier (see its prog_abort splat)`);
  }
  #aborted(): boolean {
    return Atomics.load(I32, (this.statePtr + (this.#rt.cpus + 1) * PROG_LINE + PS_ABORTED) >> 2) !== 0;
  }

  /** BPF_PROG_TEST_RUN on one CPU in the given context. */
  async testRun(o: { cpu: number; context?: ContextArg; repeat?: number; args?: unknown }): Promise<TestRunResult> {
    this.#loaded('testRun');
    const opts = checkObject('testRun: options', o, false);
    checkKnownKeys('testRun', opts, ['cpu', 'context', 'repeat', 'args']);
    const cpu = this.#rt.checkCpu(opts.cpu, 'testRun: option \'cpu\'');
    const context = opts.context === undefined ? 'task' : checkOneOf('testRun: option \'context\'', opts.context, CONTEXT_NAMES);
    const repeat = opts.repeat === undefined ? 1 : checkInt('testRun: option \'repeat\'', opts.repeat, 1, 2 ** 31 - 1);
    this.#enabled('testRun');
    return this.#rt.callCpu(cpu, `testRun of '${this.name}'`, (c) => c.testRun({ id: this.id, context, repeat, args: o.args }));
  }

  async attach(o: { kind: 'kprobe'; site: string; allowUnknownSite?: boolean } | { kind: 'perf_event'; cpus?: CpuSelector; frequencyHz?: number } | { kind: 'hardirq' | 'softirq'; cpus?: CpuSelector }): Promise<Link> {
    const rt = this.#rt;
    this.#loaded('attach');
    const opts = checkObject('attach: options', o, false);
    const kind = checkOneOf('attach: option \'kind\'', opts.kind, ['kprobe', 'perf_event', 'hardirq', 'softirq']);
    if (kind === 'kprobe') {
      checkKnownKeys('attach kprobe', opts, ['kind', 'site', 'allowUnknownSite']);
      const site = checkString('attach kprobe: option \'site\'', opts.site);
      const allow = opts.allowUnknownSite === undefined ? false : checkBool('attach kprobe: option \'allowUnknownSite\'', opts.allowUnknownSite);
      let id = siteId(site);
      if (id === undefined) {
        if (!allow) throw valueError('attach kprobe: option \'site\'', `a site the runtime defines (rt.sites()), or pass allowUnknownSite: true for one a module defines later`, site);
        id = defineSite(site);
      }
      const slot = attachEntry(ATTACH_KPROBE, id, [], this.id, rt.cpus);
      return this.#track({ detach: async () => detachEntry(slot, rt.cpus), hits: () => attachHits(slot) });
    }
    checkKnownKeys(`attach ${kind}`, opts, kind === 'perf_event' ? ['kind', 'cpus', 'frequencyHz'] : ['kind', 'cpus']);
    const cpus = rt.selectCpus((opts.cpus ?? 'all') as CpuSelector, `attach ${kind}: option 'cpus'`);
    let freq = 0;
    if (kind === 'perf_event' && opts.frequencyHz !== undefined) freq = checkPositive('attach perf_event: option \'frequencyHz\'', opts.frequencyHz, 10_000_000, true);
    const code = kind === 'perf_event' ? ATTACH_PERF_EVENT : kind === 'hardirq' ? ATTACH_HARDIRQ : ATTACH_SOFTIRQ;
    const slot = attachEntry(code, 0, cpus, this.id, rt.cpus);
    let src: { stop(): void } | undefined;
    try {
      if (freq > 0) src = addIrqSource('nmi', cpus, freq, false);
    } catch (e) {
      detachEntry(slot, rt.cpus);
      throw e;
    }
    return this.#track({
      detach: async () => { src?.stop(); detachEntry(slot, rt.cpus); },
      hits: () => attachHits(slot),
    });
  }

  /** @internal an injection that runs this program: cancelled at unload */
  trackInjection(cancel: () => void, hits: () => number): Injection {
    const link = this.#track({ detach: async () => cancel(), hits });
    return { fired: () => link.hits(), cancel: () => { void link.detach(); } };
  }

  /** The value the program last returned on `cpu` (any context). */
  lastRetval(cpu: number): number {
    this.#live('lastRetval');
    if (this.#final !== null) throw new BpfError(EBADF, `lastRetval: program '${this.name}' is freed`);
    return I32[(this.statePtr + this.#rt.checkCpu(cpu, 'lastRetval: cpu') * PROG_LINE + PS_LAST_RET) >> 2]!;
  }

  stats(): ProgramStats {
    if (this.#final !== null) return this.#final;
    this.#live('stats');
    let runCount = 0, runTimeNs = 0, recursionMisses = 0, refused = 0;
    for (let c = 0; c < this.#rt.cpus; c++) {
      const line = this.statePtr + c * PROG_LINE;
      runCount += F64[(line + PS_RUNS) >> 3]!;
      runTimeNs += F64[(line + PS_RUN_TIME) >> 3]!;
      recursionMisses += I32[(line + PS_MISSES) >> 2]!;
      refused += I32[(line + PS_REFUSED) >> 2]!;
    }
    const a = abortStats(this.statePtr, this.#rt.cpus, PROG_LINE);
    return {
      runCount, runTimeNs, recursionMisses, aborted: this.#aborted(), refused, exceptions: a.exceptions, violations: a.violations,
      unwound: { locks: a.unwoundLocks, objects: a.unwoundObjects, deferred: a.unwoundDeferred },
    };
  }
}

/** Interrupts of one kind: asked for, handled, and merged into one already pending. */
export interface IrqFigures { requested: number; delivered: number; coalesced: number }
export interface IrqStats { nmi: IrqFigures; hardirq: IrqFigures; softirq: IrqFigures }

export interface RuntimeStats {
  readonly cpus: readonly {
    cpu: number; nmi: number; hardirq: number; softirq: number; irqWork: number; slowWindows: number;
    kprobeWindows: number;
    /** NMIs merged into one already pending (= interrupts.nmi.coalesced) */
    nmiCoalesced: number;
    interrupts: IrqStats;
    /** busy time this CPU's thread was off-core: interrupt sources do not count it (ms) */
    offCoreMs: number;
    /** null, or why the CPU is offline ('stuck' | 'died') */
    offline: 'stuck' | 'died' | null;
  }[];
  /**
   * Totals over CPUs. requested: raised by injection (random or precise), perf_event sampling or
   * the coordinator; delivered: handled by the CPU; coalesced: raised while one of the same kind
   * was pending (hardware merges them). requested = delivered + coalesced + pending.
   */
  readonly interrupts: IrqStats;
  readonly splats: number;
  readonly memory: ReturnType<typeof memStats>;
  readonly rcu: ReturnType<typeof rcuStats>;
  readonly coordinator: { wakes: number; polls: number };
  readonly timers: BpfTimerStats;
  /** allocated objects (bpf_obj_new): live, allocated, freed, deferred drops, teardowns */
  readonly objects: GraphObjStats;
  /** bpf_res_spin_lock acquisitions and failures, all CPUs */
  readonly resLocks: ResLockStats;
}

export class Runtime {
  readonly options: ResolvedRuntimeOptions;
  readonly cpus: number;
  readonly bootMs: number;
  #sab: SharedArrayBuffer | null;
  readonly #fleet: CpuFleet;
  readonly #coordinator: Coordinator;
  readonly #maps = new Set<BpfMap>();
  readonly #programs: Program[] = [];
  readonly #gen: number;
  #nextProgId = 0;
  #stopped = false;
  #stopping: Promise<void> | null = null;
  #finalSplats: Splat[] = [];
  #finalStats: RuntimeStats | null = null;
  #finalSchedule: ScheduleReport | null = null;
  /** Scheduled runs: the one being formed in this tick, and the end of the last one queued. */
  #schedBatch: SchedBatch | null = null;
  #schedQueue: Promise<void> = Promise.resolve();
  /** unloaded programs still referenced by timers */
  readonly #deferred = new Set<Program>();
  /** programs being freed */
  readonly #releasing = new Set<Promise<void>>();
  readonly #progFreeService = {
    name: 'prog-free',
    poll: (): number => {
      for (const p of this.#deferred) {
        if (p.refcnt() !== 0) continue;
        this.#deferred.delete(p);
        const r: Promise<void> = p.release().catch((e: unknown) => { this.#errors.push(e instanceof Error ? e : new Error(String(e))); })
          .finally(() => { this.#releasing.delete(r); });
        this.#releasing.add(r);
      }
      return this.#deferred.size > 0 ? 50 : -1;
    },
  };
  readonly #errors: Error[] = [];
  readonly #history: HistoryOp[] = [];
  readonly #mapInfo = new Map<number, HistoryMapInfo>();

  private constructor(options: ResolvedRuntimeOptions, sab: SharedArrayBuffer, workers: Worker[], controls: Comlink.Remote<CpuControl>[], coordinator: Coordinator, bootMs: number) {
    this.options = options;
    this.cpus = options.cpus;
    this.#sab = sab;
    this.#coordinator = coordinator;
    this.bootMs = bootMs;
    this.#gen = arenaGeneration;
    this.#fleet = new CpuFleet(workers, controls, options.watchdogMs, (cpu) => this.#describeCpu(cpu));
    for (const w of workers) w.on('error', (e) => { this.#errors.push(e); });
  }

  /** Boot kernel memory and the CPU workers. */
  static async start(options: RuntimeOptions = {}): Promise<Runtime> {
    const o = resolveOptions(options);
    if (starting || (activeRuntime !== null && !activeRuntime.#stopped)) {
      throw new Error(`Runtime.start: another runtime is ${starting ? 'starting' : 'running'} in this thread; stop it first (one runtime per thread)`);
    }
    starting = true;
    try {
      return await Runtime.#boot(o);
    } finally {
      starting = false;
    }
  }

  static async #boot(o: ResolvedRuntimeOptions): Promise<Runtime> {
    const t0 = performance.now();
    const layout = computeLayout(o.cpus, o.memoryBytes);
    const flags = (o.preemptRt ? FLAG_PREEMPT_RT : 0) | (o.bucketLock === 'rqspinlock' ? FLAG_RQSPINLOCK : 0)
      | (o.dynAlloc === 'kmalloc' ? FLAG_DYN_KMALLOC : 0) | (o.lockdep ? FLAG_LOCKDEP : 0)
      | (o.clock === 'virtual' ? FLAG_VIRTUAL_CLOCK : 0) | (o.record !== false ? FLAG_RECORD : 0)
      | (o.schedule !== false ? FLAG_SCHED : 0);
    const sab = createArena({ layout, flags, seed: o.seed, lockTimeoutMs: o.lockTimeoutMs, rcuStallMs: o.rcuStallMs, watchdogMs: o.watchdogMs });
    bootThread(sab, o.cpus);
    I32[HDR_FAULTS >> 2] = o.faults;
    if (o.schedule !== false) schedInit(o.schedule as ScheduleConfig);
    memInit();
    rcuGlobalInit();
    if (o.record !== false) {
      if (!historyGlobalInit(historyRingEntries(o.cpus, o.memoryBytes))) { detachArena(); throw new BpfError(ENOMEM, 'Runtime.start: no kernel memory for the history rings (record: true); raise memoryBytes'); }
      historyThreadInit();
    }
    hrtimerGlobalInit();
    graphGlobalInit();
    const coordinator = new Coordinator();
    const url = workerUrl();
    const workers: Worker[] = [];
    const controls: Comlink.Remote<CpuControl>[] = [];
    try {
      for (let c = 0; c < o.cpus; c++) {
        const w = new Worker(fileURLToPath(url), { name: `cpu${c}` });
        workers.push(w);
        controls.push(Comlink.wrap<CpuControl>(nodeEndpoint(w as unknown as Parameters<typeof nodeEndpoint>[0])));
      }
      const failed = new Promise<never>((_, reject) => {
        for (const w of workers) {
          w.once('error', (e) => reject(e));
          w.once('exit', (code) => reject(new Error(`Runtime.start: a CPU worker exited with code ${code} during boot`)));
        }
      });
      await Promise.race([Promise.all(controls.map((ctl, c) => ctl.boot({ sab, cpu: c, seed: o.seed }))), failed]);
    } catch (e) {
      await Promise.all(workers.map((w) => w.terminate()));
      rcuShutdown(new Error('Runtime.start failed'));
      detachArena();
      throw e;
    }
    const rt = new Runtime(o, sab, workers, controls, coordinator, performance.now() - t0);
    coordinator.add(rcuService);
    coordinator.add(irqWorkService);
    coordinator.add(bpfTimerService);
    coordinator.add(rt.#fleet);
    coordinator.add(housekeepingProgress);
    coordinator.add(rt.#progFreeService);
    if (o.record !== false) coordinator.add({ name: 'history', poll: () => { rt.#drainHistory(); return 2; } });
    coordinator.start();
    activeRuntime = rt;
    return rt;
  }

  /** True until stop() begins. */
  get running(): boolean { return !this.#stopped && this.#gen === arenaGeneration; }

  /** Kernel memory. Released by stop(): EBADF afterwards. */
  get sab(): SharedArrayBuffer {
    if (this.#sab === null) throw new BpfError(EBADF, 'sab: the runtime is stopped and its kernel memory released');
    return this.#sab;
  }

  /** @internal a tracked control call on one CPU (rejects if the CPU is or goes offline) */
  callCpu<T>(cpu: number, what: string, f: (c: Comlink.Remote<CpuControl>) => Promise<T>): Promise<T> {
    this.#assertRunning(what);
    return this.#fleet.call(cpu, what, f);
  }
  /** @internal */ checkCpu(cpu: unknown, what = 'cpu'): number {
    if (typeof cpu !== 'number') throw typeError(what, `a CPU id (an integer in [0, ${this.cpus - 1}])`, cpu);
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.cpus) throw rangeError(what, `an integer in [0, ${this.cpus - 1}]`, cpu);
    return cpu;
  }
  /** @internal */ selectCpus(sel: CpuSelector, what = 'cpus'): number[] {
    if (sel === 'all') return [...Array(this.cpus).keys()];
    if (typeof sel === 'number') return [this.checkCpu(sel, what)];
    if (!Array.isArray(sel) || sel.length === 0) throw typeError(what, "'all', a CPU id or a non-empty array of CPU ids", sel);
    const out = sel.map((c) => this.checkCpu(c, `${what} element`));
    if (new Set(out).size !== out.length) throw valueError(what, 'CPU ids without repeats', sel);
    return out;
  }

  #assertRunning(what: string): void {
    if (!this.running) throw new BpfError(EBADF, `${what}: the runtime is stopped`);
  }

  #describeCpu(cpu: number): string {
    const s = this.#cpuState(cpu);
    const running = s.program === null ? 'running no program' : `running program '${s.program}'`;
    const sched = this.options.schedule === false ? '' : `, ${s.sched} (turn: cpu ${schedStats().turn})`;
    return `${running}${s.site ? `, last window ${s.site}` : ''}${sched}`;
  }

  /** Structured kernel "BUG/WARN" reports seen so far (after stop: those seen until stop). */
  splats(): Splat[] { return this.#stopped ? [...this.#finalSplats] : readSplats(0); }
  splatCount(): number { return this.#stopped ? this.#finalSplats.length : splatCount(); }

  /** Every interrupt window (site) name known to the runtime. */
  sites(): string[] { return allSites(); }

  stats(): RuntimeStats {
    if (this.#stopped) {
      if (this.#finalStats === null) throw new BpfError(EBADF, 'stats: the runtime is stopped');
      return this.#finalStats;
    }
    const cpus = [];
    const total = (): IrqFigures => ({ requested: 0, delivered: 0, coalesced: 0 });
    const interrupts: IrqStats = { nmi: total(), hardirq: total(), softirq: total() };
    for (let c = 0; c < this.cpus; c++) {
      const b = perCpuBlock(c) >> 2;
      const fig = (kind: number, delivered: number): IrqFigures => ({ ...irqCounts(c, kind), delivered });
      const irq: IrqStats = {
        nmi: fig(KIND_NMI, I32[b + (PC_STAT_NMI >> 2)]!),
        hardirq: fig(KIND_HARDIRQ, I32[b + (PC_STAT_HARDIRQ >> 2)]!),
        softirq: fig(KIND_SOFTIRQ, I32[b + (PC_STAT_SOFTIRQ >> 2)]!),
      };
      for (const k of ['nmi', 'hardirq', 'softirq'] as const) {
        interrupts[k].requested += irq[k].requested;
        interrupts[k].delivered += irq[k].delivered;
        interrupts[k].coalesced += irq[k].coalesced;
      }
      const off = this.#fleet.offline(c);
      cpus.push({
        cpu: c, nmi: irq.nmi.delivered, hardirq: irq.hardirq.delivered, softirq: irq.softirq.delivered,
        irqWork: I32[b + (PC_STAT_IRQ_WORK >> 2)]!, slowWindows: I32[b + (PC_STAT_WINDOW_SLOW >> 2)]!,
        kprobeWindows: I32[b + (PC_STAT_KPROBE >> 2)]!, nmiCoalesced: irq.nmi.coalesced, interrupts: irq,
        offCoreMs: offCoreMs(c),
        offline: off === null ? null : off.code === 'ERR_BPFSIM_CPU_DIED' ? 'died' as const : off.code === 'ERR_BPFSIM_CPU_STUCK' ? 'stuck' as const : null,
      });
    }
    return { cpus, interrupts, splats: splatCount(), memory: memStats(), rcu: rcuStats(), coordinator: this.#coordinator.stats(), timers: bpfTimerStats(), objects: graphObjStats(), resLocks: resLockStats() };
  }

  /**
   * The virtual clock (clock: 'virtual'). `advance(ns)` moves it and fires every timer due at the
   * new time (in softirq on each timer's CPU, round after round while callbacks arm timers that
   * are due at once, at most 64 rounds); the promise resolves when those callbacks have run
   * (rejects if a CPU does not take its timer softirq within 10 s).
   */
  readonly clock = {
    advance: (ns: number): Promise<void> => {
      this.#assertRunning('clock.advance');
      if (this.options.clock !== 'virtual') throw new Error("clock.advance: the runtime was started with clock: 'real'");
      checkPositive('clock.advance: ns', ns, Number.MAX_SAFE_INTEGER, true);
      Atomics.add(I64, HDR_VCLOCK_NS >> 3, BigInt(Math.round(ns)));
      return hrtimerFireDue().then(() => undefined);
    },
    /** ktime_get_ns() of the runtime (virtual or real). */
    now: (): number => ktimeGetNs(),
  };

  /** @internal an unloaded program kept alive by timers: freed when its refcount reaches 0 */
  deferRelease(p: Program): void {
    this.#deferred.add(p);
    this.#progFreeService.poll();
  }

  /**
   * Wait until deferred frees are done: timer frees deferred past a running callback, programs
   * kept by timers whose references are gone, hash maps' deferred teardown, and every pending
   * RCU callback (kfree_rcu of timers). For leak checks after closing maps and unloading
   * programs. Bounded: rejects after 10 s of deferred timer frees.
   */
  async idle(): Promise<void> {
    for (let i = 0; i < 3; i++) {
      await bpfTimersIdle();
      this.#progFreeService.poll();
      await Promise.all([...this.#releasing]);
      await htabFreeIdle();
      await rcuBarrier();
    }
  }

  /** Wait for a grace period: every program running at the call has finished (BPF_SYNCHRONIZE). */
  synchronizeRcu(o: { expedited?: boolean } = {}): Promise<void> {
    this.#assertRunning('synchronizeRcu');
    return synchronizeRcu(o);
  }
  rcuBarrier(): Promise<void> {
    this.#assertRunning('rcuBarrier');
    return rcuBarrier();
  }

  /** A hash_of_maps / array_of_maps: its update and delete return Promise<void> (MapInMapHandle). */
  createMap(spec: MapSpec & { readonly type: 'hash_of_maps' | 'array_of_maps' }): MapInMapHandle;
  createMap(spec: MapSpec): BpfMap;
  createMap(spec: MapSpec): BpfMap {
    this.#assertRunning('createMap');
    const m = new BpfMap(createMapImpl(spec));
    this.#maps.add(m);
    this.#mapInfo.set(m.id, {
      type: m.impl.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.impl.maxEntries, name: m.name,
      // arrays start zeroed; a per-CPU element shows zeroes in the slots of CPUs that never wrote
      ...(m.impl.type === 'array' || m.impl.percpu ? { initialValue: historyValueHex(new Uint8Array(m.valueSize)) } : {}),
    });
    return m;
  }

  #drainHistory(): void {
    if (this.options.record === false || this.#gen !== arenaGeneration) return;
    historyDrain(this.#history, this.options.record === true ? RECORD_DEFAULT_MAX_OPS : this.options.record);
  }

  /**
   * The recorded map operations so far (Runtime.start({ record: true })), in the format of
   * bpfsim/check (docs/CHECK.md), ordered by call stamp. After stop(): what was recorded until then.
   * `{ clear: true }` hands them over and keeps none (the next call returns only newer ones).
   */
  history(o: { clear?: boolean } = {}): HistoryOp[] {
    if (this.options.record === false) throw new Error("history: the runtime was started without record: true");
    this.#drainHistory();
    const out = [...this.#history].sort((a, b) => a.call - b.call);
    // clear: hand the operations over and keep none (long runs: the caller checks or writes them
    // as it goes, and the runtime's memory stays flat); the cap counts what is kept
    if (o.clear === true) { this.#taken += this.#history.length; this.#history.length = 0; }
    return out;
  }
  #taken = 0;

  /** What the checker needs to know of each map the history names: its type and sizes. */
  historyMaps(): Record<number, HistoryMapInfo> {
    return Object.fromEntries(this.#mapInfo);
  }

  /** Operations recorded and lost (a ring was full, or the cap was reached). */
  historyStats(): { recorded: number; dropped: number } {
    this.#drainHistory();
    return { recorded: this.#taken + this.#history.length, dropped: this.#stopped ? this.#histDropped : historyDropped() };
  }
  #histDropped = 0;

  /**
   * Import a program module in every CPU worker and bind its maps. `args` becomes ctx.args for runs
   * that bring none (injected interrupts, kprobes, perf events, testRun/runWorkload without args).
   */
  async loadProgram(url: URL | string, o: { maps?: Readonly<Record<string, BpfMap>>; args?: unknown; abortPolicy?: AbortPolicy } = {}): Promise<Program> {
    this.#assertRunning('loadProgram');
    if (!(url instanceof URL) && typeof url !== 'string') throw typeError('loadProgram: url', 'a URL or a path string', url);
    const opts = checkObject('loadProgram: options', o, true);
    checkKnownKeys('loadProgram', opts, ['maps', 'args', 'abortPolicy']);
    const abortPolicy = opts.abortPolicy ?? 'disable';
    if (abortPolicy !== 'disable' && abortPolicy !== 'continue') throw typeError("loadProgram: option 'abortPolicy'", "'disable' or 'continue'", abortPolicy);
    const maps = opts.maps === undefined ? {} : checkObject("loadProgram: option 'maps'", opts.maps, false);
    const mapPtrs: Record<string, number> = {};
    for (const [name, m] of Object.entries(maps)) {
      if (!(m instanceof BpfMap)) throw typeError(`loadProgram: maps.${name}`, 'a BpfMap (from rt.createMap)', m);
      if (m.closed) throw new BpfError(EBADF, `loadProgram: maps.${name}: map '${m.name}' is closed`);
      mapPtrs[name] = m.impl.ptr;
    }
    const href = url instanceof URL ? url.href : new URL(url, 'file://' + process.cwd() + '/').href;
    const id = this.#nextProgId++;
    const statePtr = kzalloc(progStateBytes(this.cpus + 1), OWNER_KERNEL);
    if (statePtr === 0) throw new BpfError(12, 'loadProgram: no memory for program state');
    const unloadAll = async (): Promise<void> => {
      await Promise.allSettled([...Array(this.cpus).keys()].map((c) => this.#fleet.call(c, 'unloadProgram', (ctl) => Promise.resolve(ctl.unloadProgram(id)))));
    };
    progStateInit(statePtr, this.cpus + 1, id);
    let info: ProgramInfo;
    try {
      const infos = await Promise.all([...Array(this.cpus).keys()].map((c) => this.callCpu(c, `loadProgram ${href}`, (ctl) => ctl.loadProgram({ id, url: href, maps: mapPtrs, statePtr, seed: this.options.seed, args: opts.args, abortPolicy }))));
      info = infos[0]!;
      // bpf_global_ma, before the first run that may allocate an object
      if (info.types.length > 0) bpfGlobalMaInit();
    } catch (e) {
      if (this.running) { await unloadAll(); kfree(statePtr); }
      throw e;
    }
    const refusal = this.#verify(info, maps as Record<string, BpfMap>);
    if (refusal !== null) {
      await unloadAll();
      kfree(statePtr);
      throw new BpfError(refusal.errno, refusal.message);
    }
    for (const w of info.windows) defineSite(w);
    const held = info.maps.map((name) => (maps[name] as BpfMap).impl);
    for (const m of held) bpfMapInc(m);
    const p = new Program(this, id, info, statePtr, held);
    this.#programs.push(p);
    return p;
  }

  /** @internal */ async unloadFromCpus(id: number): Promise<void> {
    await Promise.all([...Array(this.cpus).keys()].map((c) => this.#fleet.offline(c) !== null ? Promise.resolve() : this.callCpu(c, 'unloadProgram', (ctl) => Promise.resolve(ctl.unloadProgram(id)))));
  }

  /** The load-time checks the verifier of the modelled era made. */
  #verify(info: ProgramInfo, maps: Readonly<Record<string, BpfMap>>): { errno: number; message: string } | null {
    const tracing = TRACING_PROG_TYPES.has(info.type as ProgType);
    if (tracing && this.options.preemptRt && this.options.dynAlloc === 'kmalloc') {
      for (const name of info.maps) {
        const m = maps[name];
        if (m !== undefined && m.usesSleepingBucketLock()) {
          return { errno: EINVAL, message: `program '${info.name}' (${info.type}): tracing programs may use only preallocated maps on PREEMPT_RT with kmalloc-backed dynamic maps; map '${name}' is BPF_F_NO_PREALLOC` };
        }
      }
    }
    for (const name of info.maps) {
      const m = maps[name];
      if (m === undefined || !SPIN_LOCK_REFUSED_TYPES.has(info.type as ProgType)) continue;
      // check_map_prog_compatibility(): a map whose values hold a bpf_spin_lock (or a
      // bpf_res_spin_lock) is not for tracing programs, which may run in NMI inside its lock
      const p = m.impl.ptr;
      const grec = I32[(p + MAP_GRAPH_REC) >> 2]!;
      if (I32[(p + MAP_LOCK_OFF) >> 2] !== 0 || (grec !== 0 && I32[(grec + GREC_RES_LOCK) >> 2] !== 0)) {
        return { errno: EINVAL, message: `program '${info.name}' (${info.type}): tracing progs cannot use bpf_spin_lock yet (map '${name}' holds one)` };
      }
    }
    for (const name of info.maps) {
      const m = maps[name];
      if (m === undefined) continue;
      const p = m.impl.ptr;
      const timer = I32[(p + MAP_TIMER_OFF) >> 2] !== 0 || (isMapInMapType(m.impl.typeId) && I32[(p + MIM_META_TIMER_OFF) >> 2] !== 0);
      if (!timer) continue;
      // check_map_prog_compatibility() of the classic timer era (lifted in 2026) and the 2025 RT ban
      if (tracing) return { errno: EINVAL, message: `program '${info.name}' (${info.type}): tracing progs cannot use bpf_timer yet (map '${name}' holds timers)` };
      if (this.options.preemptRt) return { errno: EOPNOTSUPP, message: `program '${info.name}': bpf_timer cannot be used for PREEMPT_RT (map '${name}' holds timers)` };
    }
    return null;
  }

  #checkProgram(what: string, v: unknown): Program {
    if (!(v instanceof Program)) throw typeError(what, 'a Program (from rt.loadProgram)', v);
    if (!v.belongsTo(this)) throw new BpfError(EBADF, `${what}: program '${v.name}' belongs to another runtime`);
    if (v.unloaded) throw new BpfError(EBADF, `${what}: program '${v.name}' is unloaded`);
    return v;
  }

  /** Fire an interrupt precisely at a named window, or at random on a set of CPUs. */
  inject(o: InjectPrecise | InjectRandom): Injection {
    this.#assertRunning('inject');
    const opts = checkObject('inject: options', o, false);
    const kind = checkOneOf("inject: option 'kind'", opts.kind, IRQ_KINDS);
    const program = opts.program === undefined ? undefined : this.#checkProgram("inject: option 'program'", opts.program);
    const live = (inj: Injection): Injection => ({
      fired: () => { this.#assertRunning('injection.fired'); return inj.fired(); },
      cancel: () => { if (this.running) inj.cancel(); },
    });
    if ('at' in opts || 'times' in opts || 'cpu' in opts) {
      checkKnownKeys('inject (precise)', opts, ['cpu', 'at', 'kind', 'times', 'program']);
      const cpu = this.checkCpu(opts.cpu, "inject: option 'cpu'");
      const at = checkString("inject: option 'at'", opts.at);
      const site = siteId(at);
      if (site === undefined) throw valueError("inject: option 'at'", 'a site the runtime defines (rt.sites())', at);
      const times = opts.times === undefined ? 1 : checkInt("inject: option 'times'", opts.times, 1, 2 ** 31 - 1);
      const slot = armInjection(cpu, site, kind, times, program?.id ?? -1);
      const fired = (): number => injectionFired(slot);
      return live(program !== undefined ? program.trackInjection(() => cancelInjection(slot), fired) : { fired, cancel: () => cancelInjection(slot) });
    }
    checkKnownKeys('inject (random)', opts, ['kind', 'cpus', 'ratePerSec', 'program']);
    const rate = checkPositive("inject: option 'ratePerSec'", opts.ratePerSec, 10_000_000);
    const cpus = this.selectCpus(opts.cpus as CpuSelector, "inject: option 'cpus'");
    let slot = -1;
    if (program !== undefined) {
      const code = kind === 'nmi' ? ATTACH_PERF_EVENT : kind === 'hardirq' ? ATTACH_HARDIRQ : ATTACH_SOFTIRQ;
      slot = attachEntry(code, 0, cpus, program.id, this.cpus);
    }
    let src: { stop(): void; raised(): number };
    try {
      src = addIrqSource(kind, cpus, rate, true);
    } catch (e) {
      if (slot >= 0) detachEntry(slot, this.cpus);
      throw e;
    }
    const cancel = (): void => { src.stop(); if (slot >= 0) detachEntry(slot, this.cpus); };
    return live(program !== undefined ? program.trackInjection(cancel, () => src.raised()) : { fired: () => src.raised(), cancel });
  }

  /** Run `program` in a loop on each selected CPU, in `context`, with windows live. */
  async runWorkload(o: WorkloadOptions): Promise<WorkloadResult> {
    this.#assertRunning('runWorkload');
    const opts = checkObject('runWorkload: options', o, false);
    checkKnownKeys('runWorkload', opts, ['cpus', 'context', 'program', 'iterations', 'seconds', 'args']);
    const program = this.#checkProgram("runWorkload: option 'program'", opts.program);
    const cpus = this.selectCpus(opts.cpus as CpuSelector, "runWorkload: option 'cpus'");
    const context = opts.context === undefined ? 'task' : checkOneOf("runWorkload: option 'context'", opts.context, CONTEXT_NAMES);
    const seconds = opts.seconds === undefined ? 0 : checkPositive("runWorkload: option 'seconds'", opts.seconds, 1e6, true);
    if (opts.iterations === undefined && seconds === 0) throw valueError('runWorkload', "an 'iterations' count or a 'seconds' bound", o);
    const iterations = opts.iterations === undefined ? Number.MAX_SAFE_INTEGER : checkInt("runWorkload: option 'iterations'", opts.iterations, 0, Number.MAX_SAFE_INTEGER);
    if (program.stats().aborted) throw new BpfError(EPERM, `runWorkload: program '${program.name}' is disabled: it aborted earlier (see its prog_abort splat)`);
    const leave = this.options.schedule !== false ? await this.#schedEnter(cpus) : null;
    const t0 = performance.now();
    let perCpu: WorkloadCpuResult[];
    try {
      perCpu = await Promise.all(cpus.map((c) => this.callCpu(c, `runWorkload of '${program.name}'`, (ctl) => ctl.runWorkload({
        id: program.id, context, iterations, durationMs: seconds * 1000, args: opts.args,
      }))));
    } finally {
      leave?.();
    }
    const errors: Record<string, number> = {};
    let ops = 0, skipped = 0;
    for (const r of perCpu) {
      ops += r.ok + Object.values(r.errors).reduce((a, b) => a + b, 0);
      skipped += r.skipped;
      for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
    }
    return { perCpu, ops, errors, skipped, disabled: perCpu.some((r) => r.disabled), wallNs: (performance.now() - t0) * 1e6 };
  }

  /**
   * Join the scheduled run being formed in this tick (every runWorkload called before the next
   * macrotask runs in it), wait until the runs before it ended and the kernel is idle, and return
   * the function that leaves it (the last one out ends the run).
   */
  #schedEnter(cpus: readonly number[]): Promise<() => void> {
    let b = this.#schedBatch;
    if (b === null) {
      let open!: () => void, fail!: (e: unknown) => void, end!: () => void;
      const begun = new Promise<void>((res, rej) => { open = res; fail = rej; });
      const ended = new Promise<void>((res) => { end = res; });
      const batch: SchedBatch = { cpus: new Set(), users: 0, begun, end };
      b = batch;
      this.#schedBatch = batch;
      const before = this.#schedQueue;
      this.#schedQueue = ended;
      setImmediate(() => {
        this.#schedBatch = null;
        // a run starts from a quiet kernel (grace periods and deferred frees done), so what the
        // runs before it left behind is the same in every replay
        before.then(() => this.idle()).then(() => {
          this.#assertRunning('runWorkload');
          schedBeginRun([...batch.cpus].sort((x, y) => x - y));
          ringDoorbell();
          open();
        }).catch((e: unknown) => { end(); fail(e); });
      });
    }
    for (const c of cpus) {
      if (b.cpus.has(c)) throw new BpfError(EBUSY, `runWorkload: cpu ${c} already runs a workload of this scheduled run (workloads begun in one tick form one run; one per CPU)`);
    }
    for (const c of cpus) b.cpus.add(c);
    b.users++;
    const batch = b;
    let left = false;
    return batch.begun.then(() => () => {
      if (left) return;
      left = true;
      if (--batch.users === 0) { schedEndRun(); ringDoorbell(); batch.end(); }
    });
  }

  /** The deterministic scheduler's figures (Runtime.start({ schedule })), or null without one. */
  schedule(): ScheduleReport | null {
    if (this.options.schedule === false) return null;
    if (this.#stopped) return this.#finalSchedule;
    const s = this.options.schedule;
    const cpus = [...Array(this.cpus).keys()].map((c) => this.#cpuState(c));
    return { ...schedStats(), seed: s.seed ?? this.options.seed, depth: s.depth ?? 3, cpus };
  }

  #cpuState(cpu: number): CpuState {
    const b = perCpuBlock(cpu) >> 2;
    const id = I32[b + (PC_RUNNING_PROG >> 2)]! - 1;
    const n = Math.min(PC_HELD_MAX, I32[b + (PC_HELD_COUNT >> 2)]!);
    const heldLocks: string[] = [];
    for (let i = 0; i < n; i++) heldLocks.push(lockClassName(I32[b + (PC_HELD_CLASS >> 2) + i]! & 0xffff));
    const wait = Atomics.load(I32, b + (PC_WAIT_LOCK >> 2));
    return {
      cpu, program: id < 0 ? null : this.#programs.find((p) => p.id === id)?.name ?? `#${id}`,
      site: siteName(I32[b + (PC_CUR_SITE >> 2)]!) ?? '', heldLocks,
      waitingFor: wait === 0 ? null : `0x${wait.toString(16)} (held by cpu ${(Atomics.load(I32, wait >> 2) & 0xff) - 1})`,
      sched: WHERE_NAMES[I32[b + (PC_SCHED_WHERE >> 2)]!] ?? '?',
    };
  }

  /** Ask every running workload to end at its next window. */
  stopWorkloads(): void {
    this.#assertRunning('stopWorkloads');
    this.#raiseStop();
  }
  #raiseStop(): void {
    for (let c = 0; c < this.cpus; c++) Atomics.or(I32, (perCpuBlock(c) + PC_PENDING) >> 2, PEND_STOP);
  }

  /** Errors raised by workers outside a control call (should be none). */
  workerErrors(): readonly Error[] { return this.#errors; }

  /**
   * Stop the runtime: end workloads, stop the coordinator, shut the CPUs down (each within 1 s,
   * then terminated), settle every pending call (CpuOfflineError 'ERR_BPFSIM_STOPPED'), and
   * release kernel memory. Always returns within a few seconds, stuck CPUs or not. Idempotent.
   */
  stop(): Promise<void> {
    if (this.#stopping === null) this.#stopping = this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    this.#finalSplats = readSplats(0);
    this.#finalStats = this.stats();
    this.#finalSchedule = this.schedule();
    this.#stopped = true;
    Atomics.store(I32, HDR_STOPPING >> 2, 1);
    this.#raiseStop();
    await this.#coordinator.stop();
    rcuShutdown(new BpfError(EBADF, 'the runtime was stopped before the grace period ended'));
    await this.#fleet.stop(1000);
    this.#drainHistory();
    this.#histDropped = this.options.record === false ? 0 : historyDropped();
    this.#finalSplats = readSplats(0);
    this.#maps.clear();
    this.#programs.length = 0;
    this.#sab = null;
    if (activeRuntime === this) activeRuntime = null;
    detachArena();
  }

  async [Symbol.asyncDispose](): Promise<void> { await this.stop(); }
}
