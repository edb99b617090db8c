/*
 * percpu_freelist.ts — the per-CPU freelist that feeds preallocated hash maps
 * (kernel/bpf/percpu_freelist.{h,c}; reference §3).
 *
 * Layout (kernel memory, one kmalloc'd block aligned here to 128 bytes; every head has its own
 * 128-byte line so two CPUs never write the same line):
 *
 *   line 0              header: PFL_RAW (the kmalloc pointer to free), PFL_NR_HEADS (= nrCpuIds)
 *   line 1 + c          head of CPU c (c = 0 .. nrCpuIds-1):  +0 first (node ptr, 0 = empty)
 *                                                             +4 lock (raw spinlock word)
 *   line 1 + nrCpuIds   the extralist head, same shape
 *
 * A node is 4 bytes inside the caller's element: `next` (the hashtab puts it over
 * hash_node.pprev so that hash_node.next survives; see hashtab.ts).
 *
 * Invariants: a node is on at most one list; lists are LIFO; `first` and the `next` links of a
 * list change only under that head's lock; lists + in-use = everything ever populated.
 *
 * Locking: each head's raw spinlock protects its list. Push and pop run with irqs off (the
 * plain variants save and restore them; *IrqsOff expect them off, as the kernel's __ variants),
 * so only an NMI (or a kprobe at a window) can interrupt a holder on the same CPU. Therefore:
 *  - push never fails: this CPU's head, else (lock error) every other CPU's head in turn, then
 *    the extralist, round and round until one is taken;
 *  - pop peeks `first` without the lock (a full map costs O(ncpus) loads, not lock round trips,
 *    reference §8.4 #8), starts at this CPU and steals round-robin, then the extralist;
 *  - in NMI both use trylock only: an NMI may have interrupted this CPU's holder. A pop in NMI
 *    can therefore fail while elements exist (the map update then returns -E2BIG).
 * A lock error outside NMI (AA from a kprobe at a window, or a timeout) skips that head.
 *
 * Contexts: any CPU thread, any context. Populate and destroy: main thread, map not yet / no
 * longer visible.
 *
 * Differences from the kernel: the extralist is kept (the 2020–2024 design) as the last resort
 * of both paths; the 2025 kernel dropped it. Test fault FAULT_DROP_FREELIST_PUSH (HDR_FAULTS)
 * makes push lose the node, so tests can show check() catching a leak.
 */
import { I32, nrCpuIds } from '../mem/arena.js';
import { thisCpu } from '../mem/this_cpu.js';
import { CACHELINE, HDR_FAULTS, FAULT_DROP_FREELIST_PUSH } from '../mem/layout.js';
import { kzalloc, kfree } from '../mm/slab.js';
import { inNmi, localIrqSave, localIrqRestore } from '../cpu/context.js';
import { window } from '../cpu/window.js';
import { defineSite } from '../cpu/sites.js';
import { rawSpinLock, rawSpinTrylock, rawSpinUnlock } from '../locks/raw_spinlock.js';
import { LC_FREELIST_HEAD, LC_FREELIST_EXTRA } from '../locks/lock_classes.js';

export const PFL_RAW = 0;
export const PFL_NR_HEADS = 4;
export const PFH_FIRST = 0;
export const PFH_LOCK = 4;

const SITE_PUSH_LOCKED = defineSite('pcpu_freelist.push.locked');
const SITE_POP_LOCKED = defineSite('pcpu_freelist.pop.locked');

/** Byte pointer of CPU `cpu`'s head (cpu === nrHeads: the extralist). */
export function pcpuFreelistHead(s: number, cpu: number): number {
  return s + CACHELINE + cpu * CACHELINE;
}

export function pcpuFreelistExtra(s: number): number {
  return s + CACHELINE + I32[(s + PFL_NR_HEADS) >> 2]! * CACHELINE;
}

/** pcpu_freelist_init(): a zeroed freelist with one head per CPU id. Returns its pointer or 0. */
export function pcpuFreelistInit(owner: number): number {
  const nheads = nrCpuIds;
  const bytes = (nheads + 2) * CACHELINE;
  const raw = kzalloc(bytes + CACHELINE, owner);
  if (raw === 0) return 0;
  const s = (raw + CACHELINE - 1) & ~(CACHELINE - 1);
  I32[(s + PFL_RAW) >> 2] = raw;
  I32[(s + PFL_NR_HEADS) >> 2] = nheads;
  return s;
}

export function pcpuFreelistDestroy(s: number): void {
  if (s !== 0) kfree(I32[(s + PFL_RAW) >> 2]!);
}

/**
 * pcpu_freelist_populate(): `n` nodes at buf, buf + elemSize, …; CPU c gets n / ncpus nodes and
 * the first n % ncpus CPUs one more (the Nov 2022 rule). No locking: the map is not visible yet.
 */
export function pcpuFreelistPopulate(s: number, buf: number, elemSize: number, n: number): void {
  const nheads = I32[(s + PFL_NR_HEADS) >> 2]!;
  const per = Math.floor(n / nheads);
  const extra = n % nheads;
  let node = buf;
  for (let cpu = 0; cpu < nheads; cpu++) {
    const h = pcpuFreelistHead(s, cpu);
    const cnt = per + (cpu < extra ? 1 : 0);
    for (let j = 0; j < cnt; j++) {
      I32[node >> 2] = I32[(h + PFH_FIRST) >> 2]!;
      I32[(h + PFH_FIRST) >> 2] = node;
      node += elemSize;
    }
  }
}

/** Push under a head lock already held. */
function pushNodeLocked(h: number, node: number): void {
  I32[node >> 2] = I32[(h + PFH_FIRST) >> 2]!;
  Atomics.store(I32, (h + PFH_FIRST) >> 2, node);
}

/** Take a head's lock: trylock in NMI, the (failable) raw lock otherwise. */
function lockHead(h: number, cls: number, nmi: boolean): boolean {
  if (nmi) return rawSpinTrylock(h + PFH_LOCK, cls);
  return rawSpinLock(h + PFH_LOCK, cls) === 0;
}

/** __pcpu_freelist_push(): irqs already off. Never fails. */
export function pcpuFreelistPushIrqsOff(s: number, node: number): void {
  if ((I32[HDR_FAULTS >> 2]! & FAULT_DROP_FREELIST_PUSH) !== 0) return; // test fault: leak the node
  const nmi = inNmi();
  const nheads = I32[(s + PFL_NR_HEADS) >> 2]!;
  const me = thisCpu;
  let h = pcpuFreelistHead(s, me);
  if (lockHead(h, LC_FREELIST_HEAD, nmi)) {
    pushNodeLocked(h, node);
    window(SITE_PUSH_LOCKED);
    rawSpinUnlock(h + PFH_LOCK);
    return;
  }
  // This CPU's head is busy (NMI over its holder, AA, timeout): any other head, then the extralist.
  for (;;) {
    for (let i = 1; i < nheads; i++) {
      let cpu = me + i;
      if (cpu >= nheads) cpu -= nheads;
      h = pcpuFreelistHead(s, cpu);
      if (!lockHead(h, LC_FREELIST_HEAD, nmi)) continue;
      pushNodeLocked(h, node);
      window(SITE_PUSH_LOCKED);
      rawSpinUnlock(h + PFH_LOCK);
      return;
    }
    h = pcpuFreelistExtra(s);
    if (lockHead(h, LC_FREELIST_EXTRA, nmi)) {
      pushNodeLocked(h, node);
      window(SITE_PUSH_LOCKED);
      rawSpinUnlock(h + PFH_LOCK);
      return;
    }
    if (nmi) { h = pcpuFreelistHead(s, me); if (lockHead(h, LC_FREELIST_HEAD, true)) { pushNodeLocked(h, node); rawSpinUnlock(h + PFH_LOCK); return; } }
  }
}

/** pcpu_freelist_push(): saves and restores irqs. */
export function pcpuFreelistPush(s: number, node: number): void {
  const f = localIrqSave();
  pcpuFreelistPushIrqsOff(s, node);
  localIrqRestore(f);
}

/** Pop from one head; 0 when empty or its lock was not taken. */
function popHead(h: number, cls: number, nmi: boolean): number {
  if (I32[(h + PFH_FIRST) >> 2] === 0) return 0; // lockless peek
  if (!lockHead(h, cls, nmi)) return 0;
  const node = I32[(h + PFH_FIRST) >> 2]!;
  if (node !== 0) Atomics.store(I32, (h + PFH_FIRST) >> 2, I32[node >> 2]!);
  window(SITE_POP_LOCKED);
  rawSpinUnlock(h + PFH_LOCK);
  return node;
}

/** __pcpu_freelist_pop(): irqs already off. Node pointer or 0. */
export function pcpuFreelistPopIrqsOff(s: number): number {
  const nmi = inNmi();
  const nheads = I32[(s + PFL_NR_HEADS) >> 2]!;
  let cpu = thisCpu;
  for (let i = 0; i < nheads; i++) {
    const node = popHead(pcpuFreelistHead(s, cpu), LC_FREELIST_HEAD, nmi);
    if (node !== 0) return node;
    if (++cpu >= nheads) cpu = 0;
  }
  return popHead(pcpuFreelistExtra(s), LC_FREELIST_EXTRA, nmi);
}

/** pcpu_freelist_pop(): saves and restores irqs. */
export function pcpuFreelistPop(s: number): number {
  const f = localIrqSave();
  const node = pcpuFreelistPopIrqsOff(s);
  localIrqRestore(f);
  return node;
}

/** Racy total length (statistics). Bounded by `limit` per list. */
export function pcpuFreelistCount(s: number, limit: number): number {
  const nheads = I32[(s + PFL_NR_HEADS) >> 2]!;
  let n = 0;
  for (let cpu = 0; cpu <= nheads; cpu++) {
    let node = Atomics.load(I32, (pcpuFreelistHead(s, cpu) + PFH_FIRST) >> 2);
    let k = 0;
    while (node !== 0 && k++ < limit) { n++; node = I32[node >> 2]!; }
  }
  return n;
}

/**
 * Walk every list (quiescent use: tests, check()). Calls visit(node, head index) for each node;
 * a list longer than `limit` is reported as a cycle. Lock words must be 0. Violations go to `out`.
 */
export function pcpuFreelistWalk(s: number, limit: number, visit: (node: number, head: number) => void, out: string[]): number {
  const nheads = I32[(s + PFL_NR_HEADS) >> 2]!;
  let total = 0;
  for (let cpu = 0; cpu <= nheads; cpu++) {
    const h = pcpuFreelistHead(s, cpu);
    const what = cpu === nheads ? 'extralist' : `cpu ${cpu} head`;
    const lw = Atomics.load(I32, (h + PFH_LOCK) >> 2);
    if (lw !== 0) out.push(`percpu_freelist: ${what} lock word is 0x${lw.toString(16)}, expected 0`);
    let node = Atomics.load(I32, (h + PFH_FIRST) >> 2);
    let k = 0;
    while (node !== 0) {
      if (++k > limit) { out.push(`percpu_freelist: ${what} has more than ${limit} nodes (cycle?)`); break; }
      visit(node, cpu);
      total++;
      node = I32[node >> 2]!;
    }
  }
  return total;
}
