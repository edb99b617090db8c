/*
 * slab.ts — kmalloc/kfree (mm/slub.c + mm/slab_common.c): size classes carved from slabs of
 * pages, larger requests as page runs, poisoning of freed memory, double/bad free detection.
 *
 * Layout.
 *   class descriptor  MEM_STATE_BASE + ZS_CLASS_BASE + c * 128 (one line per class, lock first):
 *     +0 CL_LOCK  +4 CL_PARTIAL (head page index, -1 none)  +8 CL_NR_SLABS  +12 CL_NR_PARTIAL
 *     +16 CL_INUSE (objects allocated)  +20 CL_SIZE  +24 CL_OBJS  +28 CL_ORDER  +32 CL_ALLOCS
 *     +36 CL_FAILS
 *   slab (2^CL_ORDER pages; struct page of the first = PGT_SLAB | order | class, others PGT_TAIL):
 *     +0 SLAB_INUSE  +4 SLAB_HINT (bitmap word to search first)  +8 bitmap u32[words] (1 =
 *     allocated; bits past the last object preset to 1)  then owner u16[objs] (owner id |
 *     TAG_PERCPU)  then the objects from CLS_FIRST, aligned to min(size's low bit, 64).
 *   large (> KMALLOC_MAX_CACHE_SIZE): an exact page run; head PGT_LARGE | owner << 16 | PG_PERCPU,
 *     PG_AUX = page count.
 *   Slab geometry is a pure function of SLAB_SIZES, so every thread computes the same tables.
 *
 * Invariants: an object is allocated iff its bitmap bit is set; SLAB_INUSE = popcount(bitmap);
 * a slab is on its class's partial list iff SLAB_INUSE < objs. An empty slab goes back to the page
 * allocator unless it is its class's only partial slab (SLUB's min_partial = 1, so alloc/free of
 * one object does not split and merge pages each time); kmemCacheShrink() releases those, and
 * memStats() calls it, so "pages free back to the start" holds after a run. From NMI with the
 * zone lock busy, a released slab's pages wait on the deferred list. Owner bytes (MEM_OWNER_BASE) are charged ksize(ptr).
 *
 * Locking: one raw lock per class (LC_SLAB, irqsave: hardirq may kmalloc) protects its partial
 * list, counters and the bitmaps/owners of its slabs. Order: LC_SLAB -> LC_ZONE (a new slab is
 * taken with the class lock held). Owner counters are Atomics.add, outside any lock. A freed
 * object is poisoned (0x6b) under the class lock, before its bit clears, so nobody can be handed
 * the object while it is being poisoned.
 *
 * Contexts: any thread, any context. NMI only try-locks: kmalloc returns 0 if the lock is busy;
 * kfree defers the object (or an emptied slab's pages) to a lock-free llist (ZS_DEFER_HEAD,
 * push by CAS, taken whole by exchange) drained by the next kmalloc/kfree outside NMI (the kernel's kfree_nolock does the same through irq_work). On PREEMPT_RT kmalloc
 * calls mightSleep('kmalloc') (splat from atomic context); the allocation still proceeds.
 *
 * Differences from the kernel: no per-CPU slabs (one lock per class); the free "pointer" is a
 * bitmap outside the objects, so a freed object is 0x6b from its first byte to ksize; the owner
 * (memcg) is recorded per object; kmalloc above KMALLOC_MAX_SIZE is allowed (vmalloc's role).
 */
import { I32, U16, hdrFlags } from '../mem/arena.js';
import { FLAG_PREEMPT_RT, MEM_MAX_OWNERS, MEM_OWNER_BASE, MEM_STATE_BASE, PAGE_SIZE, HEADER_SIZE } from '../mem/layout.js';
import {
  POISON_FREE, POISON_WORD, MEM_MAGIC, ZS_MAGIC, ZS_CLASS_BASE, ZS_DEFER_HEAD, ZS_DEFER_COUNT, ZS_LARGE_ALLOCS,
  ZS_LARGE_PAGES, ZS_PERCPU_ALLOCS, ZS_PERCPU_BYTES, ZS_NMI_FAILS, PGT_MASK, PGT_FREE, PGT_BUDDY,
  PGT_PAGES, PGT_SLAB, PGT_LARGE, PGT_TAIL, PGT_RESERVED, PGT_FREEING, PG_ORDER_SHIFT, PG_CLASS_SHIFT,
  PG_OWNER_SHIFT, PG_PERCPU, MARK_MASK, MARK_FREED, MARK_LARGE, MARK_SLAB, MARK_PAGES,
  pageAllocInit, pagesAllocRaw, pagesFreeRaw, pagesMark, pageIndex, pageMetaI, pagePtr, nrPages,
  listAdd, listDel, listNext,
} from './page_alloc.js';
import { LC_SLAB } from '../locks/lock_classes.js';
import { rawSpinLockIrqsave, rawSpinTrylockIrqsave, rawSpinUnlockIrqrestore, mightSleep } from '../locks/raw_spinlock.js';
import { inNmi } from '../cpu/context.js';
import { window } from '../cpu/window.js';
import { defineSite } from '../cpu/sites.js';
import { splat } from '../debug/splat.js';

export { POISON_FREE, POISON_WORD };

/** Size classes, bytes. Requests up to the last one come from slabs. */
export const SLAB_SIZES: readonly number[] = Object.freeze([16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048]);
export const NR_SLAB_CLASSES = SLAB_SIZES.length;
export const KMALLOC_MIN_ALIGN = 8;
export const KMALLOC_MAX_CACHE_SIZE = 2048;
/** The kernel's KMALLOC_MAX_SIZE (4 MiB) for callers that mirror its -E2BIG checks. */
export const KMALLOC_MAX_SIZE = 4 << 20;

const SITE_ALLOC_LOCKED = defineSite('slab.alloc.locked');
const SITE_FREE_LOCKED = defineSite('slab.free.locked');

// class descriptor
const CLASS_STRIDE = 128;
const CLASS_BASE = MEM_STATE_BASE + ZS_CLASS_BASE;
const CL_LOCK = 0;
const CL_PARTIAL = 4;
const CL_NR_SLABS = 8;
const CL_NR_PARTIAL = 12;
const CL_INUSE = 16;
const CL_SIZE = 20;
const CL_OBJS = 24;
const CL_ORDER = 28;
const CL_ALLOCS = 32;
const CL_FAILS = 36;
// slab header
const SLAB_INUSE = 0;
const SLAB_HINT = 4;
const SLAB_BITMAP = 8;

const TAG_PERCPU = 0x8000;        // in the per-object owner u16
const OWNER_I = MEM_OWNER_BASE >> 2;
const ZI = MEM_STATE_BASE >> 2;
const DEFER_I = ZI + (ZS_DEFER_HEAD >> 2);
const MAGIC_I = ZI + (ZS_MAGIC >> 2);
// low bits of a deferred-free link (blocks are 8-aligned)
const DEFER_PERCPU = 1;           // a percpu area (freePercpu)
const DEFER_SLAB = 2;             // the pages of an empty slab (class in the slab's second word)
const DEFER_BITS = 7;

// ---- slab geometry, a pure function of SLAB_SIZES ----
const CLS_SIZE = new Int32Array(NR_SLAB_CLASSES);
const CLS_OBJS = new Int32Array(NR_SLAB_CLASSES);
const CLS_ORDER = new Int32Array(NR_SLAB_CLASSES);
const CLS_WORDS = new Int32Array(NR_SLAB_CLASSES);
const CLS_OWNERS = new Int32Array(NR_SLAB_CLASSES);   // byte offset of owner u16[] in the slab
const CLS_FIRST = new Int32Array(NR_SLAB_CLASSES);    // byte offset of object 0
/** class index by (size + 7) >> 3 */
const CLASS_OF = new Uint8Array((KMALLOC_MAX_CACHE_SIZE >> 3) + 1);

function geometry(size: number, order: number): { objs: number; first: number; words: number } {
  const bytes = PAGE_SIZE << order;
  const align = Math.min(size & -size, 64);
  let best = { objs: 0, first: 0, words: 0 };
  for (let n = 1; ; n++) {
    const words = (n + 31) >> 5;
    const first = Math.ceil((SLAB_BITMAP + words * 4 + n * 2) / align) * align;
    if (first + n * size > bytes) return best;
    best = { objs: n, first, words };
  }
}
for (let c = 0; c < NR_SLAB_CLASSES; c++) {
  const size = SLAB_SIZES[c]!;
  let order = 0;
  let g = geometry(size, 0);
  // the smallest slab that wastes at most 1/8 (max 8 pages)
  for (let o = 0; o <= 3; o++) {
    g = geometry(size, o);
    order = o;
    if ((PAGE_SIZE << o) - g.objs * size <= (PAGE_SIZE << o) >> 3) break;
  }
  CLS_SIZE[c] = size; CLS_OBJS[c] = g.objs; CLS_ORDER[c] = order; CLS_WORDS[c] = g.words;
  CLS_OWNERS[c] = SLAB_BITMAP + g.words * 4; CLS_FIRST[c] = g.first;
}
for (let i = 0, c = 0; i < CLASS_OF.length; i++) {
  while (SLAB_SIZES[c]! < i << 3) c++;
  CLASS_OF[i] = c;
}

/** Slab size class index for a request of `size` bytes (1..KMALLOC_MAX_CACHE_SIZE). */
export function kmallocIndex(size: number): number { return CLASS_OF[(size + 7) >> 3]!; }

/** Lock word of the class serving `size` (tests hold it to make an NMI allocation miss). */
export function kmallocClassLock(size: number): number {
  return CLASS_BASE + CLASS_OF[(size + 7) >> 3]! * CLASS_STRIDE + CL_LOCK;
}

// ---------------------------------------------------------------------------------------------
// boot

/**
 * Format the allocator state in the arena (main thread, once, after createArena + attachArena +
 * setThisCpu, before any worker starts). Workers need no per-thread init: every region base is
 * read from the header.
 */
export function memInit(): void {
  if (I32.length * 4 <= HEADER_SIZE || nrPages() <= 0) throw new Error('memInit: attach an arena with pages first');
  pageAllocInit();
  I32.fill(0, OWNER_I, OWNER_I + MEM_MAX_OWNERS);
  for (let c = 0; c < NR_SLAB_CLASSES; c++) {
    const di = (CLASS_BASE + c * CLASS_STRIDE) >> 2;
    I32.fill(0, di, di + (CLASS_STRIDE >> 2));
    I32[di + (CL_PARTIAL >> 2)] = -1;
    I32[di + (CL_SIZE >> 2)] = CLS_SIZE[c]!;
    I32[di + (CL_OBJS >> 2)] = CLS_OBJS[c]!;
    I32[di + (CL_ORDER >> 2)] = CLS_ORDER[c]!;
  }
}

// ---------------------------------------------------------------------------------------------
// allocation

function classLock(d: number): boolean {
  if (inNmi()) {
    if (rawSpinTrylockIrqsave(d, LC_SLAB)) return true;
    Atomics.add(I32, ZI + (ZS_NMI_FAILS >> 2), 1);
    return false;
  }
  return rawSpinLockIrqsave(d, LC_SLAB) === 0;
}

/** Take a new slab for class c onto its partial list. Class lock held. Page index or -1. */
function newSlabLocked(c: number, di: number): number {
  const order = CLS_ORDER[c]!;
  const idx = pagesAllocRaw(1 << order);
  if (idx < 0) return -1;
  const s = pagePtr(idx);
  const si = s >>> 2;
  const words = CLS_WORDS[c]!;
  I32[si + (SLAB_INUSE >> 2)] = 0;
  I32[si + (SLAB_HINT >> 2)] = 0;
  I32.fill(0, si + (SLAB_BITMAP >> 2), si + (SLAB_BITMAP >> 2) + words);
  const rem = CLS_OBJS[c]! & 31;
  if (rem !== 0) I32[si + (SLAB_BITMAP >> 2) + words - 1] = ~((1 << rem) - 1);
  pagesMark(idx, 1 << order, PGT_SLAB | (order << PG_ORDER_SHIFT) | (c << PG_CLASS_SHIFT), 0);
  listAdd(di + (CL_PARTIAL >> 2), idx);
  I32[di + (CL_NR_SLABS >> 2)] = I32[di + (CL_NR_SLABS >> 2)]! + 1;
  I32[di + (CL_NR_PARTIAL >> 2)] = I32[di + (CL_NR_PARTIAL >> 2)]! + 1;
  return idx;
}

function slabAlloc(c: number, ownerTag: number): number {
  const d = CLASS_BASE + c * CLASS_STRIDE;
  const di = d >> 2;
  if (!classLock(d)) return 0;
  window(SITE_ALLOC_LOCKED);
  let idx = I32[di + (CL_PARTIAL >> 2)]!;
  if (idx < 0) idx = newSlabLocked(c, di);
  let ptr = 0;
  if (idx >= 0) {
    const s = pagePtr(idx);
    const si = s >>> 2;
    const bi = si + (SLAB_BITMAP >> 2);
    const words = CLS_WORDS[c]!;
    let w = I32[si + (SLAB_HINT >> 2)]!;
    let word = I32[bi + w]!;
    for (let n = 1; word === -1 && n < words; n++) {
      w = w + 1 === words ? 0 : w + 1;
      word = I32[bi + w]!;
    }
    if (word !== -1) {
      const low = ~word & (word + 1);
      const obj = (w << 5) + 31 - Math.clz32(low);
      I32[bi + w] = word | low;
      I32[si + (SLAB_HINT >> 2)] = w;
      U16[((s + CLS_OWNERS[c]!) >>> 1) + obj] = ownerTag;
      const inuse = I32[si + (SLAB_INUSE >> 2)]! + 1;
      I32[si + (SLAB_INUSE >> 2)] = inuse;
      if (inuse === CLS_OBJS[c]) {
        listDel(di + (CL_PARTIAL >> 2), idx);
        I32[di + (CL_NR_PARTIAL >> 2)] = I32[di + (CL_NR_PARTIAL >> 2)]! - 1;
      }
      I32[di + (CL_INUSE >> 2)] = I32[di + (CL_INUSE >> 2)]! + 1;
      I32[di + (CL_ALLOCS >> 2)] = I32[di + (CL_ALLOCS >> 2)]! + 1;
      ptr = s + CLS_FIRST[c]! + obj * CLS_SIZE[c]!;
    } else {
      splat('invariant', `slab class ${CLS_SIZE[c]}: slab ${idx} on the partial list has no free object`);
    }
  }
  if (ptr === 0) I32[di + (CL_FAILS >> 2)] = I32[di + (CL_FAILS >> 2)]! + 1;
  rawSpinUnlockIrqrestore(d);
  if (ptr !== 0) Atomics.add(I32, OWNER_I + (ownerTag & 0x3ff), CLS_SIZE[c]!);
  return ptr;
}

function largeAlloc(size: number, owner: number, percpu: number): number {
  const npages = Math.ceil(size / PAGE_SIZE);
  if (npages > nrPages()) return 0;
  const idx = pagesAllocRaw(npages);
  if (idx < 0) return 0;
  pagesMark(idx, npages, PGT_LARGE | (owner << PG_OWNER_SHIFT) | percpu, npages);
  Atomics.add(I32, ZI + (ZS_LARGE_ALLOCS >> 2), 1);
  Atomics.add(I32, ZI + (ZS_LARGE_PAGES >> 2), npages);
  Atomics.add(I32, OWNER_I + owner, npages * PAGE_SIZE);
  return pagePtr(idx);
}

function notFormatted(): number {
  splat('warn', 'kmalloc before memInit(): the allocator is not formatted');
  return 0;
}

function checkOwner(owner: number): number {
  if ((owner >>> 0) < MEM_MAX_OWNERS && owner === (owner | 0)) return owner;
  splat('warn', `kmalloc: owner ${owner} out of range; charged to the kernel`);
  return 0;
}

function kmallocTagged(size: number, owner: number, percpu: boolean): number {
  if ((hdrFlags & FLAG_PREEMPT_RT) !== 0) mightSleep('kmalloc');
  if (!(size > 0) || size > 0xffffffff) return 0;
  if ((owner >>> 0) >= MEM_MAX_OWNERS) owner = checkOwner(owner);
  if (I32[MAGIC_I] !== MEM_MAGIC) return notFormatted();
  if (Atomics.load(I32, DEFER_I) !== 0 && !inNmi()) slabDrainDeferred();
  if (size <= KMALLOC_MAX_CACHE_SIZE) return slabAlloc(CLASS_OF[(size + 7) >> 3]!, percpu ? owner | TAG_PERCPU : owner);
  return largeAlloc(size, owner, percpu ? PG_PERCPU : 0);
}

/**
 * kmalloc(size, owner): an 8-byte aligned block of at least `size` bytes charged to `owner`,
 * or 0 (size 0, exhaustion, NMI with the lock busy). Never throws. Any thread, any context.
 * Contents are whatever was there (0x6b poison if it was freed before).
 */
export function kmalloc(size: number, owner: number): number {
  return kmallocTagged(size, owner, false);
}

/** kzalloc(): kmalloc, then the whole ksize() zeroed. */
export function kzalloc(size: number, owner: number): number {
  const p = kmallocTagged(size, owner, false);
  if (p !== 0) I32.fill(0, p >>> 2, (p + allocatedSize(p, size)) >>> 2);
  return p;
}

/** Usable size of a block just returned for a request of `size` bytes. */
function allocatedSize(_p: number, size: number): number {
  return size <= KMALLOC_MAX_CACHE_SIZE ? CLS_SIZE[CLASS_OF[(size + 7) >> 3]!]! : Math.ceil(size / PAGE_SIZE) * PAGE_SIZE;
}

// ---------------------------------------------------------------------------------------------
// free

const FREE_DONE = 0;
const FREE_BUSY = 1;   // NMI and the lock was busy: the caller defers

function describe(ptr: number, fn: string): string {
  return `${fn}(0x${ptr.toString(16)})`;
}

/** The pointer is not an allocated block: say whether it was one (double free) or never was. */
function reportBadFree(ptr: number, idx: number, fn: string): void {
  const mi = pageMetaI(idx);
  const info = Atomics.load(I32, mi);
  const t = info & PGT_MASK;
  const aux = I32[mi + 1]!;
  if (t === PGT_FREE || t === PGT_BUDDY) {
    const kind = aux & 0x00f00000;
    if ((aux & MARK_MASK) === MARK_FREED && kind === MARK_LARGE && ptr === pagePtr(idx)) {
      splat('double_free', `${describe(ptr, fn)}: double free of a large block (its pages are already free)`);
      return;
    }
    if ((aux & MARK_MASK) === MARK_FREED && kind === MARK_SLAB) {
      const c = (aux >> 8) & 0x3f;
      const base = idx - (aux & 0xff);
      const off = ptr - pagePtr(base) - CLS_FIRST[c]!;
      if (c < NR_SLAB_CLASSES && off >= 0 && off % CLS_SIZE[c]! === 0 && off / CLS_SIZE[c]! < CLS_OBJS[c]!) {
        splat('double_free', `${describe(ptr, fn)}: double free of a kmalloc-${CLS_SIZE[c]} object (its slab is already released)`);
        return;
      }
    }
    if ((aux & MARK_MASK) === MARK_FREED && kind === MARK_PAGES) {
      splat('bad_free', `${describe(ptr, fn)}: pointer into a freed alloc_pages block`);
      return;
    }
    splat('bad_free', `${describe(ptr, fn)}: pointer into an unallocated page`);
    return;
  }
  if (t === PGT_FREEING) { splat('double_free', `${describe(ptr, fn)}: block is already being freed`); return; }
  if (t === PGT_PAGES) { splat('bad_free', `${describe(ptr, fn)}: memory from alloc_pages, not kmalloc`); return; }
  if (t === PGT_RESERVED) { splat('bad_free', `${describe(ptr, fn)}: pointer into the allocator's own pages`); return; }
  splat('bad_free', `${describe(ptr, fn)}: not the start of a kmalloc block (page type ${t})`);
}

function slabFree(ptr: number, head: number, c: number, tag: number, fn: string): number {
  const d = CLASS_BASE + c * CLASS_STRIDE;
  const di = d >> 2;
  if (inNmi()) {
    if (!rawSpinTrylockIrqsave(d, LC_SLAB)) return FREE_BUSY;
  } else if (rawSpinLockIrqsave(d, LC_SLAB) !== 0) {
    return FREE_DONE; // the lock splatted (deadlock/timeout); the object leaks
  }
  window(SITE_FREE_LOCKED);
  const hinfo = I32[pageMetaI(head)]!;
  const size = CLS_SIZE[c]!;
  const s = pagePtr(head);
  const off = ptr - s - CLS_FIRST[c]!;
  const obj = Math.floor(off / size);
  let err = 0; // 1 bad (not a slab of this class any more), 2 interior, 3 double, 4 tag mismatch
  let ownerTag = 0;
  let release = false;
  if ((hinfo & PGT_MASK) !== PGT_SLAB || ((hinfo >> PG_CLASS_SHIFT) & 0x3f) !== c) err = 1;
  else if (off < 0 || off !== obj * size || obj >= CLS_OBJS[c]!) err = 2;
  else {
    const si = s >>> 2;
    const bi = si + (SLAB_BITMAP >> 2) + (obj >> 5);
    const bit = 1 << (obj & 31);
    const word = I32[bi]!;
    ownerTag = U16[((s + CLS_OWNERS[c]!) >>> 1) + obj]!;
    if ((word & bit) === 0) err = 3;
    else if ((ownerTag & TAG_PERCPU) !== tag) err = 4;
    else {
      I32.fill(POISON_WORD, ptr >>> 2, (ptr + size) >>> 2);
      I32[bi] = word & ~bit;
      const inuse = I32[si + (SLAB_INUSE >> 2)]! - 1;
      I32[si + (SLAB_INUSE >> 2)] = inuse;
      I32[di + (CL_INUSE >> 2)] = I32[di + (CL_INUSE >> 2)]! - 1;
      const objs = CLS_OBJS[c]!;
      if (inuse === 0 && I32[di + (CL_NR_PARTIAL >> 2)]! > 1) {
        // empty and not the class's last partial slab (min_partial = 1): back to the pages
        listDel(di + (CL_PARTIAL >> 2), head);
        I32[di + (CL_NR_PARTIAL >> 2)] = I32[di + (CL_NR_PARTIAL >> 2)]! - 1;
        I32[di + (CL_NR_SLABS >> 2)] = I32[di + (CL_NR_SLABS >> 2)]! - 1;
        Atomics.store(I32, pageMetaI(head), PGT_FREEING);
        release = true;
      } else if (inuse === objs - 1) {
        listAdd(di + (CL_PARTIAL >> 2), head);
        I32[di + (CL_NR_PARTIAL >> 2)] = I32[di + (CL_NR_PARTIAL >> 2)]! + 1;
      }
    }
  }
  rawSpinUnlockIrqrestore(d);
  if (err === 0) {
    Atomics.sub(I32, OWNER_I + (ownerTag & 0x3ff), size);
    if (tag !== 0) percpuUncharge(size);
    if (release && pagesFreeRaw(head, 1 << CLS_ORDER[c]!, MARK_FREED | MARK_SLAB | (c << 8), true) !== 0) {
      // NMI and the zone lock is busy: the detached slab's pages wait on the deferred list
      I32[(s >>> 2) + 1] = c;
      deferFree(s, DEFER_SLAB);
    }
  } else if (err === 1) {
    reportBadFree(ptr, pageIndex(ptr), fn);
  } else if (err === 2) {
    splat('bad_free', `${describe(ptr, fn)}: interior pointer into a kmalloc-${size} object (offset ${off - obj * size} of object ${obj})`);
  } else if (err === 3) {
    splat('double_free', `${describe(ptr, fn)}: double free of a kmalloc-${size} object`);
  } else {
    splat('bad_free', tag !== 0
      ? `${describe(ptr, fn)}: not a percpu allocation (use kfree)`
      : `${describe(ptr, fn)}: a percpu allocation (use freePercpu)`);
  }
  return FREE_DONE;
}

function largeFree(ptr: number, idx: number, info: number, tag: number, fn: string): number {
  if (((info & PG_PERCPU) !== 0 ? TAG_PERCPU : 0) !== tag) {
    splat('bad_free', tag !== 0 ? `${describe(ptr, fn)}: not a percpu allocation (use kfree)` : `${describe(ptr, fn)}: a percpu allocation (use freePercpu)`);
    return FREE_DONE;
  }
  const mi = pageMetaI(idx);
  if (Atomics.compareExchange(I32, mi, info, PGT_FREEING) !== info) {
    reportBadFree(ptr, idx, fn);
    return FREE_DONE;
  }
  const npages = I32[mi + 1]!;
  I32.fill(POISON_WORD, ptr >>> 2, (ptr + npages * PAGE_SIZE) >>> 2);
  if (pagesFreeRaw(idx, npages, MARK_FREED | MARK_LARGE, false) !== 0) {
    Atomics.store(I32, mi, info); // NMI, zone lock busy: still allocated; the caller defers
    return FREE_BUSY;
  }
  Atomics.sub(I32, ZI + (ZS_LARGE_ALLOCS >> 2), 1);
  Atomics.sub(I32, ZI + (ZS_LARGE_PAGES >> 2), npages);
  Atomics.sub(I32, OWNER_I + ((info >> PG_OWNER_SHIFT) & 0x3ff), npages * PAGE_SIZE);
  if (tag !== 0) percpuUncharge(npages * PAGE_SIZE);
  return FREE_DONE;
}

function freeTagged(ptr: number, tag: number, fn: string): number {
  const idx = pageIndex(ptr);
  if (idx < 0 || (ptr & 7) !== 0) {
    splat('bad_free', `${describe(ptr, fn)}: not a kernel heap pointer`);
    return FREE_DONE;
  }
  const info = Atomics.load(I32, pageMetaI(idx));
  let head = idx;
  if ((info & PGT_MASK) === PGT_TAIL) {
    head = I32[pageMetaI(idx) + 1]!;
    if (!(head >= 0 && head < idx)) { reportBadFree(ptr, idx, fn); return FREE_DONE; }
  }
  const hinfo = head === idx ? info : Atomics.load(I32, pageMetaI(head));
  const t = hinfo & PGT_MASK;
  if (t === PGT_SLAB) return slabFree(ptr, head, (hinfo >> PG_CLASS_SHIFT) & 0x3f, tag, fn);
  if (t === PGT_LARGE) {
    if (head === idx && ptr === pagePtr(idx)) return largeFree(ptr, idx, hinfo, tag, fn);
    splat('bad_free', `${describe(ptr, fn)}: interior pointer into a ${I32[pageMetaI(head) + 1]}-page kmalloc block`);
    return FREE_DONE;
  }
  reportBadFree(ptr, head, fn);
  return FREE_DONE;
}

/** NMI with a lock busy: push onto the deferred-free llist (link in the block's first word). */
function deferFree(ptr: number, kind: number): void {
  const node = ptr | kind;
  let old = Atomics.load(I32, DEFER_I);
  for (;;) {
    I32[ptr >>> 2] = old;
    const seen = Atomics.compareExchange(I32, DEFER_I, old, node);
    if (seen === old) break;
    old = seen;
  }
  Atomics.add(I32, ZI + (ZS_DEFER_COUNT >> 2), 1);
}

/** Free what NMIs deferred. Any context but NMI (called by kmalloc/kfree; tests may call it). */
export function slabDrainDeferred(): void {
  let node = Atomics.exchange(I32, DEFER_I, 0);
  while (node !== 0) {
    const ptr = (node & ~DEFER_BITS) >>> 0;
    const next = I32[ptr >>> 2]!;
    if ((node & DEFER_SLAB) !== 0) {
      const c = I32[(ptr >>> 2) + 1]!;
      if (pagesFreeRaw(pageIndex(ptr), 1 << CLS_ORDER[c]!, MARK_FREED | MARK_SLAB | (c << 8), true) !== 0) deferFree(ptr, DEFER_SLAB);
    } else {
      const tag = (node & DEFER_PERCPU) !== 0 ? TAG_PERCPU : 0;
      if (freeTagged(ptr, tag, tag !== 0 ? 'freePercpu' : 'kfree') === FREE_BUSY) deferFree(ptr, node & DEFER_PERCPU);
    }
    node = next;
  }
}

/**
 * kfree(ptr): give back a kmalloc block; NULL is a no-op. The block is poisoned with 0x6b.
 * Double free / bad pointer: splat and return. Any thread, any context (NMI may defer).
 */
export function kfree(ptr: number): void {
  if (ptr === 0) return;
  const nmi = inNmi();
  if (!nmi && Atomics.load(I32, DEFER_I) !== 0) slabDrainDeferred();
  if (freeTagged(ptr, 0, 'kfree') === FREE_BUSY) deferFree(ptr, 0);
}

/** ksize(ptr): usable bytes of an allocated block (class size or whole pages), 0 if none. */
export function ksize(ptr: number): number {
  const idx = pageIndex(ptr);
  if (idx < 0 || ptr === 0) return 0;
  const mi = pageMetaI(idx);
  const info = I32[mi]!;
  const head = (info & PGT_MASK) === PGT_TAIL ? I32[mi + 1]! : idx;
  const hinfo = I32[pageMetaI(head)]!;
  if ((hinfo & PGT_MASK) === PGT_LARGE) return head === idx && ptr === pagePtr(idx) ? I32[pageMetaI(head) + 1]! * PAGE_SIZE : 0;
  if ((hinfo & PGT_MASK) !== PGT_SLAB) return 0;
  const c = (hinfo >> PG_CLASS_SHIFT) & 0x3f;
  const s = pagePtr(head);
  const off = ptr - s - CLS_FIRST[c]!;
  const size = CLS_SIZE[c]!;
  const obj = Math.floor(off / size);
  if (off < 0 || off !== obj * size || obj >= CLS_OBJS[c]!) return 0;
  return (I32[(s >>> 2) + (SLAB_BITMAP >> 2) + (obj >> 5)]! & (1 << (obj & 31))) !== 0 ? size : 0;
}

/** Owner id charged for the block at `ptr`, or -1 if it is not an allocated block. */
export function kmemOwner(ptr: number): number {
  if (ksize(ptr) === 0) return -1;
  const idx = pageIndex(ptr);
  const mi = pageMetaI(idx);
  const head = (I32[mi]! & PGT_MASK) === PGT_TAIL ? I32[mi + 1]! : idx;
  const hinfo = I32[pageMetaI(head)]!;
  if ((hinfo & PGT_MASK) === PGT_LARGE) return (hinfo >> PG_OWNER_SHIFT) & 0x3ff;
  const c = (hinfo >> PG_CLASS_SHIFT) & 0x3f;
  const s = pagePtr(head);
  const obj = (ptr - s - CLS_FIRST[c]!) / CLS_SIZE[c]!;
  return U16[((s + CLS_OWNERS[c]!) >>> 1) + obj]! & 0x3ff;
}

/**
 * kmem_cache_shrink() for every class: give the empty slabs kept on the partial lists back to
 * the page allocator. Any thread, any context but NMI (takes the class and zone locks).
 */
export function kmemCacheShrink(): void {
  if (inNmi()) return;
  const empty: number[] = [];
  for (let c = 0; c < NR_SLAB_CLASSES; c++) {
    const d = CLASS_BASE + c * CLASS_STRIDE;
    const di = d >> 2;
    if (Atomics.load(I32, di + (CL_NR_PARTIAL >> 2)) === 0) continue;
    if (rawSpinLockIrqsave(d, LC_SLAB) !== 0) continue;
    for (let idx = I32[di + (CL_PARTIAL >> 2)]!; idx >= 0;) {
      const next = listNext(idx);
      if (I32[pagePtr(idx) >>> 2] === 0) {
        listDel(di + (CL_PARTIAL >> 2), idx);
        I32[di + (CL_NR_PARTIAL >> 2)] = I32[di + (CL_NR_PARTIAL >> 2)]! - 1;
        I32[di + (CL_NR_SLABS >> 2)] = I32[di + (CL_NR_SLABS >> 2)]! - 1;
        Atomics.store(I32, pageMetaI(idx), PGT_FREEING);
        empty.push(idx, c);
      }
      idx = next;
    }
    rawSpinUnlockIrqrestore(d);
  }
  for (let i = 0; i < empty.length; i += 2) {
    const c = empty[i + 1]!;
    pagesFreeRaw(empty[i]!, 1 << CLS_ORDER[c]!, MARK_FREED | MARK_SLAB | (c << 8), true);
  }
}

// ---------------------------------------------------------------------------------------------
// percpu areas (percpu_alloc.ts): the same blocks, tagged so kfree/freePercpu catch a mix-up

/** Backing block for allocPercpu: zeroed, tagged percpu. */
export function kmallocPercpuArea(bytes: number, owner: number): number {
  const p = kmallocTagged(bytes, owner, true);
  if (p === 0) return 0;
  I32.fill(0, p >>> 2, (p + allocatedSize(p, bytes)) >>> 2);
  Atomics.add(I32, ZI + (ZS_PERCPU_ALLOCS >> 2), 1);
  Atomics.add(I32, ZI + (ZS_PERCPU_BYTES >> 2), allocatedSize(p, bytes));
  return p;
}

/** Free a block from kmallocPercpuArea. */
export function kfreePercpuArea(ptr: number): void {
  if (ptr === 0) return;
  if (!inNmi() && Atomics.load(I32, DEFER_I) !== 0) slabDrainDeferred();
  if (freeTagged(ptr, TAG_PERCPU, 'freePercpu') === FREE_BUSY) deferFree(ptr, DEFER_PERCPU);
}

function percpuUncharge(bytes: number): void {
  Atomics.sub(I32, ZI + (ZS_PERCPU_ALLOCS >> 2), 1);
  Atomics.sub(I32, ZI + (ZS_PERCPU_BYTES >> 2), bytes);
}

// ---------------------------------------------------------------------------------------------
// statistics and checks (tests; racy reads)

export interface SlabClassStats {
  readonly size: number;
  readonly objsPerSlab: number;
  readonly slabOrder: number;
  readonly slabs: number;
  readonly partial: number;
  readonly inUse: number;
  readonly allocs: number;
  readonly fails: number;
}

export interface SlabStats {
  readonly slabPages: number;
  readonly slabObjects: number;
  readonly largeAllocs: number;
  readonly largePages: number;
  readonly percpuAllocs: number;
  readonly percpuBytes: number;
  readonly deferredFrees: number;
  readonly nmiLockBusy: number;
  readonly classes: readonly SlabClassStats[];
}

export function slabStats(): SlabStats {
  const classes: SlabClassStats[] = [];
  let slabPages = 0, slabObjects = 0;
  for (let c = 0; c < NR_SLAB_CLASSES; c++) {
    const di = (CLASS_BASE + c * CLASS_STRIDE) >> 2;
    const slabs = Atomics.load(I32, di + (CL_NR_SLABS >> 2));
    const inUse = Atomics.load(I32, di + (CL_INUSE >> 2));
    slabPages += slabs << CLS_ORDER[c]!;
    slabObjects += inUse;
    classes.push({
      size: CLS_SIZE[c]!, objsPerSlab: CLS_OBJS[c]!, slabOrder: CLS_ORDER[c]!, slabs,
      partial: Atomics.load(I32, di + (CL_NR_PARTIAL >> 2)), inUse,
      allocs: Atomics.load(I32, di + (CL_ALLOCS >> 2)), fails: Atomics.load(I32, di + (CL_FAILS >> 2)),
    });
  }
  return {
    slabPages, slabObjects,
    largeAllocs: Atomics.load(I32, ZI + (ZS_LARGE_ALLOCS >> 2)),
    largePages: Atomics.load(I32, ZI + (ZS_LARGE_PAGES >> 2)),
    percpuAllocs: Atomics.load(I32, ZI + (ZS_PERCPU_ALLOCS >> 2)),
    percpuBytes: Atomics.load(I32, ZI + (ZS_PERCPU_BYTES >> 2)),
    deferredFrees: Atomics.load(I32, ZI + (ZS_DEFER_COUNT >> 2)),
    nmiLockBusy: Atomics.load(I32, ZI + (ZS_NMI_FAILS >> 2)),
    classes,
  };
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}

/**
 * Check every slab against its class (bitmap popcount = inuse, partial list membership, counts,
 * lock words 0). Only while no CPU allocates. Returns the violations found.
 */
export function slabCheck(): string[] {
  const out: string[] = [];
  const npages = nrPages();
  const slabs = new Int32Array(NR_SLAB_CLASSES);
  const objects = new Int32Array(NR_SLAB_CLASSES);
  const onPartial = new Set<number>();
  for (let c = 0; c < NR_SLAB_CLASSES; c++) {
    const di = (CLASS_BASE + c * CLASS_STRIDE) >> 2;
    if (Atomics.load(I32, di) !== 0) out.push(`kmalloc-${CLS_SIZE[c]}: lock word not 0`);
    let n = 0;
    for (let idx = I32[di + (CL_PARTIAL >> 2)]!; idx >= 0; idx = listNext(idx)) {
      if (++n > npages) { out.push(`kmalloc-${CLS_SIZE[c]}: partial list loops`); break; }
      onPartial.add(idx);
      const info = I32[pageMetaI(idx)]!;
      if ((info & PGT_MASK) !== PGT_SLAB || ((info >> PG_CLASS_SHIFT) & 0x3f) !== c) out.push(`kmalloc-${CLS_SIZE[c]}: page ${idx} on the partial list is not a slab of this class`);
    }
    if (n !== I32[di + (CL_NR_PARTIAL >> 2)]) out.push(`kmalloc-${CLS_SIZE[c]}: ${n} partial slabs listed, count ${I32[di + (CL_NR_PARTIAL >> 2)]}`);
  }
  for (let idx = 0; idx < npages; idx++) {
    const info = I32[pageMetaI(idx)]!;
    if ((info & PGT_MASK) !== PGT_SLAB) continue;
    const c = (info >> PG_CLASS_SHIFT) & 0x3f;
    const si = pagePtr(idx) >>> 2;
    let pop = 0;
    for (let w = 0; w < CLS_WORDS[c]!; w++) pop += popcount(I32[si + (SLAB_BITMAP >> 2) + w]!);
    pop -= (CLS_WORDS[c]! << 5) - CLS_OBJS[c]!; // padding bits
    const inuse = I32[si + (SLAB_INUSE >> 2)]!;
    if (pop !== inuse) out.push(`kmalloc-${CLS_SIZE[c]}: slab ${idx} bitmap has ${pop} objects, inuse ${inuse}`);
    const partial = inuse < CLS_OBJS[c]!;
    if (partial !== onPartial.has(idx)) out.push(`kmalloc-${CLS_SIZE[c]}: slab ${idx} (inuse ${inuse}/${CLS_OBJS[c]}) ${partial ? 'missing from' : 'wrongly on'} the partial list`);
    slabs[c]!++;
    objects[c] = objects[c]! + inuse;
  }
  for (let c = 0; c < NR_SLAB_CLASSES; c++) {
    const di = (CLASS_BASE + c * CLASS_STRIDE) >> 2;
    if (slabs[c] !== I32[di + (CL_NR_SLABS >> 2)]) out.push(`kmalloc-${CLS_SIZE[c]}: ${slabs[c]} slabs found, count ${I32[di + (CL_NR_SLABS >> 2)]}`);
    if (objects[c] !== I32[di + (CL_INUSE >> 2)]) out.push(`kmalloc-${CLS_SIZE[c]}: ${objects[c]} objects found, count ${I32[di + (CL_INUSE >> 2)]}`);
  }
  if (Atomics.load(I32, DEFER_I) !== 0) out.push('deferred frees pending');
  return out;
}

/** Slab geometry for tests and docs. */
export function slabGeometry(): { size: number; objs: number; order: number; first: number }[] {
  return SLAB_SIZES.map((size, c) => ({ size, objs: CLS_OBJS[c]!, order: CLS_ORDER[c]!, first: CLS_FIRST[c]! }));
}
