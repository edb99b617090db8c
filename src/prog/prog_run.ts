/*
 * prog_run.ts — running a program on this CPU: recursion protection, RCU read section,
 * migrate/preempt disable, statistics and abort (kernel/bpf/trampoline.c, bpf_trace.c).
 *
 * Per-program state in kernel memory (allocated by the main thread at load):
 *   line c (128 B) for every cpu id c:  +0 active (i32)  +4 misses (i32)  +8 runs (f64)
 *                                       +16 runTimeNs (f64)  +24 lastRet (i32)
 *   line nrCpuIds:                      +0 aborted (i32, any CPU sets it; every run reads it)
 * Each CPU's line is written only by that CPU (its own nested contexts included).
 *
 * Guard (reference §1.4): tracing types increment the per-CPU bpf_prog_active and skip the run
 * unless it became 1; other types increment this program's per-CPU `active` and skip unless it
 * became 1. A skipped run bumps `misses` (recursion_misses) and never calls run().
 *
 * Each run takes the next scratch frame (PC_PROG_DEPTH): a program nested in another on this CPU
 * (kprobe, NMI) has its own "stack".
 *
 * Abort: an exception escaping run() is the simulation's "abort": a 'prog_abort' splat, every lock
 * the program took is released (newest first), and the program is disabled on every CPU.
 */
import { I32, F64 } from '../mem/arena.js';
import { thisCpu, pcpuI } from '../mem/this_cpu.js';
import { PC_PROG_DEPTH } from '../mem/layout.js';
import { progActiveInc, progActiveDec, migrateDisable, migrateEnable } from '../cpu/context.js';
import { heldLockCount, unwindHeldLocks } from '../locks/raw_spinlock.js';
import { splat } from '../debug/splat.js';
import { rcuReadLock, rcuReadUnlock, rcuReadLockTrace, rcuReadUnlockTrace } from '../rcu/rcu.js';
import { ProgramContext } from './helpers.js';
import { TRACING_PROG_TYPES, type DefinedProgram, type ProgramMaps } from './program.js';

export const PROG_LINE = 128;
export const PS_ACTIVE = 0;
export const PS_MISSES = 4;
export const PS_RUNS = 8;
export const PS_RUN_TIME = 16;
export const PS_LAST_RET = 24;
export const PS_ABORTED = 0; // in line nrCpuIds

export function progStateBytes(nrCpuIds: number): number { return (nrCpuIds + 1) * PROG_LINE; }

export interface LoadedProgram {
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
}

const progs: (LoadedProgram | undefined)[] = [];

/** True when the last bpfProgRun() on this thread skipped the program (recursion or aborted). */
export let lastRunSkipped = false;

export function registerProgram(id: number, def: DefinedProgram, maps: ProgramMaps, statePtr: number, nrCpuIds: number, seed: number, defaultArgs: unknown): LoadedProgram {
  const p: LoadedProgram = {
    id, def, maps, defaultArgs,
    ctx: new ProgramContext(seed),
    tracing: TRACING_PROG_TYPES.has(def.type),
    sleepable: def.sleepable === true,
    lineI: (statePtr + thisCpu * PROG_LINE) >> 2,
    abortedI: (statePtr + nrCpuIds * PROG_LINE) >> 2,
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
  if (p === undefined || Atomics.load(I32, p.abortedI) !== 0) { lastRunSkipped = true; return 0; }
  return bpfProgRunLoaded(p);
}

export function bpfProgRunLoaded(p: LoadedProgram): number {
  const li = p.lineI;
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
  let ret = 0;
  try {
    ret = p.def.run(p.ctx, p.maps);
  } catch (e: unknown) {
    abort(p, e, held);
    ret = -1;
  }
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

function abort(p: LoadedProgram, e: unknown, heldAtEntry: number): void {
  const released = unwindHeldLocks(heldAtEntry);
  Atomics.store(I32, p.abortedI, 1);
  const msg = e instanceof Error ? e.message : String(e);
  splat('prog_abort', `program '${p.def.name}' aborted: ${msg}; released ${released} lock(s); program disabled`);
}

/** Add measured run time to this CPU's statistics (callers time batches, not single runs). */
export function addRunTime(p: LoadedProgram, ns: number): void {
  const ti = (p.lineI << 2) + PS_RUN_TIME;
  F64[ti >> 3] = F64[ti >> 3]! + ns;
}
