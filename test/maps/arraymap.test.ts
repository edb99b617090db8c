// test_maps.c test_arraymap / test_arraymap_percpu, and BPF_F_LOCK with a bpf_spin_lock in the
// value (hash and array), on the main thread.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { boot, asCpu, u32, u64, readU32, readU64, Scratch, splatsOf } from './boot.js';
import { createMap } from '../../src/maps/registry.js';
import { BpfMap } from '../../src/maps/bpf_map.js';
import { BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK } from '../../src/maps/map_ops.js';
import { BpfError } from '../../src/errno.js';
import { I32, nrCpus } from '../../src/mem/arena.js';

function errCode(fn: () => unknown): string {
  try { fn(); } catch (e: unknown) { if (e instanceof BpfError) return e.code; throw e; }
  return 'no error';
}

describe('array maps', () => {
  beforeEach(() => { boot({ cpus: 4 }); });
  afterEach(() => { expect(splatsOf()).toEqual([]); });

  it('test_arraymap', () => {
    const m = new BpfMap(createMap({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 2 }));
    m.update(u32(1), u64(1234), BPF_ANY);
    expect(errCode(() => m.update(u32(1), u64(0), BPF_NOEXIST))).toBe('EEXIST');
    expect(readU64(m.lookup(u32(1))!)).toBe(1234n);
    expect(readU64(m.lookup(u32(0))!)).toBe(0n);
    expect(errCode(() => m.update(u32(2), u64(0), BPF_EXIST))).toBe('E2BIG');
    expect(m.lookup(u32(2))).toBeUndefined();
    expect(readU32(m.getNextKey(null)!)).toBe(0);
    expect(readU32(m.getNextKey(u32(2))!)).toBe(0);
    expect(readU32(m.getNextKey(u32(0))!)).toBe(1);
    expect(m.getNextKey(u32(1))).toBeUndefined();
    expect(errCode(() => m.delete(u32(1)))).toBe('EINVAL');
    expect(errCode(() => m.lookupAndDelete(u32(1)))).toBe('ENOTSUPP');
    expect(errCode(() => m.update(u32(1), u64(0), -1))).toBe('EINVAL');
    expect(m.stats().elements).toBe(2);
    expect(m.check()).toEqual([]);
    m.close();
  });

  it('test_arraymap_percpu', () => {
    const m = new BpfMap(createMap({ type: 'percpu_array', keySize: 4, valueSize: 8, maxEntries: 2 }));
    const val = new Uint8Array(nrCpus * 8);
    const dv = new DataView(val.buffer);
    for (let i = 0; i < nrCpus; i++) dv.setBigUint64(i * 8, BigInt(i + 100), true);
    m.update(u32(1), val, BPF_ANY);
    expect(errCode(() => m.update(u32(1), val, BPF_NOEXIST))).toBe('EEXIST');
    const got = m.lookup(u32(1))!;
    for (let i = 0; i < nrCpus; i++) expect(readU64(got, i * 8)).toBe(BigInt(i + 100));
    const zero = m.lookup(u32(0))!;
    for (let i = 0; i < nrCpus; i++) expect(readU64(zero, i * 8)).toBe(0n);
    expect(errCode(() => m.update(u32(2), val, BPF_EXIST))).toBe('E2BIG');
    expect(m.lookup(u32(2))).toBeUndefined();
    expect(readU32(m.getNextKey(null)!)).toBe(0);
    expect(readU32(m.getNextKey(u32(0))!)).toBe(1);
    expect(m.getNextKey(u32(1))).toBeUndefined();
    expect(errCode(() => m.delete(u32(1)))).toBe('EINVAL');
    m.close();
  });

  it('program path: value pointers per CPU, E2BIG out of range, delete EINVAL', () => {
    const impl = createMap({ type: 'percpu_array', keySize: 4, valueSize: 4, maxEntries: 8 });
    const sc = new Scratch();
    const k = sc.u32(0, 3);
    const p0 = asCpu(0, () => impl.lookup(k));
    const p1 = asCpu(1, () => impl.lookup(k));
    expect(p0).not.toBe(0);
    expect(p1).not.toBe(p0);
    expect(p0 & 7).toBe(0);
    expect(impl.lookupPercpu(k, 1)).toBe(p1);
    expect(impl.lookupPercpu(k, nrCpus)).toBe(0);
    expect(asCpu(2, () => impl.update(k, sc.u32(8, 9), BPF_ANY))).toBe(0);
    expect(I32[impl.lookupPercpu(k, 2) >> 2]).toBe(9);
    expect(asCpu(0, () => impl.update(sc.u32(16, 8), sc.u32(8, 9), BPF_ANY))).toBe(-7);
    expect(asCpu(0, () => impl.lookup(sc.u32(16, 8)))).toBe(0);
    expect(asCpu(0, () => impl.delete(k))).toBe(-22);
    sc.free();
    new BpfMap(impl).close();
  });

  it('array batch lookup: index cursor, ENOENT at the end; no lookup-and-delete', () => {
    const m = new BpfMap(createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 10 }));
    for (let i = 0; i < 10; i++) m.update(u32(i), u32(i * 10));
    let cursor: number | null = null;
    const seen: number[] = [];
    for (;;) {
      const r = m.lookupBatch(cursor, 3);
      r.keys.forEach((k, i) => { expect(readU32(r.values[i]!)).toBe(readU32(k) * 10); seen.push(readU32(k)); });
      cursor = r.cursor;
      if (r.done) break;
    }
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(errCode(() => m.lookupAndDeleteBatch(null, 3))).toBe('ENOTSUPP');
    m.close();
  });
});

describe('BPF_F_LOCK with a bpf_spin_lock in the value', () => {
  beforeEach(() => { boot({ cpus: 2 }); });
  afterEach(() => { expect(splatsOf()).toEqual([]); });

  for (const type of ['hash', 'array'] as const) {
    it(`${type}: locked update in place and locked lookup; the lock word never crosses`, () => {
      const impl = createMap({ type, keySize: 4, valueSize: 16, maxEntries: 4, spinLockOffset: 4 });
      const m = new BpfMap(impl);
      const v = new Uint8Array(16);
      const dv = new DataView(v.buffer);
      dv.setUint32(0, 0xaaaa, true);
      dv.setUint32(4, 0x1234, true); // lock word in the user's buffer: must not be copied in
      dv.setUint32(8, 0xbbbb, true);
      if (type === 'hash') m.update(u32(1), v, BPF_NOEXIST);
      m.update(u32(1), v, BPF_F_LOCK);
      m.update(u32(1), v, BPF_F_LOCK | BPF_EXIST);
      const p = asCpu(0, () => { const sc = new Scratch(); const r = impl.lookup(sc.u32(0, 1)); sc.free(); return r; });
      expect(I32[(p + 4) >> 2]).toBe(0); // the element's lock word is untouched (and unlocked)
      expect(I32[(p + 8) >> 2]).toBe(0xbbbb);
      const out = m.lookup(u32(1), BPF_F_LOCK)!;
      expect(readU32(out, 0)).toBe(0xaaaa);
      expect(readU32(out, 4)).toBe(0); // special field zeroed in the copy
      expect(readU32(out, 8)).toBe(0xbbbb);
      expect(errCode(() => m.update(u32(1), v, BPF_F_LOCK | BPF_NOEXIST))).toBe('EEXIST');
      expect(errCode(() => m.lookup(u32(1), 8))).toBe('EINVAL');
      expect(m.check()).toEqual([]);
      m.close();
    });
  }

  it('BPF_F_LOCK on a map without a spin lock → EINVAL', () => {
    const m = new BpfMap(createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4 }));
    expect(errCode(() => m.update(u32(1), u64(1), BPF_F_LOCK))).toBe('EINVAL');
    m.update(u32(1), u64(1));
    expect(errCode(() => m.lookup(u32(1), BPF_F_LOCK))).toBe('EINVAL');
    const a = new BpfMap(createMap({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 4 }));
    expect(errCode(() => a.update(u32(1), u64(1), BPF_F_LOCK))).toBe('EINVAL');
    m.close(); a.close();
  });
});
