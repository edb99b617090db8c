// alloc_percpu: one zeroed copy per CPU id at ptr + cpu * stride; tagged against kfree mix-ups.
import { describe, it, expect, beforeEach } from 'vitest';
import { bootArena } from './boot_arena.js';
import { U8, nrCpuIds } from '../../src/mem/arena.js';
import { PAGE_SIZE } from '../../src/mem/layout.js';
import { allocPercpu, freePercpu, percpuStride, perCpuPtr } from '../../src/mm/percpu_alloc.js';
import { kmalloc, kfree, ksize, POISON_FREE } from '../../src/mm/slab.js';
import { allocOwner, ownerBytes, memStats, memCheck } from '../../src/mm/owners.js';
import { readSplats } from '../../src/debug/splat.js';

beforeEach(() => { bootArena({ ncpus: 4 }); });

describe('percpu alloc', () => {
  it('stride is round_up(size, 8)', () => {
    expect(percpuStride(1)).toBe(8);
    expect(percpuStride(8)).toBe(8);
    expect(percpuStride(12)).toBe(16);
    expect(percpuStride(100)).toBe(104);
  });

  it('one zeroed, 8-aligned copy per CPU id, independent, charged to the owner', () => {
    expect(nrCpuIds).toBe(5);
    const o = allocOwner('percpu_map');
    for (const size of [4, 12, 100, 1000, 3000]) {
      const p = allocPercpu(size, o);
      expect(p).not.toBe(0);
      const stride = percpuStride(size);
      expect(ksize(p)).toBeGreaterThanOrEqual(stride * nrCpuIds);
      for (let c = 0; c < nrCpuIds; c++) {
        const q = perCpuPtr(p, size, c);
        expect(q).toBe(p + c * stride);
        expect(q % 8).toBe(0);
        for (let i = 0; i < size; i++) expect(U8[q + i]).toBe(0);
        U8.fill(c + 1, q, q + size);
      }
      for (let c = 0; c < nrCpuIds; c++) {
        const q = p + c * stride;
        for (let i = 0; i < size; i++) if (U8[q + i] !== c + 1) throw new Error(`cpu ${c} copy damaged`);
      }
      expect(ownerBytes(o)).toBe(ksize(p));
      expect(memStats().percpuAllocs).toBe(1);
      freePercpu(p);
      expect(U8[p]).toBe(POISON_FREE);
      expect(ownerBytes(o)).toBe(0);
      expect(memStats().percpuAllocs).toBe(0);
    }
    expect(readSplats()).toEqual([]);
    expect(memStats().bytesInUse).toBe(0);
    expect(memCheck()).toEqual([]);
  });

  it('size 0 -> 0; kfree of a percpu block and freePercpu of a kmalloc block are bad_free', () => {
    expect(allocPercpu(0, 0)).toBe(0);
    const p = allocPercpu(16, 0);
    const big = allocPercpu(PAGE_SIZE, 0);
    const k = kmalloc(16, 0);
    kfree(p);
    kfree(big);
    freePercpu(k);
    expect(readSplats().map((s) => s.kind)).toEqual(['bad_free', 'bad_free', 'bad_free']);
    freePercpu(p); freePercpu(big); kfree(k);
    freePercpu(p); // double
    expect(readSplats().map((s) => s.kind).slice(3)).toEqual(['double_free']);
    expect(memStats().bytesInUse).toBe(0);
    expect(memCheck()).toEqual([]);
  });
});
