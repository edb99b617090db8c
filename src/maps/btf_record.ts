/*
 * btf_record.ts — the special fields of a map value (the kernel's struct btf_record: btf.c
 * btf_parse_fields, syscall.c map_check_btf / bpf_obj_free_fields / bpf_map_free_record, and
 * include/linux/bpf.h copy_map_value / check_and_init_map_value / zero_map_value). The one place
 * in the map layer that knows which bytes of a value are not plain data.
 *
 * Fields (API.md): `fields: [{ type: 'bpf_spin_lock', offset }, { type: 'bpf_timer', offset }]`;
 * `spinLockOffset: n` stays as a shorthand for one bpf_spin_lock field.
 *   bpf_spin_lock  4 bytes, 4-aligned: the lock word (0 = unlocked)
 *   bpf_timer      16 bytes, 8-aligned: +0 pointer to the kernel's struct bpf_hrtimer (0 = not
 *                  initialised), +4 the bpf_spin_lock that serialises the timer helpers
 *                  (struct bpf_timer_kern of the classic design), +8..15 zero
 * Layout in struct bpf_map (map_ops.ts): MAP_LOCK_OFF and MAP_TIMER_OFF hold offset + 1 (0 = no
 * such field); written once at creation, read by every thread when it opens the map.
 *
 * Invariants:
 *  - user copies never read or write special fields: copyMapValue skips them; a copy handed to
 *    user space has them zeroed (checkAndInitMapValue); an update never overwrites them;
 *  - a value's special fields are released (bpfObjFreeFields) when its element is deleted,
 *    replaced, evicted (LRU), when an array slot is overwritten, and at map_release_uref (timers)
 *    and map free;
 *  - an element leaving the map (delete, replace, eviction) has its timer field *retired*
 *    (word 0 = BPF_TIMER_RETIRED, odd, never a pointer) instead of cleared: a program that looked
 *    the element up before it was freed and calls bpf_timer_init on it now gets -EINVAL (the
 *    element was deleted) instead of publishing a timer into free memory, which would leak it (or,
 *    with bpf_mem_alloc's immediate reuse, be zeroed under its own lock by the next owner);
 *  - an element (re)entering the map from a free list (prealloc freelist, extra_elems, LRU free
 *    lists, bpf_mem_alloc cache) gets bpfObjReuseFields: the retired mark goes back to 0 with a
 *    CAS; lock words are never written (a racing critical section on a freed element stays
 *    consistent). Fresh legacy kmalloc elements (poisoned memory nobody can reach) get
 *    checkAndInitMapValue. So a timer is only ever published into a field of a live element or
 *    array slot, and every timer object is reachable from exactly one field until it is freed.
 *
 * Locking: none of its own. Freeing a timer field takes the field's bpf_spin_lock (class 'timer')
 * and then the timer's hrtimer base lock; it never waits for a running callback, so it may be
 * called under a bucket lock (lock order: bucket -> timer -> hrtimer base).
 *
 * Layering: the timer layer (src/timers/, above maps) plugs its bpf_timer_cancel_and_free in with
 * registerTimerFieldOps() at thread boot; without it (maps-only test boots) no timer can exist and
 * freeing a field only clears it.
 *
 * Graph roots (bpf_list_head, bpf_rb_root; 16 bytes, 8-aligned) name the object type they hold
 * (`contains`) and need the value's one bpf_spin_lock, which guards them; the graph layer
 * (src/graph/) declares the type and frees the nodes when the value leaves the map. A
 * bpf_res_spin_lock (4 bytes) is a lock word user copies skip.
 *
 * Differences from the kernel: no BTF; the declaration is the list of fields. Roots are also
 * accepted in lru_hash values (with their bpf_spin_lock), so that LRU eviction frees nodes.
 */
import { I32 } from '../mem/arena.js';
import { rawSpinLockIrqsave, rawSpinUnlockIrqrestore } from '../locks/raw_spinlock.js';
import { LC_BPF_SPIN_LOCK } from '../locks/lock_classes.js';
import { BpfError, E2BIG, EINVAL, EOPNOTSUPP } from '../errno.js';
import { kcopy, kzero } from './map_value.js';

export type MapFieldType = 'bpf_spin_lock' | 'bpf_timer' | 'bpf_res_spin_lock' | 'bpf_list_head' | 'bpf_rb_root';
export const MAP_FIELD_TYPES: readonly MapFieldType[] = ['bpf_spin_lock', 'bpf_timer', 'bpf_res_spin_lock', 'bpf_list_head', 'bpf_rb_root'];

/** One special field of a map value, as users declare it. */
export interface MapField {
  readonly type: MapFieldType;
  /** Byte offset inside the value. */
  readonly offset: number;
  /**
   * Roots (bpf_list_head, bpf_rb_root) only: the object type they hold (declared by a program's
   * `types`) and the byte offset of its bpf_list_node / bpf_rb_node (the kernel's __contains).
   */
  readonly contains?: { readonly type: string; readonly field: number };
}

/** Field kinds of graph roots (the same numbers as src/graph/btf_types.ts FK_*). */
export const FK_LIST_HEAD = 2;
export const FK_RB_ROOT = 4;
/** bpf_list_head and bpf_rb_root: 16 bytes, 8-aligned (src/graph/graph_layout.ts). */
export const BPF_GRAPH_ROOT_SIZE = 16;
export const BPF_GRAPH_ROOT_ALIGN = 8;
export const BPF_RES_SPIN_LOCK_SIZE = 4;
/** At most this many roots in one value. */
export const MAX_VALUE_ROOTS = 8;

/** A root in a map value: its kind, offset, contained type id and that type's node offset. */
export interface MapRoot {
  readonly kind: number;
  readonly off: number;
  readonly typeId: number;
  readonly nodeOff: number;
}

export const BPF_SPIN_LOCK_SIZE = 4;
export const BPF_SPIN_LOCK_ALIGN = 4;
export const BPF_TIMER_SIZE = 16;
export const BPF_TIMER_ALIGN = 8;
/** Offset of the timer's bpf_spin_lock inside the 16-byte bpf_timer. */
export const BPF_TIMER_LOCK = 4;
/** Word 0 of a bpf_timer field of an element that left the map (odd: never a timer pointer). */
export const BPF_TIMER_RETIRED = 1;

/** A root as declared (its contained type by name, resolved to an id at map creation). */
export interface MapRootSpec {
  readonly kind: number;
  readonly offset: number;
  readonly containsType: string;
  readonly nodeOff: number;
}

/** The validated record: -1 where a field is absent. */
export interface BtfRecordSpec {
  readonly spinLockOffset: number;
  readonly timerOffset: number;
  readonly resLockOffset: number;
  readonly roots: readonly MapRootSpec[];
}

export const NO_FIELDS: BtfRecordSpec = Object.freeze({ spinLockOffset: -1, timerOffset: -1, resLockOffset: -1, roots: [] });

function fail(errno: number, msg: string): never {
  throw new BpfError(errno, msg);
}

const SIZES: Readonly<Record<MapFieldType, number>> = {
  bpf_spin_lock: BPF_SPIN_LOCK_SIZE, bpf_timer: BPF_TIMER_SIZE, bpf_res_spin_lock: BPF_RES_SPIN_LOCK_SIZE,
  bpf_list_head: BPF_GRAPH_ROOT_SIZE, bpf_rb_root: BPF_GRAPH_ROOT_SIZE,
};
const ALIGNS: Readonly<Record<MapFieldType, number>> = {
  bpf_spin_lock: BPF_SPIN_LOCK_ALIGN, bpf_timer: BPF_TIMER_ALIGN, bpf_res_spin_lock: 4,
  bpf_list_head: BPF_GRAPH_ROOT_ALIGN, bpf_rb_root: BPF_GRAPH_ROOT_ALIGN,
};
const TYPE_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * btf_parse_fields(): validate `fields` (and the `spinLockOffset` shorthand) against the value
 * size. At most one of each type, aligned, inside the value, not overlapping. Throws
 * BpfError(EINVAL) naming the field. Cold path (map creation).
 */
export function btfParseFields(fieldsV: unknown, spinLockOffsetV: unknown, valueSize: number): BtfRecordSpec {
  const list: { type: MapFieldType; offset: number; name: string; containsType?: string; nodeOff?: number }[] = [];
  if (spinLockOffsetV !== undefined) {
    const o: unknown = spinLockOffsetV;
    if (typeof o !== 'number' || !Number.isInteger(o) || o < 0 || (o & 3) !== 0 || o + 4 > valueSize) {
      fail(EINVAL, `spinLockOffset must be a 4-byte aligned offset with the 4-byte lock inside the value (valueSize ${valueSize}); got ${String(o)}`);
    }
    list.push({ type: 'bpf_spin_lock', offset: o, name: 'spinLockOffset' });
  }
  if (fieldsV !== undefined) {
    if (!Array.isArray(fieldsV)) fail(EINVAL, `fields must be an array of { type, offset }; got ${typeof fieldsV}`);
    fieldsV.forEach((f: unknown, i: number) => {
      const name = `fields[${i}]`;
      if (typeof f !== 'object' || f === null) fail(EINVAL, `${name} must be an object { type, offset }`);
      const r = f as Record<string, unknown>;
      const type = r['type'];
      if (typeof type !== 'string' || !(MAP_FIELD_TYPES as readonly string[]).includes(type)) {
        fail(EINVAL, `${name}.type must be one of ${MAP_FIELD_TYPES.join(', ')}; got ${JSON.stringify(type)}`);
      }
      const t = type as MapFieldType;
      const off = r['offset'];
      if (typeof off !== 'number' || !Number.isInteger(off) || off < 0) fail(EINVAL, `${name} (${t}).offset must be a non-negative integer; got ${String(off)}`);
      if (off % ALIGNS[t] !== 0) fail(EINVAL, `${name} (${t}) at offset ${off} must be ${ALIGNS[t]}-byte aligned`);
      if (off + SIZES[t] > valueSize) fail(EINVAL, `${name} (${t}) at offset ${off} does not fit in the value (${SIZES[t]} bytes, valueSize ${valueSize})`);
      if (t === 'bpf_list_head' || t === 'bpf_rb_root') {
        const c = r['contains'];
        if (typeof c !== 'object' || c === null) fail(EINVAL, `${name} (${t}) needs contains: { type, field } (the object type it holds, and the offset of its node field)`);
        const ct = (c as Record<string, unknown>)['type'];
        const cf = (c as Record<string, unknown>)['field'];
        if (typeof ct !== 'string' || !TYPE_NAME_RE.test(ct) || ct.length > 31) fail(EINVAL, `${name}.contains.type must be a type name (an identifier of at most 31 characters); got ${JSON.stringify(ct)}`);
        if (typeof cf !== 'number' || !Number.isInteger(cf) || cf < 0 || cf > 0xffff) fail(EINVAL, `${name}.contains.field must be the byte offset of the node field; got ${String(cf)}`);
        list.push({ type: t, offset: off, name: `${name} (${t})`, containsType: ct, nodeOff: cf });
      } else {
        if (r['contains'] !== undefined) fail(EINVAL, `${name} (${t}): only bpf_list_head and bpf_rb_root take contains`);
        list.push({ type: t, offset: off, name: `${name} (${t})` });
      }
    });
  }
  let spinLockOffset = -1;
  let timerOffset = -1;
  let resLockOffset = -1;
  const roots: MapRootSpec[] = [];
  for (const f of list) {
    if (f.type === 'bpf_spin_lock') {
      if (spinLockOffset >= 0) fail(E2BIG, `${f.name}: a value may contain at most one bpf_spin_lock`);
      spinLockOffset = f.offset;
    } else if (f.type === 'bpf_timer') {
      if (timerOffset >= 0) fail(E2BIG, `${f.name}: a value may contain at most one bpf_timer`);
      timerOffset = f.offset;
    } else if (f.type === 'bpf_res_spin_lock') {
      if (resLockOffset >= 0) fail(E2BIG, `${f.name}: a value may contain at most one bpf_res_spin_lock`);
      resLockOffset = f.offset;
    } else {
      if (roots.length >= MAX_VALUE_ROOTS) fail(E2BIG, `${f.name}: at most ${MAX_VALUE_ROOTS} roots in one value`);
      roots.push({ kind: f.type === 'bpf_list_head' ? FK_LIST_HEAD : FK_RB_ROOT, offset: f.offset, containsType: f.containsType!, nodeOff: f.nodeOff! });
    }
  }
  // the seed's binding by location: the roots of a value are guarded by its one bpf_spin_lock
  if (roots.length > 0 && spinLockOffset < 0) fail(EINVAL, 'fields: a bpf_list_head or bpf_rb_root needs a bpf_spin_lock in the same value to guard it');
  for (let i = 0; i < list.length; i++) {
    for (let j = i + 1; j < list.length; j++) {
      const a = list[i]!;
      const b = list[j]!;
      if (a.offset < b.offset + SIZES[b.type] && b.offset < a.offset + SIZES[a.type]) {
        fail(EINVAL, `${b.name} at offset ${b.offset} overlaps ${a.name} at offset ${a.offset}`);
      }
    }
  }
  return { spinLockOffset, timerOffset, resLockOffset, roots };
}

/**
 * map_check_btf(): which map types accept which fields (kernel syscall.c): bpf_spin_lock in hash
 * and array maps (also BPF_F_NO_PREALLOC hash); bpf_timer in hash, lru_hash and array maps
 * (percpu variants refused), not in a BPF_F_MMAPABLE array (global data). Inner-map templates
 * carry their record. Throws BpfError(EOPNOTSUPP / EINVAL) naming the field.
 */
export function mapCheckBtf(type: string, mmapable: boolean, rec: BtfRecordSpec): void {
  if (rec.roots.length > 0) {
    if (type !== 'hash' && type !== 'lru_hash' && type !== 'array') {
      fail(EOPNOTSUPP, `fields: bpf_list_head and bpf_rb_root are supported in hash, lru_hash and array maps only (map_check_btf); got type ${type}`);
    }
    if (graphOps === null) fail(EOPNOTSUPP, 'fields: bpf_list_head and bpf_rb_root need the graph layer (src/graph/), which this thread has not loaded');
  }
  if (rec.resLockOffset >= 0 && type !== 'hash' && type !== 'lru_hash' && type !== 'array') {
    fail(EOPNOTSUPP, `fields: bpf_res_spin_lock is supported in hash, lru_hash and array maps only; got type ${type}`);
  }
  if (rec.spinLockOffset >= 0 && type !== 'hash' && type !== 'array' && !(type === 'lru_hash' && rec.roots.length > 0)) {
    fail(EOPNOTSUPP, `fields: bpf_spin_lock is supported in hash and array maps only (map_check_btf); got type ${type}`);
  }
  if (rec.timerOffset >= 0) {
    if (type !== 'hash' && type !== 'lru_hash' && type !== 'array') {
      fail(EOPNOTSUPP, `fields: bpf_timer is supported in hash, lru_hash and array maps only (map_check_btf); got type ${type}`);
    }
    if (mmapable) fail(EINVAL, 'fields: bpf_timer cannot be in a BPF_F_MMAPABLE array (global data may not hold timers)');
  }
}

/**
 * bpf_timer_cancel_and_free() as the timer layer provides it: `mayWait` (uref release, main
 * thread) may wait for a running callback; `retire` leaves BPF_TIMER_RETIRED instead of 0.
 */
export type TimerFieldFree = (field: number, mayWait: boolean, retire: boolean) => void;

function noTimerLayer(field: number, _mayWait: boolean, retire: boolean): void {
  // No timer layer on this thread: no timer can have been initialised; just mark the field.
  Atomics.store(I32, field >> 2, retire ? BPF_TIMER_RETIRED : 0);
}

let timerFree: TimerFieldFree = noTimerLayer;
let timerDrain: () => void = () => {};

/**
 * The timer layer's bpf_timer_cancel_and_free, and its drain of deferred timer frees (the
 * kernel's flush of delete_work at uref release). Thread boot.
 */
export function registerTimerFieldOps(free: TimerFieldFree, drain: () => void): void {
  timerFree = free;
  timerDrain = drain;
}

/**
 * End of map_release_uref (main thread): timers freed earlier from a callback or while their
 * callback ran elsewhere (deferred) are cancelled and freed now, waiting (bounded) for their
 * callbacks, so no callback of a released map's timer is still running afterwards.
 */
export function bpfTimersFlushDeferred(): void {
  timerDrain();
}

/**
 * The graph layer's half of the record (src/graph/, above maps): declaring the object type a
 * root contains (an id), and freeing the roots of a value leaving its map (bpf_list_head_free /
 * bpf_rb_root_free: take the value's lock, detach, unlock, drop the nodes). Registered at module
 * load; without it no map may hold roots.
 */
export interface GraphFieldOps {
  declareType(name: string): number;
  freeRoots(value: number, lockOff: number, roots: readonly MapRoot[]): void;
}
let graphOps: GraphFieldOps | null = null;
export function registerGraphFieldOps(ops: GraphFieldOps): void { graphOps = ops; }

/**
 * The graph part of struct bpf_map (pointer at MAP_GRAPH_REC, 0 = none; main thread, creation):
 *   +0 roots  +4 bpf_res_spin_lock offset + 1  +8 roots[i]: kind | off << 8, type id | node off << 16
 */
export const GREC_ROOTS = 0;
export const GREC_RES_LOCK = 4;
export const GREC_ROOT0 = 8;
export function graphRecordBytes(): number { return GREC_ROOT0 + 8 * MAX_VALUE_ROOTS; }

/** Fill the graph part of a map's record (main thread): the contained types are declared here. */
export function writeGraphRecord(block: number, rec: BtfRecordSpec): void {
  I32[(block + GREC_ROOTS) >> 2] = rec.roots.length;
  I32[(block + GREC_RES_LOCK) >> 2] = rec.resLockOffset + 1;
  rec.roots.forEach((r, i) => {
    const id = graphOps!.declareType(r.containsType);
    I32[(block + GREC_ROOT0 + 8 * i) >> 2] = r.kind | (r.offset << 8);
    I32[(block + GREC_ROOT0 + 8 * i + 4) >> 2] = id | (r.nodeOff << 16);
  });
}

/**
 * struct btf_record of one map: where the special fields are. One instance per map handle,
 * immutable; the copy helpers below take it.
 */
export class BtfRecord {
  /** offset of the bpf_spin_lock, -1 none */
  readonly spinLockOff: number;
  /** offset of the bpf_timer, -1 none */
  readonly timerOff: number;
  /** offset of the bpf_res_spin_lock, -1 none */
  readonly resLockOff: number;
  /** bpf_list_head / bpf_rb_root fields (guarded by the value's bpf_spin_lock) */
  readonly roots: readonly MapRoot[];
  /** number of special fields */
  readonly cnt: number;
  /** special ranges sorted by offset: [start0, end0, start1, end1] */
  readonly ranges: Int32Array;

  constructor(spinLockOff: number, timerOff: number, resLockOff = -1, roots: readonly MapRoot[] = []) {
    this.spinLockOff = spinLockOff;
    this.timerOff = timerOff;
    this.resLockOff = resLockOff;
    this.roots = roots;
    const r: [number, number][] = [];
    if (spinLockOff >= 0) r.push([spinLockOff, spinLockOff + BPF_SPIN_LOCK_SIZE]);
    if (timerOff >= 0) r.push([timerOff, timerOff + BPF_TIMER_SIZE]);
    if (resLockOff >= 0) r.push([resLockOff, resLockOff + BPF_RES_SPIN_LOCK_SIZE]);
    for (const x of roots) r.push([x.off, x.off + BPF_GRAPH_ROOT_SIZE]);
    r.sort((a, b) => a[0] - b[0]);
    this.cnt = r.length;
    this.ranges = Int32Array.from(r.flat());
  }

  get hasSpinLock(): boolean { return this.spinLockOff >= 0; }
  get hasTimer(): boolean { return this.timerOff >= 0; }
}

export const EMPTY_RECORD = new BtfRecord(-1, -1);

/** The record stored in a struct bpf_map header (words hold offset + 1; graph part at `graphRec`). */
export function btfRecordFromWords(lockWord: number, timerWord: number, graphRec = 0): BtfRecord {
  if (lockWord === 0 && timerWord === 0 && graphRec === 0) return EMPTY_RECORD;
  if (graphRec === 0) return new BtfRecord(lockWord - 1, timerWord - 1);
  const roots: MapRoot[] = [];
  const n = I32[(graphRec + GREC_ROOTS) >> 2]!;
  for (let i = 0; i < n; i++) {
    const w0 = I32[(graphRec + GREC_ROOT0 + 8 * i) >> 2]!;
    const w1 = I32[(graphRec + GREC_ROOT0 + 8 * i + 4) >> 2]!;
    roots.push(Object.freeze({ kind: w0 & 0xff, off: w0 >>> 8, typeId: w1 & 0xffff, nodeOff: w1 >>> 16 }));
  }
  return new BtfRecord(lockWord - 1, timerWord - 1, I32[(graphRec + GREC_RES_LOCK) >> 2]! - 1, Object.freeze(roots));
}

/** copy_map_value(): every byte except the special fields. No overlap. */
export function copyMapValue(dst: number, src: number, size: number, rec: BtfRecord): void {
  const n = rec.cnt;
  if (n === 0) { kcopy(dst, src, size); return; }
  const r = rec.ranges;
  let cur = 0;
  for (let i = 0; i < n; i++) {
    const s = r[2 * i]!;
    if (s > cur) kcopy(dst + cur, src + cur, s - cur);
    cur = r[2 * i + 1]!;
  }
  if (cur < size) kcopy(dst + cur, src + cur, size - cur);
}

/** zero_map_value(): zero every byte except the special fields. */
export function zeroMapValue(dst: number, size: number, rec: BtfRecord): void {
  const n = rec.cnt;
  if (n === 0) { kzero(dst, size); return; }
  const r = rec.ranges;
  let cur = 0;
  for (let i = 0; i < n; i++) {
    const s = r[2 * i]!;
    if (s > cur) kzero(dst + cur, s - cur);
    cur = r[2 * i + 1]!;
  }
  if (cur < size) kzero(dst + cur, size - cur);
}

/**
 * check_and_init_map_value(): put the special fields of `dst` in their initial state (zero). For
 * user copies (they never see a lock word or a timer pointer) and new dynamic elements.
 */
export function checkAndInitMapValue(dst: number, rec: BtfRecord): void {
  if (rec.cnt === 0) return;
  const r = rec.ranges;
  for (let i = 0; i < rec.cnt; i++) kzero(dst + r[2 * i]!, r[2 * i + 1]! - r[2 * i]!);
}

/**
 * copy_map_value_locked(): copy under the value's bpf_spin_lock. `lockSrc` true: the lock is in
 * `src` (lookup: element -> user copy); false: in `dst` (update in place). Returns 0 or the lock
 * error (-EDEADLK / -ETIMEDOUT; the kernel's bpf_spin_lock cannot fail, the simulation's can).
 */
export function copyMapValueLocked(dst: number, src: number, size: number, rec: BtfRecord, lockSrc: boolean): number {
  const lock = (lockSrc ? src : dst) + rec.spinLockOff;
  const err = rawSpinLockIrqsave(lock, LC_BPF_SPIN_LOCK);
  if (err !== 0) return err;
  copyMapValue(dst, src, size, rec);
  rawSpinUnlockIrqrestore(lock);
  return 0;
}

/**
 * bpf_obj_free_fields(): release what the special fields of `value` own (the roots: every node
 * they hold, detached under the value's lock and dropped outside it; the timer: cancel and free,
 * never waiting for a running callback). The lock words need nothing: they are unlocked whenever
 * nobody is inside a critical section of a value they may still reach.
 */
export function bpfObjFreeFields(rec: BtfRecord, value: number, retire: boolean): void {
  if (rec.roots.length > 0 && graphOps !== null) graphOps.freeRoots(value, rec.spinLockOff, rec.roots);
  if (rec.timerOff >= 0) {
    const f = value + rec.timerOff;
    const w = Atomics.load(I32, f >> 2);
    // retiring an empty field takes the timer's lock too: an init holding it may be about to
    // publish a timer into this (leaving) element
    if (w !== BPF_TIMER_RETIRED && (w !== 0 || retire)) timerFree(f, false, retire);
  }
}

/**
 * An element (re)entering the map from a free list: its retired timer field becomes "not
 * initialised" again (CAS, so a timer a racing init published meanwhile — impossible on a retired
 * field — would never be overwritten). Lock words are left alone.
 */
export function bpfObjReuseFields(rec: BtfRecord, value: number): void {
  if (rec.timerOff >= 0) Atomics.compareExchange(I32, (value + rec.timerOff) >> 2, BPF_TIMER_RETIRED, 0);
}

/**
 * bpf_obj_free_timer() at map_release_uref: cancel and free the value's timer, waiting (bounded)
 * for a callback that is running on another CPU, so that none runs once the release returns.
 * Main thread, task context, no lock held.
 */
export function bpfObjFreeTimer(rec: BtfRecord, value: number): void {
  if (rec.timerOff < 0) return;
  const f = value + rec.timerOff;
  const w = Atomics.load(I32, f >> 2);
  if (w !== 0 && w !== BPF_TIMER_RETIRED) timerFree(f, true, false);
}
