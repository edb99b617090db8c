// exceptions.c runtime values and the abort that unwinds: ctx.throw(64) makes the return value
// 64 with no splat; an exception callback's value replaces the cookie; a throw while holding a
// bpf_spin_lock, a bpf_res_spin_lock and two owned objects releases the locks and frees the
// objects; from NMI, an object holding a root has its drop deferred to irq_work and is freed
// once rt.idle() resolved; irq flags and a lock taken outside the kfuncs are restored; a throw
// from `less` mid-add leaves the tree intact; an NMI program that throws inside another
// program's critical section unwinds only what it holds. After every test: graph objects back
// where they started, no splat the test did not ask for.
import { describe, it, expect } from 'vitest';
import type { Program } from '../../src/runtime/runtime.js';
import type { BpfMap } from '../../src/maps/bpf_map.js';
import type { AbortPolicy } from '../../src/prog/prog_run.js';
import { graphObjStats, objType } from '../../src/graph/bpf_obj.js';
import { I32 } from '../../src/mem/arena.js';
import { BpfError } from '../../src/errno.js';
import { formatSplat } from '../../src/debug/splat.js';
import { graphSuite, u32, rdU32 } from './graph_harness.js';

const g = graphSuite({ runtime: { cpus: 2, memoryBytes: 64 << 20 } });
const { mk } = g;

function evMap(): BpfMap {
  return mk({
    type: 'array', name: 'ev', keySize: 4, valueSize: 32, maxEntries: 1,
    fields: [{ type: 'bpf_spin_lock', offset: 0 }, { type: 'bpf_res_spin_lock', offset: 4 },
      { type: 'bpf_rb_root', offset: 16, contains: { type: 'gr_tnode', field: 0 } }],
  });
}
async function setup(o: { cb?: boolean; inner?: boolean; abortPolicy?: AbortPolicy; args?: unknown } = {}): Promise<{ p: Program; res: BpfMap; slots: () => number[] }> {
  const ev = evMap();
  const res = mk({ type: 'array', name: 'res', keySize: 4, valueSize: 32, maxEntries: 1 });
  const url = o.cb === true ? 'gr_throw.mjs?cb=1' : o.inner === true ? 'gr_throw.mjs?inner=1' : 'gr_throw.mjs';
  const p = await g.load(url, { maps: { ev, res }, abortPolicy: o.abortPolicy ?? 'disable', ...(o.args !== undefined ? { args: o.args } : {}) });
  return { p, res, slots: () => { const b = res.lookup(u32(0)); return Array.from({ length: 5 }, (_, i) => rdU32(b, 4 * i)); } };
}
const word = (p: number): number => Atomics.load(I32, p >> 2);
const newSplats = (): string[] => g.newSplats().map(formatSplat);

describe('bpf_throw', () => {
  it('throw_always_1: ctx.throw(64) returns 64, no splat, stats().exceptions 1, violations 0, nothing unwound; the run is an abort, so the default policy disables the program (EPERM)', async () => {
    const { p } = await setup();
    expect((await p.testRun({ cpu: 0, args: { op: 'throw', cookie: 64 } })).retval).toBe(64);
    expect(newSplats()).toEqual([]);
    const s = p.stats();
    expect(s.exceptions).toBe(1);
    expect(s.violations).toBe(0);
    expect(s.unwound).toEqual({ locks: 0, objects: 0, deferred: 0 });
    expect(s.aborted).toBe(true);
    const e = await p.testRun({ cpu: 1, args: { op: 'ok' } }).then(() => null, (x: unknown) => x);
    expect(e).toBeInstanceOf(BpfError);
    expect((e as BpfError).code).toBe('EPERM');
  });

  it("abortPolicy 'continue': throw(64) twice on both CPUs gives 64 each time (exceptions 4) and the program still runs normally afterwards (5)", async () => {
    const { p } = await setup({ abortPolicy: 'continue' });
    for (const cpu of [0, 1, 0, 1]) expect((await p.testRun({ cpu, args: { op: 'throw', cookie: 64 } })).retval).toBe(64);
    expect(p.stats().exceptions).toBe(4);
    expect(p.stats().aborted).toBe(false);
    expect((await p.testRun({ cpu: 0, args: { op: 'ok' } })).retval).toBe(5);
  });

  it('callbacks.exception returning cookie + 1: throw(64) returns 65, no splat, exceptions 1', async () => {
    const { p } = await setup({ cb: true, abortPolicy: 'continue' });
    expect((await p.testRun({ cpu: 1, args: { op: 'throw', cookie: 64 } })).retval).toBe(65);
    expect((await p.testRun({ cpu: 1, args: { op: 'throw', cookie: 99 } })).retval).toBe(100);
    expect(newSplats()).toEqual([]);
    expect(p.stats().exceptions).toBe(2);
    expect(p.stats().violations).toBe(0);
  });
});

describe('unwinding', () => {
  it('throw(7) holding a bpf_res_spin_lock, then a bpf_spin_lock, and two owned objects: retval 7, both lock words 0, both objects freed at once (live back), unwound { locks: 2, objects: 2, deferred: 0 }, no splat; the CPU runs the program normally afterwards', async () => {
    const { p, slots } = await setup({ abortPolicy: 'continue' });
    const before = graphObjStats();
    expect((await p.testRun({ cpu: 0, args: { op: 'hold', cookie: 7 } })).retval).toBe(7);
    const [lock, resLock, a, b] = slots();
    expect(word(lock!)).toBe(0);
    expect(word(resLock!)).toBe(0);
    expect(objType(a!)).toBeUndefined();
    expect(objType(b!)).toBeUndefined();
    const after = graphObjStats();
    expect(after.live).toBe(before.live);
    expect(after.allocs - before.allocs).toBe(2);
    expect(p.stats().unwound).toEqual({ locks: 2, objects: 2, deferred: 0 });
    expect(p.stats().exceptions).toBe(1);
    expect(newSplats()).toEqual([]);
    // nothing is left held on CPU 0: the same locks are taken again by the next run
    expect((await p.testRun({ cpu: 0, args: { op: 'hold', cookie: 8 } })).retval).toBe(8);
    expect(word(lock!)).toBe(0);
    expect((await p.testRun({ cpu: 0, args: { op: 'ok' } })).retval).toBe(5);
    expect(p.stats().unwound).toEqual({ locks: 4, objects: 4, deferred: 0 });
  });

  it("from NMI (testRun context 'nmi'): throw(9) holding both locks, an item and a gr_tbag whose list holds another item: retval 9, lock words 0, unwound { locks: 2, objects: 2 } with deferred >= 1; after rt.idle() all 3 objects are freed (teardownNodes +1)", async () => {
    const { p, slots } = await setup({ abortPolicy: 'continue' });
    const before = graphObjStats();
    expect((await p.testRun({ cpu: 1, context: 'nmi', args: { op: 'hold', cookie: 9, bag: true } })).retval).toBe(9);
    const [lock, resLock, a, bag, item] = slots();
    expect(word(lock!)).toBe(0);
    expect(word(resLock!)).toBe(0);
    const u = p.stats().unwound;
    expect(u.locks).toBe(2);
    expect(u.objects).toBe(2);
    expect(u.deferred).toBeGreaterThanOrEqual(1);
    expect(objType(a!)).toBeUndefined(); // no roots: freed at once, even in NMI
    expect(graphObjStats().deferred - before.deferred).toBeGreaterThanOrEqual(1);
    await g.rt.idle();
    const after = graphObjStats();
    expect(after.live).toBe(before.live);
    expect(after.allocs - before.allocs).toBe(3);
    expect(after.teardownNodes - before.teardownNodes).toBe(1);
    expect(objType(bag!)).toBeUndefined();
    expect(objType(item!)).toBeUndefined();
    expect(newSplats()).toEqual([]);
    expect((await p.testRun({ cpu: 1, args: { op: 'ok' } })).retval).toBe(5);
  });

  it('throw(7) holding a bpf_res_spin_lock taken with _irqsave and the bpf_spin_lock: the irq flags are restored (the next run on that CPU finds irqs on)', async () => {
    const { p, slots } = await setup({ abortPolicy: 'continue' });
    expect((await p.testRun({ cpu: 1, args: { op: 'irqs' } })).retval).toBe(0);
    expect((await p.testRun({ cpu: 1, args: { op: 'hold', cookie: 7, irq: true } })).retval).toBe(7);
    const [lock, resLock] = slots();
    expect([word(lock!), word(resLock!)]).toEqual([0, 0]);
    expect(p.stats().unwound).toEqual({ locks: 2, objects: 2, deferred: 0 });
    expect((await p.testRun({ cpu: 1, args: { op: 'irqs' } })).retval).toBe(0);
  });

  it('throw(3) holding a lock taken outside the program lock kfuncs (ctx.rawSpinLock): retval 3, the lock word is 0 afterwards, unwound { locks: 1, objects: 0 }', async () => {
    const { p, slots } = await setup({ abortPolicy: 'continue' });
    expect((await p.testRun({ cpu: 0, args: { op: 'rawhold', cookie: 3 } })).retval).toBe(3);
    expect(word(slots()[0]!)).toBe(0);
    expect(p.stats().unwound).toEqual({ locks: 1, objects: 0, deferred: 0 });
    expect((await p.testRun({ cpu: 0, args: { op: 'rawhold', cookie: 4 } })).retval).toBe(4); // takes it again: it was released
  });

  it('throw(33) from the rbtree less callback in the middle of an add: retval 33, no splat, the lock released and the node being added freed; the tree keeps its other 2 nodes, intact (drained in order 10, 11)', async () => {
    const { p, slots } = await setup({ abortPolicy: 'continue' });
    const before = graphObjStats();
    expect((await p.testRun({ cpu: 0, args: { op: 'throw_in_less' } })).retval).toBe(33);
    expect(newSplats()).toEqual([]);
    expect(p.stats().exceptions).toBe(1);
    expect(p.stats().unwound).toEqual({ locks: 1, objects: 1, deferred: 0 });
    expect(graphObjStats().live).toBe(before.live + 2);
    expect((await p.testRun({ cpu: 1, args: { op: 'drain_tree' } })).retval).toBe(2);
    expect(slots().slice(0, 2)).toEqual([10, 11]);
    expect(graphObjStats().live).toBe(before.live);
  });

  it("an NMI program injected inside another program's bpf_spin_lock section throws holding its own locks and objects: it returns 11 with its locks released, the interrupted program still holds its lock (6), unlocks and returns normally; no splat", async () => {
    const outer = await setup({ abortPolicy: 'continue' });
    const inner = await setup({ inner: true, abortPolicy: 'continue', args: { op: 'hold', cookie: 11 } });
    const before = graphObjStats();
    const inj = g.rt.inject({ cpu: 1, at: 'gr_throw.cs', kind: 'nmi', program: inner.p });
    expect((await outer.p.testRun({ cpu: 1, args: { op: 'window' } })).retval).toBe(6);
    expect(inj.fired()).toBe(1);
    expect(inner.p.lastRetval(1)).toBe(11);
    expect(inner.p.stats().unwound).toEqual({ locks: 2, objects: 2, deferred: 0 });
    expect(inner.p.stats().exceptions).toBe(1);
    expect(outer.p.stats().exceptions + outer.p.stats().violations).toBe(0);
    expect(outer.p.stats().unwound).toEqual({ locks: 0, objects: 0, deferred: 0 });
    const [lock, resLock] = inner.slots();
    expect([word(lock!), word(resLock!)]).toEqual([0, 0]);
    expect(graphObjStats().live).toBe(before.live);
    expect(newSplats()).toEqual([]);
  });
});
