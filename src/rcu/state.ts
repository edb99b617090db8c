/*
 * state.ts — where RCU keeps its words in kernel memory (kernel/rcu/tree.h's rcu_state and
 * rcu_data, reduced to what the simulation needs). The coordinator's doorbell is src/cpu/doorbell.ts.
 *
 * Global region RCU_STATE_BASE (layout.ts, 2048 bytes); all of it RCU's (irq_work has a region of
 * its own since 2026-12: IRQW_STATE_BASE):
 *   line 0 (read-mostly, every CPU loads RCU_GP_GEN between work items)
 *     +0   RCU_GP_GEN        bumped (coordinator) whenever a grace period of any flavour starts,
 *                            and at every boost round (so the CPU loop looks at RCU_BOOST_SEQ)
 *     +4   RCU_TRACE_ACTIVE  1 while a tasks-trace grace period waits (coordinator writes)
 *     +8   RCU_EXP_SEQ       expedited requests issued (coordinator writes)
 *     +12  RCU_BOOST_GP      the normal grace period a boost round is for (coordinator writes;
 *                            0: none): CPUs that pass rcuQuiescentState step aside until it ends
 *     +16  RCU_BOOST_SEQ     boost rounds issued (coordinator writes, before it bumps RCU_GP_GEN)
 *   line 1
 *     +128 RCU_CLOCK_MS      f64 coarse clock (nowMs()) stored by every coordinator poll; read
 *                            sections stamp PC_RCU_READ_START from it (46 ns performance.now()
 *                            per read section would cost more than the lookups it protects)
 *   line 2 (worker-side synchronize_rcu)
 *     +256 RCU_GP_DONE       normal grace periods completed (coordinator stores + notifies)
 *     +260 RCU_GP_REQ        a CPU wants a grace period (Atomics.add, then the doorbell)
 *     +264 RCU_GP_STARTED    normal grace periods started (coordinator stores)
 *     +268 RCU_STEP_ASIDES   times a CPU stepped aside for a boost round (CPUs, Atomics.add; here,
 *                            not in line 0, which every CPU loads between work items)
 *
 * Per-CPU words (line 2 of each per-CPU block; only the owner CPU writes them, the coordinator
 * reads them): PC_RCU_NESTING, PC_RCU_QS_SEQ, PC_RCU_IDLE, PC_RCU_TRACE_NESTING, PC_RCU_EXP_SEQ,
 * PC_RCU_READ_START from layout.ts, and these, in the free part of that line:
 *     +288 PC_RCU_LAST_GEN     RCU_GP_GEN value this CPU last reported a quiescent state for
 *     +292 PC_RCU_QS_NEED      1: an expedited / forced report is owed at the outermost unlock
 *     +296 PC_RCU_TRACE_SEQ    bumped at every outermost rcuReadUnlockTrace (Atomics)
 *     +300 PC_RCU_STAT_EXP_QS  expedited / forced reports made by this CPU
 *     +304 PC_RCU_STAT_DEFERRED reports deferred to the outermost rcuReadUnlock
 * (Exception: rcuGlobalInit, on the main thread before any worker exists, marks every program CPU
 * idle.)
 */
import { RCU_STATE_BASE } from '../mem/layout.js';

export const RCU_GP_GEN = RCU_STATE_BASE + 0;
export const RCU_TRACE_ACTIVE = RCU_STATE_BASE + 4;
export const RCU_EXP_SEQ = RCU_STATE_BASE + 8;
export const RCU_BOOST_GP = RCU_STATE_BASE + 12;
export const RCU_BOOST_SEQ = RCU_STATE_BASE + 16;
export const RCU_CLOCK_MS = RCU_STATE_BASE + 128;
export const RCU_GP_DONE = RCU_STATE_BASE + 256;
export const RCU_GP_REQ = RCU_STATE_BASE + 260;
export const RCU_GP_STARTED = RCU_STATE_BASE + 264;
export const RCU_STEP_ASIDES = RCU_STATE_BASE + 268;

export const PC_RCU_LAST_GEN = 288;
export const PC_RCU_QS_NEED = 292;
export const PC_RCU_TRACE_SEQ = 296;
export const PC_RCU_STAT_EXP_QS = 300;
export const PC_RCU_STAT_DEFERRED = 304;

