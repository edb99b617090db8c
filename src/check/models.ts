/*
 * models.ts — the sequential specifications the linearizability checker holds a history against:
 * one key of a BPF map (kernel/bpf/hashtab.c, arraymap.c, bpf_lru_list.c) as seen through
 * lookup / update / delete / lookup_and_delete and their errnos.
 *
 * A partition of the history is one key of one map (per-CPU maps: one key's slot on one CPU), so a
 * model state is what one key holds:
 *   ABSENT (-1)  the key is not in the map
 *   ANYP   (-2)  present with some value nobody has shown us (a wildcard: a lookup refines it)
 *   OOB    (-3)  an array index past max_entries (lookups miss, updates fail with E2BIG)
 *   v >= 0       present with value id v (values are interned per map on the main thread)
 * The kernel is nondeterministic here (LRU eviction, another CPU inserting or deleting a per-CPU
 * element), so the search state is a *set* of these states: the powerset construction Porcupine
 * applies to nondeterministic models. A singleton set is encoded as its state (>= -3); a larger one
 * as a handle (<= SET_BASE) interned in a StateSpace. Sets are canonical: sorted, no duplicates, and
 * ANYP absorbs every value id (it stands for all of them).
 *
 * Invariants: step() never mutates a set; equal sets get equal handles within one StateSpace (the
 * search's cache compares handles); a handle is only meaningful in the StateSpace that made it.
 *
 * Differences from the kernel, on purpose: errors that need knowledge the history lacks (the map
 * being full, a lock timing out, memory running out) are legal wherever the kernel could return
 * them and change nothing; see docs/CHECK.md "Models".
 */
import { E2BIG, EBUSY, EDEADLK, EEXIST, EINVAL, ENOENT, ENOMEM, EOPNOTSUPP, ETIMEDOUT, ENOTSUPP } from '../errno.js';

// ---- op kinds (the recorder's numbering, src/maps/map_history.ts) ----
export const OP_LOOKUP = 0;
export const OP_UPDATE = 1;
export const OP_DELETE = 2;
export const OP_LOOKUP_AND_DELETE = 3;
export const OP_NAMES = ['lookup', 'update', 'delete', 'lookup_and_delete'] as const;
export type OpName = (typeof OP_NAMES)[number];

// ---- models ----
export const MK_HASH = 0;
export const MK_LRU = 1;
export const MK_ARRAY = 2;
export const MK_PERCPU_HASH = 3;
export const MK_LRU_PERCPU_HASH = 4;
export const MK_PERCPU_ARRAY = 5;
/** Model names, indexed by MK_*. */
export const MODEL_NAMES = ['hash', 'lru_hash', 'array', 'percpu_hash', 'lru_percpu_hash', 'percpu_array'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

export const isArrayModel = (mk: number): boolean => mk === MK_ARRAY || mk === MK_PERCPU_ARRAY;
export const isPercpuModel = (mk: number): boolean => mk >= MK_PERCPU_HASH;
export const isLruModel = (mk: number): boolean => mk === MK_LRU || mk === MK_LRU_PERCPU_HASH;

// ---- partition flags (what the rest of the history does to this key behind the partition's back) ----
/** Per-CPU hash: another CPU's program touches this key: the element may vanish, or appear with this CPU's slot zeroed. */
export const PF_ENV_SLOT = 1;
/** Per-CPU map: a syscall-side update/delete (not modelled) touches this key: any value may appear (hash: or vanish). */
export const PF_ENV_ANY = 2;

// ---- update flags ----
export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;
export const BPF_F_LOCK = 4;

// ---- relaxations (kernel properties, docs/CHECK.md) ----
/** A lookup that missed while an update replacing its key overlapped it (htab_map_update_elem). */
export const RELAX_MISS = 1;
/** A lookup that returned a value written to another key of the map (element reuse). */
export const RELAX_FOREIGN = 2;

// ---- states ----
export const ABSENT = -1;
export const ANYP = -2;
export const OOB = -3;
/** Handles of multi-element sets are SET_BASE - id. */
const SET_BASE = -16;
/** step() result: no state of the set admits the op. */
export const ILLEGAL = -0x7fff_ffff;

const isLockErr = (r: number): boolean => r === -EBUSY || r === -EDEADLK || r === -ETIMEDOUT;

/** The ops of one partition, struct-of-arrays (views into a task buffer or fresh arrays). */
export interface PartitionOps {
  readonly n: number;
  readonly model: number;
  /** value id of the initial value of an array slot / the zeroed per-CPU slot; -1: unknown (ANYP) */
  readonly zero: number;
  /** PF_* */
  readonly pflags: number;
  /** 1: every key of this array partition is in range; 2: out of range; 0: unknown (both possible) */
  readonly range: number;
  readonly kind: Int32Array;
  readonly flags: Int32Array;
  /** lookups: value id >= 0 or -errno; updates, deletes: 0 or -errno */
  readonly result: Int32Array;
  /** updates: value id written; others -1 */
  readonly value: Int32Array;
  /** RELAX_* bits this op is a candidate for */
  readonly relax: Int32Array;
  /** rank of the call / return event in the partition's event order (0 .. 2n-1) */
  readonly callRank: Int32Array;
  readonly retRank: Int32Array;
}

/** Interned state sets of one partition search. */
export class StateSpace {
  readonly #sets: Int32Array[] = [];
  readonly #ids = new Map<string, number>();

  /** Canonical handle of the states in buf[0..len) (sorted, deduplicated in place; len >= 1). */
  intern(buf: number[], len: number): number {
    if (len === 1) return buf[0]!;
    let hasAnyp = false;
    for (let i = 0; i < len; i++) if (buf[i] === ANYP) { hasAnyp = true; break; }
    // sorted insertion into buf[0..m) (m <= i, so buf[i] is read before anything overwrites it):
    // sets hold a handful of states
    let m = 0;
    for (let i = 0; i < len; i++) {
      const s = buf[i]!;
      if (hasAnyp && s >= 0) continue;
      let j = m;
      while (j > 0 && buf[j - 1]! > s) j--;
      if (j > 0 && buf[j - 1] === s) continue;
      for (let k = m; k > j; k--) buf[k] = buf[k - 1]!;
      buf[j] = s;
      m++;
    }
    if (m === 1) return buf[0]!;
    let key = '';
    for (let i = 0; i < m; i++) key += `${buf[i]},`;
    let id = this.#ids.get(key);
    if (id === undefined) {
      id = this.#sets.length;
      this.#sets.push(Int32Array.from(buf.slice(0, m)));
      this.#ids.set(key, id);
    }
    return SET_BASE - id;
  }

  /** The states of a handle (a fresh array for a singleton). */
  states(h: number): Int32Array {
    return h > SET_BASE ? Int32Array.of(h) : this.#sets[SET_BASE - h]!;
  }

  /** A 32-bit hash of a handle (handles are canonical, so the handle itself will do). */
  static hash(h: number): number {
    return Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) | 0;
  }
}

/** The initial state set of a partition; `wildcard`: start in any state (a window cut mid-history). */
export function initialStates(p: PartitionOps, space: StateSpace, wildcard: boolean): number {
  const buf: number[] = [];
  if (isArrayModel(p.model)) {
    if (p.range !== 2) buf.push(wildcard || p.zero < 0 ? ANYP : p.zero);
    if (p.range !== 1) buf.push(OOB);
  } else {
    buf.push(ABSENT);
    if (wildcard) buf.push(ANYP);
  }
  return closure(p, space, buf, buf.length);
}

function closure(p: PartitionOps, space: StateSpace, buf: number[], len: number): number {
  const mk = p.model;
  if (isLruModel(mk)) buf[len++] = ABSENT; // eviction: a present key may go at any moment
  if ((p.pflags & PF_ENV_SLOT) !== 0 && !isArrayModel(mk)) {
    buf[len++] = ABSENT;
    buf[len++] = p.zero >= 0 ? p.zero : ANYP;
  }
  if ((p.pflags & PF_ENV_ANY) !== 0) {
    buf[len++] = ANYP;
    if (!isArrayModel(mk)) buf[len++] = ABSENT;
  }
  return space.intern(buf, len);
}

/**
 * One model step over a state set. Returns the handle of the set of states the key may be in
 * after op `i` returned what the history says, or ILLEGAL if no state of `h` admits it.
 * `relaxMask` enables the RELAX_* relaxations for ops that are candidates for them.
 */
export class Stepper {
  readonly #p: PartitionOps;
  readonly #space: StateSpace;
  readonly #relaxMask: number;
  readonly #buf: number[] = [];
  #len = 0;

  constructor(p: PartitionOps, space: StateSpace, relaxMask: number) {
    this.#p = p;
    this.#space = space;
    this.#relaxMask = relaxMask;
  }

  step(h: number, i: number): number {
    this.#len = 0;
    const relaxed = (this.#p.relax[i]! & this.#relaxMask) !== 0;
    if (h > SET_BASE) this.#one(h, i, relaxed);
    else {
      const set = this.#space.states(h);
      for (let k = 0; k < set.length; k++) this.#one(set[k]!, i, relaxed);
    }
    if (this.#len === 0) return ILLEGAL;
    return closure(this.#p, this.#space, this.#buf, this.#len);
  }

  /** True if op `i` is legal in `h` without any relaxation (used to name the kernel properties used). */
  strictlyLegal(h: number, i: number): boolean {
    this.#len = 0;
    if (h > SET_BASE) this.#one(h, i, false);
    else {
      const set = this.#space.states(h);
      for (let k = 0; k < set.length; k++) this.#one(set[k]!, i, false);
    }
    return this.#len > 0;
  }

  #push(s: number): void { this.#buf[this.#len++] = s; }

  #one(s: number, i: number, relaxed: boolean): void {
    const p = this.#p;
    const r = p.result[i]!;
    if (relaxed) this.#push(s); // a relaxed lookup is legal anywhere and changes nothing
    if (isArrayModel(p.model)) this.#array(s, i, r);
    else this.#hash(s, i, r);
  }

  /** hash, lru_hash, percpu_hash, lru_percpu_hash (the per-CPU slot behaves as a hash value). */
  #hash(s: number, i: number, r: number): void {
    const present = s !== ABSENT;
    switch (this.#p.kind[i]) {
      case OP_LOOKUP:
        if (r >= 0) { if (s === r || s === ANYP) this.#push(r); }
        else if (r === -ENOENT) { if (!present) this.#push(s); }
        else if (r === -EINVAL || isLockErr(r)) this.#push(s);
        return;
      case OP_LOOKUP_AND_DELETE:
        if (r >= 0) { if (s === r || s === ANYP) this.#push(ABSENT); }
        else if (r === -ENOENT) { if (!present) this.#push(s); }
        else if (r === -EINVAL || isLockErr(r)) this.#push(s);
        return;
      case OP_DELETE:
        if (r === 0) { if (present) this.#push(ABSENT); }
        else if (r === -ENOENT) { if (!present) this.#push(s); }
        else if (isLockErr(r)) this.#push(s);
        return;
      case OP_UPDATE: {
        const f = this.#p.flags[i]!;
        const mode = f & ~BPF_F_LOCK;
        const badMode = mode > BPF_EXIST;
        if (r === 0) {
          if (badMode) return;
          if (mode === BPF_ANY || (mode === BPF_NOEXIST && !present) || (mode === BPF_EXIST && present)) this.#push(this.#p.value[i]!);
        } else if (r === -EEXIST) { if (!badMode && mode === BPF_NOEXIST && present) this.#push(s); }
        else if (r === -ENOENT) { if (!badMode && mode === BPF_EXIST && !present) this.#push(s); }
        else if (r === -E2BIG) { if (!badMode && mode !== BPF_EXIST && !present) this.#push(s); }
        else if (r === -EINVAL) { if (badMode || (f & BPF_F_LOCK) !== 0) this.#push(s); }
        else if (r === -ENOMEM || isLockErr(r)) this.#push(s);
        return;
      }
      default:
        return;
    }
  }

  /** array, percpu_array: every in-range index always holds a value; OOB indices hold nothing. */
  #array(s: number, i: number, r: number): void {
    const oob = s === OOB;
    switch (this.#p.kind[i]) {
      case OP_LOOKUP:
        if (r >= 0) { if (!oob && (s === r || s === ANYP)) this.#push(r); }
        else if (r === -ENOENT) { if (oob) this.#push(s); }
        else if (r === -EINVAL) this.#push(s);
        return;
      case OP_DELETE:
      case OP_LOOKUP_AND_DELETE:
        if (r === -EINVAL || r === -EOPNOTSUPP || r === -ENOTSUPP) this.#push(s);
        return;
      case OP_UPDATE: {
        const f = this.#p.flags[i]!;
        const mode = f & ~BPF_F_LOCK;
        const badMode = mode > BPF_EXIST;
        if (r === 0) { if (!badMode && !oob && mode !== BPF_NOEXIST) this.#push(this.#p.value[i]!); }
        else if (r === -EINVAL) { if (badMode || (f & BPF_F_LOCK) !== 0) this.#push(s); }
        else if (r === -E2BIG) { if (!badMode && oob) this.#push(s); }
        else if (r === -EEXIST) { if (!badMode && !oob && mode === BPF_NOEXIST) this.#push(s); }
        return;
      }
      default:
        return;
    }
  }
}
