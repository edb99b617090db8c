/*
 * owners.ts — memory accounting (the memcg charge of kmalloc's __GFP_ACCOUNT, simplified): every
 * allocation is charged to an owner id, so a map can report its memory and a test can prove that
 * nothing leaked.
 *
 * Layout: MEM_OWNER_BASE, i32[MEM_MAX_OWNERS] bytes in use per owner (ksize of each live block).
 * Written by kmalloc/kfree on any thread with Atomics.add/sub; read with Atomics.load.
 * Owner 0 (OWNER_KERNEL) always exists. Ids and names are handed out on the main thread by a
 * registry kept in that thread (reset when a new arena is attached); other threads only charge.
 *
 * Invariants: ownerBytes(id) = sum of ksize over the live blocks charged to id; after every
 * block is freed, memStats().bytesInUse is 0. freeOwner of an owner with bytes still charged is a
 * 'leak' splat, and the id is never reused (a later kfree would credit the wrong owner).
 *
 * Contexts: allocOwner/freeOwner/ownerName on the main thread (syscall side); ownerBytes and
 * memStats anywhere (racy snapshot while CPUs run).
 */
import { I32, arenaGeneration, nrCpus } from '../mem/arena.js';
import { thisCpu } from '../mem/this_cpu.js';
import { MEM_MAX_OWNERS, MEM_OWNER_BASE } from '../mem/layout.js';
import { pagesFree, pagesTotal, pagesReserved, zoneCheck } from './page_alloc.js';
import { slabStats, slabCheck, slabDrainDeferred, kmemCacheShrink, type SlabClassStats } from './slab.js';
import { inNmi } from '../cpu/context.js';
import { splat } from '../debug/splat.js';

export const OWNER_KERNEL = 0;

const OWNER_I = MEM_OWNER_BASE >> 2;
const FREE = 0, LIVE = 1, LEAKED = 2;

/** Main-thread registry for the arena it was built for. */
let regGen = -1; // arenaGeneration this state belongs to (a number: keeps no arena alive)
let state = new Uint8Array(MEM_MAX_OWNERS);
let names: string[] = [];

function registry(): void {
  if (regGen === arenaGeneration) return;
  regGen = arenaGeneration;
  state = new Uint8Array(MEM_MAX_OWNERS);
  names = new Array<string>(MEM_MAX_OWNERS).fill('');
  state[OWNER_KERNEL] = LIVE;
  names[OWNER_KERNEL] = 'kernel';
}

/** A new owner id (main thread). Throws RangeError when all MEM_MAX_OWNERS ids are taken. */
export function allocOwner(name: string): number {
  if (thisCpu >= 0 && thisCpu < nrCpus) throw new Error(`allocOwner(${JSON.stringify(name)}): main thread only (called on cpu ${thisCpu})`);
  registry();
  for (let id = 1; id < MEM_MAX_OWNERS; id++) {
    if (state[id] !== FREE) continue;
    state[id] = LIVE;
    names[id] = name;
    Atomics.store(I32, OWNER_I + id, 0);
    return id;
  }
  throw new RangeError(`allocOwner(${JSON.stringify(name)}): all ${MEM_MAX_OWNERS} owner ids are in use`);
}

/**
 * Release an owner id (main thread), once everything charged to it is freed. Returns the bytes
 * still charged: nonzero is a 'leak' splat and the id stays retired.
 */
export function freeOwner(id: number): number {
  registry();
  if (id === OWNER_KERNEL || !(id > 0 && id < MEM_MAX_OWNERS) || state[id] !== LIVE) {
    throw new RangeError(`freeOwner(${id}): not a live owner id`);
  }
  const left = Atomics.load(I32, OWNER_I + id);
  if (left !== 0) {
    splat('leak', `owner ${names[id]} (#${id}) freed with ${left} bytes still allocated`);
    state[id] = LEAKED;
    return left;
  }
  state[id] = FREE;
  return 0;
}

/** Bytes currently charged to `id`. */
export function ownerBytes(id: number): number {
  return Atomics.load(I32, OWNER_I + id);
}

/** Name given to allocOwner (main thread; other threads see `owner#id`). */
export function ownerName(id: number): string {
  if (regGen === arenaGeneration && state[id] !== FREE) return names[id] ?? `owner#${id}`;
  return id === OWNER_KERNEL ? 'kernel' : `owner#${id}`;
}

export interface MemStats {
  /** Sum of ownerBytes over all owners (ksize of every live block). */
  readonly bytesInUse: number;
  /** Pages managed by the page allocator, and how many are on its free lists. */
  readonly pagesTotal: number;
  readonly pagesFree: number;
  readonly pagesReserved: number;
  /** Pages held by slabs and slab objects allocated. */
  readonly slabPages: number;
  readonly slabObjects: number;
  /** kmalloc blocks above the largest size class, and their pages. */
  readonly largeAllocs: number;
  readonly largePages: number;
  readonly percpuAllocs: number;
  readonly percpuBytes: number;
  /** Owners with bytes charged (including the kernel). */
  readonly ownersInUse: number;
  /** kfree()s from NMI that found a lock busy and were deferred (total since boot). */
  readonly deferredFrees: number;
  /** NMI allocations/frees that found a lock busy (total since boot). */
  readonly nmiLockBusy: number;
  readonly classes: readonly SlabClassStats[];
}

/**
 * A snapshot of the allocator for tests and stats (racy while CPUs run). First frees what NMIs
 * deferred and shrinks the slab caches (the empty slab each class keeps), so pagesFree can be
 * compared with a snapshot taken at boot.
 */
export function memStats(): MemStats {
  if (!inNmi()) {
    slabDrainDeferred();
    kmemCacheShrink();
  }
  let bytesInUse = 0;
  let ownersInUse = 0;
  for (let id = 0; id < MEM_MAX_OWNERS; id++) {
    const b = Atomics.load(I32, OWNER_I + id);
    if (b !== 0) { bytesInUse += b; ownersInUse++; }
  }
  const s = slabStats();
  return {
    bytesInUse, pagesTotal: pagesTotal(), pagesFree: pagesFree(), pagesReserved: pagesReserved(),
    slabPages: s.slabPages, slabObjects: s.slabObjects, largeAllocs: s.largeAllocs,
    largePages: s.largePages, percpuAllocs: s.percpuAllocs, percpuBytes: s.percpuBytes, ownersInUse,
    deferredFrees: s.deferredFrees, nmiLockBusy: s.nmiLockBusy, classes: s.classes,
  };
}

/**
 * Check the allocator's invariants (buddy lists, slabs, lock words, and that pages in use match
 * slab + large pages). Only while no CPU allocates. Returns violations (empty = consistent).
 */
export function memCheck(): string[] {
  const out = zoneCheck().concat(slabCheck());
  const s = slabStats();
  const used = pagesTotal() - pagesFree();
  if (used < s.slabPages + s.largePages) out.push(`pages in use ${used} < slab ${s.slabPages} + large ${s.largePages}`);
  return out;
}
