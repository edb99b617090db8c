/*
 * doorbell.ts — the coordinator's doorbell: how any thread (a CPU worker, an NMI handler on it, the
 * main thread itself) asks the coordinator (the main thread: grace periods, RCU callbacks, irq_work
 * on PREEMPT_RT, timer expiry, history drain) to poll now rather than at its next tick.
 *
 * Words (layout.ts, the runtime region): RT_DOORBELL, a ring count (Atomics.add by ringers);
 * RT_DOORBELL_SLEEPING, 1 while the coordinator waits on RT_DOORBELL (written by the coordinator).
 * No wake is lost: the coordinator reads the count, then sets RT_DOORBELL_SLEEPING, then waits
 * while the count still equals what it read; a ring before the flag was set changed the count (its
 * wait returns at once), a ring after sees the flag (all seq-cst Atomics). Any context: two Atomics
 * and, only when the coordinator sleeps, a notify.
 */
import { I32 } from '../mem/arena.js';
import { RT_DOORBELL, RT_DOORBELL_SLEEPING } from '../mem/layout.js';

/** Wake the coordinator: bump RT_DOORBELL, and notify only if it is waiting (a notify is a futex wake: microseconds, paid per ring). */
export function ringDoorbell(): void {
  Atomics.add(I32, RT_DOORBELL >> 2, 1);
  if (Atomics.load(I32, RT_DOORBELL_SLEEPING >> 2) !== 0) Atomics.notify(I32, RT_DOORBELL >> 2);
}
