// Budgets: a search out of time or out of cache is 'unknown' for its partition, never 'ok', and
// the other partitions still get their verdicts. No timing assertions: only outcomes.
import { describe, it, expect } from 'vitest';
import { checkHistory, type HistoryOp } from '../../src/check/index.js';
import { upd, look, K_A, K_B, V1, V2 } from './helpers.js';

/**
 * n updates of distinct values, all overlapping, then a lookup of a value nobody wrote: illegal,
 * but proving it means trying every order of the updates modulo Lowe's cache, about n * 2^n states.
 */
function hard(n: number, key = K_A): HistoryOp[] {
  const ops: HistoryOp[] = [];
  for (let i = 0; i < n; i++) ops.push(upd(key, (0xbb000000 + i).toString(16), 0, 1 + i, 1000 + i, 0, { cpu: i }));
  ops.push(look(key, 'cc000000', 2000, 2001));
  return ops;
}

describe('budget', () => {
  it("a hard partition with a tiny time budget is 'unknown' (timeout)", async () => {
    const r = await checkHistory(hard(40), { timeoutMs: 50, inProcessMaxOps: Infinity });
    expect(r.result).toBe('unknown');
    expect(r.unknown).toHaveLength(1);
    expect(r.unknown[0]).toMatchObject({ map: 1, key: K_A, reason: 'timeout', opCount: 41 });
    expect(r.opsChecked).toBe(0);
  });

  it("a hard partition over the cache limit is 'unknown' (memory)", async () => {
    const r = await checkHistory(hard(40), { timeoutMs: 60_000, maxCacheEntries: 5000, inProcessMaxOps: Infinity });
    expect(r.result).toBe('unknown');
    expect(r.unknown[0]!.reason).toBe('memory');
  });

  it('the same shape, small, is decided', async () => {
    const r = await checkHistory(hard(8), { timeoutMs: 60_000, inProcessMaxOps: Infinity });
    expect(r.result).toBe('illegal');
  });

  it('per-partition budget: the easy partitions still get verdicts; illegal wins over unknown', async () => {
    const easyBad = [upd(K_B, V1, 0, 1, 2), look(K_B, V2, 3, 4)];
    const r = await checkHistory([...hard(40), ...easyBad], { timeoutMs: 60_000, partitionTimeoutMs: 50, inProcessMaxOps: Infinity });
    expect(r.result).toBe('illegal');
    expect(r.illegal.map((p) => p.key)).toEqual([K_B]);
    expect(r.unknown.map((p) => p.key)).toEqual([K_A]);
    expect(r.opsChecked).toBe(2);
  });

  it('a linearizable hard-looking history is found ok quickly (the first order tried works)', async () => {
    const ops = hard(40).slice(0, 40);
    ops.push(look(K_A, 'bb000027', 2000, 2001)); // the value of the last update: some order ends with it
    const r = await checkHistory(ops, { timeoutMs: 60_000, inProcessMaxOps: Infinity });
    expect(r.result).toBe('ok');
  });
});
