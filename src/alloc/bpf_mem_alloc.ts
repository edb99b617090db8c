/*
 * bpf_mem_alloc.ts — the any-context BPF memory allocator (kernel/bpf/memalloc.c, v6.1+ with the
 * 2023 "return objects to the allocating cache" change; reference §4).
 *
 *   CPU 0  [fixed cache]           or  [96][192][16][32][64][128][256][512][1024][2048][4096]
 *   ...                                 (size == 0: the 11 classes, stored in the kernel's order)
 *   CPU n  (the housekeeping CPU, syscall side, has its caches too)
 *
 * Every cache is per CPU and refilled / trimmed by irq_work; objects carry a hidden 8-byte
 * header: the free-list link while free, the allocating cache while allocated (read by free to
 * find the class and `tgt`). Callers get header + 8. Per-CPU units: the object is 16 bytes
 * {header, pptr}, pptr = allocPercpu(size) (zeroed); the caller's pointer is the handle whose
 * first word is pptr.
 *
 * Layout. struct bpf_mem_alloc (kmalloc'd, read-only after init but for MA_STATE):
 *   +0 MA_MAGIC  +4 MA_FLAGS (MAF_*)  +8 MA_SIZE (request size; 0 = classes)  +12 MA_OWNER
 *   +16 MA_NCACHES  +20 MA_STATE (0 live, 1 destroying, 2 freed)  +32 MA_CACHES u32[nrCpuIds * n]
 * struct bpf_mem_cache (its own kmalloc, aligned here to 128; one per CPU per class):
 *   line 0, owner CPU only (plain ops, irqs off + `active` held):
 *     +0 FREE_LLIST  +4 FREE_CNT  +8 ACTIVE  +12 LOW  +16 HIGH  +20 BATCH  +24 UNIT_SIZE
 *     +28 PERCPU_SIZE  +32 TGT  +36 CPU  +40 MA  +44 IDX  +48 OWNER  +52 RAW (kmalloc ptr)
 *   line 1, written by other threads too (Atomics / llists):
 *     +128 FREE_LLIST_EXTRA (this CPU's NMI pushes; owner drains)  +132 DRAINING (main)
 *     +136 FREE_BY_RCU (any CPU pushes, owner pops, any takes all)  +140 WAITING_FOR_GP
 *     +144 CALL_RCU_IN_PROGRESS  +148 RT_BATCH (chain prepared by the coordinator)
 *     +152 RT_BATCH_CNT  +160 rcu_head (8)  +168 irq_work (16)  +184 GP_OBJS  +188 GP_CALLS
 *     +192 GP_FREED  +196 RT_PREPARED  +200 RT_PREP_FAILS
 *   line 2, owner-only statistics (ST_*).
 *
 * Invariants: an object is on exactly one of: allocated, a free_llist, a free_llist_extra,
 * free_by_rcu, waiting_for_gp, an RT batch; free_cnt == length(free_llist) whenever `active` is 0;
 * at most one grace-period callback per cache is in flight (CALL_RCU_IN_PROGRESS) and objects
 * that arrive meanwhile queue on free_by_rcu behind it.
 *
 * Locking. No locks: free_llist belongs to its CPU and is touched with irqs off and `active` == 1;
 * an NMI (or a kprobe program at a window) that finds `active` busy gets NULL from alloc and
 * pushes a free onto the lock-free free_llist_extra. The irq_work can never find `active` busy:
 * on !RT it runs in hardirq, which cannot interrupt an irqs-off section; on RT the CPU part of the
 * work refuses to run while `active` is held (it retries at a later window).
 *
 * Contexts. alloc/free: any context on any CPU thread (a program, a syscall on the housekeeping
 * CPU). Init and destroy: main thread. The grace-period callback runs on the coordinator.
 * Empty cache, by context (seed 001): NMI -> NULL on RT and !RT; hardirq !RT -> NULL until the
 * irq_work runs when the handler returns; task/softirq !RT -> the irq_work runs at the window in
 * irqWorkQueue, right after the alloc that crossed the low watermark (refilled synchronously);
 * RT -> the coordinator allocates the batch asynchronously (NULL possible), the CPU splices it
 * at its next window when the cache is not busy.
 *
 * Differences from the kernel: no memcg (objects are charged to the map's owner); the surplus
 * waits for ONE tasks-trace grace period that implies a normal one (rcu_trace_implies_rcu_gp(),
 * true on current kernels), i.e. one callback per batch; do_call_rcu skips the callback when the
 * batch is empty; on RT the kthread's slab allocation happens on the main thread and the splice
 * on the CPU. The _rcu free variants (bpf_mem_free_rcu) are not modelled; hash maps do not use them.
 * Cost, not semantics (nothing can run between two windows of a CPU thread, so nobody can tell):
 * unit_alloc/unit_free set irqs off only around their `active` window, and only when something
 * is pending there; alloc_bulk takes free_by_rcu whole and gives back what it does not need (one
 * exchange and one push instead of a compare-and-swap per object) and splices its batch onto
 * free_llist in one `active` section; free_bulk pops its surplus in one `active` section and
 * pushes it on tgt's free_by_rcu as one chain.
 */
import { I32, U8, arenaGeneration, nrCpuIds } from '../mem/arena.js';
import { thisCpu, pcpuI } from '../mem/this_cpu.js';
import { CACHELINE, PC_IRQS_OFF, PC_PENDING } from '../mem/layout.js';
import { kmalloc, kzalloc, kfree, POISON_WORD } from '../mm/slab.js';
import { allocPercpu, freePercpu } from '../mm/percpu_alloc.js';
import { isPreemptRt, localIrqSave, localIrqRestore, inInterrupt, irqsDisabled, preemptCount } from '../cpu/context.js';
import { window } from '../cpu/window.js';
import { defineSite } from '../cpu/sites.js';
import { llistAdd, llistAddBatch, llistDelAll, llistDelFirst } from '../cpu/llist.js';
import { splat } from '../debug/splat.js';
import { EINVAL, ENOMEM } from '../errno.js';
import { defineRcuKind, registerRcuCallback, callRcuTasksTraceHead, rcuBarrier } from '../rcu/rcu.js';
import {
  IRQ_WORK_BPF_MEM_REFILL, initIrqWork, irqWorkQueue, irqWorkPending, irqWorkSync, registerIrqWork,
} from '../cpu/irq_work.js';

// ---- struct bpf_mem_alloc ----
export const MA_MAGIC = 0;
export const MA_FLAGS = 4;
export const MA_SIZE = 8;
export const MA_OWNER = 12;
export const MA_NCACHES = 16;
export const MA_STATE = 20;
export const MA_CACHES = 32;
const MA_MAGIC_VALUE = 0x424d4131; // 'BMA1'
export const MAF_PERCPU = 1;
export const MAF_CLASSES = 2;

// ---- struct bpf_mem_cache ----
export const SIZEOF_BPF_MEM_CACHE = 3 * CACHELINE;
export const BMC_FREE_LLIST = 0;
export const BMC_FREE_CNT = 4;
export const BMC_ACTIVE = 8;
export const BMC_LOW = 12;
export const BMC_HIGH = 16;
export const BMC_BATCH = 20;
export const BMC_UNIT_SIZE = 24;
export const BMC_PERCPU_SIZE = 28;
export const BMC_TGT = 32;
export const BMC_CPU = 36;
export const BMC_MA = 40;
export const BMC_IDX = 44;
export const BMC_OWNER = 48;
export const BMC_RAW = 52;
export const BMC_FREE_LLIST_EXTRA = 128;
export const BMC_DRAINING = 132;
export const BMC_FREE_BY_RCU = 136;
export const BMC_WAITING_FOR_GP = 140;
export const BMC_CALL_RCU_IN_PROGRESS = 144;
export const BMC_RT_BATCH = 148;
export const BMC_RT_BATCH_CNT = 152;
export const BMC_RCU_HEAD = 160;
export const BMC_IRQ_WORK = 168;
export const BMC_GP_OBJS = 184;
export const BMC_GP_CALLS = 188;
export const BMC_GP_FREED = 192;
export const BMC_RT_PREPARED = 196;
export const BMC_RT_PREP_FAILS = 200;
// line 2: statistics, owner only
const ST_ALLOCS = 256;
const ST_FREES = 260;
const ST_NULLS = 264;
const ST_BUSY_NULLS = 268;
const ST_EXTRA = 272;
const ST_REFILLS = 276;
const ST_REFILL_OBJS = 280;
const ST_TRIMS = 284;
const ST_TRIM_OBJS = 288;
const ST_RAISES = 292;
const ST_KMALLOC_FAILS = 296;
const ST_REUSED = 300;

/** Hidden header in front of every object. */
export const LLIST_NODE_SZ = 8;
/** Kernel's stored order of the size classes (bpf_mem_alloc_init's `sizes`). */
export const BPF_MEM_SIZES: readonly number[] = Object.freeze([96, 192, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]);
export const NUM_CACHES = 11;
const SIZE_INDEX = [3, 3, 4, 4, 5, 5, 5, 5, 1, 1, 1, 1, 6, 6, 6, 6, 2, 2, 2, 2, 2, 2, 2, 2];

const SITE_ALLOC_ACTIVE = defineSite('bpf_mem_alloc.alloc.active');
const SITE_FREE_ACTIVE = defineSite('bpf_mem_alloc.free.active');

const FREE_I = BMC_FREE_LLIST >> 2;
const CNT_I = BMC_FREE_CNT >> 2;
const ACT_I = BMC_ACTIVE >> 2;
const LOW_I = BMC_LOW >> 2;
const HIGH_I = BMC_HIGH >> 2;
const TGT_I = BMC_TGT >> 2;
const ST_ALLOCS_I = ST_ALLOCS >> 2;
const ST_FREES_I = ST_FREES >> 2;

/** bpf_mem_cache_idx(): class index for a unit of `size` bytes (header included), or -1. */
export function bpfMemCacheIdx(size: number): number {
  if (!(size > 0) || size > 4096) return -1;
  if (size <= 192) return SIZE_INDEX[(size - 1) >> 3]! - 1;
  return 32 - Math.clz32(size - 1) - 2;
}

export interface BpfMemWatermarks { readonly low: number; readonly high: number; readonly batch: number; readonly prefill: number }

/** Watermarks, batch and prefill for a cache of `unitSize` (reference §4.5). */
export function bpfMemWatermarks(unitSize: number): BpfMemWatermarks {
  let low: number, high: number;
  if (unitSize <= 256) { low = 32; high = 96; } else {
    low = Math.max(Math.trunc((32 * 256) / unitSize), 1);
    high = Math.max(Math.trunc((96 * 256) / unitSize), 3);
  }
  const batch = Math.max(Math.trunc((high - low) / 4) * 3, 1);
  return { low, high, batch, prefill: unitSize <= 256 ? 4 : 1 };
}

// ---------------------------------------------------------------------------------------------
// small helpers

function inc(c: number, off: number, n = 1): void { const i = (c + off) >> 2; I32[i] = I32[i]! + n; }

let warnedActive = false;
function incActive(c: number): number {
  const flags = isPreemptRt() ? localIrqSave() : -1;
  const a = I32[(c >> 2) + ACT_I]! + 1;
  I32[(c >> 2) + ACT_I] = a;
  if (a !== 1 && !warnedActive) {
    warnedActive = true;
    splat('warn', `bpf_mem_alloc: irq_work found cache 0x${c.toString(16)} busy (active ${a})`);
  }
  return flags;
}

function decActive(c: number, flags: number): void {
  I32[(c >> 2) + ACT_I] = I32[(c >> 2) + ACT_I]! - 1;
  if (flags >= 0) localIrqRestore(flags);
}

function addObjToFreeList(c: number, obj: number): void {
  const ci = c >> 2;
  const flags = incActive(c);
  I32[obj >> 2] = I32[ci + FREE_I]!;
  I32[ci + FREE_I] = obj;
  I32[ci + CNT_I] = I32[ci + CNT_I]! + 1;
  decActive(c, flags);
}

/** __alloc(): a new object from the slab (kzalloc; percpu: handle + zeroed percpu area). */
function allocUnit(c: number): number {
  const ci = c >> 2;
  const owner = I32[(c + BMC_OWNER) >> 2]!;
  if (I32[(c + BMC_PERCPU_SIZE) >> 2] !== 0) {
    const obj = kmalloc(I32[(c + BMC_PERCPU_SIZE) >> 2]!, owner);
    const pptr = obj !== 0 ? allocPercpu(I32[ci + (BMC_UNIT_SIZE >> 2)]!, owner) : 0;
    if (obj === 0 || pptr === 0) {
      if (obj !== 0) kfree(obj);
      return 0;
    }
    I32[(obj + LLIST_NODE_SZ) >> 2] = pptr;
    return obj;
  }
  return kzalloc(I32[ci + (BMC_UNIT_SIZE >> 2)]!, owner);
}

function freeOne(obj: number, percpu: boolean): void {
  if (percpu) freePercpu(I32[(obj + LLIST_NODE_SZ) >> 2]!);
  kfree(obj);
}

/** Free a private chain linked through the header word; returns the count. */
function freeAll(node: number, percpu: boolean): number {
  let n = 0;
  while (node !== 0) {
    const next = I32[node >> 2]!;
    freeOne(node, percpu);
    n++;
    node = next;
  }
  return n;
}

function isPercpu(c: number): boolean { return I32[(c + BMC_PERCPU_SIZE) >> 2] !== 0; }
function draining(c: number): boolean { return Atomics.load(I32, (c + BMC_DRAINING) >> 2) !== 0; }

// ---------------------------------------------------------------------------------------------
// refill and trim

/**
 * Splice the private chain head..tail (`n` objects, linked through the header) onto this CPU's
 * free_llist in one `active` section (the kernel adds them one by one; no window can come between
 * here, so nobody can tell).
 */
function addChainToFreeList(c: number, head: number, tail: number, n: number): void {
  const ci = c >> 2;
  const flags = incActive(c);
  I32[tail >> 2] = I32[ci + FREE_I]!;
  I32[ci + FREE_I] = head;
  I32[ci + CNT_I] = I32[ci + CNT_I]! + n;
  decActive(c, flags);
}

/**
 * alloc_bulk(): `cnt` objects into this cache: reuse the GP lists first, then the slab. Owner CPU.
 * free_by_rcu (other CPUs push on it; a free_bulk anywhere may take it whole for a grace period) is
 * taken whole with one exchange and what is not needed goes back with one push, instead of one
 * compare-and-swap per object; an object in our hands meanwhile simply was not on the list when a
 * free_bulk looked, as if it had been reused a moment earlier. waiting_for_gp (the batch of the
 * callback in flight, which takes what is left when the grace period ends) is popped one by one.
 */
function allocBulk(c: number, cnt: number): number {
  let i = 0, head = 0, tail = 0;
  let rest = llistDelAll(c + BMC_FREE_BY_RCU);
  for (; i < cnt && rest !== 0; i++) {
    const obj = rest;
    rest = I32[obj >> 2]!;
    I32[obj >> 2] = head;
    if (head === 0) tail = obj;
    head = obj;
  }
  if (rest !== 0) {
    let last = rest;
    for (let next = I32[last >> 2]!; next !== 0; next = I32[next >> 2]!) last = next;
    llistAddBatch(c + BMC_FREE_BY_RCU, rest, last, 0);
  }
  for (; i < cnt; i++) {
    const obj = llistDelFirst(c + BMC_WAITING_FOR_GP, 0);
    if (obj === 0) break;
    I32[obj >> 2] = head;
    if (head === 0) tail = obj;
    head = obj;
  }
  if (i > 0) {
    addChainToFreeList(c, head, tail, i);
    inc(c, ST_REUSED, i);
  }
  for (; i < cnt; i++) {
    const obj = allocUnit(c);
    if (obj === 0) { inc(c, ST_KMALLOC_FAILS); break; }
    addObjToFreeList(c, obj);
  }
  inc(c, ST_REFILL_OBJS, i);
  return i;
}

/** do_call_rcu_ttrace(): send `c`'s free_by_rcu batch to the slab after one grace period. */
function doCallRcu(c: number): void {
  const inprogI = (c + BMC_CALL_RCU_IN_PROGRESS) >> 2;
  if (Atomics.exchange(I32, inprogI, 1) !== 0) {
    // one callback in flight per cache: the batch queues behind it (unless the cache is going)
    if (draining(c)) freeAll(llistDelAll(c + BMC_FREE_BY_RCU), isPercpu(c));
    return;
  }
  const first = llistDelAll(c + BMC_FREE_BY_RCU);
  if (first === 0) { Atomics.store(I32, inprogI, 0); return; }
  let last = first, n = 1;
  for (let next = I32[first >> 2]!; next !== 0; next = I32[next >> 2]!) { last = next; n++; }
  if (Atomics.load(I32, (c + BMC_WAITING_FOR_GP) >> 2) !== 0) splat('warn', `bpf_mem_alloc: waiting_for_gp of cache 0x${c.toString(16)} not empty at call_rcu`);
  llistAddBatch(c + BMC_WAITING_FOR_GP, first, last, 0);
  Atomics.store(I32, (c + BMC_GP_OBJS) >> 2, n);
  if (draining(c)) { freeRcu(c); return; }
  Atomics.add(I32, (c + BMC_GP_CALLS) >> 2, 1);
  callRcuTasksTraceHead(c + BMC_RCU_HEAD, RCU_KIND_FREE);
}

/**
 * free_bulk(): trim this cache to (high + low) / 2 and send the surplus, with everything on
 * free_llist_extra, to tgt's free_by_rcu, then do_call_rcu there. Owner CPU. The objects are
 * popped in one `active` section and pushed as one chain (one compare-and-swap, where the kernel
 * pushes each): no window comes between, so the lists look the same to everybody else.
 */
function freeBulk(c: number): void {
  const ci = c >> 2;
  const tgt = I32[ci + TGT_I]!;
  if (I32[(tgt + BMC_UNIT_SIZE) >> 2] !== I32[ci + (BMC_UNIT_SIZE >> 2)]) splat('warn', `bpf_mem_alloc: tgt 0x${tgt.toString(16)} has another unit size`);
  const half = (I32[ci + HIGH_I]! + I32[ci + LOW_I]!) >> 1;
  let head = 0, tail = 0, n = 0;
  const flags = incActive(c);
  let node = I32[ci + FREE_I]!;
  let cnt = I32[ci + CNT_I]!;
  // the kernel's do { pop one } while (free_cnt > half): at least one, and none from an empty list
  while (node !== 0) {
    const next = I32[node >> 2]!;
    I32[node >> 2] = head;
    if (head === 0) tail = node;
    head = node;
    node = next;
    n++;
    if (--cnt <= half) break;
  }
  I32[ci + FREE_I] = node;
  I32[ci + CNT_I] = I32[ci + CNT_I]! - n;
  decActive(c, flags);
  for (let x = llistDelAll(c + BMC_FREE_LLIST_EXTRA); x !== 0;) {
    const next = I32[x >> 2]!;
    I32[x >> 2] = head;
    if (head === 0) tail = x;
    head = x;
    n++;
    x = next;
  }
  if (head !== 0) llistAddBatch(tgt + BMC_FREE_BY_RCU, head, tail, 0);
  inc(c, ST_TRIM_OBJS, n);
  doCallRcu(tgt);
}

/** bpf_mem_refill(): the irq_work (!RT: hardirq on the owner CPU). */
function bpfMemRefill(c: number): void {
  if (draining(c)) return;
  const ci = c >> 2;
  const cnt = I32[ci + CNT_I]!;
  if (cnt < I32[ci + LOW_I]!) {
    allocBulk(c, I32[ci + (BMC_BATCH >> 2)]!);
    inc(c, ST_REFILLS);
  } else if (cnt > I32[ci + HIGH_I]!) {
    freeBulk(c);
    inc(c, ST_TRIMS);
  }
}

/** RT, coordinator: allocate the batch on the main thread (where the slab may sleep). */
function rtPrepare(c: number): void {
  if (draining(c)) return;
  const ci = c >> 2;
  if (Atomics.load(I32, ci + CNT_I) >= I32[ci + LOW_I]! || Atomics.load(I32, (c + BMC_RT_BATCH) >> 2) !== 0) return;
  const want = I32[ci + (BMC_BATCH >> 2)]!;
  let head = 0, n = 0;
  // single consumer of the GP lists' first node on RT: this thread (refills never run on the CPU)
  for (; n < want; n++) {
    let obj = llistDelFirst(c + BMC_FREE_BY_RCU, 0);
    if (obj === 0) obj = llistDelFirst(c + BMC_WAITING_FOR_GP, 0);
    if (obj === 0) obj = allocUnit(c);
    if (obj === 0) { Atomics.add(I32, (c + BMC_RT_PREP_FAILS) >> 2, 1); break; }
    I32[obj >> 2] = head;
    head = obj;
  }
  Atomics.add(I32, (c + BMC_RT_PREPARED) >> 2, n);
  Atomics.store(I32, (c + BMC_RT_BATCH_CNT) >> 2, n);
  Atomics.store(I32, (c + BMC_RT_BATCH) >> 2, head);
}

/** RT, owner CPU at a window: splice the prepared batch, trim if over the high watermark. */
function rtRun(c: number): boolean {
  const ci = c >> 2;
  if (I32[ci + ACT_I] !== 0) return false; // the cache is busy under us: a later window
  // The RT irq_work thread is a task: it cannot run inside an NMI or hardirq, with irqs off or with
  // preemption disabled (a migrate_disable'd program is preemptible on RT, so it may run then).
  if (inInterrupt() || irqsDisabled() || preemptCount() > 0) return false;
  const chain = Atomics.exchange(I32, (c + BMC_RT_BATCH) >> 2, 0);
  Atomics.store(I32, (c + BMC_RT_BATCH_CNT) >> 2, 0);
  if (draining(c)) { freeAll(chain, isPercpu(c)); return true; }
  let n = 0;
  for (let node = chain; node !== 0;) {
    const next = I32[node >> 2]!;
    addObjToFreeList(c, node);
    n++;
    node = next;
  }
  if (n > 0) { inc(c, ST_REFILLS); inc(c, ST_REFILL_OBJS, n); }
  if (I32[ci + CNT_I]! > I32[ci + HIGH_I]!) { freeBulk(c); inc(c, ST_TRIMS); }
  return true;
}

registerIrqWork(IRQ_WORK_BPF_MEM_REFILL, {
  name: 'bpf_mem_refill',
  run(work: number): void { bpfMemRefill(work - BMC_IRQ_WORK); },
  rtPrepare(work: number): void { rtPrepare(work - BMC_IRQ_WORK); },
  rtRun(work: number): boolean { return rtRun(work - BMC_IRQ_WORK); },
});

/** __free_rcu(): the grace period of `c`'s batch ended: back to the slab (coordinator). */
function freeRcu(c: number): void {
  const n = freeAll(llistDelAll(c + BMC_WAITING_FOR_GP), isPercpu(c));
  Atomics.add(I32, (c + BMC_GP_FREED) >> 2, n);
  Atomics.store(I32, (c + BMC_GP_OBJS) >> 2, 0);
  Atomics.store(I32, (c + BMC_CALL_RCU_IN_PROGRESS) >> 2, 0);
}

const RCU_KIND_FREE = defineRcuKind('bpf_mem_alloc.free_rcu');
registerRcuCallback(RCU_KIND_FREE, (head: number) => { freeRcu(head - BMC_RCU_HEAD); });

// ---------------------------------------------------------------------------------------------
// fast paths

function irqWorkRaise(c: number): void {
  inc(c, ST_RAISES);
  irqWorkQueue(c + BMC_IRQ_WORK);
}

/*
 * The fast paths open-code the window's idle check (this CPU's PC_PENDING word, as window.ts
 * does; window() reads it again) and take local_irq_save/restore (this CPU's PC_IRQS_OFF word, as
 * context.ts does) only around that window: on a CPU thread nothing can run between two windows,
 * so the irqs-off state inside `active` is observable only at the window — where an NMI or a
 * kprobe may land (bpf_mem_alloc.{alloc,free}.active, `active` held: alloc NULL, free to the extra
 * list) but no hardirq, softirq or irq_work, as in the kernel. That keeps an alloc + free pair
 * close to the cost of the swap with a preallocated spare.
 */
const IRQS_OFF_I = PC_IRQS_OFF >> 2;
const PENDING_I = PC_PENDING >> 2;

/** The window inside `active`, with irqs off (local_irq_save/restore around it). */
function activeWindow(site: number): void {
  const irqI = pcpuI + IRQS_OFF_I;
  const flags = I32[irqI]!;
  I32[irqI] = 1;
  window(site);
  I32[irqI] = flags;
}

/** unit_alloc(): pop this CPU's free list; NULL when empty or `active` is busy. Any context. */
function unitAlloc(c: number): number {
  const m = I32;
  const ci = c >> 2;
  let obj = 0, cnt = 0;
  const active = m[ci + ACT_I]! + 1;
  m[ci + ACT_I] = active;
  if (active === 1) {
    if (m[pcpuI + PENDING_I] !== 0) activeWindow(SITE_ALLOC_ACTIVE); // an NMI landing here finds the cache busy
    obj = m[ci + FREE_I]!;
    if (obj !== 0) {
      m[ci + FREE_I] = m[obj >> 2]!;
      cnt = m[ci + CNT_I]! - 1;
      m[ci + CNT_I] = cnt;
      m[obj >> 2] = c;
    }
  }
  m[ci + ACT_I] = active - 1; // nested users of the window left it as they found it
  if (obj !== 0) m[ci + ST_ALLOCS_I] = m[ci + ST_ALLOCS_I]! + 1;
  else { inc(c, ST_NULLS); if (active !== 1) inc(c, ST_BUSY_NULLS); }
  if (cnt < m[ci + LOW_I]!) irqWorkRaise(c);
  return obj;
}

/** unit_free(): push on this CPU's free list (or the extra list if busy). Never fails. */
function unitFree(c: number, obj: number): void {
  const m = I32;
  const ci = c >> 2;
  m[ci + TGT_I] = m[obj >> 2]!; // objects go back to the allocating cache (a hint)
  let cnt = 0;
  const active = m[ci + ACT_I]! + 1;
  m[ci + ACT_I] = active;
  if (active === 1) {
    if (m[pcpuI + PENDING_I] !== 0) activeWindow(SITE_FREE_ACTIVE);
    m[obj >> 2] = m[ci + FREE_I]!;
    m[ci + FREE_I] = obj;
    cnt = m[ci + CNT_I]! + 1;
    m[ci + CNT_I] = cnt;
  } else {
    llistAdd(c + BMC_FREE_LLIST_EXTRA, obj, 0);
    inc(c, ST_EXTRA);
  }
  m[ci + ACT_I] = active - 1;
  m[ci + ST_FREES_I] = m[ci + ST_FREES_I]! + 1;
  if (cnt > m[ci + HIGH_I]!) irqWorkRaise(c);
}

/** The object's header must name a cache of this allocator; else splat and refuse. */
function checkHeader(ma: number, ptr: number, hdr: number, fn: string): boolean {
  if (hdr !== 0 && (hdr & (CACHELINE - 1)) === 0 && I32[(hdr + BMC_MA) >> 2] === ma) return true;
  if (hdr === POISON_WORD) splat('use_after_free', `${fn}(0x${ptr.toString(16)}): object was already returned to the slab`);
  else if (hdr !== 0 && (hdr & (CACHELINE - 1)) === 0 && I32[(hdr + BMC_MA) >> 2] !== undefined && I32[((I32[(hdr + BMC_MA) >> 2]! + MA_MAGIC) >> 2)] === MA_MAGIC_VALUE) {
    splat('bad_free', `${fn}(0x${ptr.toString(16)}): object belongs to another bpf_mem_alloc`);
  } else splat('double_free', `${fn}(0x${ptr.toString(16)}): header 0x${(hdr >>> 0).toString(16)} is not a cache of this allocator (double free?)`);
  return false;
}

function cacheOf(ma: number, cpu: number, idx: number): number {
  return I32[((ma + MA_CACHES) >> 2) + cpu * I32[(ma + MA_NCACHES) >> 2]! + idx]!;
}

/** bpf_mem_cache_alloc(): an object of the fixed size, or 0. Any context. */
export function bpfMemCacheAlloc(ma: number): number {
  const obj = unitAlloc(I32[((ma + MA_CACHES) >> 2) + thisCpu]!);
  return obj === 0 ? 0 : obj + LLIST_NODE_SZ;
}

/** bpf_mem_cache_free(): give back an object of this allocator (NULL is a no-op). Any context. */
export function bpfMemCacheFree(ma: number, ptr: number): void {
  if (ptr === 0) return;
  const obj = ptr - LLIST_NODE_SZ;
  const hdr = I32[obj >> 2]!;
  // the header names a cache of this allocator (checkHeader's first test, inline)
  if ((hdr & (CACHELINE - 1)) !== 0 || hdr === 0 || I32[(hdr + BMC_MA) >> 2] !== ma) {
    if (!checkHeader(ma, ptr, hdr, 'bpf_mem_cache_free')) return;
  }
  unitFree(I32[((ma + MA_CACHES) >> 2) + thisCpu]!, obj);
}

/**
 * bpf_mem_cache_alloc_flags(GFP_KERNEL): for sleepable callers: the cache, else the slab directly.
 * Task context only (on RT the slab may sleep).
 */
export function bpfMemCacheAllocSleepable(ma: number): number {
  const c = I32[((ma + MA_CACHES) >> 2) + thisCpu]!;
  let obj = unitAlloc(c);
  if (obj === 0) {
    obj = allocUnit(c);
    if (obj === 0) return 0;
    I32[obj >> 2] = c;
    inc(c, ST_ALLOCS);
  }
  return obj + LLIST_NODE_SZ;
}

/** bpf_mem_alloc(ma, size): an object from the class of size + 8 (classes allocator), or 0. */
export function bpfMemAlloc(ma: number, size: number): number {
  if (!(size > 0)) return 0;
  const idx = bpfMemCacheIdx(size + LLIST_NODE_SZ);
  if (idx < 0) return 0;
  const obj = unitAlloc(I32[((ma + MA_CACHES) >> 2) + thisCpu * NUM_CACHES + idx]!);
  return obj === 0 ? 0 : obj + LLIST_NODE_SZ;
}

/** bpf_mem_free(ma, ptr): free into this CPU's cache of the object's class. */
export function bpfMemFree(ma: number, ptr: number): void {
  if (ptr === 0) return;
  const obj = ptr - LLIST_NODE_SZ;
  const hdr = I32[obj >> 2]!;
  if (!checkHeader(ma, ptr, hdr, 'bpf_mem_free')) return;
  const idx = I32[(hdr + BMC_IDX) >> 2]!;
  unitFree(I32[((ma + MA_CACHES) >> 2) + thisCpu * NUM_CACHES + idx]!, obj);
}

// ---------------------------------------------------------------------------------------------
// init and destroy (main thread)

function newCache(ma: number, cpu: number, idx: number, unitSize: number, percpuSize: number, owner: number): number {
  const raw = kmalloc(SIZEOF_BPF_MEM_CACHE + CACHELINE, owner);
  if (raw === 0) return 0;
  const c = (raw + CACHELINE - 1) & ~(CACHELINE - 1);
  U8.fill(0, c, c + SIZEOF_BPF_MEM_CACHE);
  const ci = c >> 2;
  const w = bpfMemWatermarks(unitSize);
  I32[ci + LOW_I] = w.low;
  I32[ci + HIGH_I] = w.high;
  I32[ci + (BMC_BATCH >> 2)] = w.batch;
  I32[ci + (BMC_UNIT_SIZE >> 2)] = unitSize;
  I32[ci + (BMC_PERCPU_SIZE >> 2)] = percpuSize;
  I32[ci + TGT_I] = c;
  I32[ci + (BMC_CPU >> 2)] = cpu;
  I32[ci + (BMC_MA >> 2)] = ma;
  I32[ci + (BMC_IDX >> 2)] = idx;
  I32[ci + (BMC_OWNER >> 2)] = owner;
  I32[ci + (BMC_RAW >> 2)] = raw;
  initIrqWork(c + BMC_IRQ_WORK, IRQ_WORK_BPF_MEM_REFILL);
  return c;
}

function allCaches(ma: number): number[] {
  const n = I32[(ma + MA_NCACHES) >> 2]! * nrCpuIds;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = I32[((ma + MA_CACHES) >> 2) + i]!;
    if (c !== 0) out.push(c);
  }
  return out;
}

function freeMemAlloc(ma: number): void {
  for (const c of allCaches(ma)) kfree(I32[(c + BMC_RAW) >> 2]!);
  I32[(ma + MA_STATE) >> 2] = 2;
  I32[(ma + MA_MAGIC) >> 2] = 0;
  kfree(ma);
}

/**
 * bpf_mem_alloc_init(): `size` > 0: one cache per CPU id for objects of `size` bytes (percpu:
 * per-CPU units of `size`); `size` == 0: the 11 size classes (percpu not allowed). Caches are
 * prefilled (4 objects, 1 above 256 bytes). Main thread. Returns the allocator pointer or -errno.
 */
export function bpfMemAllocInit(size: number, percpu: boolean, owner: number): number {
  if (!Number.isInteger(size) || size < 0) return -EINVAL;
  if (size === 0 && percpu) return -EINVAL;
  const ncaches = size > 0 ? 1 : NUM_CACHES;
  const ma = kzalloc(MA_CACHES + 4 * nrCpuIds * ncaches, owner);
  if (ma === 0) return -ENOMEM;
  const mi = ma >> 2;
  I32[mi + (MA_FLAGS >> 2)] = (percpu ? MAF_PERCPU : 0) | (size === 0 ? MAF_CLASSES : 0);
  I32[mi + (MA_SIZE >> 2)] = size;
  I32[mi + (MA_OWNER >> 2)] = owner;
  I32[mi + (MA_NCACHES >> 2)] = ncaches;
  I32[mi + (MA_MAGIC >> 2)] = MA_MAGIC_VALUE;
  for (let cpu = 0; cpu < nrCpuIds; cpu++) {
    for (let i = 0; i < ncaches; i++) {
      const unit = size > 0 ? (percpu ? size : size + LLIST_NODE_SZ) : BPF_MEM_SIZES[i]!;
      const c = newCache(ma, cpu, i, unit, percpu ? 2 * LLIST_NODE_SZ : 0, owner);
      if (c === 0) {
        for (const d of allCaches(ma)) drainMemCache(d);
        freeMemAlloc(ma);
        return -ENOMEM;
      }
      I32[mi + (MA_CACHES >> 2) + cpu * ncaches + i] = c;
      allocBulk(c, bpfMemWatermarks(unit).prefill);
    }
  }
  return ma;
}

/** drain_mem_cache(): every list back to the slab. Nobody may use the cache any more. */
function drainMemCache(c: number): void {
  const percpu = isPercpu(c);
  freeAll(llistDelAll(c + BMC_FREE_BY_RCU), percpu);
  freeAll(llistDelAll(c + BMC_WAITING_FOR_GP), percpu);
  freeAll(Atomics.exchange(I32, (c + BMC_RT_BATCH) >> 2, 0), percpu);
  freeAll(I32[(c + BMC_FREE_LLIST) >> 2]!, percpu);
  I32[(c + BMC_FREE_LLIST) >> 2] = 0;
  I32[(c + BMC_FREE_CNT) >> 2] = 0;
  freeAll(llistDelAll(c + BMC_FREE_LLIST_EXTRA), percpu);
}

let deferred = 0;
let deferredWaiters: (() => void)[] = [];
let deferredGen = -1; // arenaGeneration this state belongs to (a number: keeps no arena alive)

/** Deferred-destroy bookkeeping belongs to one arena (main thread). */
function deferredState(): void {
  if (deferredGen === arenaGeneration) return;
  deferredGen = arenaGeneration;
  deferred = 0;
  deferredWaiters = [];
}

/**
 * bpf_mem_alloc_destroy() (main thread, after the last user is gone): mark every cache draining,
 * free every list; if no irq_work is pending and no grace-period callback is in flight, free the
 * caches now; else wait for the irq_works and an rcu_barrier, then free (the kernel defers this to
 * a work item too). Objects still allocated are a 'leak' splat. The promise resolves when the
 * allocator's memory is back in the slab (already resolved on the fast path).
 */
export function bpfMemAllocDestroy(ma: number): Promise<void> {
  if (ma <= 0 || I32[(ma + MA_MAGIC) >> 2] !== MA_MAGIC_VALUE || I32[(ma + MA_STATE) >> 2] !== 0) {
    splat('bad_free', `bpf_mem_alloc_destroy(0x${(ma >>> 0).toString(16)}): not a live allocator`);
    return Promise.resolve();
  }
  I32[(ma + MA_STATE) >> 2] = 1;
  const caches = allCaches(ma);
  let live = 0;
  for (const c of caches) {
    Atomics.store(I32, (c + BMC_DRAINING) >> 2, 1);
    live += I32[(c + ST_ALLOCS) >> 2]! - I32[(c + ST_FREES) >> 2]!;
  }
  if (live > 0) splat('leak', `bpf_mem_alloc_destroy(0x${ma.toString(16)}): ${live} objects still allocated`);
  const busy = caches.filter((c) => irqWorkPending(c + BMC_IRQ_WORK));
  if (busy.length === 0) {
    let inflight = 0;
    for (const c of caches) {
      drainMemCache(c);
      inflight += Atomics.load(I32, (c + BMC_CALL_RCU_IN_PROGRESS) >> 2);
    }
    if (inflight === 0) { freeMemAlloc(ma); return Promise.resolve(); }
  }
  deferredState();
  deferred++;
  const gen = arenaGeneration;
  return (async () => {
    await Promise.all(busy.map((c) => irqWorkSync(c + BMC_IRQ_WORK)));
    if (arenaGeneration !== gen) return; // that arena (runtime) is gone
    for (const c of caches) drainMemCache(c);
    try { await rcuBarrier(); } catch { return; } // rejected only when the runtime stops
    if (arenaGeneration !== gen) return;
    for (const c of caches) drainMemCache(c);
    freeMemAlloc(ma);
    deferred--;
    if (deferred === 0) {
      const w = deferredWaiters;
      deferredWaiters = [];
      for (const r of w) r();
    }
  })();
}

/** Resolves when no deferred destroy is left (main thread; tests and rt.stop()). */
export function bpfMemAllocDestroyIdle(): Promise<void> {
  deferredState();
  if (deferred === 0) return Promise.resolve();
  return new Promise<void>((resolve) => { deferredWaiters.push(resolve); });
}

// ---------------------------------------------------------------------------------------------
// statistics and checks (main thread; racy snapshots while CPUs run)

export interface BpfMemCacheCpuStats {
  readonly cpu: number;
  readonly freeCnt: number;
  readonly active: number;
  readonly allocs: number;
  readonly frees: number;
  /** NULL returns (empty or busy): the map's -ENOMEM. */
  readonly nulls: number;
  readonly busyNulls: number;
  readonly extraFrees: number;
  readonly irqWorkRaised: number;
  readonly refills: number;
  readonly refillObjs: number;
  readonly reused: number;
  readonly trims: number;
  readonly trimObjs: number;
  readonly kmallocFails: number;
  readonly rtPrepared: number;
  /** Objects waiting for this cache's grace-period callback (0 if none in flight). */
  readonly gpObjects: number;
  readonly gpInFlight: boolean;
  readonly gpCalls: number;
  readonly gpFreed: number;
}

export interface BpfMemCacheStats {
  readonly unitSize: number;
  readonly low: number;
  readonly high: number;
  readonly batch: number;
  readonly perCpu: readonly BpfMemCacheCpuStats[];
}

export interface BpfMemAllocStats {
  readonly size: number;
  readonly percpu: boolean;
  readonly classes: boolean;
  readonly caches: readonly BpfMemCacheStats[];
  readonly allocs: number;
  readonly frees: number;
  readonly nulls: number;
  readonly refills: number;
  readonly trims: number;
  /** Grace-period callbacks in flight and the objects they carry. */
  readonly inFlight: number;
  readonly inFlightObjects: number;
  readonly freedAfterGp: number;
  /** Objects in free lists (all CPUs). */
  readonly cached: number;
  /** allocs - frees over all caches. */
  readonly live: number;
}

function ld(c: number, off: number): number { return Atomics.load(I32, (c + off) >> 2); }

function cpuStats(c: number): BpfMemCacheCpuStats {
  return {
    cpu: ld(c, BMC_CPU), freeCnt: ld(c, BMC_FREE_CNT), active: ld(c, BMC_ACTIVE), allocs: ld(c, ST_ALLOCS),
    frees: ld(c, ST_FREES), nulls: ld(c, ST_NULLS), busyNulls: ld(c, ST_BUSY_NULLS), extraFrees: ld(c, ST_EXTRA),
    irqWorkRaised: ld(c, ST_RAISES), refills: ld(c, ST_REFILLS), refillObjs: ld(c, ST_REFILL_OBJS),
    reused: ld(c, ST_REUSED), trims: ld(c, ST_TRIMS), trimObjs: ld(c, ST_TRIM_OBJS),
    kmallocFails: ld(c, ST_KMALLOC_FAILS), rtPrepared: ld(c, BMC_RT_PREPARED),
    gpObjects: ld(c, BMC_GP_OBJS), gpInFlight: ld(c, BMC_CALL_RCU_IN_PROGRESS) !== 0,
    gpCalls: ld(c, BMC_GP_CALLS), gpFreed: ld(c, BMC_GP_FREED),
  };
}

/** bpfMemAllocStats(ma): per cache and per CPU counters, free_cnt against the watermarks. */
export function bpfMemAllocStats(ma: number): BpfMemAllocStats {
  const ncaches = I32[(ma + MA_NCACHES) >> 2]!;
  const flags = I32[(ma + MA_FLAGS) >> 2]!;
  const caches: BpfMemCacheStats[] = [];
  let allocs = 0, frees = 0, nulls = 0, refills = 0, trims = 0, inFlight = 0, inFlightObjects = 0, freed = 0, cached = 0;
  for (let i = 0; i < ncaches; i++) {
    const c0 = cacheOf(ma, 0, i);
    const perCpu: BpfMemCacheCpuStats[] = [];
    for (let cpu = 0; cpu < nrCpuIds; cpu++) {
      const s = cpuStats(cacheOf(ma, cpu, i));
      perCpu.push(s);
      allocs += s.allocs; frees += s.frees; nulls += s.nulls; refills += s.refills; trims += s.trims;
      if (s.gpInFlight) inFlight++;
      inFlightObjects += s.gpObjects; freed += s.gpFreed; cached += s.freeCnt;
    }
    caches.push({ unitSize: ld(c0, BMC_UNIT_SIZE), low: ld(c0, BMC_LOW), high: ld(c0, BMC_HIGH), batch: ld(c0, BMC_BATCH), perCpu });
  }
  return {
    size: I32[(ma + MA_SIZE) >> 2]!, percpu: (flags & MAF_PERCPU) !== 0, classes: (flags & MAF_CLASSES) !== 0,
    caches, allocs, frees, nulls, refills, trims, inFlight, inFlightObjects, freedAfterGp: freed, cached,
    live: allocs - frees,
  };
}

/** free_cnt of every CPU id's cache `idx` (cheap enough to sample for a level-vs-watermark plot). */
export function bpfMemFreeCounts(ma: number, idx = 0): number[] {
  const out: number[] = [];
  for (let cpu = 0; cpu < nrCpuIds; cpu++) out.push(ld(cacheOf(ma, cpu, idx), BMC_FREE_CNT));
  return out;
}

/** The cache of CPU `cpu` (class index `idx` for the classes allocator). */
export function bpfMemCachePtr(ma: number, cpu: number, idx = 0): number {
  return cacheOf(ma, cpu, idx);
}

/**
 * Structural check for a quiescent allocator (no CPU inside it): `active` is 0 and free_cnt is
 * the length of free_llist for every cache. Returns the violations.
 */
export function bpfMemAllocCheck(ma: number): string[] {
  const out: string[] = [];
  if (I32[(ma + MA_MAGIC) >> 2] !== MA_MAGIC_VALUE) return [`0x${ma.toString(16)} is not a bpf_mem_alloc`];
  for (const c of allCaches(ma)) {
    const cpu = ld(c, BMC_CPU), idx = ld(c, BMC_IDX);
    const where = `cache cpu ${cpu} idx ${idx}`;
    if (ld(c, BMC_ACTIVE) !== 0) out.push(`${where}: active ${ld(c, BMC_ACTIVE)}`);
    let n = 0;
    for (let node = ld(c, BMC_FREE_LLIST); node !== 0 && n <= 1e7; node = I32[node >> 2]!) n++;
    if (n !== ld(c, BMC_FREE_CNT)) out.push(`${where}: free_cnt ${ld(c, BMC_FREE_CNT)} but ${n} on free_llist`);
  }
  return out;
}
