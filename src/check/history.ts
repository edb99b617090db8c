/*
 * history.ts — the history format the checker reads (API.md "Checking and replay", docs/CHECK.md)
 * and its validation.
 *
 * One operation: { cpu, context, op, map, key, value, flags, result, call, ret } as
 * Runtime.history() records it (src/maps/map_history.ts), or as any other tool writes it:
 *   op      'lookup' | 'update' | 'delete' | 'lookup_and_delete'
 *   map     the map id;  key / value: hex strings (value: what an update wrote)
 *   result  updates, deletes: 0 or -errno; lookups, lookup_and_delete: the value found (hex) or
 *           -errno (-2: ENOENT)
 *   call < ret: stamps from one monotonic counter (numbers or bigints)
 * Optional extensions: mapType (which model applies), side ('prog' | 'syscall': per-CPU maps
 * model only the program side).
 *
 * Validation is kept apart from checking: validateHistory() either returns a normalized,
 * struct-of-arrays copy (hex lowercased, stamps as numbers) or throws a TypeError / RangeError
 * naming the first bad operation by its index. Nothing later re-validates.
 */
import type { OpName } from './models.js';
import { OP_NAMES } from './models.js';

/** Map types, as Runtime.createMap spells them. */
export const MAP_TYPE_NAMES = [
  'hash', 'percpu_hash', 'lru_hash', 'lru_percpu_hash', 'array', 'percpu_array', 'hash_of_maps', 'array_of_maps',
] as const;
export type MapTypeName = (typeof MAP_TYPE_NAMES)[number];

/** One operation of a history (API.md). */
export interface HistoryOp {
  readonly cpu: number;
  /** 'task' | 'softirq' | 'hardirq' | 'nmi' from bpfsim; free text from other tools; not used by the models */
  readonly context?: string;
  readonly op: OpName;
  readonly map: number;
  /** hex */
  readonly key: string;
  /** updates: the value written (hex) */
  readonly value?: string | null | undefined;
  /** updates: BPF_ANY / BPF_NOEXIST / BPF_EXIST, optionally | BPF_F_LOCK. @defaultValue 0 */
  readonly flags?: number;
  /** updates, deletes: 0 or -errno; lookups: the value found (hex) or -errno (-2: ENOENT) */
  readonly result: number | string;
  readonly call: number | bigint;
  readonly ret: number | bigint;
  /** the map's type (overrides CheckOptions.maps and CheckOptions.model for this op's map) */
  readonly mapType?: MapTypeName;
  /** who performed it; per-CPU maps check only program-side ops. @defaultValue from CheckOptions.syscallCpu, else 'prog' */
  readonly side?: 'prog' | 'syscall';
  /**
   * lookups: the value changed while the recorder copied it (its element was reused under the
   * reader, the prealloc "foreign read" caught mid-copy): the value matches no write, so the op
   * is counted as not modelled. @defaultValue false
   */
  readonly torn?: boolean;
}

/** A history after validation: struct of arrays, index = the op's index in the input. */
export interface NormalizedHistory {
  readonly n: number;
  readonly kind: Uint8Array;
  readonly cpu: Int32Array;
  readonly map: Int32Array;
  readonly key: string[];
  /** updates: the value written; others: null */
  readonly value: (string | null)[];
  readonly flags: Int32Array;
  /** lookups that found a value: the value; otherwise null and resultErr holds the number */
  readonly resultHex: (string | null)[];
  readonly resultErr: Int32Array;
  readonly call: Float64Array;
  readonly ret: Float64Array;
  readonly mapType: (MapTypeName | null)[];
  /** 1: syscall side */
  readonly syscall: Uint8Array;
  /** 1: a torn read (not modelled) */
  readonly torn: Uint8Array;
}

const HEX = /^[0-9a-fA-F]+$/;
const OP_INDEX: Readonly<Record<string, number>> = Object.freeze(Object.fromEntries(OP_NAMES.map((n, i) => [n, i])));

function bad(i: number, field: string, want: string, got: unknown): TypeError {
  let shown: string;
  try { shown = typeof got === 'bigint' ? `${got}n` : JSON.stringify(got) ?? String(got); } catch { shown = String(got); }
  if (shown.length > 60) shown = `${shown.slice(0, 57)}...`;
  return new TypeError(`checkHistory: ops[${i}].${field}: expected ${want}, got ${shown}`);
}

function hexField(i: number, field: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || (v.length & 1) !== 0 || !HEX.test(v)) {
    throw bad(i, field, 'a non-empty hex string of whole bytes', v);
  }
  return v.toLowerCase();
}

function stamp(i: number, field: string, v: unknown): number {
  if (typeof v === 'bigint') {
    const n = Number(v);
    if (!Number.isSafeInteger(n)) throw new RangeError(`checkHistory: ops[${i}].${field}: ${v}n is beyond Number.MAX_SAFE_INTEGER`);
    return n;
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(i, field, 'a finite number or a bigint', v);
  return v;
}

function errnoResult(i: number, v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v > 0 || v < -4095) throw bad(i, 'result', what, v);
  return v;
}

/**
 * Validate `ops` and return the normalized history. Throws TypeError (wrong shape or type) or
 * RangeError (a stamp beyond 2^53), naming the op by index.
 */
export function validateHistory(ops: unknown, syscallCpu: number | undefined): NormalizedHistory {
  if (!Array.isArray(ops)) throw new TypeError(`checkHistory: ops: expected an array of operations, got ${ops === null ? 'null' : typeof ops}`);
  const n = ops.length;
  const h: NormalizedHistory = {
    n, kind: new Uint8Array(n), cpu: new Int32Array(n), map: new Int32Array(n), key: new Array<string>(n),
    value: new Array<string | null>(n), flags: new Int32Array(n), resultHex: new Array<string | null>(n),
    resultErr: new Int32Array(n), call: new Float64Array(n), ret: new Float64Array(n),
    mapType: new Array<MapTypeName | null>(n), syscall: new Uint8Array(n), torn: new Uint8Array(n),
  };
  for (let i = 0; i < n; i++) {
    const o: unknown = ops[i];
    if (typeof o !== 'object' || o === null) throw bad(i, '', 'an operation object', o);
    const r = o as Record<string, unknown>;
    const kind = typeof r['op'] === 'string' ? OP_INDEX[r['op']] : undefined;
    if (kind === undefined) throw bad(i, 'op', `one of ${OP_NAMES.map((x) => `'${x}'`).join(', ')}`, r['op']);
    h.kind[i] = kind;
    const cpu = r['cpu'];
    if (typeof cpu !== 'number' || !Number.isInteger(cpu) || cpu < 0 || cpu > 0x7fff_ffff) throw bad(i, 'cpu', 'an integer >= 0', cpu);
    h.cpu[i] = cpu;
    const map = r['map'];
    if (typeof map !== 'number' || !Number.isInteger(map) || map < 0 || map > 0x7fff_ffff) throw bad(i, 'map', 'a map id (an integer >= 0)', map);
    h.map[i] = map;
    if (r['context'] !== undefined && typeof r['context'] !== 'string') throw bad(i, 'context', 'a string', r['context']);
    h.key[i] = hexField(i, 'key', r['key']);
    const flags = r['flags'] ?? 0;
    if (typeof flags !== 'number' || !Number.isInteger(flags) || flags < 0 || flags > 0x7fff_ffff) throw bad(i, 'flags', 'an integer >= 0', flags);
    h.flags[i] = flags;
    const isLookup = kind === 0 || kind === 3;
    if (kind === 1) h.value[i] = hexField(i, 'value', r['value']);
    else {
      if (r['value'] !== undefined && r['value'] !== null && typeof r['value'] !== 'string') throw bad(i, 'value', 'a hex string, null or nothing', r['value']);
      h.value[i] = null;
    }
    const res = r['result'];
    if (isLookup && typeof res === 'string') {
      h.resultHex[i] = hexField(i, 'result', res);
      h.resultErr[i] = 0;
    } else {
      h.resultHex[i] = null;
      const want = isLookup ? 'the value found (hex) or a negative errno' : `0 or a negative errno for '${OP_NAMES[kind]!}'`;
      const e = errnoResult(i, res, want);
      if (isLookup && e === 0) throw bad(i, 'result', want, res);
      h.resultErr[i] = e;
    }
    const call = stamp(i, 'call', r['call']);
    const ret = stamp(i, 'ret', r['ret']);
    if (!(call < ret)) throw bad(i, 'ret', `a stamp greater than call (${call})`, r['ret']);
    h.call[i] = call;
    h.ret[i] = ret;
    const mt = r['mapType'];
    if (mt !== undefined && (typeof mt !== 'string' || !(MAP_TYPE_NAMES as readonly string[]).includes(mt))) {
      throw bad(i, 'mapType', `one of ${MAP_TYPE_NAMES.join(', ')}`, mt);
    }
    h.mapType[i] = (mt as MapTypeName | undefined) ?? null;
    const side = r['side'];
    if (side !== undefined && side !== 'prog' && side !== 'syscall') throw bad(i, 'side', "'prog' or 'syscall'", side);
    h.syscall[i] = side === 'syscall' || (side === undefined && syscallCpu !== undefined && cpu === syscallCpu) ? 1 : 0;
    const torn = r['torn'];
    if (torn !== undefined && typeof torn !== 'boolean') throw bad(i, 'torn', 'a boolean', torn);
    h.torn[i] = torn === true && isLookup ? 1 : 0;
  }
  return h;
}
