// percpu_freelist (reference §3), single-threaded: layout, populate spread, pop order and
// round-robin stealing, the lockless empty peek, NMI trylock-only behaviour, push fallback, and the
// leak test fault. Multi-threaded torture: percpu_freelist_parallel.test.ts.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { boot, asCpu, splatsOf } from '../maps/boot.js';
import {
  pcpuFreelistInit, pcpuFreelistDestroy, pcpuFreelistPopulate, pcpuFreelistPush, pcpuFreelistPop,
  pcpuFreelistHead, pcpuFreelistExtra, pcpuFreelistCount, pcpuFreelistWalk, PFH_FIRST, PFH_LOCK,
} from '../../src/alloc/percpu_freelist.js';
import { I32, nrCpuIds } from '../../src/mem/arena.js';
import { kzalloc, kfree } from '../../src/mm/slab.js';
import { OWNER_KERNEL } from '../../src/mm/owners.js';
import { enterContext, exitContext, CTX_NMI } from '../../src/cpu/context.js';
import { rawSpinLock, rawSpinUnlock } from '../../src/locks/raw_spinlock.js';
import { LC_FREELIST_HEAD } from '../../src/locks/lock_classes.js';
import { setIrqHooks } from '../../src/cpu/window.js';
import { defineSite } from '../../src/cpu/sites.js';
import { armInjection } from '../../src/runtime/inject.js';
import { HDR_FAULTS, FAULT_DROP_FREELIST_PUSH, CACHELINE } from '../../src/mem/layout.js';
import { createMap } from '../../src/maps/registry.js';
import { BpfMap } from '../../src/maps/bpf_map.js';

const ELEM = 16;

function setup(n: number): { s: number; buf: number } {
  const s = pcpuFreelistInit(OWNER_KERNEL);
  const buf = n === 0 ? 0 : kzalloc(n * ELEM, OWNER_KERNEL);
  pcpuFreelistPopulate(s, buf, ELEM, n);
  return { s, buf };
}

function listLen(s: number, cpu: number): number {
  let n = 0;
  for (let node = I32[(pcpuFreelistHead(s, cpu) + PFH_FIRST) >> 2]!; node !== 0; node = I32[node >> 2]!) n++;
  return n;
}

describe('percpu_freelist', () => {
  beforeEach(() => { boot({ cpus: 4 }); });
  afterEach(() => { setIrqHooks({ runProg: () => {} }); });

  it('one head per CPU id, each on its own 128-byte line, plus the extralist', () => {
    const s = pcpuFreelistInit(OWNER_KERNEL);
    expect(s % CACHELINE).toBe(0);
    for (let c = 0; c < nrCpuIds; c++) expect(pcpuFreelistHead(s, c) - s).toBe((c + 1) * CACHELINE);
    expect(pcpuFreelistExtra(s)).toBe(pcpuFreelistHead(s, nrCpuIds));
    pcpuFreelistDestroy(s);
  });

  it('populate spreads n / ncpus to every CPU and one more to the first n % ncpus', () => {
    const { s, buf } = setup(nrCpuIds * 3 + 2);
    const lens = [...Array(nrCpuIds).keys()].map((c) => listLen(s, c));
    expect(lens).toEqual([4, 4, 3, 3, 3].slice(0, nrCpuIds));
    expect(pcpuFreelistCount(s, 1000)).toBe(nrCpuIds * 3 + 2);
    pcpuFreelistDestroy(s); kfree(buf);
  });

  it('pop takes this CPU first (LIFO), then steals round-robin from the next CPUs; push goes to this CPU', () => {
    const { s, buf } = setup(nrCpuIds * 2);
    const seenCpu: number[] = [];
    const owner = (node: number): number => Math.floor((node - buf) / ELEM / 2); // populate order
    asCpu(2, () => {
      for (let i = 0; i < nrCpuIds * 2; i++) { const n = pcpuFreelistPop(s); expect(n).not.toBe(0); seenCpu.push(owner(n)); }
      expect(pcpuFreelistPop(s)).toBe(0);
    });
    expect(seenCpu).toEqual([2, 2, 3, 3, 4, 4, 0, 0, 1, 1]);
    asCpu(1, () => pcpuFreelistPush(s, buf));
    expect(listLen(s, 1)).toBe(1);
    asCpu(3, () => expect(pcpuFreelistPop(s)).toBe(buf));
    expect(splatsOf()).toEqual([]);
    pcpuFreelistDestroy(s); kfree(buf);
  });

  it('empty heads are skipped without touching their locks (lockless peek)', () => {
    const { s } = setup(0);
    // every head "held" by CPU 3: a pop that waited for any of these locks would mark the word
    // (LOCK_WAITERS) and time out with a lock_timeout splat; one that took it would change it
    const heads = [...Array(nrCpuIds).keys()].map((c) => pcpuFreelistHead(s, c) + PFH_LOCK).concat(pcpuFreelistExtra(s) + PFH_LOCK);
    for (const l of heads) I32[l >> 2] = 4;
    expect(asCpu(0, () => pcpuFreelistPop(s))).toBe(0);
    expect(heads.map((l) => I32[l >> 2])).toEqual(heads.map(() => 4)); // no lock word touched
    expect(splatsOf()).toEqual([]);
    for (let c = 0; c <= nrCpuIds; c++) I32[(pcpuFreelistHead(s, c) + PFH_LOCK) >> 2] = 0;
    pcpuFreelistDestroy(s);
  });

  it('in NMI over a holder of this CPU\'s head: pop steals, push goes elsewhere, trylock only, no splat', () => {
    const { s, buf } = setup(nrCpuIds * 2);
    asCpu(1, () => {
      const h = pcpuFreelistHead(s, 1);
      expect(rawSpinLock(h + PFH_LOCK, LC_FREELIST_HEAD)).toBe(0); // the interrupted context holds it
      const saved = enterContext(CTX_NMI);
      const n = pcpuFreelistPop(s);
      expect(n).not.toBe(0);
      expect(Math.floor((n - buf) / ELEM / 2)).toBe(2); // stolen from CPU 2
      pcpuFreelistPush(s, n);
      exitContext(CTX_NMI, saved);
      rawSpinUnlock(h + PFH_LOCK);
    });
    expect(listLen(s, 1)).toBe(2);
    expect(listLen(s, 2)).toBe(2); // went back to the next head that could be taken
    expect(splatsOf()).toEqual([]);
    pcpuFreelistDestroy(s); kfree(buf);
  });

  it('an NMI at the window inside the head lock pops and pushes on the same CPU without deadlock', () => {
    const { s, buf } = setup(nrCpuIds * 2);
    const got: number[] = [];
    setIrqHooks({ runProg: () => { const n = pcpuFreelistPop(s); got.push(n); pcpuFreelistPush(s, n); } });
    armInjection(0, defineSite('pcpu_freelist.pop.locked'), 'nmi', 1, 0);
    const n = asCpu(0, () => pcpuFreelistPop(s));
    expect(n).not.toBe(0);
    expect(got.length).toBe(1);
    expect(got[0]).not.toBe(0);
    expect(got[0]).not.toBe(n);
    asCpu(0, () => pcpuFreelistPush(s, n));
    const out: string[] = [];
    const seen = new Set<number>();
    const total = pcpuFreelistWalk(s, 100, (node) => { expect(seen.has(node)).toBe(false); seen.add(node); }, out);
    expect(out).toEqual([]);
    expect(total).toBe(nrCpuIds * 2);
    expect(splatsOf()).toEqual([]);
    pcpuFreelistDestroy(s); kfree(buf);
  });

  it('a push whose own head fails (AA outside NMI) falls back to another head: push never fails', () => {
    const { s } = setup(0);
    const buf = kzalloc(ELEM, OWNER_KERNEL);
    asCpu(0, () => {
      const h = pcpuFreelistHead(s, 0);
      expect(rawSpinLock(h + PFH_LOCK, LC_FREELIST_HEAD)).toBe(0);
      pcpuFreelistPush(s, buf); // AA on its own head: -EDEADLK (a splat), then CPU 1's head
      rawSpinUnlock(h + PFH_LOCK);
    });
    expect(listLen(s, 1)).toBe(1);
    expect(splatsOf('deadlock').length).toBe(1);
    pcpuFreelistDestroy(s); kfree(buf);
  });

  it('test fault FAULT_DROP_FREELIST_PUSH: the lost element shows up in check() as a conservation error', () => {
    const m = new BpfMap(createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 8 }));
    const k = new Uint8Array(4);
    m.update(k, k);
    expect(m.check()).toEqual([]);
    Atomics.or(I32, HDR_FAULTS >> 2, FAULT_DROP_FREELIST_PUSH);
    m.delete(k);
    Atomics.and(I32, HDR_FAULTS >> 2, ~FAULT_DROP_FREELIST_PUSH);
    const v = m.check();
    expect(v.length).toBe(1);
    expect(v[0]).toMatch(/conservation/);
  });
});
