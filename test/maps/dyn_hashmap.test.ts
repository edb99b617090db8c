// test_maps.c semantics for BPF_F_NO_PREALLOC hash maps (test_maps runs every test twice: map
// flags 0, then BPF_F_NO_PREALLOC), for both dynAlloc modes: bpf_mem_alloc (2022) and the legacy
// kmalloc + call_rcu path. Single-threaded: the main thread is the housekeeping CPU and plays CPUs
// 0..n-1 through asCpu(); it is also the RCU/irq_work coordinator (settle() drives it).
// Also: element counting (atomic vs percpu_counter, E2BIG, replace when full), -ENOMEM from an
// empty cache in NMI, immediate reuse (bpf_mem_alloc) vs reuse after a grace period (kmalloc),
// the use-after-free splat of the lock-free walk, htabMemAllocLevels, memUsage (§2.2), memory at
// 10% fill vs preallocated, exact slab accounting after close, and the RT lock union.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { asCpu, u32, u64, readU64, Scratch } from './boot.js';
import { bootDyn, settle, ownersOf, unexpectedSplats, DYN_MODES } from './dyn_util.js';
import { pump, pollFor } from '../rcu/rcu_boot.js';
import { processPending } from '../../src/cpu/window.js';
import { createMap } from '../../src/maps/registry.js';
import { BpfMap } from '../../src/maps/bpf_map.js';
import {
  BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK, BPF_F_NO_PREALLOC, BPF_F_ZERO_SEED, SIZEOF_BPF_MAP, type MapSpec,
} from '../../src/maps/map_ops.js';
import { BpfHtab, htabMemAllocLevels, htabFreeIdle } from '../../src/maps/hashtab.js';
import { HtabMemAlloc, HtabKmallocAlloc, htabUsePercpuCounter, PERCPU_COUNTER_BATCH } from '../../src/maps/htab_dyn_alloc.js';
import { E_NEXT, SIZEOF_BUCKET, HASHTAB_MAP_LOCK_COUNT } from '../../src/maps/htab_layout.js';
import { BpfError } from '../../src/errno.js';
import { I32, nrCpus, nrCpuIds } from '../../src/mem/arena.js';
import { memStats, ownerBytes } from '../../src/mm/owners.js';
import { POISON_WORD } from '../../src/mm/slab.js';
import { enterContext, exitContext, CTX_NMI } from '../../src/cpu/context.js';
import { rcuReadLock, rcuReadUnlock, rcuIdleExit, rcuIdleEnter } from '../../src/rcu/rcu.js';
import { readSplats } from '../../src/debug/splat.js';
import { bpfMemAllocStats } from '../../src/alloc/bpf_mem_alloc.js';

const CPUS = 4;

function errCode(fn: () => unknown): string {
  try { fn(); } catch (e: unknown) { if (e instanceof BpfError) return e.code; throw e; }
  return 'no error';
}

function dyn(spec: Partial<MapSpec> & { maxEntries: number }): BpfMap {
  const s = { type: 'hash', keySize: 8, valueSize: 8, ...spec } as MapSpec;
  return new BpfMap(createMap({ ...s, flags: (s.flags ?? 0) | BPF_F_NO_PREALLOC }));
}

function htab(m: BpfMap): BpfHtab { return m.impl as BpfHtab; }

let keyScratch: Scratch | null = null;
/** A u32 key in kernel memory (program-path calls from the main thread). */
function u32pp(n: number): number {
  keyScratch ??= new Scratch(64);
  return keyScratch.u32(0, n);
}

/** The allocator's element count (atomic_t or the exact percpu_counter sum). */
function allocCount(m: BpfMap): number { return htab(m).alloc!.count(); }

for (const mode of DYN_MODES) {
  describe(`hash map BPF_F_NO_PREALLOC (${mode}): test_maps semantics`, () => {
    let baseBytes = 0;
    let allowed: string[] = [];
    beforeEach(() => { bootDyn(mode, { cpus: CPUS }); keyScratch = null; baseBytes = memStats().bytesInUse; allowed = []; });
    afterEach(() => { expect(unexpectedSplats(allowed)).toEqual([]); });

    it('the allocator matches the runtime option; buckets are raw locks on !RT', () => {
      const m = dyn({ maxEntries: 16 });
      const h = htab(m);
      expect(h.dyn).toBe(true);
      expect(h.alloc).toBeInstanceOf(mode === 'kmalloc' ? HtabKmallocAlloc : HtabMemAlloc);
      expect(h.sleepingLock).toBe(false);
      expect(m.usesSleepingBucketLock()).toBe(false);
      expect(h.alloc!.ma !== 0).toBe(mode === 'bpf_mem_alloc');
      m.close();
    });

    it('test_hashmap (max_entries 2): E2BIG for a 3rd key, replace allowed when full', async () => {
      const m = dyn({ maxEntries: 2 });
      m.update(u64(1), u64(1234), BPF_ANY);
      expect(errCode(() => m.update(u64(1), u64(0), BPF_NOEXIST))).toBe('EEXIST');
      expect(errCode(() => m.update(u64(1), u64(0), -1))).toBe('EINVAL');
      expect(readU64(m.lookup(u64(1))!)).toBe(1234n);
      m.update(u64(2), u64(1234), BPF_ANY);
      expect(readU64(m.lookupAndDelete(u64(2))!)).toBe(1234n);
      expect(m.lookup(u64(2))).toBeUndefined();
      expect(errCode(() => m.update(u64(2), u64(1234), BPF_EXIST))).toBe('ENOENT');
      m.update(u64(2), u64(1234), BPF_NOEXIST);
      expect(errCode(() => m.update(u64(0), u64(1234), BPF_NOEXIST))).toBe('E2BIG');
      expect(allocCount(m)).toBe(2);
      // replacing an existing key in a full map works: a new element, the old one freed after the unlock
      m.update(u64(1), u64(4321), BPF_EXIST);
      m.update(u64(2), u64(1234), BPF_ANY);
      expect(readU64(m.lookup(u64(1))!)).toBe(4321n);
      expect(allocCount(m)).toBe(2);
      expect(errCode(() => m.update(u64(3), u64(1234), BPF_NOEXIST))).toBe('E2BIG');
      expect(errCode(() => m.update(u64(3), u64(1234), BPF_ANY))).toBe('E2BIG');
      expect(errCode(() => m.delete(u64(0)))).toBe('ENOENT');
      const first = m.getNextKey(null)!;
      const f = readU64(first);
      expect(f === 1n || f === 2n).toBe(true);
      expect(readU64(m.getNextKey(u64(0))!)).toBe(f);
      const second = m.getNextKey(first)!;
      const s = readU64(second);
      expect(s === 1n || s === 2n).toBe(true);
      expect(s).not.toBe(f);
      expect(m.getNextKey(second)).toBeUndefined();
      m.delete(u64(1));
      m.delete(u64(2));
      expect(errCode(() => m.delete(u64(2)))).toBe('ENOENT');
      expect(m.getNextKey(null)).toBeUndefined();
      expect(m.check()).toEqual([]);
      const st = m.stats();
      expect(st.elements).toBe(0);
      expect(st.freeElements).toBe(-1);
      expect(st.spareElements).toBe(0);
      expect(allocCount(m)).toBe(0);
      const own = ownersOf(m.impl);
      void m.close();
      await settle();
      expect(memStats().bytesInUse).toBe(baseBytes);
      expect(ownerBytes(own.map)).toBe(0);
      expect(ownerBytes(own.elems)).toBe(0);
    });

    it('count and check() after every step; elements never exceed max_entries', () => {
      const m = dyn({ maxEntries: 64 });
      const step = (): void => {
        expect(m.check()).toEqual([]);
        expect(allocCount(m)).toBe(m.stats().elements);
      };
      for (let i = 0; i < 64; i++) { m.update(u64(i), u64(i * 3), BPF_NOEXIST); step(); }
      expect(errCode(() => m.update(u64(999), u64(1), BPF_NOEXIST))).toBe('E2BIG');
      step();
      for (let i = 0; i < 64; i += 3) { m.update(u64(i), u64(7), BPF_EXIST); step(); }
      for (let i = 0; i < 64; i += 2) { m.delete(u64(i)); step(); }
      expect(m.stats().elements).toBe(32);
      for (let i = 100; i < 132; i++) m.update(u64(i), u64(i), BPF_NOEXIST);
      expect(errCode(() => m.update(u64(999), u64(1), BPF_NOEXIST))).toBe('E2BIG');
      step();
      m.close();
    });

    it('test_hashmap_percpu: per-CPU values i+100 round-trip', () => {
      const m = dyn({ type: 'percpu_hash', maxEntries: 2 });
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
      check(v0);
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
      expect(m.check()).toEqual([]);
      m.delete(u64(1));
      m.delete(u64(2));
      expect(errCode(() => m.delete(u64(2)))).toBe('ENOENT');
      expect(m.getNextKey(null)).toBeUndefined();
      expect(m.check()).toEqual([]);
      m.close();
    });

    it('per-CPU values from programs: new element = this CPU slot, zeroes elsewhere, even in a reused area', () => {
      const m = dyn({ type: 'percpu_hash', keySize: 4, valueSize: 4, maxEntries: 16 });
      const impl = m.impl;
      const sc = new Scratch();
      const k = sc.u32(0, 7);
      const v = sc.u32(8, 0x55);
      for (let round = 0; round < 3; round++) {
        // round > 0: the element and its per-CPU area may be the ones just freed (bpf_mem_alloc)
        expect(asCpu(2, () => impl.update(k, v, BPF_NOEXIST))).toBe(0);
        const all = m.lookup(u32(7))!;
        for (let c = 0; c < nrCpus; c++) expect(new DataView(all.buffer).getUint32(c * 8, true)).toBe(c === 2 ? 0x55 : 0);
        const p1 = asCpu(1, () => impl.lookup(k));
        expect(p1).not.toBe(0);
        I32[p1 >> 2] = 11;
        expect(impl.lookupPercpu(k, 1)).toBe(p1);
        expect(impl.lookupPercpu(k, nrCpus)).toBe(0);
        sc.u32(8, 0x66);
        expect(asCpu(3, () => impl.update(k, v, BPF_EXIST))).toBe(0);
        const dv = new DataView(m.lookup(u32(7))!.buffer);
        expect([dv.getUint32(8, true), dv.getUint32(16, true), dv.getUint32(24, true)]).toEqual([11, 0x55, 0x66]);
        sc.u32(8, 0x55);
        expect(m.check()).toEqual([]);
        expect(asCpu(0, () => impl.delete(k))).toBe(0);
      }
      sc.free();
      m.close();
    });

    it('program path: 8-byte aligned value pointers, -errno returns, the irq_work refill keeps up in task context', () => {
      const m = dyn({ keySize: 4, valueSize: 8, maxEntries: 4096 });
      const impl = m.impl;
      const sc = new Scratch();
      const v = sc.u32(8, 5);
      asCpu(0, () => {
        // far more inserts than the cache's prefill: every refill runs at htab.update.unlocked
        for (let i = 0; i < 3000; i++) {
          const k = sc.u32(0, i);
          expect(impl.update(k, v, BPF_NOEXIST)).toBe(0);
          const p = impl.lookup(k);
          expect(p & 7).toBe(0);
          expect(I32[p >> 2]).toBe(5);
        }
        const k = sc.u32(0, 42);
        expect(impl.update(k, v, BPF_NOEXIST)).toBe(-17);
        expect(impl.delete(k)).toBe(0);
        expect(impl.delete(k)).toBe(-2);
        expect(impl.update(k, v, 7)).toBe(-22);
      });
      expect(m.stats().elements).toBe(2999);
      expect(m.check()).toEqual([]);
      sc.free();
      m.close();
    });

    it('test_hashmap_walk: every key once per pass while EXIST-updating', () => {
      const max = 10000;
      const m = dyn({ maxEntries: max });
      for (let i = 0; i < max; i++) m.update(u64(i), u64(i), BPF_ANY);
      let n = 0;
      for (let k = m.getNextKey(null); k !== undefined; k = m.getNextKey(k)) { expect(m.lookup(k)).toBeDefined(); n++; }
      expect(n).toBe(max);
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
        const m = dyn({ maxEntries: 3, flags: BPF_F_ZERO_SEED });
        for (let i = 0; i < 3; i++) m.update(u64(i), u64(i + 1234), BPF_NOEXIST);
        return m;
      };
      const a = fill();
      const b = fill();
      const ka = [...a.keys()].map((k) => readU64(k));
      expect(ka.length).toBe(3);
      expect(ka).toEqual([...b.keys()].map((k) => readU64(k)));
      a.close(); b.close();
    });

    it('keys of odd sizes, batch lookup-and-delete, lookup_and_delete', () => {
      const m = dyn({ keySize: 7, valueSize: 3, maxEntries: 100 });
      const key = (i: number): Uint8Array => Uint8Array.from([i, i >> 8, 1, 2, 3, 4, 5]);
      for (let i = 0; i < 100; i++) m.update(key(i), Uint8Array.from([i, 0, 9]));
      for (let i = 0; i < 100; i++) expect([...m.lookup(key(i))!]).toEqual([i, 0, 9]);
      expect([...m.keys()].length).toBe(100);
      expect(m.check()).toEqual([]);
      expect([...m.lookupAndDelete(key(5))!]).toEqual([5, 0, 9]);
      let cursor: number | null = null;
      let got = 0;
      for (;;) {
        const r = m.lookupAndDeleteBatch(cursor, 32);
        got += r.keys.length;
        cursor = r.cursor;
        if (r.done) break;
      }
      expect(got).toBe(99);
      expect(m.stats().elements).toBe(0);
      expect(allocCount(m)).toBe(0);
      expect(m.check()).toEqual([]);
      m.close();
    });

    it('element count: an atomic for small maps, the percpu_counter (batch 32) above max/2 > CPUs × 32', () => {
      const small = dyn({ maxEntries: 2 * nrCpuIds * PERCPU_COUNTER_BATCH });
      const big = dyn({ maxEntries: 2 * nrCpuIds * PERCPU_COUNTER_BATCH + 2 });
      expect(htabUsePercpuCounter(small.info().maxEntries)).toBe(false);
      expect(htabUsePercpuCounter(big.info().maxEntries)).toBe(true);
      const bigAlloc = htab(big).alloc!;
      if (mode === 'bpf_mem_alloc') {
        expect((htab(small).alloc as HtabMemAlloc).usePercpuCounter).toBe(false);
        expect((bigAlloc as HtabMemAlloc).usePercpuCounter).toBe(true);
      }
      // fill the big map exactly from several CPUs: E2BIG at max_entries, not before (exact sum near the end)
      const max = big.info().maxEntries;
      const impl = big.impl;
      const sc = new Scratch();
      const v = sc.u32(8, 1);
      for (let i = 0; i < max; i++) expect(asCpu(i % CPUS, () => impl.update(sc.u32(0, i), v, BPF_NOEXIST))).toBe(0);
      expect(asCpu(1, () => impl.update(sc.u32(0, max), v, BPF_NOEXIST))).toBe(-7);
      expect(big.check()).toEqual([]);
      expect(allocCount(big)).toBe(max);
      // replace when full, from every CPU
      for (let c = 0; c < CPUS; c++) expect(asCpu(c, () => impl.update(sc.u32(0, c), v, BPF_ANY))).toBe(0);
      for (let i = 0; i < max; i += 2) expect(asCpu((i >> 1) % CPUS, () => impl.delete(sc.u32(0, i)))).toBe(0);
      expect(big.check()).toEqual([]);
      expect(allocCount(big)).toBe(max / 2);
      sc.free();
      small.close(); big.close();
    });

    it('memUsage is htab_map_mem_usage (reference §2.2) and follows the count', () => {
      for (const type of ['hash', 'percpu_hash'] as const) {
        const m = dyn({ type, keySize: 4, valueSize: 12, maxEntries: 100 });
        const h = htab(m);
        const base = SIZEOF_BPF_MAP + SIZEOF_BUCKET * h.nBuckets + 4 * nrCpuIds * HASHTAB_MAP_LOCK_COUNT;
        expect(m.stats().memoryBytes).toBe(base);
        for (let i = 0; i < 10; i++) m.update(u32(i), new Uint8Array(m.sysValueSize));
        const per = mode === 'bpf_mem_alloc'
          ? (h.elemSize + 8) + (type === 'percpu_hash' ? 16 + 16 * nrCpuIds : 0)
          : h.elemSize + (type === 'percpu_hash' ? 16 * nrCpuIds : 0);
        expect(m.stats().memoryBytes).toBe(base + 10 * per);
        m.close();
      }
    });

    it('every dynamic map gives back all its memory when closed (owners retired)', async () => {
      for (const type of ['hash', 'percpu_hash'] as const) {
        const m = dyn({ type, keySize: 4, valueSize: 12, maxEntries: 1000 });
        for (let i = 0; i < 700; i++) m.update(u32(i), new Uint8Array(m.sysValueSize));
        for (let i = 0; i < 700; i += 3) m.delete(u32(i));
        const own = ownersOf(m.impl);
        expect(ownerBytes(own.elems)).toBeGreaterThan(0);
        void m.close();
        await settle();
        expect(memStats().bytesInUse, type).toBe(baseBytes);
        expect(ownerBytes(own.map)).toBe(0);
        expect(ownerBytes(own.elems)).toBe(0);
      }
    });

    it('a reader that meets poisoned memory in the lock-free walk splats use_after_free and does not hang', () => {
      const m = dyn({ keySize: 4, valueSize: 8, maxEntries: 8 });
      m.update(u32(1), u64(1));
      const impl = m.impl;
      const h = htab(m);
      const sc = new Scratch();
      const e = impl.lookup(sc.u32(0, 1)) - h.valOff;
      const saved = I32[(e + E_NEXT) >> 2]!;
      I32[(e + E_NEXT) >> 2] = POISON_WORD; // what a reader standing on a freed element would read
      // a missing key of the same bucket: the walk runs off the element into "freed" memory
      let missing = 2;
      while ((h.hash(sc.u32(0, missing)) & h.nMask) !== (h.hash(sc.u32(4, 1)) & h.nMask)) missing++;
      expect(asCpu(0, () => impl.lookup(sc.u32(0, missing)))).toBe(0);
      const s = readSplats().filter((x) => x.kind === 'use_after_free');
      expect(s).toHaveLength(1);
      expect(s[0]!.message).toContain('0x6b6b6b6b');
      allowed = ['use_after_free'];
      I32[(e + E_NEXT) >> 2] = saved;
      expect(m.check()).toEqual([]);
      sc.free();
      m.close();
    });

    it('BPF_F_LOCK: a new dynamic element starts with its bpf_spin_lock unlocked (check_and_init_map_value)', () => {
      const m = dyn({ keySize: 4, valueSize: 16, maxEntries: 8, spinLockOffset: 4 });
      const v = new Uint8Array(16);
      const dv = new DataView(v.buffer);
      for (let round = 0; round < 4; round++) {
        dv.setUint32(0, round, true);
        dv.setUint32(4, 0xdeadbeef, true); // the lock word of the input is never copied
        m.update(u32(1), v, BPF_F_LOCK);              // new element: bucket lock path
        m.update(u32(1), v, BPF_F_LOCK | BPF_EXIST);  // in place under the element's spin lock
        const out = m.lookup(u32(1), BPF_F_LOCK)!;
        expect(new DataView(out.buffer).getUint32(0, true)).toBe(round);
        expect(new DataView(out.buffer).getUint32(4, true)).toBe(0);
        const p = m.impl.lookup(u32pp(1));
        expect(I32[(p + 4) >> 2]).toBe(0); // the lock word in the element
        m.update(u32(1), v, BPF_ANY);       // replace: a new element
        m.delete(u32(1));                   // freed: kmalloc poisons it / bpf_mem_alloc reuses it next
      }
      expect(m.check()).toEqual([]);
      m.close();
    });

    it('htabMemAllocLevels: the element cache per CPU with its watermarks (bpf_mem_alloc only)', () => {
      const m = dyn({ keySize: 4, valueSize: 8, maxEntries: 1024 });
      const lv = htabMemAllocLevels(m.impl);
      if (mode === 'kmalloc') {
        expect(lv).toBeNull();
      } else {
        expect(lv).not.toBeNull();
        expect(lv!.unitSize).toBe(htab(m).elemSize + 8);
        expect([lv!.low, lv!.high]).toEqual([32, 96]);
        expect(lv!.perCpu).toHaveLength(nrCpuIds);
        expect(lv!.perCpu.every((n) => n === 4)).toBe(true); // the prefill
        // what the CLI reads (cli/stress.ts cacheLevels): impl.alloc.ma
        expect((m.impl as unknown as { alloc: { ma: number } }).alloc.ma).toBe(htab(m).alloc!.ma);
      }
      const pre = new BpfMap(createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 16 }));
      expect(htabMemAllocLevels(pre.impl)).toBeNull();
      pre.close();
      m.close();
    });
  });
}

describe('bpf_mem_alloc mode: reuse, -ENOMEM, teardown', () => {
  beforeEach(() => { bootDyn('bpf_mem_alloc', { cpus: CPUS }); });
  afterEach(() => { expect(unexpectedSplats()).toEqual([]); });

  it('a deleted element is reusable at once (no grace period): the next insert on that CPU gets it', () => {
    const m = dyn({ keySize: 4, valueSize: 8, maxEntries: 64 });
    const impl = m.impl;
    const sc = new Scratch();
    const v = sc.u32(8, 1);
    asCpu(1, () => {
      expect(impl.update(sc.u32(0, 10), v, BPF_NOEXIST)).toBe(0);
      const e1 = impl.lookup(sc.u32(0, 10));
      expect(impl.delete(sc.u32(0, 10))).toBe(0);
      expect(impl.update(sc.u32(0, 11), v, BPF_NOEXIST)).toBe(0);
      expect(impl.lookup(sc.u32(0, 11))).toBe(e1); // LIFO free list of this CPU's cache
    });
    expect(m.check()).toEqual([]);
    sc.free();
    m.close();
  });

  it('NMI: the cache runs dry → -ENOMEM (count restored); task context refills', () => {
    const m = dyn({ keySize: 4, valueSize: 8, maxEntries: 4096 });
    const impl = m.impl;
    const sc = new Scratch();
    const v = sc.u32(8, 1);
    const ok: number[] = [];
    let nomem = 0;
    asCpu(2, () => {
      const saved = enterContext(CTX_NMI);
      try {
        for (let i = 0; i < 200; i++) {
          const r = impl.update(sc.u32(0, i), v, BPF_NOEXIST);
          if (r === 0) ok.push(i); else { expect(r).toBe(-12); nomem++; }
        }
      } finally { exitContext(CTX_NMI, saved); }
    });
    expect(ok.length).toBe(4);
    // back in the interrupted context: its next window takes the irq_work the NMI raised
    asCpu(2, () => { processPending(); }); // the prefill: irq_work cannot run inside the NMI
    expect(nomem).toBe(196);
    expect(m.stats().elements).toBe(4);
    expect(m.check()).toEqual([]);
    asCpu(2, () => {
      for (let i = 1000; i < 1200; i++) expect(impl.update(sc.u32(0, i), v, BPF_NOEXIST)).toBe(0);
    });
    expect(m.check()).toEqual([]);
    const st = bpfMemAllocStats(htab(m).alloc!.ma);
    expect(st.nulls).toBe(196);
    sc.free();
    m.close();
  });

  it('close with a grace-period callback in flight: memory back only after the deferred destroy', async () => {
    const before = memStats().bytesInUse;
    const m = dyn({ keySize: 4, valueSize: 8, maxEntries: 4096 });
    const impl = m.impl;
    const sc = new Scratch();
    const v = sc.u32(8, 1);
    // churn on CPU 0: trims send surplus objects to a grace period
    asCpu(0, () => {
      for (let i = 0; i < 2000; i++) expect(impl.update(sc.u32(0, i), v, BPF_NOEXIST)).toBe(0);
      for (let i = 0; i < 2000; i++) expect(impl.delete(sc.u32(0, i))).toBe(0);
    });
    expect(bpfMemAllocStats(htab(m).alloc!.ma).inFlight).toBeGreaterThan(0);
    sc.free();
    const own = ownersOf(impl);
    const closed = m.close();
    expect(ownerBytes(own.elems)).toBeGreaterThan(0); // the caches wait for rcu_barrier
    expect(await pump(closed, 200)).toBe(true);
    expect(ownerBytes(own.elems)).toBe(0);
    expect(memStats().bytesInUse).toBe(before);
    await settle();
  });
});

describe('kmalloc mode: one call_rcu per element', () => {
  beforeEach(() => { bootDyn('kmalloc', { cpus: CPUS }); });
  afterEach(() => { expect(unexpectedSplats()).toEqual([]); });

  it('a deleted element is freed only after a grace period (a reader in its read section holds it)', async () => {
    const m = dyn({ keySize: 4, valueSize: 8, maxEntries: 64 });
    const impl = m.impl;
    const own = ownersOf(impl);
    const sc = new Scratch();
    const v = sc.u32(8, 77);
    expect(asCpu(0, () => impl.update(sc.u32(0, 5), v, BPF_NOEXIST))).toBe(0);
    const bytesOne = ownerBytes(own.elems);
    // CPU 1 is inside a program that looked the element up
    const p = asCpu(1, () => { rcuIdleExit(); rcuReadLock(); return impl.lookup(sc.u32(0, 5)); });
    expect(asCpu(0, () => impl.delete(sc.u32(0, 5)))).toBe(0);
    expect(asCpu(0, () => impl.update(sc.u32(0, 6), v, BPF_NOEXIST))).toBe(0); // not the same memory
    expect(asCpu(0, () => impl.lookup(sc.u32(0, 6)))).not.toBe(p);
    await pollFor(30); // grace periods are attempted; CPU 1 holds them up
    expect(I32[p >> 2]).toBe(77); // still valid: the grace period waits for CPU 1
    expect(ownerBytes(own.elems)).toBe(2 * bytesOne);
    asCpu(1, () => { rcuReadUnlock(); rcuIdleEnter(); });
    expect(await pump(htabFreeIdle(), 5)).toBe(true);
    await settle();
    expect(ownerBytes(own.elems)).toBe(bytesOne);
    expect(m.check()).toEqual([]);
    sc.free();
    m.close();
    expect(ownerBytes(own.elems)).toBe(0); // the live element is kfree'd at map_free, none pending
  });

  it('m.close(); await rcuBarrier() brings the slab back exactly with elements still waiting for their grace period', async () => {
    const before = memStats().bytesInUse;
    const m = dyn({ type: 'percpu_hash', keySize: 4, valueSize: 16, maxEntries: 512 });
    for (let i = 0; i < 400; i++) m.update(u32(i), new Uint8Array(m.sysValueSize));
    for (let i = 0; i < 400; i += 2) m.delete(u32(i));
    const own = ownersOf(m.impl);
    void m.close();
    expect(ownerBytes(own.elems)).toBeGreaterThan(0);
    await settle();
    expect(memStats().bytesInUse).toBe(before);
    expect(ownerBytes(own.elems)).toBe(0);
  });
});

describe('memory at 10% fill: dynamic ≤ 0.2× preallocated (memUsage and slab accounting)', () => {
  for (const mode of DYN_MODES) {
    it(`${mode}: key 8, value 224, 16384 entries`, async () => {
      bootDyn(mode, { cpus: CPUS, memoryBytes: 96 << 20 });
      const spec: MapSpec = { type: 'hash', keySize: 8, valueSize: 224, maxEntries: 16384 };
      const base = memStats().bytesInUse;
      const pre = new BpfMap(createMap(spec));
      const preSlab = memStats().bytesInUse - base;
      const fill = (m: BpfMap): void => { for (let i = 0; i < spec.maxEntries / 10; i++) m.update(u64(i), new Uint8Array(224)); };
      fill(pre);
      const preUsage = pre.stats().memoryBytes;
      void pre.close();
      const base2 = memStats().bytesInUse;
      const d = dyn(spec);
      // fill from every CPU, as programs would (each CPU's cache holds up to its high watermark)
      const sc = new Scratch(512);
      for (let i = 0; i < spec.maxEntries / 10; i++) {
        expect(asCpu(i % CPUS, () => d.impl.update(sc.u32(0, i), sc.ptr + 256, BPF_NOEXIST))).toBe(0);
      }
      const dynSlab = memStats().bytesInUse - base2 - 512;
      const dynUsage = d.stats().memoryBytes;
      sc.free();
      console.log(`[mem 10%] ${mode}: memUsage ${dynUsage} / ${preUsage} = ${(dynUsage / preUsage).toFixed(3)}; slab ${dynSlab} / ${preSlab} = ${(dynSlab / preSlab).toFixed(3)}`);
      expect(dynUsage / preUsage).toBeLessThanOrEqual(0.2);
      expect(dynSlab / preSlab).toBeLessThanOrEqual(0.2);
      void d.close();
      await settle();
      expect(unexpectedSplats()).toEqual([]);
    });
  }
});

describe('PREEMPT_RT: the lock union (seed 000)', () => {
  for (const mode of DYN_MODES) {
    it(`${mode}: ${mode === 'kmalloc' ? 'sleeping spinlock_t buckets, kmalloc under them raises nothing in task context' : 'raw buckets, no allocation under them'}`, () => {
      bootDyn(mode, { cpus: CPUS, rt: true });
      const m = dyn({ keySize: 4, valueSize: 8, maxEntries: 256 });
      const pre = new BpfMap(createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 256 }));
      expect(htab(m).sleepingLock).toBe(mode === 'kmalloc');
      expect(m.usesSleepingBucketLock()).toBe(mode === 'kmalloc');
      expect(htab(pre).sleepingLock).toBe(false);
      expect(pre.usesSleepingBucketLock()).toBe(false);
      const sc = new Scratch();
      const v = sc.u32(8, 3);
      // program path (task context on CPU 0: migrate_disable, irqs on) and syscall path
      asCpu(0, () => { for (let i = 0; i < 200; i++) { const r = m.impl.update(sc.u32(0, i), v, BPF_NOEXIST); expect(r === 0 || r === -12).toBe(true); } });
      for (let i = 500; i < 520; i++) { try { m.update(u32(i), u64(i)); } catch (e: unknown) { expect((e as BpfError).code).toBe('ENOMEM'); } }
      expect(readSplats()).toEqual([]);
      expect(m.check()).toEqual([]);
      if (mode === 'kmalloc') {
        // the reason tracing programs may not use such maps: from NMI the sleeping lock splats
        asCpu(1, () => {
          const saved = enterContext(CTX_NMI);
          try { impl1(m, sc); } finally { exitContext(CTX_NMI, saved); }
        });
        const s = readSplats();
        expect(s.length).toBeGreaterThan(0);
        expect(s.every((x) => x.kind === 'sleeping_in_atomic')).toBe(true);
      }
      sc.free();
      m.close(); pre.close();
    });
  }
});

function impl1(m: BpfMap, sc: Scratch): void {
  m.impl.update(sc.u32(0, 9999), sc.u32(8, 1), BPF_ANY);
}

describe('test_map_large with BPF_F_NO_PREALLOC', () => {
  for (const mode of DYN_MODES) {
    it(`${mode}: 32768 entries of 4112-byte keys: E2BIG past the end, exact iteration count`, async () => {
      // 4136/4144-byte elements are 8 KiB blocks each (kmalloc-8k, as the kernel): ~270 MB
      bootDyn(mode, { cpus: 2, memoryBytes: 400 << 20 });
      const MAP_SIZE = 32 * 1024;
      const KS = 4 + 4096 + 4 + 8;
      const m = dyn({ keySize: KS, valueSize: 4, maxEntries: MAP_SIZE });
      const key = new Uint8Array(KS);
      const kv = new DataView(key.buffer);
      for (let i = 0; i < MAP_SIZE; i++) {
        kv.setBigInt64(KS - 8, BigInt(i), true);
        m.update(key, u32(i), BPF_NOEXIST);
      }
      kv.setBigInt64(KS - 8, -1n, true);
      expect(errCode(() => m.update(key, u32(0), BPF_NOEXIST))).toBe('E2BIG');
      let k: Uint8Array | undefined = key;
      for (let i = 0; i < MAP_SIZE; i++) { k = m.getNextKey(k!); expect(k).toBeDefined(); }
      expect(m.getNextKey(k!)).toBeUndefined();
      kv.setBigInt64(KS - 8, 0n, true);
      expect(m.lookup(key)).toEqual(u32(0));
      kv.setInt32(0, 1, true);
      expect(m.lookup(key)).toBeUndefined();
      expect(m.check()).toEqual([]);
      void m.close();
      await settle();
      expect(unexpectedSplats()).toEqual([]);
    }, 180_000);
  }
});
