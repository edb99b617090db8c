/*
 * rcu.ts — RCU for bpfsim, the one import for users (kernel/rcu/: tree.c, tree_exp.h, tasks.h).
 *
 *   read side (any CPU thread, any context)   read_side.ts   rcuReadLock/Unlock, ...Trace
 *   quiescent states (CPU loop)               read_side.ts   rcuQuiescentState, rcuIdleEnter/Exit
 *   call_rcu (any thread, any context)        callbacks.ts   callRcuHead, callRcu, ...TasksTrace
 *   grace periods (main thread: coordinator)  gp.ts          rcuPoll, synchronizeRcu, rcuBarrier
 *   kernel-memory words                       state.ts       RCU_STATE_BASE region, PC_RCU_* extras
 *
 * How the coordinator uses it: add `rcuService` to the coordinator; it polls on every doorbell
 * (CPUs ring after a quiescent-state report that a GP waits for, after queueing the first
 * callback on an empty list, after an expedited report) and after the delay it returns.
 * Boot: every thread calls rcuThreadInit() (bootThread); the main thread calls rcuGlobalInit()
 * once per arena, before workers start. CPU loop: rcuIdleExit() before work, rcuQuiescentState()
 * between work items (outside read sections), rcuIdleEnter() before idling.
 */
import { rcuPoll } from './gp.js';

export {
  rcuReadLock, rcuReadUnlock, rcuReadLockHeld, rcuReadNesting, rcuReadLockTrace, rcuReadUnlockTrace,
  rcuReadLockTraceHeld, rcuQuiescentState, rcuIdleEnter, rcuIdleExit, rcuIsIdle, rcuExpQs,
  synchronizeRcuWait, rcuThreadInit,
} from './read_side.js';
export {
  RCU_HEAD_SIZE, RCU_RECORD_SIZE, defineRcuKind, registerRcuCallback, rcuKindName, callRcuHead,
  callRcuTasksTraceHead, callRcu, callRcuTasksTrace, type RcuCallbackFn,
} from './callbacks.js';
export {
  RCU_FQS_MS, rcuGlobalInit, rcuPoll, synchronizeRcu, synchronizeRcuExpedited, synchronizeRcuTasksTrace,
  rcuBarrier, rcuShutdown, rcuStats, rcuGpLatencySamples, type RcuStats, type RcuFlavourStats, type RcuLatency,
} from './gp.js';

/** The coordinator service (main thread). */
export const rcuService = {
  name: 'rcu',
  poll(nowMs: number): number { return rcuPoll(nowMs); },
} as const;
