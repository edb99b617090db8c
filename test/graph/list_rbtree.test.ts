// The intrusive BPF collections on kernel memory: bpf_list (push/pop/peek/takeAll/check) and
// bpf_rbtree (add/remove/first/root/left/right/takeAll/check), single-threaded on a booted arena.
// Objects are kzalloc'd blocks: a key at +0, a bpf_list_node at +8, a bpf_rb_node at +24; the
// collection roots live in a separate "map value" block.
import { describe, it, expect, beforeEach } from 'vitest';
import { bootArena } from '../boot_arena.js';
import { I32 } from '../../src/mem/arena.js';
import { kzalloc } from '../../src/mm/slab.js';
import { OWNER_KERNEL } from '../../src/mm/owners.js';
import {
  LH_NEXT, LH_PREV, LN_NEXT, LN_PREV, LN_OWNER, RBR_ROOT, RBR_LEFTMOST, RBN_PARENT, RBN_LEFT,
  RBN_RIGHT, RBN_COLOR, RBN_OWNER, RB_RED, RB_BLACK, GRAPH_OWNER_POISON, BPF_LIST_NODE_SIZE,
  BPF_RB_NODE_SIZE,
} from '../../src/graph/graph_layout.js';
import {
  bpfListPush, bpfListPop, bpfListFront, bpfListBack, bpfListEmpty, bpfListTakeAll, bpfListCheck,
  bpfListNodes,
} from '../../src/graph/bpf_list.js';
import {
  bpfRbtreeAdd, bpfRbtreeRemove, bpfRbtreeFirst, bpfRbtreeRoot, bpfRbtreeLeft, bpfRbtreeRight,
  bpfRbtreeTakeAll, bpfRbtreeCheck, bpfRbtreeNodes, bpfRbtreeHeight, type RbLess,
} from '../../src/graph/bpf_rbtree.js';
import { prng } from './graph_harness.js';

const OBJ_SIZE = 64;
const KEY = 0;
const LNODE = 8;
const RBNODE = 24;

const ld = (p: number): number => I32[p >> 2]!;
const st = (p: number, v: number): void => { I32[p >> 2] = v; };

function newObj(key: number): number {
  const o = kzalloc(OBJ_SIZE, OWNER_KERNEL);
  expect(o).not.toBe(0);
  st(o + KEY, key);
  return o;
}
/** A block holding the collection roots (like a map value): list head at +0, rb root at +16. */
function newRoots(): { head: number; root: number } {
  const v = kzalloc(64, OWNER_KERNEL);
  expect(v).not.toBe(0);
  return { head: v, root: v + 16 };
}
const lkey = (node: number): number => ld(node - LNODE + KEY);
const rkey = (node: number): number => ld(node - RBNODE + KEY);
const less: RbLess = (a, b) => rkey(a) < rkey(b);
function words(p: number, bytes: number): number[] {
  return Array.from(I32.subarray(p >> 2, (p + bytes) >> 2));
}

beforeEach(() => {
  bootArena({ memoryBytes: 32 << 20 });
});

describe('bpf_list', () => {
  it('push_front is LIFO and push_back is FIFO over 8 nodes (linked_list push_pop_multiple)', () => {
    const { head } = newRoots();
    const objs = Array.from({ length: 8 }, (_, i) => newObj(i));
    for (const o of objs) {
      expect(bpfListPush(head, o + LNODE, false)).toBe(true);
      expect(bpfListCheck(head)).toEqual([]);
    }
    expect(bpfListNodes(head).map(lkey)).toEqual([7, 6, 5, 4, 3, 2, 1, 0]);
    expect(bpfListFront(head)).toBe(objs[7]! + LNODE);
    expect(bpfListBack(head)).toBe(objs[0]! + LNODE);
    const lifo: number[] = [];
    for (let i = 0; i < 8; i++) { const n = bpfListPop(head, false); expect(n).not.toBe(0); lifo.push(lkey(n)); }
    expect(lifo).toEqual([7, 6, 5, 4, 3, 2, 1, 0]);
    expect(bpfListEmpty(head)).toBe(true);

    for (const o of objs) expect(bpfListPush(head, o + LNODE, true)).toBe(true);
    expect(bpfListCheck(head)).toEqual([]);
    expect(bpfListNodes(head).map(lkey)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const fifo: number[] = [];
    for (let i = 0; i < 8; i++) fifo.push(lkey(bpfListPop(head, false)));
    expect(fifo).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);

    // pop_back takes from the tail.
    for (const o of objs) bpfListPush(head, o + LNODE, true);
    expect(lkey(bpfListPop(head, true))).toBe(7);
    expect(lkey(bpfListPop(head, true))).toBe(6);
    expect(bpfListNodes(head).map(lkey)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(bpfListCheck(head)).toEqual([]);
  });

  it('an empty (all-zero) head: pop is 0, peeks are 0, empty; first use initialises it lazily', () => {
    const { head } = newRoots();
    expect(bpfListEmpty(head)).toBe(true);
    expect(bpfListFront(head)).toBe(0);
    expect(bpfListBack(head)).toBe(0);
    expect(bpfListNodes(head)).toEqual([]);
    expect(bpfListCheck(head)).toEqual([]);
    expect(bpfListPop(head, false)).toBe(0);
    expect(bpfListPop(head, true)).toBe(0);
    // INIT_LIST_HEAD happened: next = prev = head, still empty.
    expect(ld(head + LH_NEXT)).toBe(head);
    expect(ld(head + LH_PREV)).toBe(head);
    expect(bpfListEmpty(head)).toBe(true);
    expect(bpfListFront(head)).toBe(0);
    expect(bpfListBack(head)).toBe(0);
    expect(bpfListCheck(head)).toEqual([]);
    // A fresh head's first push works without a pop first.
    const h2 = newRoots().head;
    const o = newObj(1);
    expect(bpfListPush(h2, o + LNODE, true)).toBe(true);
    expect(bpfListNodes(h2)).toEqual([o + LNODE]);
    expect(bpfListCheck(h2)).toEqual([]);
  });

  it('an owned or POISON node cannot be pushed: false, node and lists untouched', () => {
    const a = newRoots().head, b = newRoots().head;
    const o1 = newObj(1), o2 = newObj(2);
    expect(bpfListPush(a, o1 + LNODE, true)).toBe(true);
    expect(bpfListPush(a, o2 + LNODE, true)).toBe(true);
    const nodeBefore = words(o1 + LNODE, BPF_LIST_NODE_SIZE);
    const aBefore = words(a, 16);
    expect(bpfListPush(b, o1 + LNODE, false)).toBe(false); // in list a
    expect(bpfListPush(a, o1 + LNODE, true)).toBe(false);  // double push to the same list
    expect(words(o1 + LNODE, BPF_LIST_NODE_SIZE)).toEqual(nodeBefore);
    expect(words(a, 16)).toEqual(aBefore);
    expect(bpfListNodes(a)).toEqual([o1 + LNODE, o2 + LNODE]);
    expect(bpfListCheck(a)).toEqual([]);
    expect(bpfListEmpty(b)).toBe(true);
    expect(bpfListCheck(b)).toEqual([]);

    const o3 = newObj(3);
    st(o3 + LNODE + LN_OWNER, GRAPH_OWNER_POISON); // another CPU is mid-add
    const p = words(o3 + LNODE, BPF_LIST_NODE_SIZE);
    expect(bpfListPush(b, o3 + LNODE, true)).toBe(false);
    expect(words(o3 + LNODE, BPF_LIST_NODE_SIZE)).toEqual(p);
    expect(bpfListEmpty(b)).toBe(true);
    expect(bpfListCheck(b)).toEqual([]);
  });

  it('pop clears the owner and links (detached = zeroed) and the node can be pushed again', () => {
    const { head } = newRoots();
    const objs = [newObj(10), newObj(20), newObj(30)];
    for (const o of objs) bpfListPush(head, o + LNODE, true);
    for (const o of objs) expect(ld(o + LNODE + LN_OWNER)).toBe(head);
    const n = bpfListPop(head, false);
    expect(n).toBe(objs[0]! + LNODE);
    expect(ld(n + LN_OWNER)).toBe(0);
    expect(ld(n + LN_NEXT)).toBe(0);
    expect(ld(n + LN_PREV)).toBe(0);
    expect(bpfListCheck(head)).toEqual([]);
    expect(bpfListNodes(head).map(lkey)).toEqual([20, 30]);
    const h2 = newRoots().head;
    expect(bpfListPush(h2, n, false)).toBe(true);
    expect(ld(n + LN_OWNER)).toBe(h2);
  });

  it('pop of a node whose owner is not the head (the kernel WARN) returns 0 and changes nothing', () => {
    const { head } = newRoots();
    const o1 = newObj(1), o2 = newObj(2);
    bpfListPush(head, o1 + LNODE, true);
    bpfListPush(head, o2 + LNODE, true);
    st(o1 + LNODE + LN_OWNER, head + 4096);
    const before = [...words(head, 16), ...words(o1, OBJ_SIZE), ...words(o2, OBJ_SIZE)];
    expect(bpfListPop(head, false)).toBe(0);
    expect([...words(head, 16), ...words(o1, OBJ_SIZE), ...words(o2, OBJ_SIZE)]).toEqual(before);
    expect(bpfListPop(head, true)).toBe(o2 + LNODE); // the good end still pops
  });

  it('takeAll detaches every node in order, owners 0, head empty and reusable', () => {
    const { head } = newRoots();
    const objs = Array.from({ length: 20 }, (_, i) => newObj(i));
    for (const o of objs) bpfListPush(head, o + LNODE, (lkey(o + LNODE) & 1) === 0);
    const order = bpfListNodes(head);
    const out: number[] = [];
    expect(bpfListTakeAll(head, out)).toBe(20);
    expect(out).toEqual(order);
    expect(new Set(out)).toEqual(new Set(objs.map((o) => o + LNODE)));
    for (const n of out) expect(words(n, 12)).toEqual([0, 0, 0]);
    expect(bpfListEmpty(head)).toBe(true);
    expect(bpfListCheck(head)).toEqual([]);
    expect(bpfListTakeAll(head, out)).toBe(0);
    expect(bpfListTakeAll(newRoots().head, out)).toBe(0); // never-used head
    expect(bpfListPush(head, out[3]!, true)).toBe(true);
    expect(bpfListNodes(head)).toEqual([out[3]]);
  });

  it('check detects a wrong prev, a wrong owner, a cycle not through the head, a half-initialised head', () => {
    const mk = (): { head: number; nodes: number[] } => {
      const { head } = newRoots();
      for (let i = 0; i < 5; i++) bpfListPush(head, newObj(i) + LNODE, true);
      expect(bpfListCheck(head)).toEqual([]);
      return { head, nodes: bpfListNodes(head) };
    };
    let { head, nodes } = mk();
    st(nodes[2]! + LN_PREV, nodes[0]!);
    expect(bpfListCheck(head).join('\n')).toMatch(/prev/);

    ({ head, nodes } = mk());
    st(head + LH_PREV, nodes[1]!); // head.prev must be the last node
    expect(bpfListCheck(head).length).toBeGreaterThan(0);

    ({ head, nodes } = mk());
    st(nodes[3]! + LN_OWNER, 0);
    expect(bpfListCheck(head).join('\n')).toMatch(/owner/);

    ({ head, nodes } = mk());
    st(nodes[4]! + LN_NEXT, nodes[1]!); // last -> second: a loop that never returns to the head
    const probs = bpfListCheck(head);
    expect(probs.join('\n')).toMatch(/cycle/);

    ({ head, nodes } = mk());
    st(nodes[2]! + LN_NEXT, 0);
    expect(bpfListCheck(head).join('\n')).toMatch(/invalid next/);

    ({ head } = mk());
    st(head + LH_PREV, 0);
    expect(bpfListCheck(head).join('\n')).toMatch(/half-initialised/);

    // maxNodes stops a long walk and reports it.
    ({ head } = mk());
    expect(bpfListCheck(head, 3).join('\n')).toMatch(/more than 3/);
  });
});

describe('bpf_rbtree', () => {
  function expectTreeMatches(root: number, model: number[]): void {
    expect(bpfRbtreeCheck(root, less)).toEqual([]);
    expect(bpfRbtreeNodes(root)).toEqual(model);
    expect(bpfRbtreeFirst(root)).toBe(model.length ? model[0] : 0);
    const h = bpfRbtreeHeight(root);
    expect(h).toBeLessThanOrEqual(2 * Math.log2(model.length + 1));
  }
  /** Model insert: after every equal key (equal keys go right, so insertion order is kept). */
  function modelInsert(model: number[], node: number): void {
    let lo = 0, hi = model.length;
    while (lo < hi) { const m = (lo + hi) >> 1; if (rkey(node) < rkey(model[m]!)) hi = m; else lo = m + 1; }
    model.splice(lo, 0, node);
  }

  it('random add/remove with duplicates matches a sorted model after every operation', () => {
    for (const seed of [1, 2, 3]) {
      const rnd = prng(seed);
      const { root } = newRoots();
      const pool = Array.from({ length: 300 }, () => newObj(0) + RBNODE);
      const free = new Set(pool);
      const model: number[] = [];
      let adds = 0, removes = 0, refused = 0;
      for (let op = 0; op < 3000; op++) {
        const r = rnd();
        if ((r < 0.55 && free.size > 0) || model.length === 0) {
          const node = [...free][Math.floor(rnd() * free.size)]!;
          st(node - RBNODE + KEY, Math.floor(rnd() * 40)); // 40 keys over up to 300 nodes: many duplicates
          expect(bpfRbtreeAdd(root, node, less)).toBe(true);
          expect(ld(node + RBN_OWNER)).toBe(root);
          free.delete(node);
          modelInsert(model, node);
          adds++;
        } else if (r < 0.95 || free.size === 0) {
          const i = Math.floor(rnd() * model.length);
          const node = model[i]!;
          expect(bpfRbtreeRemove(root, node)).toBe(true);
          expect(words(node, BPF_RB_NODE_SIZE)).toEqual([0, 0, 0, 0, 0, 0]);
          model.splice(i, 1);
          free.add(node);
          removes++;
        } else {
          // Removing a node that is in no tree: refused, nothing changes.
          const node = [...free][Math.floor(rnd() * free.size)]!;
          const before = words(root, 8);
          expect(bpfRbtreeRemove(root, node)).toBe(false);
          expect(words(root, 8)).toEqual(before);
          refused++;
        }
        expectTreeMatches(root, model);
        expect(model.map(rkey)).toEqual([...model.map(rkey)].sort((x, y) => x - y));
      }
      expect(adds).toBeGreaterThan(1000);
      expect(removes).toBeGreaterThan(1000);
      expect(refused).toBeGreaterThan(0);
      expect(model.length).toBeGreaterThan(50);
    }
  });

  it('sorted insertion stays balanced (height <= 2*log2(n+1)); draining from the front keeps first right', () => {
    for (const dir of [1, -1]) {
      const { root } = newRoots();
      const model: number[] = [];
      const n = 1023;
      for (let i = 0; i < n; i++) {
        const node = newObj(dir > 0 ? i : n - i) + RBNODE;
        expect(bpfRbtreeAdd(root, node, less)).toBe(true);
        modelInsert(model, node);
        expect(bpfRbtreeFirst(root)).toBe(model[0]);
      }
      expect(bpfRbtreeCheck(root, less)).toEqual([]);
      expect(bpfRbtreeHeight(root)).toBeLessThanOrEqual(2 * Math.log2(n + 1));
      expect(bpfRbtreeNodes(root)).toEqual(model);
      while (model.length) {
        const first = bpfRbtreeFirst(root);
        expect(first).toBe(model[0]);
        expect(bpfRbtreeRemove(root, first)).toBe(true);
        model.shift();
        if (model.length % 97 === 0) expectTreeMatches(root, model);
      }
      expect(bpfRbtreeRoot(root)).toBe(0);
      expect(bpfRbtreeFirst(root)).toBe(0);
    }
  });

  it('kernel rbtree_success: first_and_remove and add_and_remove', () => {
    // first_and_remove: keys 3 (data 4), 5 (data 6), 1 (data 2)
    const { root } = newRoots();
    const mk = (key: number, data: number): number => { const o = newObj(key); st(o + 4, data); return o + RBNODE; };
    const data = (n: number): number => ld(n - RBNODE + 4);
    for (const [k, d] of [[3, 4], [5, 6], [1, 2]] as const) expect(bpfRbtreeAdd(root, mk(k, d), less)).toBe(true);
    const f0 = bpfRbtreeFirst(root);
    expect(data(f0)).toBe(2);
    expect(bpfRbtreeRemove(root, f0)).toBe(true);
    expect(rkey(f0)).toBe(1);
    expect(data(bpfRbtreeFirst(root))).toBe(4);
    // api_release_aliasing: the second remove through an alias fails
    expect(bpfRbtreeRemove(root, f0)).toBe(false);

    // add_and_remove: keys 5 and 3, remove the 5
    const r2 = newRoots().root;
    const n5 = mk(5, 0), n3 = mk(3, 0);
    bpfRbtreeAdd(r2, n5, less);
    bpfRbtreeAdd(r2, n3, less);
    expect(bpfRbtreeRemove(r2, n5)).toBe(true);
    expect(rkey(n5)).toBe(5);
    expect(bpfRbtreeNodes(r2)).toEqual([n3]);
    expect(bpfRbtreeCheck(r2, less)).toEqual([]);
  });

  it('root/left/right peeks follow the links, and are 0 for a node this tree does not own', () => {
    const { root } = newRoots();
    const other = newRoots().root;
    const nodes = Array.from({ length: 31 }, (_, i) => newObj(i) + RBNODE);
    for (const n of nodes) bpfRbtreeAdd(root, n, less);
    const r = bpfRbtreeRoot(root);
    expect(r).toBe(ld(root + RBR_ROOT));
    expect(ld(r + RBN_PARENT)).toBe(0);
    for (const n of nodes) {
      expect(bpfRbtreeLeft(root, n)).toBe(ld(n + RBN_LEFT));
      expect(bpfRbtreeRight(root, n)).toBe(ld(n + RBN_RIGHT));
      expect(bpfRbtreeLeft(other, n)).toBe(0);
      expect(bpfRbtreeRight(other, n)).toBe(0);
    }
    // Walking the tree through the peeks visits every node.
    const seen: number[] = [];
    const walk = (n: number): void => { if (!n) return; walk(bpfRbtreeLeft(root, n)); seen.push(n); walk(bpfRbtreeRight(root, n)); };
    walk(r);
    expect(seen).toEqual(nodes);
    const loose = newObj(99) + RBNODE;
    st(loose + RBN_LEFT, nodes[0]!); // garbage links on an unowned node are not followed
    expect(bpfRbtreeLeft(root, loose)).toBe(0);
    expect(bpfRbtreeRoot(newRoots().root)).toBe(0);
    expect(bpfRbtreeFirst(newRoots().root)).toBe(0);
  });

  it('remove of a node owned by another root, by none, or mid-add (POISON): false, nothing changes', () => {
    const a = newRoots().root, b = newRoots().root;
    const objs = Array.from({ length: 40 }, (_, i) => newObj(i));
    objs.forEach((o, i) => bpfRbtreeAdd(i & 1 ? b : a, o + RBNODE, less));
    const snap = (): number[] => [...words(a, 8), ...words(b, 8), ...objs.flatMap((o) => words(o, OBJ_SIZE))];
    const before = snap();
    expect(bpfRbtreeRemove(a, objs[1]! + RBNODE)).toBe(false); // in b
    expect(bpfRbtreeRemove(b, objs[0]! + RBNODE)).toBe(false); // in a
    expect(snap()).toEqual(before);

    const loose = newObj(7);
    expect(bpfRbtreeRemove(a, loose + RBNODE)).toBe(false);
    st(loose + RBNODE + RBN_OWNER, GRAPH_OWNER_POISON);
    expect(bpfRbtreeRemove(a, loose + RBNODE)).toBe(false);
    expect(snap()).toEqual(before);

    // add of an owned node is refused, untouched
    const nb = words(objs[2]! + RBNODE, BPF_RB_NODE_SIZE);
    expect(bpfRbtreeAdd(b, objs[2]! + RBNODE, less)).toBe(false);
    expect(bpfRbtreeAdd(a, objs[2]! + RBNODE, less)).toBe(false);
    expect(words(objs[2]! + RBNODE, BPF_RB_NODE_SIZE)).toEqual(nb);
    expect(snap()).toEqual(before);
    expect(bpfRbtreeCheck(a, less)).toEqual([]);
    expect(bpfRbtreeCheck(b, less)).toEqual([]);
  });

  it('a less that throws on the k-th comparison leaves the tree byte-identical and the node POISON', () => {
    const { root } = newRoots();
    const objs = Array.from({ length: 100 }, (_, i) => newObj((i * 37) % 100));
    for (const o of objs) bpfRbtreeAdd(root, o + RBNODE, less);
    const snap = (): number[] => [...words(root, 8), ...objs.flatMap((o) => words(o, OBJ_SIZE))];
    const before = snap();
    const x = newObj(50);
    const xn = x + RBNODE;
    let comparisons = 0;
    const model = bpfRbtreeNodes(root);
    for (const k of [1, 2, 3, 5, 7]) {
      let calls = 0;
      const throwing: RbLess = (a, b) => { if (++calls === k) throw new Error(`boom at ${k}`); return less(a, b); };
      expect(() => bpfRbtreeAdd(root, xn, throwing)).toThrow(`boom at ${k}`);
      expect(calls).toBe(k);
      expect(snap()).toEqual(before);
      expect(ld(xn + RBN_OWNER)).toBe(GRAPH_OWNER_POISON);
      expect([ld(xn + RBN_PARENT), ld(xn + RBN_LEFT), ld(xn + RBN_RIGHT), ld(xn + RBN_COLOR)]).toEqual([0, 0, 0, 0]);
      // While POISON, another add is refused.
      expect(bpfRbtreeAdd(root, xn, less)).toBe(false);
      // The caller unwinds: clears the claim.
      st(xn + RBN_OWNER, 0);
    }
    expect(bpfRbtreeCheck(root, less)).toEqual([]);
    const counting: RbLess = (a, b) => { comparisons++; return less(a, b); };
    expect(bpfRbtreeAdd(root, xn, counting)).toBe(true);
    expect(comparisons).toBeGreaterThan(5); // so every k above was really mid-walk
    modelInsert(model, xn);
    expectTreeMatches(root, model);
  });

  it('takeAll detaches every node in order, owners 0, root empty and reusable', () => {
    const { root } = newRoots();
    const rnd = prng(9);
    const model: number[] = [];
    for (let i = 0; i < 200; i++) {
      const n = newObj(Math.floor(rnd() * 50)) + RBNODE;
      bpfRbtreeAdd(root, n, less);
      modelInsert(model, n);
    }
    const out: number[] = [42];
    expect(bpfRbtreeTakeAll(root, out)).toBe(200);
    expect(out.slice(1)).toEqual(model);
    for (const n of model) expect(words(n, BPF_RB_NODE_SIZE)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(words(root, 8)).toEqual([0, 0]);
    expect(bpfRbtreeCheck(root, less)).toEqual([]);
    expect(bpfRbtreeTakeAll(root, out)).toBe(0);
    expect(bpfRbtreeAdd(root, model[5]!, less)).toBe(true);
    expectTreeMatches(root, [model[5]!]);
  });

  it('check detects a red-red pair, a black-height break, a wrong owner/parent/leftmost, disorder, a cycle', () => {
    const mk = (): { root: number; nodes: number[] } => {
      const { root } = newRoots();
      for (let i = 0; i < 64; i++) bpfRbtreeAdd(root, newObj(i) + RBNODE, less);
      expect(bpfRbtreeCheck(root, less)).toEqual([]);
      return { root, nodes: bpfRbtreeNodes(root) };
    };
    const all = (root: number): string => bpfRbtreeCheck(root, less).join('\n');

    // red-red: a red node's child painted red (choose a red node with a child; 64 sequential adds make some)
    let { root, nodes } = mk();
    const redParent = nodes.find((n) => ld(n + RBN_COLOR) === RB_RED && (ld(n + RBN_LEFT) || ld(n + RBN_RIGHT)));
    expect(redParent).toBeDefined();
    const child = ld(redParent! + RBN_LEFT) || ld(redParent! + RBN_RIGHT);
    st(child + RBN_COLOR, RB_RED);
    expect(all(root)).toMatch(/red node .* has red/);

    // black height: paint one black leaf red (its paths lose a black)
    ({ root, nodes } = mk());
    const blackLeaf = nodes.find((n) => ld(n + RBN_COLOR) === RB_BLACK && !ld(n + RBN_LEFT) && !ld(n + RBN_RIGHT));
    expect(blackLeaf).toBeDefined();
    st(blackLeaf! + RBN_COLOR, RB_RED);
    expect(all(root)).toMatch(/black nodes/);

    // root must be black
    ({ root } = mk());
    st(ld(root + RBR_ROOT) + RBN_COLOR, RB_RED);
    expect(all(root)).toMatch(/not black/);

    ({ root, nodes } = mk());
    st(nodes[10]! + RBN_OWNER, root + 4096);
    expect(all(root)).toMatch(/owner/);

    ({ root, nodes } = mk());
    const withParent = nodes.find((n) => ld(n + RBN_PARENT) !== 0)!;
    st(withParent + RBN_PARENT, nodes.find((n) => n !== ld(withParent + RBN_PARENT) && n !== withParent)!);
    expect(all(root)).toMatch(/has parent/);

    ({ root, nodes } = mk());
    st(root + RBR_LEFTMOST, nodes[1]!);
    expect(all(root)).toMatch(/leftmost/);

    ({ root, nodes } = mk());
    st(nodes[20]! - RBNODE + KEY, 1000); // key now larger than its successors
    expect(all(root)).toMatch(/out of order/);
    expect(bpfRbtreeCheck(root).join('\n')).not.toMatch(/out of order/); // no less -> order not checked

    ({ root, nodes } = mk());
    const leaf = nodes.find((n) => !ld(n + RBN_LEFT) && !ld(n + RBN_RIGHT))!;
    st(leaf + RBN_LEFT, ld(root + RBR_ROOT));
    expect(all(root)).toMatch(/cycle/);

    ({ root } = mk());
    expect(bpfRbtreeCheck(root, less, 10).join('\n')).toMatch(/more than 10/);

    // A height that violates the bound is caught even if colours were forged consistently:
    // a 3-node chain all black would break black height; a chain red-black-... is caught by red-red.
    const r3 = newRoots().root;
    const c = [newObj(1) + RBNODE, newObj(2) + RBNODE, newObj(3) + RBNODE];
    st(r3 + RBR_ROOT, c[0]!); st(r3 + RBR_LEFTMOST, c[0]!);
    st(c[0]! + RBN_RIGHT, c[1]!); st(c[1]! + RBN_PARENT, c[0]!);
    st(c[1]! + RBN_RIGHT, c[2]!); st(c[2]! + RBN_PARENT, c[1]!);
    for (const n of c) { st(n + RBN_COLOR, RB_BLACK); st(n + RBN_OWNER, r3); }
    expect(bpfRbtreeCheck(r3, less).length).toBeGreaterThan(0);
  });
});
