/*
 * Scenario program (seed 004, graph-lock-check): the BROKEN user of map `glob`'s rbtree. It
 * allocates an `rbnode` (an owning reference) and calls bpf_rbtree_add without taking the value's
 * bpf_spin_lock, which the kernel's verifier refuses at load and bpfsim catches at run time: the
 * run is aborted ("bpf_spin_lock at off=0 must be held for bpf_rb_root"), its node dropped, the
 * program disabled. The tree is never touched.
 */
import { defineProgram, ENOENT, ENOMEM, type BpfMapImpl } from '../../program.js';
import { GLOB_ROOT, RBN_NODE, RBN_KEY, RB_TYPES, rbLess } from './graph_types.js';

export default defineProgram<{ readonly glob: BpfMapImpl }>({
  name: 'graph_rb_nolock',
  type: 'tc',
  maps: ['glob'],
  types: RB_TYPES,
  callbacks: { less: rbLess },
  run(ctx, { glob }) {
    const v = glob.lookup(ctx.scratchU32(0, 0));
    if (v === 0) return -ENOENT;
    const n = ctx.objNew('rbnode');
    if (n === 0) return -ENOMEM;
    ctx.setU32(n + RBN_KEY, 2);
    // the bug: no ctx.bpfSpinLock(v + GLOB_LOCK) first
    return ctx.rbtreeAdd(v + GLOB_ROOT, n + RBN_NODE, 'less');
  },
});
