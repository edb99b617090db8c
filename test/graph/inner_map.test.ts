// linked_list.c's inner_map cases: a bpf_list_head in a value of an inner map (array_of_maps), the
// program reaching it through outer.lookupInner: push_front then pop gives LIFO order; the lock
// binding is checked there too (no lock: aborted, "must be held"); nodes left in the inner map's
// value are freed with the inner map once the outer map drops it and a grace period passes.
import { describe, it, expect } from 'vitest';
import { graphSuite, u32 } from './graph_harness.js';
import { graphObjStats } from '../../src/graph/bpf_obj.js';
import type { BpfMap, MapInMapHandle } from '../../src/maps/bpf_map.js';

const g = graphSuite({ runtime: { cpus: 2, memoryBytes: 32 << 20 } });

const INNER = { type: 'array', keySize: 4, valueSize: 24, maxEntries: 1,
  fields: [{ type: 'bpf_spin_lock', offset: 0 }, { type: 'bpf_list_head', offset: 8, contains: { type: 'gr_inode', field: 0 } }] } as const;

async function setup(): Promise<{ outer: MapInMapHandle; inner: BpfMap }> {
  const inner = g.mk({ ...INNER, name: 'inner' });
  // an array_of_maps handle (what rt.createMap types it as): update and delete return promises
  const outer = g.mk({ type: 'array_of_maps', name: 'outer', keySize: 4, valueSize: 4, maxEntries: 1, innerMap: inner }) as MapInMapHandle;
  await outer.update(u32(0), inner);
  return { outer, inner };
}

describe('a list in an inner map', () => {
  it('push_front x3 then pop x3 through outer.lookupInner: 3, 2, 1 (retval 321), no object left', async () => {
    const { outer } = await setup();
    const p = await g.load('gr_inner_list.mjs', { maps: { outer }, args: { op: 'push_pop' } });
    const live = graphObjStats().live;
    expect((await p.testRun({ cpu: 0 })).retval).toBe(321);
    expect((await p.testRun({ cpu: 1 })).retval).toBe(321);
    expect(graphObjStats().live).toBe(live);
    expect(p.stats().violations).toBe(0);
  });

  it('without the inner value\'s lock: aborted, one prog_abort splat naming "must be held for bpf_list_head", its 3 nodes dropped', async () => {
    const { outer } = await setup();
    const p = await g.load('gr_inner_list.mjs', { maps: { outer }, args: { op: 'nolock' } });
    const live = graphObjStats().live;
    expect((await p.testRun({ cpu: 0 })).retval).toBe(-1);
    const s = g.newSplats();
    expect(s).toHaveLength(1);
    expect(s[0]!.kind).toBe('prog_abort');
    expect(s[0]!.message).toContain('bpf_spin_lock at off=0 must be held for bpf_list_head');
    expect(p.stats().unwound).toEqual({ locks: 0, objects: 3, deferred: 0 });
    expect(graphObjStats().live).toBe(live);
    g.consumeSplats();
  });

  it('nodes left in the inner value are freed once the inner map is gone (outer entry deleted, inner closed, a grace period)', async () => {
    const { outer, inner } = await setup();
    const p = await g.load('gr_inner_list.mjs', { maps: { outer }, args: { op: 'leave' } });
    const live = graphObjStats().live;
    expect((await p.testRun({ cpu: 0 })).retval).toBe(0);
    expect(graphObjStats().live).toBe(live + 2);
    await outer.delete(u32(0));
    await inner.close();
    await g.rt.idle();
    expect(graphObjStats().live).toBe(live);
  });
});
