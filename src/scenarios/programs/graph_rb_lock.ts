/*
 * Scenario program (seed 004, graph-lock-check): the CORRECT user of map `glob`'s rbtree, every
 * tree operation under the value's bpf_spin_lock (the lock bound to the root by location).
 *
 *   op 'add3'  allocate one `rbnode` per key (before the lock: bpf_obj_new is refused under it),
 *              then under the lock add them all, take bpf_rbtree_first and remove it; unlock,
 *              drop the removed node; returns its key (the smallest)
 *   op 'walk'  under the lock, an in-order walk (root/left/right, non-owning references):
 *              the node count, or -EINVAL if the keys are out of order
 *   op 'first' under the lock, the key of bpf_rbtree_first, or -ENOENT (empty tree)
 *   op 'addr'  the value's address (the scenario reads the lock word from the main thread)
 */
import { defineProgram, ENOENT, ENOMEM, EINVAL, type BpfMapImpl, type ProgramContext } from '../../program.js';
import { GLOB_LOCK, GLOB_ROOT, RBN_NODE, RBN_KEY, RB_TYPES, rbLess } from './graph_types.js';

export interface RbLockArgs {
  readonly op: 'add3' | 'walk' | 'first' | 'addr';
  readonly keys?: readonly number[];
}

/** In-order walk below `node` (non-owning): keys appended to `out`. */
function walk(ctx: ProgramContext, root: number, node: number, out: number[]): void {
  if (node === 0) return;
  walk(ctx, root, ctx.rbtreeLeft(root, node), out);
  out.push(ctx.u32(node - RBN_NODE + RBN_KEY));
  walk(ctx, root, ctx.rbtreeRight(root, node), out);
}

export default defineProgram<{ readonly glob: BpfMapImpl }>({
  name: 'graph_rb_lock',
  type: 'tc',
  maps: ['glob'],
  types: RB_TYPES,
  callbacks: { less: rbLess },
  run(ctx, { glob }) {
    const a = ctx.args as RbLockArgs;
    const v = glob.lookup(ctx.scratchU32(0, 0));
    if (v === 0) return -ENOENT;
    const lock = v + GLOB_LOCK, root = v + GLOB_ROOT;
    switch (a.op) {
      case 'addr': return v;
      case 'add3': {
        const nodes: number[] = [];
        for (const k of a.keys ?? [5, 1, 3]) {
          const n = ctx.objNew('rbnode');
          if (n === 0) { for (const m of nodes) ctx.objDrop(m); return -ENOMEM; }
          ctx.setU32(n + RBN_KEY, k);
          nodes.push(n);
        }
        ctx.bpfSpinLock(lock);
        let err = 0;
        for (const n of nodes) { const r = ctx.rbtreeAdd(root, n + RBN_NODE, 'less'); if (r !== 0) err = r; }
        const f = ctx.rbtreeFirst(root);
        const removed = f === 0 ? 0 : ctx.rbtreeRemove(root, f);
        ctx.bpfSpinUnlock(lock);
        if (removed === 0) return err !== 0 ? err : -ENOENT;
        const key = ctx.u32(removed - RBN_NODE + RBN_KEY);
        ctx.objDrop(removed - RBN_NODE);
        return err !== 0 ? err : key;
      }
      case 'walk': {
        const keys: number[] = [];
        ctx.bpfSpinLock(lock);
        walk(ctx, root, ctx.rbtreeRoot(root), keys);
        ctx.bpfSpinUnlock(lock);
        for (let i = 1; i < keys.length; i++) if (keys[i]! < keys[i - 1]!) return -EINVAL;
        return keys.length;
      }
      case 'first': {
        ctx.bpfSpinLock(lock);
        const f = ctx.rbtreeFirst(root);
        const key = f === 0 ? -ENOENT : ctx.u32(f - RBN_NODE + RBN_KEY);
        ctx.bpfSpinUnlock(lock);
        return key;
      }
      default: return -EINVAL;
    }
  },
});
