// Buddy allocator: split, merge back to the boot shape, alignment, exhaustion.
import { describe, it, expect, beforeEach } from 'vitest';
import { bootArena } from './boot_arena.js';
import { PAGE_SIZE } from '../../src/mem/layout.js';
import { allocPages, freePages, zoneStats, zoneCheck, pagesFree, pagesBase, MAX_ORDER } from '../../src/mm/page_alloc.js';
import { readSplats } from '../../src/debug/splat.js';

beforeEach(() => { bootArena({ memoryBytes: 8 << 20 }); });

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('page allocator', () => {
  it('blocks are naturally aligned and disjoint; freeing all merges back to the boot shape', () => {
    const boot = zoneStats();
    const rnd = mulberry32(42);
    const live: { p: number; order: number }[] = [];
    for (let i = 0; i < 3000; i++) {
      if (live.length > 0 && rnd() < 0.45) {
        const j = Math.floor(rnd() * live.length);
        freePages(live[j]!.p);
        live[j] = live[live.length - 1]!;
        live.pop();
        continue;
      }
      const order = Math.floor(rnd() * rnd() * 6);
      const p = allocPages(order);
      if (p === 0) continue;
      expect(((p - pagesBase()) / PAGE_SIZE) % (1 << order)).toBe(0);
      live.push({ p, order });
    }
    const spans = live.map((b) => [b.p, b.p + (PAGE_SIZE << b.order)] as const).sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
    expect(zoneCheck()).toEqual([]);
    for (const b of live) freePages(b.p);
    expect(zoneCheck()).toEqual([]);
    expect(zoneStats()).toEqual(boot);
    expect(readSplats()).toEqual([]);
  });

  it('exhaustion and impossible orders return 0', () => {
    expect(allocPages(MAX_ORDER + 1)).toBe(0);
    expect(allocPages(-1)).toBe(0);
    const got: number[] = [];
    for (let p = allocPages(0); p !== 0; p = allocPages(0)) got.push(p);
    expect(pagesFree()).toBe(0);
    expect(got.length).toBe(zoneStats().pagesTotal);
    for (const p of got) freePages(p);
    expect(pagesFree()).toBe(zoneStats().pagesTotal);
    expect(zoneCheck()).toEqual([]);
    expect(readSplats()).toEqual([]);
  });
});
