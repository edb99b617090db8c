/*
 * bpf_map.ts — BpfMap, the syscall-side handle users hold (API.md "Maps"): the bpf(2) map
 * commands on one map, for Node callers.
 *
 * Each call first checks that the handle is alive — not closed, and its runtime not stopped —
 * and throws BpfError EBADF otherwise (the kernel's answer for a closed fd), before it touches
 * kernel memory: a handle records the thread's arenaGeneration when it is made, and a runtime's
 * stop (or a second runtime's start) changes it, so a stale handle can never reach the next
 * runtime's map that happens to sit at the same address. Closing a closed handle is EBADF too.
 * Then it validates its arguments (a bad one throws BpfError EINVAL and changes nothing),
 * checks the handle's access mode (BPF_F_RDONLY / BPF_F_WRONLY → EPERM, as the kernel's
 * FMODE_CAN_READ/WRITE checks), copies the caller's Uint8Arrays into a bounce buffer in kernel
 * memory, runs the map op inside bpf_disable_instrumentation (migrate_disable + bpf_prog_active)
 * and an RCU read section, and turns a negative errno into a thrown BpfError. Values come back as
 * fresh (unshared) Uint8Arrays. A missing key is `undefined` for lookup-type calls, as Map.get.
 *
 * Batches: updateBatch / deleteBatch are the kernel's generic_map_update_batch /
 * generic_map_delete_batch, one op per element in order. Argument shapes (arrays, every key and
 * value a Uint8Array of the right length, elem_flags BPF_F_LOCK only) are all checked before the
 * first element is applied: a bad one is BpfError EINVAL and the map is unchanged. An error the map
 * op returns (ENOENT, E2BIG, EBUSY, …) stops the batch there: BpfBatchError, whose `processed`
 * elements (the kernel's attr->batch.count) were applied and the rest not.
 *
 * Layout: one bounce buffer per handle (kmalloc, OWNER_KERNEL): key at +0, a second key (next
 * key) at +round_up(keySize, 8), the value after them, then 8 bytes of batch results.
 *
 * Contexts: main thread only (the housekeeping CPU, task context). Not reentrant.
 *
 * hash_of_maps / array_of_maps (map_in_map.ts): update and delete return a Promise that resolves
 * after a grace period (the kernel's maybe_wait_bpf_programs = synchronize_rcu after a successful
 * update/delete), so once `await outer.update(k, inner)` returns no program still uses the inner
 * map it replaced; their errors reject the promise. The value of update is the inner map (a BpfMap,
 * a BpfMapImpl) or its id as 4 little-endian bytes (the simulation's fd); lookup returns the id.
 * updateBatch / deleteBatch on them do not wait (call rt.synchronizeRcu() afterwards).
 *
 * hash_of_maps / array_of_maps update and delete answer EBADF through their promise, as every
 * other error of theirs.
 *
 * Differences from the kernel: batch cursors are plain numbers (hash: bucket index; array: next
 * index). The kernel copies each batch element from user memory just before its op, so a fault
 * there (-EFAULT) stops a batch midway; here the copy cannot fault, and a malformed element is
 * found before any element is applied.
 */
import { U8, I32, hdrFlags, arenaGeneration } from '../mem/arena.js';
import { FLAG_DYN_KMALLOC, FLAG_PREEMPT_RT, HDR_STOPPING } from '../mem/layout.js';
import { kmalloc, kfree } from '../mm/slab.js';
import { OWNER_KERNEL } from '../mm/owners.js';
import { bpfDisableInstrumentation, bpfEnableInstrumentation } from '../cpu/context.js';
import { rcuReadLock, rcuReadUnlock, synchronizeRcu } from '../rcu/rcu.js';
import { BpfError, EBADF, EINVAL, ENOENT, ENOMEM, EPERM } from '../errno.js';
import {
  BPF_ANY, BPF_F_NO_PREALLOC, BPF_F_RDONLY, BPF_F_WRONLY, BATCH_RES_COUNT, BATCH_RES_OUT, roundUp8,
  BPF_MAP_TYPE_HASH_OF_MAPS, BPF_MAP_TYPE_ARRAY_OF_MAPS, MAP_STATE, MAP_SERIAL, MAP_STATE_LIVE, MAP_LOCK_OFF,
  sysLockFlagsCheck, type BpfMapImpl, type BpfMapInfo, type BpfMapStats,
} from './map_ops.js';
import { bpfMapPutWithUref, bpfMapIncWithUref } from './registry.js';
import { htabFreeIdle } from './hashtab.js';
import { historyOn, recSysLookup, recSysUpdate, recSysDelete, recSysLookupAndDelete } from './map_history.js';

export interface BatchResult {
  readonly keys: Uint8Array[];
  readonly values: Uint8Array[];
  /** Pass back as the next call's cursor. */
  readonly cursor: number;
  /** The end of the map was reached (the kernel's -ENOENT "done"). */
  readonly done: boolean;
}

export interface BpfMapOptions {
  /**
   * Take a new user reference (bpf_map_inc_with_uref) instead of adopting the creation reference
   * of createMap. @defaultValue false
   */
  readonly newRef?: boolean;
}

/** A BpfError from a batch call that stopped early; `processed` elements were done. */
export class BpfBatchError extends BpfError {
  readonly processed: number;
  constructor(errno: number, processed: number, message: string) {
    super(errno, message);
    this.name = 'BpfBatchError';
    this.processed = processed;
  }
}

function flagsArg(flags: unknown, what: string): number {
  if (typeof flags !== 'number' || !Number.isInteger(flags) || flags < -0x80000000 || flags > 0xffffffff) {
    throw new BpfError(EINVAL, `${what} must be an integer flag word; got ${String(flags)}`);
  }
  return flags | 0;
}

/**
 * The handle of a hash_of_maps / array_of_maps (what rt.createMap returns for those types): a
 * BpfMap whose update and delete wait for a grace period, so they return Promise<void> (await
 * them). A type only: the object is a BpfMap. Every other map's update and delete return void.
 */
export interface MapInMapHandle extends BpfMap {
  /** Store the inner map (a BpfMap, a BpfMapImpl, or its id as 4 bytes) under `key`; resolves after a grace period. */
  update(key: Uint8Array, value: BpfMap | BpfMapImpl | Uint8Array, flags?: number): Promise<void>;
  /** Remove `key`; resolves after a grace period (rejects with BpfError ENOENT when it is missing). */
  // eslint-disable-next-line @typescript-eslint/no-misused-promises -- narrows BpfMap.delete's runtime `void | Promise<void>` for outer maps, which do return the promise
  delete(key: Uint8Array): Promise<void>;
}

export class BpfMap {
  readonly #impl: BpfMapImpl;
  #bounce: number;
  readonly #k1: number;
  readonly #k2: number;
  readonly #val: number;
  readonly #res: number;
  readonly #canRead: boolean;
  readonly #canWrite: boolean;
  /** hash_of_maps / array_of_maps: update and delete wait for a grace period (promises) */
  readonly #ofMaps: boolean;
  /** arenaGeneration when this handle was made: another value means its runtime is gone */
  readonly #gen: number;

  /** Wrap a map made by createMap (adopting its user reference) or, with newRef, any live map. */
  constructor(impl: BpfMapImpl, opts: BpfMapOptions = {}) {
    this.#impl = impl;
    const ks = roundUp8(impl.keySize);
    const vs = roundUp8(Math.max(impl.sysValueSize, 8));
    const raw = kmalloc(2 * ks + vs + 8, OWNER_KERNEL);
    if (raw === 0) throw new BpfError(ENOMEM, `map '${impl.name}': no kernel memory for the syscall bounce buffer`);
    if (opts.newRef === true) bpfMapIncWithUref(impl);
    this.#bounce = raw;
    this.#k1 = raw;
    this.#k2 = raw + ks;
    this.#val = raw + 2 * ks;
    this.#res = raw + 2 * ks + vs;
    this.#canRead = (impl.flags & BPF_F_WRONLY) === 0;
    this.#canWrite = (impl.flags & BPF_F_RDONLY) === 0;
    this.#ofMaps = impl.typeId === BPF_MAP_TYPE_HASH_OF_MAPS || impl.typeId === BPF_MAP_TYPE_ARRAY_OF_MAPS;
    this.#gen = arenaGeneration;
  }

  /**
   * The map operations (for programs, the runtime and tests). EBADF on a closed handle or one whose
   * runtime is gone: what the kernel's __bpf_map_get answers for a closed fd (its pointer may name
   * freed memory, or another runtime's map).
   */
  get impl(): BpfMapImpl { this.#live('impl'); return this.#impl; }
  get id(): number { return this.#impl.id; }
  get name(): string { return this.#impl.name; }
  get keySize(): number { return this.#impl.keySize; }
  get valueSize(): number { return this.#impl.valueSize; }
  /** Bytes of a value as the syscall side sees it (per-CPU maps: all CPUs concatenated). */
  get sysValueSize(): number { return this.#impl.sysValueSize; }
  /** close() was called. */
  get closed(): boolean { return this.#bounce === 0; }

  /**
   * fdget(): EBADF unless this handle is open and its runtime still running. First in every call,
   * before any access to kernel memory (after rt.stop() the thread may have no arena at all).
   */
  #live(op: string): void {
    if (this.#gen !== arenaGeneration) {
      throw new BpfError(EBADF, `${op}: map '${this.#impl.name}' belongs to a runtime that was stopped`);
    }
    if (this.#bounce === 0) throw new BpfError(EBADF, `${op}: map '${this.#impl.name}' handle is closed`);
    if (Atomics.load(I32, HDR_STOPPING >> 2) !== 0) {
      throw new BpfError(EBADF, `${op}: map '${this.#impl.name}' belongs to a runtime that is stopping`);
    }
  }
  #read(op: string): void {
    this.#live(op);
    if (!this.#canRead) throw new BpfError(EPERM, `${op}: map '${this.#impl.name}' was created with BPF_F_WRONLY`);
  }
  #write(op: string): void {
    this.#live(op);
    if (!this.#canWrite) throw new BpfError(EPERM, `${op}: map '${this.#impl.name}' was created with BPF_F_RDONLY`);
  }

  /** Throws what #putKey would, without copying (batch pre-validation). */
  #checkKey(key: unknown, what: string): void {
    const ks = this.#impl.keySize;
    if (!(key instanceof Uint8Array) || key.length !== ks) {
      const got = key instanceof Uint8Array ? `${key.length} bytes` : typeof key;
      throw new BpfError(EINVAL, `${what} must be a Uint8Array of keySize (${ks}) bytes; got ${got}`);
    }
  }

  #checkValue(value: unknown, what: string): void {
    const vs = this.#impl.sysValueSize;
    if (!(value instanceof Uint8Array) || value.length !== vs) {
      const got = value instanceof Uint8Array ? `${value.length} bytes` : typeof value;
      const per = this.#impl.percpu ? ` (one round_up(valueSize, 8) slot per CPU, concatenated)` : '';
      throw new BpfError(EINVAL, `${what} must be a Uint8Array of ${vs} bytes${per}; got ${got}`);
    }
  }

  #putKey(key: unknown, at: number, what = 'key'): void {
    this.#checkKey(key, what);
    U8.set(key as Uint8Array, at);
  }

  #putValue(value: unknown, at: number, what = 'value'): void {
    this.#checkValue(value, what);
    U8.set(value as Uint8Array, at);
  }

  static #enter(): void { bpfDisableInstrumentation(); rcuReadLock(); }
  static #exit(): void { rcuReadUnlock(); bpfEnableInstrumentation(); }

  /** BPF_MAP_LOOKUP_ELEM. `flags` may be BPF_F_LOCK. Missing key → undefined. */
  lookup(key: Uint8Array, flags = 0): Uint8Array | undefined {
    this.#read('lookup');
    const f = flagsArg(flags, 'flags');
    this.#putKey(key, this.#k1);
    BpfMap.#enter();
    const r = historyOn ? recSysLookup(this.#impl, this.#k1, this.#val, f) : this.#impl.sysLookup(this.#k1, this.#val, f);
    BpfMap.#exit();
    if (r === -ENOENT) return undefined;
    if (r < 0) throw new BpfError(-r, `lookup in map '${this.#impl.name}'`);
    return U8.slice(this.#val, this.#val + this.#impl.sysValueSize);
  }

  /**
   * BPF_MAP_UPDATE_ELEM on a hash_of_maps / array_of_maps: store `value` (the inner map, or its id
   * as 4 bytes) under `key`. Resolves after a grace period; rejects with BpfError (EINVAL: the
   * inner map does not match the template, is a map-in-map, or is closed).
   */
  update(key: Uint8Array, value: BpfMap | BpfMapImpl, flags?: number): Promise<void>;
  /**
   * BPF_MAP_UPDATE_ELEM with BPF_ANY / BPF_NOEXIST / BPF_EXIST (| BPF_F_LOCK). Returns nothing.
   * On hash_of_maps / array_of_maps (value = a 4-byte inner map id) it returns a Promise, as
   * above: their handles are typed MapInMapHandle (rt.createMap with their type), whose update
   * and delete say Promise<void>.
   */
  update(key: Uint8Array, value: Uint8Array, flags?: number): void;
  update(key: Uint8Array, value: Uint8Array | BpfMap | BpfMapImpl, flags: number = BPF_ANY): void | Promise<void> {
    if (this.#ofMaps) return this.#waitAfter('update', () => this.#updateOfMaps(key, value, flags));
    this.#write('update');
    const f = flagsArg(flags, 'flags');
    this.#putKey(key, this.#k1);
    this.#putValue(value, this.#val);
    BpfMap.#enter();
    const r = historyOn ? recSysUpdate(this.#impl, this.#k1, this.#val, f) : this.#impl.sysUpdate(this.#k1, this.#val, f);
    BpfMap.#exit();
    if (r < 0) throw new BpfError(-r, `update of map '${this.#impl.name}'`);
  }

  /**
   * BPF_MAP_DELETE_ELEM. Missing key → BpfError ENOENT. hash_of_maps / array_of_maps: returns a
   * Promise that resolves after a grace period (or rejects with the BpfError): see MapInMapHandle.
   */
  delete(key: Uint8Array): void;
  delete(key: Uint8Array): void | Promise<void> {
    if (this.#ofMaps) return this.#waitAfter('delete', () => this.#delete(key));
    this.#delete(key);
  }

  /**
   * maybe_wait_bpf_programs(): run the op; on success wait for a grace period (main thread: a
   * promise). Every failure rejects, none throws — EBADF of a stale or closed handle included
   * (`run` begins with the handle check).
   */
  #waitAfter(op: string, run: () => void): Promise<void> {
    try {
      run();
    } catch (e: unknown) {
      return Promise.reject(e instanceof Error ? e : new BpfError(EINVAL, `${op}: ${String(e)}`));
    }
    return synchronizeRcu();
  }

  #updateOfMaps(key: Uint8Array, value: unknown, flags: number): void {
    this.#write('update');
    const f = flagsArg(flags, 'flags');
    this.#putKey(key, this.#k1);
    let id: number;
    if (value instanceof BpfMap) {
      id = value.impl.id; // EBADF when that handle is closed or stale (bpf_map_fd_get_ptr → __bpf_map_get)
    } else if (value instanceof Uint8Array) {
      this.#putValue(value, this.#val);
      id = I32[this.#val >> 2]! >>> 0;
    } else if (typeof value === 'object' && value !== null && typeof (value as { ptr?: unknown }).ptr === 'number') {
      const m = value as BpfMapImpl;
      const live = Atomics.load(I32, (m.ptr + MAP_STATE) >> 2) === MAP_STATE_LIVE && I32[(m.ptr + MAP_SERIAL) >> 2] === m.serial;
      if (!live) throw new BpfError(EINVAL, `update of map '${this.#impl.name}': the inner map was freed`);
      id = m.id;
    } else {
      throw new BpfError(EINVAL, `update of map '${this.#impl.name}': value must be the inner map (BpfMap or BpfMapImpl) or its id as 4 bytes; got ${typeof value}`);
    }
    I32[this.#val >> 2] = id;
    BpfMap.#enter();
    const r = historyOn ? recSysUpdate(this.#impl, this.#k1, this.#val, f) : this.#impl.sysUpdate(this.#k1, this.#val, f);
    BpfMap.#exit();
    if (r < 0) throw new BpfError(-r, `update of map '${this.#impl.name}' with inner map ${id}`);
  }

  #delete(key: Uint8Array): void {
    this.#write('delete');
    this.#putKey(key, this.#k1);
    BpfMap.#enter();
    const r = historyOn ? recSysDelete(this.#impl, this.#k1) : this.#impl.sysDelete(this.#k1);
    BpfMap.#exit();
    if (r < 0) throw new BpfError(-r, `delete from map '${this.#impl.name}'`);
  }

  /**
   * BPF_MAP_LOOKUP_AND_DELETE_ELEM. Missing key → undefined. `flags` may be BPF_F_LOCK (a value
   * with a bpf_spin_lock) and nothing else: map_lookup_and_delete_elem's EINVAL, checked by the
   * map op (every type) before it touches the map. Hash types only; the others are ENOTSUPP.
   */
  lookupAndDelete(key: Uint8Array, flags = 0): Uint8Array | undefined {
    this.#read('lookupAndDelete');
    this.#write('lookupAndDelete');
    const f = flagsArg(flags, 'flags');
    this.#putKey(key, this.#k1);
    BpfMap.#enter();
    const r = historyOn ? recSysLookupAndDelete(this.#impl, this.#k1, this.#val, f) : this.#impl.sysLookupAndDelete(this.#k1, this.#val, f);
    BpfMap.#exit();
    if (r === -ENOENT) return undefined;
    if (r < 0) throw new BpfError(-r, `lookupAndDelete in map '${this.#impl.name}'`);
    return U8.slice(this.#val, this.#val + this.#impl.sysValueSize);
  }

  /** BPF_MAP_GET_NEXT_KEY: null → first key; no next key → undefined. Kernel order and restart. */
  getNextKey(key: Uint8Array | null): Uint8Array | undefined {
    this.#read('getNextKey');
    let kp = 0;
    if (key !== null) { this.#putKey(key, this.#k1); kp = this.#k1; }
    BpfMap.#enter();
    const r = this.#impl.getNextKey(kp, this.#k2);
    BpfMap.#exit();
    if (r === -ENOENT) return undefined;
    if (r < 0) throw new BpfError(-r, `getNextKey in map '${this.#impl.name}'`);
    return U8.slice(this.#k2, this.#k2 + this.#impl.keySize);
  }

  #batch(cursor: number | null, count: number, doDelete: boolean, elemFlags: number): BatchResult {
    const op = doDelete ? 'lookupAndDeleteBatch' : 'lookupBatch';
    this.#read(op);
    if (doDelete) this.#write(op);
    const cur = cursor === null ? 0 : cursor;
    if (!Number.isInteger(cur) || cur < 0 || cur > 0xffffffff) throw new BpfError(EINVAL, `${op}: cursor must be null or a u32; got ${String(cursor)}`);
    if (!Number.isInteger(count) || count < 0 || count > 0xffffff) throw new BpfError(EINVAL, `${op}: count must be a non-negative integer; got ${String(count)}`);
    const ef = flagsArg(elemFlags, 'elemFlags');
    const ks = this.#impl.keySize;
    const vs = this.#impl.sysValueSize;
    if (count === 0) return { keys: [], values: [], cursor: cur, done: false };
    const kbuf = kmalloc(Math.max(8, count * ks), OWNER_KERNEL);
    const vbuf = kmalloc(Math.max(8, count * vs), OWNER_KERNEL);
    if (kbuf === 0 || vbuf === 0) {
      if (kbuf !== 0) kfree(kbuf);
      if (vbuf !== 0) kfree(vbuf);
      throw new BpfError(ENOMEM, `${op}: no kernel memory for ${count} elements`);
    }
    BpfMap.#enter();
    const r = this.#impl.lookupBatch(cur, kbuf, vbuf, count, ef, 0, doDelete, this.#res);
    BpfMap.#exit();
    const n = I32[(this.#res + BATCH_RES_COUNT) >> 2]!;
    const next = I32[(this.#res + BATCH_RES_OUT) >> 2]! >>> 0;
    const keys: Uint8Array[] = [];
    const values: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      keys.push(U8.slice(kbuf + i * ks, kbuf + (i + 1) * ks));
      values.push(U8.slice(vbuf + i * vs, vbuf + (i + 1) * vs));
    }
    kfree(kbuf);
    kfree(vbuf);
    if (r < 0 && r !== -ENOENT) throw new BpfBatchError(-r, n, `${op} on map '${this.#impl.name}' (${n} copied)`);
    return { keys, values, cursor: next, done: r === -ENOENT };
  }

  /** BPF_MAP_LOOKUP_BATCH: up to `count` elements from `cursor` (null = start); whole buckets only. */
  lookupBatch(cursor: number | null, count: number, elemFlags = 0): BatchResult {
    return this.#batch(cursor, count, false, elemFlags);
  }

  /** BPF_MAP_LOOKUP_AND_DELETE_BATCH. */
  lookupAndDeleteBatch(cursor: number | null, count: number, elemFlags = 0): BatchResult {
    return this.#batch(cursor, count, true, elemFlags);
  }

  /**
   * BPF_MAP_UPDATE_BATCH (generic_map_update_batch: one update per element, in order). Returns
   * the number updated (all of them). `flags` is the kernel's elem_flags: 0 or BPF_F_LOCK (a value
   * with a bpf_spin_lock) — BPF_NOEXIST / BPF_EXIST are EINVAL there, as in the kernel. Any
   * malformed argument is EINVAL with the map unchanged (every element is checked first); an error
   * of the map op is a BpfBatchError after exactly `processed` elements were applied.
   */
  updateBatch(keys: readonly Uint8Array[], values: readonly Uint8Array[], flags = 0): number {
    this.#write('updateBatch');
    const f = flagsArg(flags, 'flags');
    // (as unknown: Array.isArray would narrow a readonly Uint8Array[] to any[])
    if (!Array.isArray(keys as unknown) || !Array.isArray(values as unknown) || keys.length !== values.length) {
      throw new BpfError(EINVAL, 'updateBatch: keys and values must be arrays of the same length');
    }
    if (sysLockFlagsCheck(f, I32[(this.#impl.ptr + MAP_LOCK_OFF) >> 2]! - 1) !== 0) {
      throw new BpfError(EINVAL, `updateBatch: elem_flags may be 0, or BPF_F_LOCK on a value with a bpf_spin_lock (generic_map_update_batch); got 0x${(f >>> 0).toString(16)} on map '${this.#impl.name}'`);
    }
    for (let i = 0; i < keys.length; i++) {
      this.#checkKey(keys[i], `updateBatch: keys[${i}]`);
      this.#checkValue(values[i], `updateBatch: values[${i}]`);
    }
    for (let i = 0; i < keys.length; i++) {
      U8.set(keys[i]!, this.#k1);
      U8.set(values[i]!, this.#val);
      BpfMap.#enter();
      const r = historyOn ? recSysUpdate(this.#impl, this.#k1, this.#val, f) : this.#impl.sysUpdate(this.#k1, this.#val, f);
      BpfMap.#exit();
      if (r < 0) throw new BpfBatchError(-r, i, `updateBatch on map '${this.#impl.name}' stopped at element ${i}`);
    }
    return keys.length;
  }

  /**
   * BPF_MAP_DELETE_BATCH (generic_map_delete_batch). Returns the number deleted (all of them). A
   * malformed key anywhere is EINVAL with nothing deleted; an error of the map op (ENOENT for a
   * missing key, …) is a BpfBatchError after exactly `processed` deletions.
   */
  deleteBatch(keys: readonly Uint8Array[]): number {
    this.#write('deleteBatch');
    if (!Array.isArray(keys as unknown)) throw new BpfError(EINVAL, 'deleteBatch: keys must be an array'); // as unknown: see updateBatch
    for (let i = 0; i < keys.length; i++) this.#checkKey(keys[i], `deleteBatch: keys[${i}]`);
    for (let i = 0; i < keys.length; i++) {
      U8.set(keys[i]!, this.#k1);
      BpfMap.#enter();
      const r = historyOn ? recSysDelete(this.#impl, this.#k1) : this.#impl.sysDelete(this.#k1);
      BpfMap.#exit();
      if (r < 0) throw new BpfBatchError(-r, i, `deleteBatch on map '${this.#impl.name}' stopped at element ${i}`);
    }
    return keys.length;
  }

  /**
   * Keys in kernel order, built on getNextKey (a concurrent delete may restart the walk). The
   * handle is checked at the call (EBADF) and again at every step.
   */
  keys(): IterableIterator<Uint8Array> {
    this.#read('keys');
    return this.#keys();
  }

  *#keys(): IterableIterator<Uint8Array> {
    let k = this.getNextKey(null);
    while (k !== undefined) {
      yield k;
      k = this.getNextKey(k);
    }
  }

  /** [key, value] pairs; a key deleted between getNextKey and lookup is skipped. */
  entries(): IterableIterator<[Uint8Array, Uint8Array]> {
    this.#read('entries');
    return this.#entries();
  }

  *#entries(): IterableIterator<[Uint8Array, Uint8Array]> {
    for (const k of this.#keys()) {
      const v = this.lookup(k);
      if (v !== undefined) yield [k, v];
    }
  }

  info(): BpfMapInfo {
    this.#live('info');
    const m = this.#impl;
    return { id: m.id, type: m.type, name: m.name, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries, flags: m.flags };
  }

  stats(): BpfMapStats {
    this.#live('stats');
    return this.#impl.stats();
  }

  /**
   * True when this map's bucket lock is the sleeping spinlock_t of seed 000's lock union: a
   * BPF_F_NO_PREALLOC map served by the legacy kmalloc allocator on PREEMPT_RT. Tracing programs
   * may not use such a map (the verifier of that era refused them).
   */
  usesSleepingBucketLock(): boolean {
    this.#live('usesSleepingBucketLock');
    return (this.#impl.flags & BPF_F_NO_PREALLOC) !== 0 && (hdrFlags & FLAG_PREEMPT_RT) !== 0 && (hdrFlags & FLAG_DYN_KMALLOC) !== 0;
  }

  /** The map's invariant check (empty when healthy; call when no operation is in flight). */
  check(): string[] {
    this.#live('check');
    return this.#impl.check();
  }

  /**
   * Drop this handle's user reference (map_release_uref at the last one; freed when unused).
   * The promise resolves when the memory of every hash map freed so far is back in the slab:
   * BPF_F_NO_PREALLOC maps finish their map_free later (bpf_mem_alloc_destroy waits for
   * rcu_barrier; legacy kmalloc elements for their grace period). Ignoring it is fine; await it
   * before comparing memory statistics. The promise never rejects; close() itself throws EBADF,
   * as close(2) on a closed fd, when the handle is already closed or its runtime stopped (then it
   * frees nothing: the map went with its runtime).
   */
  close(): Promise<void> {
    this.#live('close');
    kfree(this.#bounce);
    this.#bounce = 0;
    bpfMapPutWithUref(this.#impl);
    return htabFreeIdle();
  }
}
