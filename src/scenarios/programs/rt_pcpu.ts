/*
 * Scenario program (seed 000, migrate_disable on PREEMPT_RT): a per-CPU read-modify-write across
 * a sleeping lock. Reads this CPU's slot of `pcpu`, takes the spinlock_t in `lock` (a sleeping
 * lock on RT: when another CPU holds it the task sleeps, i.e. is preempted), holds it ~20 us,
 * and writes the slot back + 1. Records in `stats`: [0] runs that ended on another CPU than they
 * started, [1] runs that slept on the lock, [2] runs with preemption disabled (preempt_count != 0),
 * [3] runs without migrate_disable.
 *
 * args.mode 'no_migrate_disable' is the counterfactual, emulated: a task that slept resumes on
 * the other CPU (what the scheduler may do to a task that is not migrate-disabled), so its
 * this_cpu pointer now names the other CPU's slot while its value came from its own.
 */
import { defineProgram, LC_TEST_SLEEPING, type BpfMapImpl } from '../../program.js';
import { preemptCount, migrateDisableCount } from '../../cpu/context.js';

export interface RtPcpuArgs { readonly mode: 'migrate_disable' | 'no_migrate_disable'; readonly holdUs: number }

export default defineProgram<{ readonly pcpu: BpfMapImpl; readonly lock: BpfMapImpl; readonly stats: BpfMapImpl }>({
  name: 'rt_pcpu',
  type: 'raw_tracepoint',
  maps: ['pcpu', 'lock', 'stats'],
  run(ctx, { pcpu, lock, stats }) {
    const a = ctx.args as RtPcpuArgs;
    const k0 = ctx.scratchU32(0, 0);
    const st = (i: number): number => stats.lookup(ctx.scratchU32(4, i));
    const startCpu = ctx.cpu;
    if (preemptCount() !== 0) ctx.atomicAddU64(st(2), 1n);
    if (migrateDisableCount() === 0) ctx.atomicAddU64(st(3), 1n);
    const slot = pcpu.lookup(k0);                 // this_cpu_ptr()
    const old = ctx.u64(slot);
    const lk = lock.lookup(k0);
    let slept = false;
    if (!ctx.rawSpinTrylock(lk, LC_TEST_SLEEPING)) {
      slept = true;
      const err = ctx.spinLock(lk);               // sleeps on RT (the task is preempted)
      if (err !== 0) return err;
      const t0 = performance.now();
      while ((performance.now() - t0) * 1000 < a.holdUs) { /* critical section */ }
      ctx.spinUnlock(lk);
    } else {
      const t0 = performance.now();
      while ((performance.now() - t0) * 1000 < a.holdUs) { /* critical section */ }
      ctx.rawSpinUnlock(lk);
    }
    let endCpu = ctx.cpu;
    let dst = slot;
    if (slept) {
      ctx.atomicAddU64(st(1), 1n);
      if (a.mode === 'no_migrate_disable') {
        // emulated migration while asleep: resumed on the other CPU, this_cpu now means its slot
        endCpu = 1 - startCpu;
        dst = pcpu.lookupPercpu(k0, endCpu);
      }
    }
    ctx.setU64(dst, old + 1n);
    if (endCpu !== startCpu) ctx.atomicAddU64(st(0), 1n);
    return 0;
  },
});
