// LRU hash maps (test_lru_map.c style): the ref bit set by program lookups protects an element
// from eviction, updates into a full map evict instead of failing, common and per-CPU
// (BPF_F_NO_COMMON_LRU) lists, conservation and list invariants through check().
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { boot, asCpu, u32, u64, readU64, readU32, Scratch, splatsOf } from './boot.js';
import { createMap } from '../../src/maps/registry.js';
import { BpfMap } from '../../src/maps/bpf_map.js';
import { BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_NO_COMMON_LRU, type MapType } from '../../src/maps/map_ops.js';
import { BpfError } from '../../src/errno.js';
import { nrCpus, nrCpuIds } from '../../src/mem/arena.js';
import { thisCpu } from '../../src/mem/this_cpu.js';

function errCode(fn: () => unknown): string {
  try { fn(); } catch (e: unknown) { if (e instanceof BpfError) return e.code; throw e; }
  return 'no error';
}

function valueOf(m: BpfMap, v: number): Uint8Array {
  if (!m.impl.percpu) return u64(v);
  const b = new Uint8Array(m.sysValueSize);
  for (let c = 0; c < nrCpus; c++) new DataView(b.buffer).setBigUint64(c * 8, BigInt(v), true);
  return b;
}

describe('LRU hash maps', () => {
  beforeEach(() => { boot({ cpus: 3 }); });
  afterEach(() => { expect(splatsOf()).toEqual([]); });

  for (const type of ['lru_hash', 'lru_percpu_hash'] as MapType[]) {
    for (const flags of [0, BPF_F_NO_COMMON_LRU]) {
      const name = `${type}${flags !== 0 ? ' NO_COMMON_LRU' : ''}`;

      it(`${name}: test_lru_sanity0 — a referenced key survives, the unreferenced one is evicted`, () => {
        // size 2 for the CPU doing the updates (per-CPU lists split max_entries over all CPU ids)
        const max = flags !== 0 ? 2 * nrCpuIds : 2;
        const impl = createMap({ type, keySize: 8, valueSize: 8, maxEntries: max, flags });
        const m = new BpfMap(impl);
        const v = valueOf(m, 1234);
        m.update(u64(1), v, BPF_NOEXIST);
        expect(errCode(() => m.update(u64(1), v, BPF_NOEXIST))).toBe('EEXIST');
        expect(errCode(() => m.update(u64(1), v, -1))).toBe('EINVAL');
        expect(m.lookup(u64(2))).toBeUndefined();
        expect(errCode(() => m.update(u64(2), v, BPF_EXIST))).toBe('ENOENT');
        m.update(u64(2), v, BPF_NOEXIST);
        expect(m.lookup(u64(3))).toBeUndefined();
        // a program's lookup sets the ref bit of key 1 (the syscall lookup above does not)
        const sc = new Scratch();
        const p = asCpu(0, () => impl.lookup(sc.bytes(0, u64(1))));
        expect(p).not.toBe(0);
        expect(readU64(m.lookup(u64(1))!)).toBe(1234n);
        m.update(u64(3), v, BPF_NOEXIST);
        expect(m.lookup(u64(2))).toBeUndefined(); // evicted
        expect(m.lookup(u64(1))).toBeDefined();
        expect(m.lookup(u64(3))).toBeDefined();
        expect(readU64(m.lookupAndDelete(u64(1))!)).toBe(1234n);
        expect(m.lookup(u64(1))).toBeUndefined();
        expect(m.check()).toEqual([]);
        sc.free();
        m.close();
      });

      it(`${name}: inserting 4× capacity never fails; at most max_entries live; check() clean`, () => {
        const m = new BpfMap(createMap({ type, keySize: 4, valueSize: 8, maxEntries: 64, flags }));
        const max = m.info().maxEntries;
        for (let i = 0; i < 4 * max; i++) {
          m.update(u32(i), valueOf(m, i), BPF_ANY);
          if (i % 37 === 0) expect(m.check()).toEqual([]);
        }
        const keys = [...m.keys()].map((k) => readU32(k));
        expect(keys.length).toBeLessThanOrEqual(max);
        expect(keys.length).toBe(m.stats().elements);
        expect(new Set(keys).size).toBe(keys.length);
        for (const k of keys) expect(readU64(m.lookup(u32(k))!)).toBe(BigInt(k));
        // the most recent insert is always present
        expect(m.lookup(u32(4 * max - 1))).toBeDefined();
        const st = m.stats();
        expect(st.elements + st.freeElements).toBeLessThanOrEqual(max);
        for (const k of keys) m.delete(u32(k));
        expect(m.stats().elements).toBe(0);
        expect(m.stats().freeElements).toBe(max);
        expect(m.check()).toEqual([]);
        m.close();
      });

      it(`${name}: updates from several CPUs (program path), then check()`, () => {
        const impl = createMap({ type, keySize: 4, valueSize: 8, maxEntries: 32, flags });
        const sc = new Scratch();
        for (let i = 0; i < 500; i++) {
          const cpu = i % nrCpus;
          const r = asCpu(cpu, () => impl.update(sc.u32(0, (i * 7) % 97), sc.u32(8, i), BPF_ANY));
          expect(r).toBe(0);
          if (i % 3 === 0) asCpu(cpu, () => impl.lookup(sc.u32(0, (i * 5) % 97)));
          if (i % 11 === 0) asCpu(cpu, () => impl.delete(sc.u32(0, (i * 3) % 97)));
        }
        expect(thisCpu).toBe(nrCpus);
        expect(impl.check()).toEqual([]);
        sc.free();
        new BpfMap(impl).close();
      });
    }
  }

  it('lru_percpu_hash with BPF_EXIST updates in place without popping a node', () => {
    const impl = createMap({ type: 'lru_percpu_hash', keySize: 4, valueSize: 4, maxEntries: 4 });
    const m = new BpfMap(impl);
    const v = new Uint8Array(m.sysValueSize);
    m.update(u32(1), v, BPF_ANY);
    const free = m.stats().freeElements;
    new DataView(v.buffer).setUint32(8, 77, true);
    m.update(u32(1), v, BPF_EXIST);
    expect(m.stats().freeElements).toBe(free);
    expect(new DataView(m.lookup(u32(1))!.buffer).getUint32(8, true)).toBe(77);
    expect(m.check()).toEqual([]);
    m.close();
  });
});
