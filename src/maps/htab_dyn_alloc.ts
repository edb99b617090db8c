/*
 * htab_dyn_alloc.ts — element allocators of BPF_F_NO_PREALLOC hash and per-CPU hash maps
 * (kernel/bpf/hashtab.c alloc_htab_elem / free_htab_elem / inc_elem_count / is_map_full, in two
 * eras; reference §2.5 step 5, §2.6, §2.7, §4), picked per runtime by dynAlloc (FLAG_DYN_KMALLOC):
 *   HtabMemAlloc     'bpf_mem_alloc' (v6.1+): elements from a fixed-size bpf_mem_alloc (ma), per-CPU
 *                    values from a per-CPU one (pcpu_ma: a 16-byte handle whose first word is the
 *                    area, kept at E_PTR); freed AFTER the bucket unlock and reusable at once
 *                    (readers rely on the nulls restart, as for prealloc). Raw bucket locks.
 *   HtabKmallocAlloc 'kmalloc' (≤ v6.0): kmalloc INSIDE the bucket lock (window
 *                    htab.update.kmalloc.locked), one call_rcu per freed element (rcu_head at E_RCU;
 *                    kfree after a grace period, never reused before). On PREEMPT_RT the bucket lock
 *                    is the sleeping spinlock_t (hashtab.ts), so tracing programs may not use them.
 * Count (HTAB_COUNT, per-CPU parts at HP_PCOUNT): bpf_mem_alloc uses a percpu_counter (batch 32)
 * when max_entries/2 > CPU ids × 32, else an atomic; "full" is checked BEFORE the increment, so
 * concurrent inserts may overshoot max_entries (htabDynOvershoot). kmalloc: atomic_inc_return >
 * max_entries → -E2BIG (exact). A replace in a full map is allowed; it counts the new element
 * before the old one is freed after the unlock, as the kernel (inc_elem_count in alloc_htab_elem,
 * dec_elem_count in free_htab_elem): between the two the count is one too high, and an insert
 * racing there (an NMI at htab.update.unlocked) sees a map with a free slot as full (-E2BIG) — the
 * kernel's behaviour, kept and tested (test/alloc/htab_dyn_fastpath.test.ts).
 * Memory: elements, value areas and caches are charged to the map's element owner
 * (HTAB_ELEM_OWNER), which outlives map_free until the deferred frees are done (the caches'
 * objcg reference): destroy() retires it; freeOwner splats 'leak' if bytes remain.
 * Locking/contexts: allocElem under the bucket lock (raw: any context incl. NMI — bpf_mem_alloc
 * returns NULL when `active` is busy; sleeping on RT for kmalloc maps); frees after the unlock;
 * count updates need no lock (Atomics.add; a per-CPU slot is read-modify-written with no window
 * in between). Init, freeOnDestroy, destroy: main thread. RCU callbacks touch only the element.
 * Differences from the kernel: the percpu_counter folds with an atomic add (its slot zeroed first) instead of under its spinlock, so a racing exact sum can only
 * under-count (an insert may overshoot; a map that is not full never reports E2BIG); "online
 * CPUs" = every CPU id; legacy frees call call_rcu after the unlock (the kernel did it inside; an
 * embedded head takes no lock).
 */
import { I32, arenaGeneration, nrCpuIds } from '../mem/arena.js';
import { thisCpu } from '../mem/this_cpu.js';
import { CACHELINE } from '../mem/layout.js';
import { kmalloc, kfree, ksize, kmemOwner, POISON_WORD } from '../mm/slab.js';
import { allocPercpu, freePercpu } from '../mm/percpu_alloc.js';
import { allocOwner, freeOwner, ownerBytes } from '../mm/owners.js';
import { window } from '../cpu/window.js';
import { defineSite } from '../cpu/sites.js';
import { splat } from '../debug/splat.js';
import { defineRcuKind, registerRcuCallback, callRcuHead, rcuBarrier } from '../rcu/rcu.js';
import {
  bpfMemAllocInit, bpfMemCacheAlloc, bpfMemCacheFree, bpfMemAllocDestroy, BMC_MA, LLIST_NODE_SZ,
} from '../alloc/bpf_mem_alloc.js';
import { E2BIG, ENOMEM } from '../errno.js';
import {
  HTAB_ALLOC_MODE, HTAB_ALLOC_BPF_MA, HTAB_ALLOC_KMALLOC, HTAB_COUNT, HTAB_MA, HTAB_PCPU_MA,
  HTAB_ELEM_OWNER, HTAB_DYN_FLAGS, HTAB_DYN_PERCPU_COUNTER, E_PTR, E_RCU,
  E_RCU_PPTR, E_NEXT, HP_PCOUNT,
} from './htab_layout.js';
import type { HtabElemAlloc } from './htab_alloc.js';

/** PERCPU_COUNTER_BATCH of hashtab.c. */
export const PERCPU_COUNTER_BATCH = 32;
/** Contexts that can be inside one map update on a CPU at once: task, softirq, hardirq, NMI. */
const NESTING = 4;

const SITE_KMALLOC_LOCKED = defineSite('htab.update.kmalloc.locked');

/** Legacy element frees: kfree (and free_percpu) after a grace period (htab_elem_free_rcu). */
const RCU_KIND_ELEM_FREE = defineRcuKind('htab.elem_free_rcu');
const RCU_KIND_PCPU_ELEM_FREE = defineRcuKind('htab.pcpu_elem_free_rcu');
registerRcuCallback(RCU_KIND_ELEM_FREE, (head: number) => { kfree(head - E_RCU); });
registerRcuCallback(RCU_KIND_PCPU_ELEM_FREE, (head: number) => {
  const l = head - E_RCU;
  freePercpu(I32[(l + E_RCU_PPTR) >> 2]!);
  kfree(l);
});

/** What the dynamic allocators need to know about the element layout. */
export interface HtabDynGeometry {
  readonly elemSize: number;
  /** offset of the value (per-CPU maps: of the pptr word) in the element */
  readonly valOff: number;
  /** round_up(value_size, 8) */
  readonly vsz: number;
  readonly percpu: boolean;
  readonly maxEntries: number;
}

/** use_percpu_counter (reference §2.7; "online CPUs" = every CPU id). */
export function htabUsePercpuCounter(maxEntries: number): boolean {
  return Math.floor(maxEntries / 2) > nrCpuIds * PERCPU_COUNTER_BATCH;
}

/**
 * How far concurrent inserts of a bpf_mem_alloc map can push the live count past max_entries: every
 * update that can be in flight at once (CPU ids × nesting contexts) may pass the full check before
 * the others' increments land; with the percpu counter each may also miss one fold in progress
 * (< batch). The legacy atomic_inc_return is exact (0).
 */
export function htabDynOvershoot(mode: number, percpuCounter: boolean): number {
  if (mode !== HTAB_ALLOC_BPF_MA) return 0;
  const racers = nrCpuIds * NESTING;
  return percpuCounter ? racers * PERCPU_COUNTER_BATCH : racers - 1;
}

/**
 * htab_map_alloc's dynamic part (main thread): the element owner, the allocator(s), the count.
 * Writes HTAB_ALLOC_MODE, HTAB_COUNT and HTAB_ALLOC_PRIV of the map at `ptr`. Returns 0, or
 * -ENOMEM after undoing everything it took.
 */
export function htabDynAllocInit(ptr: number, mode: number, g: HtabDynGeometry, ownerLabel: string): number {
  let owner: number;
  try {
    owner = allocOwner(`${ownerLabel}.elems`);
  } catch {
    return -ENOMEM; // every owner id is taken
  }
  let ma = 0;
  let pcpuMa = 0;
  if (mode === HTAB_ALLOC_BPF_MA) {
    ma = bpfMemAllocInit(g.elemSize, false, owner);
    if (ma > 0 && g.percpu) {
      pcpuMa = bpfMemAllocInit(g.vsz, true, owner);
      if (pcpuMa <= 0) {
        void bpfMemAllocDestroy(ma); // fresh: nothing pending, freed synchronously
        ma = -ENOMEM;
      }
    }
    if (ma <= 0) {
      freeOwner(owner);
      return -ENOMEM;
    }
  }
  const s = (off: number, v: number): void => { I32[(ptr + off) >> 2] = v; };
  s(HTAB_ALLOC_MODE, mode);
  s(HTAB_COUNT, 0);
  s(HTAB_MA, ma);
  s(HTAB_PCPU_MA, pcpuMa);
  s(HTAB_ELEM_OWNER, owner);
  s(HTAB_DYN_FLAGS, mode === HTAB_ALLOC_BPF_MA && htabUsePercpuCounter(g.maxEntries) ? HTAB_DYN_PERCPU_COUNTER : 0);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// teardown bookkeeping (main thread)

/**
 * Retire the element owner once `done()` (the deferred frees) settled; at once when nothing is
 * left. Never rejects: a failure is a splat. Does nothing once the arena is gone (runtime stopped).
 */
function retireOwner(owner: number, done: () => Promise<unknown>, what: string): Promise<void> {
  if (ownerBytes(owner) === 0) {
    freeOwner(owner);
    return Promise.resolve();
  }
  const gen = arenaGeneration;
  // from a microtask: map_free may run inside an RCU callback (an inner map's last put), where
  // starting an rcu_barrier re-entered the coordinator
  return Promise.resolve().then(done).then(() => {
    if (arenaGeneration === gen) freeOwner(owner); // 'leak' splat if bytes remain
  }, (e: unknown) => {
    if (arenaGeneration === gen) splat('warn', `${what}: deferred free failed: ${e instanceof Error ? e.message : String(e)}`);
  });
}

// ---------------------------------------------------------------------------------------------
// bpf_mem_alloc (2022)

/** One thread's view of a bpf_mem_alloc-backed map's element source. */
export class HtabMemAlloc implements HtabElemAlloc {
  readonly prealloc = false;
  /** bpf_mem_alloc of the elements (unit = elem_size + 8). */
  readonly ma: number;
  /** Per-CPU maps: bpf_mem_alloc of the value areas (16-byte handles), else 0. */
  readonly pcpuMa: number;
  /** The element owner (HTAB_ELEM_OWNER). */
  readonly owner: number;
  readonly usePercpuCounter: boolean;
  readonly #countI: number;
  /** i32 index of CPU 0's HP_PCOUNT; CPU c's at + c × CACHELINE / 4 */
  readonly #pcI: number;
  readonly #max: number;
  /** batch × CPU ids: how far the folded count may be from the exact one */
  readonly #slack: number;
  readonly #valOff: number;
  readonly #elemSize: number;
  readonly #vsz: number;
  readonly #percpu: boolean;

  constructor(ptr: number, pcpuArea: number, g: HtabDynGeometry) {
    this.ma = I32[(ptr + HTAB_MA) >> 2]!;
    this.pcpuMa = I32[(ptr + HTAB_PCPU_MA) >> 2]!;
    this.owner = I32[(ptr + HTAB_ELEM_OWNER) >> 2]!;
    this.usePercpuCounter = (I32[(ptr + HTAB_DYN_FLAGS) >> 2]! & HTAB_DYN_PERCPU_COUNTER) !== 0;
    this.#countI = (ptr + HTAB_COUNT) >> 2;
    this.#pcI = (pcpuArea + HP_PCOUNT) >> 2;
    this.#max = g.maxEntries;
    this.#slack = PERCPU_COUNTER_BATCH * nrCpuIds;
    this.#valOff = g.valOff;
    this.#elemSize = g.elemSize;
    this.#vsz = g.vsz;
    this.#percpu = g.percpu;
  }

  /** is_map_full(): count >= max_entries, approximately with the percpu counter. */
  #isFull(): boolean {
    const c = Atomics.load(I32, this.#countI);
    if (!this.usePercpuCounter) return c >= this.#max;
    // __percpu_counter_compare(&pcount, max_entries, PERCPU_COUNTER_BATCH) >= 0
    const d = c - this.#max;
    if (d > this.#slack) return true;
    if (d < -this.#slack) return false;
    return this.#sum() >= this.#max;
  }

  /** percpu_counter_sum(): the folded count plus every CPU's unfolded part (racy read). */
  #sum(): number {
    let n = Atomics.load(I32, this.#countI);
    const step = CACHELINE >> 2;
    for (let cpu = 0, i = this.#pcI; cpu < nrCpuIds; cpu++, i += step) n += I32[i]!;
    return n;
  }

  /** percpu_counter_add_batch(±1, 32) / atomic_inc, atomic_dec. */
  #add(delta: number): void {
    if (!this.usePercpuCounter) {
      Atomics.add(I32, this.#countI, delta);
      return;
    }
    const i = this.#pcI + thisCpu * (CACHELINE >> 2);
    const v = I32[i]! + delta;
    if (v >= PERCPU_COUNTER_BATCH || v <= -PERCPU_COUNTER_BATCH) {
      I32[i] = 0;
      Atomics.add(I32, this.#countI, v);
    } else {
      I32[i] = v;
    }
  }

  /**
   * alloc_htab_elem(), dynamic: -E2BIG when full unless this replaces `old` (it is freed right
   * after the unlock), then inc_elem_count and an object from this CPU's cache.
   */
  allocElem(old: number): number {
    if (this.#percpu) return this.#allocPercpuElem();
    if (old === 0 && this.#isFull()) return -E2BIG;
    this.#add(1);
    const l = bpfMemCacheAlloc(this.ma);
    if (l !== 0) return l;
    this.#add(-1);
    return -ENOMEM;
  }

  /** Per-CPU hash (new keys only: an existing key is updated in place): element + value area. */
  #allocPercpuElem(): number {
    if (this.#isFull()) return -E2BIG;
    this.#add(1);
    const l = bpfMemCacheAlloc(this.ma);
    const h = l !== 0 ? bpfMemCacheAlloc(this.pcpuMa) : 0;
    if (h === 0) {
      if (l !== 0) bpfMemCacheFree(this.ma, l);
      this.#add(-1);
      return -ENOMEM;
    }
    I32[(l + E_PTR) >> 2] = h;                  // ptr_to_pptr
    I32[(l + this.#valOff) >> 2] = I32[h >> 2]!; // htab_elem_set_ptr: the per-CPU area
    return l;
  }

  /** free_htab_elem(): dec_elem_count, then back to this CPU's caches (reusable at once). */
  freeElem(l: number): void {
    this.#add(-1);
    if (this.#percpu) bpfMemCacheFree(this.pcpuMa, I32[(l + E_PTR) >> 2]!);
    bpfMemCacheFree(this.ma, l);
  }

  /** free_htab_elem() of the replaced element after the unlock: dec_elem_count, back to this CPU's caches. */
  freeReplaced(old: number): void {
    this.freeElem(old);
  }

  freeCount(): number { return -1; }
  spareCount(): number { return 0; }

  count(): number {
    return this.usePercpuCounter ? this.#sum() : Atomics.load(I32, this.#countI);
  }

  /** htab_map_mem_usage, dynamic: (elem_size + 8) × count (+ (8 + 8 + value × CPUs) × count). */
  memUsage(): number {
    const n = Math.max(0, this.count());
    let usage = (this.#elemSize + LLIST_NODE_SZ) * n;
    if (this.#percpu) usage += (LLIST_NODE_SZ + 8 + this.#vsz * nrCpuIds) * n;
    return usage;
  }

  checkHeld(_mark: (elem: number, where: string) => void, _out: string[]): void {
    // elements are either linked or inside bpf_mem_alloc (bpfMemAllocCheck checks the caches)
  }

  checkElem(e: number): string | null {
    if ((e & 7) !== 0) return 'not 8-byte aligned';
    if (I32[(e + E_NEXT) >> 2] === POISON_WORD) return 'freed to the slab (poisoned)';
    const hdr = I32[(e - LLIST_NODE_SZ) >> 2]!;
    if (hdr === 0 || (hdr & (CACHELINE - 1)) !== 0 || I32[(hdr + BMC_MA) >> 2] !== this.ma) {
      return `hidden header 0x${(hdr >>> 0).toString(16)} is not a cache of the map's bpf_mem_alloc (a free object?)`;
    }
    if (this.#percpu) {
      const h = I32[(e + E_PTR) >> 2]!;
      const hh = h > LLIST_NODE_SZ ? I32[(h - LLIST_NODE_SZ) >> 2]! : 0;
      if (hh === 0 || (hh & (CACHELINE - 1)) !== 0 || I32[(hh + BMC_MA) >> 2] !== this.pcpuMa) return `per-CPU handle 0x${(h >>> 0).toString(16)} is not a live pcpu_ma object`;
      if (I32[(e + this.#valOff) >> 2] !== I32[h >> 2]) return 'per-CPU value pointer differs from its handle\'s';
    }
    return null;
  }

  checkCount(live: number, out: string[]): void {
    const bound = htabDynOvershoot(HTAB_ALLOC_BPF_MA, this.usePercpuCounter);
    if (live > this.#max + bound) out.push(`${live} live elements exceed max_entries ${this.#max} + the overshoot bound ${bound}`);
    if (!this.usePercpuCounter) {
      const c = Atomics.load(I32, this.#countI);
      if (c !== live) out.push(`element count (atomic) is ${c}, buckets hold ${live}`);
      return;
    }
    const sum = this.#sum();
    if (sum !== live) out.push(`element count (percpu_counter sum) is ${sum}, buckets hold ${live}`);
    const folded = Atomics.load(I32, this.#countI);
    const approx = (PERCPU_COUNTER_BATCH - 1) * nrCpuIds;
    if (Math.abs(folded - live) > approx) out.push(`percpu_counter read ${folded} is more than ${approx} away from ${live}`);
    for (let cpu = 0; cpu < nrCpuIds; cpu++) {
      const v = I32[this.#pcI + cpu * (CACHELINE >> 2)]!;
      if (v >= PERCPU_COUNTER_BATCH || v <= -PERCPU_COUNTER_BATCH) out.push(`percpu_counter slot of cpu ${cpu} is ${v}, beyond the batch`);
    }
  }

  freeOnDestroy(l: number): void {
    if (this.#percpu) bpfMemCacheFree(this.pcpuMa, I32[(l + E_PTR) >> 2]!);
    bpfMemCacheFree(this.ma, l);
  }

  destroy(): Promise<void> {
    const ps = [bpfMemAllocDestroy(this.ma)];
    if (this.pcpuMa !== 0) ps.push(bpfMemAllocDestroy(this.pcpuMa));
    return retireOwner(this.owner, () => Promise.all(ps), 'htab bpf_mem_alloc destroy');
  }
}

// ---------------------------------------------------------------------------------------------
// legacy kmalloc + call_rcu (≤ v6.0)

/** One thread's view of a legacy kmalloc map's element source. */
export class HtabKmallocAlloc implements HtabElemAlloc {
  readonly prealloc = false;
  readonly ma = 0;
  /** The element owner (HTAB_ELEM_OWNER). */
  readonly owner: number;
  readonly #countI: number;
  readonly #max: number;
  readonly #valOff: number;
  readonly #elemSize: number;
  readonly #vsz: number;
  readonly #percpu: boolean;

  constructor(ptr: number, g: HtabDynGeometry) {
    this.owner = I32[(ptr + HTAB_ELEM_OWNER) >> 2]!;
    this.#countI = (ptr + HTAB_COUNT) >> 2;
    this.#max = g.maxEntries;
    this.#valOff = g.valOff;
    this.#elemSize = g.elemSize;
    this.#vsz = g.vsz;
    this.#percpu = g.percpu;
  }

  /** alloc_htab_elem() of ≤ v6.0: atomic_inc_return > max_entries → -E2BIG; kmalloc under the lock. */
  allocElem(old: number): number {
    if (Atomics.add(I32, this.#countI, 1) >= this.#max && old === 0) {
      Atomics.sub(I32, this.#countI, 1);
      return -E2BIG;
    }
    window(SITE_KMALLOC_LOCKED);
    const l = kmalloc(this.#elemSize, this.owner); // GFP_ATOMIC: on RT this may sleep (sleeping bucket lock)
    if (l === 0) {
      Atomics.sub(I32, this.#countI, 1);
      return -ENOMEM;
    }
    if (this.#percpu) {
      const pptr = allocPercpu(this.#vsz, this.owner);
      if (pptr === 0) {
        kfree(l);
        Atomics.sub(I32, this.#countI, 1);
        return -ENOMEM;
      }
      I32[(l + this.#valOff) >> 2] = pptr;
      I32[(l + E_RCU_PPTR) >> 2] = pptr;
    }
    return l;
  }

  /** free_htab_elem() of ≤ v6.0: atomic_dec, call_rcu(htab_elem_free_rcu). Any context. */
  freeElem(l: number): void {
    Atomics.sub(I32, this.#countI, 1);
    callRcuHead(l + E_RCU, this.#percpu ? RCU_KIND_PCPU_ELEM_FREE : RCU_KIND_ELEM_FREE);
  }

  freeReplaced(old: number): void {
    this.freeElem(old);
  }

  freeCount(): number { return -1; }
  spareCount(): number { return 0; }

  count(): number {
    return Atomics.load(I32, this.#countI);
  }

  /** elem_size × count (+ value × CPUs × count): what the slab holds for live elements. */
  memUsage(): number {
    const n = Math.max(0, this.count());
    let usage = this.#elemSize * n;
    if (this.#percpu) usage += this.#vsz * nrCpuIds * n;
    return usage;
  }

  checkHeld(_mark: (elem: number, where: string) => void, _out: string[]): void {
    // freed elements wait for their grace period in RCU's callback lists
  }

  checkElem(e: number): string | null {
    if ((e & 7) !== 0) return 'not 8-byte aligned';
    if (ksize(e) < this.#elemSize) return 'not an allocated kmalloc block of the element size (freed?)';
    const o = kmemOwner(e);
    if (o !== this.owner) return `charged to owner ${o}, not the map's element owner ${this.owner}`;
    if (this.#percpu) {
      const pptr = I32[(e + this.#valOff) >> 2]!;
      if (pptr !== I32[(e + E_RCU_PPTR) >> 2]) return 'per-CPU value pointer differs from its copy for the RCU callback';
      if (ksize(pptr) === 0) return `per-CPU value area 0x${(pptr >>> 0).toString(16)} is not allocated`;
    }
    return null;
  }

  checkCount(live: number, out: string[]): void {
    if (live > this.#max) out.push(`${live} live elements exceed max_entries ${this.#max}`);
    const c = Atomics.load(I32, this.#countI);
    if (c !== live) out.push(`element count (atomic) is ${c}, buckets hold ${live}`);
  }

  /** htab_elem_free() without a grace period: nothing can reach the map any more. */
  freeOnDestroy(l: number): void {
    if (this.#percpu) freePercpu(I32[(l + E_RCU_PPTR) >> 2]!);
    kfree(l);
  }

  /** What is left is elements waiting for their grace period: rcu_barrier, then retire the owner. */
  destroy(): Promise<void> {
    return retireOwner(this.owner, () => rcuBarrier(), 'htab legacy element free');
  }
}

/** The element source of a dynamic map, by its HTAB_ALLOC_MODE. */
export function htabDynAllocOpen(ptr: number, pcpuArea: number, g: HtabDynGeometry): HtabElemAlloc {
  const mode = I32[(ptr + HTAB_ALLOC_MODE) >> 2]!;
  return mode === HTAB_ALLOC_KMALLOC ? new HtabKmallocAlloc(ptr, g) : new HtabMemAlloc(ptr, pcpuArea, g);
}

