/*
 * llist.ts — lock-free singly linked lists in kernel memory (include/linux/llist.h).
 *
 * A head is one i32 word holding the first node's pointer (0 = empty); a node's link is the i32
 * at node + linkOff. Any number of producers may push at once (CAS loop); llistDelAll takes the
 * whole chain with one exchange (any number of consumers); llistDelFirst removes the first node
 * and requires a single consumer (as the kernel's llist_del_first): with only pushes racing it,
 * the CAS cannot be fooled by ABA. Safe from any context, NMI included: nothing waits.
 */
import { I32 } from '../mem/arena.js';

/** llist_add(): push `node` at the head; returns true if the list was empty before. */
export function llistAdd(head: number, node: number, linkOff: number): boolean {
  const hi = head >> 2, ni = (node + linkOff) >> 2;
  for (;;) {
    const first = Atomics.load(I32, hi);
    Atomics.store(I32, ni, first);
    if (Atomics.compareExchange(I32, hi, first, node) === first) return first === 0;
  }
}

/** llist_add_batch(): push the chain first..last (already linked) at once. */
export function llistAddBatch(head: number, first: number, last: number, linkOff: number): boolean {
  const hi = head >> 2, li = (last + linkOff) >> 2;
  for (;;) {
    const old = Atomics.load(I32, hi);
    Atomics.store(I32, li, old);
    if (Atomics.compareExchange(I32, hi, old, first) === old) return old === 0;
  }
}

/** llist_del_all(): take the whole chain (most recent first); 0 when empty. */
export function llistDelAll(head: number): number {
  return Atomics.exchange(I32, head >> 2, 0);
}

/** llist_del_first(): single consumer only. Returns the node or 0. */
export function llistDelFirst(head: number, linkOff: number): number {
  const hi = head >> 2;
  for (;;) {
    const first = Atomics.load(I32, hi);
    if (first === 0) return 0;
    const next = Atomics.load(I32, (first + linkOff) >> 2);
    if (Atomics.compareExchange(I32, hi, first, next) === first) return first;
  }
}

export function llistEmpty(head: number): boolean {
  return Atomics.load(I32, head >> 2) === 0;
}

/**
 * Next node of a taken chain. A plain read is enough: the chain is private once taken, and the
 * taker's Atomics.exchange read the head written by the last push's compareExchange, each push's
 * compareExchange read the one before it, and each pusher stored its link (Atomics.store) before
 * its CAS; so every link store happens before this load (the memory-ordering contract,
 * docs/INTERNALS.md).
 */
export function llistNext(node: number, linkOff: number): number {
  return I32[(node + linkOff) >> 2]!;
}
