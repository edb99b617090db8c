/*
 * stress_graph.ts — the graph stress workload (`bpfsim stress` graph cells, docs/GRAPH.md): a 'tc'
 * program that, per run, picks one of GRAPH_STRESS_KEYS values of map `m` (hash, lru_hash or array;
 * value GRAPH_STRESS_VALUE_SIZE bytes: a bpf_spin_lock, a bpf_res_spin_lock, a bpf_rb_root and a
 * bpf_list_head, both holding GRAPH_NODE_TYPE objects) and, under the value's bpf_spin_lock, grows
 * or shrinks its collections towards `cap` nodes per tree:
 *   grow:   new node into the tree and (refcount_acquire) the list; into the tree only; into the
 *           list only (front or back); pop from the list and add to the tree (-EINVAL when it is
 *           in the tree already: the kfunc drops the reference); refcount_acquire the tree's first
 *           node and push it to the list (-EINVAL when it is in the list already)
 *   shrink: remove the tree's first node; walk down from the root and remove the node reached;
 *           pop the list's front or back — dropped outside the lock (a node also in the other
 *           collection lives on there)
 *   res:    one in 16 runs, a bpf_res_spin_lock section on the value's res lock (the NMI program
 *           takes the same lock: AA from an NMI on the same CPU is -EDEADLK, never a splat)
 * Every critical section passes the window GRAPH_LOCKED_WINDOW, so NMIs land inside it.
 *
 * Counters under the locks, checked by the engine once the CPUs stop: GV_TREE_N / GV_LIST_N (the
 * nodes each collection holds, updated under the bpf_spin_lock: they equal the collections' sizes
 * only if the lock excludes), GV_RES_PLAIN (a non-atomic increment under the res lock) and
 * GV_RES_ATOMIC (an atomic increment in the same sections: equal only if the res lock excludes).
 *
 * Returns 0, or -errno: -ENOMEM (bpf_obj_new found the allocator dry), -ENOENT (no value: a hash
 * element missing, never expected), -EDEADLK / -ETIMEDOUT (bpf_res_spin_lock in task context:
 * only when its holder is stuck).
 */
import { defineProgram, ENOMEM, ENOENT, type BpfMapImpl, type ProgramContext } from '../../program.js';

/** Value layout. */
export const GRAPH_STRESS_VALUE_SIZE = 64;
export const GV_LOCK = 0, GV_RES = 4, GV_ROOT = 8, GV_HEAD = 24, GV_TREE_N = 40, GV_LIST_N = 44, GV_RES_PLAIN = 48, GV_RES_ATOMIC = 52;
/** Node layout: rb node at 0 (so the node pointer is the object), list node, refcount, key. */
export const GN_RB = 0, GN_LIST = 24, GN_REF = 40, GN_KEY = 44, GN_SIZE = 48;
/** The object type (one layout for every program that declares it: BTF dedup). */
export const GRAPH_NODE_TYPE = 'stress_gnode';
export const GRAPH_NODE_DECL = {
  size: GN_SIZE,
  fields: [{ type: 'bpf_rb_node', offset: GN_RB }, { type: 'bpf_list_node', offset: GN_LIST }, { type: 'bpf_refcount', offset: GN_REF }],
} as const;
/** The map value's fields (rt.createMap({ fields })). */
export const GRAPH_VALUE_FIELDS = [
  { type: 'bpf_spin_lock', offset: GV_LOCK },
  { type: 'bpf_res_spin_lock', offset: GV_RES },
  { type: 'bpf_rb_root', offset: GV_ROOT, contains: { type: GRAPH_NODE_TYPE, field: GN_RB } },
  { type: 'bpf_list_head', offset: GV_HEAD, contains: { type: GRAPH_NODE_TYPE, field: GN_LIST } },
] as const;
/** The window every critical section passes (NMIs land there). */
export const GRAPH_LOCKED_WINDOW = 'stress_graph.locked';

export interface GraphStressArgs {
  /** values 0..keys-1 (all present before the run) */
  readonly keys: number;
  /** the tree size each value drifts towards */
  readonly cap: number;
}

function lessByKey(ctx: ProgramContext, a: number, b: number): boolean {
  return ctx.u32(a - GN_RB + GN_KEY) < ctx.u32(b - GN_RB + GN_KEY);
}

function bump(ctx: ProgramContext, p: number, d: number): void { ctx.setU32(p, (ctx.u32(p) + d) >>> 0); }

/** A res-lock section: a plain and an atomic increment, which agree only if the lock excludes. */
function resSection(ctx: ProgramContext, v: number): number {
  const e = ctx.resSpinLock(v + GV_RES);
  if (e !== 0) return e;
  const plain = ctx.u32(v + GV_RES_PLAIN);
  ctx.window(GRAPH_LOCKED_WINDOW);
  ctx.setU32(v + GV_RES_PLAIN, (plain + 1) >>> 0);
  ctx.atomicAddU32(v + GV_RES_ATOMIC, 1);
  ctx.resSpinUnlock(v + GV_RES);
  return 0;
}

function grow(ctx: ProgramContext, v: number, op: number): number {
  const lock = v + GV_LOCK, root = v + GV_ROOT, head = v + GV_HEAD;
  if (op < 3) {
    const n = ctx.objNew(GRAPH_NODE_TYPE);
    if (n === 0) return -ENOMEM;
    ctx.setU32(n + GN_KEY, ctx.rand());
    ctx.bpfSpinLock(lock);
    ctx.window(GRAPH_LOCKED_WINDOW);
    if (op === 0) { // both: the tree's reference, then a second one for the list
      ctx.rbtreeAdd(root, n + GN_RB, 'less');
      bump(ctx, v + GV_TREE_N, 1);
      const r = ctx.refcountAcquire(n);
      if (r !== 0 && ctx.listPushBack(head, r + GN_LIST) === 0) bump(ctx, v + GV_LIST_N, 1);
    } else if (op === 1) {
      if (ctx.rbtreeAdd(root, n + GN_RB, 'less') === 0) bump(ctx, v + GV_TREE_N, 1);
    } else {
      const e = (ctx.rand() & 1) === 0 ? ctx.listPushFront(head, n + GN_LIST) : ctx.listPushBack(head, n + GN_LIST);
      if (e === 0) bump(ctx, v + GV_LIST_N, 1);
    }
    ctx.bpfSpinUnlock(lock);
    return 0;
  }
  ctx.bpfSpinLock(lock);
  ctx.window(GRAPH_LOCKED_WINDOW);
  if (op === 3) { // list -> tree: -EINVAL (and the reference dropped) when it is in the tree already
    const ln = ctx.listPopFront(head);
    if (ln !== 0) {
      bump(ctx, v + GV_LIST_N, -1);
      if (ctx.rbtreeAdd(root, ln - GN_LIST + GN_RB, 'less') === 0) bump(ctx, v + GV_TREE_N, 1);
    }
  } else { // tree's first -> list as well: -EINVAL (reference dropped) when it is in the list already
    const f = ctx.rbtreeFirst(root);
    const r = f === 0 ? 0 : ctx.refcountAcquire(f - GN_RB);
    if (r !== 0 && ctx.listPushBack(head, r + GN_LIST) === 0) bump(ctx, v + GV_LIST_N, 1);
  }
  ctx.bpfSpinUnlock(lock);
  return 0;
}

function shrink(ctx: ProgramContext, v: number, op: number): number {
  const lock = v + GV_LOCK, root = v + GV_ROOT, head = v + GV_HEAD;
  let obj = 0;
  ctx.bpfSpinLock(lock);
  ctx.window(GRAPH_LOCKED_WINDOW);
  if (op === 0 || op === 1) {
    let n = op === 0 ? ctx.rbtreeFirst(root) : ctx.rbtreeRoot(root);
    if (op === 1) { // walk down a few random steps
      for (let d = ctx.rand() & 7; d > 0 && n !== 0; d--) {
        const c = (ctx.rand() & 1) === 0 ? ctx.rbtreeLeft(root, n) : ctx.rbtreeRight(root, n);
        if (c === 0) break;
        n = c;
      }
    }
    const r = n === 0 ? 0 : ctx.rbtreeRemove(root, n);
    if (r !== 0) { bump(ctx, v + GV_TREE_N, -1); obj = r - GN_RB; }
  } else {
    const ln = op === 2 ? ctx.listPopFront(head) : ctx.listPopBack(head);
    if (ln !== 0) { bump(ctx, v + GV_LIST_N, -1); obj = ln - GN_LIST; }
  }
  ctx.bpfSpinUnlock(lock);
  if (obj !== 0) ctx.objDrop(obj); // the last reference frees it; else it lives on in the other collection
  return 0;
}

export default defineProgram<{ readonly m: BpfMapImpl }>({
  name: 'stress_graph',
  type: 'tc',
  maps: ['m'],
  windows: [GRAPH_LOCKED_WINDOW],
  types: { [GRAPH_NODE_TYPE]: GRAPH_NODE_DECL },
  callbacks: { less: lessByKey },
  run(ctx, { m }) {
    const a = ctx.args as GraphStressArgs;
    const r = ctx.rand();
    const v = m.lookup(ctx.scratchU32(0, (r >>> 8) % a.keys));
    if (v === 0) return -ENOENT;
    if ((r & 15) === 0) return resSection(ctx, v);
    const size = ctx.u32(v + GV_TREE_N); // read outside the lock: only steers the drift
    const growing = ((r >>> 24) & 0xff) < (size < a.cap ? 160 : 96);
    const op = (r >>> 4) & 0xf;
    return growing ? grow(ctx, v, op % 5) : shrink(ctx, v, op & 3);
  },
});
