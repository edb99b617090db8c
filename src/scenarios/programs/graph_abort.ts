/*
 * Scenario program (seed 004, graph-abort-unwind): a run that holds two program locks and three
 * owning object references when it calls bpf_throw, so that the abort has everything to unwind.
 *
 * Before any lock (no bpf_obj_new under a lock): items A, B and D and a bag C (an object with its
 * own bpf_spin_lock guarding a bpf_list_head of items); D is pushed into C's list under C's lock
 * (C now owns D; the run holds A, B, C). Then bpf_res_spin_lock_irqsave(rlk[0]) and
 * bpf_spin_lock(slk[0]) (irqs off, two locks), then:
 *
 *   op 'throw'  ctx.throw(cookie): the abort releases slk then rlk (newest first, irq flags
 *               restored) and drops A, B and C (C's teardown takes C's lock and drops D; in NMI
 *               C's drop is deferred to irq_work). Returns the cookie.
 *   op 'clean'  the same, released by the program itself (unlock, unlock, drop, drop, drop):
 *               returns 0. The scenario runs it once to warm the bpf_mem_alloc caches.
 *   op 'addr'   the address of rlk[0] (which 'res') or slk[0] (which 'spin') for the lock words.
 */
import { defineProgram, ENOENT, ENOMEM, EINVAL, type BpfMapImpl } from '../../program.js';
import { ITEM_NODE, ITEM_KEY, BAG_LOCK, BAG_HEAD, ABORT_TYPES } from './graph_types.js';

export interface GraphAbortArgs {
  readonly op: 'throw' | 'clean' | 'addr';
  readonly cookie?: number;
  readonly which?: 'res' | 'spin';
}

export default defineProgram<{ readonly rlk: BpfMapImpl; readonly slk: BpfMapImpl }>({
  name: 'graph_abort',
  type: 'tc',
  maps: ['rlk', 'slk'],
  types: ABORT_TYPES,
  run(ctx, { rlk, slk }) {
    const a = ctx.args as GraphAbortArgs;
    const res = rlk.lookup(ctx.scratchU32(0, 0));
    const spin = slk.lookup(ctx.scratchU32(0, 0));
    if (res === 0 || spin === 0) return -ENOENT;
    if (a.op === 'addr') return a.which === 'res' ? res : spin;
    if (a.op !== 'throw' && a.op !== 'clean') return -EINVAL;

    const objs: number[] = [];
    for (const t of ['item', 'item', 'bag', 'item']) {
      const o = ctx.objNew(t);
      if (o === 0) { for (const p of objs) ctx.objDrop(p); return -ENOMEM; }
      objs.push(o);
    }
    const [A, B, C, D] = objs as [number, number, number, number];
    ctx.setU32(A + ITEM_KEY, 1);
    ctx.setU32(B + ITEM_KEY, 2);
    ctx.setU32(D + ITEM_KEY, 4);
    ctx.bpfSpinLock(C + BAG_LOCK);
    const pushed = ctx.listPushBack(C + BAG_HEAD, D + ITEM_NODE); // D: owned by C from here
    ctx.bpfSpinUnlock(C + BAG_LOCK);
    if (pushed !== 0) { ctx.objDrop(A); ctx.objDrop(B); ctx.objDrop(C); return pushed; }

    let err = ctx.resSpinLockIrqsave(res);
    if (err !== 0) { ctx.objDrop(A); ctx.objDrop(B); ctx.objDrop(C); return err; }
    err = ctx.bpfSpinLock(spin);
    if (err !== 0) { ctx.resSpinUnlockIrqrestore(res); ctx.objDrop(A); ctx.objDrop(B); ctx.objDrop(C); return err; }

    if (a.op === 'throw') ctx.throw(a.cookie ?? 0);

    ctx.bpfSpinUnlock(spin);
    ctx.resSpinUnlockIrqrestore(res);
    ctx.objDrop(A);
    ctx.objDrop(B);
    ctx.objDrop(C); // tears C's list down: D dropped too
    return 0;
  },
});
