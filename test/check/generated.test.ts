// Generated histories: a sequential run stretched in time (linearizable by construction) must
// pass; the same with one lookup result replaced by a value never written must fail, and the
// corrupted op must be inside the reported window. Many seeds, every modelled map type.
import { describe, it, expect } from 'vitest';
import { checkHistory, generateHistory, corruptHistory, type GenerateOptions, type MapInfo } from '../../src/check/index.js';

const TYPES = ['hash', 'lru_hash', 'array', 'percpu_hash', 'lru_percpu_hash', 'percpu_array'] as const;

describe('generated histories', () => {
  for (const mapType of TYPES) {
    it(`${mapType}: 40 seeds pass, and fail with one result corrupted`, async () => {
      for (let seed = 1; seed <= 40; seed++) {
        const g: GenerateOptions = { seed, ops: 150 + (seed % 5) * 50, mapType, keys: 2 + (seed % 6), cpus: 2 + (seed % 3), overlap: 1 + (seed % 4) };
        const h = generateHistory(g);
        const ok = await checkHistory(h.ops, { maps: h.maps, inProcessMaxOps: Infinity });
        if (ok.result !== 'ok') throw new Error(`seed ${seed} ${mapType}: ${ok.result} ${JSON.stringify(ok.illegal[0] ?? ok.unknown[0])}`);
        expect(ok.opsChecked).toBe(h.ops.length);
        expect(ok.kernelProperties).toEqual([]);

        const c = corruptHistory(h.ops, seed);
        const bad = await checkHistory(c.ops, { maps: h.maps, inProcessMaxOps: Infinity });
        if (bad.result !== 'illegal') throw new Error(`seed ${seed} ${mapType}: corrupted op ${c.index} not found: ${bad.result}`);
        expect(bad.illegal).toHaveLength(1);
        const w = bad.illegal[0]!.window!;
        expect([...w.ops, ...w.pending]).toContain(c.index);
        expect(bad.illegal[0]!.ops).toContain(c.index);
      }
    });
  }

  it('hash with a full map (E2BIG), many keys and wide overlap', async () => {
    for (let seed = 100; seed < 110; seed++) {
      const h = generateHistory({ seed, ops: 1500, keys: 64, cpus: 4, overlap: 6, maxEntries: 24 });
      expect(h.ops.some((o) => o.result === -7)).toBe(true);
      expect((await checkHistory(h.ops, { maps: h.maps, inProcessMaxOps: Infinity })).result).toBe('ok');
      expect((await checkHistory(corruptHistory(h.ops, seed).ops, { maps: h.maps, inProcessMaxOps: Infinity })).result).toBe('illegal');
    }
  });

  it('several maps of different types in one history', async () => {
    const parts = TYPES.map((mapType, m) => generateHistory({ seed: 7 + m, ops: 300, mapType, map: m + 1, keys: 4 }));
    const ops = parts.flatMap((p) => p.ops);
    const maps = parts.reduce<Record<number, MapInfo>>((a, p) => Object.assign(a, p.maps), {});
    const r = await checkHistory(ops, { maps, inProcessMaxOps: Infinity });
    expect(r.result).toBe('ok');
    expect(r.opsChecked).toBe(ops.length);
  });

  it('the generator is deterministic', () => {
    expect(generateHistory({ seed: 5, ops: 200 })).toEqual(generateHistory({ seed: 5, ops: 200 }));
    expect(generateHistory({ seed: 5, ops: 200 })).not.toEqual(generateHistory({ seed: 6, ops: 200 }));
  });
});
