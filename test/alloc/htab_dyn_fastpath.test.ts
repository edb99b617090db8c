// The dynamic (bpf_mem_alloc) hash map element path after the issue-12 speed-up: a replace counts
// as the kernel's does (the new element before the old one is freed), bpf_mem_alloc's fast paths
// take irqs off only around their `active` window, and refill / trim move their batches as one chain.
// Single-threaded: the main thread plays every CPU (asCpu/onCpu) and the coordinator.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { asCpu, Scratch } from '../maps/boot.js';
import { bootDyn, unexpectedSplats } from '../maps/dyn_util.js';
import { onCpu, pump, coordinatorPoll } from '../rcu/rcu_boot.js';
import { I32 } from '../../src/mem/arena.js';
import { perCpuBlock } from '../../src/mem/this_cpu.js';
import {
  PC_PENDING, PC_CUR_SITE, PC_IRQS_OFF, PC_PEND_PROG_NMI, PC_PEND_PROG_HARDIRQ, PEND_NMI, PEND_HARDIRQ,
} from '../../src/mem/layout.js';
import { defineSite } from '../../src/cpu/sites.js';
import { setIrqHooks, processPending } from '../../src/cpu/window.js';
import { rcuReadLock, rcuReadUnlock, rcuIdleExit, rcuIdleEnter } from '../../src/rcu/rcu.js';
import { allocOwner, ownerBytes } from '../../src/mm/owners.js';
import { createMap } from '../../src/maps/registry.js';
import { BpfMap } from '../../src/maps/bpf_map.js';
import { BPF_ANY, BPF_NOEXIST, BPF_F_NO_PREALLOC } from '../../src/maps/map_ops.js';
import type { BpfHtab } from '../../src/maps/hashtab.js';
import { HtabMemAlloc } from '../../src/maps/htab_dyn_alloc.js';
import {
  bpfMemAllocInit, bpfMemCacheAlloc, bpfMemCacheFree, bpfMemAllocDestroy, bpfMemAllocStats, bpfMemAllocCheck,
  bpfMemCachePtr, BMC_ACTIVE, BMC_FREE_LLIST, BMC_FREE_LLIST_EXTRA, BMC_FREE_BY_RCU, BMC_WAITING_FOR_GP,
} from '../../src/alloc/bpf_mem_alloc.js';

const CPUS = 4;

/** Arm an NMI on `cpu` that runs the irq hook's runProg (as a perf_event program would). */
function armNmi(cpu: number): void {
  const blk = perCpuBlock(cpu) >> 2;
  Atomics.store(I32, blk + (PC_PEND_PROG_NMI >> 2), 1);
  Atomics.or(I32, blk + (PC_PENDING >> 2), PEND_NMI);
}

function armHardirq(cpu: number): void {
  const blk = perCpuBlock(cpu) >> 2;
  Atomics.store(I32, blk + (PC_PEND_PROG_HARDIRQ >> 2), 2); // runProg(1)
  Atomics.or(I32, blk + (PC_PENDING >> 2), PEND_HARDIRQ);
}

function curSite(cpu: number): number { return I32[(perCpuBlock(cpu) + PC_CUR_SITE) >> 2]!; }
function irqsOff(cpu: number): number { return I32[(perCpuBlock(cpu) + PC_IRQS_OFF) >> 2]!; }

afterEach(() => { setIrqHooks({ runProg: () => {} }); });

describe('dynamic hash map: the element count during a replace', () => {
  beforeEach(() => { bootDyn('bpf_mem_alloc', { cpus: CPUS }); });
  afterEach(() => { expect(unexpectedSplats()).toEqual([]); });

  it("kernel's: a replace counts the new element before freeing the old one, so an NMI between the unlock and that free sees a map with a free slot as full (-E2BIG)", () => {
    const MAX = 8; // atomic_t count (max/2 <= CPU ids × 32)
    const m = new BpfMap(createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: MAX, flags: BPF_F_NO_PREALLOC }));
    const impl = m.impl as BpfHtab;
    const alloc = impl.alloc as HtabMemAlloc;
    expect(alloc.usePercpuCounter).toBe(false);
    const sc = new Scratch();
    const key = (off: number, k: number): number => sc.u32(off, k);
    const val = sc.u32(64, 7);
    asCpu(0, () => { for (let k = 0; k < MAX; k++) expect(impl.update(key(0, k), val, BPF_NOEXIST)).toBe(0); });
    expect(alloc.count()).toBe(MAX);

    // An NMI that lands on CPU 0 at htab.update.unlocked (the window right after the bucket unlock
    // of an update, before the replaced element is freed) deletes one key and inserts a new one.
    const unlocked = defineSite('htab.update.unlocked');
    let seen: { countInside: number; del: number; ins: number } | null = null;
    setIrqHooks({
      runProg: () => {
        if (curSite(0) !== unlocked) { armNmi(0); return; } // an earlier window: wait for that one
        const countInside = alloc.count();
        const del = impl.delete(key(8, 1));
        const ins = impl.update(key(16, 100), val, BPF_NOEXIST);
        seen = { countInside, del, ins };
      },
    });
    armNmi(0);
    expect(asCpu(0, () => impl.update(key(0, 0), val, BPF_ANY))).toBe(0); // replace key 0
    expect(seen).not.toBeNull();
    // key 0's new element is counted (inc_elem_count in alloc_htab_elem) and its old one not yet
    // freed (dec_elem_count after the unlock): the count is one above the MAX elements linked
    expect(seen!.countInside).toBe(MAX + 1);
    expect(seen!.del).toBe(0);
    // after the delete MAX - 1 elements are linked, but the count says MAX: is_map_full, -E2BIG
    // (the kernel's behaviour, kept: a transient false "full" under a racing replace)
    expect(seen!.ins).toBe(-7);
    // the old element freed after the NMI: count and elements agree again
    expect(alloc.count()).toBe(MAX - 1);
    expect(m.stats().elements).toBe(MAX - 1);
    expect(m.check()).toEqual([]);
    sc.free();
    void m.close();
  });

  it('replace in a full map, and the count after many replaces on every CPU, equals the linked elements', () => {
    const MAX = 4096; // percpu_counter (max/2 > CPU ids × 32)
    const m = new BpfMap(createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: MAX, flags: BPF_F_NO_PREALLOC }));
    const impl = m.impl as BpfHtab;
    const alloc = impl.alloc as HtabMemAlloc;
    expect(alloc.usePercpuCounter).toBe(true);
    const sc = new Scratch();
    const val = sc.u32(64, 1);
    for (let cpu = 0; cpu < CPUS; cpu++) {
      asCpu(cpu, () => { for (let k = cpu; k < MAX; k += CPUS) expect(impl.update(sc.u32(0, k), val, BPF_NOEXIST)).toBe(0); });
    }
    expect(asCpu(1, () => impl.update(sc.u32(0, MAX), val, BPF_NOEXIST))).toBe(-7); // E2BIG: full
    for (let round = 0; round < 3; round++) {
      for (let cpu = 0; cpu < CPUS; cpu++) {
        asCpu(cpu, () => { for (let k = round; k < MAX; k += 3) expect(impl.update(sc.u32(0, k), val, BPF_ANY)).toBe(0); });
      }
    }
    expect(alloc.count()).toBe(MAX);
    expect(m.stats().elements).toBe(MAX);
    expect(m.check()).toEqual([]);
    sc.free();
    void m.close();
  });
});

describe('bpf_mem_alloc fast paths: irqs off only around the active window', () => {
  let owner = 0;
  beforeEach(() => { bootDyn('bpf_mem_alloc', { cpus: CPUS }); owner = allocOwner('test-fastpath'); });
  afterEach(() => { expect(unexpectedSplats()).toEqual([]); });

  it('an NMI at the active window finds irqs off and the cache busy; a hardirq never runs inside `active`, and the caller\'s irq state is back after', () => {
    const ma = bpfMemAllocInit(56, false, owner);
    const c = bpfMemCachePtr(ma, 0);
    const allocSite = defineSite('bpf_mem_alloc.alloc.active');
    const freeSite = defineSite('bpf_mem_alloc.free.active');
    const nmi: { site: number; irqsOff: number; active: number }[] = [];
    const hard: { active: number }[] = [];
    setIrqHooks({
      runProg: (prog: number) => {
        const active = I32[(c + BMC_ACTIVE) >> 2]!;
        if (prog === 0) nmi.push({ site: curSite(0), irqsOff: irqsOff(0), active });
        else hard.push({ active });
      },
    });
    const objs: number[] = [];
    onCpu(0, () => {
      // task context, irqs on: an NMI pending at the alloc lands at its window
      armNmi(0);
      objs.push(bpfMemCacheAlloc(ma));
      expect(irqsOff(0)).toBe(0);
      armNmi(0);
      bpfMemCacheFree(ma, objs.pop()!);
      expect(irqsOff(0)).toBe(0);
      // a hardirq pending across allocations runs only where irqs are on: never inside `active`
      armHardirq(0);
      for (let i = 0; i < 8; i++) objs.push(bpfMemCacheAlloc(ma));
      processPending();
    });
    expect(nmi).toEqual([
      { site: allocSite, irqsOff: 1, active: 1 },
      { site: freeSite, irqsOff: 1, active: 1 },
    ]);
    expect(hard.length).toBe(1);
    expect(hard[0]!.active).toBe(0);
    expect(objs.every((p) => p !== 0)).toBe(true);
    onCpu(0, () => { for (const p of objs) bpfMemCacheFree(ma, p); processPending(); });
    expect(bpfMemAllocCheck(ma)).toEqual([]);
  });
});

describe('bpf_mem_alloc refill and trim move their batches as chains', () => {
  let owner = 0;
  beforeEach(() => { bootDyn('bpf_mem_alloc', { cpus: CPUS }); owner = allocOwner('test-bulk'); });
  afterEach(() => { expect(unexpectedSplats()).toEqual([]); });

  /** Every object on one of the cache lists of `ma` (all CPUs), with where it is. */
  function listed(ma: number): Map<number, string> {
    const where = new Map<number, string>();
    const walk = (head: number, name: string): void => {
      for (let n = I32[head >> 2]!, i = 0; n !== 0 && i < 1e6; n = I32[n >> 2]!, i++) {
        const prev = where.get(n);
        if (prev !== undefined) throw new Error(`object 0x${n.toString(16)} on ${prev} and ${name}`);
        where.set(n, name);
      }
    };
    for (let cpu = 0; cpu <= CPUS; cpu++) {
      const c = bpfMemCachePtr(ma, cpu);
      walk(c + BMC_FREE_LLIST, `free_llist ${cpu}`);
      walk(c + BMC_FREE_LLIST_EXTRA, `free_llist_extra ${cpu}`);
      walk(c + BMC_FREE_BY_RCU, `free_by_rcu ${cpu}`);
      walk(c + BMC_WAITING_FOR_GP, `waiting_for_gp ${cpu}`);
    }
    return where;
  }

  it('alloc on CPU 0, free on CPU 1 with a grace period held: no object lost or on two lists; CPU 0 reuses the queued ones first; all back after destroy', async () => {
    const ma = bpfMemAllocInit(56, false, owner);
    const held: number[] = [];
    // CPU 2 in a read section: the grace period of the first trim cannot end, later trims queue
    onCpu(2, () => { rcuIdleExit(); rcuReadLock(); });
    for (let round = 0; round < 4; round++) {
      const objs = onCpu(0, () => { const o: number[] = []; for (let i = 0; i < 150; i++) o.push(bpfMemCacheAlloc(ma)); return o; });
      expect(objs.every((p) => p !== 0)).toBe(true);
      // an NMI on CPU 1 finds its cache busy once: that free goes to free_llist_extra, drained by the next trim
      const c1 = bpfMemCachePtr(ma, 1);
      I32[(c1 + BMC_ACTIVE) >> 2] = 1;
      onCpu(1, () => { bpfMemCacheFree(ma, objs.pop()!); });
      I32[(c1 + BMC_ACTIVE) >> 2] = 0;
      onCpu(1, () => { for (const p of objs) bpfMemCacheFree(ma, p); processPending(); });
      held.push(...onCpu(0, () => { const o: number[] = []; for (let i = 0; i < 10; i++) o.push(bpfMemCacheAlloc(ma)); return o; }));
      const where = listed(ma); // throws on an object on two lists
      const st = bpfMemAllocStats(ma);
      expect(st.live).toBe(held.length);
      for (const p of held) expect(where.has(p - 8)).toBe(false); // allocated objects are on no list
      expect(bpfMemAllocCheck(ma)).toEqual([]);
      coordinatorPoll();
    }
    const s0 = bpfMemAllocStats(ma).caches[0]!.perCpu[0]!;
    const s1 = bpfMemAllocStats(ma).caches[0]!.perCpu[1]!;
    expect(s1.trims).toBeGreaterThan(0);
    expect(s1.extraFrees).toBe(4);
    expect(s0.gpCalls).toBe(1); // the one in flight; the rest queued behind it on CPU 0's free_by_rcu
    expect(s0.reused).toBeGreaterThan(0); // CPU 0's refills took them back before the slab
    expect(s0.gpFreed).toBe(0);
    onCpu(2, () => { rcuReadUnlock(); rcuIdleEnter(); });
    onCpu(0, () => { for (const p of held) bpfMemCacheFree(ma, p); processPending(); });
    expect(await pump(bpfMemAllocDestroy(ma), 20)).toBe(true);
    expect(ownerBytes(owner)).toBe(0);
  });
});
