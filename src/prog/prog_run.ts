/*
 * prog_run.ts — running a program on this CPU: recursion protection, RCU read section,
 * migrate/preempt disable, statistics and abort (kernel/bpf/trampoline.c, bpf_trace.c).
 *
 * Per-program state in kernel memory (allocated by the main thread at load):
 *   line c (128 B) for every cpu id c:  +0 active (i32)  +4 misses (i32)  +8 runs (f64)
 *                                       +16 runTimeNs (f64)  +24 lastRet (i32)
 *   line nrCpuIds:                      +0 aborted (i32, any CPU sets it; every run reads it)
 *                                       +4 refcnt (i32, Atomics: the user's reference + one per
 *                                          timer whose callback is this program's; bpf_prog_put
 *                                          at 0 rings the coordinator, the runtime frees it)
 *                                       +8 program id (written at load)
 * Each CPU's line is written only by that CPU (its own nested contexts included).
 *
 * Guard (reference §1.4): tracing types increment the per-CPU bpf_prog_active and skip the run
 * unless it became 1; other types increment this program's per-CPU `active` and skip unless it
 * became 1. A skipped run bumps `misses` (recursion_misses) and never calls run().
 *
 * Each run takes the next scratch frame (PC_PROG_DEPTH): a program nested in another on this CPU
 * (kprobe, NMI) has its own "stack".
 *
 * Abort: an exception escaping run() — any value at all: an Error, undefined, a Symbol, an object
 * whose toString throws — or a return value that is not a number is the simulation's "abort": a
 * 'prog_abort' splat, every lock the program took is released (newest first), and the program is
 * disabled on every CPU. The abort path is total: it never throws, so the code after it always
 * leaves the RCU read section and restores the context counters.
 *
 * Disabled means disabled: every later run of an aborted program, from any attach point, test run
 * or workload, is refused before it starts (counted in `refused`, never run, no new splat).
 *
 * Timer callbacks (runTimerCallback, called by bpf_timer.ts in softirq): no recursion guard (the
 * kernel calls callback_fn directly), but a scratch frame, migrate_disable and abort handling
 * like a run; a callback of an aborted or unloaded program is skipped.
 */
import { I32, F64, nrCpuIds as arenaCpuIds } from '../mem/arena.js';
import { thisCpu, pcpuI } from '../mem/this_cpu.js';
import { PC_PROG_DEPTH, PC_RUNNING_PROG } from '../mem/layout.js';
import { progActiveInc, progActiveDec, migrateDisable, migrateEnable } from '../cpu/context.js';
import { heldLockCount } from '../locks/raw_spinlock.js';
import { resHeldCount } from '../locks/res_spinlock.js';
import { rcuReadLock, rcuReadUnlock, rcuReadLockTrace, rcuReadUnlockTrace } from '../rcu/rcu.js';
import { ringDoorbell } from '../cpu/doorbell.js';
import { openMap } from '../maps/registry.js';
import { ProgramContext } from './helpers.js';
import { TRACING_PROG_TYPES, type DefinedProgram, type ProgramMaps, type TimerCallback } from './program.js';
import { frameEnter, frameLeave, frameFinish, frameThrew, describeThrown } from './run_state.js';
import type { GraphProgram } from './graph_kfuncs.js';

export { describeThrown };

export const PROG_LINE = 128;
export const PS_ACTIVE = 0;
export const PS_MISSES = 4;
export const PS_RUNS = 8;
export const PS_RUN_TIME = 16;
export const PS_LAST_RET = 24;
export const PS_REFUSED = 28;   // runs refused because the program is disabled (aborted)
export const PS_ABORTED = 0; // in line nrCpuIds
export const PS_REFCNT = 4;  // in line nrCpuIds
export const PS_ID = 8;      // in line nrCpuIds

/** i32 index of the program refcount of the program whose state is at `state`. */
function refI(state: number): number { return (state + arenaCpuIds * PROG_LINE + PS_REFCNT) >> 2; }

/** Load (main thread): refcount 1 (the user's reference), id. */
export function progStateInit(state: number, nrCpuIds: number, id: number): void {
  Atomics.store(I32, (state + nrCpuIds * PROG_LINE + PS_REFCNT) >> 2, 1);
  I32[(state + nrCpuIds * PROG_LINE + PS_ID) >> 2] = id;
}

/** The program's reference count (main thread, tools). */
export function progRefcnt(state: number, nrCpuIds: number): number {
  return Atomics.load(I32, (state + nrCpuIds * PROG_LINE + PS_REFCNT) >> 2);
}

/** bpf_prog_inc_not_zero(): any thread, any context. */
export function bpfProgIncNotZero(state: number): boolean {
  const i = refI(state);
  for (;;) {
    const c = Atomics.load(I32, i);
    if (c <= 0) return false;
    if (Atomics.compareExchange(I32, i, c, c + 1) === c) return true;
  }
}

/**
 * bpf_prog_put(): any thread. Returns the count left; at 0 the coordinator is woken (the runtime
 * frees the program on the main thread after a grace period).
 */
export function bpfProgPut(state: number): number {
  const left = Atomics.sub(I32, refI(state), 1) - 1;
  if (left === 0) ringDoorbell();
  return left;
}

export function progStateBytes(nrCpuIds: number): number { return (nrCpuIds + 1) * PROG_LINE; }

export interface LoadedProgram extends GraphProgram {
  readonly id: number;
  readonly def: DefinedProgram;
  readonly ctx: ProgramContext;
  readonly maps: ProgramMaps;
  readonly tracing: boolean;
  readonly sleepable: boolean;
  /** i32 index of this CPU's line. */
  readonly lineI: number;
  /** i32 index of the aborted word. */
  readonly abortedI: number;
  /** ctx.args given at load time (restored after every testRun / workload). */
  readonly defaultArgs: unknown;
  /** the program's timer callbacks, by index (ctx.timerSetCallback names them) */
  readonly callbackFns: readonly TimerCallback[];
}

const progs: (LoadedProgram | undefined)[] = [];

/** True when the last bpfProgRun() on this thread skipped the program (recursion or aborted). */
export let lastRunSkipped = false;
/** True when the last run was refused because the program is disabled after an abort. */
export let lastRunRefused = false;

/** Has the program been disabled by an abort (on any CPU)? */
export function progDisabled(p: LoadedProgram): boolean { return Atomics.load(I32, p.abortedI) !== 0; }

/** What abort does to the program afterwards: 'disable' refuses every later run (the seed's "prevent the program from executing in the future"); 'continue' does not. */
export type AbortPolicy = 'disable' | 'continue';

export interface RegisterOptions {
  readonly abortPolicy?: AbortPolicy;
  /** the program's object types, name -> id (src/graph/btf_types.ts btfDefineTypes) */
  readonly typeIds?: ReadonlyMap<string, number>;
}

export function registerProgram(id: number, def: DefinedProgram, maps: ProgramMaps, statePtr: number, nrCpuIds: number, seed: number, defaultArgs: unknown, o: RegisterOptions = {}): LoadedProgram {
  const names = Object.keys(def.callbacks ?? {});
  const ctx = new ProgramContext(seed, id, statePtr, names);
  const cbs = (def.callbacks ?? {}) as Readonly<Record<string, (...a: unknown[]) => unknown>>;
  const lessFns = new Map<string, (a: number, b: number) => unknown>();
  for (const n of names) { const fn = cbs[n]!; lessFns.set(n, (a: number, b: number) => fn(ctx, a, b, maps)); }
  const exc = cbs['exception'];
  const p: LoadedProgram = {
    id, def, maps, defaultArgs, ctx,
    callbackFns: names.map((n) => def.callbacks![n]! as TimerCallback),
    tracing: TRACING_PROG_TYPES.has(def.type),
    sleepable: def.sleepable === true,
    lineI: (statePtr + thisCpu * PROG_LINE) >> 2,
    abortedI: (statePtr + nrCpuIds * PROG_LINE) >> 2,
    disableOnAbort: (o.abortPolicy ?? 'disable') === 'disable',
    exceptionCb: exc === undefined ? undefined : (cookie: number) => exc(ctx, cookie, maps),
    typeIds: o.typeIds ?? new Map(),
    lessFns,
    domains: undefined,
  };
  p.ctx.args = defaultArgs;
  progs[id] = p;
  return p;
}

export function unregisterProgram(id: number): void { progs[id] = undefined; }
export function getProgram(id: number): LoadedProgram | undefined { return progs[id]; }

/** Run program `id` once in the current context. Returns its return value (check lastRunSkipped). */
export function bpfProgRun(id: number): number {
  const p = progs[id];
  if (p === undefined) { lastRunSkipped = true; lastRunRefused = false; return 0; }
  return bpfProgRunLoaded(p);
}

export function bpfProgRunLoaded(p: LoadedProgram): number {
  const li = p.lineI;
  if (Atomics.load(I32, p.abortedI) !== 0) {
    I32[li + (PS_REFUSED >> 2)] = I32[li + (PS_REFUSED >> 2)]! + 1;
    lastRunSkipped = true;
    lastRunRefused = true;
    return 0;
  }
  lastRunRefused = false;
  if (p.tracing) {
    if (progActiveInc() !== 1) {
      progActiveDec();
      I32[li + (PS_MISSES >> 2)] = I32[li + (PS_MISSES >> 2)]! + 1;
      lastRunSkipped = true;
      return 0;
    }
  } else {
    const a = I32[li]! + 1;
    I32[li] = a;
    if (a !== 1) {
      I32[li] = a - 1;
      I32[li + (PS_MISSES >> 2)] = I32[li + (PS_MISSES >> 2)]! + 1;
      lastRunSkipped = true;
      return 0;
    }
  }
  if (p.sleepable) rcuReadLockTrace(); else rcuReadLock();
  migrateDisable();
  const depthI = pcpuI + (PC_PROG_DEPTH >> 2);
  I32[depthI] = I32[depthI]! + 1;
  const held = heldLockCount();
  const resHeld = resHeldCount();
  const runI = pcpuI + (PC_RUNNING_PROG >> 2);
  const outer = I32[runI]!;
  if (outer === 0) I32[runI] = p.id + 1;
  const f = frameEnter(p, I32[depthI]!);
  let ret: number;
  try {
    ret = frameFinish(f, p.def.run(p.ctx, p.maps), held, resHeld);
  } catch (e: unknown) {
    ret = frameThrew(f, e, held, resHeld);
  }
  frameLeave(f);
  I32[runI] = outer;
  I32[depthI] = I32[depthI]! - 1;
  migrateEnable();
  if (p.sleepable) rcuReadUnlockTrace(); else rcuReadUnlock();
  if (p.tracing) progActiveDec(); else I32[li] = I32[li]! - 1;
  const ri = (li << 2) + PS_RUNS;
  F64[ri >> 3] = F64[ri >> 3]! + 1;
  I32[li + (PS_LAST_RET >> 2)] = ret | 0;
  lastRunSkipped = false;
  return ret;
}

/**
 * bpf_timer_cb's call of callback_fn (bpf_timer.ts, softirq, RCU read section held): callback
 * `cb` = (program id + 1) << 8 | index, with (map, key, value) pointers.
 */
export function runTimerCallback(cb: number, mapPtr: number, key: number, value: number): void {
  const p = progs[(cb >>> 8) - 1];
  if (p === undefined || Atomics.load(I32, p.abortedI) !== 0) return;
  const fn = p.callbackFns[cb & 0xff];
  if (fn === undefined) return;
  const map = openMap(mapPtr);
  migrateDisable();
  const depthI = pcpuI + (PC_PROG_DEPTH >> 2);
  I32[depthI] = I32[depthI]! + 1;
  const held = heldLockCount();
  const resHeld = resHeldCount();
  const f = frameEnter(p, I32[depthI]!);
  try {
    frameFinish(f, fn(p.ctx, map, key, value, p.maps), held, resHeld);
  } catch (e: unknown) {
    frameThrew(f, e, held, resHeld);
  }
  frameLeave(f);
  I32[depthI] = I32[depthI]! - 1;
  migrateEnable();
}

/** Add measured run time to this CPU's statistics (callers time batches, not single runs). */
export function addRunTime(p: LoadedProgram, ns: number): void {
  const ti = (p.lineI << 2) + PS_RUN_TIME;
  F64[ti >> 3] = F64[ti >> 3]! + ns;
}
