// The two kernel properties: classified as such (result 'ok', listed under kernelProperties with
// the kernel function), never as violations; and not granted where they cannot apply.
import { describe, it, expect } from 'vitest';
import { checkHistory, type CheckOptions } from '../../src/check/index.js';
import { upd, look, del, K_A, K_B, V1, V2, V3 } from './helpers.js';

const o: CheckOptions = { inProcessMaxOps: Infinity };

describe('replace_lookup_miss (htab_map_update_elem links the new element before unlinking the old)', () => {
  // K_A holds V1; CPU 1 replaces it with V2 while CPU 0 looks it up and misses
  const ops = [upd(K_A, V1, 0, 1, 2), upd(K_A, V2, 0, 3, 10, 0, { cpu: 1 }), look(K_A, -2, 4, 6), look(K_A, V2, 11, 12)];

  it('is reported as a kernel property, not as a violation', async () => {
    const r = await checkHistory(ops, o);
    expect(r.result).toBe('ok');
    expect(r.illegal).toEqual([]);
    expect(r.kernelProperties).toHaveLength(1);
    expect(r.kernelProperties[0]).toMatchObject({
      kind: 'replace_lookup_miss', kernelFunction: 'htab_map_update_elem', map: 1, key: K_A, cpu: null, ops: [2], related: [1],
    });
  });

  it('is a violation under a strict check', async () => {
    const r = await checkHistory(ops, { ...o, kernelProperties: false });
    expect(r.result).toBe('illegal');
    expect(r.illegal[0]!.relaxed).toEqual([]);
  });

  it('with BPF_EXIST too', async () => {
    const r = await checkHistory([upd(K_A, V1, 0, 1, 2), upd(K_A, V2, 0, 3, 10, 2, { cpu: 1 }), look(K_A, -2, 4, 6)], o);
    expect(r.kernelProperties.map((k) => k.kind)).toEqual(['replace_lookup_miss']);
  });

  it('not when no update overlaps the miss', async () => {
    const r = await checkHistory([upd(K_A, V1, 0, 1, 2), look(K_A, -2, 4, 6), upd(K_A, V2, 0, 7, 10, 0, { cpu: 1 })], o);
    expect(r.result).toBe('illegal');
    expect(r.kernelProperties).toEqual([]);
  });

  it('not for a NOEXIST insert (it replaces nothing) nor for a failed update', async () => {
    expect((await checkHistory([upd(K_A, V1, 0, 1, 2), upd(K_A, V2, -17, 3, 10, 1, { cpu: 1 }), look(K_A, -2, 4, 6)], o)).result).toBe('illegal');
    expect((await checkHistory([upd(K_A, V1, 0, 1, 2), upd(K_A, V2, -16, 3, 10, 0, { cpu: 1 }), look(K_A, -2, 4, 6)], o)).result).toBe('illegal');
  });

  it('not on LRU maps (a miss there is plain eviction) nor on per-CPU hashes (updated in place)', async () => {
    const lru = await checkHistory(ops, { ...o, model: 'lru' });
    expect([lru.result, lru.kernelProperties]).toEqual(['ok', []]);
    const pc = await checkHistory([upd(K_A, V1, 0, 1, 2), upd(K_A, V2, 0, 3, 10), look(K_A, -2, 4, 6)], { ...o, model: 'percpu' });
    expect(pc.result).toBe('illegal');
  });

  it('a miss the property cannot explain stays illegal, and says what was allowed', async () => {
    // the miss overlaps a replace, but a second lookup, after everything, also misses
    const r = await checkHistory([...ops.slice(0, 3), look(K_A, -2, 11, 12)], o);
    expect(r.result).toBe('illegal');
    expect(r.illegal[0]!.relaxed).toEqual(['replace_lookup_miss']);
    expect(r.illegal[0]!.window!.ops).toContain(3);
  });
});

describe('foreign_read (a prealloc element reused for another key while a reader held it)', () => {
  // K_A holds V1; K_B gets V3; a lookup of K_A returns V3
  const ops = [upd(K_A, V1, 0, 1, 2), del(K_A, 0, 3, 20, { cpu: 1 }), upd(K_B, V3, 0, 4, 5, 0, { cpu: 1 }), look(K_A, V3, 2, 8), look(K_A, -2, 21, 22)];

  it('is reported as a kernel property, not as a violation', async () => {
    const r = await checkHistory(ops, o);
    expect(r.result).toBe('ok');
    expect(r.kernelProperties).toHaveLength(1);
    expect(r.kernelProperties[0]).toMatchObject({ kind: 'foreign_read', kernelFunction: 'free_htab_elem', map: 1, key: K_A, ops: [3], related: [2] });
  });

  it('names the LRU function on LRU maps', async () => {
    const r = await checkHistory(ops, { ...o, model: 'lru' });
    expect(r.kernelProperties[0]).toMatchObject({ kind: 'foreign_read', kernelFunction: 'prealloc_lru_pop' });
  });

  it('not when the other key got that value only after the lookup returned', async () => {
    const late = [upd(K_A, V1, 0, 1, 2), look(K_A, V3, 3, 4), upd(K_B, V3, 0, 5, 6, 0, { cpu: 1 })];
    const r = await checkHistory(late, o);
    expect(r.result).toBe('illegal');
    expect(r.kernelProperties).toEqual([]);
  });

  it('not for a value written to another map', async () => {
    const r = await checkHistory([upd(K_A, V1, 0, 1, 2), upd(K_B, V3, 0, 3, 4, 0, { map: 2 }), look(K_A, V3, 5, 6)], o);
    expect(r.result).toBe('illegal');
  });

  it('not on arrays (elements are never freed)', async () => {
    const r = await checkHistory([upd(K_A, V1, 0, 1, 2), upd(K_B, V3, 0, 3, 4), look(K_A, V3, 5, 6)], { ...o, model: 'array' });
    expect(r.result).toBe('illegal');
  });
});

describe('both at once', () => {
  it('one partition needing both is explained by both', async () => {
    const ops = [
      upd(K_A, V1, 0, 1, 2), upd(K_A, V2, 0, 3, 10, 0, { cpu: 1 }), look(K_A, -2, 4, 6), // a replace miss
      upd(K_B, V3, 0, 11, 12, 0, { cpu: 1 }), look(K_A, V3, 13, 14),                      // then a foreign read
    ];
    const r = await checkHistory(ops, o);
    expect(r.result).toBe('ok');
    expect(r.kernelProperties.map((k) => k.kind).sort()).toEqual(['foreign_read', 'replace_lookup_miss']);
  });
});
