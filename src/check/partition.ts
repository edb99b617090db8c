/*
 * partition.ts — P-compositionality: a history of map operations split into independent
 * partitions (Horn & Kroening, "Faster linearizability checking via P-compositionality", 2015).
 * A map is linearizable iff each key is, so a partition is one (map, key); on per-CPU maps a
 * program reaches only its own CPU's slot, so a partition is (map, key, cpu) there.
 *
 * What crosses partitions, handled here on the main thread (it needs the whole history):
 *   - values are interned per map (the worker sees value ids, never hex);
 *   - per-CPU maps: syscall-side ops are not modelled (they read and write every CPU's slot at
 *     once); their updates and deletes make the slots of that key PF_ENV_ANY. Program-side
 *     updates and deletes by another CPU make a per-CPU hash key PF_ENV_SLOT (it may vanish, or
 *     appear with this CPU's slot zeroed);
 *   - kernel-property candidates (models.ts RELAX_*): a hash lookup that missed while a replacing
 *     update of its key overlapped it (RELAX_MISS); a lookup whose value was written to another
 *     key of the same map by an update called before the lookup returned (RELAX_FOREIGN).
 * Within a partition ops are in call order, and callRank / retRank are the positions of their
 * events in time order (equal stamps: calls first, i.e. overlapping), taken from one sort of all
 * the history's events.
 */
import type { MapTypeName, NormalizedHistory } from './history.js';
import {
  BPF_F_LOCK, BPF_NOEXIST, MK_ARRAY, MK_HASH, MK_LRU, MK_LRU_PERCPU_HASH, MK_PERCPU_ARRAY, MK_PERCPU_HASH,
  OP_DELETE, OP_LOOKUP, OP_LOOKUP_AND_DELETE, OP_UPDATE, PF_ENV_ANY, PF_ENV_SLOT, RELAX_FOREIGN, RELAX_MISS,
  isArrayModel, isPercpuModel, type PartitionOps,
} from './models.js';
import type { PackedPartition } from './task.js';

/** What the checker knows about a map beyond its ops. */
export interface MapInfo {
  readonly type: MapTypeName;
  /**
   * The value an array slot starts with (and a per-CPU hash slot another CPU's insert leaves), as
   * the history would show it. 'any': unknown. @defaultValue zero bytes, as long as the map's values
   */
  readonly initialValue?: string;
  /** arrays: keys (u32, little endian) at or past it are out of range. @defaultValue unknown: either */
  readonly maxEntries?: number;
}

/** Model of a map type; -1: not modelled. */
export function modelOfType(t: MapTypeName): number {
  switch (t) {
    case 'hash': return MK_HASH;
    case 'lru_hash': return MK_LRU;
    case 'array': return MK_ARRAY;
    case 'percpu_hash': return MK_PERCPU_HASH;
    case 'lru_percpu_hash': return MK_LRU_PERCPU_HASH;
    case 'percpu_array': return MK_PERCPU_ARRAY;
    default: return -1;
  }
}

export interface PartitionMeta {
  readonly map: number;
  readonly key: string;
  /** per-CPU maps: the CPU whose slot this is */
  readonly cpu: number | null;
  readonly model: number;
  /** input indices of the partition's ops, in partition order (call order) */
  readonly opIdx: Int32Array;
}

export interface Partitioned {
  readonly parts: PackedPartition[];
  readonly meta: PartitionMeta[];
  /** per map: value id -> hex */
  readonly values: Map<number, string[]>;
  readonly opsNotModelled: number;
}

/** The first two distinct keys a value was written to (successful updates), with the call stamp of that write. */
interface Writers { k1: string; c1: number; k2: string | null; c2: number }

const isMutation = (h: NormalizedHistory, i: number): boolean => {
  const k = h.kind[i]!;
  if (k === OP_UPDATE || k === OP_DELETE) return h.resultErr[i] === 0;
  return k === OP_LOOKUP_AND_DELETE && h.resultHex[i] !== null;
};

/** Split a validated history into partitions. `modelOf(i)`: the model (MK_*) of op i, or -1. */
export function partitionHistory(h: NormalizedHistory, modelOf: (i: number) => number, maps: (map: number) => MapInfo | undefined): Partitioned {
  const n = h.n;
  const model = new Int8Array(n);
  const groups = new Map<string, number>();
  const groupSize: number[] = [];
  const groupFirst: number[] = [];
  const partOf = new Int32Array(n).fill(-1);
  const envAny = new Set<string>();
  const mutCpus = new Map<string, Set<number>>();
  const firstLen = new Map<number, number>();
  const writers = new Map<string, Writers>();
  let notModelled = 0;

  for (let i = 0; i < n; i++) {
    const mk = modelOf(i);
    const map = h.map[i]!;
    const mkey = `${map}:${h.key[i]!}`;
    const hex = h.value[i] ?? h.resultHex[i]!;
    if (hex !== null && !firstLen.has(map)) firstLen.set(map, hex.length);
    if (mk < 0 || h.torn[i] === 1) { model[i] = -1; notModelled++; continue; }
    if (isPercpuModel(mk) && h.syscall[i] === 1) {
      model[i] = -1; notModelled++;
      if (isMutation(h, i)) envAny.add(mkey);
      continue;
    }
    model[i] = mk;
    if (isPercpuModel(mk) && isMutation(h, i)) {
      let s = mutCpus.get(mkey);
      if (s === undefined) { s = new Set(); mutCpus.set(mkey, s); }
      s.add(h.cpu[i]!);
    }
    const pkey = isPercpuModel(mk) ? `${mkey}:${h.cpu[i]!}` : mkey;
    let g = groups.get(pkey);
    if (g === undefined) { g = groupSize.length; groups.set(pkey, g); groupSize.push(0); groupFirst.push(i); }
    partOf[i] = g;
    groupSize[g]!++;
  }

  // ---- every event of the history in time order (equal stamps: calls first), sorted once ----
  const ev = eventOrder(h);

  // ---- per (map, value): the first two keys it was written to, in call order ----
  for (let r = 0; r < 2 * n; r++) {
    const e = ev[r]!;
    if ((e & 1) !== 0) continue;
    const i = e >> 1;
    if (h.kind[i] !== OP_UPDATE || h.resultErr[i] !== 0) continue;
    const wk = `${h.map[i]!}:${h.value[i]!}`;
    const w = writers.get(wk);
    if (w === undefined) writers.set(wk, { k1: h.key[i]!, c1: h.call[i]!, k2: null, c2: Infinity });
    else if (w.k2 === null && w.k1 !== h.key[i]) { w.k2 = h.key[i]!; w.c2 = h.call[i]!; }
  }

  // ---- values ----
  const interned = new Map<number, Map<string, number>>();
  const values = new Map<number, string[]>();
  const intern = (map: number, hex: string): number => {
    let t = interned.get(map);
    if (t === undefined) { t = new Map(); interned.set(map, t); values.set(map, []); }
    let id = t.get(hex);
    if (id === undefined) { id = t.size; t.set(hex, id); values.get(map)!.push(hex); }
    return id;
  };
  const zeroOf = new Map<number, number>();
  const zero = (map: number): number => {
    let z = zeroOf.get(map);
    if (z === undefined) {
      const iv = maps(map)?.initialValue;
      const len = firstLen.get(map);
      z = iv === 'any' ? -1 : iv !== undefined ? intern(map, iv.toLowerCase()) : len === undefined ? -1 : intern(map, '0'.repeat(len));
      zeroOf.set(map, z);
    }
    return z;
  };

  // ---- the partitions: ops in call order, event ranks from the global order ----
  const G = groupSize.length;
  const ps: (PartitionOps & { pflags: number; range: number; relax: Int32Array })[] = [];
  const opIdx: Int32Array[] = [];
  for (let g = 0; g < G; g++) {
    const m = groupSize[g]!;
    const first = groupFirst[g]!;
    const mk = model[first]!;
    const map = h.map[first]!;
    const key = h.key[first]!;
    const mkey = `${map}:${key}`;
    const p = {
      n: m, model: mk, zero: isArrayModel(mk) || isPercpuModel(mk) ? zero(map) : -1, pflags: 0, range: 0,
      kind: new Int32Array(m), flags: new Int32Array(m), result: new Int32Array(m), value: new Int32Array(m),
      relax: new Int32Array(m), callRank: new Int32Array(m), retRank: new Int32Array(m),
    };
    if (isPercpuModel(mk)) {
      if (envAny.has(mkey)) p.pflags |= PF_ENV_ANY;
      const cpus = mutCpus.get(mkey);
      if (cpus !== undefined && (cpus.size > 1 || !cpus.has(h.cpu[first]!))) p.pflags |= PF_ENV_SLOT;
    }
    if (isArrayModel(mk)) {
      const max = maps(map)?.maxEntries;
      if (max !== undefined && key.length === 8) {
        const idx = (parseInt(key.slice(0, 2), 16) | (parseInt(key.slice(2, 4), 16) << 8) | (parseInt(key.slice(4, 6), 16) << 16) | (parseInt(key.slice(6, 8), 16) << 24)) >>> 0;
        p.range = idx < max ? 1 : 2;
      }
    }
    ps.push(p);
    opIdx.push(new Int32Array(m));
  }
  const nextLocal = new Int32Array(G);
  const nextRank = new Int32Array(G);
  const localOf = new Int32Array(n);
  for (let r = 0; r < 2 * n; r++) {
    const e = ev[r]!;
    const i = e >> 1;
    const g = partOf[i]!;
    if (g < 0) continue;
    const p = ps[g]!;
    if ((e & 1) === 0) {
      const j = nextLocal[g]!++;
      localOf[i] = j;
      opIdx[g]![j] = i;
      const map = h.map[i]!;
      p.kind[j] = h.kind[i]!;
      p.flags[j] = h.flags[i]!;
      const rh = h.resultHex[i]!;
      p.result[j] = rh !== null ? intern(map, rh) : h.resultErr[i]!;
      p.value[j] = h.kind[i] === OP_UPDATE ? intern(map, h.value[i]!) : -1;
      p.callRank[j] = nextRank[g]!++;
    } else {
      p.retRank[localOf[i]!] = nextRank[g]!++;
    }
  }
  const parts: PackedPartition[] = [];
  const meta: PartitionMeta[] = [];
  for (let g = 0; g < G; g++) {
    const p = ps[g]!;
    const first = groupFirst[g]!;
    markRelax(h, opIdx[g]!, p, writers);
    parts.push({ part: g, ops: p });
    meta.push({ map: h.map[first]!, key: h.key[first]!, cpu: isPercpuModel(p.model) ? h.cpu[first]! : null, model: p.model, opIdx: opIdx[g]! });
  }
  return { parts, meta, values, opsNotModelled: notModelled };
}

/**
 * Every event of the history (2i: call of op i, 2i+1: its return) in time order; equal stamps:
 * calls first, then by event number. Stamps from one counter are dense integers, which a counting
 * sort orders in O(n + range); anything else goes through a comparison sort (same order).
 */
function eventOrder(h: NormalizedHistory): Int32Array {
  const n = h.n;
  const ev = new Int32Array(2 * n);
  let min = Infinity, max = -Infinity, ints = true;
  for (let i = 0; i < n; i++) {
    const c = h.call[i]!, r = h.ret[i]!;
    if (!Number.isInteger(c) || !Number.isInteger(r)) { ints = false; break; }
    if (c < min) min = c;
    if (r > max) max = r;
  }
  const range = max - min + 1;
  if (n > 0 && ints && range <= 8 * n + 1024) {
    const slot = (e: number): number => 2 * (((e & 1) === 0 ? h.call[e >> 1]! : h.ret[e >> 1]!) - min) + (e & 1);
    const start = new Int32Array(2 * range + 1);
    for (let e = 0; e < 2 * n; e++) start[slot(e) + 1]!++;
    for (let k = 1; k <= 2 * range; k++) start[k]! += start[k - 1]!;
    for (let e = 0; e < 2 * n; e++) ev[start[slot(e)]!++] = e;
    return ev;
  }
  for (let e = 0; e < 2 * n; e++) ev[e] = e;
  const t = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) { t[2 * i] = h.call[i]!; t[2 * i + 1] = h.ret[i]!; }
  ev.sort((a, b) => t[a]! - t[b]! || (a & 1) - (b & 1) || a - b);
  return ev;
}

/** Mark the kernel-property candidates of one partition (RELAX_* bits in p.relax). */
function markRelax(h: NormalizedHistory, g: Int32Array, p: PartitionOps & { relax: Int32Array }, writers: Map<string, Writers>): void {
  const m = p.n;
  const hashLike = !isArrayModel(p.model);
  // RELAX_MISS (hash only): replacing updates (ANY / EXIST, succeeded), in call order, with the running max of their return ranks
  const updCall: number[] = [];
  const updMaxRet: number[] = [];
  if (p.model === MK_HASH) {
    let mx = -1;
    for (let j = 0; j < m; j++) {
      if (p.kind[j] !== OP_UPDATE || p.result[j] !== 0 || (p.flags[j]! & ~BPF_F_LOCK) === BPF_NOEXIST) continue;
      mx = Math.max(mx, p.retRank[j]!);
      updCall.push(p.callRank[j]!);
      updMaxRet.push(mx);
    }
  }
  for (let j = 0; j < m; j++) {
    if (p.kind[j] !== OP_LOOKUP) continue;
    const i = g[j]!;
    if (p.result[j] === -2 && updCall.length > 0) {
      // the last replacing update called before the lookup returned; did any of those return after it was called?
      let lo = 0, hi = updCall.length;
      while (lo < hi) { const mid = (lo + hi) >>> 1; if (updCall[mid]! < p.retRank[j]!) lo = mid + 1; else hi = mid; }
      if (lo > 0 && updMaxRet[lo - 1]! > p.callRank[j]!) p.relax[j]! |= RELAX_MISS;
    } else if (hashLike && h.resultHex[i] !== null) {
      const w = writers.get(`${h.map[i]!}:${h.resultHex[i]!}`);
      if (w === undefined) continue;
      const key = h.key[i]!;
      const c = w.k1 !== key ? w.c1 : w.k2 !== null ? w.c2 : Infinity;
      if (c < h.ret[i]!) p.relax[j]! |= RELAX_FOREIGN;
    }
  }
}
