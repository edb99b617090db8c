/*
 * generate.ts — random histories that are linearizable by construction, and a corruption that
 * makes one illegal: test and benchmark material for the checker (and for anyone testing a
 * checker of their own).
 *
 * Construction: a sequential run of a plain-JS map with the kernel's semantics for the map type
 * (an independent implementation: it shares no code with models.ts) gives each op a result and
 * a linearization point p_i = GAP * (i + 1). Each op goes to a random CPU; its interval is then
 * stretched around p_i (call <= p_i < ret) by up to `overlap` gaps either side, never overlapping
 * the CPU's previous or next op (a CPU does one op at a time). Since p_i stays inside its interval
 * and the order of the p_i is the order of the sequential run, that run is a linearization of the
 * stretched history. Stamps are finally renumbered 1..2n, keeping every order (equal stamps: calls
 * first), as one monotonic counter would give them.
 *
 * corruptHistory() replaces the result of one lookup with a value never written to the map (and
 * not its initial value): no linearization can produce it, whatever the model's nondeterminism.
 */
import { EBUSY, EEXIST, E2BIG, EINVAL, ENOENT } from '../errno.js';
import type { HistoryOp, MapTypeName } from './history.js';
import type { MapInfo } from './partition.js';

export interface GenerateOptions {
  readonly seed: number;
  /** number of operations */
  readonly ops: number;
  /** @defaultValue 'hash' */
  readonly mapType?: 'hash' | 'lru_hash' | 'array' | 'percpu_hash' | 'lru_percpu_hash' | 'percpu_array';
  /** distinct keys. @defaultValue 8 */
  readonly keys?: number;
  /** @defaultValue 4 */
  readonly cpus?: number;
  /** map id. @defaultValue 1 */
  readonly map?: number;
  /** value size in bytes. @defaultValue 4 */
  readonly valueBytes?: number;
  /** how far (in ops) an op's interval may reach either side of its linearization point. @defaultValue 3 */
  readonly overlap?: number;
  /** fraction of updates and deletes that fail with EBUSY (a bucket lock not taken). @defaultValue 0.02 */
  readonly errorRate?: number;
  /** hash: inserts beyond this fail with E2BIG; lru: inserts beyond it evict; arrays: keys at or past it are out of range. @defaultValue none (lru: keys/2) */
  readonly maxEntries?: number;
  /** lru: chance per op that some key is evicted spontaneously (another key entering). @defaultValue 0.05 */
  readonly evictRate?: number;
  /** chance an update writes a value already written before (values are otherwise unique). @defaultValue 0.1 */
  readonly repeatValueRate?: number;
}

export interface GeneratedHistory {
  readonly ops: HistoryOp[];
  /** pass as CheckOptions.maps */
  readonly maps: Record<number, MapInfo>;
  /** op indices in the order of the sequential run (a linearization) */
  readonly linearization: number[];
}

export interface Corruption {
  readonly ops: HistoryOp[];
  /** the op whose result was replaced */
  readonly index: number;
  readonly was: number | string;
}

/** mulberry32 */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const u32hex = (v: number): string => {
  let s = '';
  for (let b = 0; b < 4; b++) s += ((v >>> (8 * b)) & 0xff).toString(16).padStart(2, '0');
  return s;
};

interface Draft {
  cpu: number;
  op: HistoryOp['op'];
  key: string;
  value?: string;
  flags: number;
  result: number | string;
}

/** A random history, linearizable by construction. */
export function generateHistory(o: GenerateOptions): GeneratedHistory {
  const rand = rng(o.seed);
  const type = o.mapType ?? 'hash';
  const nKeys = o.keys ?? 8;
  const cpus = o.cpus ?? 4;
  const mapId = o.map ?? 1;
  const vBytes = o.valueBytes ?? 4;
  const overlap = o.overlap ?? 3;
  const errorRate = o.errorRate ?? 0.02;
  const evictRate = o.evictRate ?? 0.05;
  const repeatRate = o.repeatValueRate ?? 0.1;
  const lru = type === 'lru_hash' || type === 'lru_percpu_hash';
  const percpu = type === 'percpu_hash' || type === 'lru_percpu_hash' || type === 'percpu_array';
  const array = type === 'array' || type === 'percpu_array';
  const maxEntries = o.maxEntries ?? (lru ? Math.max(1, nKeys >> 1) : undefined);
  const zero = '00'.repeat(vBytes);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)]!;
  const keyOf = (k: number): string => u32hex(k);
  const written: string[] = [];
  let counter = 0;
  const freshValue = (): string => {
    if (written.length > 0 && rand() < repeatRate) return pick(written);
    counter++;
    let s = '';
    for (let b = 0; b < vBytes; b++) s += Math.floor(rand() * 256).toString(16).padStart(2, '0');
    s = u32hex(counter).slice(0, Math.min(8, 2 * vBytes)) + s.slice(Math.min(8, 2 * vBytes)); // unique prefix
    written.push(s);
    return s;
  };

  // the sequential map: key -> per-CPU slots (one slot for non-per-CPU types)
  const store = new Map<string, string[]>();
  const slots = percpu ? cpus : 1;
  const inRange = (k: string): boolean => !array || maxEntries === undefined || parseInt(k.slice(0, 2), 16) + (parseInt(k.slice(2, 4), 16) << 8) < maxEntries;
  if (array) for (let k = 0; k < nKeys; k++) if (inRange(keyOf(k))) store.set(keyOf(k), new Array<string>(slots).fill(zero));
  const evictOne = (except: string | null): void => {
    const victims = [...store.keys()].filter((k) => k !== except);
    if (victims.length > 0) store.delete(pick(victims));
  };

  const drafts: Draft[] = [];
  for (let i = 0; i < o.ops; i++) {
    if (lru && rand() < evictRate) evictOne(null);
    const cpu = Math.floor(rand() * cpus);
    const slot = percpu ? cpu : 0;
    const key = keyOf(Math.floor(rand() * nKeys));
    const cur = store.get(key);
    const x = rand();
    const fail = rand() < errorRate && !array;
    if (x < 0.4) {
      drafts.push({ cpu, op: 'lookup', key, flags: 0, result: cur === undefined ? -ENOENT : cur[slot]! });
    } else if (x < 0.75) {
      const flags = pick([0, 0, 1, 2]);
      const value = freshValue();
      let result = 0;
      if (fail) result = -EBUSY;
      else if (array) {
        if (cur === undefined) result = -E2BIG;
        else if (flags === 1) result = -EEXIST;
        else cur[slot] = value;
      } else if (flags === 1 && cur !== undefined) result = -EEXIST;
      else if (flags === 2 && cur === undefined) result = -ENOENT;
      else if (cur !== undefined) cur[slot] = value;
      else if (!lru && maxEntries !== undefined && store.size >= maxEntries) result = -E2BIG;
      else {
        if (lru && maxEntries !== undefined && store.size >= maxEntries) evictOne(key);
        const s = new Array<string>(slots).fill(zero);
        s[slot] = value;
        store.set(key, s);
      }
      drafts.push({ cpu, op: 'update', key, value, flags, result });
    } else if (x < 0.9 || percpu || array) {
      let result: number;
      if (array) result = -EINVAL;
      else if (fail) result = -EBUSY;
      else if (cur === undefined) result = -ENOENT;
      else { store.delete(key); result = 0; }
      drafts.push({ cpu, op: 'delete', key, flags: 0, result });
    } else {
      let result: number | string;
      if (fail) result = -EBUSY;
      else if (cur === undefined) result = -ENOENT;
      else { result = cur[0]!; store.delete(key); }
      drafts.push({ cpu, op: 'lookup_and_delete', key, flags: 0, result });
    }
  }

  // stretch: p_i = GAP (i + 1); a CPU's ops never overlap each other
  const GAP = 16;
  const n = drafts.length;
  const call = new Float64Array(n);
  const ret = new Float64Array(n);
  const nextOnCpu = new Int32Array(n).fill(-1);
  const lastOnCpu = new Int32Array(cpus).fill(-1);
  for (let i = 0; i < n; i++) { const c = drafts[i]!.cpu; if (lastOnCpu[c]! >= 0) nextOnCpu[lastOnCpu[c]!] = i; lastOnCpu[c] = i; }
  const prevRet = new Float64Array(cpus).fill(-Infinity);
  const span = Math.max(1, overlap) * GAP;
  for (let i = 0; i < n; i++) {
    const p = GAP * (i + 1);
    const c = drafts[i]!.cpu;
    call[i] = Math.max(prevRet[c]! + 1, p - Math.floor(rand() * span));
    const nx = nextOnCpu[i]!;
    const limit = Math.min(nx >= 0 ? GAP * (nx + 1) - 1 : Infinity, p + span); // return before the CPU's next op's point
    ret[i] = Math.min(limit, p + 1 + Math.floor(rand() * (limit - p)));
    prevRet[c] = ret[i]!;
  }
  // renumber to 1..2n (equal stamps: calls first)
  const ev: number[] = [];
  for (let i = 0; i < n; i++) ev.push(2 * i, 2 * i + 1);
  const t = (e: number): number => ((e & 1) === 0 ? call[e >> 1]! : ret[e >> 1]!);
  ev.sort((a, b) => t(a) - t(b) || (a & 1) - (b & 1) || a - b);
  ev.forEach((e, r) => { if ((e & 1) === 0) call[e >> 1] = r + 1; else ret[e >> 1] = r + 1; });

  const ops: HistoryOp[] = drafts.map((d, i) => ({
    cpu: d.cpu, context: 'task', op: d.op, map: mapId, key: d.key,
    ...(d.value !== undefined ? { value: d.value } : {}),
    flags: d.flags, result: d.result, call: call[i]!, ret: ret[i]!,
  }));
  const info: MapInfo = { type: type as MapTypeName, ...(array && maxEntries !== undefined ? { maxEntries } : {}) };
  return { ops, maps: { [mapId]: info }, linearization: drafts.map((_, i) => i) };
}

/** Replace one lookup's result with a value never written to its map: the history becomes illegal. */
export function corruptHistory(ops: readonly HistoryOp[], seed: number): Corruption {
  const rand = rng(seed ^ 0x5bd1e995);
  const lookups: number[] = [];
  for (let i = 0; i < ops.length; i++) if (ops[i]!.op === 'lookup' || ops[i]!.op === 'lookup_and_delete') lookups.push(i);
  if (lookups.length === 0) throw new RangeError('corruptHistory: the history has no lookup to corrupt');
  const index = lookups[Math.floor(rand() * lookups.length)]!;
  const target = ops[index]!;
  const seen = new Set<string>();
  let len = 8;
  for (const op of ops) {
    if (op.map !== target.map) continue;
    if (typeof op.value === 'string') { seen.add(op.value); len = op.value.length; }
    if (typeof op.result === 'string') { seen.add(op.result); len = op.result.length; }
  }
  let v = '';
  do {
    v = '';
    for (let b = 0; b < len / 2; b++) v += Math.floor(rand() * 256).toString(16).padStart(2, '0');
  } while (seen.has(v) || /^0*$/.test(v));
  const out = ops.slice();
  out[index] = { ...target, result: v };
  return { ops: out, index, was: target.result };
}
