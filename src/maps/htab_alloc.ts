/*
 * htab_alloc.ts — where a hash map's elements come from and go back to: the small seam between
 * hashtab.ts and its memory (the kernel's alloc_htab_elem / free_htab_elem / extra_elems /
 * inc_elem_count split, reference §2.5 step 5, §2.6, §2.7).
 *
 * Implementations:
 *   HtabPreallocAlloc  (this file) — preallocated elements: a pcpu_freelist for new keys and one
 *                      spare element per CPU id (extra_elems) for replacing a key, so a replace
 *                      works even in a full map and costs no freelist traffic.
 *   HtabMemAlloc, HtabKmallocAlloc (htab_dyn_alloc.ts) — BPF_F_NO_PREALLOC: bpf_mem_alloc (2022)
 *                      and the legacy kmalloc + call_rcu per element. allocElem checks "full"
 *                      through their own element count (atomic_t or percpu_counter, §2.7) and
 *                      returns -E2BIG / -ENOMEM; freeReplaced/freeElem free after the bucket
 *                      unlock; per-CPU maps also take the value area and set the element's pptr.
 *
 * Contexts: allocElem runs with the bucket lock held (irqs off, any context incl. NMI; legacy
 * kmalloc maps on RT: the sleeping bucket lock, task/softirq context); freeReplaced and freeElem
 * run after the bucket unlock, in the caller's context. freeOnDestroy/destroy: main thread, at
 * map_free, when nothing can reach the map any more.
 *
 * Invariant (prealloc, plain hash): every element is on exactly one of {a bucket, the freelist
 * (some CPU head or the extralist), a CPU's extra_elems slot}, so
 *   free + live + spares == max_entries + nrCpuIds.
 * Per-CPU preallocated hash: no spares; free + live == max_entries.
 */
import { I32, nrCpuIds } from '../mem/arena.js';
import { thisCpu } from '../mem/this_cpu.js';
import { CACHELINE } from '../mem/layout.js';
import { E2BIG } from '../errno.js';
import {
  pcpuFreelistPopIrqsOff, pcpuFreelistPush, pcpuFreelistCount, pcpuFreelistWalk, pcpuFreelistDestroy,
} from '../alloc/percpu_freelist.js';
import { E_FNODE, HP_EXTRA_ELEM } from './htab_layout.js';

/** The element source of a non-LRU hash map. */
export interface HtabElemAlloc {
  readonly prealloc: boolean;
  /** The element cache's bpf_mem_alloc (bpf_mem_alloc mode), else 0. The CLI samples its levels. */
  readonly ma: number;
  /**
   * An element for a new key (old === 0) or to replace `old` (plain hash only). Bucket lock held.
   * Returns the element, -E2BIG (full: no free element / count at max_entries) or -ENOMEM.
   */
  allocElem(old: number): number;
  /** `old` was replaced and unlinked; after the bucket unlock. Prealloc: nothing (it is this CPU's spare). */
  freeReplaced(old: number): void;
  /** free_htab_elem() of an unlinked element (delete, lookup_and_delete, batch delete), after the unlock. */
  freeElem(l: number): void;
  /** Elements currently free (prealloc: on the freelist; racy). -1 for dynamic allocators. */
  freeCount(): number;
  /** Spare elements held outside the freelist (extra_elems). */
  spareCount(): number;
  /** Dynamic: the element count (atomic_t, or the exact percpu_counter sum). Prealloc: -1. */
  count(): number;
  /** Dynamic: htab_map_mem_usage's element part. Prealloc: 0 (hashtab.ts knows the area). */
  memUsage(): number;
  /**
   * check(): report every element the allocator holds through mark(elem, where); lock words and
   * list shapes go to `out`. (Dynamic allocators hold none.)
   */
  checkHeld(mark: (elem: number, where: string) => void, out: string[]): void;
  /** check(), dynamic: null when `e` is a live element of this allocator, else what is wrong. */
  checkElem(e: number): string | null;
  /** check(), dynamic: the element count against the `live` elements found in the buckets. */
  checkCount(live: number, out: string[]): void;
  /** map_free: give back `l`, still linked in a bucket (nothing can reach the map any more). */
  freeOnDestroy(l: number): void;
  /**
   * map_free, after freeOnDestroy of every linked element: release the allocator. Resolves when
   * all its memory is back in the slab (deferred frees included). Main thread. Never rejects.
   */
  destroy(): Promise<void>;
}

export class HtabPreallocAlloc implements HtabElemAlloc {
  readonly prealloc = true;
  readonly ma = 0;
  readonly #freelist: number;
  readonly #pcpuArea: number;
  readonly #extraElems: boolean;
  readonly #limit: number;

  /**
   * `freelist`: the populated pcpu_freelist; `pcpuArea`: the map's per-CPU lines (HP_EXTRA_ELEM
   * filled by htabMapAlloc when `extraElems`); `numElems` bounds list walks in check().
   */
  constructor(freelist: number, pcpuArea: number, extraElems: boolean, numElems: number) {
    this.#freelist = freelist;
    this.#pcpuArea = pcpuArea;
    this.#extraElems = extraElems;
    this.#limit = numElems;
  }

  allocElem(old: number): number {
    if (old !== 0) {
      // Replace: take this CPU's spare and leave the old element in its place. The swap happens
      // under the bucket lock with no window before the old element is unlinked (see hashtab.ts).
      const si = (this.#pcpuArea + thisCpu * CACHELINE + HP_EXTRA_ELEM) >> 2;
      const l = I32[si]!;
      I32[si] = old;
      return l;
    }
    const node = pcpuFreelistPopIrqsOff(this.#freelist);
    if (node === 0) return -E2BIG;
    return node - E_FNODE;
  }

  freeReplaced(_old: number): void {
    // prealloc: `old` already is this CPU's extra element.
  }

  freeElem(l: number): void {
    pcpuFreelistPush(this.#freelist, l + E_FNODE);
  }

  freeCount(): number {
    return pcpuFreelistCount(this.#freelist, this.#limit);
  }

  spareCount(): number {
    return this.#extraElems ? nrCpuIds : 0;
  }

  count(): number {
    return -1;
  }

  memUsage(): number {
    return 0;
  }

  checkElem(_e: number): string | null {
    return null;
  }

  checkCount(_live: number, _out: string[]): void {
    // the freelist is the capacity: conservation is checked by hashtab.ts
  }

  freeOnDestroy(_l: number): void {
    // the element area is freed whole by hashtab.ts
  }

  destroy(): Promise<void> {
    pcpuFreelistDestroy(this.#freelist);
    return Promise.resolve();
  }

  checkHeld(mark: (elem: number, where: string) => void, out: string[]): void {
    pcpuFreelistWalk(this.#freelist, this.#limit, (node, head) => mark(node - E_FNODE, `freelist head ${head}`), out);
    if (!this.#extraElems) return;
    for (let cpu = 0; cpu < nrCpuIds; cpu++) {
      const l = I32[(this.#pcpuArea + cpu * CACHELINE + HP_EXTRA_ELEM) >> 2]!;
      mark(l, `extra_elems of cpu ${cpu}`);
    }
  }
}
