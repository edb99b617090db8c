/*
 * bench_graph.ts — the `bpfsim bench graph` workload: `inner` pairs per program run on one value of
 * array map `m` (its own value, key = this CPU, or the one shared value, key 0), each pair under
 * the value's bpf_spin_lock:
 *   rbtree  bpf_obj_new; lock; key = the value's clock + rand(0..2^20); bpf_rbtree_add;
 *           bpf_rbtree_first; bpf_rbtree_remove of it; clock = its key; unlock; bpf_obj_drop
 *           (a priority queue: the tree keeps its prefilled size, BENCH_GRAPH_TREE_SIZE, and new
 *           keys land anywhere in it; keys compare as serial numbers, so the clock may wrap)
 *   list    bpf_obj_new; lock; bpf_list_push_back; bpf_list_pop_back; unlock; bpf_obj_drop
 *   fill    (setup) add `size` nodes to the tree of value `key`
 * The same work as the JS baselines (bench_graph_js.ts) plus what BPF objects cost: every node is
 * allocated (bpf_global_ma) and freed. Returns 0, or -ENOMEM when bpf_obj_new found the cache dry.
 */
import { defineProgram, ENOMEM, ENOENT, type BpfMapImpl, type ProgramContext } from '../../program.js';
import { BENCH_GRAPH_TREE_SIZE, BENCH_GRAPH_KEY_SPREAD } from './bench_graph_js.js';

export { BENCH_GRAPH_TREE_SIZE, BENCH_GRAPH_KEY_SPREAD };

/** Value: lock, rb root, list head, the clock (the last key removed). */
export const BENCH_GRAPH_VALUE_SIZE = 48;
export const BG_LOCK = 0, BG_ROOT = 8, BG_HEAD = 24, BG_CLOCK = 40;
/** Node (no refcount: freed at once, as a plain priority-queue node): rb node, list node, key. */
export const BGN_RB = 0, BGN_LIST = 24, BGN_KEY = 40, BGN_SIZE = 48;
export const BENCH_GRAPH_NODE_TYPE = 'bench_gnode';
export const BENCH_GRAPH_FIELDS = [
  { type: 'bpf_spin_lock', offset: BG_LOCK },
  { type: 'bpf_rb_root', offset: BG_ROOT, contains: { type: BENCH_GRAPH_NODE_TYPE, field: BGN_RB } },
  { type: 'bpf_list_head', offset: BG_HEAD, contains: { type: BENCH_GRAPH_NODE_TYPE, field: BGN_LIST } },
] as const;
/** Pairs per program run. */
export const BENCH_GRAPH_INNER = 16;

export interface BenchGraphArgs {
  readonly op: 'rbtree' | 'list' | 'fill';
  /** all CPUs on value 0 (else each on its own value, key = CPU) */
  readonly shared?: boolean;
  /** fill: the value */
  readonly key?: number;
  /** fill: nodes to add */
  readonly size?: number;
}

function key(ctx: ProgramContext, n: number): number { return ctx.u32(n - BGN_RB + BGN_KEY); }

export default defineProgram<{ readonly m: BpfMapImpl }>({
  name: 'bench_graph',
  type: 'tc',
  maps: ['m'],
  types: {
    [BENCH_GRAPH_NODE_TYPE]: { size: BGN_SIZE, fields: [{ type: 'bpf_rb_node', offset: BGN_RB }, { type: 'bpf_list_node', offset: BGN_LIST }] },
  },
  callbacks: {
    // serial-number order (time_before): a wrapped clock keeps the queue ordered
    less: (ctx: ProgramContext, a: number, b: number) => ((key(ctx, a) - key(ctx, b)) | 0) < 0,
  },
  run(ctx, { m }) {
    const a = ctx.args as BenchGraphArgs;
    const v = m.lookup(ctx.scratchU32(0, a.op === 'fill' ? a.key! : a.shared === true ? 0 : ctx.cpu));
    if (v === 0) return -ENOENT;
    const lock = v + BG_LOCK, root = v + BG_ROOT, head = v + BG_HEAD;
    if (a.op === 'fill') {
      for (let i = 0; i < a.size!; i++) {
        const n = ctx.objNew(BENCH_GRAPH_NODE_TYPE);
        if (n === 0) return -ENOMEM;
        ctx.setU32(n + BGN_KEY, ctx.rand() % BENCH_GRAPH_KEY_SPREAD);
        ctx.bpfSpinLock(lock);
        ctx.rbtreeAdd(root, n + BGN_RB, 'less');
        ctx.bpfSpinUnlock(lock);
      }
      return 0;
    }
    const tree = a.op === 'rbtree';
    for (let i = 0; i < BENCH_GRAPH_INNER; i++) {
      const n = ctx.objNew(BENCH_GRAPH_NODE_TYPE);
      if (n === 0) return -ENOMEM;
      let out = 0;
      ctx.bpfSpinLock(lock);
      if (tree) {
        ctx.setU32(n + BGN_KEY, (ctx.u32(v + BG_CLOCK) + (ctx.rand() & (BENCH_GRAPH_KEY_SPREAD - 1))) >>> 0);
        ctx.rbtreeAdd(root, n + BGN_RB, 'less');
        const r = ctx.rbtreeRemove(root, ctx.rbtreeFirst(root));
        if (r !== 0) { ctx.setU32(v + BG_CLOCK, key(ctx, r)); out = r - BGN_RB; }
      } else {
        ctx.listPushBack(head, n + BGN_LIST);
        const r = ctx.listPopBack(head);
        if (r !== 0) out = r - BGN_LIST;
      }
      ctx.bpfSpinUnlock(lock);
      if (out !== 0) ctx.objDrop(out);
    }
    return 0;
  },
});
