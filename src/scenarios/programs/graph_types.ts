/*
 * Shared layouts of the seed 004 scenario programs (graph_rb_lock, graph_rb_nolock, graph_abort,
 * graph_res_abba): the object types they declare and the map values they use, so that the
 * programs that name one type give it the same layout (a type name is global to a runtime) and
 * the scenario module reads the same offsets. Not a program: no default export.
 */
import type { ProgramContext } from '../../program.js';

// ---- graph-lock-check: map value { bpf_spin_lock @0; bpf_rb_root @8 contains rbnode @0 } ----

/** Map value of `glob`: its lock, its rbtree root, 32 bytes. */
export const GLOB_LOCK = 0;
export const GLOB_ROOT = 8;
export const GLOB_VALUE_SIZE = 32;
/** Object `rbnode` (32 bytes): bpf_rb_node @0, u32 key @24. */
export const RBN_NODE = 0;
export const RBN_KEY = 24;
export const RB_TYPES = {
  rbnode: { size: 32, fields: [{ type: 'bpf_rb_node', offset: RBN_NODE }] },
} as const;

/** The rbtree comparator both graph-lock-check programs name: a, b are bpf_rb_node pointers. */
export function rbLess(ctx: ProgramContext, a: number, b: number): boolean {
  return ctx.u32(a - RBN_NODE + RBN_KEY) < ctx.u32(b - RBN_NODE + RBN_KEY);
}

// ---- graph-abort-unwind: objects `item` and `bag`, maps `rlk` and `slk` ----

/** Object `item` (24 bytes): bpf_list_node @0, u32 key @16. */
export const ITEM_NODE = 0;
export const ITEM_KEY = 16;
/** Object `bag` (24 bytes): its own bpf_spin_lock @0 guarding bpf_list_head @8 of items. */
export const BAG_LOCK = 0;
export const BAG_HEAD = 8;
export const ABORT_TYPES = {
  item: { size: 24, fields: [{ type: 'bpf_list_node', offset: ITEM_NODE }] },
  bag: {
    size: 24,
    fields: [
      { type: 'bpf_spin_lock', offset: BAG_LOCK },
      { type: 'bpf_list_head', offset: BAG_HEAD, contains: { type: 'item', field: ITEM_NODE } },
    ],
  },
} as const;
/** `rlk` value: bpf_res_spin_lock @0; `slk` value: bpf_spin_lock @0 (a value may hold one lock). */
export const LOCK_VALUE_SIZE = 8;

// ---- res-spin-lock-abba: map `rl`, element 0 = lock A + the counter, element 1 = lock B ----

export const RL_LOCK = 0;
export const RL_COUNTER = 8;
export const RL_VALUE_SIZE = 16;

/** Busy-wait `us` microseconds of real time (a critical section's or a lock window's length). */
export function spinUs(us: number): void {
  if (us <= 0) return;
  const t0 = performance.now();
  while ((performance.now() - t0) * 1000 < us) { /* spin */ }
}
