// Differential test: the checker against an exhaustive search over whole-map states (helpers.ts
// bruteForce), on thousands of small random histories with random results (about half illegal).
// This exercises the search, Lowe's cache, the per-key partitioning and the models together.
import { describe, it, expect } from 'vitest';
import { checkHistory, type HistoryOp } from '../../src/check/index.js';
import { bruteForce, produce, rng, K_A, K_B, V1, V2, V3, ZERO, type MapState } from './helpers.js';

type T = 'hash' | 'lru_hash' | 'array';

function randomHistory(seed: number, type: T): HistoryOp[] {
  const r = rng(seed);
  const pick = <X>(a: readonly X[]): X => a[Math.floor(r() * a.length)]!;
  const n = 2 + Math.floor(r() * 7);
  const ops: { -readonly [K in keyof HistoryOp]: HistoryOp[K] }[] = [];
  const point: number[] = [];
  for (let i = 0; i < n; i++) {
    const call = Math.floor(r() * 24);
    const ret = call + 1 + Math.floor(r() * 8);
    point.push(call + r() * (ret - call)); // a linearization point inside the interval
    const key = pick([K_A, K_A, K_B]);
    const kinds = type === 'array' ? ['lookup', 'lookup', 'update', 'update', 'delete'] as const : ['lookup', 'lookup', 'update', 'update', 'delete', 'lookup_and_delete'] as const;
    const kind = pick(kinds);
    const base = { cpu: Math.floor(r() * 4), context: 'task', map: 1, key, call, ret, flags: 0, result: 0 as number | string };
    if (kind === 'update') ops.push({ ...base, op: kind, value: pick([V1, V2, V3]), flags: pick([0, 1, 2]) });
    else ops.push({ ...base, op: kind });
  }
  // the results a sequential run in point order gives (a linearizable history) ...
  let s: MapState = new Map();
  for (const i of [...ops.keys()].sort((a, b) => point[a]! - point[b]!)) {
    if (type === 'lru_hash' && s.has(ops[i]!.key) && r() < 0.2) { const m = new Map(s); m.delete(ops[i]!.key); s = m; }
    s = produce(type, s, ops[i]!);
  }
  // ... then, half the time, one result replaced at random (often illegal, not always)
  if (r() < 0.5) {
    const o = pick(ops);
    const values = type === 'array' ? [ZERO, V1, V2] : [V1, V2, V3];
    o.result = o.op === 'lookup' ? pick([...values, -2])
      : o.op === 'lookup_and_delete' ? pick([...values, -2, -16])
      : o.op === 'delete' ? (type === 'array' ? pick([-22, 0]) : pick([0, -2, -16]))
      : pick(type === 'array' ? [0, -17, -22] : [0, -17, -2, -7, -16]);
  }
  return ops;
}

describe('checker agrees with an exhaustive search on small random histories', () => {
  for (const type of ['hash', 'lru_hash', 'array'] as const) {
    it(`${type}: 1500 histories`, async () => {
      let legal = 0;
      for (let seed = 1; seed <= 1500; seed++) {
        const ops = randomHistory(seed * 7919 + type.length, type);
        const want = bruteForce(type, ops);
        const maps = { 1: { type, ...(type === 'array' ? { maxEntries: 16 } : {}) } };
        // strict: exactly the exhaustive answer
        const r = await checkHistory(ops, { maps, inProcessMaxOps: Infinity, minimize: seed % 10 === 0, kernelProperties: false });
        if ((r.result === 'ok') !== want) {
          throw new Error(`seed ${seed} (${type}): checker says ${r.result}, exhaustive search says ${want ? 'ok' : 'illegal'}\n${JSON.stringify(ops)}`);
        }
        expect(r.kernelProperties).toEqual([]);
        // the window of each illegal partition is illegal on its own (pending ops made mandatory only constrain it more)
        for (const bad of r.illegal) {
          if (bad.window === null) continue;
          const sub = [...bad.window.ops, ...bad.window.pending].sort((a, b) => a - b).map((i) => ops[i]!);
          expect(sub.length).toBeLessThanOrEqual(bad.opCount);
          expect(bruteForce(type, sub)).toBe(false);
        }
        // with kernel properties: a linearizable history needs none; an illegal one stays illegal or is explained by one
        const k = await checkHistory(ops, { maps, inProcessMaxOps: Infinity, minimize: false });
        if (want) expect([k.result, k.kernelProperties.length]).toEqual(['ok', 0]);
        else expect(k.result === 'illegal' || (k.result === 'ok' && k.kernelProperties.length > 0)).toBe(true);
        if (want) legal++;
      }
      // the generator makes both kinds in quantity
      expect(legal).toBeGreaterThan(300);
      expect(legal).toBeLessThan(1200);
    });
  }
});
