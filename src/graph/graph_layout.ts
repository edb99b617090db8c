/*
 * graph_layout.ts — the byte layout of the graph special fields (include/linux/bpf.h struct
 * bpf_list_head / bpf_list_node_kern / bpf_rb_root / bpf_rb_node_kern / bpf_refcount), in kernel
 * memory with 32-bit pointers. Shared by the list, rbtree, object and map-record code.
 *
 * Pointers between nodes are pointers to the node *field* (like the kernel's list_head and
 * rb_node), never to the object that holds it; the object is field - field offset.
 *
 * The owner word of a node (list or rbtree) is 0 when the node is in no collection,
 * GRAPH_OWNER_POISON while an add is linking it (cmpxchg 0 -> POISON claims it), and the address
 * of the root field (list head or rb root) while it is in that collection.
 */

/** struct bpf_list_head: +0 next, +4 prev (a circular list through the head; all zero = empty, initialised lazily). */
export const BPF_LIST_HEAD_SIZE = 16;
export const BPF_LIST_HEAD_ALIGN = 8;
export const LH_NEXT = 0;
export const LH_PREV = 4;

/** struct bpf_list_node_kern: +0 next, +4 prev, +8 owner. */
export const BPF_LIST_NODE_SIZE = 16;
export const BPF_LIST_NODE_ALIGN = 8;
export const LN_NEXT = 0;
export const LN_PREV = 4;
export const LN_OWNER = 8;

/** struct bpf_rb_root (rb_root_cached): +0 root node, +4 leftmost node (0 = empty). */
export const BPF_RB_ROOT_SIZE = 16;
export const BPF_RB_ROOT_ALIGN = 8;
export const RBR_ROOT = 0;
export const RBR_LEFTMOST = 4;

/** struct bpf_rb_node_kern: +0 parent, +4 left, +8 right, +12 color (RB_RED / RB_BLACK), +16 owner. */
export const BPF_RB_NODE_SIZE = 24;
export const BPF_RB_NODE_ALIGN = 8;
export const RBN_PARENT = 0;
export const RBN_LEFT = 4;
export const RBN_RIGHT = 8;
export const RBN_COLOR = 12;
export const RBN_OWNER = 16;
export const RB_RED = 0;
export const RB_BLACK = 1;

/** struct bpf_refcount: one refcount_t. */
export const BPF_REFCOUNT_SIZE = 4;
export const BPF_REFCOUNT_ALIGN = 4;

/** The owner word while an add links the node (BPF_PTR_POISON): odd, never a field address. */
export const GRAPH_OWNER_POISON = 1;
