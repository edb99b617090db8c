/*
 * bpf_rbtree.ts — the BPF red-black tree (kernel/bpf/helpers.c: __bpf_rbtree_add, bpf_rbtree_add,
 * bpf_rbtree_remove, bpf_rbtree_first/root/left/right; teardown as in bpf_rb_root_free), with the
 * red-black algorithms of lib/rbtree.c (rb_insert_color_cached, rb_erase_cached) re-implemented on
 * kernel memory with the layout of graph_layout.ts.
 *
 * Model: struct rb_root_cached { root node, leftmost node } and, per node field,
 * { parent, left, right, color, owner } (the kernel packs parent and colour in one word; here they
 * are separate). Pointers are to the rb root / rb node *field*, never to the containing object.
 *
 * Invariants (bpfRbtreeCheck verifies them):
 *  - binary-tree links agree: parent(left(x)) == x, parent(right(x)) == x, parent(root node) == 0;
 *  - the root node is black, a red node has no red child, and every path from the root to a NULL
 *    child crosses the same number of black nodes (so height <= 2*log2(n+1));
 *  - in-order is non-decreasing by the program's `less`; equal keys are inserted to the right, so
 *    among equals, insertion order is kept;
 *  - leftmost == the first node in order (0 when empty);
 *  - every node in the tree has owner == root. A node in no tree has owner 0 and all links, colour
 *    included, 0: a detached node is byte-identical to a fresh zeroed one (the kernel's
 *    RB_CLEAR_NODE points parent at the node itself instead; nothing reads it while detached).
 *    owner == GRAPH_OWNER_POISON only while an add is linking the node.
 *
 * Protection: all link words (root, leftmost, parent/left/right/colour) are protected by the
 * bpf_spin_lock associated with the root, which the caller holds; they are plain I32 reads and
 * writes. The owner word is claimed with cmpxchg 0 -> POISON (a refcounted node may be offered to
 * two collections by CPUs holding different locks) and published with Atomics.store. No locking,
 * allocation or freeing happens here. bpfRbtreeAdd calls the program's `less` while walking and
 * writes nothing to the tree until the walk is complete, so a `less` that throws leaves the tree as
 * it was (and the node POISON, for the caller to unwind).
 */
import { I32 } from '../mem/arena.js';
import {
  RBR_ROOT, RBR_LEFTMOST, RBN_PARENT, RBN_LEFT, RBN_RIGHT, RBN_COLOR, RBN_OWNER, RB_RED, RB_BLACK,
  GRAPH_OWNER_POISON,
} from './graph_layout.js';

/** less(a, b): node-field pointers; true when a sorts before b (the program's callback, wrapped). */
export type RbLess = (a: number, b: number) => boolean;

function parentOf(n: number): number { return I32[(n + RBN_PARENT) >> 2]!; }
function leftOf(n: number): number { return I32[(n + RBN_LEFT) >> 2]!; }
function rightOf(n: number): number { return I32[(n + RBN_RIGHT) >> 2]!; }
function colorOf(n: number): number { return I32[(n + RBN_COLOR) >> 2]!; }
function setParent(n: number, v: number): void { I32[(n + RBN_PARENT) >> 2] = v; }
function setLeft(n: number, v: number): void { I32[(n + RBN_LEFT) >> 2] = v; }
function setRight(n: number, v: number): void { I32[(n + RBN_RIGHT) >> 2] = v; }
function setColor(n: number, v: number): void { I32[(n + RBN_COLOR) >> 2] = v; }
/** A NULL child counts as black. */
function isRed(n: number): boolean { return n !== 0 && I32[(n + RBN_COLOR) >> 2] === RB_RED; }
function rootNode(root: number): number { return I32[(root + RBR_ROOT) >> 2]!; }
function ownerOf(n: number): number { return Atomics.load(I32, (n + RBN_OWNER) >> 2); }

/** Make `parent` (or the root when parent is 0) point at `newChild` where it pointed at `old`. */
function changeChild(root: number, parent: number, old: number, newChild: number): void {
  if (parent === 0) I32[(root + RBR_ROOT) >> 2] = newChild;
  else if (leftOf(parent) === old) setLeft(parent, newChild);
  else setRight(parent, newChild);
}

/** Left rotation at x (x.right becomes x's parent). Colours unchanged. */
function rotateLeft(root: number, x: number): void {
  const y = rightOf(x);
  const b = leftOf(y);
  const p = parentOf(x);
  setRight(x, b);
  if (b !== 0) setParent(b, x);
  setLeft(y, x);
  setParent(y, p);
  changeChild(root, p, x, y);
  setParent(x, y);
}

/** Right rotation at x (x.left becomes x's parent). Colours unchanged. */
function rotateRight(root: number, x: number): void {
  const y = leftOf(x);
  const b = rightOf(y);
  const p = parentOf(x);
  setLeft(x, b);
  if (b !== 0) setParent(b, x);
  setRight(y, x);
  setParent(y, p);
  changeChild(root, p, x, y);
  setParent(x, y);
}

/** rb_insert_color: restore the red-black rules after linking the red leaf `node`. */
function insertFixup(root: number, node: number): void {
  let n = node;
  for (;;) {
    let p = parentOf(n);
    if (p === 0) { setColor(n, RB_BLACK); return; } // n is the root: always black
    if (colorOf(p) === RB_BLACK) return;
    const g = parentOf(p); // p is red, so not the root: g exists
    if (p === leftOf(g)) {
      const u = rightOf(g);
      if (isRed(u)) { // case 1: recolour and move the violation up two levels
        setColor(p, RB_BLACK); setColor(u, RB_BLACK); setColor(g, RB_RED);
        n = g;
        continue;
      }
      if (n === rightOf(p)) { // case 2: make it a left-left line
        rotateLeft(root, p);
        n = p;
        p = parentOf(n);
      }
      // case 3: rotate the grandparent
      setColor(p, RB_BLACK); setColor(g, RB_RED);
      rotateRight(root, g);
      return;
    } else {
      const u = leftOf(g);
      if (isRed(u)) {
        setColor(p, RB_BLACK); setColor(u, RB_BLACK); setColor(g, RB_RED);
        n = g;
        continue;
      }
      if (n === leftOf(p)) {
        rotateRight(root, p);
        n = p;
        p = parentOf(n);
      }
      setColor(p, RB_BLACK); setColor(g, RB_RED);
      rotateLeft(root, g);
      return;
    }
  }
}

/**
 * ____rb_erase_color: `parent` has lost one black on the side of its child `n` (n may be NULL,
 * which is how the first iteration starts). Rebalance by rotations and recolouring.
 */
function eraseFixup(root: number, parent: number): void {
  let n = 0;
  let p = parent;
  for (;;) {
    let s = rightOf(p);
    if (n !== s) { // n is p's left child (when n is NULL, the non-NULL sibling side is the other one)
      if (isRed(s)) { // case 1: red sibling -> make it black by rotating
        setColor(s, RB_BLACK); setColor(p, RB_RED);
        rotateLeft(root, p);
        s = rightOf(p);
      }
      if (!isRed(leftOf(s)) && !isRed(rightOf(s))) { // case 2: both nephews black
        setColor(s, RB_RED);
        if (isRed(p)) { setColor(p, RB_BLACK); return; }
        n = p;
        p = parentOf(n);
        if (p === 0) return;
        continue;
      }
      if (!isRed(rightOf(s))) { // case 3: near nephew red, far black -> rotate at sibling
        const nl = leftOf(s);
        setColor(nl, RB_BLACK); setColor(s, RB_RED);
        rotateRight(root, s);
        s = nl;
      }
      // case 4: far nephew red
      setColor(s, colorOf(p)); setColor(p, RB_BLACK); setColor(rightOf(s), RB_BLACK);
      rotateLeft(root, p);
      return;
    } else { // n is p's right child: mirror image, sibling on the left
      s = leftOf(p);
      if (isRed(s)) {
        setColor(s, RB_BLACK); setColor(p, RB_RED);
        rotateRight(root, p);
        s = leftOf(p);
      }
      if (!isRed(leftOf(s)) && !isRed(rightOf(s))) {
        setColor(s, RB_RED);
        if (isRed(p)) { setColor(p, RB_BLACK); return; }
        n = p;
        p = parentOf(n);
        if (p === 0) return;
        continue;
      }
      if (!isRed(leftOf(s))) {
        const nr = rightOf(s);
        setColor(nr, RB_BLACK); setColor(s, RB_RED);
        rotateLeft(root, s);
        s = nr;
      }
      setColor(s, colorOf(p)); setColor(p, RB_BLACK); setColor(leftOf(s), RB_BLACK);
      rotateRight(root, p);
      return;
    }
  }
}

/** rb_next: the in-order successor, or 0. */
function rbNext(n: number): number {
  let r = rightOf(n);
  if (r !== 0) {
    while (leftOf(r) !== 0) r = leftOf(r);
    return r;
  }
  let c = n;
  let p = parentOf(c);
  while (p !== 0 && c === rightOf(p)) { c = p; p = parentOf(c); }
  return p;
}

function clearNode(n: number): void {
  setParent(n, 0); setLeft(n, 0); setRight(n, 0); setColor(n, RB_RED);
  Atomics.store(I32, (n + RBN_OWNER) >> 2, 0);
}

/**
 * bpf_rbtree_add: claim the node (owner cmpxchg 0 -> POISON; if it is owned already, return false
 * with the node untouched — the caller drops it and returns -EINVAL), walk down calling
 * less(node, cur) (true -> left, false -> right: equal keys go right), then link it red, rebalance,
 * update the cached leftmost and set owner = root. Returns true.
 *
 * If `less` throws, nothing in the tree has been written: the exception propagates with the tree
 * as it was and the node's owner still POISON.
 */
export function bpfRbtreeAdd(root: number, node: number, less: RbLess): boolean {
  if (Atomics.compareExchange(I32, (node + RBN_OWNER) >> 2, 0, GRAPH_OWNER_POISON) !== 0) return false;
  // The walk: reads only (less is program code and may throw).
  let parent = 0;
  let goLeft = false;
  let leftmost = true;
  let cur = rootNode(root);
  while (cur !== 0) {
    parent = cur;
    if (less(node, cur)) {
      goLeft = true;
      cur = leftOf(cur);
    } else {
      goLeft = false;
      leftmost = false;
      cur = rightOf(cur);
    }
  }
  // rb_link_node
  setParent(node, parent);
  setLeft(node, 0);
  setRight(node, 0);
  setColor(node, RB_RED);
  if (parent === 0) I32[(root + RBR_ROOT) >> 2] = node;
  else if (goLeft) setLeft(parent, node);
  else setRight(parent, node);
  if (leftmost) I32[(root + RBR_LEFTMOST) >> 2] = node;
  insertFixup(root, node);
  Atomics.store(I32, (node + RBN_OWNER) >> 2, root);
  return true;
}

/**
 * bpf_rbtree_remove: if the node's owner is not `root` (in another tree, in a list, in nothing, or
 * being added) return false and change nothing. Otherwise erase it (rb_erase_cached), clear its
 * links and set owner = 0; the caller now holds an owning reference. Returns true.
 */
export function bpfRbtreeRemove(root: number, node: number): boolean {
  if (ownerOf(node) !== root) return false;
  if (I32[(root + RBR_LEFTMOST) >> 2] === node) I32[(root + RBR_LEFTMOST) >> 2] = rbNext(node);

  const left = leftOf(node);
  const right = rightOf(node);
  const parent = parentOf(node);
  let rebalance = 0; // the parent whose subtree lost a black, or 0
  if (left === 0 || right === 0) {
    // At most one child: it replaces the node. A lone child is necessarily red (with a black node
    // above it), so painting it black restores the count; removing a childless black node loses one.
    const child = left !== 0 ? left : right;
    changeChild(root, parent, node, child);
    if (child !== 0) {
      setParent(child, parent);
      setColor(child, RB_BLACK);
    } else if (colorOf(node) === RB_BLACK) {
      rebalance = parent;
    }
  } else {
    // Two children: the successor (leftmost of the right subtree, which has no left child) takes
    // the node's place and colour; the hole is where the successor was.
    let succ = right;
    let succParent: number; // the parent of the hole left where the successor was
    let child2: number;     // the successor's right child, which moves into that hole
    if (leftOf(succ) === 0) {
      // The successor is the node's right child: it keeps its right subtree.
      succParent = succ;
      child2 = rightOf(succ);
    } else {
      while (leftOf(succ) !== 0) succ = leftOf(succ);
      succParent = parentOf(succ);
      child2 = rightOf(succ);
      setLeft(succParent, child2);
      setRight(succ, right);
      setParent(right, succ);
    }
    const succWasBlack = colorOf(succ) === RB_BLACK;
    setLeft(succ, left);
    setParent(left, succ);
    setParent(succ, parent);
    setColor(succ, colorOf(node));
    changeChild(root, parent, node, succ);
    if (child2 !== 0) {
      // A lone child under the removed successor position is red: paint it black.
      setParent(child2, succParent);
      setColor(child2, RB_BLACK);
    } else if (succWasBlack) {
      rebalance = succParent;
    }
  }
  if (rebalance !== 0) eraseFixup(root, rebalance);
  clearNode(node);
  return true;
}

/** bpf_rbtree_first: the leftmost node (non-owning) or 0. */
export function bpfRbtreeFirst(root: number): number { return I32[(root + RBR_LEFTMOST) >> 2]!; }

/** bpf_rbtree_root: the root node (non-owning) or 0. */
export function bpfRbtreeRoot(root: number): number { return rootNode(root); }

/** bpf_rbtree_left: the node's left child, or 0 (also when the node is not in this tree). */
export function bpfRbtreeLeft(root: number, node: number): number {
  return ownerOf(node) !== root ? 0 : leftOf(node);
}

/** bpf_rbtree_right: the node's right child, or 0 (also when the node is not in this tree). */
export function bpfRbtreeRight(root: number, node: number): number {
  return ownerOf(node) !== root ? 0 : rightOf(node);
}

/**
 * Teardown (bpf_rb_root_free's detach step, under the caller's lock): detach every node (links
 * cleared, owner 0), append them to `out` in order, and empty the root. Returns the count. The
 * caller drops the nodes after unlocking. Bounded: stops after as many steps as the arena has words.
 */
export function bpfRbtreeTakeAll(root: number, out: number[]): number {
  let n = rootNode(root);
  if (n === 0) { I32[(root + RBR_LEFTMOST) >> 2] = 0; return 0; }
  // In-order collection first (links intact), then clear.
  const start = out.length;
  let limit = I32.length;
  while (leftOf(n) !== 0 && limit-- > 0) n = leftOf(n);
  while (n !== 0 && limit-- > 0) {
    out.push(n);
    n = rbNext(n);
  }
  for (let i = start; i < out.length; i++) clearNode(out[i]!);
  I32[(root + RBR_ROOT) >> 2] = 0;
  I32[(root + RBR_LEFTMOST) >> 2] = 0;
  return out.length - start;
}

/** In-order node list (tests and tools). Bounded against corrupted links. */
export function bpfRbtreeNodes(root: number): number[] {
  const out: number[] = [];
  let n = rootNode(root);
  if (n === 0) return out;
  let limit = I32.length;
  while (leftOf(n) !== 0 && limit-- > 0) n = leftOf(n);
  while (n !== 0 && limit-- > 0) {
    out.push(n);
    n = rbNext(n);
  }
  return out;
}

/** Height in nodes (0 for an empty tree). Iterative; bounded by the arena size on corrupted links. */
export function bpfRbtreeHeight(root: number): number {
  const r = rootNode(root);
  if (r === 0) return 0;
  const stack: number[] = [r, 1];
  let h = 0;
  let limit = I32.length;
  while (stack.length > 0 && limit-- > 0) {
    const d = stack.pop()!;
    const n = stack.pop()!;
    if (d > h) h = d;
    const l = leftOf(n), rt = rightOf(n);
    if (l !== 0) stack.push(l, d + 1);
    if (rt !== 0) stack.push(rt, d + 1);
  }
  return h;
}

function badPtr(p: number): boolean {
  return p <= 0 || (p & 3) !== 0 || (p >> 2) + 5 > I32.length;
}

/**
 * Well-formedness of a tree: parent/child links consistent, root node's parent 0 and colour black,
 * colours valid, no red node with a red child, equal black height on every root-to-NULL path
 * (hence height <= 2*log2(n+1), also checked), leftmost correct, every owner == root, in-order
 * non-decreasing by `less` when given (!less(next, prev)), no cycles, at most `maxNodes` nodes.
 * Returns the problems as strings; [] means well formed. Not a hot path (allocates freely).
 */
export function bpfRbtreeCheck(root: number, less?: RbLess, maxNodes = 1e6): string[] {
  const problems: string[] = [];
  const hx = (p: number): string => '0x' + (p >>> 0).toString(16);
  const t = `rbtree ${hx(root)}`;
  if (badPtr(root)) return [`${t}: root pointer is not a valid arena address`];
  const r = rootNode(root);
  const lm = I32[(root + RBR_LEFTMOST) >> 2]!;
  if (r === 0) {
    if (lm !== 0) problems.push(`${t}: empty tree but leftmost = ${hx(lm)}`);
    return problems;
  }
  if (badPtr(r)) return [`${t}: root node ${hx(r)} is not a valid arena address`];
  if (parentOf(r) !== 0) problems.push(`${t}: root node ${hx(r)} has parent ${hx(parentOf(r))}, expected 0`);
  if (colorOf(r) !== RB_BLACK) problems.push(`${t}: root node ${hx(r)} is not black`);

  // Pre-order DFS with an explicit stack: (node, black count above and including it, depth).
  const seen = new Set<number>();
  const stack: number[] = [r, 0, 1];
  let blackHeight = -1;
  let height = 0;
  let stopped = false;
  let structural = false; // a bad pointer or a cycle: the in-order checks below would not be safe
  seen.add(r);
  while (stack.length > 0) {
    const depth = stack.pop()!;
    const blacksAbove = stack.pop()!;
    const n = stack.pop()!;
    if (depth > height) height = depth;
    const c = colorOf(n);
    if (c !== RB_RED && c !== RB_BLACK) problems.push(`${t}: node ${hx(n)} has invalid colour ${c}`);
    const blacks = blacksAbove + (c === RB_BLACK ? 1 : 0);
    const owner = ownerOf(n);
    if (owner !== root) problems.push(`${t}: node ${hx(n)} has owner ${hx(owner)}, expected ${hx(root)}`);
    const kids = [leftOf(n), rightOf(n)];
    for (let i = 0; i < 2; i++) {
      const k = kids[i]!;
      const side = i === 0 ? 'left' : 'right';
      if (k === 0) {
        if (blackHeight < 0) blackHeight = blacks;
        else if (blacks !== blackHeight) {
          problems.push(`${t}: path to the NULL ${side} child of ${hx(n)} has ${blacks} black nodes, others ${blackHeight}`);
        }
        continue;
      }
      if (badPtr(k)) { structural = true; problems.push(`${t}: node ${hx(n)} has invalid ${side} child ${hx(k)}`); continue; }
      if (seen.has(k)) { structural = true; problems.push(`${t}: cycle: ${hx(k)} reached again as ${side} child of ${hx(n)}`); continue; }
      seen.add(k);
      if (parentOf(k) !== n) problems.push(`${t}: ${side} child ${hx(k)} of ${hx(n)} has parent ${hx(parentOf(k))}`);
      if (c === RB_RED && colorOf(k) === RB_RED) problems.push(`${t}: red node ${hx(n)} has red ${side} child ${hx(k)}`);
      if (seen.size > maxNodes) { stopped = true; break; }
      stack.push(k, blacks, depth + 1);
    }
    if (stopped) { problems.push(`${t}: more than ${maxNodes} nodes (stopped)`); break; }
  }
  if (stopped || structural) return problems;

  const count = seen.size;
  const bound = 2 * Math.log2(count + 1);
  if (height > bound + 1e-9) problems.push(`${t}: height ${height} exceeds 2*log2(n+1) = ${bound.toFixed(2)} for n = ${count}`);

  // In-order walk through the child links (explicit stack), for order and leftmost.
  const order: number[] = [];
  const st: number[] = [];
  let cur = r;
  while (cur !== 0 || st.length > 0) {
    while (cur !== 0) { st.push(cur); cur = leftOf(cur); }
    cur = st.pop()!;
    order.push(cur);
    cur = rightOf(cur);
  }
  if (lm !== order[0]) problems.push(`${t}: leftmost is ${hx(lm)}, first in order is ${hx(order[0]!)}`);
  if (less) {
    for (let i = 1; i < order.length; i++) {
      if (less(order[i]!, order[i - 1]!)) {
        problems.push(`${t}: out of order: node #${i} ${hx(order[i]!)} sorts before node #${i - 1} ${hx(order[i - 1]!)}`);
      }
    }
  }
  return problems;
}
