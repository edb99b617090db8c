// hash_of_maps and array_of_maps (map_in_map.ts): creation checks, the inner-map template,
// syscall-side update/lookup/delete (promises that resolve after a grace period), the program path
// (lookupInner; outer update/delete refused), reference counting of inner maps across grace
// periods, get_next_key, iteration and batch lookups on the outer map.
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { Runtime } from '../../src/runtime/runtime.js';
import type { BpfMap, MapInMapHandle } from '../../src/maps/bpf_map.js';
import { mapById, mapRefcnt, liveMapIds } from '../../src/maps/registry.js';
import { BPF_NOEXIST, BPF_EXIST, BPF_F_INNER_MAP, BPF_F_RDONLY_PROG, BPF_F_ZERO_SEED, type MapSpec, type MapType } from '../../src/maps/map_ops.js';
import { BpfError } from '../../src/errno.js';
import { memStats } from '../../src/mm/owners.js';
import { fixture } from '../helpers.js';
import { nowMs } from '../../src/mem/arena.js';
import { formatSplat } from '../../src/debug/splat.js';

const u32 = (n: number): Uint8Array => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n >>> 0, true); return b; };
const u64 = (n: number): Uint8Array => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(n), true); return b; };
const rdU32 = (b: Uint8Array | undefined): number => (b === undefined ? -1 : new DataView(b.buffer, b.byteOffset).getUint32(0, true));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function errCode(fn: () => unknown): string {
  try { fn(); } catch (e: unknown) { if (e instanceof BpfError) return e.code; throw e; }
  return 'no error';
}
async function rejCode(p: unknown): Promise<string> {
  try { await p; } catch (e: unknown) { if (e instanceof BpfError) return e.code; throw e; }
  return 'no error';
}

const INNER: MapSpec = { type: 'array', keySize: 4, valueSize: 8, maxEntries: 4 };
const OUTER_TYPES: readonly MapType[] = ['hash_of_maps', 'array_of_maps'];

let rt: Runtime;
const open: BpfMap[] = [];
function mk(spec: MapSpec): BpfMap {
  const m = rt.createMap(spec);
  open.push(m);
  return m;
}
function outerOf(type: MapType, template: BpfMap, maxEntries = 8, flags = 0): MapInMapHandle {
  // type is one of OUTER_TYPES: the handle rt.createMap gives for those (update/delete return promises)
  return mk({ type, name: 'outer', keySize: 4, valueSize: 4, maxEntries, flags, innerMap: template }) as MapInMapHandle;
}

// watchdogMs: one test holds a program inside its read section until it releases it (a long
// run, not a stuck CPU, however loaded the machine)
beforeAll(async () => { rt = await Runtime.start({ cpus: 2, memoryBytes: 64 << 20, watchdogMs: 30_000 }); });
afterAll(async () => { await rt.stop(); });
afterEach(() => {
  for (const m of open.splice(0)) m.close();
  expect(rt.splats().map(formatSplat)).toEqual([]);
});

describe('map-in-map creation', () => {
  it('value size must be 4; the template is required and must not be a map-in-map', () => {
    const t = mk(INNER);
    for (const type of OUTER_TYPES) {
      expect(errCode(() => rt.createMap({ type, keySize: 4, valueSize: 8, maxEntries: 4, innerMap: t }))).toBe('EINVAL');
      expect(errCode(() => rt.createMap({ type, keySize: 4, valueSize: 4, maxEntries: 4 }))).toBe('EINVAL');
      const o = outerOf(type, t);
      expect(errCode(() => rt.createMap({ type, keySize: 4, valueSize: 4, maxEntries: 4, innerMap: o }))).toBe('EINVAL');
      expect(errCode(() => rt.createMap({ type, keySize: 4, valueSize: 4, maxEntries: 4, innerMap: o.impl }))).toBe('EINVAL');
    }
    const closed = rt.createMap(INNER);
    closed.close();
    expect(errCode(() => rt.createMap({ type: 'hash_of_maps', keySize: 4, valueSize: 4, maxEntries: 4, innerMap: closed }))).toBe('EBADF'); // a closed fd
  });

  it('outer-map flag checks (array_of_maps: no *_PROG access flags, no BPF_F_INNER_MAP; hash_of_maps: htab flags)', () => {
    const t = mk(INNER);
    expect(errCode(() => rt.createMap({ type: 'array_of_maps', keySize: 4, valueSize: 4, maxEntries: 4, flags: BPF_F_RDONLY_PROG, innerMap: t }))).toBe('EINVAL');
    expect(errCode(() => rt.createMap({ type: 'array_of_maps', keySize: 4, valueSize: 4, maxEntries: 4, flags: BPF_F_INNER_MAP, innerMap: t }))).toBe('EINVAL');
    expect(errCode(() => rt.createMap({ type: 'array_of_maps', keySize: 8, valueSize: 4, maxEntries: 4, innerMap: t }))).toBe('EINVAL');
    expect(errCode(() => rt.createMap({ type: 'hash_of_maps', keySize: 4, valueSize: 4, maxEntries: 0, innerMap: t }))).toBe('EINVAL');
    const h = outerOf('hash_of_maps', t, 4, BPF_F_ZERO_SEED);
    expect(h.info()).toMatchObject({ type: 'hash_of_maps', keySize: 4, valueSize: 4, maxEntries: 4, flags: BPF_F_ZERO_SEED });
    expect(h.check()).toEqual([]);
  });

  it('the template is copied: the outer map works after the template is closed; nothing leaks', async () => {
    const before = memStats().bytesInUse;
    for (const type of OUTER_TYPES) {
      const t = rt.createMap(INNER);
      const o = rt.createMap({ type, keySize: 4, valueSize: 4, maxEntries: 4, innerMap: t });
      t.close();
      const a = rt.createMap(INNER);
      await o.update(u32(1), a);
      expect(rdU32(o.lookup(u32(1)))).toBe(a.id);
      a.close();
      o.close();
    }
    await rt.rcuBarrier();
    expect(memStats().bytesInUse).toBe(before);
  });
});

describe.each(OUTER_TYPES)('%s: syscall side', (type) => {
  it('update resolves after a grace period; lookup gives the inner id; delete; errors reject', async () => {
    const t = mk(INNER);
    const o = outerOf(type, t);
    const a = mk(INNER);
    const b = mk(INNER);
    const gpsBefore = rt.stats().rcu.gpsCompleted;
    const p = o.update(u32(2), a);
    expect(p).toBeInstanceOf(Promise);
    await p;
    expect(rt.stats().rcu.gpsCompleted).toBeGreaterThan(gpsBefore);
    expect(rdU32(o.lookup(u32(2)))).toBe(a.id);
    expect(o.lookup(u32(3))).toBeUndefined();
    await o.update(u32(2), u32(b.id)); // by id (the simulation's fd)
    expect(rdU32(o.lookup(u32(2)))).toBe(b.id);
    await o.update(u32(2), b.impl); // by impl
    expect(await rejCode(o.update(u32(2), u32(4000)))).toBe('EINVAL'); // no such map
    const closed = rt.createMap(INNER);
    closed.close();
    expect(await rejCode(o.update(u32(2), closed))).toBe('EBADF'); // a closed fd
    expect(await rejCode(o.update(u32(8), a))).toBe(type === 'array_of_maps' ? 'E2BIG' : 'no error');
    expect(errCode(() => o.lookupAndDelete(u32(2)))).toBe('ENOTSUPP');
    await o.delete(u32(2));
    expect(o.lookup(u32(2))).toBeUndefined();
    expect(await rejCode(o.delete(u32(2)))).toBe('ENOENT');
    expect(o.check()).toEqual([]);
  });

  it('update flags: hash_of_maps honours NOEXIST/EXIST, array_of_maps accepts BPF_ANY only', async () => {
    const t = mk(INNER);
    const o = outerOf(type, t);
    const a = mk(INNER);
    if (type === 'hash_of_maps') {
      expect(await rejCode(o.update(u32(1), a, BPF_EXIST))).toBe('ENOENT');
      await o.update(u32(1), a, BPF_NOEXIST);
      expect(await rejCode(o.update(u32(1), a, BPF_NOEXIST))).toBe('EEXIST');
      await o.update(u32(1), a, BPF_EXIST);
    } else {
      expect(await rejCode(o.update(u32(1), a, BPF_NOEXIST))).toBe('EINVAL');
      expect(await rejCode(o.update(u32(1), a, BPF_EXIST))).toBe('EINVAL');
    }
    expect(mapRefcnt(a.impl)).toBe(type === 'hash_of_maps' ? 3 : 1); // the replaced reference is put after a GP
    await rt.rcuBarrier();
    expect(mapRefcnt(a.impl)).toBe(type === 'hash_of_maps' ? 2 : 1);
  });

  it('inner maps must match the template (type, key/value size, flags; array max_entries unless BPF_F_INNER_MAP); no nesting', async () => {
    const t = mk(INNER);
    const o = outerOf(type, t);
    const bad: MapSpec[] = [
      { ...INNER, type: 'percpu_array' },
      { ...INNER, valueSize: 16 },
      { ...INNER, maxEntries: 8 },
      { ...INNER, flags: BPF_F_INNER_MAP },
      { type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4 },
    ];
    for (const spec of bad) {
      const m = mk(spec);
      const refs = mapRefcnt(m.impl);
      expect(await rejCode(o.update(u32(0), m)), JSON.stringify(spec)).toBe('EINVAL');
      expect(mapRefcnt(m.impl)).toBe(refs);
    }
    const nested = outerOf(type, t);
    expect(await rejCode(o.update(u32(0), nested))).toBe('EINVAL');
    expect(o.lookup(u32(0))).toBeUndefined();

    // BPF_F_INNER_MAP template: any max_entries
    const ti = mk({ ...INNER, flags: BPF_F_INNER_MAP });
    const oi = outerOf(type, ti);
    await oi.update(u32(0), mk({ ...INNER, maxEntries: 100, flags: BPF_F_INNER_MAP }));
    // hash template: max_entries is not compared (kernel bpf_map_meta_equal)
    const th = mk({ type: 'hash', keySize: 8, valueSize: 8, maxEntries: 16 });
    const oh = outerOf(type, th);
    await oh.update(u32(0), mk({ type: 'hash', keySize: 8, valueSize: 8, maxEntries: 1000 }));
    expect(await rejCode(oh.update(u32(1), mk({ type: 'lru_hash', keySize: 8, valueSize: 8, maxEntries: 16 })))).toBe('EINVAL');
    expect(await rejCode(oh.update(u32(1), mk({ type: 'hash', keySize: 8, valueSize: 8, maxEntries: 16, spinLockOffset: 0 })))).toBe('EINVAL');
  });

  it('get_next_key, keys(), entries() and lookupBatch walk the outer map and yield inner ids', async () => {
    const t = mk(INNER);
    const o = outerOf(type, t, 8);
    const inner = [mk(INNER), mk(INNER), mk(INNER)];
    const keys = [1, 4, 6, 7, 3];
    for (let i = 0; i < keys.length; i++) await o.update(u32(keys[i]!), inner[i % 3]!);
    const want = new Map(keys.map((k, i) => [k, inner[i % 3]!.id]));
    const seen = new Map([...o.entries()].map(([k, v]) => [rdU32(k), rdU32(v)]));
    if (type === 'hash_of_maps') {
      expect(seen).toEqual(want);
      expect([...o.keys()].length).toBe(5);
      const first = o.getNextKey(null)!;
      expect(keys).toContain(rdU32(first));
      expect(keys).toContain(rdU32(o.getNextKey(u32(99))!)); // missing key: restart at the first
    } else {
      expect(seen).toEqual(want);
      expect([...o.keys()].map(rdU32)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]); // every index, as for arrays
      expect(rdU32(o.getNextKey(null)!)).toBe(0);
      expect(rdU32(o.getNextKey(u32(3))!)).toBe(4);
      expect(o.getNextKey(u32(7))).toBeUndefined();
    }
    const got = new Map<number, number>();
    let cursor: number | null = null;
    for (let guard = 0; guard < 20; guard++) {
      const r = o.lookupBatch(cursor, 2);
      r.keys.forEach((k, i) => got.set(rdU32(k), rdU32(r.values[i])));
      if (r.done) break;
      cursor = r.cursor;
    }
    expect(got).toEqual(want);
    expect(errCode(() => o.lookupAndDeleteBatch(null, 4))).toBe('ENOTSUPP');
    expect(o.stats().elements).toBe(5);
    expect(o.check()).toEqual([]);
  });

  it('updateBatch / deleteBatch take ids and do not wait', async () => {
    const t = mk(INNER);
    const o = outerOf(type, t);
    const a = mk(INNER);
    const b = mk(INNER);
    expect(o.updateBatch([u32(0), u32(1)], [u32(a.id), u32(b.id)])).toBe(2);
    expect(rdU32(o.lookup(u32(1)))).toBe(b.id);
    expect(o.deleteBatch([u32(0), u32(1)])).toBe(2);
    await rt.synchronizeRcu();
    await rt.rcuBarrier();
    expect(mapRefcnt(a.impl)).toBe(1);
    expect(mapRefcnt(b.impl)).toBe(1);
  });
});

describe.each(OUTER_TYPES)('%s: program side', (type) => {
  it('programs look up the inner map and use it; outer update/delete from a program is -EINVAL', async () => {
    const t = mk(INNER);
    const outer = outerOf(type, t);
    const a = mk(INNER);
    a.update(u32(1), u64(41));
    await outer.update(u32(3), a);
    const p = await rt.loadProgram(fixture('mim_prog.mjs'), { maps: { outer } });
    try {
      expect((await p.testRun({ cpu: 0, args: { op: 'id', key: 3 } })).retval).toBe(a.id);
      expect((await p.testRun({ cpu: 1, args: { op: 'id', key: 2 } })).retval).toBe(-2);
      expect((await p.testRun({ cpu: 1, args: { op: 'read', key: 3, innerKey: 1 } })).retval).toBe(41);
      expect((await p.testRun({ cpu: 0, context: 'nmi', args: { op: 'read', key: 3, innerKey: 1 } })).retval).toBe(41);
      expect((await p.testRun({ cpu: 0, args: { op: 'write', key: 3, innerKey: 2, value: 99 } })).retval).toBe(0);
      expect(rdU32(a.lookup(u32(2)))).toBe(99);
      expect((await p.testRun({ cpu: 0, args: { op: 'outer_update', key: 4, value: a.id } })).retval).toBe(-22);
      expect((await p.testRun({ cpu: 0, args: { op: 'outer_delete', key: 3 } })).retval).toBe(-22);
      expect(rdU32(outer.lookup(u32(3)))).toBe(a.id);

      // a swap is seen by the next run; the cached handle follows the new inner map
      const b = mk(INNER);
      b.update(u32(1), u64(7));
      await outer.update(u32(3), b);
      expect((await p.testRun({ cpu: 0, args: { op: 'read', key: 3, innerKey: 1 } })).retval).toBe(7);

      // syscall path from a task workload on a program CPU (no wait there; put deferred)
      expect((await p.testRun({ cpu: 1, args: { op: 'sys_update', key: 5, value: a.id } })).retval).toBe(0);
      expect(rdU32(outer.lookup(u32(5)))).toBe(a.id);
      expect((await p.testRun({ cpu: 1, args: { op: 'sys_update', key: 5, value: 4000 } })).retval).toBe(-22);
      expect((await p.testRun({ cpu: 1, args: { op: 'sys_delete', key: 5 } })).retval).toBe(0);
      expect((await p.testRun({ cpu: 1, args: { op: 'sys_delete', key: 5 } })).retval).toBe(-2);
      await rt.synchronizeRcu();
      await rt.rcuBarrier();
      expect(mapRefcnt(a.impl)).toBe(1);
      expect(outer.check()).toEqual([]);
    } finally {
      await p.unload();
    }
  });
});

describe.each(OUTER_TYPES)('%s: inner map lifetime', (type) => {
  it('a removed and closed inner map is freed only after the grace period and after no outer holds it', async () => {
    const t = mk(INNER);
    const o1 = outerOf(type, t);
    const o2 = outerOf(type, t);
    const inner = rt.createMap(INNER);
    const id = inner.id;
    await o1.update(u32(0), inner);
    await o2.update(u32(1), inner);
    expect(mapRefcnt(inner.impl)).toBe(3);
    inner.close();
    expect(mapById(id)).toBeDefined();

    const del1 = o1.delete(u32(0));
    expect(mapRefcnt(mapById(id)!)).toBe(2); // removed, not yet put: the grace period has not passed
    await del1;
    await rt.rcuBarrier();
    expect(mapById(id)).toBeDefined(); // o2 still holds it
    expect(mapRefcnt(mapById(id)!)).toBe(1);

    await o2.delete(u32(1));
    await rt.rcuBarrier();
    expect(mapById(id)).toBeUndefined();
    expect(liveMapIds()).not.toContain(id);
  });

  it('a program inside its read section keeps the removed inner map alive until it finishes', async () => {
    const t = mk(INNER);
    const outer = outerOf(type, t);
    const flag = mk({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 3 });
    const inner = rt.createMap(INNER);
    const id = inner.id;
    inner.update(u32(0), u64(1234));
    await outer.update(u32(0), inner);
    inner.close(); // only the outer map holds it now
    const p = await rt.loadProgram(fixture('mim_hold.mjs'), { maps: { outer, flag } });
    // The bounded waits below only keep a broken runtime from hanging the test (generous, for a
    // loaded machine); the program stays in its read section until the test releases it.
    const waitFor = async (cond: () => boolean, what: string): Promise<void> => {
      for (const end = nowMs() + 30_000; !cond();) {
        if (nowMs() > end) throw new Error(`${what} did not happen within 30 s`);
        await sleep(1);
      }
    };
    const release = (): void => { flag.update(u32(2), u64(1)); };
    try {
      const run = p.testRun({ cpu: 1, args: { key: 0, holdMs: 60_000 } });
      await waitFor(() => rdU32(flag.lookup(u32(0))) === 1, 'the program entering its read section');
      let deleted = false;
      const del = Promise.resolve(outer.delete(u32(0))).then(() => { deleted = true; });
      // grace periods are attempted meanwhile (the coordinator polls at least every 10 ms while
      // one waits): none may end, and the inner map may not be freed, while the program holds it
      const polls0 = rt.stats().coordinator.polls;
      await waitFor(() => rt.stats().coordinator.polls >= polls0 + 20, '20 coordinator polls');
      expect(deleted, 'the delete resolved while a program inside its read section still used the inner map').toBe(false);
      expect(mapById(id), 'the inner map was freed under a running program').toBeDefined();
      release();
      const r = await run;
      expect(r.retval).toBe(1234); // read through the old handle at the end: not poisoned
      await del; // the delete waited for the running program
      await rt.rcuBarrier();
      expect(mapById(id)).toBeUndefined();
    } finally {
      release();
      await p.unload();
    }
  });

  it('closing the outer map puts every inner map it holds', async () => {
    const t = mk(INNER);
    const o = rt.createMap({ type, keySize: 4, valueSize: 4, maxEntries: 4, innerMap: t });
    const a = rt.createMap(INNER);
    const ida = a.id;
    await o.update(u32(0), a);
    await o.update(u32(1), a);
    a.close();
    expect(mapRefcnt(mapById(ida)!)).toBe(2);
    o.close();
    expect(mapById(ida)).toBeUndefined();
  });
});
