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
 */
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { availableParallelism } from 'node:os';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { I32, I64, F64, createArena, ktimeGetNs } from '../mem/arena.js';
import { perCpuBlock } from '../mem/this_cpu.js';
import {
  computeLayout, MAX_CPUS, FLAG_PREEMPT_RT, FLAG_RQSPINLOCK, FLAG_DYN_KMALLOC, FLAG_LOCKDEP,
  FLAG_VIRTUAL_CLOCK, HDR_STOPPING, HDR_VCLOCK_NS, HDR_FAULTS, PC_PENDING, PEND_STOP,
  PC_STAT_NMI, PC_STAT_HARDIRQ, PC_STAT_SOFTIRQ, PC_STAT_IRQ_WORK, PC_STAT_WINDOW_SLOW,
  PC_STAT_KPROBE, PC_STAT_NMI_DROPPED, ATTACH_KPROBE, ATTACH_PERF_EVENT, ATTACH_HARDIRQ,
  ATTACH_SOFTIRQ,
} from '../mem/layout.js';
import { defineSite, allSites } from '../cpu/sites.js';
import { readSplats, splatCount, type Splat } from '../debug/splat.js';
import { memInit } from '../mem/slab.js';
import { kzalloc, kfree } from '../mem/slab.js';
import { OWNER_KERNEL, memStats } from '../mem/owners.js';
import { BpfError, EINVAL, EOPNOTSUPP } from '../errno.js';
import { rcuGlobalInit, rcuService, synchronizeRcu, rcuBarrier, rcuStats } from '../rcu/rcu.js';
import { hrtimerGlobalInit, hrtimerFireDue } from '../timers/hrtimer.js';
import { bpfTimerService, bpfTimersIdle, bpfTimerStats, type BpfTimerStats } from '../timers/bpf_timer.js';
import { htabFreeIdle } from '../maps/hashtab.js';
import { MAP_TIMER_OFF } from '../maps/map_ops.js';
import { MIM_META_TIMER_OFF, isMapInMapType } from '../maps/map_in_map.js';
import { irqWorkService } from '../alloc/irq_work.js';
import { createMap as createMapImpl, bpfMapInc, bpfMapPut, type MapSpec } from '../maps/registry.js';
import type { BpfMapImpl } from '../maps/map_ops.js';
import { BpfMap } from '../maps/bpf_map.js';
import {
  progStateBytes, progStateInit, progRefcnt, bpfProgPut, PROG_LINE, PS_LAST_RET, PS_MISSES, PS_RUNS,
  PS_RUN_TIME, PS_ABORTED,
} from '../prog/prog_run.js';
import { TRACING_PROG_TYPES, type ProgType } from '../prog/program.js';
import { bootThread } from './boot.js';
import { Coordinator } from './coordinator.js';
import {
  RandomInjector, armInjection, injectionFired, cancelInjection, attachEntry, detachEntry,
  attachHits, IRQ_KINDS, type IrqKind,
} from './inject.js';
import type { CpuControl, ContextArg, ProgramInfo, TestRunResult, WorkloadCpuResult } from '../ipc/protocol.js';

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
}

export type ResolvedRuntimeOptions = { readonly [K in keyof RuntimeOptions]-?: NonNullable<RuntimeOptions[K]> };

const DEFAULTS: Omit<ResolvedRuntimeOptions, 'cpus'> = Object.freeze({
  preemptRt: false, memoryBytes: 256 << 20, dynAlloc: 'bpf_mem_alloc', bucketLock: 'map_locked',
  clock: 'real', seed: 1, lockTimeoutMs: 250, rcuStallMs: 1000, lockdep: true, faults: 0,
});

function resolveOptions(o: RuntimeOptions): ResolvedRuntimeOptions {
  const r = { cpus: o.cpus ?? Math.min(availableParallelism(), MAX_CPUS), ...DEFAULTS, ...stripUndefined(o) } as ResolvedRuntimeOptions;
  const int = (name: string, v: number, min: number, max: number): void => {
    if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`Runtime.start: option '${name}' must be an integer in [${min}, ${max}]; got ${String(v)}`);
  };
  int('cpus', r.cpus, 1, MAX_CPUS);
  int('memoryBytes', r.memoryBytes, 4 << 20, 0x7fff_f000);
  int('lockTimeoutMs', r.lockTimeoutMs, 1, 600_000);
  int('rcuStallMs', r.rcuStallMs, 1, 600_000);
  if (!Number.isInteger(r.seed)) throw new RangeError(`Runtime.start: option 'seed' must be an integer; got ${String(r.seed)}`);
  if (r.dynAlloc !== 'bpf_mem_alloc' && r.dynAlloc !== 'kmalloc') throw new RangeError(`Runtime.start: option 'dynAlloc' must be 'bpf_mem_alloc' or 'kmalloc'; got ${JSON.stringify(r.dynAlloc)}`);
  if (r.bucketLock !== 'map_locked' && r.bucketLock !== 'rqspinlock') throw new RangeError(`Runtime.start: option 'bucketLock' must be 'map_locked' or 'rqspinlock'; got ${JSON.stringify(r.bucketLock)}`);
  if (r.clock !== 'real' && r.clock !== 'virtual') throw new RangeError(`Runtime.start: option 'clock' must be 'real' or 'virtual'; got ${JSON.stringify(r.clock)}`);
  const layout = computeLayout(r.cpus, r.memoryBytes);
  if (layout.npages < 256) throw new RangeError(`Runtime.start: memoryBytes ${r.memoryBytes} is too small for ${r.cpus} CPUs`);
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
  readonly wallNs: number;
}

export interface ProgramStats { runCount: number; runTimeNs: number; recursionMisses: number; aborted: boolean }

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
  #unloaded = false;
  #released = false;
  /** @internal */
  constructor(rt: Runtime, id: number, info: ProgramInfo, statePtr: number, maps: readonly BpfMapImpl[]) {
    this.#rt = rt; this.id = id; this.info = info; this.statePtr = statePtr; this.#maps = maps;
  }
  get unloaded(): boolean { return this.#unloaded; }
  /** Freed: unloaded from every CPU, map references dropped (after unload, once no timer holds it). */
  get released(): boolean { return this.#released; }

  /**
   * Drop the user's reference: detach its links; no new runs. When no timer holds the program
   * (bpf_prog_put reached 0) it is freed now: unloaded from every CPU, its map references dropped
   * (a map the user already closed is freed here), its state freed. Otherwise timers whose
   * callback it is keep it (and its maps) alive until map_release_uref or a cancel drops them;
   * the runtime frees it then (rt.idle() waits for that). Idempotent.
   */
  async unload(): Promise<void> {
    if (this.#unloaded) return;
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
    kfree(this.statePtr);
    for (const m of this.#maps) bpfMapPut(m);
    this.#released = true;
  }

  /** References held on the program (the user's until unload, plus one per timer using its callbacks). */
  refcnt(): number { return progRefcnt(this.statePtr, this.#rt.cpus + 1); }

  #track(l: Link): Link {
    const wrapped: Link = {
      detach: async () => { if (this.#links.delete(wrapped)) await l.detach(); },
      hits: () => l.hits(),
    };
    this.#links.add(wrapped);
    return wrapped;
  }
  get name(): string { return this.info.name; }
  get type(): ProgType { return this.info.type as ProgType; }

  /** BPF_PROG_TEST_RUN on one CPU in the given context. */
  async testRun(o: { cpu: number; context?: ContextArg; repeat?: number; args?: unknown }): Promise<TestRunResult> {
    if (this.#unloaded) throw new Error(`testRun: program '${this.name}' is unloaded`);
    const cpu = this.#rt.checkCpu(o.cpu);
    const repeat = o.repeat ?? 1;
    if (!Number.isInteger(repeat) || repeat < 1) throw new RangeError(`testRun: 'repeat' must be a positive integer; got ${String(repeat)}`);
    return this.#rt.control(cpu).testRun({ id: this.id, context: o.context ?? 'task', repeat, args: o.args });
  }

  async attach(o: { kind: 'kprobe'; site: string } | { kind: 'perf_event'; cpus?: CpuSelector; frequencyHz?: number } | { kind: 'hardirq' | 'softirq'; cpus?: CpuSelector }): Promise<Link> {
    const rt = this.#rt;
    if (this.#unloaded) throw new Error(`attach: program '${this.name}' is unloaded`);
    if (o.kind === 'kprobe') {
      if (typeof o.site !== 'string' || o.site === '') throw new RangeError('attach kprobe: `site` must be a site name');
      const slot = attachEntry(ATTACH_KPROBE, defineSite(o.site), [], this.id, rt.cpus);
      return this.#track({ detach: async () => detachEntry(slot, rt.cpus), hits: () => attachHits(slot) });
    }
    const cpus = rt.selectCpus(o.cpus ?? 'all');
    const kind = o.kind === 'perf_event' ? ATTACH_PERF_EVENT : o.kind === 'hardirq' ? ATTACH_HARDIRQ : ATTACH_SOFTIRQ;
    const slot = attachEntry(kind, 0, cpus, this.id, rt.cpus);
    let src: { stop(): void } | undefined;
    if (o.kind === 'perf_event' && o.frequencyHz !== undefined) {
      if (!(o.frequencyHz >= 0)) throw new RangeError(`attach perf_event: 'frequencyHz' must be >= 0; got ${String(o.frequencyHz)}`);
      if (o.frequencyHz > 0) src = rt.randomInjector.add('nmi', cpus, o.frequencyHz);
    }
    return this.#track({
      detach: async () => { src?.stop(); detachEntry(slot, rt.cpus); },
      hits: () => attachHits(slot),
    });
  }

  /** @internal an injection that runs this program: cancelled at unload */
  trackInjection(cancel: () => void, hits: () => number): Injection {
    const link = this.#track({ detach: async () => cancel(), hits });
    return { fired: hits, cancel: () => { void link.detach(); } };
  }

  /** The value the program last returned on `cpu` (any context). */
  lastRetval(cpu: number): number {
    return I32[(this.statePtr + this.#rt.checkCpu(cpu) * PROG_LINE + PS_LAST_RET) >> 2]!;
  }

  stats(): ProgramStats {
    let runCount = 0, runTimeNs = 0, recursionMisses = 0;
    for (let c = 0; c < this.#rt.cpus; c++) {
      const line = this.statePtr + c * PROG_LINE;
      runCount += F64[(line + PS_RUNS) >> 3]!;
      runTimeNs += F64[(line + PS_RUN_TIME) >> 3]!;
      recursionMisses += I32[(line + PS_MISSES) >> 2]!;
    }
    const aborted = Atomics.load(I32, (this.statePtr + (this.#rt.cpus + 1) * PROG_LINE + PS_ABORTED) >> 2) !== 0;
    return { runCount, runTimeNs, recursionMisses, aborted };
  }
}

export interface RuntimeStats {
  readonly cpus: readonly {
    cpu: number; nmi: number; hardirq: number; softirq: number; irqWork: number; slowWindows: number;
    kprobeWindows: number; nmiCoalesced: number;
  }[];
  readonly splats: number;
  readonly memory: ReturnType<typeof memStats>;
  readonly rcu: ReturnType<typeof rcuStats>;
  readonly coordinator: { wakes: number; polls: number };
  readonly timers: BpfTimerStats;
}

export class Runtime {
  readonly options: ResolvedRuntimeOptions;
  readonly cpus: number;
  readonly sab: SharedArrayBuffer;
  readonly bootMs: number;
  /** @internal */ readonly randomInjector: RandomInjector;
  readonly #workers: Worker[];
  readonly #controls: Comlink.Remote<CpuControl>[];
  readonly #coordinator: Coordinator;
  readonly #maps = new Set<BpfMap>();
  readonly #programs: Program[] = [];
  #nextProgId = 0;
  #stopped = false;
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

  private constructor(options: ResolvedRuntimeOptions, sab: SharedArrayBuffer, workers: Worker[], controls: Comlink.Remote<CpuControl>[], coordinator: Coordinator, injector: RandomInjector, bootMs: number) {
    this.options = options;
    this.cpus = options.cpus;
    this.sab = sab;
    this.#workers = workers;
    this.#controls = controls;
    this.#coordinator = coordinator;
    this.randomInjector = injector;
    this.bootMs = bootMs;
  }

  /** Boot kernel memory and the CPU workers. */
  static async start(options: RuntimeOptions = {}): Promise<Runtime> {
    const o = resolveOptions(options);
    if (activeRuntime !== null && !activeRuntime.#stopped) {
      throw new Error('Runtime.start: another runtime is running in this thread; stop it first (one runtime per thread)');
    }
    const t0 = performance.now();
    const layout = computeLayout(o.cpus, o.memoryBytes);
    const flags = (o.preemptRt ? FLAG_PREEMPT_RT : 0) | (o.bucketLock === 'rqspinlock' ? FLAG_RQSPINLOCK : 0)
      | (o.dynAlloc === 'kmalloc' ? FLAG_DYN_KMALLOC : 0) | (o.lockdep ? FLAG_LOCKDEP : 0)
      | (o.clock === 'virtual' ? FLAG_VIRTUAL_CLOCK : 0);
    const sab = createArena({ layout, flags, seed: o.seed, lockTimeoutMs: o.lockTimeoutMs, rcuStallMs: o.rcuStallMs });
    bootThread(sab, o.cpus);
    I32[HDR_FAULTS >> 2] = o.faults;
    memInit();
    rcuGlobalInit();
    hrtimerGlobalInit();
    const coordinator = new Coordinator();
    const injector = new RandomInjector(o.seed);
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
        for (const w of workers) w.once('error', (e) => reject(e));
      });
      await Promise.race([Promise.all(controls.map((ctl, c) => ctl.boot({ sab, cpu: c, seed: o.seed }))), failed]);
    } catch (e) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw e;
    }
    coordinator.add(rcuService);
    coordinator.add(irqWorkService);
    coordinator.add(injector);
    coordinator.add(bpfTimerService);
    const rt = new Runtime(o, sab, workers, controls, coordinator, injector, performance.now() - t0);
    coordinator.add(rt.#progFreeService);
    coordinator.start();
    for (const w of workers) w.on('error', (e) => { rt.#errors.push(e); });
    activeRuntime = rt;
    return rt;
  }

  /** @internal */ control(cpu: number): Comlink.Remote<CpuControl> { return this.#controls[cpu]!; }
  /** @internal */ checkCpu(cpu: unknown): number {
    if (!Number.isInteger(cpu) || (cpu as number) < 0 || (cpu as number) >= this.cpus) {
      throw new RangeError(`cpu must be an integer in [0, ${this.cpus - 1}]; got ${String(cpu)}`);
    }
    return cpu as number;
  }
  /** @internal */ selectCpus(sel: CpuSelector): number[] {
    if (sel === 'all') return [...Array(this.cpus).keys()];
    if (typeof sel === 'number') return [this.checkCpu(sel)];
    if (!Array.isArray(sel) || sel.length === 0) throw new RangeError(`cpus must be 'all', a cpu id or a non-empty array of ids; got ${JSON.stringify(sel)}`);
    return sel.map((c) => this.checkCpu(c));
  }

  #assertRunning(what: string): void {
    if (this.#stopped) throw new Error(`${what}: the runtime is stopped`);
  }

  /** Structured kernel "BUG/WARN" reports seen so far. */
  splats(): Splat[] { return readSplats(0); }
  splatCount(): number { return splatCount(); }

  /** Every interrupt window (site) name known to the runtime. */
  sites(): string[] { return allSites(); }

  stats(): RuntimeStats {
    const cpus = [];
    for (let c = 0; c < this.cpus; c++) {
      const b = perCpuBlock(c) >> 2;
      cpus.push({
        cpu: c, nmi: I32[b + (PC_STAT_NMI >> 2)]!, hardirq: I32[b + (PC_STAT_HARDIRQ >> 2)]!,
        softirq: I32[b + (PC_STAT_SOFTIRQ >> 2)]!, irqWork: I32[b + (PC_STAT_IRQ_WORK >> 2)]!,
        slowWindows: I32[b + (PC_STAT_WINDOW_SLOW >> 2)]!, kprobeWindows: I32[b + (PC_STAT_KPROBE >> 2)]!,
        nmiCoalesced: I32[b + (PC_STAT_NMI_DROPPED >> 2)]!,
      });
    }
    return { cpus, splats: splatCount(), memory: memStats(), rcu: rcuStats(), coordinator: this.#coordinator.stats(), timers: bpfTimerStats() };
  }

  /**
   * The virtual clock (clock: 'virtual'). `advance(ns)` moves it and fires every timer due at the
   * new time (in softirq on each timer's CPU, round after round while callbacks arm timers that
   * are due at once, at most 64 rounds); the promise resolves when those callbacks have run
   * (rejects if a CPU does not take its timer softirq within 10 s).
   */
  readonly clock = {
    advance: (ns: number): Promise<void> => {
      if (this.options.clock !== 'virtual') throw new Error("clock.advance: the runtime was started with clock: 'real'");
      if (!(ns >= 0)) throw new RangeError(`clock.advance: ns must be >= 0; got ${String(ns)}`);
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
  rcuBarrier(): Promise<void> { return rcuBarrier(); }

  createMap(spec: MapSpec): BpfMap {
    this.#assertRunning('createMap');
    const m = new BpfMap(createMapImpl(spec));
    this.#maps.add(m);
    return m;
  }

  /**
   * Import a program module in every CPU worker and bind its maps. `args` becomes ctx.args for runs
   * that bring none (injected interrupts, kprobes, perf events, testRun/runWorkload without args).
   */
  async loadProgram(url: URL | string, o: { maps?: Readonly<Record<string, BpfMap>>; args?: unknown } = {}): Promise<Program> {
    this.#assertRunning('loadProgram');
    const href = url instanceof URL ? url.href : new URL(url, 'file://' + process.cwd() + '/').href;
    const mapPtrs: Record<string, number> = {};
    for (const [name, m] of Object.entries(o.maps ?? {})) mapPtrs[name] = m.impl.ptr;
    const id = this.#nextProgId++;
    const statePtr = kzalloc(progStateBytes(this.cpus + 1), OWNER_KERNEL);
    if (statePtr === 0) throw new BpfError(12, 'loadProgram: no memory for program state');
    progStateInit(statePtr, this.cpus + 1, id);
    let info: ProgramInfo;
    try {
      const infos = await Promise.all(this.#controls.map((c) => c.loadProgram({ id, url: href, maps: mapPtrs, statePtr, seed: this.options.seed, args: o.args })));
      info = infos[0]!;
    } catch (e) {
      await Promise.all(this.#controls.map((c) => c.unloadProgram(id)));
      kfree(statePtr);
      throw e;
    }
    const refusal = this.#verify(info, o.maps ?? {});
    if (refusal !== null) {
      await Promise.all(this.#controls.map((c) => c.unloadProgram(id)));
      kfree(statePtr);
      throw new BpfError(refusal.errno, refusal.message);
    }
    const held = info.maps.map((name) => o.maps![name]!.impl);
    for (const m of held) bpfMapInc(m);
    const p = new Program(this, id, info, statePtr, held);
    this.#programs.push(p);
    return p;
  }

  /** @internal */ async unloadFromCpus(id: number): Promise<void> {
    await Promise.all(this.#controls.map((c) => c.unloadProgram(id)));
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

  /** Fire an interrupt precisely at a named window, or at random on a set of CPUs. */
  inject(o: InjectPrecise | InjectRandom): Injection {
    this.#assertRunning('inject');
    if (!IRQ_KINDS.includes(o.kind)) throw new RangeError(`inject: 'kind' must be one of ${IRQ_KINDS.join(', ')}; got ${JSON.stringify(o.kind)}`);
    if ('at' in o) {
      const cpu = this.checkCpu(o.cpu);
      const times = o.times ?? 1;
      if (!Number.isInteger(times) || times < 1) throw new RangeError(`inject: 'times' must be a positive integer; got ${String(times)}`);
      if (o.program?.unloaded === true) throw new Error(`inject: program '${o.program.name}' is unloaded`);
      const slot = armInjection(cpu, defineSite(o.at), o.kind, times, o.program?.id ?? -1);
      const fired = (): number => injectionFired(slot);
      return o.program !== undefined ? o.program.trackInjection(() => cancelInjection(slot), fired) : { fired, cancel: () => cancelInjection(slot) };
    }
    if (!(o.ratePerSec > 0)) throw new RangeError(`inject: 'ratePerSec' must be > 0; got ${String(o.ratePerSec)}`);
    const cpus = this.selectCpus(o.cpus);
    let slot = -1;
    if (o.program !== undefined) {
      const kind = o.kind === 'nmi' ? ATTACH_PERF_EVENT : o.kind === 'hardirq' ? ATTACH_HARDIRQ : ATTACH_SOFTIRQ;
      slot = attachEntry(kind, 0, cpus, o.program.id, this.cpus);
    }
    const src = this.randomInjector.add(o.kind, cpus, o.ratePerSec);
    const cancel = (): void => { src.stop(); if (slot >= 0) detachEntry(slot, this.cpus); };
    return o.program !== undefined ? o.program.trackInjection(cancel, () => src.raised()) : { fired: () => src.raised(), cancel };
  }

  /** Run `program` in a loop on each selected CPU, in `context`, with windows live. */
  async runWorkload(o: WorkloadOptions): Promise<WorkloadResult> {
    this.#assertRunning('runWorkload');
    const cpus = this.selectCpus(o.cpus);
    const seconds = o.seconds ?? 0;
    if (!(seconds >= 0)) throw new RangeError(`runWorkload: 'seconds' must be >= 0; got ${String(seconds)}`);
    const iterations = o.iterations ?? (seconds > 0 ? Number.MAX_SAFE_INTEGER : NaN);
    if (!(iterations >= 0)) throw new RangeError("runWorkload: give 'iterations' or 'seconds'");
    const t0 = performance.now();
    const perCpu = await Promise.all(cpus.map((c) => this.#controls[c]!.runWorkload({
      id: o.program.id, context: o.context ?? 'task', iterations, durationMs: seconds * 1000, args: o.args,
    })));
    const errors: Record<string, number> = {};
    let ops = 0, skipped = 0;
    for (const r of perCpu) {
      ops += r.ok + Object.values(r.errors).reduce((a, b) => a + b, 0);
      skipped += r.skipped;
      for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
    }
    return { perCpu, ops, errors, skipped, wallNs: (performance.now() - t0) * 1e6 };
  }

  /** Ask every running workload to end at its next window. */
  stopWorkloads(): void {
    for (let c = 0; c < this.cpus; c++) Atomics.or(I32, (perCpuBlock(c) + PC_PENDING) >> 2, PEND_STOP);
  }

  /** Errors raised by workers outside a control call (should be none). */
  workerErrors(): readonly Error[] { return this.#errors; }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    Atomics.store(I32, HDR_STOPPING >> 2, 1);
    this.stopWorkloads();
    await this.#coordinator.stop();
    await Promise.all(this.#controls.map(async (c) => {
      try { await Promise.race([c.shutdown(), new Promise((r) => setTimeout(r, 1000).unref())]); } catch { /* worker gone */ }
    }));
    for (const c of this.#controls) c[Comlink.releaseProxy]();
    await Promise.all(this.#workers.map((w) => w.terminate()));
    if (activeRuntime === this) activeRuntime = null;
  }

  async [Symbol.asyncDispose](): Promise<void> { await this.stop(); }
}

