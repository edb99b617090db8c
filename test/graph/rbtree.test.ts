// rbtree.c runtime cases (rbtree_success): add_nodes (the program's `less` ran: its calls are
// counted), add_and_remove, first_and_remove, api_release_aliasing, and an in-order walk with
// bpf_rbtree_first/root/left/right over ~100 random keys; an NMI program's own rbtree_add inside
// the outer program's `less` leaves the outer add intact (see 'nesting'). After every
// test (its map closed): graph objects back to where they started, accounting consistent, no
// splat.
import { describe, it, expect } from 'vitest';
import type { Program } from '../../src/runtime/runtime.js';
import type { BpfMap } from '../../src/maps/bpf_map.js';
import { graphObjStats } from '../../src/graph/bpf_obj.js';
import { formatSplat } from '../../src/debug/splat.js';
import { graphSuite, u32, rdI32, prng } from './graph_harness.js';

const g = graphSuite({ runtime: { cpus: 2, memoryBytes: 64 << 20 } });
const { mk } = g;
/** A fresh tree (rbtree.c's glock + groot), the result slots, and the program. */
async function setup(o: { inner?: boolean; args?: unknown } = {}): Promise<{ p: Program; res: BpfMap; slot: (i: number) => number; slots: (from: number, n: number) => number[] }> {
  const rbv = mk({
    type: 'array', name: 'rbv', keySize: 4, valueSize: 24, maxEntries: 1,
    fields: [{ type: 'bpf_spin_lock', offset: 0 }, { type: 'bpf_rb_root', offset: 8, contains: { type: 'gr_rbnode', field: 16 } }],
  });
  const res = mk({ type: 'array', name: 'res', keySize: 4, valueSize: 1024, maxEntries: 1 });
  const p = await g.load(o.inner === true ? 'gr_rbtree.mjs?inner=1' : 'gr_rbtree.mjs', { maps: { rbv, res }, ...(o.args !== undefined ? { args: o.args } : {}) });
  const slots = (from: number, n: number): number[] => {
    const b = res.lookup(u32(0));
    return Array.from({ length: n }, (_, i) => rdI32(b, 4 * (from + i)));
  };
  return { p, res, slots, slot: (i) => slots(i, 1)[0]! };
}

describe('rbtree_success', () => {
  it('add_nodes: retval 0, less ran 3 times (once per level walked: 5; 1 < 5; 3 < 5, 3 >= 1), 3 nodes live, in order [1, 3, 5]; the map free tears them down', async () => {
    const { p, slot, slots } = await setup();
    const before = graphObjStats();
    expect((await p.testRun({ cpu: 0, args: { op: 'add_nodes' } })).retval).toBe(0);
    expect(slot(0)).toBe(3);
    expect(graphObjStats().live).toBe(before.live + 3);
    expect((await p.testRun({ cpu: 1, args: { op: 'inorder', keys: [] } })).retval).toBe(3);
    expect(slots(8, 3)).toEqual([1, 3, 5]);
  });

  it('add_and_remove: retval 0, removed_key 5; the node with key 3 stays in the tree', async () => {
    const { p, slot, slots } = await setup();
    expect((await p.testRun({ cpu: 1, args: { op: 'add_and_remove' } })).retval).toBe(0);
    expect(slot(1)).toBe(5);
    expect((await p.testRun({ cpu: 0, args: { op: 'inorder', keys: [] } })).retval).toBe(1);
    expect(slots(8, 1)).toEqual([3]);
  });

  it('first_and_remove: retval 0, first_data [2, 4], removed_key 1', async () => {
    const { p, slot, slots } = await setup();
    const before = graphObjStats();
    expect((await p.testRun({ cpu: 0, args: { op: 'first_and_remove' } })).retval).toBe(0);
    expect(slots(2, 2)).toEqual([2, 4]);
    expect(slot(1)).toBe(1);
    expect(graphObjStats().live).toBe(before.live + 2);
  });

  it('api_release_aliasing: retval 0, the first remove gives data 42, the second remove through the alias returns 0 (NULL), first_data[1] stays -1', async () => {
    const { p, slots } = await setup();
    const before = graphObjStats();
    expect((await p.testRun({ cpu: 1, args: { op: 'release_aliasing' } })).retval).toBe(0);
    expect(slots(2, 3)).toEqual([42, -1, 0]);
    const after = graphObjStats();
    expect(after.live).toBe(before.live);
    expect(after.frees - before.frees).toBe(1);
  });
});

describe('traversal', () => {
  it('100 random keys (duplicates allowed): the in-order walk via rbtreeRoot/Left/Right starts at rbtreeFirst and gives the sorted keys; draining with first+remove gives them sorted again and leaves no object', async () => {
    const { p, slots } = await setup();
    const rnd = prng(4);
    const keys = Array.from({ length: 100 }, () => Math.floor(rnd() * 500));
    const sorted = [...keys].sort((a, b) => a - b);
    const before = graphObjStats();
    // added from both CPUs: half on each
    expect((await p.testRun({ cpu: 0, args: { op: 'inorder', keys: keys.slice(0, 50) } })).retval).toBe(50);
    expect((await p.testRun({ cpu: 1, args: { op: 'inorder', keys: keys.slice(50) } })).retval).toBe(100);
    expect(slots(8, 100)).toEqual(sorted);
    expect(graphObjStats().live).toBe(before.live + 100);
    expect((await p.testRun({ cpu: 0, args: { op: 'drain' } })).retval).toBe(100);
    expect(slots(8, 100)).toEqual(sorted);
    expect(graphObjStats().live).toBe(before.live);
    expect((await p.testRun({ cpu: 1, args: { op: 'inorder', keys: [] } })).retval).toBe(0);
  });
});

describe('nesting', () => {
  // Regression: the running `less` was kept in module variables that a nested (NMI) add
  // overwrote and cleared; the outer walk then called undefined and its program was aborted.
  // kRbtreeAdd now saves and restores them around its walk (src/prog/graph_kfuncs.ts).
  it("an NMI program doing its own rbtree_add inside the outer program's less (mid-walk) leaves the outer add intact: outer retval 3 (keys [10, 20, 30]), inner retval 0, no splat", async () => {
    const outer = await setup();
    const inner = await setup({ inner: true, args: { op: 'add_nodes' } });
    try {
      expect((await outer.p.testRun({ cpu: 0, args: { op: 'inorder', keys: [10, 20] } })).retval).toBe(2);
      const inj = g.rt.inject({ cpu: 0, at: 'gr_rbtree.less', kind: 'nmi', program: inner.p });
      // adding 30 walks 10 then 20: the NMI lands in the first comparison
      const r = await outer.p.testRun({ cpu: 0, args: { op: 'inorder', keys: [30], windowInLess: true } });
      expect(inj.fired()).toBe(1);
      expect(inner.p.lastRetval(0)).toBe(0);
      expect(g.newSplats().map(formatSplat)).toEqual([]);
      expect(r.retval).toBe(3);
      expect(outer.slots(8, 3)).toEqual([10, 20, 30]);
    } finally {
      // the failure's splat is this test's own: keep the afterEach check for the rest
      g.consumeSplats();
    }
  });

  it('control: the same NMI program injected at a window outside the walk (no windowInLess: it never fires) and run on its own leaves both trees intact', async () => {
    const outer = await setup();
    const inner = await setup({ inner: true, args: { op: 'add_nodes' } });
    expect((await outer.p.testRun({ cpu: 0, args: { op: 'inorder', keys: [10, 20] } })).retval).toBe(2);
    expect((await inner.p.testRun({ cpu: 0, context: 'nmi' })).retval).toBe(0);
    expect((await outer.p.testRun({ cpu: 0, args: { op: 'inorder', keys: [30] } })).retval).toBe(3);
    expect(outer.slots(8, 3)).toEqual([10, 20, 30]);
    expect((await inner.p.testRun({ cpu: 1, args: { op: 'inorder', keys: [] } })).retval).toBe(3);
    expect(inner.slots(8, 3)).toEqual([1, 3, 5]);
  });
});
