// linked_list.c runtime cases on real parallel CPUs: push_front is LIFO and push_back FIFO over
// 8 nodes (bpf_list in a hash value, in an array value, and inside an allocated object:
// list_in_list), leave_in_map (nodes left in a value are freed when a 0xff user update replaces
// it), and the teardown of nodes left in a hash element that is deleted and in a map that is
// freed, evicted (lru_hash), deleted by a program, or updated with BPF_F_LOCK (array: freed, as
// the kernel's array_map_update_elem; hash: kept, updated in place); a bag dropped in NMI is
// deferred to irq_work; two CPUs share one list; a map value torn down from NMI while the
// interrupted program holds its lock frees its nodes through irq_work. After every
// test: graph objects back to where they started, accounting consistent, no splat the test did
// not ask for.
import { describe, it, expect } from 'vitest';
import type { Program } from '../../src/runtime/runtime.js';
import type { BpfMap } from '../../src/maps/bpf_map.js';
import { BPF_F_LOCK } from '../../src/maps/map_ops.js';
import { graphObjStats } from '../../src/graph/bpf_obj.js';
import { formatSplat } from '../../src/debug/splat.js';
import { graphSuite, u32, rdI32 } from './graph_harness.js';

const g = graphSuite({ runtime: { cpus: 2, memoryBytes: 64 << 20 } });
const { mk, progs } = g;
function load(m: Record<string, BpfMap>, args?: unknown): Promise<Program> {
  return g.load('gr_list.mjs', { maps: m, ...(args !== undefined ? { args } : {}) });
}
/** The list value: bpf_spin_lock @0, a list of gr_lnode @8, a list of gr_lbag @24, data @40. */
function listMap(type: 'hash' | 'array', name: string): BpfMap {
  return mk({
    type, name, keySize: 4, valueSize: 48, maxEntries: 4,
    fields: [{ type: 'bpf_spin_lock', offset: 0 },
      { type: 'bpf_list_head', offset: 8, contains: { type: 'gr_lnode', field: 0 } },
      { type: 'bpf_list_head', offset: 24, contains: { type: 'gr_lbag', field: 0 } }],
  });
}
function resMap(): BpfMap { return mk({ type: 'array', name: 'res', keySize: 4, valueSize: 256, maxEntries: 1 }); }
const slots = (res: BpfMap, from: number, n: number): number[] => {
  const b = res.lookup(u32(0));
  return Array.from({ length: n }, (_, i) => rdI32(b, 4 * (from + i)));
};

describe('linked_list push_pop_multiple: 8 nodes, push_front LIFO, push_back FIFO', () => {
  for (const type of ['hash', 'array'] as const) {
    it(`list in a ${type} value: retval 0, pop_front after 8 push_front gives keys 7..0, after 8 push_back 0..7, front/back peek 0/7, no object left`, async () => {
      const lval = listMap(type, 'lval');
      const res = resMap();
      if (type === 'hash') lval.update(u32(1), new Uint8Array(48));
      const p = await load({ lval, res });
      const before = graphObjStats();
      const r = await p.testRun({ cpu: 1, args: { op: 'push_pop', key: 1, n: 8 } });
      expect(r.retval).toBe(0);
      expect(slots(res, 0, 8)).toEqual([7, 6, 5, 4, 3, 2, 1, 0]);
      expect(slots(res, 8, 8)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(slots(res, 16, 2)).toEqual([0, 7]);
      const after = graphObjStats();
      expect(after.allocs - before.allocs).toBe(16);
      expect(after.frees - before.frees).toBe(16);
      expect(after.live).toBe(before.live);
      // the same program on the other CPU, on the now empty (initialised) list
      expect((await p.testRun({ cpu: 0, args: { op: 'push_pop', key: 1, n: 8 } })).retval).toBe(0);
      expect(slots(res, 0, 8)).toEqual([7, 6, 5, 4, 3, 2, 1, 0]);
    });
  }

  it('list_in_list: a gr_lbag (own bpf_spin_lock + list of gr_lnode) pushed into the map list and popped back: retval 0, inner data 42, bag data 43, every object freed', async () => {
    const lval = listMap('array', 'lval');
    const res = resMap();
    const p = await load({ lval, res });
    const before = graphObjStats();
    expect((await p.testRun({ cpu: 0, args: { op: 'list_in_list', key: 2 } })).retval).toBe(0);
    expect(slots(res, 0, 2)).toEqual([42, 43]);
    expect(graphObjStats().live).toBe(before.live);
    expect(graphObjStats().allocs - before.allocs).toBe(2);
  });

  it('list_in_list: bpf_obj_drop of a bag that still holds its inner node frees both at once (teardownNodes +1)', async () => {
    const lval = listMap('array', 'lval');
    const res = resMap();
    const p = await load({ lval, res });
    const before = graphObjStats();
    expect((await p.testRun({ cpu: 1, args: { op: 'list_in_list', key: 0, dropFull: true } })).retval).toBe(0);
    expect(slots(res, 1, 1)).toEqual([43]);
    const after = graphObjStats();
    expect(after.live).toBe(before.live);
    expect(after.teardownNodes - before.teardownNodes).toBe(1);
  });
});

describe('leave_in_map and teardown', () => {
  for (const type of ['array', 'hash'] as const) {
    it(`leave_in_map (${type}): 8 nodes left in the value are live; a 0xff user update frees them (live back, teardownNodes +8) and the list works again afterwards`, async () => {
      const lval = listMap(type, 'lval');
      const res = resMap();
      if (type === 'hash') lval.update(u32(0), new Uint8Array(48));
      const p = await load({ lval, res });
      const before = graphObjStats();
      expect((await p.testRun({ cpu: 0, args: { op: 'leave', key: 0, n: 8 } })).retval).toBe(0);
      expect(graphObjStats().live).toBe(before.live + 8);
      lval.update(u32(0), new Uint8Array(48).fill(0xff));
      await g.rt.idle();
      const after = graphObjStats();
      expect(after.live).toBe(before.live);
      expect(after.teardownNodes - before.teardownNodes).toBe(8);
      // the user copy never shows the special fields; the data bytes are the user's
      const v = lval.lookup(u32(0))!;
      const want = new Array(48).fill(0xff);
      want.fill(0, 0, 4).fill(0, 8, 40); // the lock and both list heads
      expect(Array.from(v)).toEqual(want);
      // the (now empty) list of the new value works: pops nothing, then LIFO/FIFO again
      expect((await p.testRun({ cpu: 1, args: { op: 'drain', key: 0 } })).retval).toBe(0);
      expect(slots(res, 0, 1)).toEqual([0]);
      expect((await p.testRun({ cpu: 1, args: { op: 'push_pop', key: 0, n: 8 } })).retval).toBe(0);
      expect(slots(res, 0, 8)).toEqual([7, 6, 5, 4, 3, 2, 1, 0]);
    });
  }

  it('BPF_F_LOCK user update (kernel: array_map_update_elem frees the fields either way; htab updates in place under the lock): the array value\'s 3 nodes are freed, the hash value\'s 3 stay (drain pops 3)', async () => {
    const arr = listMap('array', 'lval');
    const hash = listMap('hash', 'lval');
    const res = resMap();
    hash.update(u32(0), new Uint8Array(48));
    const pa = await load({ lval: arr, res });
    const ph = await load({ lval: hash, res });
    const before = graphObjStats();
    expect((await pa.testRun({ cpu: 0, args: { op: 'leave', key: 0, n: 3 } })).retval).toBe(0);
    expect((await ph.testRun({ cpu: 1, args: { op: 'leave', key: 0, n: 3 } })).retval).toBe(0);
    expect(graphObjStats().live).toBe(before.live + 6);
    arr.update(u32(0), new Uint8Array(48).fill(0xff), BPF_F_LOCK);
    hash.update(u32(0), new Uint8Array(48).fill(0xff), BPF_F_LOCK);
    await g.rt.idle();
    expect(graphObjStats().live).toBe(before.live + 3);
    expect(graphObjStats().teardownNodes - before.teardownNodes).toBe(3);
    expect(rdI32(hash.lookup(u32(0)), 40)).toBe(-1); // the data did change
    expect((await ph.testRun({ cpu: 0, args: { op: 'drain', key: 0 } })).retval).toBe(0);
    expect(slots(res, 0, 4)).toEqual([3, 100, 101, 102]);
    expect((await pa.testRun({ cpu: 0, args: { op: 'drain', key: 0 } })).retval).toBe(0);
    expect(slots(res, 0, 1)).toEqual([0]);
  });

  it('nodes left behind are the ones pushed, in order: drain pops keys 100..107 after leave', async () => {
    const lval = listMap('array', 'lval');
    const res = resMap();
    const p = await load({ lval, res });
    expect((await p.testRun({ cpu: 0, args: { op: 'leave', key: 3, n: 8 } })).retval).toBe(0);
    expect((await p.testRun({ cpu: 1, args: { op: 'drain', key: 3 } })).retval).toBe(0);
    expect(slots(res, 0, 9)).toEqual([8, 100, 101, 102, 103, 104, 105, 106, 107]);
  });

  it('deleting a hash element frees the 8 nodes left in its list (live back, teardownNodes +8); the other element keeps its 3', async () => {
    const lval = listMap('hash', 'lval');
    const res = resMap();
    lval.update(u32(1), new Uint8Array(48));
    lval.update(u32(2), new Uint8Array(48));
    const p = await load({ lval, res });
    const before = graphObjStats();
    expect((await p.testRun({ cpu: 0, args: { op: 'leave', key: 1, n: 8 } })).retval).toBe(0);
    expect((await p.testRun({ cpu: 1, args: { op: 'leave', key: 2, n: 3 } })).retval).toBe(0);
    expect(graphObjStats().live).toBe(before.live + 11);
    lval.delete(u32(1));
    await g.rt.idle();
    const after = graphObjStats();
    expect(after.live).toBe(before.live + 3);
    expect(after.teardownNodes - before.teardownNodes).toBe(8);
    expect((await p.testRun({ cpu: 0, args: { op: 'drain', key: 2 } })).retval).toBe(0);
    expect(slots(res, 0, 4)).toEqual([3, 100, 101, 102]);
  });

  for (const type of ['array', 'hash'] as const) {
    it(`map free (${type}): nodes and a bag holding an inner node left in the map are freed once the program is unloaded, the map closed and rt.idle() resolved (teardownNodes +6)`, async () => {
      const lval = listMap(type, 'lval');
      const res = resMap();
      if (type === 'hash') { lval.update(u32(0), new Uint8Array(48)); lval.update(u32(3), new Uint8Array(48)); }
      const p = await load({ lval, res });
      const before = graphObjStats();
      expect((await p.testRun({ cpu: 0, args: { op: 'leave', key: 0, n: 2 } })).retval).toBe(0);
      expect((await p.testRun({ cpu: 1, args: { op: 'leave', key: 3, n: 2 } })).retval).toBe(0);
      expect((await p.testRun({ cpu: 1, args: { op: 'list_in_list', key: 3, leave: true } })).retval).toBe(0);
      expect(graphObjStats().live).toBe(before.live + 6);
      await p.unload();
      progs.splice(progs.indexOf(p), 1);
      await lval.close();
      await g.rt.idle();
      const after = graphObjStats();
      expect(after.live).toBe(before.live);
      // 2 + 2 nodes, the bag, and the node inside the bag (torn down after the bag: iteratively)
      expect(after.teardownNodes - before.teardownNodes).toBe(6);
    });
  }

  it('a program deleting its hash element (bpf_map_delete_elem) frees the 5 nodes left in it (retval 0, live back, teardownNodes +5)', async () => {
    const lval = listMap('hash', 'lval');
    const res = resMap();
    lval.update(u32(2), new Uint8Array(48));
    const p = await load({ lval, res });
    const before = graphObjStats();
    expect((await p.testRun({ cpu: 1, args: { op: 'leave', key: 2, n: 5 } })).retval).toBe(0);
    expect(graphObjStats().live).toBe(before.live + 5);
    expect((await p.testRun({ cpu: 0, args: { op: 'delete', key: 2 } })).retval).toBe(0);
    await g.rt.idle();
    expect(graphObjStats().live).toBe(before.live);
    expect(graphObjStats().teardownNodes - before.teardownNodes).toBe(5);
    expect(lval.lookup(u32(2))).toBeUndefined();
  });

  it('lru_hash with 4 entries: 2 nodes left in each of keys 0..3 (looked up by the program: referenced), then 64 new keys inserted from user space: the evicted elements (at least one) had exactly their nodes freed (live = 2 x survivors, teardownNodes +2 x evicted)', async () => {
    const lval = mk({
      type: 'lru_hash', name: 'lval', keySize: 4, valueSize: 48, maxEntries: 4,
      fields: [{ type: 'bpf_spin_lock', offset: 0 },
        { type: 'bpf_list_head', offset: 8, contains: { type: 'gr_lnode', field: 0 } },
        { type: 'bpf_list_head', offset: 24, contains: { type: 'gr_lbag', field: 0 } }],
    });
    const res = resMap();
    const p = await load({ lval, res });
    const before = graphObjStats();
    for (let k = 0; k < 4; k++) {
      lval.update(u32(k), new Uint8Array(48));
      expect((await p.testRun({ cpu: k & 1, args: { op: 'leave', key: k, n: 2 } })).retval).toBe(0);
    }
    expect(graphObjStats().live).toBe(before.live + 8);
    for (let k = 100; k < 164; k++) lval.update(u32(k), new Uint8Array(48));
    await g.rt.idle();
    let survivors = 0;
    for (let k = 0; k < 4; k++) if (lval.lookup(u32(k)) !== undefined) survivors++;
    expect(survivors).toBeLessThan(4);
    const after = graphObjStats();
    expect(after.live).toBe(before.live + 2 * survivors);
    expect(after.teardownNodes - before.teardownNodes).toBe(2 * (4 - survivors));
  });

  it("list_in_list from NMI (testRun context 'nmi'): bpf_obj_drop of a bag still holding its node is deferred to irq_work (graphObjStats().deferred +1), and both are freed once rt.idle() resolved", async () => {
    const lval = listMap('array', 'lval');
    const res = resMap();
    const p = await load({ lval, res });
    const before = graphObjStats();
    expect((await p.testRun({ cpu: 0, context: 'nmi', args: { op: 'list_in_list', key: 1, dropFull: true } })).retval).toBe(0);
    expect(graphObjStats().deferred - before.deferred).toBe(1);
    await g.rt.idle();
    const after = graphObjStats();
    expect(after.live).toBe(before.live);
    expect(after.frees - before.frees).toBe(2);
    expect(after.teardownNodes - before.teardownNodes).toBe(1);
  });
});

describe('teardown from NMI', () => {
  // Regression: the teardown of a map value's roots took the value's bpf_spin_lock even in NMI;
  // an NMI program deleting the element whose lock the interrupted program holds got an AA
  // 'deadlock' splat and the nodes leaked. Now the NMI detaches without the lock (the holder is
  // frozen at a window) and irq_work drops the nodes (src/graph/bpf_obj.ts detachRoots).
  it("an NMI program deleting the hash element whose lock the interrupted program holds: delete 0, and once rt.idle() resolved the element's node is freed (live back, teardownNodes +1), no splat", async () => {
    const lval = listMap('hash', 'lval');
    const res = resMap();
    lval.update(u32(0), new Uint8Array(48));
    const holder = await load({ lval, res });
    const deleter = await load({ lval, res }, { op: 'delete', key: 0 });
    const before = graphObjStats();
    try {
      const inj = g.rt.inject({ cpu: 0, at: 'gr_list.cs', kind: 'nmi', program: deleter });
      expect((await holder.testRun({ cpu: 0, args: { op: 'hold_window', key: 0 } })).retval).toBe(0);
      expect(inj.fired()).toBe(1);
      expect(deleter.lastRetval(0)).toBe(0);
      expect(lval.lookup(u32(0))).toBeUndefined();
      await g.rt.idle();
      expect(g.newSplats().map(formatSplat)).toEqual([]);
      expect(graphObjStats().live).toBe(before.live);
      expect(graphObjStats().teardownNodes - before.teardownNodes).toBe(1);
    } finally {
      // a leaked node stays leaked: account for it here so the checks after this test hold
      await g.release();
      await g.rt.idle();
      g.rebase();
    }
  });
});

describe('one list shared by parallel CPUs', () => {
  for (const type of ['array', 'hash'] as const) {
    it(`${type}: 2 CPUs x 1,000 runs each push 2 nodes and pop 1 under the value lock: every run returns 0, the run counter (updated under the lock) is 2,000, exactly 2,000 nodes remain (drain pops 2,000) and live matches`, async () => {
      const lval = listMap(type, 'lval');
      const res = resMap();
      if (type === 'hash') lval.update(u32(0), new Uint8Array(48));
      const p = await load({ lval, res });
      const before = graphObjStats();
      const r = await g.rt.runWorkload({ cpus: 'all', program: p, iterations: 1000, args: { op: 'churn', key: 0 } });
      expect(r.errors).toEqual({});
      expect(r.ops).toBe(2000);
      expect(rdI32(lval.lookup(u32(0)), 40)).toBe(2000);
      expect(graphObjStats().live).toBe(before.live + 2000);
      expect(graphObjStats().allocs - before.allocs).toBe(4000);
      expect((await p.testRun({ cpu: 1, args: { op: 'drain', key: 0 } })).retval).toBe(0);
      expect(slots(res, 0, 1)).toEqual([2000]);
      expect(graphObjStats().live).toBe(before.live);
    });
  }
});
