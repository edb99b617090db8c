// bpf_mem_alloc on one thread (the main thread plays each CPU): watermarks and batches, the size
// classes, the empty-cache table of seed 001 per context on !RT and RT, the `active` guard,
// trim after one grace period with one callback in flight, objects returning to the allocating
// cache, per-CPU units, destruction accounting.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { bootRcu, onCpu, pump, coordinatorPoll } from '../rcu/rcu_boot.js';
import { I32 } from '../../src/mem/arena.js';
import { perCpuBlock } from '../../src/mem/this_cpu.js';
import { FLAG_PREEMPT_RT, PC_IRQS_OFF, PC_PENDING, PEND_IRQ_WORK, PEND_NMI, PC_PEND_PROG_NMI } from '../../src/mem/layout.js';
import { allocOwner, freeOwner, ownerBytes, memStats } from '../../src/mm/owners.js';
import { perCpuPtr } from '../../src/mm/percpu_alloc.js';
import { ksize } from '../../src/mm/slab.js';
import { enterContext, exitContext, CTX_NMI, CTX_HARDIRQ, CTX_SOFTIRQ } from '../../src/cpu/context.js';
import { processPending, setIrqHooks } from '../../src/cpu/window.js';
import { readSplats, formatSplat } from '../../src/debug/splat.js';
import { rcuReadLock, rcuReadUnlock, rcuQuiescentState, rcuIdleExit, rcuIdleEnter, rcuStats } from '../../src/rcu/rcu.js';
import { irqWorkPending, irqWorkStats } from '../../src/cpu/irq_work.js';
import {
  bpfMemAllocInit, bpfMemCacheAlloc, bpfMemCacheFree, bpfMemAlloc, bpfMemFree, bpfMemAllocDestroy,
  bpfMemAllocStats, bpfMemAllocCheck, bpfMemCachePtr, bpfMemCacheIdx, bpfMemWatermarks,
  bpfMemCacheAllocSleepable, BPF_MEM_SIZES, BMC_ACTIVE, BMC_FREE_LLIST_EXTRA,
  BMC_IRQ_WORK, BMC_FREE_BY_RCU, LLIST_NODE_SZ,
} from '../../src/alloc/bpf_mem_alloc.js';
import { EINVAL } from '../../src/errno.js';

const NCPUS = 4;
let owner = 0;

function expectNoSplats(): void { expect(readSplats().map(formatSplat)).toEqual([]); }
function cpuStats(ma: number, cpu: number, idx = 0) { return bpfMemAllocStats(ma).caches[idx]!.perCpu[cpu]!; }
function freeCnt(ma: number, cpu: number, idx = 0): number { return cpuStats(ma, cpu, idx).freeCnt; }
function pending(cpu: number): number { return Atomics.load(I32, (perCpuBlock(cpu) + PC_PENDING) >> 2); }

/** Allocate until NULL or `max`; returns the objects. */
function allocMany(ma: number, max: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < max; i++) {
    const p = bpfMemCacheAlloc(ma);
    if (p === 0) break;
    out.push(p);
  }
  return out;
}

function inContext<T>(ctx: number, fn: () => T): T {
  const saved = enterContext(ctx);
  try { return fn(); } finally { exitContext(ctx, saved); }
}

function boot(rt: boolean): void {
  bootRcu({ ncpus: NCPUS, flags: rt ? FLAG_PREEMPT_RT : 0 });
  owner = allocOwner('test-ma');
}

beforeEach(() => { boot(false); });
afterEach(() => { setIrqHooks({ runProg: () => {} }); });

describe('watermarks, batch, prefill, size classes (reference §4.2, §4.5)', () => {
  it('the exact numbers', () => {
    for (const u of [16, 32, 64, 96, 128, 192, 256]) expect(bpfMemWatermarks(u)).toEqual({ low: 32, high: 96, batch: 48, prefill: 4 });
    expect(bpfMemWatermarks(512)).toEqual({ low: 16, high: 48, batch: 24, prefill: 1 });
    expect(bpfMemWatermarks(1024)).toEqual({ low: 8, high: 24, batch: 12, prefill: 1 });
    expect(bpfMemWatermarks(2048)).toEqual({ low: 4, high: 12, batch: 6, prefill: 1 });
    expect(bpfMemWatermarks(4096)).toEqual({ low: 2, high: 6, batch: 3, prefill: 1 });
    expect(bpfMemWatermarks(300)).toEqual({ low: 27, high: 81, batch: 39, prefill: 1 });
    expect(bpfMemWatermarks(8192)).toEqual({ low: 1, high: 3, batch: 1, prefill: 1 });
  });

  it('fixed caches take unit = size + 8 and are prefilled on every CPU id', () => {
    const cases: [number, number, number, number, number][] = [
      // size, unit, low, high, prefill
      [8, 16, 32, 96, 4], [248, 256, 32, 96, 4], [292, 300, 27, 81, 1], [504, 512, 16, 48, 1],
      [2040, 2048, 4, 12, 1], [4088, 4096, 2, 6, 1],
    ];
    for (const [size, unit, low, high, prefill] of cases) {
      const ma = bpfMemAllocInit(size, false, owner);
      expect(ma).toBeGreaterThan(0);
      const c = bpfMemAllocStats(ma).caches[0]!;
      expect([c.unitSize, c.low, c.high]).toEqual([unit, low, high]);
      expect(c.perCpu).toHaveLength(NCPUS + 1);
      for (const s of c.perCpu) expect(s.freeCnt).toBe(prefill);
      void bpfMemAllocDestroy(ma);
    }
    expect(ownerBytes(owner)).toBe(0);
  });

  it('size classes: kernel index table, stored order, bounds', () => {
    const cls = (n: number): number => { const i = bpfMemCacheIdx(n + 8); return i < 0 ? -1 : BPF_MEM_SIZES[i]!; };
    expect([1, 8, 9, 24, 25, 56, 57, 88, 89, 120, 121, 184, 185, 248, 249, 504, 505, 4088].map(cls))
      .toEqual([16, 16, 32, 32, 64, 64, 96, 96, 128, 128, 192, 192, 256, 256, 512, 512, 1024, 4096]);
    expect(cls(4089)).toBe(-1);
    expect(bpfMemCacheIdx(0)).toBe(-1);
    expect(bpfMemAllocInit(0, true, owner)).toBe(-EINVAL);
    const ma = bpfMemAllocInit(0, false, owner);
    const st = bpfMemAllocStats(ma);
    expect(st.classes).toBe(true);
    expect(st.caches.map((c) => c.unitSize)).toEqual([...BPF_MEM_SIZES]);
    onCpu(1, () => {
      expect(bpfMemAlloc(ma, 0)).toBe(0);
      expect(bpfMemAlloc(ma, 4089)).toBe(0);
      const a = bpfMemAlloc(ma, 100); // 108 -> 128
      const b = bpfMemAlloc(ma, 4000); // 4008 -> 4096
      expect(ksize(a - LLIST_NODE_SZ)).toBeGreaterThanOrEqual(128);
      expect(cpuStats(ma, 1, 5).allocs).toBe(1); // 128 is stored at index 5
      expect(cpuStats(ma, 1, 10).allocs).toBe(1);
      onCpu(2, () => { bpfMemFree(ma, a); bpfMemFree(ma, b); }); // freed into CPU 2's caches of the class
      expect(cpuStats(ma, 2, 5).frees).toBe(1);
      expect(cpuStats(ma, 2, 10).frees).toBe(1);
    });
    expect(bpfMemAllocCheck(ma)).toEqual([]);
    void bpfMemAllocDestroy(ma);
    expect(ownerBytes(owner)).toBe(0);
    expectNoSplats();
  });
});

describe('empty cache by context, !RT (seed 001)', () => {
  it('task and softirq: the irq_work refills at once, no NULL while memory lasts', () => {
    const ma = bpfMemAllocInit(56, false, owner);
    for (const ctx of [-1, CTX_SOFTIRQ]) {
      const objs = onCpu(0, () => (ctx < 0 ? allocMany(ma, 500) : inContext(ctx, () => allocMany(ma, 500))));
      expect(objs).toHaveLength(500);
      onCpu(0, () => { for (const p of objs) bpfMemCacheFree(ma, p); });
    }
    const s = cpuStats(ma, 0);
    expect(s.nulls).toBe(0);
    expect(s.refills).toBeGreaterThan(0);
    expect(s.trims).toBeGreaterThan(0); // 500 frees crossed the high watermark
    expect(s.freeCnt).toBeLessThanOrEqual(96);
    expect(irqWorkPending(bpfMemCachePtr(ma, 0) + BMC_IRQ_WORK)).toBe(false);
    expectNoSplats();
  });

  it('hardirq: NULL once the prefill is gone, until the irq_work runs when the handler returns', () => {
    const ma = bpfMemAllocInit(56, false, owner);
    onCpu(1, () => {
      const objs = inContext(CTX_HARDIRQ, () => allocMany(ma, 100));
      expect(objs).toHaveLength(4); // the prefill
      expect(pending(1) & PEND_IRQ_WORK).not.toBe(0);
      expect(freeCnt(ma, 1)).toBe(0);
      processPending(); // irq exit: the self-IPI is taken
      expect(freeCnt(ma, 1)).toBe(48); // one batch
      expect(bpfMemCacheAlloc(ma)).not.toBe(0);
      for (const p of objs) bpfMemCacheFree(ma, p);
    });
    const s = cpuStats(ma, 1);
    expect(s.nulls).toBe(1);
    expect(s.refills).toBe(1);
    expectNoSplats();
  });

  it('NMI: NULL once depleted; the irq_work runs after the NMI', () => {
    const ma = bpfMemAllocInit(56, false, owner);
    onCpu(2, () => {
      const objs = inContext(CTX_NMI, () => allocMany(ma, 100));
      expect(objs).toHaveLength(4);
      expect(freeCnt(ma, 2)).toBe(0);
      processPending();
      expect(freeCnt(ma, 2)).toBe(48);
    });
    expect(cpuStats(ma, 2).nulls).toBe(1);
  });

  it('irqs off in task context: NULL possible until irqs come back on', () => {
    const ma = bpfMemAllocInit(4088, false, owner); // prefill 1, low 2
    onCpu(0, () => {
      const objs: number[] = [];
      const f = I32[(perCpuBlock(0) + PC_IRQS_OFF) >> 2]!;
      I32[(perCpuBlock(0) + PC_IRQS_OFF) >> 2] = 1;
      objs.push(...allocMany(ma, 10));
      I32[(perCpuBlock(0) + PC_IRQS_OFF) >> 2] = f;
      expect(objs).toHaveLength(1);
      processPending(); // local_irq_enable: the pending self-IPI is taken
      expect(freeCnt(ma, 0)).toBe(3); // batch of a 4096 cache
      for (const p of objs) bpfMemCacheFree(ma, p);
    });
  });
});

describe('empty cache by context, PREEMPT_RT (seed 001)', () => {
  beforeEach(() => { boot(true); });

  it('task: refilled asynchronously by the coordinator; NULL possible, then recovered', () => {
    const ma = bpfMemAllocInit(56, false, owner);
    const objs = onCpu(0, () => allocMany(ma, 100));
    expect(objs).toHaveLength(4); // nothing refilled in the caller's context
    expect(irqWorkPending(bpfMemCachePtr(ma, 0) + BMC_IRQ_WORK)).toBe(true);
    coordinatorPoll(); // the irq_work "kthread": allocates the batch on the main thread
    expect(irqWorkStats().rtRequests).toBe(1);
    expect(freeCnt(ma, 0)).toBe(0); // not spliced yet: only the CPU writes its cache
    expect(pending(0) & PEND_IRQ_WORK).not.toBe(0);
    onCpu(0, () => {
      processPending(); // next window
      expect(freeCnt(ma, 0)).toBe(48);
      const more = allocMany(ma, 10);
      expect(more).toHaveLength(10);
      objs.push(...more);
    });
    expect(cpuStats(ma, 0).nulls).toBe(1);
    expect(cpuStats(ma, 0).rtPrepared).toBe(48);
    onCpu(0, () => { for (const p of objs) bpfMemCacheFree(ma, p); });
    expectNoSplats(); // kmalloc happened on the coordinator, never in atomic context
  });

  it('NMI and hardirq: NULL, refilled later', () => {
    const ma = bpfMemAllocInit(56, false, owner);
    for (const [cpu, ctx] of [[1, CTX_NMI], [2, CTX_HARDIRQ]] as const) {
      const objs = onCpu(cpu, () => inContext(ctx, () => allocMany(ma, 100)));
      expect(objs).toHaveLength(4);
      onCpu(cpu, () => { processPending(); });
      expect(freeCnt(ma, cpu)).toBe(0); // RT: nothing happens on the CPU by itself
      coordinatorPoll();
      onCpu(cpu, () => { processPending(); });
      expect(freeCnt(ma, cpu)).toBe(48);
      onCpu(cpu, () => { for (const p of objs) bpfMemCacheFree(ma, p); });
    }
    expectNoSplats();
  });

  it('the CPU splices only when its cache is not busy', () => {
    const ma = bpfMemAllocInit(56, false, owner);
    const c = bpfMemCachePtr(ma, 3);
    const objs = onCpu(3, () => allocMany(ma, 100));
    coordinatorPoll();
    I32[(c + BMC_ACTIVE) >> 2] = 1; // as if the window came inside unit_alloc's section
    onCpu(3, () => { processPending(); });
    expect(freeCnt(ma, 3)).toBe(0);
    expect(pending(3) & PEND_IRQ_WORK).not.toBe(0); // stays pending for a later window
    I32[(c + BMC_ACTIVE) >> 2] = 0;
    onCpu(3, () => { processPending(); });
    expect(freeCnt(ma, 3)).toBe(48);
    expect(irqWorkPending(c + BMC_IRQ_WORK)).toBe(false);
    onCpu(3, () => { for (const p of objs) bpfMemCacheFree(ma, p); });
  });

  it('trim runs on the CPU after the hand-back', async () => {
    const ma = bpfMemAllocInit(56, false, owner);
    const objs: number[] = [];
    for (let i = 0; i < 6; i++) {
      objs.push(...onCpu(0, () => allocMany(ma, 100)));
      coordinatorPoll();
      onCpu(0, () => { processPending(); });
    }
    expect(objs.length).toBeGreaterThan(150);
    onCpu(0, () => { for (const p of objs) bpfMemCacheFree(ma, p); });
    coordinatorPoll();
    onCpu(0, () => { processPending(); });
    const s = cpuStats(ma, 0);
    expect(s.trims).toBeGreaterThan(0);
    expect(s.gpCalls).toBe(1);
    await pump(bpfMemAllocDestroy(ma), 10);
    expect(ownerBytes(owner)).toBe(0);
    expectNoSplats();
  });
});

describe('the active guard', () => {
  it('an NMI inside alloc/free: alloc returns NULL with objects cached, free goes to the extra list', () => {
    const ma = bpfMemAllocInit(56, false, owner);
    const c = bpfMemCachePtr(ma, 0);
    const victim = onCpu(0, () => bpfMemCacheAlloc(ma));
    let nmiAlloc = -1;
    setIrqHooks({ runProg: () => { nmiAlloc = bpfMemCacheAlloc(ma); bpfMemCacheFree(ma, victim); } });
    const blk = perCpuBlock(0) >> 2;
    Atomics.store(I32, blk + (PC_PEND_PROG_NMI >> 2), 1);
    Atomics.or(I32, blk + (PC_PENDING >> 2), PEND_NMI);
    const got = onCpu(0, () => bpfMemCacheAlloc(ma)); // the NMI lands at bpf_mem_alloc.alloc.active
    expect(got).not.toBe(0);
    expect(nmiAlloc).toBe(0);
    const s = cpuStats(ma, 0);
    expect(s.busyNulls).toBe(1);
    expect(s.extraFrees).toBe(1);
    expect(I32[(c + BMC_FREE_LLIST_EXTRA) >> 2]).toBe(victim - LLIST_NODE_SZ);
    expect(I32[(c + BMC_ACTIVE) >> 2]).toBe(0);
    expect(bpfMemAllocCheck(ma)).toEqual([]);
    onCpu(0, () => { bpfMemCacheFree(ma, got); processPending(); });
    expectNoSplats();
  });

  it('the extra list is drained by the next trim, to the slab after a grace period', async () => {
    const ma = bpfMemAllocInit(56, false, owner);
    const objs = onCpu(0, () => allocMany(ma, 200));
    const c = bpfMemCachePtr(ma, 0);
    // a free while busy
    I32[(c + BMC_ACTIVE) >> 2] = 1;
    onCpu(0, () => { inContext(CTX_NMI, () => { bpfMemCacheFree(ma, objs.pop()!); }); });
    I32[(c + BMC_ACTIVE) >> 2] = 0;
    expect(I32[(c + BMC_FREE_LLIST_EXTRA) >> 2]).not.toBe(0);
    onCpu(0, () => { for (const p of objs) bpfMemCacheFree(ma, p); });
    expect(I32[(c + BMC_FREE_LLIST_EXTRA) >> 2]).toBe(0);
    expect(await pump(bpfMemAllocDestroy(ma), 10)).toBe(true);
    expect(ownerBytes(owner)).toBe(0);
  });
});

describe('trim and the grace period', () => {
  it('surplus goes back to the slab after ONE grace period, one callback in flight per cache', async () => {
    const ma = bpfMemAllocInit(56, false, owner);
    const objs = onCpu(0, () => allocMany(ma, 300));
    const bytesAtPeak = ownerBytes(owner);
    // CPU 1 is in a read section: the grace period cannot end yet
    onCpu(1, () => { rcuIdleExit(); rcuReadLock(); });
    onCpu(0, () => { for (const p of objs) bpfMemCacheFree(ma, p); });
    let s = cpuStats(ma, 0);
    expect(s.trims).toBeGreaterThan(1); // several trims ...
    expect(s.gpCalls).toBe(1); // ... but one call_rcu while it is in flight
    expect(s.gpInFlight).toBe(true);
    expect(s.gpObjects).toBe(33); // 97 -> 64 ((high + low) / 2)
    expect(s.freeCnt).toBeLessThanOrEqual(96);
    const queuedBehind = I32[(bpfMemCachePtr(ma, 0) + BMC_FREE_BY_RCU) >> 2];
    expect(queuedBehind).not.toBe(0); // later trims wait behind the one in flight
    coordinatorPoll();
    expect(rcuStats().tasksTrace.callbacksQueued).toBe(1);
    expect(cpuStats(ma, 0).gpFreed).toBe(0);
    expect(ownerBytes(owner)).toBe(bytesAtPeak);
    onCpu(1, () => { rcuReadUnlock(); rcuQuiescentState(); rcuReadLock(); }); // next program at once
    coordinatorPoll();
    s = cpuStats(ma, 0);
    expect(s.gpFreed).toBe(33);
    expect(s.gpInFlight).toBe(false);
    expect(ownerBytes(owner)).toBeLessThan(bytesAtPeak);
    expect(bpfMemAllocStats(ma).inFlight).toBe(0);
    // the next trim sends what queued behind, with a new callback
    const more = onCpu(0, () => allocMany(ma, 100));
    onCpu(0, () => { for (const p of more) bpfMemCacheFree(ma, p); });
    expect(cpuStats(ma, 0).gpCalls).toBe(2);
    const done = bpfMemAllocDestroy(ma);
    expect(await pump(done, 5)).toBe(false); // CPU 1 is inside a program and owes the barrier's GP a report
    onCpu(1, () => { rcuReadUnlock(); rcuIdleEnter(); });
    expect(await pump(done, 5)).toBe(true);
    expect(ownerBytes(owner)).toBe(0);
    expectNoSplats();
  });

  it('objects freed on CPU B return to the allocating cache (tgt), which reuses them before kmalloc', () => {
    const ma = bpfMemAllocInit(56, false, owner);
    const objs = onCpu(0, () => allocMany(ma, 150));
    onCpu(1, () => { for (const p of objs) bpfMemCacheFree(ma, p); });
    const a = cpuStats(ma, 0), b = cpuStats(ma, 1);
    expect(b.frees).toBe(150);
    expect(b.trims).toBeGreaterThan(0);
    expect(b.gpInFlight).toBe(false); // the batch went to CPU 0's cache ...
    expect(a.gpInFlight).toBe(true); // ... whose callback carries it
    // CPU 0 refills: after the GP it takes its objects back from its own GP lists
    onCpu(0, () => { allocMany(ma, 200); });
    expect(cpuStats(ma, 0).reused).toBeGreaterThan(0);
  });
});

describe('per-CPU units', () => {
  it('handle + zeroed per-CPU area; percpu and size 0 is EINVAL', async () => {
    const ma = bpfMemAllocInit(24, true, owner);
    const st = bpfMemAllocStats(ma);
    expect(st.percpu).toBe(true);
    expect(st.caches[0]!.unitSize).toBe(24);
    expect(st.caches[0]!.low).toBe(32);
    const h = onCpu(2, () => bpfMemCacheAlloc(ma));
    const pptr = I32[h >> 2]!;
    expect(pptr).not.toBe(0);
    for (let cpu = 0; cpu <= NCPUS; cpu++) {
      const p = perCpuPtr(pptr, 24, cpu);
      for (let i = 0; i < 6; i++) expect(I32[(p >> 2) + i]).toBe(0);
    }
    onCpu(2, () => { bpfMemCacheFree(ma, h); });
    const many = onCpu(3, () => allocMany(ma, 200));
    onCpu(3, () => { for (const p of many) bpfMemCacheFree(ma, p); });
    expect(await pump(bpfMemAllocDestroy(ma), 10)).toBe(true);
    expect(ownerBytes(owner)).toBe(0);
    expectNoSplats();
  });
});

describe('destroy', () => {
  it('accounting back to zero after churn on every CPU, fast path and deferred path', async () => {
    const base = memStats().bytesInUse;
    const ma = bpfMemAllocInit(120, false, owner);
    const live: number[][] = [];
    for (let cpu = 0; cpu <= NCPUS; cpu++) live.push(onCpu(cpu, () => allocMany(ma, 250)));
    // free everything on the "next" CPU: cross-CPU frees, trims, GP callbacks in flight
    for (let cpu = 0; cpu <= NCPUS; cpu++) onCpu((cpu + 1) % (NCPUS + 1), () => { for (const p of live[cpu]!) bpfMemCacheFree(ma, p); });
    expect(bpfMemAllocStats(ma).inFlight).toBeGreaterThan(0);
    expect(bpfMemAllocStats(ma).live).toBe(0);
    const done = bpfMemAllocDestroy(ma);
    expect(await pump(done, 20)).toBe(true);
    expect(ownerBytes(owner)).toBe(0);
    expect(freeOwner(owner)).toBe(0);
    expect(memStats().bytesInUse).toBe(base);
    // fast path: nothing in flight
    const o2 = allocOwner('fast');
    const ma2 = bpfMemAllocInit(8, false, o2);
    const p = onCpu(0, () => bpfMemCacheAlloc(ma2));
    onCpu(0, () => { bpfMemCacheFree(ma2, p); });
    let fast = false;
    void bpfMemAllocDestroy(ma2).then(() => { fast = true; });
    expect(ownerBytes(o2)).toBe(0);
    await Promise.resolve();
    expect(fast).toBe(true);
    expectNoSplats();
  });

  it('waits for a pending irq_work, which then does nothing', async () => {
    const ma = bpfMemAllocInit(56, false, owner);
    const objs = onCpu(0, () => inContext(CTX_NMI, () => allocMany(ma, 10)));
    onCpu(0, () => { inContext(CTX_NMI, () => { for (const p of objs) bpfMemCacheFree(ma, p); }); });
    expect(irqWorkPending(bpfMemCachePtr(ma, 0) + BMC_IRQ_WORK)).toBe(true);
    const done = bpfMemAllocDestroy(ma);
    expect(await pump(done, 5)).toBe(false);
    onCpu(0, () => { processPending(); }); // the CPU's next window
    expect(await pump(done, 5)).toBe(true);
    expect(ownerBytes(owner)).toBe(0);
    expectNoSplats();
  });

  it('reports objects still allocated, and bad frees', async () => {
    const ma = bpfMemAllocInit(56, false, owner);
    const p = onCpu(0, () => bpfMemCacheAlloc(ma));
    onCpu(0, () => { bpfMemCacheFree(ma, p); bpfMemCacheFree(ma, p); }); // double free
    const q = onCpu(0, () => bpfMemCacheAlloc(ma));
    expect(q).toBe(p); // immediate reuse
    const other = bpfMemAllocInit(56, false, owner);
    onCpu(0, () => { bpfMemCacheFree(other, q); }); // wrong allocator
    await pump(bpfMemAllocDestroy(ma), 5);
    expect(readSplats().map((s) => s.kind)).toEqual(['double_free', 'bad_free', 'leak']);
    void bpfMemAllocDestroy(other);
  });

  it('bpfMemCacheAllocSleepable falls back to the slab', () => {
    const ma = bpfMemAllocInit(4088, false, owner);
    const objs = onCpu(0, () => {
      const saved = I32[(perCpuBlock(0) + PC_IRQS_OFF) >> 2]!;
      I32[(perCpuBlock(0) + PC_IRQS_OFF) >> 2] = 1; // irqs off: no synchronous refill
      const a = [bpfMemCacheAlloc(ma), bpfMemCacheAlloc(ma), bpfMemCacheAllocSleepable(ma)];
      I32[(perCpuBlock(0) + PC_IRQS_OFF) >> 2] = saved;
      return a;
    });
    expect(objs[1]).toBe(0);
    expect(objs[2]).not.toBe(0);
    onCpu(0, () => { bpfMemCacheFree(ma, objs[0]!); bpfMemCacheFree(ma, objs[2]!); processPending(); });
    expect(bpfMemAllocStats(ma).live).toBe(0);
  });
});
