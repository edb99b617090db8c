// bpf_spin_lock on real parallel CPUs. map_lock.c: 4 CPUs x 2,500 program runs write one random
// number into all 16 ints of a value under its lock while the main thread copies the value out
// with BPF_F_LOCK: every copy has the lock word 0 and 16 equal ints. test_spin_lock.c: a counter
// flipped 0 -> 1 -> 0 under the lock is never seen in another state, and a credit account
// debited only when positive never goes negative and loses no update. Each concurrent case has
// an unlocked control run that shows the check does catch a race. After every test: graph
// objects back where they started, no splat.
import { describe, it, expect } from 'vitest';
import type { Program } from '../../src/runtime/runtime.js';
import type { BpfMap } from '../../src/maps/bpf_map.js';
import { BPF_F_LOCK } from '../../src/maps/map_ops.js';
import { graphSuite, u32, rdI32, rdU32 } from './graph_harness.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

const CPUS = 4;
// 4 simulated CPUs on what may be a 2-core machine: a CPU can lose its core while it holds the
// one lock all of them take, so the lock timeout is raised (a real deadlock still splats).
const g = graphSuite({ runtime: { cpus: CPUS, memoryBytes: 64 << 20, lockTimeoutMs: 10_000 } });
const { mk } = g;
function load(name: string, m: Record<string, BpfMap>): Promise<Program> { return g.load(name, { maps: m }); }

/**
 * Run 4 CPUs x 2,500 runs of `p` while the main thread copies value 0 of `lk` out (BPF_F_LOCK
 * when `locked`). Returns how many copies were made while the workload ran and how many were bad
 * (lock word not 0, or the 16 ints not all equal).
 */
async function copyWhileRunning(p: Program, lk: BpfMap, locked: boolean, spin: number): Promise<{ copies: number; bad: number; errors: Record<string, number>; ops: number }> {
  let done = false;
  const work = g.rt.runWorkload({ cpus: 'all', program: p, iterations: 2500, args: { spin } }).finally(() => { done = true; });
  let copies = 0, bad = 0;
  while (!done) {
    for (let j = 0; j < 50; j++) {
      const b = lk.lookup(u32(0), locked ? BPF_F_LOCK : 0)!;
      const first = rdU32(b, 4);
      let ok = rdU32(b, 0) === 0;
      for (let i = 1; i < 16; i++) if (rdU32(b, 4 + 4 * i) !== first) ok = false;
      if (!ok) bad++;
      copies++;
    }
    await tick();
  }
  const r = await work;
  return { copies, bad, errors: { ...r.errors }, ops: r.ops };
}

describe('map_lock: BPF_F_LOCK copies racing 4 CPUs of locked writers', () => {
  for (const type of ['hash', 'array'] as const) {
    it(`${type} (1 entry): rounds of 4 CPUs x 2,500 runs until the main thread made >= 2,000 BPF_F_LOCK copies while they ran: no run failed, every copy has lock word 0 and 16 equal ints`, async () => {
      const lk = mk({ type, name: 'lk', keySize: 4, valueSize: 68, maxEntries: 1, fields: [{ type: 'bpf_spin_lock', offset: 0 }] });
      lk.update(u32(0), new Uint8Array(68), BPF_F_LOCK);
      const p = await load('gr_map_lock.mjs', { lk });
      let copies = 0, bad = 0, rounds = 0;
      // keep the writers running until the main thread has made 2,000 copies during their runs
      while (copies < 2000 && rounds < 40) {
        const r = await copyWhileRunning(p, lk, true, 4);
        expect(r.errors).toEqual({});
        expect(r.ops).toBe(CPUS * 2500);
        copies += r.copies;
        bad += r.bad;
        rounds++;
      }
      expect(copies).toBeGreaterThanOrEqual(2000);
      expect(bad).toBe(0);
      expect(p.stats().violations).toBe(0);
      // the writers did write: the value holds one of their random numbers, 16 times
      const b = lk.lookup(u32(0), BPF_F_LOCK)!;
      expect(rdU32(b, 4)).not.toBe(0);
    });
  }

  it('control: copies made without BPF_F_LOCK while the writers run are caught torn (16 ints not all equal)', async () => {
    const lk = mk({ type: 'array', name: 'lk', keySize: 4, valueSize: 68, maxEntries: 1, fields: [{ type: 'bpf_spin_lock', offset: 0 }] });
    const p = await load('gr_map_lock.mjs', { lk });
    let bad = 0;
    for (let round = 0; round < 10 && bad === 0; round++) bad += (await copyWhileRunning(p, lk, false, 64)).bad;
    expect(bad).toBeGreaterThan(0);
  });
});

describe('test_spin_lock', () => {
  function slMaps(): Record<string, BpfMap> {
    const sl = mk({ type: 'hash', name: 'sl', keySize: 4, valueSize: 8, maxEntries: 1, fields: [{ type: 'bpf_spin_lock', offset: 0 }] });
    sl.update(u32(0), new Uint8Array(8));
    const credit = mk({ type: 'array', name: 'credit', keySize: 4, valueSize: 16, maxEntries: 1, fields: [{ type: 'bpf_spin_lock', offset: 0 }] });
    const bad = mk({ type: 'array', name: 'bad', keySize: 4, valueSize: 4, maxEntries: CPUS });
    return { sl, credit, bad };
  }
  const badCount = (m: BpfMap): number => { let n = 0; for (let c = 0; c < CPUS; c++) n += rdU32(m.lookup(u32(c))); return n; };

  it('the counter flipped 0 -> 1 -> 0 under the lock: 4 CPUs x 2,500 runs all return 0, nobody saw another value, the counter ends 0', async () => {
    const m = slMaps();
    const p = await load('gr_spin_lock.mjs', m);
    const r = await g.rt.runWorkload({ cpus: 'all', program: p, iterations: 2500, args: { op: 'flip' } });
    expect(r.errors).toEqual({});
    expect(r.ops).toBe(CPUS * 2500);
    expect(r.perCpu.map((c) => c.ok)).toEqual(new Array(CPUS).fill(2500));
    expect(badCount(m['bad']!)).toBe(0);
    expect(rdU32(m['sl']!.lookup(u32(0)), 4)).toBe(0);
  });

  it('a credit account under the lock: 4 CPUs x 2,500 random credit/debit runs never see it negative, and it ends at credits - debits', async () => {
    const m = slMaps();
    const p = await load('gr_spin_lock.mjs', m);
    const r = await g.rt.runWorkload({ cpus: 'all', program: p, iterations: 2500, args: { op: 'credit' } });
    expect(r.errors).toEqual({});
    expect(r.perCpu.map((c) => c.ok)).toEqual(new Array(CPUS).fill(2500));
    expect(badCount(m['bad']!)).toBe(0);
    const q = m['credit']!.lookup(u32(0), BPF_F_LOCK)!;
    const credit = rdI32(q, 4), added = rdU32(q, 8), debited = rdU32(q, 12);
    expect(credit).toBeGreaterThanOrEqual(0);
    expect(added + debited).toBeGreaterThan(0);
    expect(credit).toBe(added - debited);
  });

  it('control: the same flip without the lock is caught (some run sees a value other than 0 or 1 expected)', async () => {
    const m = slMaps();
    const p = await load('gr_spin_lock.mjs', m);
    let seen = 0;
    for (let round = 0; round < 10 && seen === 0; round++) {
      await g.rt.runWorkload({ cpus: 'all', program: p, iterations: 2500, args: { op: 'flip', nolock: true, window: 200 } });
      seen = badCount(m['bad']!);
    }
    expect(seen).toBeGreaterThan(0);
  });
});
