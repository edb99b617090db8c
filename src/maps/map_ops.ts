/*
 * map_ops.ts — what every map type provides (the kernel's struct bpf_map_ops), the map spec users
 * pass to createMap, the uapi flag constants, and the common part of spec validation
 * (kernel/bpf/syscall.c map_create + bpf_map_flags_access_ok).
 *
 * Layout of the common header of every map in kernel memory (struct bpf_map, SIZEOF_BPF_MAP
 * bytes, written once by the main thread at creation, read by every thread in openMap()):
 *
 *   off  field          writer / reader
 *   0    MAP_TYPE       creation / all   kernel enum value (BPF_MAP_TYPE_*)
 *   4    MAP_KEY_SIZE   creation / all
 *   8    MAP_VALUE_SIZE creation / all
 *   12   MAP_MAX_ENTRIES creation / all  (after the per-CPU LRU round-up)
 *   16   MAP_FLAGS      creation / all
 *   20   MAP_ID         creation / all   slot in the map id table (MAP_TABLE_BASE), 1..2047
 *   24   MAP_SERIAL     creation / all   unique per boot; openMap() caches per (ptr, serial)
 *   28   MAP_REFCNT     Atomics          references (user handle + loaded programs)
 *   32   MAP_USERCNT    Atomics          user references (map_release_uref at 0)
 *   36   MAP_OWNER      creation / all   memory owner id (mm/owners.ts)
 *   40   MAP_LOCK_OFF   creation / all   offset+1 of a bpf_spin_lock in the value, 0 = none
 *   44   MAP_STATE      Atomics          MAP_STATE_LIVE / MAP_STATE_FREED
 *   48   MAP_NAME       creation / all   16 bytes, NUL padded
 *   64   MAP_INNER      creation / all   inner map template of *_of_maps (map_in_map.ts MIM_META_*)
 *   120  MAP_TIMER_OFF  creation / all   offset+1 of a bpf_timer in the value, 0 = none (btf_record.ts)
 *   124  MAP_GRAPH_REC  creation / all   the graph part of the record (roots, res lock), 0 = none
 *   128  type-specific fields (hashtab.ts, arraymap.ts)
 *
 * Contexts: the program-path ops (lookup/update/delete/lookupPercpu) run on CPU workers in any
 * context with the RCU read section and the program's recursion guard already entered by the
 * caller. The sys* ops are the bpf() syscall path: callers wrap them in
 * bpf_disable_instrumentation + an RCU read section (BpfMap does, as do ctx.sys.* helpers).
 * Hot paths return 0 / a pointer or a negative errno and never throw.
 *
 * Differences from the kernel: there is no BTF. A map value's special fields (bpf_spin_lock,
 * bpf_timer) are declared with MapSpec.fields (or the spinLockOffset shorthand); btf_record.ts
 * validates them and is the one place that knows them.
 */
import { BpfError, EINVAL } from '../errno.js';
import { I32, U8, U32 } from '../mem/arena.js';
import { btfParseFields, mapCheckBtf, type MapField, type BtfRecordSpec } from './btf_record.js';

// ---- uapi: update flags ----
export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;
export const BPF_F_LOCK = 4;

// ---- uapi: map_create flags ----
export const BPF_F_NO_PREALLOC = 1 << 0;
export const BPF_F_NO_COMMON_LRU = 1 << 1;
export const BPF_F_NUMA_NODE = 1 << 2;
export const BPF_F_RDONLY = 1 << 3;
export const BPF_F_WRONLY = 1 << 4;
export const BPF_F_STACK_BUILD_ID = 1 << 5;
export const BPF_F_ZERO_SEED = 1 << 6;
export const BPF_F_RDONLY_PROG = 1 << 7;
export const BPF_F_WRONLY_PROG = 1 << 8;
export const BPF_F_CLONE = 1 << 9;
export const BPF_F_MMAPABLE = 1 << 10;
export const BPF_F_PRESERVE_ELEMS = 1 << 11;
export const BPF_F_INNER_MAP = 1 << 12;
export const BPF_F_ACCESS_MASK = BPF_F_RDONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY | BPF_F_WRONLY_PROG;

// ---- map types (kernel enum bpf_map_type values) ----
export const BPF_MAP_TYPE_HASH = 1;
export const BPF_MAP_TYPE_ARRAY = 2;
export const BPF_MAP_TYPE_PERCPU_HASH = 5;
export const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
export const BPF_MAP_TYPE_LRU_HASH = 9;
export const BPF_MAP_TYPE_LRU_PERCPU_HASH = 10;
export const BPF_MAP_TYPE_ARRAY_OF_MAPS = 12;
export const BPF_MAP_TYPE_HASH_OF_MAPS = 13;

export const MAP_TYPES = [
  'hash', 'percpu_hash', 'lru_hash', 'lru_percpu_hash', 'array', 'percpu_array', 'hash_of_maps', 'array_of_maps',
] as const;
export type MapType = (typeof MAP_TYPES)[number];

const TYPE_IDS: Readonly<Record<MapType, number>> = Object.freeze({
  hash: BPF_MAP_TYPE_HASH,
  percpu_hash: BPF_MAP_TYPE_PERCPU_HASH,
  lru_hash: BPF_MAP_TYPE_LRU_HASH,
  lru_percpu_hash: BPF_MAP_TYPE_LRU_PERCPU_HASH,
  array: BPF_MAP_TYPE_ARRAY,
  percpu_array: BPF_MAP_TYPE_PERCPU_ARRAY,
  hash_of_maps: BPF_MAP_TYPE_HASH_OF_MAPS,
  array_of_maps: BPF_MAP_TYPE_ARRAY_OF_MAPS,
});

export function mapTypeId(t: MapType): number { return TYPE_IDS[t]; }
export function mapTypeName(id: number): MapType | undefined {
  for (const t of MAP_TYPES) if (TYPE_IDS[t] === id) return t;
  return undefined;
}

// ---- kernel limits (reference §2.1) ----
/** KMALLOC_MAX_SIZE with 4 KiB pages (order-10 allocations). */
export const KMALLOC_MAX_SIZE = 4 << 20;
/** PCPU_MIN_UNIT_SIZE: a per-CPU value larger than this (rounded up to 8) is -E2BIG. */
export const PCPU_MIN_UNIT_SIZE = 32 << 10;
export const BPF_OBJ_NAME_LEN = 16;

// ---- struct bpf_map header ----
export const MAP_TYPE = 0;
export const MAP_KEY_SIZE = 4;
export const MAP_VALUE_SIZE = 8;
export const MAP_MAX_ENTRIES = 12;
export const MAP_FLAGS = 16;
export const MAP_ID = 20;
export const MAP_SERIAL = 24;
export const MAP_REFCNT = 28;
export const MAP_USERCNT = 32;
export const MAP_OWNER = 36;
export const MAP_LOCK_OFF = 40;
export const MAP_STATE = 44;
export const MAP_NAME = 48;
export const MAP_INNER = 64;
export const MAP_TIMER_OFF = 120;
export const MAP_GRAPH_REC = 124;
export const MAP_OPS_BASE = 128;
export const SIZEOF_BPF_MAP = 256;

/** The map's name from its struct bpf_map (NUL-terminated, at most BPF_OBJ_NAME_LEN bytes). */
export function readMapName(ptr: number): string {
  let s = '';
  for (let i = 0; i < BPF_OBJ_NAME_LEN; i++) {
    const c = U8[ptr + MAP_NAME + i]!;
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

/**
 * The flag check of the syscall commands that accept only BPF_F_LOCK — map_lookup_elem,
 * map_lookup_and_delete_elem, the batch elem_flags: any other bit, or BPF_F_LOCK on a value without
 * a bpf_spin_lock (`lockOff` < 0), is -EINVAL; else 0. The kernel makes it in syscall.c before the
 * map op runs, whatever the map type; here each type's sys* op makes it first (so ctx.sys callers
 * get it too). Returns 0 or -EINVAL.
 */
export function sysLockFlagsCheck(flags: number, lockOff: number): number {
  if ((flags & ~BPF_F_LOCK) !== 0) return -EINVAL;
  if ((flags & BPF_F_LOCK) !== 0 && lockOff < 0) return -EINVAL;
  return 0;
}

/** A little-endian u32 at any alignment (keys and values come at any offset). */
export function ldU32Unaligned(p: number): number {
  if ((p & 3) === 0) return U32[p >> 2]!;
  return (U8[p]! | (U8[p + 1]! << 8) | (U8[p + 2]! << 16) | (U8[p + 3]! << 24)) >>> 0;
}

/**
 * The struct bpf_map header as every map type's handle reads it once, in its constructor (any
 * thread): the fields of BpfMapImpl that all types share.
 */
export abstract class BpfMapHeader {
  readonly ptr: number;
  readonly id: number;
  readonly serial: number;
  readonly typeId: number;
  readonly type: MapType;
  readonly name: string;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;

  protected constructor(ptr: number, fallbackType: MapType) {
    const i = ptr >> 2;
    this.ptr = ptr;
    this.id = I32[i + (MAP_ID >> 2)]!;
    this.serial = I32[i + (MAP_SERIAL >> 2)]!;
    this.typeId = I32[i + (MAP_TYPE >> 2)]!;
    this.type = mapTypeName(this.typeId) ?? fallbackType;
    this.name = readMapName(ptr);
    this.keySize = I32[i + (MAP_KEY_SIZE >> 2)]!;
    this.valueSize = I32[i + (MAP_VALUE_SIZE >> 2)]!;
    this.maxEntries = I32[i + (MAP_MAX_ENTRIES >> 2)]! >>> 0;
    this.flags = I32[i + (MAP_FLAGS >> 2)]!;
  }
}

export const MAP_STATE_LIVE = 1;
export const MAP_STATE_FREED = 2;

/** MapSpec.innerMap: a BpfMap handle (anything with `impl`) or a BpfMapImpl. */
export type InnerMapTemplate = BpfMapImpl | { readonly impl: BpfMapImpl };

/** What users pass to createMap / rt.createMap (API.md "Maps"). */
export interface MapSpec {
  readonly type: MapType;
  /** Up to 15 characters of [A-Za-z0-9_.] (BPF_OBJ_NAME_LEN). @defaultValue '' */
  readonly name?: string;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  /** Map flags, kernel values (BPF_F_NO_PREALLOC, BPF_F_NO_COMMON_LRU, BPF_F_ZERO_SEED, …). @defaultValue 0 */
  readonly flags?: number;
  /**
   * hash_of_maps / array_of_maps only (required there): the inner map template (a BpfMap or its
   * BpfMapImpl). Every map stored in the outer map must match it (map_in_map.ts). @defaultValue none
   */
  readonly innerMap?: InnerMapTemplate;
  /**
   * Special fields of the value (what BTF would tell the kernel): at most one `bpf_spin_lock`
   * (4 bytes, 4-aligned; enables BPF_F_LOCK; hash and array maps) and one `bpf_timer` (16 bytes,
   * 8-aligned; hash, lru_hash and array maps). User copies never read or write them.
   * @defaultValue none
   */
  readonly fields?: readonly MapField[];
  /**
   * Shorthand for `fields: [{ type: 'bpf_spin_lock', offset }]`.
   * @defaultValue none
   */
  readonly spinLockOffset?: number;
}

/** A spec after validation: every field present. */
export interface ResolvedMapSpec {
  readonly type: MapType;
  readonly typeId: number;
  readonly name: string;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
  /** -1 when the value has no bpf_spin_lock. */
  readonly spinLockOffset: number;
  /** -1 when the value has no bpf_timer. */
  readonly timerOffset: number;
  /** The whole record (roots, bpf_res_spin_lock); absent: none. */
  readonly record?: BtfRecordSpec;
}

export interface BpfMapInfo {
  readonly id: number;
  readonly type: MapType;
  readonly name: string;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
}

export interface BpfMapStats {
  /** Live elements (hash maps: sum of the per-CPU element counters; arrays: max_entries). */
  readonly elements: number;
  /** htab_map_mem_usage / array_map_mem_usage. */
  readonly memoryBytes: number;
  readonly maxEntries: number;
  /** Preallocated hash: elements on the freelist (LRU: on free lists). -1 where not applicable. */
  readonly freeElements: number;
  /** Plain preallocated hash: per-CPU spare elements (extra_elems). 0 where not applicable. */
  readonly spareElements: number;
  readonly nBuckets: number;
}

/** Result words of a batch call (the kernel's uattr->batch.count / out_batch). */
export const BATCH_RES_COUNT = 0;
export const BATCH_RES_OUT = 4;
export const SIZEOF_BATCH_RES = 8;

/**
 * One implementation per map type (the kernel's bpf_map_ops). Keys and values are byte pointers
 * into kernel memory. Obtain instances with createMap (main thread) or openMap (any thread).
 */
export interface BpfMapImpl {
  /** struct bpf_map in kernel memory. */
  readonly ptr: number;
  readonly id: number;
  readonly serial: number;
  readonly type: MapType;
  readonly typeId: number;
  readonly name: string;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
  readonly percpu: boolean;
  /** Bytes of one value on the syscall side: valueSize, or nrCpus × round_up(valueSize, 8) for per-CPU maps. */
  readonly sysValueSize: number;

  // ---- program path (RCU read section + recursion guard entered by the caller) ----
  /** Value pointer (this CPU's slot for per-CPU maps) or 0. */
  lookup(key: number): number;
  /** bpf_map_lookup_percpu_elem: CPU `cpu`'s slot; 0 if not a per-CPU map, missing, or cpu >= nrCpus. */
  lookupPercpu(key: number, cpu: number): number;
  update(key: number, value: number, flags: number): number;
  delete(key: number): number;

  // ---- syscall path (bpf_disable_instrumentation + RCU read section entered by the caller) ----
  /** Copy the value (per-CPU: all CPUs concatenated) to `out`. 0 | -ENOENT | -EINVAL. */
  sysLookup(key: number, out: number, flags: number): number;
  /** Per-CPU maps take nrCpus values concatenated. */
  sysUpdate(key: number, value: number, flags: number): number;
  sysDelete(key: number): number;
  /**
   * BPF_MAP_LOOKUP_AND_DELETE_ELEM. Every type first refuses flags other than BPF_F_LOCK, and
   * BPF_F_LOCK without a spin lock (-EINVAL, sysLockFlagsCheck); then hash types do it, the others
   * return -ENOTSUPP.
   */
  sysLookupAndDelete(key: number, out: number, flags: number): number;
  /** key 0 = first key. 0 | -ENOENT (no next key). */
  getNextKey(key: number, outKey: number): number;
  /**
   * BPF_MAP_LOOKUP_BATCH (doDelete false) / LOOKUP_AND_DELETE_BATCH. `inBatch` is the cursor
   * (hash: bucket index; array: next index). Writes the copied count and the next cursor into
   * `res` (BATCH_RES_*). Returns 0, -ENOENT when the end was reached (with the count), -ENOSPC,
   * or another -errno. The caller must NOT hold an RCU read section: the op enters its own per
   * bucket, as the kernel does.
   */
  lookupBatch(inBatch: number, keys: number, values: number, count: number, elemFlags: number, flags: number, doDelete: boolean, res: number): number;

  /**
   * Whether `value` is the start of one of this map's values: true / false, or null when the map
   * cannot tell cheaply (dynamically allocated elements). The verifier's map_uid check for
   * bpf_timer_init (timer_mim_reject) is made with it at run time.
   */
  ownsValue(value: number): boolean | null;

  // ---- lifetime and introspection (main thread) ----
  /** map_release_uref: the last user reference is gone: cancel and free every timer in the values. */
  releaseUref(): void;
  /** map_free: no program or user can reach the map any more. */
  free(): void;
  memUsage(): number;
  stats(): BpfMapStats;
  /** Invariant violations (empty when healthy). Meaningful when no operation is in flight. */
  check(): string[];
}

// ---- common spec validation (map_create) ----

function fail(field: string, msg: string): never {
  throw new BpfError(EINVAL, `${field} ${msg}`);
}

function u32Field(v: unknown, field: string, allowZero: boolean): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    fail(field, `must be an integer in [${allowZero ? 0 : 1}, 2^32); got ${String(v)}`);
  }
  if (!allowZero && v === 0) fail(field, 'must not be 0');
  return v;
}

const NAME_RE = /^[A-Za-z0-9_.]*$/;

/** bpf_map_flags_access_ok() plus the RDONLY/WRONLY file-flag rule of map_create. */
export function mapFlagsAccessOk(flags: number): boolean {
  if ((flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG)) === (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG)) return false;
  if ((flags & (BPF_F_RDONLY | BPF_F_WRONLY)) === (BPF_F_RDONLY | BPF_F_WRONLY)) return false;
  return true;
}

/**
 * The checks map_create does before the type's own alloc_check: known type, integer sizes,
 * name, access flags, special fields (btf_record.ts). Throws BpfError(EINVAL) naming the field.
 * Zero sizes are left to the type checks (they name the field too).
 */
export function mapSpecCheck(spec: unknown): ResolvedMapSpec {
  if (typeof spec !== 'object' || spec === null) fail('spec', 'must be an object');
  const s = spec as Record<string, unknown>;
  const type = s['type'];
  if (typeof type !== 'string' || !(MAP_TYPES as readonly string[]).includes(type)) {
    fail('type', `must be one of ${MAP_TYPES.join(', ')}; got ${JSON.stringify(type)}`);
  }
  const keySize = u32Field(s['keySize'], 'keySize', true);
  const valueSize = u32Field(s['valueSize'], 'valueSize', true);
  const maxEntries = u32Field(s['maxEntries'], 'maxEntries', true);
  const flags = s['flags'] === undefined ? 0 : u32Field(s['flags'], 'flags', true);
  const nameV = s['name'] === undefined ? '' : s['name'];
  if (typeof nameV !== 'string') fail('name', `must be a string; got ${typeof nameV}`);
  if (nameV.length >= BPF_OBJ_NAME_LEN) fail('name', `must be at most ${BPF_OBJ_NAME_LEN - 1} characters; got ${nameV.length}`);
  if (!NAME_RE.test(nameV)) fail('name', `may contain only letters, digits, '_' and '.'; got ${JSON.stringify(nameV)}`);
  if (!mapFlagsAccessOk(flags)) fail('flags', `has an invalid access combination (RDONLY with WRONLY): 0x${flags.toString(16)}`);
  const rec = btfParseFields(s['fields'], s['spinLockOffset'], valueSize);
  mapCheckBtf(type as string, (flags & BPF_F_MMAPABLE) !== 0, rec);
  const t = type as MapType;
  return { type: t, typeId: mapTypeId(t), name: nameV, keySize, valueSize, maxEntries, flags, spinLockOffset: rec.spinLockOffset, timerOffset: rec.timerOffset, record: rec };
}

export function roundUp8(n: number): number { return (n + 7) & ~7; }
