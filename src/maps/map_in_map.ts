/*
 * map_in_map.ts — hash_of_maps and array_of_maps (kernel/bpf/map_in_map.c, the *_of_maps ops of
 * hashtab.c and arraymap.c): outer maps whose values are other maps.
 *
 * Layout: struct bpf_map header (map_ops.ts), then
 *   MAP_INNER + MIM_META_*  the inner-map template (the kernel's inner_map_meta), written once at
 *                           creation: type, key size, value size, max_entries, flags, spin-lock
 *                           offset + 1. Copied from the template map, which may be closed afterwards.
 *   MIM_STORAGE  hash_of_maps: a private struct bpf_htab (a plain 'hash' map, value_size 4, not in
 *                the map id table) whose values are inner struct bpf_map pointers.
 *                array_of_maps: u32[max_entries] of inner struct bpf_map pointers (array->ptrs), 0 = empty.
 *   MIM_LOCK     hash_of_maps: writer lock (spinlock_t, LC_MAP_OF_MAPS: sleeping on RT, so a legacy dynamic
 *                storage map's sleeping bucket lock may nest in it) serialising syscall-side update/delete.
 *   MIM_VALUE    hash_of_maps: the pointer word handed to the storage update (under MIM_LOCK).
 *
 * Values: the syscall side passes a 4-byte map **id** (the simulation's fd) and reads back the
 * inner map's id (map_fd_sys_lookup_elem); the program side sees inner map pointers:
 * lookup(key) returns the inner struct bpf_map pointer or 0, lookupInner(key) its BpfMapImpl.
 *
 * Invariants: every pointer stored in the outer map is a live map that matches the template and
 * holds one reference (MAP_REFCNT) for each slot that stores it. A pointer removed from the outer
 * map (replace, delete) keeps that reference until a normal RCU grace period has passed (call_rcu
 * -> bpf_map_put on the main thread), so a program that read it inside its read section can use it
 * to the end of that section. An inner map is never itself a map-in-map.
 *
 * Locking: program-side lookups take no lock (hash: the storage's lock-free nulls walk; array: one
 * load). array_of_maps writers swap a slot with one atomic exchange (the kernel's xchg).
 * hash_of_maps writers hold MIM_LOCK around "read old pointer, update/delete storage", so the old
 * pointer they put is exactly the one their operation removed. Lock order: MIM_LOCK -> htab bucket.
 * Ordering: an inner pointer is read with Atomics.load (rcu_dereference) and stored with
 * Atomics.exchange (array) or published inside a storage element by hashtab's Atomics.store of
 * the link (hash), so the inner map's header, written before, is visible to the reader. The inner
 * map's header words read after that (id, serial) were written once at creation: plain.
 *
 * Contexts: lookup/lookupInner: programs, any context, RCU read section held by the caller.
 * update/delete from programs: -EINVAL (the verifier allows only map_lookup_elem on these maps).
 * sys*: task context inside bpf_disable_instrumentation + RCU (BpfMap, ctx.sys.*). The grace-period
 * wait of a syscall-side update/delete (maybe_wait_bpf_programs) is BpfMap's, on the main thread
 * (`await outer.update(k, inner)`); ctx.sys.* from a CPU worker does not wait (the reference is
 * still put only after a grace period). Creation and free: main thread.
 *
 * Differences from the kernel: the "fd" is the map id (a stale id or a freed map is -EINVAL); a
 * closed BpfMap handle, or one of a stopped runtime, is EBADF as a closed fd. hash_of_maps
 * serialises writers with one per-map lock instead of putting the old pointer inside
 * htab_map_update_elem (hashtab.ts stays type-agnostic). lookupAndDelete (both types) is -EINVAL
 * for any flag (no spin lock here), else -ENOTSUPP as in the kernel, and so is
 * lookupAndDeleteBatch (the kernel supports it for hash_of_maps). stats().elements of array_of_maps counts occupied slots.
 */
import { I32, U8, U32, nrCpus } from '../mem/arena.js';
import { thisCpu, pcpuI } from '../mem/this_cpu.js';
import { PROG_LOCKED_I, helperUnderLock } from '../cpu/prog_locked.js';
import { kzalloc, kfree } from '../mm/slab.js';
import { OWNER_KERNEL } from '../mm/owners.js';
import { spinLockIrqsave, spinUnlockIrqrestore, lockWord } from '../locks/raw_spinlock.js';
import { LC_MAP_OF_MAPS } from '../locks/lock_classes.js';
import { callRcu, defineRcuKind, registerRcuCallback, rcuReadLock, rcuReadUnlock } from '../rcu/rcu.js';
import { splat } from '../debug/splat.js';
import { BpfError, E2BIG, EBADF, EINVAL, ENOENT, ENOMEM, ENOTSUPP } from '../errno.js';
import {
  BPF_ANY, BPF_F_INNER_MAP, BPF_F_RDONLY_PROG, BPF_F_WRONLY_PROG, BPF_F_ACCESS_MASK,
  BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_HASH_OF_MAPS,
  BPF_MAP_TYPE_ARRAY_OF_MAPS, MAP_TYPE, MAP_KEY_SIZE, MAP_VALUE_SIZE, MAP_MAX_ENTRIES, MAP_FLAGS,
  MAP_ID, MAP_SERIAL, MAP_REFCNT, MAP_USERCNT, MAP_OWNER, MAP_LOCK_OFF, MAP_TIMER_OFF, MAP_STATE, MAP_NAME,
  MAP_INNER, MAP_OPS_BASE, MAP_STATE_LIVE, SIZEOF_BPF_MAP, BATCH_RES_COUNT, BATCH_RES_OUT,
  
  type BpfMapImpl, type BpfMapStats, type ResolvedMapSpec, ldU32Unaligned, BpfMapHeader, sysLockFlagsCheck } from './map_ops.js';
import { BpfHtab, htabMapAllocCheck, htabMapAlloc } from './hashtab.js';
import { arrayMapAllocCheck } from './arraymap.js';

// ---- the map registry's entry points (syscall.c's bpf_map_get / bpf_map_put) ----
//
// registry.ts owns the table of map types (bpf_types.h) and so imports this file; importing it
// back would be a cycle. It hands these over when it is loaded (mapInMapRegistryInit), which is
// before any map-in-map exists: only the registry creates maps and opens handles on them.

/** What map_in_map needs of the registry. */
export interface MapRegistryOps {
  readonly openMap: (ptr: number) => BpfMapImpl;
  readonly mapById: (id: number) => BpfMapImpl | undefined;
  readonly bpfMapPut: (m: BpfMapImpl) => boolean;
}

function registryMissing(): never {
  throw new Error('map_in_map: the map registry (maps/registry.ts) has not been loaded');
}
let openMap: MapRegistryOps['openMap'] = registryMissing;
let mapById: MapRegistryOps['mapById'] = registryMissing;
let bpfMapPut: MapRegistryOps['bpfMapPut'] = registryMissing;

/** Called once per thread by registry.ts at its module init. */
export function mapInMapRegistryInit(ops: MapRegistryOps): void {
  ({ openMap, mapById, bpfMapPut } = ops);
}

// ---- layout ----
export const MIM_META_TYPE = MAP_INNER + 0;
export const MIM_META_KEY_SIZE = MAP_INNER + 4;
export const MIM_META_VALUE_SIZE = MAP_INNER + 8;
export const MIM_META_MAX_ENTRIES = MAP_INNER + 12;
export const MIM_META_FLAGS = MAP_INNER + 16;
export const MIM_META_LOCK_OFF = MAP_INNER + 20;
export const MIM_META_TIMER_OFF = MAP_INNER + 24;
export const MIM_STORAGE = MAP_OPS_BASE + 0;
export const MIM_LOCK = MAP_OPS_BASE + 4;
export const MIM_VALUE = MAP_OPS_BASE + 8;

/** True for hash_of_maps / array_of_maps type ids. */
export function isMapInMapType(typeId: number): boolean {
  return typeId === BPF_MAP_TYPE_HASH_OF_MAPS || typeId === BPF_MAP_TYPE_ARRAY_OF_MAPS;
}

// ---- deferred put of a removed inner map (bpf_map_fd_put_ptr with need_defer) ----

const RCU_KIND_PUT_INNER = defineRcuKind('map_in_map.put_inner');

/** RCU callback (main thread, after a grace period): drop the outer map's reference. */
function putInnerAfterGp(ptr: number): void {
  if (Atomics.load(I32, (ptr + MAP_STATE) >> 2) !== MAP_STATE_LIVE) {
    splat('invariant', `map_in_map: deferred put of inner map 0x${ptr.toString(16)}, which is no longer live (reference count underflow?)`);
    return;
  }
  bpfMapPut(openMap(ptr));
}
registerRcuCallback(RCU_KIND_PUT_INNER, putInnerAfterGp);

/** Put the outer map's reference on `ptr` after a grace period. Any thread, task context. */
function putInnerDeferred(ptr: number): void {
  if (callRcu(RCU_KIND_PUT_INNER, ptr) !== 0) {
    // no memory for the callback record: keep the reference (a leak, never a use after free)
    splat('leak', `map_in_map: no memory to defer the put of inner map 0x${ptr.toString(16)}; its reference is kept`);
  }
}

/** Undo our own bpfMapInc after a failed update: immediately on the main thread, else deferred. */
function putInnerUndo(ptr: number): void {
  if (thisCpu === nrCpus) bpfMapPut(openMap(ptr));
  else putInnerDeferred(ptr);
}

/** bpf_map_inc_not_zero(): take a reference unless the map is already being freed. */
function mapIncNotZero(ptr: number): boolean {
  const i = (ptr + MAP_REFCNT) >> 2;
  for (;;) {
    const c = Atomics.load(I32, i);
    if (c <= 0) return false;
    if (Atomics.compareExchange(I32, i, c, c + 1) === c) return true;
  }
}

// ---- small helpers ----



function stU32(p: number, v: number): void {
  if ((p & 3) === 0) { U32[p >> 2] = v; return; }
  U8[p] = v & 0xff; U8[p + 1] = (v >>> 8) & 0xff; U8[p + 2] = (v >>> 16) & 0xff; U8[p + 3] = v >>> 24;
}

function isArrayTypeId(t: number): boolean {
  return t === BPF_MAP_TYPE_ARRAY || t === BPF_MAP_TYPE_PERCPU_ARRAY;
}

/**
 * bpf_map_meta_equal / array_map_meta_equal: same type, key and value size, flags and spin-lock
 * placement (the BTF record); arrays also the same max_entries unless the template has
 * BPF_F_INNER_MAP. Hash-type inner maps may differ in max_entries (kernel since 5.10). The record
 * (spin lock and timer placement) must match too (btf_record_equal).
 */
function metaEqual(outer: number, inner: number): boolean {
  const g = (p: number, off: number): number => I32[(p + off) >> 2]!;
  const t = g(outer, MIM_META_TYPE);
  if (g(inner, MAP_TYPE) !== t || g(inner, MAP_KEY_SIZE) !== g(outer, MIM_META_KEY_SIZE)
    || g(inner, MAP_VALUE_SIZE) !== g(outer, MIM_META_VALUE_SIZE) || g(inner, MAP_FLAGS) !== g(outer, MIM_META_FLAGS)
    || g(inner, MAP_LOCK_OFF) !== g(outer, MIM_META_LOCK_OFF) || g(inner, MAP_TIMER_OFF) !== g(outer, MIM_META_TIMER_OFF)) return false;
  if (isArrayTypeId(t) && (g(outer, MIM_META_FLAGS) & BPF_F_INNER_MAP) === 0 && g(inner, MAP_MAX_ENTRIES) !== g(outer, MIM_META_MAX_ENTRIES)) return false;
  return true;
}

/** One thread's handle on a hash_of_maps / array_of_maps map. Construct with openMap(). */
export class BpfMapInMap extends BpfMapHeader implements BpfMapImpl {
  readonly percpu = false;
  readonly sysValueSize: number;
  /** hash_of_maps: the storage hash (values: inner map pointers); null for array_of_maps. */
  readonly storage: BpfHtab | null;
  /** array_of_maps: u32 index of ptrs[0]; 0 for hash_of_maps. */
  readonly ptrsI: number;
  readonly lock: number;
  readonly valWord: number;
  /** the inner map last handed out by lookupInner on this thread (per-thread cache) */
  #cPtr = 0;
  #cImpl: BpfMapImpl | null = null;

  constructor(ptr: number) {
    super(ptr, 'hash_of_maps');
    const g = (off: number): number => I32[(ptr + off) >> 2]!;
    this.sysValueSize = this.valueSize;
    this.lock = ptr + MIM_LOCK;
    this.valWord = ptr + MIM_VALUE;
    if (this.typeId === BPF_MAP_TYPE_HASH_OF_MAPS) {
      this.storage = new BpfHtab(g(MIM_STORAGE));
      this.ptrsI = 0;
    } else {
      this.storage = null;
      this.ptrsI = g(MIM_STORAGE) >> 2;
    }
  }

  // ---- program path ----

  /** bpf_map_lookup_elem on an outer map: the inner map's struct bpf_map pointer, or 0. */
  lookup(key: number): number {
    if (I32[pcpuI + PROG_LOCKED_I] !== 0) helperUnderLock('bpf_map_lookup_elem');
    const s = this.storage;
    if (s !== null) {
      const v = s.lookup(key);
      return v === 0 ? 0 : Atomics.load(I32, v >> 2);
    }
    const idx = ldU32Unaligned(key);
    if (idx >= this.maxEntries) return 0;
    return Atomics.load(I32, this.ptrsI + idx);
  }

  /**
   * The inner map stored under `key`, ready for its own lookup/update, or null. The returned
   * handle is valid until the caller's RCU read section ends (the program's run). No allocation:
   * the last inner map is cached on this handle, others come from openMap's per-thread cache.
   * Meeting a freed inner map (a broken grace period) raises a 'use_after_free' splat and gives null.
   */
  lookupInner(key: number): BpfMapImpl | null {
    const p = this.lookup(key);
    if (p === 0) return null;
    const c = this.#cImpl;
    if (p === this.#cPtr && c !== null && I32[(p + MAP_SERIAL) >> 2] === c.serial) return c;
    return this.#openInner(p);
  }

  #openInner(p: number): BpfMapImpl | null {
    const st = Atomics.load(I32, (p + MAP_STATE) >> 2);
    if (st !== MAP_STATE_LIVE) {
      splat('use_after_free', `map '${this.name}': inner map 0x${p.toString(16)} found in the outer map is not live (state 0x${(st >>> 0).toString(16)})`);
      return null;
    }
    const m = openMap(p);
    this.#cPtr = p;
    this.#cImpl = m;
    return m;
  }

  ownsValue(_value: number): boolean | null {
    return false; // an outer map's values are map pointers, never special fields
  }

  lookupPercpu(_key: number, _cpu: number): number {
    return 0;
  }

  /** Programs may not update an outer map (the verifier allows map_lookup_elem only): -EINVAL. */
  update(_key: number, _value: number, _flags: number): number {
    return -EINVAL;
  }

  /** Programs may not delete from an outer map: -EINVAL. */
  delete(_key: number): number {
    return -EINVAL;
  }

  // ---- syscall path ----

  /** map_fd_sys_lookup_elem: the inner map's id (u32) into `out`. */
  sysLookup(key: number, out: number, flags: number): number {
    if (flags !== 0) return -EINVAL;
    const p = this.lookup(key);
    if (p === 0) return -ENOENT;
    stU32(out, I32[(p + MAP_ID) >> 2]!);
    return 0;
  }

  /**
   * bpf_fd_htab_map_update_elem / bpf_fd_array_map_update_elem: `value` points to the inner map's
   * id. Takes a reference on it (matching the template), stores it, and puts the replaced inner
   * map after a grace period. The caller waits for the grace period (BpfMap).
   */
  sysUpdate(key: number, value: number, flags: number): number {
    const s = this.storage;
    let idx = 0;
    if (s === null) {
      if (flags !== BPF_ANY) return -EINVAL;
      idx = ldU32Unaligned(key);
      if (idx >= this.maxEntries) return -E2BIG;
    }
    const inner = this.#fdGetPtr(ldU32Unaligned(value));
    if (inner < 0) return inner;
    if (s === null) {
      const old = Atomics.exchange(I32, this.ptrsI + idx, inner);
      if (old !== 0) putInnerDeferred(old);
      return 0;
    }
    const err = spinLockIrqsave(this.lock, LC_MAP_OF_MAPS);
    if (err !== 0) { putInnerUndo(inner); return err; }
    const v = s.lookup(key);
    const old = v === 0 ? 0 : Atomics.load(I32, v >> 2);
    I32[this.valWord >> 2] = inner;
    const ret = s.update(key, this.valWord, flags);
    spinUnlockIrqrestore(this.lock);
    if (ret !== 0) { putInnerUndo(inner); return ret; }
    if (old !== 0) putInnerDeferred(old);
    return 0;
  }

  /** bpf_map_fd_get_ptr: the live, template-matching map with id `id`, referenced; or -errno. */
  #fdGetPtr(id: number): number {
    const m = mapById(id);
    if (m === undefined) return -EINVAL;
    if (!metaEqual(this.ptr, m.ptr)) return -EINVAL;
    if (!mapIncNotZero(m.ptr)) return -EINVAL;
    return m.ptr;
  }

  sysDelete(key: number): number {
    const s = this.storage;
    if (s === null) {
      const idx = ldU32Unaligned(key);
      if (idx >= this.maxEntries) return -E2BIG;
      const old = Atomics.exchange(I32, this.ptrsI + idx, 0);
      if (old === 0) return -ENOENT;
      putInnerDeferred(old);
      return 0;
    }
    const err = spinLockIrqsave(this.lock, LC_MAP_OF_MAPS);
    if (err !== 0) return err;
    const ret = s.sysLookupAndDelete(key, this.valWord, 0);
    const old = ret === 0 ? I32[this.valWord >> 2]! : 0;
    spinUnlockIrqrestore(this.lock);
    if (ret !== 0) return ret;
    if (old !== 0) putInnerDeferred(old);
    return 0;
  }

  /** map_lookup_and_delete_elem: the flag check (EINVAL; no spin lock here) before ENOTSUPP. */
  sysLookupAndDelete(_key: number, _out: number, flags: number): number {
    if (sysLockFlagsCheck(flags, -1) !== 0) return -EINVAL;
    return -ENOTSUPP;
  }

  getNextKey(key: number, outKey: number): number {
    const s = this.storage;
    if (s !== null) return s.getNextKey(key, outKey);
    // array_map_get_next_key
    const idx = key === 0 ? 0xffffffff : ldU32Unaligned(key);
    let next: number;
    if (idx >= this.maxEntries) next = 0;
    else if (idx === this.maxEntries - 1) return -ENOENT;
    else next = idx + 1;
    stU32(outKey, next);
    return 0;
  }

  /**
   * BPF_MAP_LOOKUP_BATCH with inner map ids as values (hash: whole buckets, cursor = bucket;
   * array: generic batch, cursor = next index, empty slots skipped). Delete: -ENOTSUPP.
   */
  lookupBatch(inBatch: number, keys: number, values: number, count: number, elemFlags: number, flags: number, doDelete: boolean, res: number): number {
    const resI = res >> 2;
    I32[resI + (BATCH_RES_COUNT >> 2)] = 0;
    I32[resI + (BATCH_RES_OUT >> 2)] = inBatch;
    if (doDelete) return -ENOTSUPP;
    if (elemFlags !== 0 || flags !== 0) return -EINVAL;
    const s = this.storage;
    if (s !== null) {
      // writers are excluded while the pointers are copied and turned into ids, so every pointer
      // copied still holds the outer map's reference
      const err = spinLockIrqsave(this.lock, LC_MAP_OF_MAPS);
      if (err !== 0) return err;
      const ret = s.lookupBatch(inBatch, keys, values, count, 0, 0, false, res);
      const n = I32[resI + (BATCH_RES_COUNT >> 2)]!;
      for (let i = 0; i < n; i++) {
        const p = ldU32Unaligned(values + i * 4);
        stU32(values + i * 4, p === 0 ? 0 : I32[(p + MAP_ID) >> 2]!);
      }
      spinUnlockIrqrestore(this.lock);
      return ret;
    }
    if (count === 0) return 0;
    let idx = inBatch >>> 0;
    let cp = 0;
    let ret = 0;
    while (cp < count) {
      if (idx >= this.maxEntries) { ret = -ENOENT; break; }
      rcuReadLock();
      const p = Atomics.load(I32, this.ptrsI + idx);
      const id = p === 0 ? 0 : I32[(p + MAP_ID) >> 2]!;
      rcuReadUnlock();
      if (p !== 0) {
        stU32(keys + cp * 4, idx);
        stU32(values + cp * 4, id);
        cp++;
      }
      idx++;
    }
    I32[resI + (BATCH_RES_COUNT >> 2)] = cp;
    I32[resI + (BATCH_RES_OUT >> 2)] = idx;
    return ret;
  }

  // ---- lifetime and introspection ----

  releaseUref(): void {
    // nothing: inner maps stay referenced until the outer map is freed
  }

  /** Inner map pointers currently stored (main thread, no writer running). */
  innerPtrs(): number[] {
    const out: number[] = [];
    const s = this.storage;
    if (s === null) {
      for (let i = 0; i < this.maxEntries; i++) {
        const p = I32[this.ptrsI + i]!;
        if (p !== 0) out.push(p);
      }
      return out;
    }
    const k = kzalloc(Math.max(8, 2 * ((this.keySize + 7) & ~7)), OWNER_KERNEL);
    if (k === 0) throw new BpfError(ENOMEM, `map '${this.name}': no memory to walk the outer map`);
    const k2 = k + ((this.keySize + 7) & ~7);
    let r = s.getNextKey(0, k);
    while (r === 0) {
      const v = s.lookup(k);
      if (v !== 0) out.push(I32[v >> 2]!);
      U8.copyWithin(k2, k, k + this.keySize);
      r = s.getNextKey(k2, k);
    }
    kfree(k);
    return out;
  }

  /** htab_of_map_free / array_of_map_free: put every inner map (now: nothing can reach them). */
  free(): void {
    const inner = this.innerPtrs();
    const s = this.storage;
    if (s !== null) {
      const storagePtr = s.ptr;
      s.free();
      kfree(storagePtr);
    } else {
      kfree(this.ptrsI << 2);
    }
    for (const p of inner) {
      if (Atomics.load(I32, (p + MAP_STATE) >> 2) === MAP_STATE_LIVE) bpfMapPut(openMap(p));
      else splat('invariant', `map '${this.name}': inner map 0x${p.toString(16)} freed while the outer map still held it`);
    }
  }

  memUsage(): number {
    const s = this.storage;
    if (s !== null) return SIZEOF_BPF_MAP + s.memUsage();
    return SIZEOF_BPF_MAP + 4 * this.maxEntries;
  }

  stats(): BpfMapStats {
    const s = this.storage;
    if (s !== null) return { ...s.stats(), memoryBytes: this.memUsage() };
    let n = 0;
    for (let i = 0; i < this.maxEntries; i++) if (I32[this.ptrsI + i] !== 0) n++;
    return { elements: n, memoryBytes: this.memUsage(), maxEntries: this.maxEntries, freeElements: -1, spareElements: 0, nBuckets: 0 };
  }

  check(): string[] {
    const out: string[] = [];
    if (this.storage !== null) {
      for (const v of this.storage.check()) out.push(`storage: ${v}`);
      const lw = lockWord(this.lock);
      if (lw !== 0) out.push(`writer lock word 0x${lw.toString(16)}, expected 0`);
    }
    for (const p of this.innerPtrs()) {
      if (Atomics.load(I32, (p + MAP_STATE) >> 2) !== MAP_STATE_LIVE) { out.push(`inner map 0x${p.toString(16)} is not live`); continue; }
      if (Atomics.load(I32, (p + MAP_REFCNT) >> 2) < 1) out.push(`inner map ${I32[(p + MAP_ID) >> 2]} has no reference`);
      if (!metaEqual(this.ptr, p)) out.push(`inner map ${I32[(p + MAP_ID) >> 2]} does not match the template`);
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// creation (main thread)

/** What MapSpec.innerMap may be: a BpfMap handle (anything with `impl`) or a BpfMapImpl. */
function templatePtr(t: unknown): number {
  if (t === undefined || t === null) throw new BpfError(EINVAL, 'innerMap is required for hash_of_maps and array_of_maps (the inner map template)');
  if (typeof t !== 'object') throw new BpfError(EINVAL, `innerMap must be a map (BpfMap or BpfMapImpl); got ${typeof t}`);
  const o = t as { readonly impl?: unknown; readonly closed?: unknown; readonly ptr?: unknown; readonly serial?: unknown };
  // a BpfMap handle: closed or of a stopped runtime is EBADF (bpf_map_meta_alloc's fdget of the
  // inner map fd); its `impl` getter throws that
  if (o.closed === true) throw new BpfError(EBADF, 'innerMap: the template map handle is closed');
  const impl = (o.impl !== undefined ? o.impl : t) as { readonly ptr?: unknown; readonly serial?: unknown };
  const ptr = impl.ptr;
  const serial = impl.serial;
  if (typeof ptr !== 'number' || typeof serial !== 'number' || ptr <= 0 || (ptr & 7) !== 0) {
    throw new BpfError(EINVAL, 'innerMap must be a map (BpfMap or BpfMapImpl)');
  }
  if (Atomics.load(I32, (ptr + MAP_STATE) >> 2) !== MAP_STATE_LIVE || I32[(ptr + MAP_SERIAL) >> 2] !== serial) {
    throw new BpfError(EINVAL, 'innerMap: the template map is not live');
  }
  return ptr;
}

/**
 * fd_htab_map_alloc_check / fd_array_map_alloc_check, then bpf_map_meta_alloc's checks on the
 * template. Returns the template's struct bpf_map pointer. Throws BpfError naming the field.
 */
export function mapInMapAllocCheck(spec: ResolvedMapSpec, innerMap: unknown): number {
  if (spec.valueSize !== 4) throw new BpfError(EINVAL, `valueSize of a ${spec.type} map must be 4 (an inner map id); got ${spec.valueSize}`);
  if (spec.typeId === BPF_MAP_TYPE_ARRAY_OF_MAPS) {
    if ((spec.flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG)) !== 0) throw new BpfError(EINVAL, 'flags: BPF_F_RDONLY_PROG / BPF_F_WRONLY_PROG are not valid for array_of_maps');
    arrayMapAllocCheck(spec);
  } else {
    htabMapAllocCheck(spec);
  }
  const t = templatePtr(innerMap);
  if (isMapInMapType(I32[(t + MAP_TYPE) >> 2]!)) throw new BpfError(EINVAL, 'innerMap: an inner map cannot itself be a map-in-map (one level only)');
  return t;
}

/**
 * htab_of_map_alloc / array_of_map_alloc: copy the template into MAP_INNER and allocate the
 * storage. Throws BpfError(ENOMEM) after freeing what it took.
 */
export function mapInMapAlloc(ptr: number, spec: ResolvedMapSpec, owner: number, template: number): void {
  const s = (off: number, v: number): void => { I32[(ptr + off) >> 2] = v; };
  const t = (off: number): number => I32[(template + off) >> 2]!;
  s(MIM_META_TYPE, t(MAP_TYPE));
  s(MIM_META_KEY_SIZE, t(MAP_KEY_SIZE));
  s(MIM_META_VALUE_SIZE, t(MAP_VALUE_SIZE));
  s(MIM_META_MAX_ENTRIES, t(MAP_MAX_ENTRIES));
  s(MIM_META_FLAGS, t(MAP_FLAGS));
  s(MIM_META_LOCK_OFF, t(MAP_LOCK_OFF));
  s(MIM_META_TIMER_OFF, t(MAP_TIMER_OFF));
  s(MIM_LOCK, 0);
  if (spec.typeId === BPF_MAP_TYPE_ARRAY_OF_MAPS) {
    const bytes = spec.maxEntries * 4;
    if (bytes >= 2 ** 32 - 4096) throw new BpfError(ENOMEM, `array_of_maps of ${spec.maxEntries} entries does not fit in kernel memory`);
    const ptrs = kzalloc(Math.max(bytes, 8), owner);
    if (ptrs === 0) throw new BpfError(ENOMEM, `cannot allocate ${bytes} bytes for array_of_maps '${spec.name}'`);
    s(MIM_STORAGE, ptrs);
    return;
  }
  // hash_of_maps: a private plain hash map with u32 values (the inner map pointers)
  const st = kzalloc(SIZEOF_BPF_MAP, owner);
  if (st === 0) throw new BpfError(ENOMEM, `cannot allocate the storage of hash_of_maps '${spec.name}'`);
  const flags = spec.flags & ~BPF_F_ACCESS_MASK;
  const h = (off: number, v: number): void => { I32[(st + off) >> 2] = v; };
  h(MAP_TYPE, BPF_MAP_TYPE_HASH);
  h(MAP_KEY_SIZE, spec.keySize);
  h(MAP_VALUE_SIZE, 4);
  h(MAP_MAX_ENTRIES, spec.maxEntries);
  h(MAP_FLAGS, flags);
  h(MAP_ID, I32[(ptr + MAP_ID) >> 2]!);
  h(MAP_SERIAL, I32[(ptr + MAP_SERIAL) >> 2]!);
  h(MAP_REFCNT, 1);
  h(MAP_USERCNT, 1);
  h(MAP_OWNER, owner);
  h(MAP_LOCK_OFF, 0);
  U8.copyWithin(st + MAP_NAME, ptr + MAP_NAME, ptr + MAP_NAME + 16);
  try {
    htabMapAlloc(st, { type: 'hash', typeId: BPF_MAP_TYPE_HASH, name: spec.name, keySize: spec.keySize, valueSize: 4, maxEntries: spec.maxEntries, flags, spinLockOffset: -1, timerOffset: -1 }, owner);
  } catch (e: unknown) {
    kfree(st);
    throw e;
  }
  h(MAP_STATE, MAP_STATE_LIVE);
  s(MIM_STORAGE, st);
}
