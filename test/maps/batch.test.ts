// map_tests/htab_map_batch_ops semantics: the bucket index is the cursor, whole buckets are copied,
// -ENOSPC only when nothing could be copied, -ENOENT ("done") when the last bucket was passed, and
// lookup-and-delete empties the map. For every hash flavour.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { boot, u32, readU32, splatsOf, Scratch } from './boot.js';
import { createMap } from '../../src/maps/registry.js';
import { BpfMap, BpfBatchError } from '../../src/maps/bpf_map.js';
import { BPF_NOEXIST, BPF_F_LOCK, type MapType } from '../../src/maps/map_ops.js';
import { BpfError } from '../../src/errno.js';
import { nrCpus } from '../../src/mem/arena.js';

const TYPES: MapType[] = ['hash', 'percpu_hash', 'lru_hash', 'lru_percpu_hash'];

function valueFor(m: BpfMap, k: number): Uint8Array {
  const v = new Uint8Array(m.sysValueSize);
  const dv = new DataView(v.buffer);
  if (m.impl.percpu) for (let c = 0; c < nrCpus; c++) dv.setUint32(c * 8, k * 100 + c, true);
  else dv.setUint32(0, k * 100, true);
  return v;
}

function verify(m: BpfMap, k: Uint8Array, v: Uint8Array): void {
  const key = readU32(k);
  const dv = new DataView(v.buffer, v.byteOffset);
  if (m.impl.percpu) for (let c = 0; c < nrCpus; c++) expect(dv.getUint32(c * 8, true)).toBe(key * 100 + c);
  else expect(dv.getUint32(0, true)).toBe(key * 100);
}

/** Drain with `step` per call, growing the count on ENOSPC like the selftest's retry. */
function drain(m: BpfMap, step: number, del: boolean): { keys: number[]; calls: number } {
  const keys: number[] = [];
  let cursor: number | null = null;
  let calls = 0;
  for (;;) {
    let count = step;
    let r;
    for (;;) {
      try {
        r = del ? m.lookupAndDeleteBatch(cursor, count) : m.lookupBatch(cursor, count);
        break;
      } catch (e: unknown) {
        if (e instanceof BpfError && e.code === 'ENOSPC') { count++; continue; }
        throw e;
      }
    }
    calls++;
    r.keys.forEach((k, i) => { verify(m, k, r.values[i]!); keys.push(readU32(k)); });
    cursor = r.cursor;
    if (r.done) break;
    expect(r.keys.length).toBeGreaterThan(0);
  }
  return { keys, calls };
}

describe('batch ops', () => {
  beforeEach(() => { boot({ cpus: 3 }); });
  afterEach(() => { expect(splatsOf()).toEqual([]); });

  for (const type of TYPES) {
    it(`${type}: lookup batch with every step size, then lookup-and-delete empties the map`, () => {
      const max = 10;
      const m = new BpfMap(createMap({ type, keySize: 4, valueSize: 4, maxEntries: max }));
      // empty map: one call walks every bucket and reports done with nothing copied
      const e = m.lookupBatch(null, max);
      expect(e.done).toBe(true);
      expect(e.keys.length).toBe(0);
      const n = m.info().maxEntries >= max ? max : m.info().maxEntries;
      for (let i = 0; i < n; i++) m.update(u32(i), valueFor(m, i), BPF_NOEXIST);
      for (let step = 1; step <= n; step++) {
        const { keys } = drain(m, step, false);
        expect(keys.sort((a, b) => a - b)).toEqual([...Array(n).keys()]);
      }
      // a cursor past the last bucket is ENOENT with nothing copied
      const past = m.lookupBatch(1 << 20, 4);
      expect(past.done).toBe(true);
      expect(past.keys.length).toBe(0);
      const { keys } = drain(m, 3, true);
      expect(keys.sort((a, b) => a - b)).toEqual([...Array(n).keys()]);
      expect(m.getNextKey(null)).toBeUndefined();
      expect(m.stats().elements).toBe(0);
      expect(m.check()).toEqual([]);
      m.close();
    });
  }

  it('ENOSPC only when nothing was copied yet; otherwise stop before a bucket that does not fit', () => {
    const impl = createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4 });
    const h = impl as unknown as { hash(k: number): number; nMask: number };
    const m = new BpfMap(impl);
    const sc = new Scratch();
    const bucketOf = (k: number): number => h.hash(sc.u32(0, k)) & h.nMask;
    // two keys sharing a bucket > 0, and a third key in a lower bucket
    let a = -1; let b = -1; let c = -1;
    for (let i = 0; i < 1000 && (b < 0 || c < 0); i++) {
      const bi = bucketOf(i);
      if (a < 0 && bi > 0) a = i;
      else if (a >= 0 && b < 0 && bi === bucketOf(a)) b = i;
      else if (a >= 0 && c < 0 && bi < bucketOf(a)) c = i;
    }
    expect(b).toBeGreaterThanOrEqual(0);
    expect(c).toBeGreaterThanOrEqual(0);
    m.update(u32(a), u32(1));
    m.update(u32(b), u32(2));
    let code = '';
    try { m.lookupBatch(null, 1); } catch (e: unknown) { code = (e as BpfError).code; }
    expect(code).toBe('ENOSPC');
    const both = m.lookupBatch(null, 2);
    expect(both.keys.map((k) => readU32(k)).sort()).toEqual([a, b].sort());
    m.update(u32(c), u32(3));
    const first = m.lookupBatch(null, 2);
    expect(first.keys.map((k) => readU32(k))).toEqual([c]); // stops before the 2-element bucket
    expect(first.done).toBe(false);
    expect(first.cursor).toBe(bucketOf(a));
    const rest = m.lookupBatch(first.cursor, 2);
    expect(rest.keys.length).toBe(2);
    sc.free();
    m.close();
  });

  it('bad batch arguments → EINVAL', () => {
    const m = new BpfMap(createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4 }));
    const code = (fn: () => unknown): string => { try { fn(); } catch (e: unknown) { return (e as BpfError).code; } return 'none'; };
    expect(code(() => m.lookupBatch(null, 4, 8))).toBe('EINVAL');
    expect(code(() => m.lookupBatch(-1, 4))).toBe('EINVAL');
    expect(code(() => m.lookupBatch(null, 1.5))).toBe('EINVAL');
    expect(m.lookupBatch(null, 0)).toEqual({ keys: [], values: [], cursor: 0, done: false });
    m.close();
  });

  it('updateBatch / deleteBatch: generic per-element loops that stop at the first error the map op returns', () => {
    const m = new BpfMap(createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4 }));
    expect(m.updateBatch([u32(1), u32(2), u32(3)], [u32(10), u32(20), u32(30)])).toBe(3);
    let err: unknown;
    // key 4 fills the map, key 1 is replaced (no new element needed), key 5 does not fit: E2BIG
    try { m.updateBatch([u32(4), u32(1), u32(5), u32(6)], [u32(40), u32(11), u32(50), u32(60)]); } catch (e: unknown) { err = e; }
    expect(err).toBeInstanceOf(BpfBatchError);
    expect((err as BpfBatchError).code).toBe('E2BIG');
    expect((err as BpfBatchError).processed).toBe(2);
    expect(readU32(m.lookup(u32(4))!)).toBe(40);
    expect(readU32(m.lookup(u32(1))!)).toBe(11);
    expect(m.lookup(u32(5))).toBeUndefined();
    expect(m.lookup(u32(6))).toBeUndefined();
    expect(m.deleteBatch([u32(1), u32(2)])).toBe(2);
    err = undefined;
    try { m.deleteBatch([u32(3), u32(1), u32(4)]); } catch (e: unknown) { err = e; }
    expect(err).toBeInstanceOf(BpfBatchError);
    expect((err as BpfBatchError).code).toBe('ENOENT');
    expect((err as BpfBatchError).processed).toBe(1);
    expect([...m.keys()].map((k) => readU32(k))).toEqual([4]);
    expect(m.check()).toEqual([]);
    m.close();
  });

  for (const type of [...TYPES, 'array', 'percpu_array'] as MapType[]) {
    it(`${type}: a malformed element anywhere in updateBatch / deleteBatch is EINVAL before the map is touched`, () => {
      const m = new BpfMap(createMap({ type, keySize: 4, valueSize: 4, maxEntries: 8 }));
      m.update(u32(1), valueFor(m, 1));
      m.update(u32(2), valueFor(m, 2));
      const snapshot = (): string[] => [...m.entries()].map(([k, v]) => `${readU32(k)}:${Buffer.from(v).toString('hex')}`).sort();
      const before = snapshot();
      const good = (k: number): [Uint8Array, Uint8Array] => [u32(k), valueFor(m, k)];
      const [k3, v3] = good(3);
      const [k4, v4] = good(4);
      const cases: [string, () => unknown][] = [
        ['short key in the middle', () => m.updateBatch([k3, new Uint8Array(3), k4], [v3, v3, v4])],
        ['long value in the middle', () => m.updateBatch([k3, u32(1), k4], [v3, new Uint8Array(m.sysValueSize + 1), v4])],
        ['a key that is not a Uint8Array', () => m.updateBatch([k3, [1, 0, 0, 0] as unknown as Uint8Array, k4], [v3, v3, v4])],
        ['a missing value at the end', () => m.updateBatch([k3, k4, u32(5)], [v3, v4, undefined as unknown as Uint8Array])],
        ['keys and values of different lengths', () => m.updateBatch([k3, k4], [v3])],
        ['elem_flags BPF_NOEXIST (generic_map_update_batch allows BPF_F_LOCK only)', () => m.updateBatch([k3], [v3], BPF_NOEXIST)],
        ['elem_flags BPF_F_LOCK without a spin lock', () => m.updateBatch([k3], [v3], BPF_F_LOCK)],
        ['deleteBatch: a short key after good ones', () => m.deleteBatch([u32(1), u32(2), new Uint8Array(2)])],
        ['deleteBatch: a string key in the middle', () => m.deleteBatch([u32(1), 'x' as unknown as Uint8Array, u32(2)])],
      ];
      for (const [what, call] of cases) {
        let err: unknown;
        try { call(); } catch (e: unknown) { err = e; }
        expect(err, what).toBeInstanceOf(BpfError);
        expect((err as BpfError).code, what).toBe('EINVAL');
        expect(err, `${what}: an argument error, not a partial batch`).not.toBeInstanceOf(BpfBatchError);
        expect(snapshot(), what).toEqual(before);
      }
      expect(m.check()).toEqual([]);
      m.close();
    });
  }

  it('arrays: E2BIG from the map op mid-batch leaves exactly the elements before it updated', () => {
    const m = new BpfMap(createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 4 }));
    let err: unknown;
    try { m.updateBatch([u32(0), u32(1), u32(9), u32(2)], [u32(5), u32(6), u32(7), u32(8)]); } catch (e: unknown) { err = e; }
    expect(err).toBeInstanceOf(BpfBatchError);
    expect((err as BpfBatchError).code).toBe('E2BIG');
    expect((err as BpfBatchError).processed).toBe(2);
    expect([0, 1, 2, 3].map((i) => readU32(m.lookup(u32(i))!))).toEqual([5, 6, 0, 0]);
    m.close();
  });
});
