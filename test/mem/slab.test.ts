// kmalloc/kfree on the main thread: size classes, accounting, poison, double/bad free, exhaustion,
// large blocks, NMI trylock + deferred free, PREEMPT_RT might_sleep.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { bootArena } from './boot_arena.js';
import { U8, I32 } from '../../src/mem/arena.js';
import { FLAG_PREEMPT_RT, PAGE_SIZE, PC_PEND_PROG_NMI, PEND_NMI } from '../../src/mem/layout.js';
import { pcpuI } from '../../src/mem/this_cpu.js';
import {
  kmalloc, kzalloc, kfree, ksize, kmemOwner, kmallocClassLock, slabDrainDeferred, slabGeometry,
  SLAB_SIZES, POISON_FREE, POISON_WORD, KMALLOC_MAX_CACHE_SIZE,
} from '../../src/mm/slab.js';
import { allocOwner, freeOwner, ownerBytes, ownerName, memStats, memCheck, OWNER_KERNEL } from '../../src/mm/owners.js';
import { allocPages, freePages } from '../../src/mm/page_alloc.js';
import { readSplats, formatSplat, type SplatKind } from '../../src/debug/splat.js';
import { rawSpinLock, rawSpinUnlock, rawSpinLockIrqsave, rawSpinUnlockIrqrestore } from '../../src/locks/raw_spinlock.js';
import { LC_TEST_A, LC_SLAB } from '../../src/locks/lock_classes.js';
import { enterContext, exitContext, CTX_NMI, CTX_HARDIRQ, localIrqDisable, localIrqEnable } from '../../src/cpu/context.js';
import { setIrqHooks, raisePending } from '../../src/cpu/window.js';

function splatKinds(): SplatKind[] { return readSplats().map((s) => s.kind); }
function expectNoSplats(): void { expect(readSplats().map(formatSplat)).toEqual([]); }
function isPoisoned(p: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (U8[p + i] !== POISON_FREE) return false;
  return true;
}

let start: ReturnType<typeof memStats>;
beforeEach(() => {
  bootArena();
  start = memStats();
});

/** Everything back where boot left it, and the allocator consistent. */
function expectClean(): void {
  const s = memStats();
  expect(s.bytesInUse).toBe(0);
  expect(s.slabObjects).toBe(0);
  expect(s.slabPages).toBe(0);
  expect(s.largeAllocs).toBe(0);
  expect(s.pagesFree).toBe(start.pagesFree);
  expect(memCheck()).toEqual([]);
}

describe('boot', () => {
  it('formats a consistent, empty allocator', () => {
    expect(start.bytesInUse).toBe(0);
    expect(start.pagesFree).toBe(start.pagesTotal);
    expect(start.pagesTotal).toBeGreaterThan(3000);
    expect(memCheck()).toEqual([]);
    for (const g of slabGeometry()) {
      expect(g.objs).toBeGreaterThan(2);
      expect(g.first % 8).toBe(0);
      // at most 1/8 of a slab wasted
      expect((PAGE_SIZE << g.order) - g.objs * g.size).toBeLessThanOrEqual((PAGE_SIZE << g.order) / 8);
    }
  });
});

describe('kmalloc / kfree', () => {
  it('every size class round trips: alignment, ksize, owner, no overlap', () => {
    const sizes: number[] = [1, 7, 8, 9];
    for (const s of SLAB_SIZES) sizes.push(s - 1, s, s + 1);
    const live: { p: number; size: number; tag: number }[] = [];
    for (let round = 0; round < 40; round++) {
      for (const size of sizes) {
        const p = kmalloc(size, OWNER_KERNEL);
        expect(p).not.toBe(0);
        expect(p % 8).toBe(0);
        const ks = ksize(p);
        expect(ks).toBeGreaterThanOrEqual(size);
        if (size <= KMALLOC_MAX_CACHE_SIZE) expect(SLAB_SIZES).toContain(ks);
        expect(kmemOwner(p)).toBe(OWNER_KERNEL);
        const tag = (round << 16) | live.length;
        I32.fill(tag, p >> 2, (p + ks) >> 2);
        live.push({ p, size: ks, tag });
      }
    }
    for (const { p, size, tag } of live) {
      for (let i = p >> 2; i < (p + size) >> 2; i++) if (I32[i] !== tag) throw new Error(`block 0x${p.toString(16)} overwritten`);
    }
    expect(memCheck()).toEqual([]);
    for (const { p } of live) kfree(p);
    expectNoSplats();
    expectClean();
  });

  it('kmalloc(0), negative and NaN sizes return 0; kfree(0) is a no-op', () => {
    expect(kmalloc(0, OWNER_KERNEL)).toBe(0);
    expect(kmalloc(-5, OWNER_KERNEL)).toBe(0);
    expect(kmalloc(Number.NaN, OWNER_KERNEL)).toBe(0);
    kfree(0);
    expectNoSplats();
    expectClean();
  });

  it('kzalloc zeroes the whole block even over poison', () => {
    const a = kmalloc(200, OWNER_KERNEL);
    kfree(a);
    const keep = kmalloc(200, OWNER_KERNEL); // keeps the slab alive so `a`'s slot is reused poisoned
    const b = kzalloc(200, OWNER_KERNEL);
    for (let i = 0; i < ksize(b); i++) expect(U8[b + i]).toBe(0);
    kfree(b); kfree(keep);
    expectNoSplats();
    expectClean();
  });

  it('freed memory is poisoned with 0x6b over its whole ksize', () => {
    const keep = kmalloc(64, OWNER_KERNEL);
    const p = kmalloc(64, OWNER_KERNEL);
    U8.fill(0x11, p, p + 64);
    kfree(p);
    expect(POISON_WORD).toBe(0x6b6b6b6b);
    expect(isPoisoned(p, 64)).toBe(true);
    expect(I32[p >> 2]).toBe(POISON_WORD);
    const big = kmalloc(3 * PAGE_SIZE, OWNER_KERNEL);
    U8.fill(0x22, big, big + 3 * PAGE_SIZE);
    kfree(big);
    expect(isPoisoned(big, 3 * PAGE_SIZE)).toBe(true);
    kfree(keep);
    expectNoSplats();
    expectClean();
  });

  it('large blocks: exact page runs, page aligned, accounted, trimmed tail goes back', () => {
    const free0 = memStats().pagesFree;
    const p = kmalloc(3 * PAGE_SIZE + 1, OWNER_KERNEL); // 4 pages, not rounded up to 4 -> 4
    expect(p % PAGE_SIZE).toBe(0);
    expect(ksize(p)).toBe(4 * PAGE_SIZE);
    const q = kmalloc(5 * PAGE_SIZE, OWNER_KERNEL); // 5 pages from an 8-page block: 3 go back
    expect(ksize(q)).toBe(5 * PAGE_SIZE);
    expect(memStats().pagesFree).toBe(free0 - 9);
    expect(memStats().largeAllocs).toBe(2);
    expect(ownerBytes(OWNER_KERNEL)).toBe(9 * PAGE_SIZE);
    const huge = kmalloc(6 << 20, OWNER_KERNEL); // above KMALLOC_MAX_SIZE: allowed here (vmalloc's role)
    expect(huge).not.toBe(0);
    U8.fill(1, huge, huge + (6 << 20));
    expect(memCheck()).toEqual([]);
    kfree(p); kfree(q); kfree(huge);
    expectNoSplats();
    expectClean();
  });

  it('exhaustion returns 0 without throwing, and everything comes back', () => {
    bootArena({ memoryBytes: 4 << 20 });
    start = memStats();
    expect(kmalloc(64 << 20, OWNER_KERNEL)).toBe(0); // larger than the arena
    expect(kmalloc(2 ** 33, OWNER_KERNEL)).toBe(0);
    const got: number[] = [];
    for (;;) {
      const p = kmalloc(2048, OWNER_KERNEL);
      if (p === 0) break;
      got.push(p);
    }
    expect(got.length).toBeGreaterThan(1000);
    expect(memStats().pagesFree).toBeLessThan(8);
    expect(kmalloc(PAGE_SIZE * 8, OWNER_KERNEL)).toBe(0);
    // small classes may still find room in the last pages; then they too run dry
    const small: number[] = [];
    for (let p = kmalloc(16, OWNER_KERNEL); p !== 0; p = kmalloc(16, OWNER_KERNEL)) small.push(p);
    for (const p of got) kfree(p);
    for (const p of small) kfree(p);
    expectNoSplats();
    expectClean();
    expect(memStats().classes.some((c) => c.fails > 0)).toBe(true);
  });
});

describe('double free and bad free', () => {
  it('double free of a slab object: exactly one double_free splat', () => {
    const keep = kmalloc(32, OWNER_KERNEL);
    const p = kmalloc(32, OWNER_KERNEL);
    kfree(p);
    kfree(p);
    expect(splatKinds()).toEqual(['double_free']);
    expect(readSplats()[0]!.message).toContain('kmalloc-32');
    kfree(keep);
    expectClean();
  });

  it('double free after the slab went back to the page allocator is still a double free', () => {
    const p = kmalloc(512, OWNER_KERNEL);
    kfree(p); // the slab is empty and released
    kfree(p);
    expect(splatKinds()).toEqual(['double_free']);
    expectClean();
  });

  it('double free of a large block', () => {
    const p = kmalloc(10 * PAGE_SIZE, OWNER_KERNEL);
    kfree(p);
    kfree(p);
    expect(splatKinds()).toEqual(['double_free']);
    expectClean();
  });

  it('bad pointers: outside the heap, misaligned, interior, unallocated page, page block', () => {
    const a = kmalloc(64, OWNER_KERNEL);
    const big = kmalloc(3 * PAGE_SIZE, OWNER_KERNEL);
    const pages = allocPages(1);
    const bad = [100, a + 4, a + 8, big + 8, big + PAGE_SIZE, pages, a + 16 * PAGE_SIZE * 64];
    for (const p of bad) kfree(p);
    expect(splatKinds()).toEqual(bad.map(() => 'bad_free'));
    // nothing was damaged: the real blocks are intact and free cleanly
    expect(ksize(a)).toBe(64);
    expect(ksize(big)).toBe(3 * PAGE_SIZE);
    kfree(a); kfree(big); freePages(pages);
    expect(readSplats()).toHaveLength(bad.length);
    expectClean();
  });

  it('free_pages double free and kfree/free_pages mix-ups', () => {
    const pg = allocPages(2);
    const k = kmalloc(8 * PAGE_SIZE, OWNER_KERNEL);
    freePages(k);           // not an alloc_pages block
    freePages(pg);
    freePages(pg);          // double
    expect(splatKinds()).toEqual(['bad_free', 'double_free']);
    kfree(k);
    expectClean();
  });
});

describe('owners', () => {
  it('charges the owner of each allocation and credits it on kfree from any owner mix', () => {
    const a = allocOwner('map_a');
    const b = allocOwner('map_b');
    expect(ownerName(a)).toBe('map_a');
    const pa = [kmalloc(100, a), kmalloc(5000, a), kzalloc(16, a)];
    const pb = [kmalloc(1, b), kmalloc(2048, b)];
    expect(ownerBytes(a)).toBe(128 + 2 * PAGE_SIZE + 16);
    expect(ownerBytes(b)).toBe(16 + 2048);
    expect(kmemOwner(pa[0]!)).toBe(a);
    expect(kmemOwner(pa[1]!)).toBe(a);
    expect(kmemOwner(pb[1]!)).toBe(b);
    expect(memStats().bytesInUse).toBe(ownerBytes(a) + ownerBytes(b));
    for (const p of pb) kfree(p);
    expect(ownerBytes(b)).toBe(0);
    expect(ownerBytes(a)).toBe(128 + 2 * PAGE_SIZE + 16);
    expect(freeOwner(b)).toBe(0);
    for (const p of pa) kfree(p);
    expect(freeOwner(a)).toBe(0);
    expectNoSplats();
    expectClean();
  });

  it('freeOwner with bytes still charged is a leak splat and retires the id', () => {
    const a = allocOwner('leaky');
    const p = kmalloc(40, a);
    expect(freeOwner(a)).toBe(64);
    expect(splatKinds()).toEqual(['leak']);
    expect(allocOwner('next')).not.toBe(a);
    kfree(p);
    expect(ownerBytes(a)).toBe(0);
    expectClean();
  });
});

describe('contexts', () => {
  afterEach(() => { setIrqHooks({ runProg: () => {} }); });

  it('NMI at slab.alloc.locked: the same class misses (0), another class succeeds, no deadlock', () => {
    const got: number[] = [];
    setIrqHooks({
      runProg: () => {
        got.push(kmalloc(32, OWNER_KERNEL));   // its class lock is held by the interrupted kmalloc
        got.push(kmalloc(128, OWNER_KERNEL));  // another class: fine from NMI
      },
    });
    Atomics.store(I32, pcpuI + (PC_PEND_PROG_NMI >> 2), 1);
    raisePending(pcpuI, PEND_NMI);
    const p = kmalloc(32, OWNER_KERNEL);
    expect(p).not.toBe(0);
    expect(got).toHaveLength(2);
    expect(got[0]).toBe(0);
    expect(got[1]).not.toBe(0);
    expect(readSplats().map((s) => s.kind)).toEqual([]);
    expect(memStats().nmiLockBusy).toBe(1);
    kfree(p); kfree(got[1]!);
    expectClean();
  });

  it('kfree in NMI with the class lock busy is deferred, then drained', () => {
    const keep = kmalloc(96, OWNER_KERNEL);
    const p = kmalloc(96, OWNER_KERNEL);
    const lock = kmallocClassLock(96);
    expect(rawSpinLockIrqsave(lock, LC_SLAB)).toBe(0);
    const saved = enterContext(CTX_NMI);
    kfree(p);
    expect(kmalloc(96, OWNER_KERNEL)).toBe(0);
    exitContext(CTX_NMI, saved);
    rawSpinUnlockIrqrestore(lock);
    expect(ksize(p)).toBe(96);         // still allocated until drained
    slabDrainDeferred();
    expect(ksize(p)).toBe(0);
    expect(memStats().deferredFrees).toBe(1);
    expect(isPoisoned(p, 96)).toBe(true);
    kfree(keep);
    expectNoSplats();
    expectClean();
  });

  it('kmalloc from hardirq and with irqs off works (irqsave locks)', () => {
    localIrqDisable();
    const a = kmalloc(24, OWNER_KERNEL);
    localIrqEnable();
    const saved = enterContext(CTX_HARDIRQ);
    const b = kmalloc(24, OWNER_KERNEL);
    kfree(a);
    exitContext(CTX_HARDIRQ, saved);
    kfree(b);
    expectNoSplats();
    expectClean();
  });

  it('!RT: kmalloc under a raw spinlock is fine', () => {
    const lock = kzalloc(8, OWNER_KERNEL);
    expect(rawSpinLock(lock, LC_TEST_A)).toBe(0);
    const p = kmalloc(64, OWNER_KERNEL);
    rawSpinUnlock(lock);
    expect(p).not.toBe(0);
    kfree(p); kfree(lock);
    expectNoSplats();
    expectClean();
  });

  it('RT: kmalloc under a raw spinlock splats sleeping_in_atomic, and still allocates', () => {
    bootArena({ flags: FLAG_PREEMPT_RT });
    start = memStats();
    const lock = kzalloc(8, OWNER_KERNEL); // task context, no lock: no splat
    expect(readSplats()).toEqual([]);
    expect(rawSpinLock(lock, LC_TEST_A)).toBe(0);
    const p = kmalloc(64, OWNER_KERNEL);
    rawSpinUnlock(lock);
    expect(p).not.toBe(0);
    const s = readSplats();
    expect(s.map((x) => x.kind)).toEqual(['sleeping_in_atomic']);
    expect(s[0]!.message).toContain('kmalloc');
    kfree(p); kfree(lock);
    expectClean();
  });
});
