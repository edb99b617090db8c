// The piscina path: the same answers as the in-process path (the workers run the compiled
// dist/src/check/check_worker.js: `npm test` builds it first), a caller's pool reused and left
// running, and a pool created here destroyed.
import { describe, it, expect, beforeAll } from 'vitest';
import { existsSync } from 'node:fs';
import {
  checkHistory, checkWorkerPath, corruptHistory, createCheckPool, generateHistory, type CheckResult, type HistoryOp, type MapInfo,
} from '../../src/check/index.js';
import { upd, look, del, K_A, K_B, V1, V2, V3 } from './helpers.js';

/** A result without what legitimately differs between runs. */
const essence = (r: CheckResult): Omit<CheckResult, 'elapsedMs' | 'ranOn'> => {
  const { elapsedMs: _e, ranOn: _r, ...rest } = r;
  return rest;
};

beforeAll(() => {
  if (!existsSync(checkWorkerPath())) throw new Error(`${checkWorkerPath()} is missing: run \`npm run build\` first (npm test does)`);
});

describe('piscina pool', () => {
  it('gives the same answers as the in-process path', async () => {
    const histories: { ops: HistoryOp[]; maps: Record<number, MapInfo> }[] = [];
    const types = ['hash', 'lru_hash', 'array', 'percpu_hash', 'lru_percpu_hash', 'percpu_array'] as const;
    types.forEach((mapType, i) => {
      const g = generateHistory({ seed: 40 + i, ops: 600, keys: 12, mapType });
      histories.push(g);
      histories.push({ ops: corruptHistory(g.ops, i).ops, maps: g.maps });
    });
    // kernel properties and a multi-partition illegal history
    histories.push({
      ops: [
        upd(K_A, V1, 0, 1, 2), upd(K_A, V2, 0, 3, 10, 0, { cpu: 1 }), look(K_A, -2, 4, 6), look(K_A, V2, 11, 12),
        upd(K_B, V3, 0, 1, 2, 0, { map: 2 }), del(K_B, 0, 3, 4, { map: 2 }), del(K_B, 0, 5, 6, { map: 2 }),
      ],
      maps: { 1: { type: 'hash' }, 2: { type: 'hash' } },
    });
    const pool = createCheckPool({ threads: 2 });
    try {
      for (const h of histories) {
        const a = await checkHistory(h.ops, { maps: h.maps, inProcessMaxOps: Infinity });
        const b = await checkHistory(h.ops, { maps: h.maps, inProcessMaxOps: 0, pool });
        expect(a.ranOn).toBe('in-process');
        expect(b.ranOn).toBe('pool');
        expect(essence(b)).toEqual(essence(a));
      }
    } finally {
      await pool.destroy();
    }
  });

  it('creates its own pool above the threshold, and the caller sees a normal result', async () => {
    const g = generateHistory({ seed: 3, ops: 3000, keys: 200 });
    const r = await checkHistory(g.ops, { maps: g.maps, inProcessMaxOps: 1000, threads: 2 });
    expect([r.ranOn, r.result, r.opsChecked]).toEqual(['pool', 'ok', 3000]);
    const small = await checkHistory(g.ops.slice(0, 100), { maps: g.maps, inProcessMaxOps: 1000 });
    expect(small.ranOn).toBe('in-process');
  });

  it('a caller pool is left running and can be reused', async () => {
    const pool = createCheckPool({ threads: 1 });
    try {
      const g = generateHistory({ seed: 9, ops: 500 });
      for (let i = 0; i < 3; i++) expect((await checkHistory(g.ops, { maps: g.maps, inProcessMaxOps: 0, pool })).result).toBe('ok');
      expect(pool.completed).toBeGreaterThanOrEqual(3);
    } finally {
      await pool.destroy();
    }
  });

  it("budget exhaustion on the pool is 'unknown' too", async () => {
    const ops: HistoryOp[] = [];
    for (let i = 0; i < 40; i++) ops.push(upd(K_A, (0xbb000000 + i).toString(16), 0, 1 + i, 1000 + i, 0, { cpu: i }));
    ops.push(look(K_A, 'cc000000', 2000, 2001));
    const r = await checkHistory(ops, { timeoutMs: 100, inProcessMaxOps: 0, threads: 1 });
    expect(r.ranOn).toBe('pool');
    expect(r.result).toBe('unknown');
    expect(['timeout', 'aborted']).toContain(r.unknown[0]!.reason);
  });
});
