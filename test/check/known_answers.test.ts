// Hand-made histories with known answers: linearizable ones with real overlap, and the classic
// violations. Each illegal case also checks what is reported: which partition, its window, and
// the partial linearization reached.
import { describe, it, expect } from 'vitest';
import { checkHistory, type CheckOptions, type HistoryOp } from '../../src/check/index.js';
import { upd, look, del, lookDel, K_A, K_B, V1, V2, V3, ZERO } from './helpers.js';

const inProc: CheckOptions = { inProcessMaxOps: Infinity };
const check = (ops: HistoryOp[], o: CheckOptions = {}) => checkHistory(ops, { ...inProc, ...o });

describe('hash: linearizable histories with overlap', () => {
  const cases: [string, HistoryOp[]][] = [
    ['a lookup inside an insert sees the new value', [upd(K_A, V1, 0, 1, 10), look(K_A, V1, 2, 5, { cpu: 1 })]],
    ['a lookup inside an insert may still miss', [upd(K_A, V1, 0, 1, 10), look(K_A, -2, 2, 5, { cpu: 1 }), look(K_A, V1, 11, 12)]],
    ['two overlapping writers, then either value (v1)', [upd(K_A, V1, 0, 1, 10), upd(K_A, V2, 0, 2, 9, 0, { cpu: 1 }), look(K_A, V1, 11, 12)]],
    ['two overlapping writers, then either value (v2)', [upd(K_A, V1, 0, 1, 10), upd(K_A, V2, 0, 2, 9, 0, { cpu: 1 }), look(K_A, V2, 11, 12)]],
    ['a lookup overlapping a delete still sees the value', [upd(K_A, V1, 0, 1, 4), del(K_A, 0, 5, 10), look(K_A, V1, 6, 8, { cpu: 1 }), look(K_A, -2, 11, 12)]],
    ['racing NOEXIST inserts: one wins, one gets EEXIST', [upd(K_A, V1, 0, 1, 10, 1), upd(K_A, V2, -17, 2, 9, 1, { cpu: 1 }), look(K_A, V1, 11, 12)]],
    ['EXIST on a key inserted concurrently', [upd(K_A, V1, 0, 1, 10, 1), upd(K_A, V2, 0, 2, 9, 2, { cpu: 1 }), look(K_A, V2, 11, 12)]],
    ['lookup_and_delete racing a lookup', [upd(K_A, V1, 0, 1, 2), lookDel(K_A, V1, 3, 10), look(K_A, V1, 4, 5, { cpu: 1 }), look(K_A, -2, 11, 12)]],
    ['failures that change nothing (EBUSY, E2BIG on a new key, ENOMEM)', [
      upd(K_A, V1, -16, 1, 2), upd(K_A, V1, -7, 3, 4), look(K_A, -2, 5, 6), upd(K_A, V2, 0, 7, 8), upd(K_A, V3, -12, 9, 10), del(K_A, -35, 11, 12), look(K_A, V2, 13, 14),
    ]],
    ['keys are independent', [upd(K_A, V1, 0, 1, 2), upd(K_B, V2, 0, 3, 4), del(K_A, 0, 5, 6), look(K_B, V2, 7, 8), look(K_A, -2, 7, 8, { cpu: 1 })]],
    ['equal stamps count as overlapping', [upd(K_A, V1, 0, 1, 5), look(K_A, -2, 5, 6, { cpu: 1 })]],
  ];
  for (const [name, ops] of cases) {
    it(name, async () => {
      const r = await check(ops);
      expect(r.result).toBe('ok');
      expect(r.illegal).toEqual([]);
      expect(r.opsChecked).toBe(ops.length);
      expect(r.kernelProperties).toEqual([]);
    });
  }
});

describe('hash: violations', () => {
  it('a lookup returning a value never written', async () => {
    const r = await check([upd(K_A, V1, 0, 1, 2), look(K_A, V3, 3, 4)]);
    expect(r.result).toBe('illegal');
    expect(r.illegal).toHaveLength(1);
    const bad = r.illegal[0]!;
    expect([bad.map, bad.key, bad.cpu, bad.model]).toEqual([1, K_A, null, 'hash']);
    expect(bad.linearized).toEqual([0]);
    expect(bad.state).toEqual([V1]);
    expect(bad.stuck).toBe(1);
  });

  it('a delete succeeding twice', async () => {
    const r = await check([upd(K_A, V1, 0, 1, 2), del(K_A, 0, 3, 4), del(K_A, 0, 5, 6, { cpu: 1 })]);
    expect(r.result).toBe('illegal');
    expect(r.illegal[0]!.linearized).toEqual([0, 1]);
    expect(r.illegal[0]!.state).toEqual(['absent']);
    expect(r.illegal[0]!.stuck).toBe(2);
  });

  it('two overlapping deletes both succeeding after one insert', async () => {
    const r = await check([upd(K_A, V1, 0, 1, 2), del(K_A, 0, 3, 10), del(K_A, 0, 4, 9, { cpu: 1 })]);
    expect(r.result).toBe('illegal');
  });

  it('NOEXIST succeeding twice on the same key', async () => {
    const r = await check([upd(K_A, V1, 0, 1, 10, 1), upd(K_A, V2, 0, 2, 9, 1, { cpu: 1 })]);
    expect(r.result).toBe('illegal');
  });

  it('a read of a value overwritten before the read was called', async () => {
    const r = await check([upd(K_A, V1, 0, 1, 2), upd(K_A, V2, 0, 3, 4), look(K_A, V1, 5, 6)]);
    expect(r.result).toBe('illegal');
    expect(r.illegal[0]!.state).toEqual([V2]);
  });

  it('a miss after a completed insert, with nothing deleting', async () => {
    expect((await check([upd(K_A, V1, 0, 1, 2), look(K_A, -2, 3, 4)])).result).toBe('illegal');
  });

  it('EXIST succeeding on an absent key, NOEXIST failing on one', async () => {
    expect((await check([upd(K_A, V1, 0, 1, 2, 2)])).result).toBe('illegal');
    expect((await check([upd(K_A, V1, -17, 1, 2, 1)])).result).toBe('illegal');
  });

  it('E2BIG for a key that is present (replacing never needs a new element)', async () => {
    expect((await check([upd(K_A, V1, 0, 1, 2), upd(K_A, V2, -7, 3, 4)])).result).toBe('illegal');
  });

  it('an unknown errno', async () => {
    expect((await check([upd(K_A, V1, -1, 1, 2)])).result).toBe('illegal');
  });

  it('the window is the shortest slice that shows it, and stays inside its partition', async () => {
    const ops: HistoryOp[] = [];
    let t = 1;
    // ten good ops on K_A, interleaved with K_B traffic
    for (let i = 0; i < 5; i++) {
      ops.push(upd(K_A, i % 2 === 0 ? V1 : V2, 0, t, t + 1)); t += 2;
      ops.push(look(K_A, i % 2 === 0 ? V1 : V2, t, t + 1)); t += 2;
      ops.push(upd(K_B, V3, 0, t, t + 3, 0, { cpu: 1 })); t += 1;
    }
    const first = ops.length;
    ops.push(upd(K_A, V3, 0, t, t + 1)); t += 2;        // overwrite ...
    ops.push(look(K_A, V2, t, t + 1)); t += 2;          // ... then read the old value: illegal
    for (let i = 0; i < 5; i++) { ops.push(upd(K_A, V1, 0, t, t + 1)); t += 2; ops.push(look(K_A, V1, t, t + 1)); t += 2; }
    const r = await check(ops);
    expect(r.result).toBe('illegal');
    expect(r.illegal).toHaveLength(1);
    const w = r.illegal[0]!.window!;
    expect(w.ops).toEqual([first, first + 1]);
    expect(w.pending).toEqual([]);
    expect(w.fromAnyState).toBe(true);
    expect([w.from, w.to]).toEqual([ops[first]!.call, ops[first + 1]!.ret]);
    expect(w.linearized).toEqual([first]);
    expect(w.state).toEqual([V3]);
    expect(w.stuck).toBe(first + 1);
    // without minimize: no window
    expect((await check(ops, { minimize: false })).illegal[0]!.window).toBeNull();
  });

  it('a window cut mid-flight keeps the running ops as optional', async () => {
    // the update of V2 is still running when the bad lookup returns
    const ops = [upd(K_A, V1, 0, 1, 2), upd(K_A, V2, 0, 3, 20, 0, { cpu: 1 }), look(K_A, V3, 4, 5), look(K_A, V2, 21, 22)];
    const r = await check(ops);
    const w = r.illegal[0]!.window!;
    // the last lookup is cut off; the write of V1 stays (from any state, V3 could have been there)
    expect(w.ops).toEqual([0, 2]);
    expect(w.pending).toEqual([1]);
    expect(w.fromAnyState).toBe(false);
  });

  it('several bad partitions are each reported, in history order', async () => {
    const ops = [upd(K_B, V1, 0, 1, 2), look(K_B, V2, 3, 4), upd(K_A, V1, 0, 5, 6), look(K_A, -2, 7, 8), upd(K_A, V2, 0, 1, 2, 0, { map: 2 })];
    const r = await check(ops);
    expect(r.partitions).toBe(3);
    expect(r.illegal.map((p) => [p.map, p.key])).toEqual([[1, K_B], [1, K_A]]);
  });
});

describe('array', () => {
  const arr: CheckOptions = { maps: { 1: { type: 'array', maxEntries: 8 } } };
  it('every key is present from the start, with zero bytes', async () => {
    const r = await check([look(K_A, ZERO, 1, 2), upd(K_A, V1, 0, 3, 10), look(K_A, ZERO, 4, 5, { cpu: 1 }), look(K_A, V1, 11, 12), del(K_A, -22, 13, 14), upd(K_A, V2, -17, 15, 16, 1), upd(K_A, V2, 0, 17, 18, 2)], arr);
    expect(r.result).toBe('ok');
  });
  it('a delete that succeeds, a NOEXIST that succeeds, a miss: illegal', async () => {
    expect((await check([del(K_A, 0, 1, 2)], arr)).result).toBe('illegal');
    expect((await check([upd(K_A, V1, 0, 1, 2, 1)], arr)).result).toBe('illegal');
    expect((await check([look(K_A, -2, 1, 2)], arr)).result).toBe('illegal');
    expect((await check([look(K_A, V1, 1, 2)], arr)).result).toBe('illegal');
  });
  it('out of range (maxEntries): lookups miss, updates fail with E2BIG', async () => {
    const oob = '09000000';
    expect((await check([look(oob, -2, 1, 2), upd(oob, V1, -7, 3, 4), look(oob, -2, 5, 6)], arr)).result).toBe('ok');
    expect((await check([upd(oob, V1, 0, 3, 4)], arr)).result).toBe('illegal');
    // maxEntries unknown: either, but consistently
    const unk: CheckOptions = { model: 'array' };
    expect((await check([look(oob, -2, 1, 2), upd(oob, V1, -7, 3, 4)], unk)).result).toBe('ok');
    expect((await check([look(oob, -2, 1, 2), upd(oob, V1, 0, 3, 4)], unk)).result).toBe('illegal');
  });
  it('initialValue: a given start value, or any', async () => {
    expect((await check([look(K_A, V3, 1, 2)], { maps: { 1: { type: 'array', initialValue: V3 } } })).result).toBe('ok');
    expect((await check([look(K_A, V3, 1, 2), look(K_A, V3, 3, 4)], { maps: { 1: { type: 'array', initialValue: 'any' } } })).result).toBe('ok');
    expect((await check([look(K_A, V3, 1, 2), look(K_A, V2, 3, 4)], { maps: { 1: { type: 'array', initialValue: 'any' } } })).result).toBe('illegal');
  });
});

describe('lru_hash', () => {
  const lru: CheckOptions = { model: 'lru' };
  it('a present key may be evicted at any moment', async () => {
    expect((await check([upd(K_A, V1, 0, 1, 2), look(K_A, -2, 3, 4), del(K_A, -2, 5, 6)], lru)).result).toBe('ok');
    expect((await check([upd(K_A, V1, 0, 1, 2), upd(K_A, V2, 0, 3, 4, 1)], lru)).result).toBe('ok'); // evicted, then re-inserted
  });
  it('but it never shows a value it does not hold', async () => {
    expect((await check([upd(K_A, V1, 0, 1, 2), upd(K_A, V2, 0, 3, 4), look(K_A, V1, 5, 6)], lru)).result).toBe('illegal');
    expect((await check([upd(K_A, V1, 0, 1, 2), del(K_A, 0, 3, 4), look(K_A, V1, 5, 6)], lru)).result).toBe('illegal');
    expect((await check([del(K_A, 0, 1, 2)], lru)).result).toBe('illegal');
  });
});

describe('per-CPU maps', () => {
  it('percpu_array: each CPU slot is its own register', async () => {
    const o: CheckOptions = { maps: { 1: { type: 'percpu_array', maxEntries: 4 } } };
    const ops = [upd(K_A, V1, 0, 1, 2, 0, { cpu: 0 }), look(K_A, ZERO, 3, 4, { cpu: 1 }), look(K_A, V1, 3, 4, { cpu: 0 })];
    const r = await check(ops, o);
    expect(r.result).toBe('ok');
    expect(r.partitions).toBe(2);
    const bad = await check([upd(K_A, V1, 0, 1, 2, 0, { cpu: 0 }), look(K_A, V1, 3, 4, { cpu: 1 })], o);
    expect(bad.result).toBe('illegal');
    expect(bad.illegal[0]!.cpu).toBe(1);
  });
  it('percpu_hash: another CPU may insert (this slot zero) or delete the element', async () => {
    const o: CheckOptions = { model: 'percpu' };
    const ops = [
      upd(K_A, V1, 0, 1, 2, 0, { cpu: 0 }), look(K_A, V1, 3, 4, { cpu: 0 }),
      del(K_A, 0, 5, 6, { cpu: 1 }), look(K_A, -2, 7, 8, { cpu: 0 }),
      upd(K_A, V2, 0, 9, 10, 0, { cpu: 1 }), look(K_A, ZERO, 11, 12, { cpu: 0 }),
    ];
    expect((await check(ops, o)).result).toBe('ok');
    // a CPU alone on its key is exact
    expect((await check([upd(K_A, V1, 0, 1, 2), look(K_A, -2, 3, 4)], o)).result).toBe('illegal');
    // and no CPU ever reads a value nobody wrote to its slot
    expect((await check([upd(K_A, V1, 0, 1, 2, 0, { cpu: 1 }), look(K_A, V1, 3, 4, { cpu: 0 })], o)).result).toBe('illegal');
  });
  it('syscall-side ops are not modelled; their writes make any value possible', async () => {
    const o: CheckOptions = { model: 'percpu', syscallCpu: 4 };
    const ops = [upd(K_A, V1, 0, 1, 2, 0, { cpu: 0 }), upd(K_A, V2 + V2, 0, 3, 4, 0, { cpu: 4 }), look(K_A, V3, 5, 6, { cpu: 0 })];
    const r = await check(ops, o);
    expect(r.result).toBe('ok');
    expect(r.opsNotModelled).toBe(1);
    expect(r.opsChecked).toBe(2);
    // the same through `side`
    const r2 = await check([upd(K_A, V1, 0, 1, 2), { ...upd(K_A, V2 + V2, 0, 3, 4), side: 'syscall' }, look(K_A, V3, 5, 6)], { model: 'percpu' });
    expect(r2.opsNotModelled).toBe(1);
  });
});

describe('model selection', () => {
  it('mapType on an op, then options.maps, then options.model', async () => {
    const ops = [upd(K_A, V1, 0, 1, 2), look(K_A, -2, 3, 4)];
    expect((await check(ops)).result).toBe('illegal');
    expect((await check(ops, { model: 'lru' })).result).toBe('ok');
    expect((await check(ops, { maps: { 1: { type: 'lru_hash' } } })).result).toBe('ok');
    expect((await check(ops.map((o) => ({ ...o, mapType: 'lru_hash' as const })), { model: 'hash' })).result).toBe('ok');
  });
  it('map-in-map types are counted as not modelled', async () => {
    const r = await check([upd(K_A, V1, 0, 1, 2), look(K_A, V2, 3, 4)], { maps: { 1: { type: 'hash_of_maps' } } });
    expect([r.result, r.partitions, r.opsChecked, r.opsNotModelled]).toEqual(['ok', 0, 0, 2]);
  });
  it('an empty history is ok', async () => {
    expect(await check([])).toMatchObject({ result: 'ok', partitions: 0, opsChecked: 0 });
  });
  it('stamps may be bigints, hex may be upper case', async () => {
    const r = await check([{ ...upd(K_A, 'AA000001', 0, 1, 2), call: 1n, ret: 2n }, look(K_A, V1, 3, 4)]);
    expect(r.result).toBe('ok');
  });
});
