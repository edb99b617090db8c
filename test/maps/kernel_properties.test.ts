// Kernel behaviours that look like bugs and are kept on purpose (docs/KERNEL_PROPERTIES.md), each
// reproduced deterministically and checked as the kernel's:
//  1. htab_lru_map_update_elem takes a free LRU node (prealloc_lru_pop -> bpf_lru_pop_free, which
//     may shrink the LRU, evicting elements) BEFORE check_flags: a BPF_NOEXIST update of an existing
//     key fails with EEXIST after having evicted, and the popped node goes back (bpf_lru_push_free).
//  2. htab_map_update_elem replaces a key by linking the new element at the bucket head
//     (hlist_nulls_add_head_rcu) and then unlinking the old one (hlist_nulls_del_rcu): a lock-free
//     lookup standing past the head, before the old element, misses both — "not found" for a key
//     that is present before and after.
import { describe, it, expect, afterEach } from 'vitest';
import { Runtime, BpfError, BPF_NOEXIST, BPF_F_NO_COMMON_LRU } from '../../src/index.js';
import { BpfMap } from '../../src/maps/bpf_map.js';
import { createMap } from '../../src/maps/registry.js';
import type { BpfHtab } from '../../src/maps/hashtab.js';
import type { MapType } from '../../src/maps/map_ops.js';
import { jhash1Word } from '../../src/maps/jhash.js';
import { thisCpu } from '../../src/mem/this_cpu.js';
import { nrCpus } from '../../src/mem/arena.js';
import { boot, u32, u64, readU32, readU64, splatsOf } from './boot.js';
import { fixture, expectNoSplats } from '../helpers.js';

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

/**
 * Free LRU nodes this CPU's next bpf_lru_pop_free can take without shrinking: common LRU, with
 * only this CPU updating, every free node (global free list and local free lists); per-CPU LRU,
 * the free list of this CPU's own list.
 */
function freeForThisCpu(m: BpfMap): number {
  const lru = (m.impl as BpfHtab).lruList!;
  if (!lru.percpu) return m.stats().freeElements;
  let n = 0;
  const mine = `cpu ${thisCpu} list free`;
  lru.check(m.impl.maxEntries + 1, (_node, _type, where) => { if (where === mine) n++; }, []);
  return n;
}

function keysOf(m: BpfMap): Set<number> {
  return new Set([...m.keys()].map((k) => readU32(k)));
}

describe('LRU: BPF_NOEXIST on an existing key evicts, then fails with EEXIST', () => {
  for (const type of ['lru_hash', 'lru_percpu_hash'] as MapType[]) {
    for (const flags of [0, BPF_F_NO_COMMON_LRU]) {
      it(`${type}${flags !== 0 ? ' NO_COMMON_LRU' : ''}: the free node is taken (and elements evicted) before check_flags`, () => {
        boot({ cpus: 2 });
        const m = new BpfMap(createMap({ type, keySize: 4, valueSize: 8, maxEntries: 48, flags }));
        // fill until this CPU's next pop must shrink the LRU (no free node left to it)
        let next = 0;
        while (freeForThisCpu(m) > 0 && next < 100 * m.info().maxEntries) {
          m.update(u32(next), valueOf(m, next), BPF_NOEXIST);
          next++;
        }
        expect(freeForThisCpu(m)).toBe(0);
        const existing = next - 1; // the newest key: certainly present
        const present = keysOf(m);
        expect(present.has(existing)).toBe(true);
        const elementsBefore = m.stats().elements;
        expect(elementsBefore).toBe(present.size);

        expect(errCode(() => m.update(u32(existing), valueOf(m, 999), BPF_NOEXIST))).toBe('EEXIST');

        const after = keysOf(m);
        const evicted = [...present].filter((k) => !after.has(k));
        expect(evicted.length).toBeGreaterThan(0);              // the failed update evicted
        expect([...after].every((k) => present.has(k))).toBe(true); // and inserted nothing
        expect(after.has(existing)).toBe(true);
        expect(readU64(m.lookup(u32(existing))!)).toBe(BigInt(existing)); // old value kept
        expect(m.stats().elements).toBe(elementsBefore - evicted.length);
        // every evicted node is free again, the popped one included (bpf_lru_push_free)
        expect(freeForThisCpu(m)).toBe(evicted.length);
        expect(m.check()).toEqual([]);
        expect(splatsOf()).toEqual([]);
        void m.close();
      });
    }
  }
});

let rt: Runtime | undefined;
afterEach(async () => { await rt?.stop(); rt = undefined; });

describe('hash: a lookup racing a replace of its key can miss it', () => {
  it('an NMI replacing the key while the lookup stands on the element before it: "not found", present before and after', async () => {
    rt = await Runtime.start({ cpus: 1, memoryBytes: 32 << 20, seed: 3 });
    expect(rt.sites()).toContain('htab.lookup.walk');
    const m = rt.createMap({ type: 'hash', name: 'kp', keySize: 4, valueSize: 4, maxEntries: 64 });
    const h = m.impl as BpfHtab;
    const bucketOf = (k: number): number => jhash1Word(k, h.hashrnd) & h.nMask;
    // K, then another key A of the same bucket: A is linked at the head, in front of K
    const K = 7;
    let A = K + 1;
    while (bucketOf(A) !== bucketOf(K)) A++;
    m.update(u32(K), u32(1));
    m.update(u32(A), u32(100));
    expect(readU32(m.getNextKey(u32(A))!)).toBe(K); // chain: head -> A -> K

    const lookup = await rt.loadProgram(fixture('kp_lookup.mjs'), { maps: { m } });
    const replace = await rt.loadProgram(fixture('kp_replace.mjs'), { maps: { m }, args: { key: K, value: 2 } });
    // undisturbed, the program finds K
    expect((await lookup.testRun({ cpu: 0, args: { key: K } })).retval).toBe(1);

    // the NMI lands at the first step of the walk: A compared (a miss), A's next not yet read
    const inj = rt.inject({ cpu: 0, at: 'htab.lookup.walk', kind: 'nmi', program: replace, times: 1 });
    const res = await lookup.testRun({ cpu: 0, args: { key: K } });
    expect(inj.fired()).toBe(1);
    expect(replace.lastRetval(0)).toBe(0); // the replace succeeded (no lock was held: lookups are lock-free)
    expect(res.retval).toBe(-1);           // the lookup missed K ...
    expect(readU32(m.lookup(u32(K))!)).toBe(2); // ... which was there before (1) and after (2)
    expect(readU32(m.lookup(u32(A))!)).toBe(100);
    expect(m.stats().elements).toBe(2);
    expect(readU32(m.getNextKey(null)!)).toBe(K); // the new K now leads the chain: head -> K -> A
    expect((await lookup.testRun({ cpu: 0, args: { key: K } })).retval).toBe(2);
    expect(m.check()).toEqual([]);
    expectNoSplats(rt);
  }, 60_000);
});
