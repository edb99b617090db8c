/*
 * page_alloc.ts — the buddy page allocator over the pages region (mm/page_alloc.c, one zone).
 *
 * Layout. Pages are numbered by index i (ptr = pagesBase + i * PAGE_SIZE, never 0). State:
 *   struct page  (HDR_PAGEMETA_BASE, 8 bytes per page, see PG_* below)
 *     word0 PG_INFO  type (PGT_*) | order << 4 | slab class << 10 | large owner << 16 | PG_PERCPU
 *     word1 PG_AUX   LARGE: page count; TAIL: head index; free page: freed-mark (MARK_*) or 0
 *   link table   (last pages of the region, reserved): i32 [next, prev] per page index, -1 = none;
 *                the buddy free lists and the slab partial lists link block heads through it, so
 *                a free page's body is never written (it keeps its 0x6b poison).
 *   zone state   MEM_STATE_BASE + ZS_* (the line below), lock word first.
 *     +0   ZS_LOCK        zone lock (LC_ZONE)
 *     +4   ZS_MAGIC       MEM_MAGIC once memInit formatted the allocator
 *     +8   ZS_NR_FREE     free pages on the buddy lists (written under the lock, read racily)
 *     +12  ZS_NPAGES      pages in the region (incl. reserved)
 *     +16  ZS_RESERVED    pages reserved at the end for the link table
 *     +20  ZS_LINK_BASE   byte ptr of the link table
 *     +24  ZS_DEFER_HEAD  llist of frees deferred from NMI (slab.ts; CAS push, exchange drain)
 *     +28  ZS_DEFER_COUNT objects ever deferred (stats)
 *     +32  ZS_FREE_HEAD   i32[MAX_ORDER + 1] head index of each free list, -1 = empty
 *     +108..127 spare
 *     +128 (line 1)       ZS_FREE_COUNT i32[MAX_ORDER + 1] blocks per free list
 *     +208 ZS_LARGE_ALLOCS, +212 ZS_LARGE_PAGES, +216 ZS_PERCPU_ALLOCS, +220 ZS_PERCPU_BYTES,
 *     +224 ZS_NMI_FAILS  (slab.ts counters, Atomics)
 *     +256..1535          slab class descriptors (slab.ts, one 128-byte line per class)
 *
 * Invariants: a page has word0 == PGT_BUDDY|order<<4 iff it heads a free block of that order on
 * free list `order`; every other page of a free block has word0 == PGT_FREE (0). Free blocks are
 * naturally aligned (index % 2^order == 0) and lie wholly inside the region. ZS_NR_FREE is the sum
 * of 2^order over the free lists.
 *
 * Locking: the zone lock (raw, irqsave; LC_ZONE) protects free lists, counts and the PG_INFO of
 * free pages. It nests inside a slab class lock (LC_SLAB -> LC_ZONE), never the other way. The
 * pages of an allocated run belong to the caller; their struct pages are written outside the lock.
 *
 * Contexts: any thread, any context. In NMI the lock is only try-locked (alloc returns 0 if busy).
 * Sites: 'page_alloc.alloc.locked', 'page_alloc.free.locked' (irqs are off there: NMI only).
 *
 * Differences from the kernel: one zone, no per-CPU page lists, no watermarks or reclaim, no
 * migrate types; MAX_ORDER is 18 so one allocation can cover most of the arena (kmalloc of a big
 * map area plays the role of vmalloc here). pagesAllocRaw trims a run to its exact page count
 * (alloc_pages_exact), so a 5-page kmalloc holds 5 pages, not 8.
 */
import { I32, U32, U8 } from '../mem/arena.js';
import { HDR_NPAGES, HDR_PAGEMETA_BASE, HDR_PAGES_BASE, MEM_STATE_BASE, PAGE_SHIFT, PAGE_SIZE } from '../mem/layout.js';
import { LC_ZONE } from '../locks/lock_classes.js';
import { rawSpinLockIrqsave, rawSpinTrylockIrqsave, rawSpinUnlockIrqrestore } from '../locks/raw_spinlock.js';
import { inNmi } from '../cpu/context.js';
import { window } from '../cpu/window.js';
import { defineSite } from '../cpu/sites.js';
import { splat } from '../debug/splat.js';

export const MAX_ORDER = 18;
export const MEM_MAGIC = 0x4d454d31; // 'MEM1'
export const POISON_FREE = 0x6b;
export const POISON_WORD = 0x6b6b6b6b;

// zone state (byte offsets from MEM_STATE_BASE)
export const ZS_LOCK = 0;
export const ZS_MAGIC = 4;
export const ZS_NR_FREE = 8;
export const ZS_NPAGES = 12;
export const ZS_RESERVED = 16;
export const ZS_LINK_BASE = 20;
export const ZS_DEFER_HEAD = 24;
export const ZS_DEFER_COUNT = 28;
export const ZS_FREE_HEAD = 32;
export const ZS_FREE_COUNT = 128;
export const ZS_LARGE_ALLOCS = 208;
export const ZS_LARGE_PAGES = 212;
export const ZS_PERCPU_ALLOCS = 216;
export const ZS_PERCPU_BYTES = 220;
export const ZS_NMI_FAILS = 224;
export const ZS_CLASS_BASE = 256;    // slab.ts class descriptors start here
export const ZS_END = 1536;

export const ZONE_LOCK = MEM_STATE_BASE + ZS_LOCK;
const ZI = MEM_STATE_BASE >> 2;
const NR_FREE_I = ZI + (ZS_NR_FREE >> 2);
const HEAD_I = ZI + (ZS_FREE_HEAD >> 2);
const COUNT_I = ZI + (ZS_FREE_COUNT >> 2);

// struct page
export const PG_INFO = 0;
export const PG_AUX = 4;
export const PGT_MASK = 0xf;
export const PGT_FREE = 0;       // free page that is not a block head
export const PGT_BUDDY = 1;      // head of a free block
export const PGT_PAGES = 2;      // head of an allocPages() block
export const PGT_SLAB = 3;       // first page of a slab (slab.ts)
export const PGT_LARGE = 4;      // first page of a kmalloc() page run (slab.ts)
export const PGT_TAIL = 5;       // any other page of an allocated run; PG_AUX = head index
export const PGT_RESERVED = 6;   // link table
export const PGT_FREEING = 7;    // head claimed by a free in progress (double free loses the CAS)
export const PGT_RAW = 8;        // head just taken off the free lists, not yet typed by the caller
export const PG_ORDER_SHIFT = 4;
export const PG_CLASS_SHIFT = 10;
export const PG_OWNER_SHIFT = 16;
export const PG_PERCPU = 1 << 26;
/** PG_AUX of freed pages: remembers what they were, so a later kfree says double_free. */
export const MARK_MASK = 0xff000000 | 0; // as the i32 `aux & MARK_MASK` yields
export const MARK_FREED = 0x6b000000;
export const MARK_LARGE = 1 << 20;   // | 0: the head of a freed kmalloc run
export const MARK_SLAB = 2 << 20;    // | cls << 8 | page offset in the slab
export const MARK_PAGES = 3 << 20;   // the head of a freed allocPages block

const SITE_ALLOC_LOCKED = defineSite('page_alloc.alloc.locked');
const SITE_FREE_LOCKED = defineSite('page_alloc.free.locked');

// ---- region geometry: read from the header (one load each; no per-thread init needed) ----
export function pagesBase(): number { return U32[HDR_PAGES_BASE >> 2]!; }
export function nrPages(): number { return I32[HDR_NPAGES >> 2]!; }
/** i32 index of page `idx`'s struct page word0. */
export function pageMetaI(idx: number): number { return (U32[HDR_PAGEMETA_BASE >> 2]! >>> 2) + (idx << 1); }
/** Page index of a byte pointer, or -1 when it is outside the pages region. */
export function pageIndex(ptr: number): number {
  const base = U32[HDR_PAGES_BASE >> 2]!;
  if (ptr < base) return -1;
  const idx = (ptr - base) >>> PAGE_SHIFT;
  return idx < I32[HDR_NPAGES >> 2]! ? idx : -1;
}
export function pagePtr(idx: number): number { return U32[HDR_PAGES_BASE >> 2]! + idx * PAGE_SIZE; }

function linkI(idx: number): number { return (U32[(MEM_STATE_BASE + ZS_LINK_BASE) >> 2]! >>> 2) + (idx << 1); }

/** Doubly linked list through the link table; `headI` is the i32 index of the head word. */
export function listAdd(headI: number, idx: number): void {
  const li = linkI(idx);
  const first = I32[headI]!;
  I32[li] = first;
  I32[li + 1] = -1;
  if (first >= 0) I32[linkI(first) + 1] = idx;
  I32[headI] = idx;
}
export function listDel(headI: number, idx: number): void {
  const li = linkI(idx);
  const next = I32[li]!, prev = I32[li + 1]!;
  if (prev >= 0) I32[linkI(prev)] = next; else I32[headI] = next;
  if (next >= 0) I32[linkI(next) + 1] = prev;
  I32[li] = -1;
  I32[li + 1] = -1;
}
export function listNext(idx: number): number { return I32[linkI(idx)]!; }

/** Format the page allocator (main thread, once, from memInit). */
export function pageAllocInit(): void {
  const npages = nrPages();
  const zb = MEM_STATE_BASE;
  U8.fill(0, zb, zb + ZS_CLASS_BASE);
  const metaI = pageMetaI(0);
  I32.fill(0, metaI, metaI + npages * 2);
  // link table in the last pages (the low end, where the big aligned blocks are, stays whole)
  const reserved = Math.ceil((npages * 8) / PAGE_SIZE);
  const first = npages - reserved;
  const linkBase = pagePtr(first);
  I32[ZI + (ZS_NPAGES >> 2)] = npages;
  I32[ZI + (ZS_RESERVED >> 2)] = reserved;
  U32[ZI + (ZS_LINK_BASE >> 2)] = linkBase;
  I32.fill(-1, linkBase >>> 2, (linkBase >>> 2) + npages * 2);
  for (let i = first; i < npages; i++) I32[metaI + (i << 1)] = PGT_RESERVED;
  for (let o = 0; o <= MAX_ORDER; o++) { I32[HEAD_I + o] = -1; I32[COUNT_I + o] = 0; }
  I32[NR_FREE_I] = 0;
  // free pages: poisoned, then handed to the lists in aligned chunks
  I32.fill(POISON_WORD, pagePtr(0) >>> 2, pagePtr(first) >>> 2);
  freeRangeLocked(0, first);
  Atomics.store(I32, ZI + (ZS_MAGIC >> 2), MEM_MAGIC);
}

export function memFormatted(): boolean { return Atomics.load(I32, ZI + (ZS_MAGIC >> 2)) === MEM_MAGIC; }

/** Take the zone lock: 0, or nonzero when it could not be taken (NMI: busy; else a lock splat). */
function zoneLock(): number {
  if (inNmi()) {
    if (rawSpinTrylockIrqsave(ZONE_LOCK, LC_ZONE)) return 0;
    Atomics.add(I32, ZI + (ZS_NMI_FAILS >> 2), 1);
    return 1;
  }
  return rawSpinLockIrqsave(ZONE_LOCK, LC_ZONE);
}

/** Free block [idx, idx + 2^order) and merge it with free buddies. Zone lock held. */
function freeBlockLocked(idx: number, order: number): void {
  const npages = nrPages();
  const metaI = pageMetaI(0);
  I32[NR_FREE_I] = I32[NR_FREE_I]! + (1 << order);
  while (order < MAX_ORDER) {
    const b = idx ^ (1 << order);
    if (b >= npages || I32[metaI + (b << 1)] !== (PGT_BUDDY | (order << PG_ORDER_SHIFT))) break;
    listDel(HEAD_I + order, b);
    I32[COUNT_I + order] = I32[COUNT_I + order]! - 1;
    I32[metaI + (b << 1)] = PGT_FREE;
    I32[metaI + (idx << 1)] = PGT_FREE;
    if (b < idx) idx = b;
    order++;
  }
  I32[metaI + (idx << 1)] = PGT_BUDDY | (order << PG_ORDER_SHIFT);
  listAdd(HEAD_I + order, idx);
  I32[COUNT_I + order] = I32[COUNT_I + order]! + 1;
}

/** Free the run [start, start + count) as naturally aligned blocks. Zone lock held. */
function freeRangeLocked(start: number, count: number): void {
  const end = start + count;
  let pos = start;
  while (pos < end) {
    let o = pos === 0 ? MAX_ORDER : Math.min(MAX_ORDER, 31 - Math.clz32(pos & -pos));
    while (pos + (1 << o) > end) o--;
    freeBlockLocked(pos, o);
    pos += 1 << o;
  }
}

/** Take a block of `order` off the free lists (splitting). Zone lock held. -1 if none. */
function takeBlockLocked(order: number): number {
  let k = order;
  while (k <= MAX_ORDER && I32[HEAD_I + k]! < 0) k++;
  if (k > MAX_ORDER) return -1;
  const metaI = pageMetaI(0);
  const idx = I32[HEAD_I + k]!;
  listDel(HEAD_I + k, idx);
  I32[COUNT_I + k] = I32[COUNT_I + k]! - 1;
  I32[metaI + (idx << 1)] = PGT_RAW;
  while (k > order) {
    k--;
    const b = idx + (1 << k);
    I32[metaI + (b << 1)] = PGT_BUDDY | (k << PG_ORDER_SHIFT);
    listAdd(HEAD_I + k, b);
    I32[COUNT_I + k] = I32[COUNT_I + k]! + 1;
  }
  I32[NR_FREE_I] = I32[NR_FREE_I]! - (1 << order);
  return idx;
}

/** Order of the smallest block holding `npages` pages. */
export function orderFor(npages: number): number {
  return npages <= 1 ? 0 : 32 - Math.clz32(npages - 1);
}

/**
 * Allocate exactly `npages` contiguous pages (the tail of the power-of-two block goes back).
 * Returns the head page index with PG_INFO = PGT_RAW (the caller types head and tails), or -1.
 */
export function pagesAllocRaw(npages: number): number {
  if (!(npages > 0)) return -1;
  const order = orderFor(npages);
  if (order > MAX_ORDER) return -1;
  if (zoneLock() !== 0) return -1;
  window(SITE_ALLOC_LOCKED);
  const idx = takeBlockLocked(order);
  if (idx >= 0 && npages < 1 << order) {
    freeRangeLocked(idx + npages, (1 << order) - npages);
  }
  rawSpinUnlockIrqrestore(ZONE_LOCK);
  return idx;
}

/**
 * Give back the run [idx, idx + npages) owned by the caller. Under the lock its struct pages are
 * reset to free and PG_AUX gets the freed-mark `mark` (head), and `mark | offset` (every page)
 * when `markAll`, else 0 for the tails. Returns 0, or nonzero if the zone lock could not be taken
 * (NMI with the lock busy: nothing changed, the caller keeps the run).
 */
export function pagesFreeRaw(idx: number, npages: number, mark: number, markAll: boolean): number {
  if (zoneLock() !== 0) return 1;
  window(SITE_FREE_LOCKED);
  const metaI = pageMetaI(0);
  for (let i = 0; i < npages; i++) {
    const mi = metaI + ((idx + i) << 1);
    I32[mi] = PGT_FREE;
    I32[mi + 1] = i === 0 ? mark : markAll ? mark | i : 0;
  }
  freeRangeLocked(idx, npages);
  rawSpinUnlockIrqrestore(ZONE_LOCK);
  return 0;
}

/** Mark the pages of an allocated run: head gets `info`/`aux`, tails point at the head. */
export function pagesMark(idx: number, npages: number, info: number, aux: number): void {
  const metaI = pageMetaI(0);
  for (let i = 1; i < npages; i++) {
    I32[metaI + ((idx + i) << 1)] = PGT_TAIL;
    I32[metaI + ((idx + i) << 1) + 1] = idx;
  }
  I32[metaI + (idx << 1) + 1] = aux;
  Atomics.store(I32, metaI + (idx << 1), info);
}

/** Head page index of the allocated run containing page `idx`, or -1 if `idx` is not allocated. */
export function pageHead(idx: number): number {
  const mi = pageMetaI(idx);
  const t = I32[mi]! & PGT_MASK;
  if (t === PGT_TAIL) return I32[mi + 1]!;
  return t === PGT_PAGES || t === PGT_SLAB || t === PGT_LARGE ? idx : -1;
}

// ---------------------------------------------------------------------------------------------
// alloc_pages / free_pages

/** alloc_pages(order): byte pointer of 2^order contiguous pages, or 0. Any context. */
export function allocPages(order: number): number {
  if (!(order >= 0 && order <= MAX_ORDER)) return 0;
  const n = 1 << order;
  const idx = pagesAllocRaw(n);
  if (idx < 0) return 0;
  pagesMark(idx, n, PGT_PAGES | (order << PG_ORDER_SHIFT), 0);
  return pagePtr(idx);
}

/** free_pages(ptr): give back a block from allocPages. Bad or double free: splat, return. */
export function freePages(ptr: number): void {
  if (ptr === 0) return;
  const idx = pageIndex(ptr);
  if (idx < 0 || ptr !== pagePtr(idx)) {
    splat('bad_free', `free_pages(0x${ptr.toString(16)}): not a page pointer`);
    return;
  }
  const mi = pageMetaI(idx);
  const info = Atomics.load(I32, mi);
  if ((info & PGT_MASK) !== PGT_PAGES || Atomics.compareExchange(I32, mi, info, PGT_FREEING) !== info) {
    const aux = I32[mi + 1]!;
    const t = info & PGT_MASK;
    if (t === PGT_FREEING || ((t === PGT_FREE || t === PGT_BUDDY) && aux === (MARK_FREED | MARK_PAGES))) {
      splat('double_free', `free_pages(0x${ptr.toString(16)}): block already freed`);
    } else {
      splat('bad_free', `free_pages(0x${ptr.toString(16)}): page is not the head of an alloc_pages block (type ${t})`);
    }
    return;
  }
  const n = 1 << ((info >> PG_ORDER_SHIFT) & 0x3f);
  I32.fill(POISON_WORD, ptr >>> 2, (ptr + n * PAGE_SIZE) >>> 2);
  if (pagesFreeRaw(idx, n, MARK_FREED | MARK_PAGES, false) !== 0) {
    // NMI with the zone lock busy (the kernel forbids free_pages from NMI): the block stays
    // allocated; report instead of deadlocking.
    Atomics.store(I32, mi, info);
    splat('warn', `free_pages(0x${ptr.toString(16)}) from NMI while the zone lock is busy: not freed`);
  }
}

// ---------------------------------------------------------------------------------------------
// statistics and checks (tests; racy reads are fine)

export function pagesFree(): number { return Atomics.load(I32, NR_FREE_I); }
export function pagesReserved(): number { return I32[ZI + (ZS_RESERVED >> 2)]!; }
/** Pages the allocator manages (the region minus the link table). */
export function pagesTotal(): number { return nrPages() - pagesReserved(); }

export interface ZoneStats {
  readonly pagesTotal: number;
  readonly pagesFree: number;
  readonly pagesReserved: number;
  /** Free blocks per order (index = order). */
  readonly freeBlocks: readonly number[];
}

export function zoneStats(): ZoneStats {
  const freeBlocks: number[] = [];
  for (let o = 0; o <= MAX_ORDER; o++) freeBlocks.push(Atomics.load(I32, COUNT_I + o));
  return { pagesTotal: pagesTotal(), pagesFree: pagesFree(), pagesReserved: pagesReserved(), freeBlocks };
}

/**
 * Walk the free lists and check the buddy invariants. Only meaningful while no CPU allocates
 * (tests, after a run). Returns the violations found (empty = consistent).
 */
export function zoneCheck(): string[] {
  const out: string[] = [];
  const npages = nrPages();
  const metaI = pageMetaI(0);
  let free = 0;
  const seen = new Uint8Array(npages);
  for (let o = 0; o <= MAX_ORDER; o++) {
    let n = 0;
    let prev = -1;
    for (let idx = I32[HEAD_I + o]!; idx >= 0; idx = listNext(idx)) {
      if (++n > npages) { out.push(`order ${o}: free list loops`); break; }
      if (I32[linkI(idx) + 1] !== prev) out.push(`order ${o}: page ${idx} prev link ${I32[linkI(idx) + 1]} != ${prev}`);
      prev = idx;
      if (I32[metaI + (idx << 1)] !== (PGT_BUDDY | (o << PG_ORDER_SHIFT))) out.push(`order ${o}: page ${idx} on the list is not marked buddy/${o}`);
      if ((idx & ((1 << o) - 1)) !== 0 || idx + (1 << o) > npages) out.push(`order ${o}: block ${idx} misaligned or out of range`);
      for (let i = 0; i < 1 << o && idx + i < npages; i++) {
        if (seen[idx + i] !== 0) out.push(`page ${idx + i} on two free blocks`);
        seen[idx + i] = 1;
        if (i > 0 && I32[metaI + ((idx + i) << 1)] !== PGT_FREE) out.push(`page ${idx + i} inside free block ${idx}/${o} has type ${I32[metaI + ((idx + i) << 1)]! & PGT_MASK}`);
      }
      free += 1 << o;
    }
    if (n !== I32[COUNT_I + o]) out.push(`order ${o}: ${n} blocks on the list, count says ${I32[COUNT_I + o]}`);
  }
  if (free !== I32[NR_FREE_I]) out.push(`free pages on lists ${free}, counter ${I32[NR_FREE_I]}`);
  for (let i = 0; i < npages; i++) {
    if (seen[i] === 0 && (I32[metaI + (i << 1)]! & PGT_MASK) === PGT_BUDDY) out.push(`page ${i} marked buddy but on no free list`);
  }
  if (Atomics.load(I32, ZONE_LOCK >> 2) !== 0) out.push('zone lock word not 0');
  return out;
}
