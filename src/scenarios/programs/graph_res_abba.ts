/*
 * Scenario program (seed 004, res-spin-lock-abba): AB against BA with bpf_res_spin_lock.
 * Map `rl` (array, 2 elements, each { bpf_res_spin_lock @0 }): element 0 holds lock A and the
 * counter (u32 @8), element 1 lock B. Even CPUs take A then B, odd CPUs B then A; the first lock
 * is held `holdUs` before the second is asked for, so the two CPUs meet in the AB-BA window.
 *
 *   op 'abba'  lock first; hold; lock second (failure: unlock first, return the error, -EDEADLK
 *              or -ETIMEDOUT); counter = counter + 1, a NON-atomic read, pause, write (lost
 *              updates if two sections ever overlapped); unlock second, unlock first; return 0
 *   op 'addr'  the address of element `key` (lock words and the counter, read by the scenario)
 */
import { defineProgram, ENOENT, EINVAL, type BpfMapImpl } from '../../program.js';
import { RL_COUNTER, RL_LOCK, spinUs } from './graph_types.js';

export interface ResAbbaArgs {
  readonly op: 'abba' | 'addr';
  readonly key?: number;
  /** how long the first lock is held before the second is asked for (us) @defaultValue 20 */
  readonly holdUs?: number;
  /** pause between the counter's read and its write (us) @defaultValue 2 */
  readonly csUs?: number;
}

export default defineProgram<{ readonly rl: BpfMapImpl }>({
  name: 'graph_res_abba',
  type: 'tc',
  maps: ['rl'],
  run(ctx, { rl }) {
    const a = ctx.args as ResAbbaArgs;
    const va = rl.lookup(ctx.scratchU32(0, 0));
    const vb = rl.lookup(ctx.scratchU32(0, 1));
    if (va === 0 || vb === 0) return -ENOENT;
    if (a.op === 'addr') return a.key === 1 ? vb : va;
    if (a.op !== 'abba') return -EINVAL;
    const [first, second] = (ctx.cpu & 1) === 0 ? [va + RL_LOCK, vb + RL_LOCK] : [vb + RL_LOCK, va + RL_LOCK];
    let err = ctx.resSpinLock(first);
    if (err !== 0) return err;
    spinUs(a.holdUs ?? 20);
    err = ctx.resSpinLock(second);
    if (err !== 0) { ctx.resSpinUnlock(first); return err; }
    const c = ctx.u32(va + RL_COUNTER);
    spinUs(a.csUs ?? 2);
    ctx.setU32(va + RL_COUNTER, c + 1);
    ctx.resSpinUnlock(second);
    ctx.resSpinUnlock(first);
    return 0;
  },
});
