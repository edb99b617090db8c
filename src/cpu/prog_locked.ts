/*
 * prog_locked.ts — "no helper calls while holding a lock" (the verifier's rule for programs inside
 * a bpf_spin_lock / bpf_res_spin_lock critical section), checked at run time.
 *
 * PC_PROG_LOCKED (per CPU, owner-written) is 1 while the innermost program running on this CPU
 * holds a program lock. A program run saves and clears it on entry and restores it on exit, so a
 * program an NMI runs inside another's critical section starts unlocked. Map operations of the
 * program path and the helpers of ProgramContext test it first (one load) and, when set, report
 * the violation through the hook the program layer registers (it aborts the program).
 */
import { I32 } from '../mem/arena.js';
import { pcpuI } from '../mem/this_cpu.js';
import { PC_PROG_LOCKED } from '../mem/layout.js';

export const PROG_LOCKED_I = PC_PROG_LOCKED >> 2;

let hook: (helper: string) => never = (helper: string): never => {
  throw new Error(`${helper}: function calls are not allowed while holding a lock`);
};

/** The program layer's violation report (prog/run_state.ts). */
export function registerHelperUnderLock(fn: (helper: string) => never): void { hook = fn; }

/** True while the innermost running program holds a program lock. */
export function progLocked(): boolean { return I32[pcpuI + PROG_LOCKED_I] !== 0; }

/** A helper called inside a critical section: the program is aborted (never returns). */
export function helperUnderLock(helper: string): never { return hook(helper); }
