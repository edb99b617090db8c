/*
 * bpf_list.ts — the BPF linked list (kernel/bpf/helpers.c: __bpf_list_add, __bpf_list_del,
 * bpf_list_push_front/back, bpf_list_pop_front/back, bpf_list_front/back; teardown as in
 * bpf_list_head_free), operating on kernel memory with the layout of graph_layout.ts.
 *
 * Model: a circular doubly linked list through the head (struct list_head semantics). The head is
 * { next, prev }; a node field is { next, prev, owner }. All pointers are pointers to the head or
 * node *field*, never to the object holding it.
 *
 * Invariants (bpfListCheck verifies them):
 *  - An all-zero head is an empty, uninitialised list; it is initialised lazily (next = prev = head,
 *    the kernel's INIT_LIST_HEAD when next == NULL) by the first push or pop.
 *  - For every element x of the cycle head -> ... -> head: next(prev(x)) == x and prev(next(x)) == x.
 *  - Every node in the list has owner == head. A node in no list has owner 0 and — our choice for
 *    list_del_init — next = prev = 0, so a detached node is byte-identical to a fresh zeroed one
 *    (the kernel points them at the node itself; nothing reads them while detached).
 *  - owner == GRAPH_OWNER_POISON only while a push is linking the node.
 *
 * Protection: the links (head and node next/prev) are protected by the bpf_spin_lock associated
 * with the head, which the caller holds (the verifier's rule); they are plain I32 reads/writes.
 * The owner word is claimed with cmpxchg (0 -> POISON) because a refcounted node may be offered to
 * two collections at once by CPUs holding different locks; it is published with Atomics.store
 * (WRITE_ONCE). This module does no locking, allocation or freeing; the caller drops a node whose
 * push failed and frees the nodes returned by teardown (outside the lock).
 */
import { I32 } from '../mem/arena.js';
import { LH_NEXT, LH_PREV, LN_NEXT, LN_PREV, LN_OWNER, GRAPH_OWNER_POISON } from './graph_layout.js';

/* Head and node share next at +0 and prev at +4, so one accessor serves both. */
function next(p: number): number { return I32[(p + LN_NEXT) >> 2]!; }
function prev(p: number): number { return I32[(p + LN_PREV) >> 2]!; }
function setNext(p: number, v: number): void { I32[(p + LN_NEXT) >> 2] = v; }
function setPrev(p: number, v: number): void { I32[(p + LN_PREV) >> 2] = v; }

/** INIT_LIST_HEAD if the head is still all zero. */
function lazyInit(head: number): void {
  if (I32[(head + LH_NEXT) >> 2] === 0) {
    I32[(head + LH_NEXT) >> 2] = head;
    I32[(head + LH_PREV) >> 2] = head;
  }
}

/**
 * bpf_list_push_front (tail = false) / bpf_list_push_back (tail = true). Claims the node
 * (owner cmpxchg 0 -> POISON); if it is already owned (in a list or tree, or being added) returns
 * false and leaves the node untouched — the caller drops its reference and returns -EINVAL.
 */
export function bpfListPush(head: number, node: number, tail: boolean): boolean {
  lazyInit(head);
  if (Atomics.compareExchange(I32, (node + LN_OWNER) >> 2, 0, GRAPH_OWNER_POISON) !== 0) return false;
  // list_add(node, head) links between head and head.next; list_add_tail between head.prev and head.
  const before = tail ? prev(head) : head;
  const after = tail ? head : next(head);
  setNext(node, after);
  setPrev(node, before);
  setNext(before, node);
  setPrev(after, node);
  Atomics.store(I32, (node + LN_OWNER) >> 2, head);
  return true;
}

/**
 * bpf_list_pop_front / bpf_list_pop_back: unlink and return the first / last node (an owning
 * reference for the caller), or 0 when the list is empty. If the node's owner is not `head`
 * (the kernel's WARN_ON_ONCE) returns 0 and changes nothing.
 */
export function bpfListPop(head: number, tail: boolean): number {
  lazyInit(head);
  const node = tail ? prev(head) : next(head);
  if (node === head) return 0;
  if (Atomics.load(I32, (node + LN_OWNER) >> 2) !== head) return 0;
  const before = prev(node);
  const after = next(node);
  setNext(before, after);
  setPrev(after, before);
  setNext(node, 0);
  setPrev(node, 0);
  Atomics.store(I32, (node + LN_OWNER) >> 2, 0);
  return node;
}

/** bpf_list_front: the first node (a non-owning reference) or 0. */
export function bpfListFront(head: number): number {
  const n = next(head);
  return n === 0 || n === head ? 0 : n;
}

/** bpf_list_back: the last node (a non-owning reference) or 0. */
export function bpfListBack(head: number): number {
  const p = prev(head);
  return p === 0 || p === head ? 0 : p;
}

/** list_empty (an uninitialised all-zero head is empty). */
export function bpfListEmpty(head: number): boolean {
  const n = next(head);
  return n === 0 || n === head;
}

/**
 * Teardown (bpf_list_head_free's detach step, done by the caller under the lock): detach every node
 * (links cleared, owner 0), append the node pointers to `out` in list order, and leave the head
 * empty (initialised if it was, still zero if it was never used). Returns how many were detached.
 * Stops at a NULL link rather than loop on garbage; the caller frees the nodes after unlocking.
 */
export function bpfListTakeAll(head: number, out: number[]): number {
  let n = next(head);
  if (n === 0) return 0;
  let count = 0;
  while (n !== head && n !== 0) {
    const nx = next(n);
    setNext(n, 0);
    setPrev(n, 0);
    Atomics.store(I32, (n + LN_OWNER) >> 2, 0);
    out.push(n);
    count++;
    n = nx;
  }
  setNext(head, head);
  setPrev(head, head);
  return count;
}

/** A pointer a node could have: nonzero, 4-aligned, the whole node inside the arena. */
function badPtr(p: number): boolean {
  return p <= 0 || (p & 3) !== 0 || (p >> 2) + 3 > I32.length;
}

/**
 * Well-formedness of a list (for tests, debug checks and teardown sanity): head initialised or
 * all zero, next/prev consistent in both directions around the whole cycle, every node owned by
 * `head`, no cycle that does not pass through the head, at most `maxNodes` nodes. Returns the
 * problems found as human-readable strings; [] means the list is well formed. Not a hot path.
 */
export function bpfListCheck(head: number, maxNodes = 1e6): string[] {
  const problems: string[] = [];
  const hx = (p: number): string => '0x' + (p >>> 0).toString(16);
  const h = `list ${hx(head)}`;
  if (badPtr(head)) return [`${h}: head pointer is not a valid arena address`];
  const hn = next(head), hp = prev(head);
  if (hn === 0 && hp === 0) return problems; // uninitialised = empty
  if (hn === 0 || hp === 0) return [`${h}: half-initialised head (next ${hx(hn)}, prev ${hx(hp)})`];
  const seen = new Set<number>();
  let cur = head;
  let count = 0;
  const where = (): string => (cur === head ? 'head' : `node #${count - 1} ${hx(cur)}`);
  for (;;) {
    const nx = next(cur);
    if (badPtr(nx)) { problems.push(`${h}: ${where()} has invalid next ${hx(nx)}`); break; }
    if (prev(nx) !== cur) {
      problems.push(`${h}: ${where()}.next = ${hx(nx)} but ${hx(nx)}.prev = ${hx(prev(nx))}`);
    }
    if (nx === head) break;
    if (seen.has(nx)) { problems.push(`${h}: cycle not through the head at ${hx(nx)} (after ${count} nodes)`); break; }
    seen.add(nx);
    const owner = Atomics.load(I32, (nx + LN_OWNER) >> 2);
    if (owner !== head) problems.push(`${h}: node #${count} ${hx(nx)} has owner ${hx(owner)}, expected ${hx(head)}`);
    count++;
    if (count > maxNodes) { problems.push(`${h}: more than ${maxNodes} nodes (stopped)`); break; }
    cur = nx;
  }
  return problems;
}

/** The nodes in list order (tests and tools; stops at a NULL link or after a full cycle guard). */
export function bpfListNodes(head: number): number[] {
  const out: number[] = [];
  let n = next(head);
  if (n === 0) return out;
  const limit = I32.length;
  while (n !== head && n !== 0 && out.length < limit) {
    out.push(n);
    n = next(n);
  }
  return out;
}
