/*
 * arraymap.ts — array and percpu_array maps (kernel/bpf/arraymap.c).
 *
 * Layout: struct bpf_array = struct bpf_map header (map_ops.ts) + from MAP_OPS_BASE:
 *   ARR_VALUES     array: max_entries × elem_size bytes of values, index i at +i × elem_size;
 *                  percpu_array: the per-CPU region, CPU c's copy of index i at
 *                  ARR_VALUES + c × ARR_STRIDE + i × elem_size (c < nrCpus, the program CPUs)
 *   ARR_ELEM_SIZE  round_up(value_size, 8): values stay 8-byte aligned (64-bit atomics)
 *   ARR_STRIDE     percpu_array: max_entries × elem_size
 * All written once at creation, read by every thread.
 *
 * Invariants: every index in [0, max_entries) exists for the map's whole life (zeroed at
 * creation); nothing is ever freed or moved, so a value pointer stays valid and never changes
 * key. Keys are u32 indexes (key_size must be 4).
 *
 * Locking: none. Updates copy into the value in place (a concurrent reader may see a mix of old
 * and new bytes unless BPF_F_LOCK and a bpf_spin_lock in the value are used).
 *
 * Contexts: program ops from any context; sys* ops from task context inside
 * bpf_disable_instrumentation + RCU, as for every map.
 *
 * Differences from the kernel: no mmapable pages, no index_mask (no speculation to defend
 * against); batch ops use the next index as the cursor (the kernel's generic batch passes the
 * last key copied).
 */
import { I32, U32, U8, nrCpus } from '../mem/arena.js';
import { thisCpu, pcpuI } from '../mem/this_cpu.js';
import { PROG_LOCKED_I, helperUnderLock } from '../cpu/prog_locked.js';
import { kzalloc, kfree } from '../mm/slab.js';
import { BpfError, E2BIG, EEXIST, EINVAL, ENOENT, ENOMEM, ENOTSUPP } from '../errno.js';
import {
  BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST, BPF_F_NUMA_NODE, BPF_F_MMAPABLE, BPF_F_ACCESS_MASK,
  BPF_F_PRESERVE_ELEMS, BPF_F_INNER_MAP, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY, KMALLOC_MAX_SIZE,
  PCPU_MIN_UNIT_SIZE, MAP_OPS_BASE, 
  MAP_LOCK_OFF, MAP_TIMER_OFF, MAP_GRAPH_REC, MAP_USERCNT, BATCH_RES_COUNT, BATCH_RES_OUT,
  SIZEOF_BPF_MAP, roundUp8,
  type BpfMapImpl, type BpfMapStats, type ResolvedMapSpec, ldU32Unaligned, BpfMapHeader, sysLockFlagsCheck } from './map_ops.js';
import { kcopy } from './map_value.js';
import {
  BtfRecord, btfRecordFromWords, copyMapValue, copyMapValueLocked, checkAndInitMapValue, bpfObjFreeFields,
  bpfObjFreeTimer, bpfTimersFlushDeferred, EMPTY_RECORD,
} from './btf_record.js';

export const ARR_VALUES = MAP_OPS_BASE + 0;
export const ARR_ELEM_SIZE = MAP_OPS_BASE + 4;
export const ARR_STRIDE = MAP_OPS_BASE + 8;

export const ARRAY_CREATE_FLAG_MASK = BPF_F_NUMA_NODE | BPF_F_MMAPABLE | BPF_F_ACCESS_MASK | BPF_F_PRESERVE_ELEMS | BPF_F_INNER_MAP;



/** One thread's handle on an array map. Construct with openMap(). */
export class BpfArray extends BpfMapHeader implements BpfMapImpl {
  readonly percpu: boolean;
  readonly sysValueSize: number;
  readonly values: number;
  readonly elemSize: number;
  readonly stride: number;
  readonly lockOff: number;
  /** the value's special fields (btf_record.ts) */
  readonly rec: BtfRecord;

  constructor(ptr: number) {
    super(ptr, 'array');
    const g = (off: number): number => I32[(ptr + off) >> 2]!;
    this.rec = btfRecordFromWords(g(MAP_LOCK_OFF), g(MAP_TIMER_OFF), g(MAP_GRAPH_REC));
    this.lockOff = this.rec.spinLockOff;
    this.percpu = this.typeId === BPF_MAP_TYPE_PERCPU_ARRAY;
    this.values = g(ARR_VALUES);
    this.elemSize = g(ARR_ELEM_SIZE);
    this.stride = g(ARR_STRIDE);
    this.sysValueSize = this.percpu ? nrCpus * this.elemSize : this.valueSize;
  }

  // ---- program path ----

  lookup(key: number): number {
    if (I32[pcpuI + PROG_LOCKED_I] !== 0) helperUnderLock('bpf_map_lookup_elem');
    const idx = ldU32Unaligned(key);
    if (idx >= this.maxEntries) return 0;
    if (!this.percpu) return this.values + idx * this.elemSize;
    const cpu = thisCpu;
    if (cpu >= nrCpus) return 0;
    return this.values + cpu * this.stride + idx * this.elemSize;
  }

  lookupPercpu(key: number, cpu: number): number {
    if (I32[pcpuI + PROG_LOCKED_I] !== 0) helperUnderLock('bpf_map_lookup_percpu_elem');
    if (!this.percpu || cpu < 0 || cpu >= nrCpus) return 0;
    const idx = ldU32Unaligned(key);
    if (idx >= this.maxEntries) return 0;
    return this.values + cpu * this.stride + idx * this.elemSize;
  }

  /** array_map_update_elem */
  update(key: number, value: number, flags: number): number {
    if (I32[pcpuI + PROG_LOCKED_I] !== 0) helperUnderLock('bpf_map_update_elem');
    if (((flags & ~BPF_F_LOCK) >>> 0) > BPF_EXIST) return -EINVAL;
    const idx = ldU32Unaligned(key);
    if (idx >= this.maxEntries) return -E2BIG;
    if ((flags & BPF_NOEXIST) !== 0) return -EEXIST;
    if ((flags & BPF_F_LOCK) !== 0 && this.lockOff < 0) return -EINVAL;
    if (this.percpu) {
      const cpu = thisCpu;
      if (cpu < nrCpus) copyMapValue(this.values + cpu * this.stride + idx * this.elemSize, value, this.valueSize, EMPTY_RECORD);
      return 0;
    }
    const v = this.values + idx * this.elemSize;
    if ((flags & BPF_F_LOCK) !== 0) {
      const err = copyMapValueLocked(v, value, this.valueSize, this.rec, false);
      if (err !== 0) return err;
    } else {
      copyMapValue(v, value, this.valueSize, this.rec);
    }
    // array_map_update_elem: the overwritten value's special fields are released (its timer is
    // cancelled and freed; a later bpf_timer_init starts afresh)
    if (this.rec.cnt !== 0) bpfObjFreeFields(this.rec, v, false);
    return 0;
  }

  delete(_key: number): number {
    return -EINVAL;
  }

  ownsValue(value: number): boolean | null {
    const off = value - this.values;
    const span = this.percpu ? this.stride * nrCpus : this.maxEntries * this.elemSize;
    return off >= 0 && off < span && (off % this.elemSize) === 0;
  }

  // ---- syscall path ----

  sysLookup(key: number, out: number, flags: number): number {
    if (sysLockFlagsCheck(flags, this.lockOff) !== 0) return -EINVAL;
    const idx = ldU32Unaligned(key);
    if (idx >= this.maxEntries) return -ENOENT;
    return this.#copyOut(idx, out, flags);
  }

  #copyOut(idx: number, out: number, flags: number): number {
    if (this.percpu) {
      const es = this.elemSize;
      for (let cpu = 0; cpu < nrCpus; cpu++) kcopy(out + cpu * es, this.values + cpu * this.stride + idx * es, es);
      return 0;
    }
    const v = this.values + idx * this.elemSize;
    if ((flags & BPF_F_LOCK) !== 0) {
      const err = copyMapValueLocked(out, v, this.valueSize, this.rec, true);
      if (err !== 0) return err;
    } else {
      copyMapValue(out, v, this.valueSize, this.rec);
    }
    checkAndInitMapValue(out, this.rec);
    return 0;
  }

  sysUpdate(key: number, value: number, flags: number): number {
    if (!this.percpu) return this.update(key, value, flags);
    // bpf_percpu_array_update(): every CPU's value from the concatenated buffer
    if ((flags >>> 0) > BPF_EXIST) return -EINVAL;
    const idx = ldU32Unaligned(key);
    if (idx >= this.maxEntries) return -E2BIG;
    if (flags === BPF_NOEXIST) return -EEXIST;
    const es = this.elemSize;
    for (let cpu = 0; cpu < nrCpus; cpu++) kcopy(this.values + cpu * this.stride + idx * es, value + cpu * es, es);
    return 0;
  }

  sysDelete(_key: number): number {
    return -EINVAL;
  }

  /** map_lookup_and_delete_elem: the flag check (EINVAL) comes before the type check (ENOTSUPP). */
  sysLookupAndDelete(_key: number, _out: number, flags: number): number {
    if (sysLockFlagsCheck(flags, this.lockOff) !== 0) return -EINVAL;
    return -ENOTSUPP;
  }

  /** array_map_get_next_key */
  getNextKey(key: number, outKey: number): number {
    const idx = key === 0 ? 0xffffffff : ldU32Unaligned(key);
    let next: number;
    if (idx >= this.maxEntries) next = 0;
    else if (idx === this.maxEntries - 1) return -ENOENT;
    else next = idx + 1;
    if ((outKey & 3) === 0) U32[outKey >> 2] = next;
    else { U8[outKey] = next & 0xff; U8[outKey + 1] = (next >>> 8) & 0xff; U8[outKey + 2] = (next >>> 16) & 0xff; U8[outKey + 3] = next >>> 24; }
    return 0;
  }

  /** generic_map_lookup_batch with an index cursor; arrays cannot delete (-ENOTSUPP). */
  lookupBatch(inBatch: number, keys: number, values: number, count: number, elemFlags: number, flags: number, doDelete: boolean, res: number): number {
    const resI = res >> 2;
    I32[resI + (BATCH_RES_COUNT >> 2)] = 0;
    I32[resI + (BATCH_RES_OUT >> 2)] = inBatch;
    if (doDelete) return -ENOTSUPP;
    if ((elemFlags & ~BPF_F_LOCK) !== 0 || ((elemFlags & BPF_F_LOCK) !== 0 && this.lockOff < 0)) return -EINVAL;
    if (flags !== 0) return -EINVAL;
    if (count === 0) return 0;
    let idx = inBatch >>> 0;
    let cp = 0;
    let ret = 0;
    const vs = this.sysValueSize;
    while (cp < count) {
      if (idx >= this.maxEntries) { ret = -ENOENT; break; }
      U32[(keys + cp * 4) >> 2] = idx;
      const e = this.#copyOut(idx, values + cp * vs, elemFlags);
      if (e !== 0) { ret = e; break; }
      cp++;
      idx++;
    }
    I32[resI + (BATCH_RES_COUNT >> 2)] = cp;
    I32[resI + (BATCH_RES_OUT >> 2)] = idx;
    return ret;
  }

  // ---- lifetime and introspection ----

  /** array_map_free_timers_wq(): cancel and free every value's timer (main thread). */
  releaseUref(): void {
    if (!this.rec.hasTimer) return;
    for (let i = 0; i < this.maxEntries; i++) bpfObjFreeTimer(this.rec, this.values + i * this.elemSize);
    bpfTimersFlushDeferred();
  }

  /** array_map_free(): release every value's special fields, then the values. */
  free(): void {
    if (this.rec.cnt !== 0 && !this.percpu) {
      for (let i = 0; i < this.maxEntries; i++) bpfObjFreeFields(this.rec, this.values + i * this.elemSize, false);
    }
    kfree(this.values);
  }

  /** array_map_mem_usage() */
  memUsage(): number {
    const n = this.maxEntries;
    if (this.percpu) return SIZEOF_BPF_MAP + 8 * n + this.elemSize * n * nrCpus;
    return SIZEOF_BPF_MAP + this.elemSize * n;
  }

  stats(): BpfMapStats {
    return { elements: this.maxEntries, memoryBytes: this.memUsage(), maxEntries: this.maxEntries, freeElements: -1, spareElements: 0, nBuckets: 0 };
  }

  check(): string[] {
    const out: string[] = [];
    if (this.rec.hasTimer && Atomics.load(I32, (this.ptr + MAP_USERCNT) >> 2) === 0) {
      // map_release_uref freed every timer
      for (let i = 0; i < this.maxEntries; i++) {
        const w = Atomics.load(I32, (this.values + i * this.elemSize + this.rec.timerOff) >> 2);
        if (w !== 0) out.push(`index ${i}: bpf_timer still points to 0x${w.toString(16)} after map_release_uref`);
      }
    }
    if (this.lockOff >= 0) {
      for (let i = 0; i < this.maxEntries; i++) {
        const w = Atomics.load(I32, (this.values + i * this.elemSize + this.lockOff) >> 2);
        if (w !== 0) out.push(`index ${i}: bpf_spin_lock word is 0x${w.toString(16)}, expected 0`);
      }
    }
    return out;
  }
}

function fail(errno: number, msg: string): never {
  throw new BpfError(errno, msg);
}

/** array_map_alloc_check(): throws BpfError naming the offending field. */
export function arrayMapAllocCheck(spec: ResolvedMapSpec): void {
  const percpu = spec.typeId === BPF_MAP_TYPE_PERCPU_ARRAY;
  const f = spec.flags;
  if (spec.maxEntries === 0) fail(EINVAL, 'maxEntries must not be 0');
  if (spec.keySize !== 4) fail(EINVAL, `keySize of an ${spec.type} map must be 4; got ${spec.keySize}`);
  if (spec.valueSize === 0) fail(EINVAL, 'valueSize must not be 0');
  if ((f & ~ARRAY_CREATE_FLAG_MASK) !== 0) fail(EINVAL, `flags has bits not valid for ${spec.type} maps: 0x${((f & ~ARRAY_CREATE_FLAG_MASK) >>> 0).toString(16)}`);
  if (percpu && (f & BPF_F_NUMA_NODE) !== 0) fail(EINVAL, 'flags: BPF_F_NUMA_NODE is not valid for percpu_array');
  if (spec.typeId !== BPF_MAP_TYPE_ARRAY && (f & (BPF_F_MMAPABLE | BPF_F_INNER_MAP)) !== 0) fail(EINVAL, 'flags: BPF_F_MMAPABLE / BPF_F_INNER_MAP are valid for array maps only');
  if ((f & BPF_F_PRESERVE_ELEMS) !== 0) fail(EINVAL, 'flags: BPF_F_PRESERVE_ELEMS is valid for perf_event_array maps only');
  if (spec.valueSize > KMALLOC_MAX_SIZE) fail(E2BIG, `valueSize must be at most ${KMALLOC_MAX_SIZE}; got ${spec.valueSize}`);
  if (percpu && roundUp8(spec.valueSize) > PCPU_MIN_UNIT_SIZE) fail(E2BIG, `valueSize of a per-CPU map must be at most ${PCPU_MIN_UNIT_SIZE}; got ${spec.valueSize}`);
}

/** array_map_alloc(): the zeroed value area. Throws BpfError(ENOMEM). */
export function arrayMapAlloc(ptr: number, spec: ResolvedMapSpec, owner: number): void {
  const percpu = spec.typeId === BPF_MAP_TYPE_PERCPU_ARRAY;
  const es = roundUp8(spec.valueSize);
  const stride = spec.maxEntries * es;
  const bytes = percpu ? stride * nrCpus : stride;
  if (bytes >= 2 ** 32 - 4096) fail(ENOMEM, `array of ${spec.maxEntries} × ${es} bytes${percpu ? ` × ${nrCpus} CPUs` : ''} does not fit in kernel memory`);
  const values = kzalloc(bytes, owner);
  if (values === 0) fail(ENOMEM, `cannot allocate ${bytes} bytes for ${spec.type} map '${spec.name}'`);
  I32[(ptr + ARR_VALUES) >> 2] = values;
  I32[(ptr + ARR_ELEM_SIZE) >> 2] = es;
  I32[(ptr + ARR_STRIDE) >> 2] = percpu ? stride : 0;
}
