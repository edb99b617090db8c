// test_maps.c semantics for preallocated hash maps (tools/testing/selftests/bpf/test_maps.c):
// test_hashmap, test_hashmap_percpu, test_hashmap_walk, test_hashmap_zero_seed, test_map_large,
// access flags, and the syscall wrapper's argument checks. Single-threaded, on the main thread
// (the housekeeping CPU); program-path calls act as CPU 0..n-1 through asCpu().
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { boot, asCpu, u32, u64, readU64, Scratch, splatsOf } from './boot.js';
import { createMap } from '../../src/maps/registry.js';
import { BpfMap } from '../../src/maps/bpf_map.js';
import {
  BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_RDONLY, BPF_F_WRONLY, BPF_F_ZERO_SEED, type MapSpec,
} from '../../src/maps/map_ops.js';
import { BpfError } from '../../src/errno.js';
import { I32, nrCpus, nrCpuIds } from '../../src/mem/arena.js';
import { memStats } from '../../src/mm/owners.js';

function mk(spec: Partial<MapSpec> & { maxEntries: number }): BpfMap {
  return new BpfMap(createMap({ type: 'hash', keySize: 8, valueSize: 8, ...spec } as MapSpec));
}

function errCode(fn: () => unknown): string {
  try { fn(); } catch (e: unknown) { if (e instanceof BpfError) return e.code; throw e; }
  return 'no error';
}

const CPUS = 4;

describe('hash map (preallocated): test_maps semantics', () => {
  let baseBytes = 0;
  beforeEach(() => { boot({ cpus: CPUS, memoryBytes: 64 << 20 }); baseBytes = memStats().bytesInUse; });
  afterEach(() => { expect(splatsOf()).toEqual([]); });

  it('test_hashmap (max_entries 2)', () => {
    const m = mk({ maxEntries: 2 });
    m.update(u64(1), u64(1234), BPF_ANY);
    expect(errCode(() => m.update(u64(1), u64(0), BPF_NOEXIST))).toBe('EEXIST');
    expect(errCode(() => m.update(u64(1), u64(0), -1))).toBe('EINVAL');
    expect(readU64(m.lookup(u64(1))!)).toBe(1234n);
    m.update(u64(2), u64(1234), BPF_ANY);
    expect(readU64(m.lookupAndDelete(u64(2))!)).toBe(1234n);
    expect(m.lookup(u64(2))).toBeUndefined();
    expect(errCode(() => m.update(u64(2), u64(1234), BPF_EXIST))).toBe('ENOENT');
    m.update(u64(2), u64(1234), BPF_NOEXIST);
    // full: a third key does not fit
    expect(errCode(() => m.update(u64(0), u64(1234), BPF_NOEXIST))).toBe('E2BIG');
    // replacing an existing key in a full map works (the per-CPU spare)
    m.update(u64(1), u64(1234), BPF_EXIST);
    m.update(u64(2), u64(1234), BPF_ANY);
    expect(errCode(() => m.update(u64(3), u64(1234), BPF_NOEXIST))).toBe('E2BIG');
    expect(errCode(() => m.delete(u64(0)))).toBe('ENOENT');
    // iterate over the two elements
    const first = m.getNextKey(null)!;
    const f = readU64(first);
    expect(f === 1n || f === 2n).toBe(true);
    expect(readU64(m.getNextKey(u64(0))!)).toBe(f); // a missing key restarts at the first
    const second = m.getNextKey(first)!;
    const s = readU64(second);
    expect(s === 1n || s === 2n).toBe(true);
    expect(s).not.toBe(f);
    expect(m.getNextKey(second)).toBeUndefined();
    m.delete(u64(1));
    m.delete(u64(2));
    expect(errCode(() => m.delete(u64(2)))).toBe('ENOENT');
    expect(m.getNextKey(null)).toBeUndefined();
    expect(m.getNextKey(u64(0))).toBeUndefined();
    expect(m.check()).toEqual([]);
    const st = m.stats();
    expect(st.elements).toBe(0);
    expect(st.freeElements + st.spareElements).toBe(2 + nrCpuIds);
    m.close();
    expect(memStats().bytesInUse).toBe(baseBytes);
  });

  it('conservation after every step: free + live + spares == max_entries + CPU ids', () => {
    const m = mk({ maxEntries: 64 });
    const conserve = (): void => {
      const st = m.stats();
      expect(st.freeElements + st.elements + st.spareElements).toBe(64 + nrCpuIds);
      expect(m.check()).toEqual([]);
    };
    for (let i = 0; i < 64; i++) { m.update(u64(i), u64(i * 3), BPF_NOEXIST); conserve(); }
    expect(errCode(() => m.update(u64(999), u64(1), BPF_NOEXIST))).toBe('E2BIG');
    for (let i = 0; i < 64; i += 3) { m.update(u64(i), u64(7), BPF_EXIST); conserve(); }
    for (let i = 0; i < 64; i += 2) { m.delete(u64(i)); conserve(); }
    expect(m.stats().elements).toBe(32);
    m.close();
  });

  it('test_hashmap_percpu', () => {
    const m = new BpfMap(createMap({ type: 'percpu_hash', keySize: 8, valueSize: 8, maxEntries: 2 }));
    expect(m.sysValueSize).toBe(nrCpus * 8);
    const value = (): Uint8Array => {
      const b = new Uint8Array(nrCpus * 8);
      const dv = new DataView(b.buffer);
      for (let i = 0; i < nrCpus; i++) dv.setBigUint64(i * 8, BigInt(i + 100), true);
      return b;
    };
    const check = (b: Uint8Array): void => {
      for (let i = 0; i < nrCpus; i++) expect(readU64(b, i * 8)).toBe(BigInt(i + 100));
    };
    m.update(u64(1), value(), BPF_ANY);
    const v0 = m.lookupAndDelete(u64(1))!;
    expect(readU64(v0, 0)).toBe(100n);
    m.update(u64(1), value(), BPF_NOEXIST);
    expect(errCode(() => m.update(u64(1), value(), BPF_NOEXIST))).toBe('EEXIST');
    expect(errCode(() => m.update(u64(1), value(), -1))).toBe('EINVAL');
    check(m.lookup(u64(1))!);
    expect(m.lookup(u64(2))).toBeUndefined();
    expect(errCode(() => m.update(u64(2), value(), BPF_EXIST))).toBe('ENOENT');
    m.update(u64(2), value(), BPF_NOEXIST);
    expect(errCode(() => m.update(u64(0), value(), BPF_NOEXIST))).toBe('E2BIG');
    expect(errCode(() => m.delete(u64(0)))).toBe('ENOENT');
    let mask = 0b110;
    for (const [k, v] of m.entries()) {
      const key = Number(readU64(k));
      expect(mask & (1 << key)).not.toBe(0);
      mask &= ~(1 << key);
      check(v);
    }
    expect(mask).toBe(0);
    m.update(u64(1), value(), BPF_EXIST);
    m.delete(u64(1));
    m.delete(u64(2));
    expect(errCode(() => m.delete(u64(2)))).toBe('ENOENT');
    expect(m.getNextKey(null)).toBeUndefined();
    expect(m.check()).toEqual([]);
    m.close();
  });

  it('per-CPU values from programs: new element = this CPU slot, zeroes elsewhere; lookupPercpu', () => {
    const impl = createMap({ type: 'percpu_hash', keySize: 4, valueSize: 4, maxEntries: 16 });
    const m = new BpfMap(impl);
    const sc = new Scratch();
    const k = sc.u32(0, 7);
    const v = sc.u32(8, 0x55);
    expect(asCpu(2, () => impl.update(k, v, BPF_NOEXIST))).toBe(0);
    const all = m.lookup(u32(7))!;
    for (let c = 0; c < nrCpus; c++) {
      expect(new DataView(all.buffer).getUint32(c * 8, true)).toBe(c === 2 ? 0x55 : 0);
    }
    const p1 = asCpu(1, () => impl.lookup(k));
    expect(p1).not.toBe(0);
    I32[p1 >> 2] = 11; // a program writes its own CPU's slot
    expect(impl.lookupPercpu(k, 1)).toBe(p1);
    expect(impl.lookupPercpu(k, nrCpus)).toBe(0);
    expect(new DataView(m.lookup(u32(7))!.buffer).getUint32(8, true)).toBe(11);
    // existing key from a program: only this CPU's slot changes (in place)
    sc.u32(8, 0x66);
    expect(asCpu(3, () => impl.update(k, v, BPF_EXIST))).toBe(0);
    const after = m.lookup(u32(7))!;
    const dv = new DataView(after.buffer);
    expect([dv.getUint32(8, true), dv.getUint32(16, true), dv.getUint32(24, true)]).toEqual([11, 0x55, 0x66]);
    sc.free();
    m.close();
  });

  it('program path: lookup returns a stable 8-byte aligned value pointer; update/delete return -errno', () => {
    const impl = createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 8 });
    const sc = new Scratch();
    const k = sc.u32(0, 42);
    const v = sc.u32(8, 5);
    asCpu(0, () => {
      expect(impl.lookup(k)).toBe(0);
      expect(impl.update(k, v, BPF_ANY)).toBe(0);
      const p = impl.lookup(k);
      expect(p & 7).toBe(0);
      expect(I32[p >> 2]).toBe(5);
      expect(impl.update(k, v, BPF_NOEXIST)).toBe(-17);
      expect(impl.delete(k)).toBe(0);
      expect(impl.delete(k)).toBe(-2);
      expect(impl.update(k, v, 7)).toBe(-22);
    });
    sc.free();
    new BpfMap(impl).close();
  });

  it('test_hashmap_walk: every key once per pass while EXIST-updating', () => {
    const max = 10000;
    const m = mk({ maxEntries: max });
    for (let i = 0; i < max; i++) m.update(u64(i), u64(i), BPF_ANY);
    let n = 0;
    for (let k = m.getNextKey(null); k !== undefined; k = m.getNextKey(k)) { expect(m.lookup(k)).toBeDefined(); n++; }
    expect(n).toBe(max);
    // get the next key first, then bump the current one (test_maps does it in this order)
    let key = m.getNextKey(null)!;
    n = 0;
    for (let valid = true; valid; n++) {
      const next = m.getNextKey(key);
      valid = next !== undefined;
      const v = readU64(m.lookup(key)!);
      m.update(key, u64(v + 1n), BPF_EXIST);
      if (next !== undefined) key = next;
    }
    expect(n).toBe(max);
    n = 0;
    for (let k = m.getNextKey(null); k !== undefined; k = m.getNextKey(k)) {
      expect(readU64(m.lookup(k)!) - 1n).toBe(readU64(k));
      n++;
    }
    expect(n).toBe(max);
    expect(m.check()).toEqual([]);
    m.close();
  });

  it('test_hashmap_zero_seed: two maps iterate identically', () => {
    const fill = (): BpfMap => {
      const m = mk({ maxEntries: 3, flags: BPF_F_ZERO_SEED });
      for (let i = 0; i < 3; i++) m.update(u64(i), u64(i + 1234), BPF_NOEXIST);
      return m;
    };
    const a = fill();
    const b = fill();
    const ka = [...a.keys()].map((k) => readU64(k));
    const kb = [...b.keys()].map((k) => readU64(k));
    expect(ka.length).toBe(3);
    expect(ka).toEqual(kb);
    a.close(); b.close();
  });

  it('maps without ZERO_SEED are seeded differently (same runtime seed, different maps)', () => {
    const a = createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4 }) as unknown as { hashrnd: number; ptr: number };
    const b = createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4 }) as unknown as { hashrnd: number };
    expect(a.hashrnd).not.toBe(b.hashrnd);
  });

  it('keys of odd sizes hash with jhash over bytes and compare bytewise', () => {
    const m = new BpfMap(createMap({ type: 'hash', keySize: 7, valueSize: 3, maxEntries: 100 }));
    const key = (i: number): Uint8Array => Uint8Array.from([i, i >> 8, 1, 2, 3, 4, 5]);
    for (let i = 0; i < 100; i++) m.update(key(i), Uint8Array.from([i, 0, 9]));
    for (let i = 0; i < 100; i++) expect([...m.lookup(key(i))!]).toEqual([i, 0, 9]);
    expect([...m.keys()].length).toBe(100);
    expect(m.check()).toEqual([]);
    m.close();
  });
});

describe('test_map_large', () => {
  afterEach(() => { expect(splatsOf()).toEqual([]); });
  it('32768 entries of 4112-byte keys: E2BIG past the end, exact iteration count', () => {
    boot({ cpus: 2, memoryBytes: 320 << 20 }); // the 135 MB element area is one page run
    const MAP_SIZE = 32 * 1024;
    const KS = 4 + 4096 + 4 + 8; // struct bigkey { int a; char b[4096]; long long c; }
    const m = new BpfMap(createMap({ type: 'hash', keySize: KS, valueSize: 4, maxEntries: MAP_SIZE }));
    const key = new Uint8Array(KS);
    const kv = new DataView(key.buffer);
    for (let i = 0; i < MAP_SIZE; i++) {
      kv.setBigInt64(KS - 8, BigInt(i), true);
      m.update(key, u32(i), BPF_NOEXIST);
    }
    kv.setBigInt64(KS - 8, -1n, true);
    expect(errCode(() => m.update(key, u32(0), BPF_NOEXIST))).toBe('E2BIG');
    expect(m.getNextKey(null)).toBeDefined();
    let k: Uint8Array | undefined = key; // missing key: starts at the first
    for (let i = 0; i < MAP_SIZE; i++) { k = m.getNextKey(k!); expect(k).toBeDefined(); }
    expect(m.getNextKey(k!)).toBeUndefined();
    kv.setBigInt64(KS - 8, 0n, true);
    expect(m.lookup(key)).toEqual(u32(0));
    kv.setInt32(0, 1, true);
    expect(m.lookup(key)).toBeUndefined();
    expect(m.check()).toEqual([]);
    m.close();
  }, 120_000);
});

describe('access flags and bad input', () => {
  beforeEach(() => { boot({ cpus: CPUS }); });
  afterEach(() => { expect(splatsOf()).toEqual([]); });

  it('BPF_F_RDONLY: writes → EPERM, reads allowed', () => {
    const m = mk({ maxEntries: 4, flags: BPF_F_RDONLY });
    expect(errCode(() => m.update(u64(1), u64(1234), BPF_ANY))).toBe('EPERM');
    expect(m.lookup(u64(1))).toBeUndefined();
    expect(m.getNextKey(u64(1))).toBeUndefined();
    expect(errCode(() => m.delete(u64(1)))).toBe('EPERM');
    expect(errCode(() => m.lookupAndDelete(u64(1)))).toBe('EPERM');
    m.close();
  });

  it('BPF_F_WRONLY: reads → EPERM, writes allowed', () => {
    const m = mk({ maxEntries: 4, flags: BPF_F_WRONLY });
    m.update(u64(1), u64(1234), BPF_ANY);
    expect(errCode(() => m.lookup(u64(1)))).toBe('EPERM');
    expect(errCode(() => m.getNextKey(u64(1)))).toBe('EPERM');
    expect(errCode(() => m.lookupBatch(null, 10))).toBe('EPERM');
    m.delete(u64(1));
    m.close();
  });

  it('array maps honour the access flags too', () => {
    const ro = new BpfMap(createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 2, flags: BPF_F_RDONLY }));
    expect(errCode(() => ro.update(u32(0), u32(1)))).toBe('EPERM');
    expect(ro.lookup(u32(0))).toEqual(u32(0));
    const wo = new BpfMap(createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 2, flags: BPF_F_WRONLY }));
    wo.update(u32(0), u32(1));
    expect(errCode(() => wo.lookup(u32(0)))).toBe('EPERM');
    ro.close(); wo.close();
  });

  it('wrong key/value sizes, non-integer flags → EINVAL and nothing changes', () => {
    const m = mk({ maxEntries: 4 });
    const bad = (fn: () => unknown): string => {
      try { fn(); } catch (e: unknown) { return e instanceof BpfError ? `${e.code}: ${e.message}` : String(e); }
      return 'no error';
    };
    expect(bad(() => m.update(u32(1), u64(1)))).toMatch(/EINVAL.*key must be a Uint8Array of keySize \(8\) bytes; got 4 bytes/);
    expect(bad(() => m.update(u64(1), u32(1)))).toMatch(/EINVAL.*value must be a Uint8Array of 8 bytes/);
    expect(bad(() => m.update(u64(1), u64(1), 1.5))).toMatch(/EINVAL.*flags/);
    expect(bad(() => m.lookup(new Uint8Array(9)))).toMatch(/EINVAL/);
    expect(m.stats().elements).toBe(0);
    expect(m.getNextKey(null)).toBeUndefined();
    m.close();
  });

  it('bad specs → EINVAL (or E2BIG/ENOTSUPP) naming the field', () => {
    const cases: [unknown, string, RegExp][] = [
      [{ type: 'hash', keySize: 0, valueSize: 4, maxEntries: 4 }, 'EINVAL', /keySize/],
      [{ type: 'hash', keySize: 4, valueSize: 0, maxEntries: 4 }, 'EINVAL', /valueSize/],
      [{ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 0 }, 'EINVAL', /maxEntries/],
      [{ type: 'hash', keySize: -1, valueSize: 4, maxEntries: 4 }, 'EINVAL', /keySize/],
      [{ type: 'hash', keySize: 4.5, valueSize: 4, maxEntries: 4 }, 'EINVAL', /keySize/],
      [{ type: 'btree', keySize: 4, valueSize: 4, maxEntries: 4 }, 'EINVAL', /type/],
      [{ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4, flags: 1 << 20 }, 'EINVAL', /flags/],
      [{ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4, flags: BPF_F_RDONLY | BPF_F_WRONLY }, 'EINVAL', /flags/],
      [{ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4, flags: 2 /* NO_COMMON_LRU */ }, 'EINVAL', /flags.*NO_COMMON_LRU/],
      [{ type: 'lru_hash', keySize: 4, valueSize: 4, maxEntries: 4, flags: 1 /* NO_PREALLOC */ }, 'ENOTSUPP', /flags.*NO_PREALLOC/],
      [{ type: 'hash', keySize: 4 << 20, valueSize: 4, maxEntries: 4 }, 'E2BIG', /keySize \+ valueSize/],
      [{ type: 'percpu_hash', keySize: 4, valueSize: 40000, maxEntries: 4 }, 'E2BIG', /valueSize/],
      [{ type: 'array', keySize: 8, valueSize: 4, maxEntries: 4 }, 'EINVAL', /keySize.*must be 4/],
      [{ type: 'array', keySize: 4, valueSize: 4, maxEntries: 4, flags: 1 }, 'EINVAL', /flags/],
      [{ type: 'hash', name: 'bad name!', keySize: 4, valueSize: 4, maxEntries: 4 }, 'EINVAL', /name/],
      [{ type: 'hash', name: 'a_name_that_is_too_long', keySize: 4, valueSize: 4, maxEntries: 4 }, 'EINVAL', /name/],
      [{ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4, spinLockOffset: 2 }, 'EINVAL', /spinLockOffset/],
    ];
    const before = memStats().bytesInUse;
    for (const [spec, code, re] of cases) {
      let got: unknown;
      try { createMap(spec as MapSpec); } catch (e: unknown) { got = e; }
      expect(got, JSON.stringify(spec)).toBeInstanceOf(BpfError);
      expect((got as BpfError).code, JSON.stringify(spec)).toBe(code);
      expect((got as BpfError).message, JSON.stringify(spec)).toMatch(re);
    }
    expect(memStats().bytesInUse).toBe(before);
  });

  it('info() and close(): the map is freed and its memory returned', () => {
    const before = memStats().bytesInUse;
    const m = new BpfMap(createMap({ type: 'lru_percpu_hash', name: 'flows', keySize: 8, valueSize: 16, maxEntries: 10, flags: 2 }));
    const info = m.info();
    expect(info).toMatchObject({ type: 'lru_percpu_hash', name: 'flows', keySize: 8, valueSize: 16, flags: 2 });
    expect(info.maxEntries % nrCpuIds).toBe(0); // per-CPU LRU rounds up to a multiple of the CPU ids
    expect(info.id).toBeGreaterThan(0);
    expect(m.stats().memoryBytes).toBeGreaterThan(0);
    m.close();
    expect(m.closed).toBe(true);
    expect(errCode(() => m.lookup(u64(1)))).toBe('EBADF'); // a closed fd
    expect(memStats().bytesInUse).toBe(before);
  });

  it('every map type gives back all its memory when closed', () => {
    const before = memStats().bytesInUse;
    for (const type of ['hash', 'percpu_hash', 'lru_hash', 'lru_percpu_hash', 'array', 'percpu_array'] as const) {
      const m = new BpfMap(createMap({ type, keySize: 4, valueSize: 12, maxEntries: 100 }));
      m.update(u32(3), new Uint8Array(m.sysValueSize));
      expect(m.stats().memoryBytes).toBeGreaterThan(0);
      m.close();
      expect(memStats().bytesInUse, type).toBe(before);
    }
  });
});
