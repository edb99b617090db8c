/*
 * bpf_lru_list.ts — the LRU behind lru_hash / lru_percpu_hash (kernel/bpf/bpf_lru_list.{h,c};
 * reference §2.10). Always preallocated: every element is on exactly one LRU list for its life.
 *
 * Layout (one kzalloc'd block, 128-byte aligned here, one 128-byte line per piece):
 *   line 0   struct bpf_lru: LRU_RAW (kmalloc ptr), LRU_PERCPU (0 common / 1 per-CPU),
 *            LRU_NR_SCANS, LRU_HASH_OFFSET (signed: node -> element's hash word), LRU_NR_LISTS,
 *            LRU_TARGET_FREE
 *   common:  line 1 the global bpf_lru_list; line 2 + c CPU c's bpf_lru_locallist
 *   per-CPU: line 1 + c CPU c's private bpf_lru_list
 *   bpf_lru_list:      lists[ACTIVE, INACTIVE, FREE] (list_head {next, prev} each), counts[ACTIVE,
 *                      INACTIVE], next_inactive_rotation (a list_head address), lock
 *   bpf_lru_locallist: lists[LOCAL_FREE, LOCAL_PENDING], next_steal, lock
 *   bpf_lru_node (inside the element, htab_layout.ts LN_*): next, prev, cpu u16, type u8, ref u8
 *
 * Invariants: a node is on exactly one list and its `type` names that list; counts[] equal the
 * active/inactive list lengths; a node on a FREE or LOCAL_FREE list is in no hash bucket.
 *
 * Locking: the global list lock (LC_LRU) protects the global lists and counts; a local list lock
 * (LC_LRU_LOCAL, irqsave) protects that CPU's free/pending lists and next_steal; a per-CPU LRU
 * list has its own LC_LRU lock. Order: local lock -> global lock -> bucket lock (shrinking calls
 * del_from_htab, which takes a bucket lock). Hashtab never takes an LRU lock under a bucket lock.
 * `ref` is set racily by lookups (a byte store) and read racily here, as in the kernel.
 * Ordering (docs/INTERNALS.md, "Memory-ordering contract"): no LRU list is ever walked without its
 * lock, so list links, counts and next_steal are plain loads and stores (the lock's Atomics order
 * them). `ref`, and pushFree's first look at `type` and `cpu`, are racy hints read plainly: a stale
 * value costs accuracy, never safety (`type` is checked again under the lock). The element's
 * hash-chain links are hashtab.ts's, published with Atomics.store.
 *
 * Contexts: any CPU, any context. A lock acquisition can fail (AA from an NMI/kprobe over a holder
 * on this CPU, or timeout; the lock layer splats): pop then returns 0 (update: -ENOMEM) and a
 * push loses the node, as the 2025 kernel (rqspinlock) does; check() reports the loss.
 *
 * Differences from the kernel: target_free is the 2025 rule clamp(nr_elems / ncpus / 2, 1, 128)
 * (LOCAL_FREE_TARGET 128 before); "possible CPUs" are all CPU ids including the housekeeping CPU.
 */
import { I32, U8, U16, nrCpuIds } from '../mem/arena.js';
import { thisCpu } from '../mem/this_cpu.js';
import { CACHELINE } from '../mem/layout.js';
import { kzalloc, kfree } from '../mm/slab.js';
import { window } from '../cpu/window.js';
import { defineSite } from '../cpu/sites.js';
import {
  rawSpinLock, rawSpinUnlock, rawSpinLockIrqsave, rawSpinUnlockIrqrestore,
} from '../locks/raw_spinlock.js';
import { LC_LRU, LC_LRU_LOCAL } from '../locks/lock_classes.js';
import { LN_NEXT, LN_PREV, LN_CPU, LN_TYPE, LN_REF } from './htab_layout.js';

// list types
export const BPF_LRU_LIST_T_ACTIVE = 0;
export const BPF_LRU_LIST_T_INACTIVE = 1;
export const BPF_LRU_LIST_T_FREE = 2;
export const BPF_LRU_LOCAL_LIST_T_FREE = 3;
export const BPF_LRU_LOCAL_LIST_T_PENDING = 4;
const NR_BPF_LRU_LIST_COUNT = 2;

export const LOCAL_FREE_TARGET_MAX = 128;
export const LOCAL_NR_SCANS = 128;
export const PERCPU_FREE_TARGET = 4;
export const PERCPU_NR_SCANS = 4;

// struct bpf_lru (line 0)
const LRU_RAW = 0;
const LRU_PERCPU = 4;
const LRU_NR_SCANS = 8;
const LRU_HASH_OFFSET = 12;
const LRU_NR_LISTS = 16;
const LRU_TARGET_FREE = 20;
// struct bpf_lru_list
const LL_LISTS = 0;          // 3 × list_head
const LL_COUNTS = 24;        // 2 × u32
const LL_NEXT_INACTIVE_ROT = 32;
const LL_LOCK = 36;
// struct bpf_lru_locallist
const LOC_LISTS = 0;         // [LOCAL_FREE, LOCAL_PENDING]
const LOC_NEXT_STEAL = 16;
const LOC_LOCK = 20;

const SITE_POP_LOCKED = defineSite('bpf_lru.pop.locked');
const SITE_SHRINK_LOCKED = defineSite('bpf_lru.pop_free_to_local.locked');
const SITE_PUSH_LOCKED = defineSite('bpf_lru.push.locked');

/** del_from_htab: unlink the element owning `node` from its bucket (takes the bucket lock); true on success. */
export type DelFromHtab = (node: number) => boolean;

// ---- list_head helpers (a list_head is {next @0, prev @4}; nodes have the same shape) ----
function listInit(h: number): void { I32[h >> 2] = h; I32[(h >> 2) + 1] = h; }
function listEmpty(h: number): boolean { return I32[h >> 2] === h; }
function listAdd(n: number, h: number): void {
  const next = I32[h >> 2]!;
  I32[(next + LN_PREV) >> 2] = n;
  I32[(n + LN_NEXT) >> 2] = next;
  I32[(n + LN_PREV) >> 2] = h;
  I32[h >> 2] = n;
}
function listDel(n: number): void {
  const next = I32[(n + LN_NEXT) >> 2]!;
  const prev = I32[(n + LN_PREV) >> 2]!;
  I32[(next + LN_PREV) >> 2] = prev;
  I32[(prev + LN_NEXT) >> 2] = next;
}
function listMove(n: number, h: number): void { listDel(n); listAdd(n, h); }

function isLocalType(t: number): boolean { return t >= BPF_LRU_LOCAL_LIST_T_FREE; }

/** bpf_lru_init() + allocation of the block. Returns the struct bpf_lru pointer or 0. */
export function bpfLruAlloc(owner: number, percpu: boolean, hashOffset: number, nrElems: number): number {
  const nr = nrCpuIds;
  const lines = percpu ? 1 + nr : 2 + nr;
  const raw = kzalloc((lines + 1) * CACHELINE, owner);
  if (raw === 0) return 0;
  const s = (raw + CACHELINE - 1) & ~(CACHELINE - 1);
  I32[(s + LRU_RAW) >> 2] = raw;
  I32[(s + LRU_PERCPU) >> 2] = percpu ? 1 : 0;
  I32[(s + LRU_HASH_OFFSET) >> 2] = hashOffset;
  I32[(s + LRU_NR_LISTS) >> 2] = nr;
  if (percpu) {
    I32[(s + LRU_NR_SCANS) >> 2] = PERCPU_NR_SCANS;
    for (let c = 0; c < nr; c++) lruListInit(s + CACHELINE + c * CACHELINE);
  } else {
    I32[(s + LRU_NR_SCANS) >> 2] = LOCAL_NR_SCANS;
    const tf = Math.max(1, Math.min(LOCAL_FREE_TARGET_MAX, Math.floor(nrElems / nr / 2)));
    I32[(s + LRU_TARGET_FREE) >> 2] = tf;
    lruListInit(s + CACHELINE);
    for (let c = 0; c < nr; c++) {
      const loc = s + 2 * CACHELINE + c * CACHELINE;
      listInit(loc + LOC_LISTS);
      listInit(loc + LOC_LISTS + 8);
      I32[(loc + LOC_NEXT_STEAL) >> 2] = c;
    }
  }
  return s;
}

function lruListInit(l: number): void {
  for (let i = 0; i < 3; i++) listInit(l + LL_LISTS + i * 8);
  I32[(l + LL_COUNTS) >> 2] = 0;
  I32[(l + LL_COUNTS + 4) >> 2] = 0;
  I32[(l + LL_NEXT_INACTIVE_ROT) >> 2] = l + LL_LISTS + BPF_LRU_LIST_T_INACTIVE * 8;
}

export function bpfLruDestroy(s: number): void {
  if (s !== 0) kfree(I32[(s + LRU_RAW) >> 2]!);
}

/**
 * One thread's handle on a struct bpf_lru. `delFromHtab` is the hashtab's
 * htab_lru_map_delete_node for this thread.
 */
export class BpfLru {
  readonly ptr: number;
  readonly percpu: boolean;
  readonly #nrScans: number;
  readonly #hashOffset: number;
  readonly #nrLists: number;
  readonly #targetFree: number;
  readonly #del: DelFromHtab;

  constructor(ptr: number, delFromHtab: DelFromHtab) {
    this.ptr = ptr;
    this.percpu = I32[(ptr + LRU_PERCPU) >> 2] !== 0;
    this.#nrScans = I32[(ptr + LRU_NR_SCANS) >> 2]!;
    this.#hashOffset = I32[(ptr + LRU_HASH_OFFSET) >> 2]!;
    this.#nrLists = I32[(ptr + LRU_NR_LISTS) >> 2]!;
    this.#targetFree = I32[(ptr + LRU_TARGET_FREE) >> 2]!;
    this.#del = delFromHtab;
  }

  /** The global list (common LRU) or CPU `cpu`'s list (per-CPU LRU). */
  list(cpu: number): number {
    return this.percpu ? this.ptr + CACHELINE + cpu * CACHELINE : this.ptr + CACHELINE;
  }
  local(cpu: number): number { return this.ptr + 2 * CACHELINE + cpu * CACHELINE; }

  // ---- list primitives (caller holds the list's lock) ----

  #countInc(l: number, t: number): void {
    if (t < NR_BPF_LRU_LIST_COUNT) I32[(l + LL_COUNTS + t * 4) >> 2] = I32[(l + LL_COUNTS + t * 4) >> 2]! + 1;
  }
  #countDec(l: number, t: number): void {
    if (t < NR_BPF_LRU_LIST_COUNT) I32[(l + LL_COUNTS + t * 4) >> 2] = I32[(l + LL_COUNTS + t * 4) >> 2]! - 1;
  }

  /** __bpf_lru_node_move_to_free */
  #moveToFree(l: number, node: number, freeList: number, tgtType: number): void {
    const t = U8[node + LN_TYPE]!;
    if (isLocalType(t)) return; // WARN_ON_ONCE in the kernel
    if (node === I32[(l + LL_NEXT_INACTIVE_ROT) >> 2]) {
      I32[(l + LL_NEXT_INACTIVE_ROT) >> 2] = I32[(node + LN_PREV) >> 2]!;
    }
    this.#countDec(l, t);
    U8[node + LN_TYPE] = tgtType;
    listMove(node, freeList);
  }

  /** __bpf_lru_node_move_in: local list -> LRU list */
  #moveIn(l: number, node: number, tgtType: number): void {
    this.#countInc(l, tgtType);
    U8[node + LN_TYPE] = tgtType;
    U8[node + LN_REF] = 0;
    listMove(node, l + LL_LISTS + tgtType * 8);
  }

  /** __bpf_lru_node_move: within/between active, inactive (and free) */
  #move(l: number, node: number, tgtType: number): void {
    const t = U8[node + LN_TYPE]!;
    if (t !== tgtType) {
      this.#countDec(l, t);
      this.#countInc(l, tgtType);
      U8[node + LN_TYPE] = tgtType;
    }
    U8[node + LN_REF] = 0;
    if (node === I32[(l + LL_NEXT_INACTIVE_ROT) >> 2]) {
      I32[(l + LL_NEXT_INACTIVE_ROT) >> 2] = I32[(node + LN_PREV) >> 2]!;
    }
    listMove(node, l + LL_LISTS + tgtType * 8);
  }

  #rotateActive(l: number): void {
    const active = l + LL_LISTS + BPF_LRU_LIST_T_ACTIVE * 8;
    const first = I32[active >> 2]!;
    let node = I32[(active + LN_PREV) >> 2]!;
    let i = 0;
    while (node !== active) {
      const prev = I32[(node + LN_PREV) >> 2]!;
      if (U8[node + LN_REF] !== 0) this.#move(l, node, BPF_LRU_LIST_T_ACTIVE);
      else this.#move(l, node, BPF_LRU_LIST_T_INACTIVE);
      if (++i === this.#nrScans || node === first) break;
      node = prev;
    }
  }

  #rotateInactive(l: number): void {
    const inactive = l + LL_LISTS + BPF_LRU_LIST_T_INACTIVE * 8;
    if (listEmpty(inactive)) return;
    const rot = I32[(l + LL_NEXT_INACTIVE_ROT) >> 2]!;
    let last = I32[(rot + LN_NEXT) >> 2]!;
    if (last === inactive) last = I32[(last + LN_NEXT) >> 2]!;
    let cur = rot;
    let next = cur;
    let i = 0;
    while (i < this.#nrScans) {
      if (cur === inactive) { cur = I32[(cur + LN_PREV) >> 2]!; continue; }
      next = I32[(cur + LN_PREV) >> 2]!;
      if (U8[cur + LN_REF] !== 0) this.#move(l, cur, BPF_LRU_LIST_T_ACTIVE);
      if (cur === last) break;
      cur = next;
      i++;
    }
    I32[(l + LL_NEXT_INACTIVE_ROT) >> 2] = next;
  }

  #shrinkInactive(l: number, tgt: number, freeList: number, tgtFreeType: number): number {
    const inactive = l + LL_LISTS + BPF_LRU_LIST_T_INACTIVE * 8;
    let node = I32[(inactive + LN_PREV) >> 2]!;
    let n = 0;
    let i = 0;
    while (node !== inactive) {
      const prev = I32[(node + LN_PREV) >> 2]!;
      if (U8[node + LN_REF] !== 0) {
        this.#move(l, node, BPF_LRU_LIST_T_ACTIVE);
      } else if (this.#del(node)) {
        this.#moveToFree(l, node, freeList, tgtFreeType);
        if (++n === tgt) break;
      }
      if (++i === this.#nrScans) break;
      node = prev;
    }
    return n;
  }

  #rotate(l: number): void {
    if (I32[(l + LL_COUNTS + 4) >> 2]! < I32[(l + LL_COUNTS) >> 2]!) this.#rotateActive(l);
    this.#rotateInactive(l);
  }

  /** __bpf_lru_list_shrink: shrink inactive honouring ref, else force-remove one node. */
  #shrink(l: number, tgt: number, freeList: number, tgtFreeType: number): number {
    const n = this.#shrinkInactive(l, tgt, freeList, tgtFreeType);
    if (n !== 0) return n;
    const inactive = l + LL_LISTS + BPF_LRU_LIST_T_INACTIVE * 8;
    const force = listEmpty(inactive) ? l + LL_LISTS + BPF_LRU_LIST_T_ACTIVE * 8 : inactive;
    let node = I32[(force + LN_PREV) >> 2]!;
    while (node !== force) {
      const prev = I32[(node + LN_PREV) >> 2]!;
      if (this.#del(node)) {
        this.#moveToFree(l, node, freeList, tgtFreeType);
        return 1;
      }
      node = prev;
    }
    return 0;
  }

  /** __local_list_flush: pending -> active (ref'd) / inactive. Global lock held. */
  #localFlush(l: number, loc: number): void {
    const pending = loc + LOC_LISTS + 8;
    let node = I32[(pending + LN_PREV) >> 2]!;
    while (node !== pending) {
      const prev = I32[(node + LN_PREV) >> 2]!;
      this.#moveIn(l, node, U8[node + LN_REF] !== 0 ? BPF_LRU_LIST_T_ACTIVE : BPF_LRU_LIST_T_INACTIVE);
      node = prev;
    }
  }

  /** bpf_lru_list_pop_free_to_local. Local lock held (irqs off). */
  #popFreeToLocal(loc: number): void {
    const l = this.list(0);
    if (rawSpinLock(l + LL_LOCK, LC_LRU) !== 0) return;
    this.#localFlush(l, loc);
    this.#rotate(l);
    const free = l + LL_LISTS + BPF_LRU_LIST_T_FREE * 8;
    const localFree = loc + LOC_LISTS;
    let nfree = 0;
    const target = this.#targetFree;
    let node = I32[free >> 2]!;
    while (node !== free) {
      const next = I32[(node + LN_NEXT) >> 2]!;
      this.#moveToFree(l, node, localFree, BPF_LRU_LOCAL_LIST_T_FREE);
      if (++nfree === target) break;
      node = next;
    }
    if (nfree < target) this.#shrink(l, target - nfree, localFree, BPF_LRU_LOCAL_LIST_T_FREE);
    window(SITE_SHRINK_LOCKED);
    rawSpinUnlock(l + LL_LOCK);
  }

  #addPending(loc: number, cpu: number, node: number, hash: number): void {
    I32[(node + this.#hashOffset) >> 2] = hash;
    U16[(node + LN_CPU) >> 1] = cpu;
    U8[node + LN_TYPE] = BPF_LRU_LOCAL_LIST_T_PENDING;
    U8[node + LN_REF] = 0;
    listAdd(node, loc + LOC_LISTS + 8);
  }

  #localPopFree(loc: number): number {
    const h = loc + LOC_LISTS;
    if (listEmpty(h)) return 0;
    const node = I32[h >> 2]!;
    listDel(node);
    return node;
  }

  #localPopPending(loc: number): number {
    const pending = loc + LOC_LISTS + 8;
    for (let force = 0; force < 2; force++) {
      let node = I32[(pending + LN_PREV) >> 2]!;
      while (node !== pending) {
        const prev = I32[(node + LN_PREV) >> 2]!;
        if ((U8[node + LN_REF] === 0 || force === 1) && this.#del(node)) {
          listDel(node);
          return node;
        }
        node = prev;
      }
    }
    return 0;
  }

  #percpuPopFree(hash: number): number {
    const l = this.list(thisCpu);
    if (rawSpinLockIrqsave(l + LL_LOCK, LC_LRU) !== 0) return 0;
    this.#rotate(l);
    const free = l + LL_LISTS + BPF_LRU_LIST_T_FREE * 8;
    if (listEmpty(free)) this.#shrink(l, PERCPU_FREE_TARGET, free, BPF_LRU_LIST_T_FREE);
    let node = 0;
    if (!listEmpty(free)) {
      node = I32[free >> 2]!;
      I32[(node + this.#hashOffset) >> 2] = hash;
      U8[node + LN_REF] = 0;
      this.#move(l, node, BPF_LRU_LIST_T_INACTIVE);
    }
    window(SITE_POP_LOCKED);
    rawSpinUnlockIrqrestore(l + LL_LOCK);
    return node;
  }

  #commonPopFree(hash: number): number {
    const cpu = thisCpu;
    const loc = this.local(cpu);
    if (rawSpinLockIrqsave(loc + LOC_LOCK, LC_LRU_LOCAL) !== 0) return 0;
    let node = this.#localPopFree(loc);
    if (node === 0) {
      this.#popFreeToLocal(loc);
      node = this.#localPopFree(loc);
    }
    if (node !== 0) this.#addPending(loc, cpu, node, hash);
    window(SITE_POP_LOCKED);
    rawSpinUnlockIrqrestore(loc + LOC_LOCK);
    if (node !== 0) return node;

    // Nothing local or global: steal round-robin from the free, then pending, lists of every CPU.
    const first = I32[(loc + LOC_NEXT_STEAL) >> 2]!;
    let steal = first;
    do {
      const sl = this.local(steal);
      if (rawSpinLockIrqsave(sl + LOC_LOCK, LC_LRU_LOCAL) === 0) {
        node = this.#localPopFree(sl);
        if (node === 0) node = this.#localPopPending(sl);
        rawSpinUnlockIrqrestore(sl + LOC_LOCK);
      }
      steal = steal + 1 >= this.#nrLists ? 0 : steal + 1;
    } while (node === 0 && steal !== first);
    I32[(loc + LOC_NEXT_STEAL) >> 2] = steal;
    if (node !== 0) {
      if (rawSpinLockIrqsave(loc + LOC_LOCK, LC_LRU_LOCAL) !== 0) {
        // Cannot queue it as pending here: hand it back to the global free list.
        this.#pushToList(this.list(0), node);
        return 0;
      }
      this.#addPending(loc, cpu, node, hash);
      rawSpinUnlockIrqrestore(loc + LOC_LOCK);
    }
    return node;
  }

  /** bpf_lru_pop_free(): a free node (its hash word set) or 0. Call without any bucket lock. */
  popFree(hash: number): number {
    return this.percpu ? this.#percpuPopFree(hash) : this.#commonPopFree(hash);
  }

  #pushToList(l: number, node: number): void {
    if (rawSpinLockIrqsave(l + LL_LOCK, LC_LRU) !== 0) return; // lost (kernel 2025 does the same)
    // a node coming from a local list is not counted on this list: set the type directly
    const t = U8[node + LN_TYPE]!;
    if (isLocalType(t)) {
      U8[node + LN_TYPE] = BPF_LRU_LIST_T_FREE;
      U8[node + LN_REF] = 0;
      listAdd(node, l + LL_LISTS + BPF_LRU_LIST_T_FREE * 8);
    } else {
      this.#move(l, node, BPF_LRU_LIST_T_FREE);
    }
    window(SITE_PUSH_LOCKED);
    rawSpinUnlockIrqrestore(l + LL_LOCK);
  }

  /** bpf_lru_push_free(): give a node back (after an update failed, a delete, or a replace). */
  pushFree(node: number): void {
    const t = U8[node + LN_TYPE]!;
    if (t === BPF_LRU_LIST_T_FREE || t === BPF_LRU_LOCAL_LIST_T_FREE) return; // WARN_ON_ONCE
    if (this.percpu) {
      const l = this.list(U16[(node + LN_CPU) >> 1]!);
      if (rawSpinLockIrqsave(l + LL_LOCK, LC_LRU) !== 0) return;
      this.#move(l, node, BPF_LRU_LIST_T_FREE);
      window(SITE_PUSH_LOCKED);
      rawSpinUnlockIrqrestore(l + LL_LOCK);
      return;
    }
    if (t === BPF_LRU_LOCAL_LIST_T_PENDING) {
      const loc = this.local(U16[(node + LN_CPU) >> 1]!);
      if (rawSpinLockIrqsave(loc + LOC_LOCK, LC_LRU_LOCAL) === 0) {
        if (U8[node + LN_TYPE] === BPF_LRU_LOCAL_LIST_T_PENDING) {
          U8[node + LN_TYPE] = BPF_LRU_LOCAL_LIST_T_FREE;
          U8[node + LN_REF] = 0;
          listMove(node, loc + LOC_LISTS);
          window(SITE_PUSH_LOCKED);
          rawSpinUnlockIrqrestore(loc + LOC_LOCK);
          return;
        }
        rawSpinUnlockIrqrestore(loc + LOC_LOCK);
      } else {
        return; // lost
      }
    }
    this.#pushToList(this.list(0), node);
  }

  /** bpf_lru_populate(): all nodes onto the free list(s). No locking: the map is not visible yet. */
  populate(buf: number, nodeOffset: number, elemSize: number, nrElems: number): void {
    if (!this.percpu) {
      const l = this.list(0);
      const free = l + LL_LISTS + BPF_LRU_LIST_T_FREE * 8;
      for (let i = 0; i < nrElems; i++) {
        const node = buf + i * elemSize + nodeOffset;
        U8[node + LN_TYPE] = BPF_LRU_LIST_T_FREE;
        U8[node + LN_REF] = 0;
        listAdd(node, free);
      }
      return;
    }
    const per = Math.floor(nrElems / this.#nrLists);
    let i = 0;
    for (let cpu = 0; cpu < this.#nrLists && i < nrElems; cpu++) {
      const free = this.list(cpu) + LL_LISTS + BPF_LRU_LIST_T_FREE * 8;
      const n = cpu === this.#nrLists - 1 ? nrElems - i : per;
      for (let j = 0; j < n; j++, i++) {
        const node = buf + i * elemSize + nodeOffset;
        U16[(node + LN_CPU) >> 1] = cpu;
        U8[node + LN_TYPE] = BPF_LRU_LIST_T_FREE;
        U8[node + LN_REF] = 0;
        listAdd(node, free);
      }
    }
  }

  /** Racy count of nodes on free lists (global/per-CPU FREE and local FREE). */
  freeCount(limit: number): number {
    let n = 0;
    const count = (h: number): void => {
      let node = I32[h >> 2]!;
      let k = 0;
      while (node !== h && k++ < limit) { n++; node = I32[(node + LN_NEXT) >> 2]!; }
    };
    if (this.percpu) {
      for (let c = 0; c < this.#nrLists; c++) count(this.list(c) + LL_LISTS + BPF_LRU_LIST_T_FREE * 8);
    } else {
      count(this.list(0) + LL_LISTS + BPF_LRU_LIST_T_FREE * 8);
      for (let c = 0; c < this.#nrLists; c++) count(this.local(c) + LOC_LISTS);
    }
    return n;
  }

  /**
   * check(): walk every list; mark(node, type, where) for each node; list shape, node types,
   * counts and lock words are verified here. Quiescent use only.
   */
  check(limit: number, mark: (node: number, type: number, where: string) => void, out: string[]): void {
    const walk = (h: number, type: number, where: string): number => {
      let n = 0;
      let prev = h;
      let node = I32[h >> 2]!;
      while (node !== h) {
        if (++n > limit) { out.push(`lru: ${where} longer than ${limit} (cycle?)`); break; }
        if (node === 0 || (node & 3) !== 0) { out.push(`lru: ${where} has a bad link 0x${node.toString(16)}`); break; }
        if (I32[(node + LN_PREV) >> 2] !== prev) out.push(`lru: ${where}: node 0x${node.toString(16)} prev link is wrong`);
        const t = U8[node + LN_TYPE]!;
        if (t !== type) out.push(`lru: ${where}: node 0x${node.toString(16)} has type ${t}, expected ${type}`);
        mark(node, type, where);
        prev = node;
        node = I32[(node + LN_NEXT) >> 2]!;
      }
      if (node === h && I32[(h + LN_PREV) >> 2] !== prev) out.push(`lru: ${where}: head prev link is wrong`);
      return n;
    };
    const checkList = (l: number, name: string): void => {
      const lw = Atomics.load(I32, (l + LL_LOCK) >> 2);
      if (lw !== 0) out.push(`lru: ${name} lock word is 0x${lw.toString(16)}, expected 0`);
      const na = walk(l + LL_LISTS, BPF_LRU_LIST_T_ACTIVE, `${name} active`);
      const ni = walk(l + LL_LISTS + 8, BPF_LRU_LIST_T_INACTIVE, `${name} inactive`);
      walk(l + LL_LISTS + 16, BPF_LRU_LIST_T_FREE, `${name} free`);
      if (I32[(l + LL_COUNTS) >> 2] !== na) out.push(`lru: ${name} counts[active] = ${I32[(l + LL_COUNTS) >> 2]}, list has ${na}`);
      if (I32[(l + LL_COUNTS + 4) >> 2] !== ni) out.push(`lru: ${name} counts[inactive] = ${I32[(l + LL_COUNTS + 4) >> 2]}, list has ${ni}`);
    };
    if (this.percpu) {
      for (let c = 0; c < this.#nrLists; c++) checkList(this.list(c), `cpu ${c} list`);
      return;
    }
    checkList(this.list(0), 'global list');
    for (let c = 0; c < this.#nrLists; c++) {
      const loc = this.local(c);
      const lw = Atomics.load(I32, (loc + LOC_LOCK) >> 2);
      if (lw !== 0) out.push(`lru: cpu ${c} local list lock word is 0x${lw.toString(16)}, expected 0`);
      walk(loc + LOC_LISTS, BPF_LRU_LOCAL_LIST_T_FREE, `cpu ${c} local free`);
      walk(loc + LOC_LISTS + 8, BPF_LRU_LOCAL_LIST_T_PENDING, `cpu ${c} local pending`);
    }
  }
}
