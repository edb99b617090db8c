/*
 * run_state.ts — what a running program holds, and the abort that unwinds it (seed 004's "abort"
 * concept: "stack unwind and calling of destructors for kptr-s, refcnt decrements", which the
 * kernel never built; its verifier proves the rules statically instead).
 *
 * One RunFrame per nesting depth on this CPU thread (a program an NMI runs inside another has its
 * own): the program locks it took (bpf_spin_lock, bpf_res_spin_lock, in order), its owning
 * references (objects from bpf_obj_new, list pop, rbtree remove, refcount_acquire), its non-owning
 * references (valid until its bpf_spin_lock is released), whether a `less` callback is running,
 * and a recorded rule violation or bpf_throw. Only this thread reads or writes its frames (the
 * verifier's state is per program run; nothing here is shared memory).
 *
 * Rules checked at run time (each a 'prog_abort' splat naming the rule and the program, then an
 * abort): one bpf_spin_lock at a time; no helper calls while holding a program lock except the
 * graph kfuncs and the lock kfuncs; every lock released and every owning reference added or
 * dropped before the program returns; res locks released in LIFO order; graph kfuncs only with the
 * root's own lock held; non-owning references only inside the critical section; no lock, drop or
 * remove inside `less`; bpf_spin_lock not in tracing programs.
 *
 * A violation is recorded in the frame before the exception that reports it is thrown, so a
 * program that catches it is aborted anyway when it returns.
 *
 * Unwinding (abortRun): program locks released newest first (restoring irq flags), then any other
 * lock still held since the run began (raw table, res table); owning references dropped (the node
 * this run's rbtree add had claimed when its `less` threw is unclaimed first); in NMI, drops that need an object's
 * lock are deferred to irq_work (bpf_obj.ts). The caller (prog_run.ts) then leaves the RCU read
 * section and restores the context counters, as for every run. Return value: bpf_throw's cookie
 * (or what callbacks.exception makes of it); -1 for other aborts. abortPolicy 'disable' (default)
 * refuses every later run of the program; 'continue' lets it run again.
 */
import { I32 } from '../mem/arena.js';
import { pcpuI } from '../mem/this_cpu.js';
import { PC_PROG_DEPTH, PC_CUR_SITE } from '../mem/layout.js';
import { PROG_LOCKED_I, registerHelperUnderLock } from '../cpu/prog_locked.js';
import { inNmi } from '../cpu/context.js';
import { rawSpinUnlockIrqrestore, unwindHeldLocks } from '../locks/raw_spinlock.js';
import { resSpinUnlock, resSpinUnlockIrqrestore, resUnwindHeld } from '../locks/res_spinlock.js';
import { splat } from '../debug/splat.js';
import { objType, bpfObjDrop } from '../graph/bpf_obj.js';
import { RBN_OWNER, GRAPH_OWNER_POISON } from '../graph/graph_layout.js';

export const LK_SPIN = 1;
export const LK_RES = 2;
export const LK_RES_IRQ = 3;

/** Per-CPU-line words of the program state (prog_run.ts PROG_LINE) this module adds. */
export const PS_EXCEPTIONS = 32;    // runs that ended in bpf_throw
export const PS_VIOLATIONS = 36;    // runs aborted for a broken rule
export const PS_UNWOUND_LOCKS = 40; // locks released by unwinding
export const PS_UNWOUND_OBJS = 44;  // owning references dropped by unwinding
export const PS_UNWOUND_DEFER = 48; // of those, drops deferred to irq_work (NMI)

/** The program as this module needs it (prog_run.ts LoadedProgram). */
export interface RunProgram {
  readonly def: { readonly name: string; readonly type: string };
  readonly lineI: number;
  readonly abortedI: number;
  readonly disableOnAbort: boolean;
  readonly exceptionCb: ((cookie: number) => unknown) | undefined;
}

export class RunFrame {
  prog: RunProgram | undefined = undefined;
  /** program locks in acquisition order, and their kinds (LK_*) */
  readonly locks: number[] = [];
  readonly lockKinds: number[] = [];
  /** the held bpf_spin_lock, 0 none */
  spin = 0;
  readonly owned: number[] = [];
  readonly nonOwning: number[] = [];
  inLess = 0;
  /** the node field an rbtree add of this run has claimed (owner POISON) and not yet linked, 0 none */
  adding = 0;
  violation: string | null = null;
  thrown = false;
  cookie = 0;
  /** PC_PROG_LOCKED of the context this run interrupted */
  savedLocked = 0;
}

const MAX_DEPTH = 16;
const frames: RunFrame[] = Array.from({ length: MAX_DEPTH + 1 }, () => new RunFrame());

/** The frame of the innermost program running on this CPU (throws outside any run). */
export function curFrame(): RunFrame {
  const d = I32[pcpuI + (PC_PROG_DEPTH >> 2)]!;
  if (!(d >= 1)) throw new Error('bpfsim: a program helper was called outside a program run');
  return frames[Math.min(d, MAX_DEPTH)]!;
}

/** Enter a run at depth `d` (already incremented): a clean frame, program locks off. */
export function frameEnter(p: RunProgram, d: number): RunFrame {
  const f = frames[Math.min(d, MAX_DEPTH)]!;
  f.prog = p;
  // a length store is a runtime call in V8 (~50 ns each, four per run): only when non-empty
  if (f.locks.length !== 0) f.locks.length = 0;
  if (f.lockKinds.length !== 0) f.lockKinds.length = 0;
  f.spin = 0;
  if (f.owned.length !== 0) f.owned.length = 0;
  if (f.nonOwning.length !== 0) f.nonOwning.length = 0;
  f.inLess = 0;
  f.adding = 0;
  f.violation = null;
  f.thrown = false;
  f.cookie = 0;
  f.savedLocked = I32[pcpuI + PROG_LOCKED_I]!;
  I32[pcpuI + PROG_LOCKED_I] = 0;
  return f;
}

/** Leave the run: the interrupted context's lock state comes back. */
export function frameLeave(f: RunFrame): void {
  I32[pcpuI + PROG_LOCKED_I] = f.savedLocked;
  f.prog = undefined;
}

/** The exception that ends a program run early (a broken rule, or bpf_throw). */
export class BpfAbort extends Error {
  constructor(message: string) { super(message); this.name = 'BpfAbort'; }
}

/** Record a broken rule and end the run (the program is aborted when the run ends). */
export function ruleViolation(rule: string): never {
  const f = curFrame();
  if (f.violation === null) f.violation = rule;
  throw new BpfAbort(rule);
}

/** bpf_throw(cookie). */
export function bpfThrow(cookie: number): never {
  const f = curFrame();
  if (f.violation === null && !f.thrown) { f.thrown = true; f.cookie = cookie | 0; }
  throw new BpfAbort(`bpf_throw(${cookie})`);
}

registerHelperUnderLock((helper: string): never => ruleViolation(`${helper}: function calls are not allowed while holding a lock`));

/** Program locks changed: keep PC_PROG_LOCKED in step with the frame. */
export function syncLocked(f: RunFrame): void { I32[pcpuI + PROG_LOCKED_I] = f.locks.length > 0 ? 1 : 0; }

/** Remove one occurrence of `v` from `a` (small arrays: owned / non-owning references). */
export function removeOne(a: number[], v: number): boolean {
  const i = a.lastIndexOf(v);
  if (i < 0) return false;
  a[i] = a[a.length - 1]!;
  a.pop();
  return true;
}

function describeOwned(f: RunFrame): string {
  const names = f.owned.slice(0, 4).map((p) => `${objType(p)?.name ?? '?'} 0x${p.toString(16)}`);
  return names.join(', ') + (f.owned.length > 4 ? ', …' : '');
}

/**
 * End of a run that returned `r`: the recorded violation or throw (even if the program caught
 * its exception), a non-number, or what it still holds make it an abort. Returns the run's value.
 */
export function frameFinish(f: RunFrame, r: unknown, heldAtEntry: number, resAtEntry: number): number {
  if (f.violation !== null || f.thrown) return abortRun(f, null, heldAtEntry, resAtEntry);
  if (typeof r !== 'number') return abortRun(f, `returned ${describeThrown(r)} (${typeof r}), not a number`, heldAtEntry, resAtEntry);
  if (f.locks.length > 0 || f.owned.length > 0) {
    const what: string[] = [];
    if (f.spin !== 0) what.push('bpf_spin_lock held at program exit (BPF_EXIT inside a bpf_spin_lock-ed region)');
    if (f.lockKinds.some((k) => k !== LK_SPIN)) what.push('bpf_res_spin_lock held at program exit');
    if (f.owned.length > 0) what.push(`unreleased reference: ${f.owned.length} owning reference(s) neither added nor dropped (${describeOwned(f)})`);
    f.violation = what.join('; ');
    return abortRun(f, null, heldAtEntry, resAtEntry);
  }
  return r;
}

/** A run that threw `e`: an abort (a recorded violation or throw explains it best). */
export function frameThrew(f: RunFrame, e: unknown, heldAtEntry: number, resAtEntry: number): number {
  return abortRun(f, f.violation !== null || f.thrown ? null : `threw ${describeThrown(e)}`, heldAtEntry, resAtEntry);
}

/**
 * The abort: unwind, account, report, and apply the program's abort policy. Total: never throws.
 * `why` null: the frame's violation or throw is the reason.
 */
function abortRun(f: RunFrame, why: string | null, heldAtEntry: number, resAtEntry: number): number {
  const p = f.prog!;
  const li = p.lineI;
  // the splat names the window the program was at, not one the unwinding passes
  const site = I32[pcpuI + (PC_CUR_SITE >> 2)]!;
  let locks = 0, objs = 0, deferred = 0;
  try {
    // program locks, newest first
    for (let i = f.locks.length - 1; i >= 0; i--) {
      const lk = f.locks[i]!, kind = f.lockKinds[i]!;
      if (kind === LK_SPIN) rawSpinUnlockIrqrestore(lk);
      else if (kind === LK_RES_IRQ) resSpinUnlockIrqrestore(lk);
      else resSpinUnlock(lk);
      locks++;
    }
    f.locks.length = 0;
    f.lockKinds.length = 0;
    f.spin = 0;
    syncLocked(f);
    // anything else taken since the run began (kernel code the exception cut short, test locks)
    locks += unwindHeldLocks(heldAtEntry);
    locks += resUnwindHeld(resAtEntry);
  } catch { /* unlocking reports its own splats */ }
  try {
    // the node this run's rbtree add claimed when its `less` threw: unclaim it (only this run's
    // claim: another CPU may be adding the same refcounted node to another tree right now)
    if (f.adding !== 0) Atomics.compareExchange(I32, (f.adding + RBN_OWNER) >> 2, GRAPH_OWNER_POISON, 0);
    f.adding = 0;
    const nmi = inNmi();
    while (f.owned.length > 0) {
      const o = f.owned.pop()!;
      const t = objType(o);
      if (t === undefined) continue;
      if (nmi && t.roots.length > 0) deferred++;
      bpfObjDrop(o, t);
      objs++;
    }
  } catch { /* dropping reports its own splats */ }
  f.nonOwning.length = 0;
  f.inLess = 0;
  I32[li + (PS_UNWOUND_LOCKS >> 2)] = I32[li + (PS_UNWOUND_LOCKS >> 2)]! + locks;
  I32[li + (PS_UNWOUND_OBJS >> 2)] = I32[li + (PS_UNWOUND_OBJS >> 2)]! + objs;
  I32[li + (PS_UNWOUND_DEFER >> 2)] = I32[li + (PS_UNWOUND_DEFER >> 2)]! + deferred;
  I32[pcpuI + (PC_CUR_SITE >> 2)] = site;
  const unwound = `released ${locks} lock(s), dropped ${objs} object reference(s)${deferred > 0 ? ` (${deferred} deferred to irq_work)` : ''}`;
  const policy = p.disableOnAbort ? 'disabled' : 'continues';
  if (p.disableOnAbort) Atomics.store(I32, p.abortedI, 1);
  if (f.thrown && f.violation === null) {
    I32[li + (PS_EXCEPTIONS >> 2)] = I32[li + (PS_EXCEPTIONS >> 2)]! + 1;
    let ret = f.cookie;
    if (p.exceptionCb !== undefined) {
      try {
        const r = p.exceptionCb(f.cookie);
        if (typeof r === 'number') ret = r | 0;
        else reportAbort(p, `its exception callback returned ${describeThrown(r)}, not a number`, unwound, policy);
      } catch (e: unknown) {
        reportAbort(p, `its exception callback threw ${describeThrown(e)} (an exception callback cannot throw)`, unwound, policy);
      }
    }
    return ret;
  }
  if (f.violation !== null) I32[li + (PS_VIOLATIONS >> 2)] = I32[li + (PS_VIOLATIONS >> 2)]! + 1;
  reportAbort(p, why ?? f.violation!, unwound, policy);
  return -1;
}

function reportAbort(p: RunProgram, why: string, unwound: string, policy: string): void {
  try {
    // what was released first: a splat message has a bounded length, the reason may be long
    splat('prog_abort', `program '${p.def.name}' aborted (${unwound}; ${policy}): ${why}`);
  } catch { /* no arena: nothing left to report into */ }
}

/**
 * A description of any thrown or returned value that never throws itself: String(e) throws for
 * Object.create(null), Symbols convert only explicitly, a getter or toString may throw.
 */
export function describeThrown(e: unknown): string {
  try {
    if (e instanceof Error) return `${e.name}: ${e.message}`;
    if (typeof e === 'symbol') return e.toString();
    if (typeof e === 'bigint') return `${e}n`;
    if (typeof e === 'object' && e !== null) {
      try { return `[object ${Object.prototype.toString.call(e).slice(8, -1)}] ${JSON.stringify(e)?.slice(0, 120) ?? ''}`; } catch { return Object.prototype.toString.call(e); }
    }
    return String(e);
  } catch {
    return '<a value that cannot be described>';
  }
}

/** Per-program abort statistics summed over CPU lines (main thread). */
export function abortStats(state: number, nrCpuIds: number, line: number): { exceptions: number; violations: number; unwoundLocks: number; unwoundObjects: number; unwoundDeferred: number } {
  let exceptions = 0, violations = 0, unwoundLocks = 0, unwoundObjects = 0, unwoundDeferred = 0;
  for (let c = 0; c < nrCpuIds; c++) {
    const i = (state + c * line) >> 2;
    exceptions += I32[i + (PS_EXCEPTIONS >> 2)]!;
    violations += I32[i + (PS_VIOLATIONS >> 2)]!;
    unwoundLocks += I32[i + (PS_UNWOUND_LOCKS >> 2)]!;
    unwoundObjects += I32[i + (PS_UNWOUND_OBJS >> 2)]!;
    unwoundDeferred += I32[i + (PS_UNWOUND_DEFER >> 2)]!;
  }
  return { exceptions, violations, unwoundLocks, unwoundObjects, unwoundDeferred };
}
