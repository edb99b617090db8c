// refcounted_kptr.c runtime cases: a node type with bpf_rb_node, bpf_list_node and bpf_refcount
// in a tree and (a second reference from bpf_refcount_acquire) in a list has refcount 2; removing
// it from the tree twice (second through an alias, then through the list's reference) fails;
// removing a node owned by another tree returns NULL; adding an owned node again returns -EINVAL
// and drops the passed reference; after every reference is dropped the object is freed (through
// RCU); a throw holding an acquired reference drops only that one; two CPUs churning one tree
// and one list free every object exactly once; an abort never unclaims another CPU's add (see
// the describe at the end). After every test (its map closed): graph objects back
// where they started, no splat.
import { describe, it, expect } from 'vitest';
import type { Program } from '../../src/runtime/runtime.js';
import type { AbortPolicy } from '../../src/prog/prog_run.js';
import { graphObjStats, objType } from '../../src/graph/bpf_obj.js';
import { I32 } from '../../src/mem/arena.js';
import { EINVAL } from '../../src/errno.js';
import { graphSuite, u32, rdI32 } from './graph_harness.js';

const REF = 40; // bpf_refcount of gr_rcnode

const g = graphSuite({
  runtime: { cpus: 2, memoryBytes: 64 << 20 },
  afterEachChecks: () => { expect(graphObjStats().rcuPending).toBe(0); },
});
const { mk, maps, progs } = g;

async function setup(abortPolicy: AbortPolicy = 'disable'): Promise<{ p: Program; run: (cpu: number, args: Record<string, unknown>) => Promise<number>; slots: (n: number) => number[] }> {
  const rcv = mk({
    type: 'array', name: 'rcv', keySize: 4, valueSize: 40, maxEntries: 2,
    fields: [{ type: 'bpf_spin_lock', offset: 0 },
      { type: 'bpf_rb_root', offset: 8, contains: { type: 'gr_rcnode', field: 0 } },
      { type: 'bpf_list_head', offset: 24, contains: { type: 'gr_rcnode', field: 24 } }],
  });
  const res = mk({ type: 'array', name: 'res', keySize: 4, valueSize: 64, maxEntries: 1 });
  const p = await g.load('gr_refcnt.mjs', { maps: { rcv, res }, abortPolicy });
  return {
    p,
    run: async (cpu, args) => (await p.testRun({ cpu, args })).retval,
    slots: (n) => { const b = res.lookup(u32(0)); return Array.from({ length: n }, (_, i) => rdI32(b, 4 * i)); },
  };
}
/** The refcount word of the object at `o`, read from kernel memory. */
const refcount = (o: number): number => Atomics.load(I32, (o + REF) >> 2);

describe('refcounted_kptr', () => {
  it('insert_in_tree_and_list: rbtree_add 0, list_push_front 0, refcount 2 under the lock and after; dropping both references frees the object once rt.idle() resolved (live back, rcuPending 0, its header dead)', async () => {
    const { run, slots } = await setup();
    const before = graphObjStats();
    expect(await run(0, { op: 'both' })).toBe(0);
    const s = slots(4);
    expect(s.slice(0, 3)).toEqual([0, 0, 2]);
    const o = s[3]!;
    expect(refcount(o)).toBe(2);
    expect(objType(o)?.name).toBe('gr_rcnode');
    expect(graphObjStats().live).toBe(before.live + 1);
    expect(await run(1, { op: 'drop_all' })).toBe(0);
    expect(slots(2)).toEqual([1, 1]); // one list node, one tree node: the same object
    await g.rt.idle();
    const after = graphObjStats();
    expect(after.live).toBe(before.live);
    expect(after.frees - before.frees).toBe(1);
    expect(after.rcuPending).toBe(0);
    expect(objType(o)).toBeUndefined();
  });

  it('insert_double_del (tree): the first remove returns the node (refcount 2: the tree\'s reference is now the program\'s), the second through the alias returns 0; after its drop refcount 1, and a remove through the list\'s non-owning reference returns 0', async () => {
    const { run, slots } = await setup();
    expect(await run(0, { op: 'both' })).toBe(0);
    const o = slots(4)[3]!;
    const before = graphObjStats();
    expect(await run(1, { op: 'tree_remove_twice' })).toBe(0);
    // found, removed, alias remove 0, refcount 2, list-ref remove 0, list_data 456, tree empty
    expect(slots(7)).toEqual([1, 1, 0, 2, 0, 456, 0]);
    expect(refcount(o)).toBe(1);
    expect(graphObjStats().live).toBe(before.live); // still in the list
    expect(objType(o)?.name).toBe('gr_rcnode');
  });

  it('rbtree_wrong_owner_remove_fail: a node in tree B, made non-owning under A\'s lock by a push to A\'s list, cannot be removed from A\'s tree: remove returns 0, refcount stays 2', async () => {
    const { run, slots } = await setup();
    const before = graphObjStats();
    expect(await run(0, { op: 'wrong_owner', key: 0, other: 1 })).toBe(0);
    const s = slots(5);
    expect(s.slice(0, 4)).toEqual([0, 0, 0, 2]);
    expect(refcount(s[4]!)).toBe(2);
    expect(graphObjStats().live).toBe(before.live + 1);
  });

  it(`adding an already-owned node: rbtree_add and list_push_back of a second reference return -EINVAL (-${EINVAL}) and drop that reference (refcount 2 -> 1, then 3 -> 2); the push to the free list node succeeds`, async () => {
    const { run, slots } = await setup();
    const before = graphObjStats();
    expect(await run(1, { op: 'add_owned' })).toBe(0);
    const s = slots(9);
    expect(s.slice(0, 8)).toEqual([0, 2, -EINVAL, 1, 0, 2, -EINVAL, 2]);
    expect(refcount(s[8]!)).toBe(2); // the tree's and the list's
    expect(graphObjStats().live).toBe(before.live + 1);
    expect(graphObjStats().refcountErrors).toBe(0);
    // both references go: the map free drops them (the node is on the tree and on the list)
  });

  it('map free with refcounted nodes in both collections: every node freed once (live back after rt.idle(), no refcount underflow)', async () => {
    const { run, slots } = await setup();
    const before = graphObjStats();
    expect(await run(0, { op: 'both', key: 0 })).toBe(0);
    expect(await run(1, { op: 'both', key: 1, other: 0 })).toBe(0);
    expect(await run(0, { op: 'wrong_owner', key: 0, other: 1 })).toBe(0);
    const o = slots(5)[4]!;
    expect(graphObjStats().live).toBe(before.live + 3);
    for (const p of progs.splice(0)) await p.unload();
    for (const m of maps.splice(0)) await m.close();
    await g.rt.idle();
    const after = graphObjStats();
    expect(after.live).toBe(before.live);
    expect(after.frees - before.frees).toBe(3);
    expect(after.teardownNodes - before.teardownNodes).toBe(6);
    expect(after.refcountErrors).toBe(0);
    expect(objType(o)).toBeUndefined();
  });

  it('bpf_throw holding a bpf_refcount_acquire reference to a node in the tree and the list: retval 21, refcount 3 -> 2 (only that reference dropped), unwound { locks: 0, objects: 1 }, the object stays live; no splat', async () => {
    const { run, slots, p } = await setup();
    expect(await run(0, { op: 'both' })).toBe(0);
    const o = slots(4)[3]!;
    const before = graphObjStats();
    expect(await run(1, { op: 'acquire_throw' })).toBe(21);
    const s = slots(2);
    expect(s).toEqual([o, 3]);
    expect(refcount(o)).toBe(2);
    expect(p.stats().unwound).toEqual({ locks: 0, objects: 1, deferred: 0 });
    expect(p.stats().exceptions).toBe(1);
    expect(graphObjStats().live).toBe(before.live);
    expect(graphObjStats().frees).toBe(before.frees);
    expect(objType(o)?.name).toBe('gr_rcnode');
  });
});

describe('refcounted nodes shared by parallel CPUs', () => {
  it('2 CPUs x 1,000 runs: each adds a refcounted node to the shared tree and list, then pops the list front and removes the tree first and drops both: every run 0, 2,000 objects allocated and 2,000 freed (each exactly once), no refcount underflow, both collections empty', async () => {
    const { p, run, slots } = await setup();
    const before = graphObjStats();
    const r = await g.rt.runWorkload({ cpus: 'all', program: p, iterations: 1000, args: { op: 'churn', key: 0, other: 1 } });
    expect(r.errors).toEqual({});
    expect(r.ops).toBe(2000);
    await g.rt.idle();
    const after = graphObjStats();
    expect(after.allocs - before.allocs).toBe(2000);
    expect(after.frees - before.frees).toBe(2000);
    expect(after.live).toBe(before.live);
    expect(after.refcountErrors).toBe(0);
    expect(after.rcuPending).toBe(0);
    expect(await run(0, { op: 'drop_all' })).toBe(0);
    expect(slots(2)).toEqual([0, 0]);
  });
});

describe('the abort only unclaims the add it cut short', () => {
  // Regression: unwinding cleared a POISON owner word on every owning reference the aborted run
  // held, wiping another CPU's in-flight claim on a shared refcounted node. It now unclaims only
  // the node its own add claimed (RunFrame.adding, src/prog/run_state.ts).
  it("CPU 0 adds refcounted X to tree A and waits inside less (X claimed); CPU 1 takes a reference to X from a list and throws (unwound), then tries to add X to tree B: -EINVAL expected; CPU 0's add then completes (0)", async () => {
    const { p } = await setup('continue');
    const res = maps[1]!;
    const flag = (i: number): number => rdI32(res.lookup(u32(0)), 4 * i);
    const a = p.testRun({ cpu: 0, args: { op: 'add_wait', key: 0, other: 1 } });
    let rB1 = NaN, rB2 = NaN;
    try {
      for (let t = 0; t < 5000 && flag(12) !== 1; t++) await new Promise((r) => setTimeout(r, 1));
      expect(flag(12)).toBe(1);
      rB1 = (await p.testRun({ cpu: 1, args: { op: 'steal', phase: 'throw', key: 0, other: 1 } })).retval;
      rB2 = (await p.testRun({ cpu: 1, args: { op: 'steal', phase: 'add', key: 0, other: 1 } })).retval;
    } finally {
      // whatever happened, CPU 0's comparator is released (at most 5 s otherwise)
      if (flag(13) !== 1) await p.testRun({ cpu: 1, args: { op: 'steal', phase: 'add', key: 0, other: 1 } }).catch(() => 0);
    }
    expect((await a).retval).toBe(0);
    expect(rB1).toBe(21);
    const x = flag(14);
    expect(objType(x)?.name).toBe('gr_rcnode');
    expect(refcount(x)).toBe(2); // tree A and the list
    expect(rB2).toBe(-EINVAL);
  });
});
