/*
 * bpf_obj.ts — allocated objects (kernel/bpf/helpers.c bpf_obj_new_impl, __bpf_obj_drop_impl,
 * bpf_refcount_acquire_impl, bpf_list_head_free, bpf_rb_root_free) and the teardown of the roots
 * they and map values hold.
 *
 * Memory: objects come from bpf_global_ma (a size-class bpf_mem_alloc, any context; 0 when the
 * cache is dry, as the kernel's GFP_ATOMIC path). Each object has an 8-byte header in front of it:
 *   -8  OBJ_TYPE  type id | OBJ_MAGIC << 16 while live; 0 once dropped (a later use is caught)
 *   -4  OBJ_LINK  llist link while its drop waits for irq_work (deferred from NMI)
 * The object itself is zeroed at bpf_obj_new (the kernel initialises only the special fields),
 * its bpf_refcount set to 1.
 *
 * Drop (bpf_obj_drop, the end of a collection's teardown, an abort's unwinding):
 *  - refcounted: refcount_dec_and_test; only the last reference frees, and then through RCU (a
 *    non-owning reference may still be in use by a reader in a critical section elsewhere);
 *  - the object's roots are torn down first: take its bpf_spin_lock, detach every node, unlock,
 *    drop every node outside the lock (iteratively: nodes may hold roots themselves);
 *  - in NMI a teardown that needs the object's lock is not safe (the interrupted context may hold
 *    it): the drop is deferred to this CPU's irq_work, linked through the object's own header, so
 *    the deferral allocates nothing and cannot fail. Objects without roots are freed at once
 *    (bpf_mem_free is NMI-safe). A map value torn down in NMI while the interrupted context holds
 *    its lock is detached without the lock (that context is frozen at a window, its roots
 *    consistent) and its nodes' drops are deferred the same way.
 *
 * Accounting: allocations, frees, allocation failures, deferred drops and teardown nodes are
 * per-CPU words each CPU writes alone (PC_GRAPH_STATS; a shared counter would bounce one cache
 * line between every CPU on every alloc and free); frees waiting for a grace period and refcount
 * underflows are region words (Atomics). live = Σ allocs − Σ frees, read at quiescent points;
 * tests and the stress leak check rely on it.
 *
 * Map values: btf_record.ts calls bpfGraphFreeRoot for every root of a value leaving its map
 * (delete, replace, LRU eviction, array overwrite, map free).
 */
import { I32, U8 } from '../mem/arena.js';
import { nrCpuIds } from '../mem/arena.js';
import { thisCpu, pcpu, pcpuI, perCpuBlock } from '../mem/this_cpu.js';
import { kzalloc } from '../mm/slab.js';
import { OWNER_KERNEL, allocOwner } from '../mm/owners.js';
import { HDR_GRAPH_BASE, PC_GRAPH_DEFER, PC_GRAPH_IRQ_WORK, PC_GRAPH_STATS } from '../mem/layout.js';
import { inNmi } from '../cpu/context.js';
import { rawSpinLockIrqsave, rawSpinUnlockIrqrestore } from '../locks/raw_spinlock.js';
import { LC_BPF_SPIN_LOCK } from '../locks/lock_classes.js';
import { llistAdd, llistDelAll } from '../cpu/llist.js';
import { bpfMemAlloc, bpfMemFree, bpfMemAllocInit } from '../alloc/bpf_mem_alloc.js';
import { registerIrqWork, initIrqWork, irqWorkQueue } from '../cpu/irq_work.js';
import { callRcuHead, defineRcuKind, registerRcuCallback } from '../rcu/callbacks.js';
import { registerGraphFieldOps } from '../maps/btf_record.js';
import { splat } from '../debug/splat.js';
import { FK_LIST_HEAD, REGION_BYTES, graphRegion, typeInfo, typeName, btfDeclareType, type TypeInfo } from './btf_types.js';
import { bpfListTakeAll } from './bpf_list.js';
import { bpfRbtreeTakeAll } from './bpf_rbtree.js';

export const OBJ_HDR = 8;
export const OBJ_TYPE = -8;
export const OBJ_LINK = -4;
export const OBJ_MAGIC = 0x0b1e;

// region words (btf_types.ts owns 0..7 and the type table from 1024)
const R_MA = 8, R_DEFER_FAIL = 32, R_RCU_PENDING = 36, R_REFCNT_ERR = 44;
// per-CPU words at PC_GRAPH_STATS (owner-written; an interrupt cannot split a JS statement)
const GS_ALLOCS = 0, GS_FREES = 1, GS_ALLOC_FAIL = 2, GS_DEFERRED = 3, GS_TEARDOWN_NODES = 4;
const GS_I = PC_GRAPH_STATS >> 2;
function bump(w: number): void { I32[pcpuI + GS_I + w] = I32[pcpuI + GS_I + w]! + 1; }
function sumStat(w: number): number {
  let n = 0;
  for (let c = 0; c < nrCpuIds; c++) n += I32[(perCpuBlock(c) >> 2) + GS_I + w]!;
  return n;
}

/** IRQ work handler id of the deferred drops (fixed table: src/alloc/irq_work.ts ids). */
export const IRQ_WORK_GRAPH_DROP = 2;
const RCU_KIND_OBJ_FREE = defineRcuKind('bpf_obj.free_rcu');

function rI(off: number): number { return (graphRegion() + off) >> 2; }
function ma(): number { return I32[rI(R_MA)]!; }

/**
 * Main thread, at boot: the region (type table and accounting) and every CPU's irq_work. The
 * allocator itself comes with the first program that declares types (bpfGlobalMaInit).
 */
export function graphGlobalInit(): void {
  const r = kzalloc(REGION_BYTES, OWNER_KERNEL);
  if (r === 0) throw new Error('graph: no kernel memory for the object type table');
  Atomics.store(I32, HDR_GRAPH_BASE >> 2, r);
  for (let c = 0; c < nrCpuIds; c++) initIrqWork(perCpuBlock(c) + PC_GRAPH_IRQ_WORK, IRQ_WORK_GRAPH_DROP);
}

/** Main thread: create bpf_global_ma once (before the first program that allocates objects runs). */
export function bpfGlobalMaInit(): void {
  if (graphRegion() === 0 || ma() !== 0) return;
  const m = bpfMemAllocInit(0, false, allocOwner('bpf_global_ma'));
  if (m < 0) throw new Error(`graph: bpf_global_ma could not be created (${m})`);
  Atomics.store(I32, rI(R_MA), m);
}

/** bpf_obj_new(type): an owning pointer to a zeroed object, or 0 (no memory, no allocator). */
export function bpfObjNew(t: TypeInfo): number {
  const m = ma();
  const raw = m === 0 ? 0 : bpfMemAlloc(m, t.size + OBJ_HDR);
  if (raw === 0) { bump(GS_ALLOC_FAIL); return 0; }
  const p = raw + OBJ_HDR;
  U8.fill(0, p, p + t.size);
  if (t.refOff >= 0) I32[(p + t.refOff) >> 2] = 1;
  I32[(p + OBJ_LINK) >> 2] = 0;
  Atomics.store(I32, (p + OBJ_TYPE) >> 2, t.id | (OBJ_MAGIC << 16));
  bump(GS_ALLOCS);
  return p;
}

/** The type of the live object at `p`, or undefined (not an object, or already dropped). */
export function objType(p: number): TypeInfo | undefined {
  if (!(p >= OBJ_HDR) || (p & 7) !== 0 || graphRegion() === 0) return undefined;
  const w = Atomics.load(I32, (p + OBJ_TYPE) >> 2);
  if ((w >>> 16) !== OBJ_MAGIC) return undefined;
  return typeInfo(w & 0xffff);
}

/** bpf_refcount_acquire(p): refcount_inc_not_zero; true if a reference was taken. */
export function bpfRefcountAcquire(p: number, t: TypeInfo): boolean {
  if (t.refOff < 0) return false;
  const i = (p + t.refOff) >> 2;
  for (;;) {
    const c = Atomics.load(I32, i);
    if (c <= 0) return false;
    if (Atomics.compareExchange(I32, i, c, c + 1) === c) return true;
  }
}

// nodes detached by a teardown, dropped after the lock is released (per thread, reused)
const work: number[] = [];
const workTypes: number[] = [];

/**
 * bpf_obj_drop(p): drop one reference to the object (the caller's owning reference). Any
 * context; in NMI an object with roots is deferred to irq_work.
 */
export function bpfObjDrop(p: number, t: TypeInfo): void {
  if (t.refOff >= 0) {
    const left = Atomics.sub(I32, (p + t.refOff) >> 2, 1) - 1;
    if (left > 0) return;
    if (left < 0) {
      Atomics.add(I32, rI(R_REFCNT_ERR), 1);
      splat('use_after_free', `bpf_obj_drop: refcount of ${t.name} object 0x${p.toString(16)} went below zero`);
      return;
    }
  }
  if (t.roots.length > 0 && inNmi()) { deferDrop(p); return; }
  const base = work.length;
  objFree(p, t);
  drainWork(base);
}

function deferDrop(p: number): void {
  bump(GS_DEFERRED);
  const head = pcpu + PC_GRAPH_DEFER;
  if (llistAdd(head, p + OBJ_LINK, 0)) irqWorkQueue(perCpuBlock(thisCpu) + PC_GRAPH_IRQ_WORK);
}

/** irq_work: drop the objects an NMI deferred on this CPU (hardirq, irqs off). */
function runDeferred(): void {
  let n = llistDelAll(pcpu + PC_GRAPH_DEFER);
  while (n !== 0) {
    const next = I32[n >> 2]!;
    const p = n - OBJ_LINK;
    I32[n >> 2] = 0;
    const t = objType(p);
    if (t === undefined) splat('use_after_free', `graph: a deferred drop met a dead object at 0x${p.toString(16)}`);
    else { const base = work.length; objFree(p, t); drainWork(base); }
    n = next;
  }
}

registerIrqWork(IRQ_WORK_GRAPH_DROP, {
  name: 'bpf_obj_drop_deferred',
  run(): void { runDeferred(); },
  rtRun(): boolean { runDeferred(); return true; },
});

/** Tear the object's roots down (nodes onto `work`) and free it. */
function objFree(p: number, t: TypeInfo): void {
  if (t.roots.length > 0) detachRoots(p, t.lockOff, t.roots, `${t.name} object 0x${p.toString(16)}`);
  Atomics.store(I32, (p + OBJ_TYPE) >> 2, 0);
  bump(GS_FREES);
  const raw = p - OBJ_HDR;
  if (t.refOff >= 0) {
    // a non-owning reference may still be read inside another CPU's critical section
    Atomics.add(I32, rI(R_RCU_PENDING), 1);
    callRcuHead(raw, RCU_KIND_OBJ_FREE);
  } else {
    bpfMemFree(ma(), raw);
  }
}

registerRcuCallback(RCU_KIND_OBJ_FREE, (raw: number) => {
  Atomics.sub(I32, rI(R_RCU_PENDING), 1);
  bpfMemFree(ma(), raw);
});

/** Detach every root of the allocation at `base` under its lock; the nodes go onto `work`. */
function detachRoots(base: number, lockOff: number, roots: TypeInfo['roots'], what: string): void {
  const lock = base + lockOff;
  // An NMI tearing down a value whose lock the context it interrupted holds (a program deleting
  // the element another program on this CPU is inside): that context is frozen at a window, where
  // every root is consistent (no kfunc passes a window), so the NMI detaches without the lock;
  // the nodes' drops go to irq_work, which runs once that critical section (irqs off) is over.
  const w = Atomics.load(I32, lock >> 2);
  const frozenHolder = inNmi() && w !== 0 && (w & 0xff) === thisCpu + 1;
  const err = frozenHolder ? 0 : rawSpinLockIrqsave(lock, LC_BPF_SPIN_LOCK);
  if (err !== 0) {
    splat('leak', `graph: teardown of ${what} could not take its bpf_spin_lock (${err}): its nodes leak`);
    return;
  }
  for (const r of roots) {
    const start = work.length;
    if (r.kind === FK_LIST_HEAD) bpfListTakeAll(base + r.off, work);
    else bpfRbtreeTakeAll(base + r.off, work);
    for (let i = start; i < work.length; i++) { work[i] = work[i]! - r.nodeOff; workTypes[i] = r.typeId; }
  }
  if (!frozenHolder) rawSpinUnlockIrqrestore(lock);
}

/** Drop every node detached since `base` (and the nodes they hold), outside any lock. */
function drainWork(base: number): void {
  while (work.length > base) {
    const p = work.pop()!;
    const tid = workTypes.pop()!;
    const t = typeInfo(tid);
    if (t === undefined) { splat('leak', `graph: a node of undefined type ${typeName(tid)} at 0x${p.toString(16)} cannot be freed`); continue; }
    bump(GS_TEARDOWN_NODES);
    if (t.refOff >= 0) {
      const left = Atomics.sub(I32, (p + t.refOff) >> 2, 1) - 1;
      if (left > 0) continue;
    }
    // in NMI a node is never freed under the interrupted context's feet (it may still read it
    // through a non-owning reference until its critical section ends): irq_work frees it
    if (inNmi()) deferDrop(p); else objFree(p, t);
  }
}

/**
 * bpf_list_head_free / bpf_rb_root_free for one root of a map value (btf_record.ts): detach
 * under the value's lock, drop the nodes outside it.
 */
function freeValueRoots(value: number, lockOff: number, roots: TypeInfo['roots']): void {
  if (graphRegion() === 0) return;
  const base = work.length;
  detachRoots(value, lockOff, roots, `map value 0x${value.toString(16)}`);
  drainWork(base);
}

registerGraphFieldOps({ declareType: btfDeclareType, freeRoots: freeValueRoots });

export interface GraphObjStats {
  /** objects allocated and not yet freed (a refcounted one waiting for its grace period is freed) */
  readonly live: number;
  readonly allocs: number;
  readonly frees: number;
  readonly allocFailures: number;
  /** drops deferred from NMI to irq_work */
  readonly deferred: number;
  /** deferrals that could not be made (always 0: the object's header is the link) */
  readonly deferFailures: number;
  /** refcounted objects freed and waiting for a grace period before their memory is reused */
  readonly rcuPending: number;
  /** nodes dropped by teardowns (element delete, map free, object drop, abort) */
  readonly teardownNodes: number;
  /** refcount underflows seen (a bug: each also splats) */
  readonly refcountErrors: number;
}

export function graphObjStats(): GraphObjStats {
  if (graphRegion() === 0) return { live: 0, allocs: 0, frees: 0, allocFailures: 0, deferred: 0, deferFailures: 0, rcuPending: 0, teardownNodes: 0, refcountErrors: 0 };
  const rd = (o: number): number => Atomics.load(I32, rI(o));
  const allocs = sumStat(GS_ALLOCS), frees = sumStat(GS_FREES);
  return {
    live: allocs - frees, allocs, frees, allocFailures: sumStat(GS_ALLOC_FAIL), deferred: sumStat(GS_DEFERRED),
    deferFailures: rd(R_DEFER_FAIL), rcuPending: rd(R_RCU_PENDING), teardownNodes: sumStat(GS_TEARDOWN_NODES), refcountErrors: rd(R_REFCNT_ERR),
  };
}

/** Accounting invariants at a quiescent point: never more frees than allocations, no refcount underflow. */
export function graphObjCheck(): string[] {
  const s = graphObjStats();
  const out: string[] = [];
  if (s.live < 0) out.push(`graph objects: ${s.frees} frees for ${s.allocs} allocations (a double free)`);
  if (s.refcountErrors !== 0) out.push(`graph objects: ${s.refcountErrors} refcount underflow(s)`);
  if (s.deferFailures !== 0) out.push(`graph objects: ${s.deferFailures} deferred drop(s) lost`);
  return out;
}
