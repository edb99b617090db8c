/*
 * read_side.ts — the CPU side of RCU (kernel/rcu/tree_plugin.h, tree.c's rcu_qs / rcu_note_context_switch
 * / rcu_eqs_enter, and tasks-trace's rcu_read_lock_trace): what every CPU thread calls.
 *
 * Per-CPU words (line 2 of the per-CPU block, owner writes, coordinator reads; see state.ts):
 *   PC_RCU_NESTING        rcu_read_lock depth. Only this CPU (and its own nested interrupt
 *                         handlers, which run to completion inside it) writes it; the coordinator
 *                         reads it, so the outermost transitions (0 -> 1, 1 -> 0) are Atomics.store;
 *                         inner ones (depth >= 1 either side) are plain.
 *   PC_RCU_READ_START     f64: coarse time the outermost section began (stall messages).
 *   PC_RCU_QS_SEQ         quiescent-state counter (Atomics.add): advanced only at a point where
 *                         this CPU is outside every read section.
 *   PC_RCU_IDLE           1 while idle (extended quiescent state), Atomics.store.
 *   PC_RCU_TRACE_NESTING  rcu_read_lock_trace depth (Atomics.store: the coordinator observes it).
 *   PC_RCU_LAST_GEN, PC_RCU_QS_NEED, PC_RCU_TRACE_SEQ (state.ts).
 *
 * Invariant: PC_RCU_QS_SEQ changes only while PC_RCU_NESTING == 0. Hence a change observed by the
 * coordinator after it snapshotted the counter at grace-period start proves that every read
 * section this CPU had at that moment has ended. The same holds for PC_RCU_IDLE == 1.
 *
 * Reporting (cheap in the common case):
 *   rcuQuiescentState()  the CPU loop, between work items: one plain load of RCU_GP_GEN and a
 *                        compare; only when a new grace period started since the last report does
 *                        it advance the counter and ring the doorbell (once per GP per CPU).
 *   stepping aside       (gp.ts's boost, for CPUs oversubscribed on the machine's cores) when the
 *                        coordinator issued a boost round (RCU_BOOST_SEQ, with an RCU_GP_GEN bump
 *                        so the loop looks), rcuQuiescentState, having reported, blocks this worker
 *                        in Atomics.wait on RCU_GP_DONE until that grace period ends or
 *                        STEP_ASIDE_MAX_MS pass, marked idle meanwhile: its core goes to a worker
 *                        the OS descheduled inside a read section (the grace period waits for that
 *                        one). The kernel boosts the preempted reader's priority (RCU_BOOST); a
 *                        worker cannot raise its thread's priority, so the others yield. Only a
 *                        worker thread, in task context, outside every read section (tasks-trace
 *                        too) with no lock held and irqs on, and never under a deterministic
 *                        schedule (the turn is the only core there); once per round, and not
 *                        again before it ran STEP_ASIDE_MIN_RUN_MS (back-to-back GPs).
 *   rcuIdleEnter()       idle is quiescent: set the flag, report if a GP waits.
 *   rcuExpQs()           window hook for PEND_RCU_EXP (expedited GP, or a normal GP forcing a
 *                        report): report now if outside read sections, else owe the report
 *                        (PC_RCU_QS_NEED) and pay it at the outermost rcuReadUnlock.
 *
 * Contexts: rcuReadLock/Unlock(Trace) from any context on any CPU thread, NMI included; they nest
 * across contexts on one CPU (an NMI program inside a syscall's section counts as nested).
 * rcuQuiescentState/rcuIdleEnter/rcuIdleExit: the CPU loop, task context, outside read sections
 * (rcuQuiescentState may block for up to STEP_ASIDE_MAX_MS, see above).
 *
 * Differences from the kernel: preempt-/irq-disabled regions are not read sections here (the
 * consolidated RCU flavours of v4.20+ treat them as such); code that needs protection takes
 * rcuReadLock explicitly, as BPF's program runner and syscall path do.
 */
import { isMainThread } from 'node:worker_threads';
import { I32, F64, nrCpus, nowMs } from '../mem/arena.js';
import { pcpu, pcpuI, thisCpu } from '../mem/this_cpu.js';
import {
  PC_PENDING, PEND_RCU_EXP, PC_RCU_NESTING, PC_RCU_QS_SEQ, PC_RCU_IDLE, PC_RCU_TRACE_NESTING,
  PC_RCU_EXP_SEQ, PC_RCU_READ_START, PC_HELD_COUNT,
} from '../mem/layout.js';
import { inInterrupt, irqsDisabled, rawHeld, currentContext, CTX_TASK } from '../cpu/context.js';
import { setIrqHooks } from '../cpu/window.js';
import { schedWaitWord, schedEnabled } from '../cpu/sched.js';
import { splat } from '../debug/splat.js';
import { EDEADLK, ETIMEDOUT } from '../errno.js';
import {
  RCU_GP_GEN, RCU_TRACE_ACTIVE, RCU_EXP_SEQ, RCU_CLOCK_MS, RCU_GP_DONE, RCU_GP_REQ, RCU_GP_STARTED,
  RCU_BOOST_GP, RCU_BOOST_SEQ, RCU_STEP_ASIDES, PC_RCU_LAST_GEN, PC_RCU_QS_NEED, PC_RCU_TRACE_SEQ, PC_RCU_STAT_EXP_QS,
  PC_RCU_STAT_DEFERRED,
} from './state.js';
import { ringDoorbell } from '../cpu/doorbell.js';

const PEND_I = PC_PENDING >> 2;
const NEST_I = PC_RCU_NESTING >> 2;
const QS_I = PC_RCU_QS_SEQ >> 2;
const IDLE_I = PC_RCU_IDLE >> 2;
const TR_I = PC_RCU_TRACE_NESTING >> 2;
const EXPACK_I = PC_RCU_EXP_SEQ >> 2;
const LAST_I = PC_RCU_LAST_GEN >> 2;
const NEED_I = PC_RCU_QS_NEED >> 2;
const TRSEQ_I = PC_RCU_TRACE_SEQ >> 2;
const STAT_EXP_I = PC_RCU_STAT_EXP_QS >> 2;
const STAT_DEF_I = PC_RCU_STAT_DEFERRED >> 2;
const GEN_I = RCU_GP_GEN >> 2;
const CLOCK_F = RCU_CLOCK_MS >> 3;
const BOOST_GP_I = RCU_BOOST_GP >> 2;
const BOOST_SEQ_I = RCU_BOOST_SEQ >> 2;
const DONE_I = RCU_GP_DONE >> 2;
const HELD_I = PC_HELD_COUNT >> 2;

/**
 * Longest a worker steps aside per boost round. A descheduled reader needs a core for the rest of
 * its program run (tens of µs), the coordinator one wake; the bound only caps what a round costs
 * when the reader is not descheduled but running a long section.
 */
export const STEP_ASIDE_MAX_MS = 1;
/**
 * Least time a worker runs between two step-asides. Back-to-back expedited grace periods would
 * otherwise keep every CPU stepping aside (each boosted GP leaves them idle, the next ones end at
 * once, the next boost finds them again after a program or two: 2 busy CPUs on 2 cores ran a fifth
 * of their programs). Short enough not to bind when grace periods are milliseconds apart.
 */
export const STEP_ASIDE_MIN_RUN_MS = 0.5;
/** RCU_BOOST_SEQ this thread last acted on (thread-local: each worker is one CPU). */
let boostSeen = 0;
/** performance.now() when this thread last stopped stepping aside. */
let steppedUntil = -Infinity;

// ---------------------------------------------------------------------------------------------
// normal flavour

/** rcu_read_lock(). Any context. */
export function rcuReadLock(): void {
  const i = pcpuI + NEST_I;
  const n = I32[i]!;
  if (n === 0) {
    // Outermost entry: a seq-cst store, so the coordinator can never read nesting 0 while this
    // CPU already reads RCU-protected data (gp.ts counts nesting 0 as quiescent). This is a store
    // followed by loads (Dekker): it holds because the section's link loads are Atomics.load too,
    // so both sides are in the one seq-cst order (docs/INTERNALS.md, "Memory-ordering contract").
    Atomics.store(I32, i, 1);
    F64[(pcpu + PC_RCU_READ_START) >> 3] = F64[CLOCK_F]!;
  } else {
    I32[i] = n + 1;
  }
}

/**
 * rcu_read_unlock(). The outermost unlock pays a quiescent-state report owed to an expedited GP.
 * The outermost store of 0 is an Atomics.store (a release): the coordinator ends the grace period
 * when its Atomics.load reads that 0, and only this synchronises-with makes every load of this
 * section happen before the free that follows (a plain store would not, in JavaScript's memory
 * model). Inner unlocks store a non-zero depth only this CPU reads for anything but "is it 0".
 */
export function rcuReadUnlock(): void {
  const i = pcpuI + NEST_I;
  const n = I32[i]! - 1;
  if (n > 0) { I32[i] = n; return; }
  if (n === 0) {
    Atomics.store(I32, i, 0);
    if (I32[pcpuI + NEED_I] !== 0) { I32[pcpuI + NEED_I] = 0; forcedReport(); }
  } else {
    unbalanced(i, 'rcu_read_unlock');
  }
}

/** rcu_read_lock_held(): this CPU is inside a (normal) read section. */
export function rcuReadLockHeld(): boolean { return I32[pcpuI + NEST_I]! > 0; }
export function rcuReadNesting(): number { return I32[pcpuI + NEST_I]!; }

function unbalanced(i: number, what: string): void {
  I32[i] = 0;
  splat('warn', `${what}() without a matching lock on cpu ${thisCpu}`);
}

// ---------------------------------------------------------------------------------------------
// tasks-trace flavour (sleepable programs)

/** rcu_read_lock_trace(). */
export function rcuReadLockTrace(): void {
  const i = pcpuI + TR_I;
  Atomics.store(I32, i, I32[i]! + 1);
}

/** rcu_read_unlock_trace(): the outermost unlock advances PC_RCU_TRACE_SEQ. */
export function rcuReadUnlockTrace(): void {
  const i = pcpuI + TR_I;
  const n = I32[i]! - 1;
  if (n < 0) { unbalanced(i, 'rcu_read_unlock_trace'); return; }
  Atomics.store(I32, i, n);
  if (n === 0) {
    Atomics.add(I32, pcpuI + TRSEQ_I, 1);
    if (Atomics.load(I32, RCU_TRACE_ACTIVE >> 2) !== 0) ringDoorbell();
  }
}

export function rcuReadLockTraceHeld(): boolean { return I32[pcpuI + TR_I]! > 0; }

// ---------------------------------------------------------------------------------------------
// quiescent states

/**
 * Report a quiescent state if a grace period started since this CPU's last report. The CPU loop
 * calls it between work items; a no-op (one load) when nothing waits or inside a read section.
 */
export function rcuQuiescentState(): void {
  // Plain load on purpose (Atomics.load is a builtin call in Node 20, ~8 ns more): a stale value
  // only delays the report to the next call; the report itself is ordered by Atomics.add.
  if (I32[GEN_I] !== I32[pcpuI + LAST_I] && I32[pcpuI + NEST_I] === 0) {
    const g = Atomics.load(I32, GEN_I);
    I32[pcpuI + LAST_I] = g;
    Atomics.add(I32, pcpuI + QS_I, 1);
    ringDoorbell();
    // the coordinator stores RCU_BOOST_SEQ before it bumps RCU_GP_GEN: the load above orders it
    if (Atomics.load(I32, BOOST_SEQ_I) !== boostSeen) stepAside();
  }
}

/**
 * A boost round asks CPUs that have reported to give their core to the readers the grace period
 * still waits for (see the header). Block until that grace period ends (RCU_GP_DONE, notified by
 * the coordinator) or STEP_ASIDE_MAX_MS pass, as an extended quiescent state.
 */
function stepAside(): void {
  boostSeen = Atomics.load(I32, BOOST_SEQ_I);
  const gp = Atomics.load(I32, BOOST_GP_I);
  if (gp === 0 || isMainThread || schedEnabled()) return;
  if (I32[pcpuI + TR_I] !== 0 || I32[pcpuI + HELD_I] !== 0 || currentContext() !== CTX_TASK || irqsDisabled()) return;
  let d = Atomics.load(I32, DONE_I);
  if (d - gp >= 0) return;
  const t0 = performance.now();
  if (t0 - steppedUntil < STEP_ASIDE_MIN_RUN_MS) return;
  const wasIdle = Atomics.load(I32, pcpuI + IDLE_I) !== 0;
  Atomics.store(I32, pcpuI + IDLE_I, 1);
  Atomics.add(I32, RCU_STEP_ASIDES >> 2, 1);
  const end = t0 + STEP_ASIDE_MAX_MS;
  for (;;) {
    const left = end - performance.now();
    if (left <= 0) break;
    Atomics.wait(I32, DONE_I, d, left);
    d = Atomics.load(I32, DONE_I);
    if (d - gp >= 0) break;
  }
  if (!wasIdle) Atomics.store(I32, pcpuI + IDLE_I, 0);
  steppedUntil = performance.now();
}

/**
 * An unconditional report (expedited / forced): caller checked nesting == 0. It leaves
 * PC_RCU_LAST_GEN behind while a boost round is new to this thread (the generation loaded first:
 * a round's RCU_BOOST_SEQ is stored before its RCU_GP_GEN bump), so the CPU loop's next
 * rcuQuiescentState still takes its slow path and steps aside: this report may come from a
 * window anywhere, where blocking is not allowed.
 */
function forcedReport(): void {
  const g = Atomics.load(I32, GEN_I);
  if (Atomics.load(I32, BOOST_SEQ_I) === boostSeen) I32[pcpuI + LAST_I] = g;
  I32[pcpuI + EXPACK_I] = Atomics.load(I32, RCU_EXP_SEQ >> 2);
  I32[pcpuI + STAT_EXP_I] = I32[pcpuI + STAT_EXP_I]! + 1;
  Atomics.add(I32, pcpuI + QS_I, 1);
  ringDoorbell();
}

/** Window hook for PEND_RCU_EXP (installed by rcuThreadInit). */
export function rcuExpQs(): void {
  Atomics.and(I32, pcpuI + PEND_I, ~PEND_RCU_EXP);
  if (I32[pcpuI + NEST_I] === 0) forcedReport();
  else if (I32[pcpuI + NEED_I] === 0) {
    I32[pcpuI + NEED_I] = 1;
    I32[pcpuI + STAT_DEF_I] = I32[pcpuI + STAT_DEF_I]! + 1;
  }
}

/** Enter idle (an extended quiescent state). CPU loop, outside read sections. */
export function rcuIdleEnter(): void {
  if (I32[pcpuI + NEST_I] !== 0) {
    splat('warn', `cpu ${thisCpu} entered idle inside an RCU read-side critical section (nesting ${I32[pcpuI + NEST_I]})`);
    return;
  }
  Atomics.store(I32, pcpuI + IDLE_I, 1);
  rcuQuiescentState();
}

/** Leave idle: from now on this CPU may enter read sections. */
export function rcuIdleExit(): void {
  Atomics.store(I32, pcpuI + IDLE_I, 0);
}

export function rcuIsIdle(): boolean { return Atomics.load(I32, pcpuI + IDLE_I) !== 0; }

// ---------------------------------------------------------------------------------------------
// synchronize_rcu() from a CPU worker (sleepable task context)

/**
 * Block this CPU worker until a normal grace period that started after the call has ended.
 * Worker threads only (the main thread runs the coordinator: use synchronizeRcu(), a promise).
 * The CPU is an extended quiescent state while it waits. Returns 0, -EDEADLK (called inside a
 * read section: it could never end) or -ETIMEDOUT (bounded wait, splat).
 */
export function synchronizeRcuWait(timeoutMs = 10_000): number {
  if (thisCpu === nrCpus) throw new Error('synchronizeRcuWait: the main thread must await synchronizeRcu()');
  if (I32[pcpuI + NEST_I] !== 0) {
    splat('warn', 'Illegal synchronize_rcu() in RCU read-side critical section');
    return -EDEADLK;
  }
  if (inInterrupt() || irqsDisabled() || rawHeld() > 0) {
    splat('sleeping_in_atomic', 'BUG: sleeping function called from invalid context: synchronize_rcu');
  }
  const target = Atomics.load(I32, RCU_GP_STARTED >> 2) + 1;
  Atomics.add(I32, RCU_GP_REQ >> 2, 1);
  const wasIdle = Atomics.load(I32, pcpuI + IDLE_I) !== 0;
  Atomics.store(I32, pcpuI + IDLE_I, 1);
  forcedReport(); // also rings the doorbell for the request
  const deadline = nowMs() + timeoutMs;
  const doneI = RCU_GP_DONE >> 2;
  let ret = 0;
  for (;;) {
    const d = Atomics.load(I32, doneI);
    if (d - target >= 0) break;
    const left = deadline - nowMs();
    if (left <= 0) {
      splat('warn', `synchronize_rcu() on cpu ${thisCpu} timed out after ${timeoutMs} ms (waiting for grace period ${target}, ${d} done)`);
      ret = -ETIMEDOUT;
      break;
    }
    schedWaitWord(doneI, d, Math.min(left, 50));
  }
  if (!wasIdle) Atomics.store(I32, pcpuI + IDLE_I, 0);
  return ret;
}

// ---------------------------------------------------------------------------------------------
// boot

/** Per-thread init (bootThread): reset this CPU's read-side words and install the window hook. */
export function rcuThreadInit(): void {
  I32[pcpuI + NEST_I] = 0;
  Atomics.store(I32, pcpuI + TR_I, 0);
  I32[pcpuI + NEED_I] = 0;
  I32[pcpuI + LAST_I] = Atomics.load(I32, GEN_I);
  setIrqHooks({ rcuExpQs });
}
