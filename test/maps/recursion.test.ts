// The bucket recursion guard, in-process: an NMI (or a kprobe program) arriving at a window inside
// a map operation on the same CPU, re-entering the same map (reference §1.5, §1.6; seed 000).
// The interrupts are delivered by the real window code (src/cpu/window.ts) through precise
// injections; the "programs" are JS closures plugged in as the runProg hook.
import { describe, it, expect, afterEach } from 'vitest';
import { boot, asCpu, u32, Scratch, splatsOf } from './boot.js';
import { createMap } from '../../src/maps/registry.js';
import { BpfMap } from '../../src/maps/bpf_map.js';
import { BPF_ANY, BPF_NOEXIST, type BpfMapImpl } from '../../src/maps/map_ops.js';
import { setIrqHooks } from '../../src/cpu/window.js';
import { defineSite, siteId, allSites } from '../../src/cpu/sites.js';
import { currentContext, progActive, CTX_NMI, CTX_TASK } from '../../src/cpu/context.js';
import { armInjection, attachEntry, attachHits, detachEntry, injectionFired } from '../../src/runtime/inject.js';
import { ATTACH_KPROBE, FLAG_RQSPINLOCK } from '../../src/mem/layout.js';
import { EBUSY, EDEADLK } from '../../src/errno.js';
import { nrCpus } from '../../src/mem/arena.js';

/** Every site defined when this file was loaded: by the runtime modules, before any test named one. */
const SITES_AT_LOAD = allSites();

let progs: (() => void)[] = [];
function useProgs(...fns: (() => void)[]): void {
  progs = fns;
  setIrqHooks({ runProg: (id: number) => { progs[id]!(); } });
}

/** Two keys of `m` whose buckets use the same map_locked slot (and one using another slot). */
function keysBySlot(impl: BpfMapImpl, sc: Scratch): { a: number; sameSlot: number; otherSlot: number } {
  const h = impl as unknown as { hash(k: number): number; nMask: number };
  const slot = (k: number): number => h.hash(sc.u32(64, k)) & 7;
  const bucket = (k: number): number => h.hash(sc.u32(64, k)) & h.nMask;
  const a = 1;
  let sameSlot = -1;
  let otherSlot = -1;
  for (let k = 2; k < 100000 && (sameSlot < 0 || otherSlot < 0); k++) {
    if (sameSlot < 0 && slot(k) === slot(a) && bucket(k) !== bucket(a)) sameSlot = k;
    if (otherSlot < 0 && slot(k) !== slot(a)) otherSlot = k;
  }
  return { a, sameSlot, otherSlot };
}

describe('bucketLock: map_locked (default)', () => {
  afterEach(() => { setIrqHooks({ runProg: () => {} }); });

  it('NMI at htab.update.locked updating the same bucket gets -EBUSY; no deadlock, no splat', () => {
    boot({ cpus: 2 });
    const impl = createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 1024 });
    const other = createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 16 });
    const sc = new Scratch();
    const { a, sameSlot, otherSlot } = keysBySlot(impl, sc);
    const results: Record<string, number> = {};
    let ctxSeen = -1;
    useProgs(() => {
      ctxSeen = currentContext();
      results['same key'] = impl.update(sc.u32(16, a), sc.u32(24, 2), BPF_ANY);
      results['same slot, other bucket'] = impl.update(sc.u32(16, sameSlot), sc.u32(24, 2), BPF_ANY);
      results['delete same key'] = impl.delete(sc.u32(16, a));
      results['other slot'] = impl.update(sc.u32(16, otherSlot), sc.u32(24, 3), BPF_ANY);
      results['other map'] = other.update(sc.u32(16, a), sc.u32(24, 4), BPF_ANY);
      results['lookup'] = impl.lookup(sc.u32(16, otherSlot)) !== 0 ? 1 : 0;
    });
    const slot = armInjection(0, defineSite('htab.update.locked'), 'nmi', 1, 0);
    const r = asCpu(0, () => impl.update(sc.u32(0, a), sc.u32(8, 1), BPF_NOEXIST));
    expect(injectionFired(slot)).toBe(1);
    expect(ctxSeen).toBe(CTX_NMI);
    expect(r).toBe(0);
    expect(results).toEqual({
      'same key': -EBUSY, 'same slot, other bucket': -EBUSY, 'delete same key': -EBUSY,
      'other slot': 0, 'other map': 0, 'lookup': 1,
    });
    expect(impl.check()).toEqual([]);
    expect(other.check()).toEqual([]);
    expect(splatsOf()).toEqual([]);
    sc.free();
  });

  it('NMI at htab.delete.locked and htab.lookup_and_delete.locked: -EBUSY', () => {
    boot({ cpus: 2 });
    const impl = createMap({ type: 'lru_hash', keySize: 4, valueSize: 8, maxEntries: 64 });
    const m = new BpfMap(impl);
    m.update(u32(5), new Uint8Array(8));
    m.update(u32(6), new Uint8Array(8));
    const sc = new Scratch();
    const got: number[] = [];
    useProgs(() => { got.push(impl.update(sc.u32(16, 5), sc.u32(24, 9), BPF_ANY)); });
    armInjection(0, defineSite('htab.delete.locked'), 'nmi', 1, 0);
    expect(asCpu(0, () => impl.delete(sc.u32(0, 5)))).toBe(0);
    // the syscall path runs on the housekeeping CPU: inject there
    armInjection(nrCpus, defineSite('htab.lookup_and_delete.locked'), 'nmi', 1, 0);
    useProgs(() => { got.push(impl.update(sc.u32(16, 6), sc.u32(24, 9), BPF_ANY)); });
    expect(m.lookupAndDelete(u32(6))).toBeDefined();
    expect(got).toEqual([-EBUSY, -EBUSY]);
    expect(m.check()).toEqual([]);
    expect(splatsOf()).toEqual([]);
    sc.free();
  });

  it('a syscall-side update raises bpf_prog_active for its whole duration (tracing programs are skipped)', () => {
    boot({ cpus: 2 });
    const m = new BpfMap(createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 8 }));
    let active = -1;
    let ctx = -1;
    useProgs(() => { active = progActive(); ctx = currentContext(); });
    armInjection(nrCpus, defineSite('htab.update.locked'), 'nmi', 1, 0);
    expect(progActive()).toBe(0);
    m.update(u32(1), u32(2));
    expect(active).toBe(1);
    expect(ctx).toBe(CTX_NMI);
    expect(progActive()).toBe(0);
    expect(currentContext()).toBe(CTX_TASK);
    m.close();
  });

  it('a kprobe program attached at htab.update.locked updating the same bucket: -EBUSY', () => {
    boot({ cpus: 2 });
    const impl = createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 64 });
    const sc = new Scratch();
    const got: number[] = [];
    useProgs(() => { got.push(impl.update(sc.u32(16, 1), sc.u32(24, 9), BPF_ANY)); });
    const slot = attachEntry(ATTACH_KPROBE, defineSite('htab.update.locked'), [0], 0, nrCpus);
    expect(asCpu(0, () => impl.update(sc.u32(0, 1), sc.u32(8, 1), BPF_ANY))).toBe(0);
    detachEntry(slot, nrCpus);
    expect(got).toEqual([-EBUSY]);
    expect(impl.check()).toEqual([]);
    expect(splatsOf()).toEqual([]);
    sc.free();
  });

  it('an NMI inside the freelist lock (pcpu_freelist.pop.locked) inserting into the same map steals from another CPU', () => {
    boot({ cpus: 2 });
    const impl = createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 64 });
    const sc = new Scratch();
    const { otherSlot } = keysBySlot(impl, sc);
    const got: number[] = [];
    useProgs(() => { got.push(impl.update(sc.u32(16, otherSlot), sc.u32(24, 9), BPF_NOEXIST)); });
    const slot = armInjection(0, defineSite('pcpu_freelist.pop.locked'), 'nmi', 1, 0);
    expect(asCpu(0, () => impl.update(sc.u32(0, 1), sc.u32(8, 1), BPF_NOEXIST))).toBe(0);
    expect(injectionFired(slot)).toBe(1);
    expect(got).toEqual([0]);
    expect(impl.check()).toEqual([]);
    expect(splatsOf()).toEqual([]);
    sc.free();
  });

  it('the issue\'s windows are defined by the runtime code and passed by the map operations', () => {
    const issue = ['htab.update.locked', 'htab.delete.locked', 'htab.lookup_and_delete.locked', 'pcpu_freelist.pop.locked', 'pcpu_freelist.push.locked'];
    // defined by the map and freelist modules themselves (captured before any test named a site)
    expect(issue.filter((s) => !SITES_AT_LOAD.includes(s))).toEqual([]);
    boot({ cpus: 2 });
    const m = new BpfMap(createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 64 }));
    const sc = new Scratch();
    // a kprobe on every site, on every CPU including the housekeeping one: the hit counters
    // show which windows the operations really passed
    useProgs(...issue.map(() => () => {}));
    const slots = issue.map((s, i) => attachEntry(ATTACH_KPROBE, siteId(s)!, [], i, nrCpus + 1));
    // program path on CPU 0: insert (pops a free element), overwrite, delete (pushes it back)
    asCpu(0, () => {
      expect(m.impl.update(sc.u32(0, 1), sc.u32(8, 1), BPF_NOEXIST)).toBe(0);
      expect(m.impl.update(sc.u32(0, 1), sc.u32(8, 2), BPF_ANY)).toBe(0);
      expect(m.impl.delete(sc.u32(0, 1))).toBe(0);
    });
    // syscall path on the housekeeping CPU: lookup_and_delete
    m.update(u32(2), new Uint8Array(8));
    expect(m.lookupAndDelete(u32(2))).toBeDefined();
    const hits = Object.fromEntries(issue.map((s, i) => [s, attachHits(slots[i]!)]));
    for (const slot of slots) detachEntry(slot, nrCpus + 1);
    expect(Object.keys(hits).filter((s) => hits[s] === 0), JSON.stringify(hits)).toEqual([]);
    expect(m.check()).toEqual([]);
    expect(splatsOf()).toEqual([]);
    sc.free();
  });
});

describe('bucketLock: rqspinlock', () => {
  afterEach(() => { setIrqHooks({ runProg: () => {} }); });

  it('NMI at htab.update.locked updating the same bucket gets -EDEADLK; other buckets proceed; the runtime goes on', () => {
    boot({ cpus: 2, flags: FLAG_RQSPINLOCK });
    const impl = createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 1024 });
    const sc = new Scratch();
    const { a, sameSlot } = keysBySlot(impl, sc);
    const got: number[] = [];
    useProgs(() => {
      got.push(impl.update(sc.u32(16, a), sc.u32(24, 2), BPF_ANY));
      got.push(impl.update(sc.u32(16, sameSlot), sc.u32(24, 2), BPF_ANY)); // no coarse slot refusal
    });
    armInjection(0, defineSite('htab.update.locked'), 'nmi', 1, 0);
    expect(asCpu(0, () => impl.update(sc.u32(0, a), sc.u32(8, 1), BPF_NOEXIST))).toBe(0);
    expect(got).toEqual([-EDEADLK, 0]);
    const dl = splatsOf('deadlock');
    expect(dl.length).toBe(1);
    expect(dl[0]!.context).toBe('nmi');
    expect(splatsOf().length).toBe(1);
    // and the map still works
    expect(asCpu(1, () => impl.update(sc.u32(0, a), sc.u32(8, 5), BPF_ANY))).toBe(0);
    expect(impl.check()).toEqual([]);
    sc.free();
  });
});
