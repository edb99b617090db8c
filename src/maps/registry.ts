/*
 * registry.ts — creating maps, finding them again from any thread, and their lifetime
 * (kernel/bpf/syscall.c map_create / bpf_map_get / bpf_map_put, the map idr).
 *
 * Layout: the map id table at MAP_TABLE_BASE, MAP_TABLE_ENTRIES u32 words in the arena header.
 *   word 0        serial counter (Atomics.add): every created map gets a unique MAP_SERIAL
 *   word id       struct bpf_map pointer of map `id` (1 .. MAP_TABLE_ENTRIES-1), 0 = free
 * Slots are claimed with compareExchange 0 -> ptr and cleared when the map is freed; ids are
 * given cyclically (the kernel's idr_alloc_cyclic): the search starts after the last id given.
 *
 * Invariants: a live map's MAP_ID slot holds its pointer; MAP_REFCNT >= MAP_USERCNT >= 0 and the
 * map is freed exactly once, when MAP_REFCNT reaches 0.
 *
 * Map types: MAP_TYPE_OPS, one entry per BPF_MAP_TYPE_* (bpf_types.h), holds each type's
 * allocCheck / alloc / open. map_in_map.ts needs openMap, mapById and bpfMapPut back (inner maps):
 * it gets them from mapInMapRegistryInit at this module's init, not by importing this file.
 *
 * Contexts: createMap, bpfMapPut's free path: main thread. openMap/mapById: any thread; each
 * thread caches one BpfMapImpl per (pointer, serial), so a program's maps are plain objects whose
 * fields the JIT can keep in registers.
 */
import { I32, U8, arenaGeneration } from '../mem/arena.js';
import { MAP_TABLE_BASE, MAP_TABLE_ENTRIES } from '../mem/layout.js';
import { kzalloc, kfree } from '../mm/slab.js';
import { allocOwner, freeOwner } from '../mm/owners.js';
import { BpfError, EINVAL, ENOMEM, ENOSPC } from '../errno.js';
import {
  mapSpecCheck, MAP_TYPE, MAP_KEY_SIZE, MAP_VALUE_SIZE, MAP_MAX_ENTRIES, MAP_FLAGS, MAP_ID,
  MAP_SERIAL, MAP_REFCNT, MAP_USERCNT, MAP_OWNER, MAP_LOCK_OFF, MAP_TIMER_OFF, MAP_GRAPH_REC, MAP_STATE, MAP_NAME, SIZEOF_BPF_MAP,
  MAP_STATE_LIVE, MAP_STATE_FREED, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_HASH,
  BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH,
  BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS, type BpfMapImpl, type MapSpec, type ResolvedMapSpec,
} from './map_ops.js';
import { BpfHtab, htabMapAllocCheck, htabMapAlloc } from './hashtab.js';
import { BpfArray, arrayMapAllocCheck, arrayMapAlloc } from './arraymap.js';
import { BpfMapInMap, mapInMapAllocCheck, mapInMapAlloc, mapInMapRegistryInit } from './map_in_map.js';
import { graphRecordBytes, writeGraphRecord } from './btf_record.js';

export type { MapSpec } from './map_ops.js';

const TABLE_I = MAP_TABLE_BASE >> 2;

let cacheGen = -1; // arenaGeneration this state belongs to (a number: keeps no arena alive)
let cache = new Map<number, BpfMapImpl>();

/**
 * What the registry needs of a map type (the kernel's bpf_map_ops map_alloc_check / map_alloc,
 * plus the class of a thread's handle). Everything else a map does goes through its BpfMapImpl.
 */
interface MapTypeOps {
  /** map_alloc_check: throws BpfError naming the field; returns the inner-map template (*_of_maps) or 0. */
  readonly allocCheck: (spec: ResolvedMapSpec, innerMap: unknown) => number;
  /** map_alloc: the type's part of struct bpf_map at `ptr`; throws BpfError having freed what it took. */
  readonly alloc: (ptr: number, spec: ResolvedMapSpec, owner: number, template: number) => void;
  /** This thread's handle on a live map of the type. */
  readonly open: (ptr: number) => BpfMapImpl;
}

const HTAB_OPS: MapTypeOps = {
  allocCheck: (spec) => { htabMapAllocCheck(spec); return 0; },
  alloc: (ptr, spec, owner) => htabMapAlloc(ptr, spec, owner),
  open: (ptr) => new BpfHtab(ptr),
};
const ARRAY_OPS: MapTypeOps = {
  allocCheck: (spec) => { arrayMapAllocCheck(spec); return 0; },
  alloc: (ptr, spec, owner) => arrayMapAlloc(ptr, spec, owner),
  open: (ptr) => new BpfArray(ptr),
};
const MAP_IN_MAP_OPS: MapTypeOps = {
  allocCheck: mapInMapAllocCheck,
  alloc: mapInMapAlloc,
  open: (ptr) => new BpfMapInMap(ptr),
};

/** The map types there are (include/linux/bpf_types.h), by BPF_MAP_TYPE_* id. */
const MAP_TYPE_OPS: ReadonlyMap<number, MapTypeOps> = new Map([
  [BPF_MAP_TYPE_HASH, HTAB_OPS],
  [BPF_MAP_TYPE_PERCPU_HASH, HTAB_OPS],
  [BPF_MAP_TYPE_LRU_HASH, HTAB_OPS],
  [BPF_MAP_TYPE_LRU_PERCPU_HASH, HTAB_OPS],
  [BPF_MAP_TYPE_ARRAY, ARRAY_OPS],
  [BPF_MAP_TYPE_PERCPU_ARRAY, ARRAY_OPS],
  [BPF_MAP_TYPE_ARRAY_OF_MAPS, MAP_IN_MAP_OPS],
  [BPF_MAP_TYPE_HASH_OF_MAPS, MAP_IN_MAP_OPS],
]);

/**
 * map_create(): validate `spec` (BpfError EINVAL/E2BIG/ENOTSUPP naming the field), allocate the
 * map in kernel memory, give it an id, and return this thread's handle. The map starts with one
 * reference, the user's (MAP_REFCNT = MAP_USERCNT = 1). Main thread only.
 */
export function createMap(spec: MapSpec): BpfMapImpl {
  const r = mapSpecCheck(spec);
  const ops = MAP_TYPE_OPS.get(r.typeId);
  if (ops === undefined) throw new BpfError(EINVAL, `type ${r.type} is not implemented yet`);
  const template = ops.allocCheck(r, spec.innerMap); // *_of_maps: the inner map template

  const owner = allocOwner(`map:${r.name !== '' ? r.name : r.type}`);
  const ptr = kzalloc(SIZEOF_BPF_MAP, owner);
  if (ptr === 0) {
    freeOwner(owner);
    throw new BpfError(ENOMEM, `cannot allocate struct bpf_map for '${r.name}'`);
  }
  // idr_alloc_cyclic, as the kernel's map ids: the next free id after the last one given, so an
  // id is not reused soon after its map is freed (histories and tools name maps by id)
  let id = 0;
  const start = Atomics.load(I32, TABLE_I) % (MAP_TABLE_ENTRIES - 1);
  for (let n = 0; n < MAP_TABLE_ENTRIES - 1; n++) {
    const i = ((start + n) % (MAP_TABLE_ENTRIES - 1)) + 1;
    if (Atomics.compareExchange(I32, TABLE_I + i, 0, ptr) === 0) { id = i; break; }
  }
  if (id === 0) {
    kfree(ptr);
    freeOwner(owner);
    throw new BpfError(ENOSPC, `all ${MAP_TABLE_ENTRIES - 1} map ids are in use`);
  }
  const s = (off: number, v: number): void => { I32[(ptr + off) >> 2] = v; };
  s(MAP_TYPE, r.typeId);
  s(MAP_KEY_SIZE, r.keySize);
  s(MAP_VALUE_SIZE, r.valueSize);
  s(MAP_MAX_ENTRIES, r.maxEntries);
  s(MAP_FLAGS, r.flags);
  s(MAP_ID, id);
  s(MAP_SERIAL, Atomics.add(I32, TABLE_I, 1) + 1);
  s(MAP_REFCNT, 1);
  s(MAP_USERCNT, 1);
  s(MAP_OWNER, owner);
  s(MAP_LOCK_OFF, r.spinLockOffset + 1);
  s(MAP_TIMER_OFF, r.timerOffset + 1);
  const grec = r.record !== undefined && (r.record.roots.length > 0 || r.record.resLockOffset >= 0) ? kzalloc(graphRecordBytes(), owner) : 0;
  if (r.record !== undefined && (r.record.roots.length > 0 || r.record.resLockOffset >= 0)) {
    if (grec === 0) { Atomics.store(I32, TABLE_I + id, 0); kfree(ptr); freeOwner(owner); throw new BpfError(ENOMEM, 'createMap: no memory for the value record'); }
    try { writeGraphRecord(grec, r.record); } catch (e: unknown) { Atomics.store(I32, TABLE_I + id, 0); kfree(grec); kfree(ptr); freeOwner(owner); throw e; }
  }
  s(MAP_GRAPH_REC, grec);
  for (let i = 0; i < r.name.length; i++) U8[ptr + MAP_NAME + i] = r.name.charCodeAt(i);
  try {
    ops.alloc(ptr, r, owner, template);
  } catch (e: unknown) {
    Atomics.store(I32, TABLE_I + id, 0);
    if (grec !== 0) kfree(grec);
    kfree(ptr);
    freeOwner(owner);
    throw e;
  }
  Atomics.store(I32, (ptr + MAP_STATE) >> 2, MAP_STATE_LIVE);
  return openMap(ptr);
}

/** This thread's handle on the map at `ptr` (any thread; cached per pointer and serial). */
export function openMap(ptr: number): BpfMapImpl {
  if (cacheGen !== arenaGeneration) { cacheGen = arenaGeneration; cache = new Map(); }
  const serial = I32[(ptr + MAP_SERIAL) >> 2]!;
  const hit = cache.get(ptr);
  if (hit !== undefined && hit.serial === serial) return hit;
  if (Atomics.load(I32, (ptr + MAP_STATE) >> 2) !== MAP_STATE_LIVE) {
    throw new BpfError(EINVAL, `openMap(0x${ptr.toString(16)}): not a live map`);
  }
  const t = I32[(ptr + MAP_TYPE) >> 2]!;
  const m = (MAP_TYPE_OPS.get(t) ?? ARRAY_OPS).open(ptr);
  cache.set(ptr, m);
  return m;
}

/** The map with id `id`, or undefined (any thread). */
export function mapById(id: number): BpfMapImpl | undefined {
  if (!(id > 0 && id < MAP_TABLE_ENTRIES)) return undefined;
  const ptr = Atomics.load(I32, TABLE_I + id);
  if (ptr === 0 || Atomics.load(I32, (ptr + MAP_STATE) >> 2) !== MAP_STATE_LIVE) return undefined;
  return openMap(ptr);
}

/** Ids of all live maps (main thread; for tools and tests). */
export function liveMapIds(): number[] {
  const ids: number[] = [];
  for (let i = 1; i < MAP_TABLE_ENTRIES; i++) if (Atomics.load(I32, TABLE_I + i) !== 0) ids.push(i);
  return ids;
}

/** bpf_map_inc(): a program (or another holder) takes a reference. */
export function bpfMapInc(m: BpfMapImpl): void {
  Atomics.add(I32, (m.ptr + MAP_REFCNT) >> 2, 1);
}

/** bpf_map_inc_with_uref(): a user-visible reference (a second handle, a pin). */
export function bpfMapIncWithUref(m: BpfMapImpl): void {
  Atomics.add(I32, (m.ptr + MAP_REFCNT) >> 2, 1);
  Atomics.add(I32, (m.ptr + MAP_USERCNT) >> 2, 1);
}

/**
 * bpf_map_put(): drop a reference; at zero the map is freed (main thread: no program can run it
 * any more, since loaded programs hold references). Returns true when the map was freed.
 */
export function bpfMapPut(m: BpfMapImpl): boolean {
  const left = Atomics.sub(I32, (m.ptr + MAP_REFCNT) >> 2, 1) - 1;
  if (left > 0) return false;
  if (left < 0) throw new BpfError(EINVAL, `bpf_map_put: map ${m.id} '${m.name}' reference count went negative`);
  mapFree(m);
  return true;
}

/** bpf_map_put_with_uref(): close of a user handle. map_release_uref runs at usercnt 0. */
export function bpfMapPutWithUref(m: BpfMapImpl): boolean {
  const users = Atomics.sub(I32, (m.ptr + MAP_USERCNT) >> 2, 1) - 1;
  if (users === 0) m.releaseUref();
  return bpfMapPut(m);
}

function mapFree(m: BpfMapImpl): void {
  const ptr = m.ptr;
  if (Atomics.compareExchange(I32, (ptr + MAP_STATE) >> 2, MAP_STATE_LIVE, MAP_STATE_FREED) !== MAP_STATE_LIVE) return;
  const owner = I32[(ptr + MAP_OWNER) >> 2]!;
  m.free();
  Atomics.compareExchange(I32, TABLE_I + m.id, ptr, 0);
  cache.delete(ptr);
  const grec = I32[(ptr + MAP_GRAPH_REC) >> 2]!;
  if (grec !== 0) kfree(grec);
  kfree(ptr);
  freeOwner(owner);
}

export function mapRefcnt(m: BpfMapImpl): number { return Atomics.load(I32, (m.ptr + MAP_REFCNT) >> 2); }
export function mapUsercnt(m: BpfMapImpl): number { return Atomics.load(I32, (m.ptr + MAP_USERCNT) >> 2); }

mapInMapRegistryInit({ openMap, mapById, bpfMapPut });
