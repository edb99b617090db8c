// Builders for hand-made histories, and an exhaustive reference checker for small ones.
import type { HistoryOp } from '../../src/check/index.js';

export const K_A = '01000000';
export const K_B = '02000000';
export const V1 = 'aa000001';
export const V2 = 'aa000002';
export const V3 = 'aa000003';
export const ZERO = '00000000';

interface At { cpu?: number; map?: number }

export function upd(key: string, value: string, result: number, call: number, ret: number, flags = 0, at: At = {}): HistoryOp {
  return { cpu: at.cpu ?? 0, context: 'task', op: 'update', map: at.map ?? 1, key, value, flags, result, call, ret };
}
export function look(key: string, result: string | number, call: number, ret: number, at: At = {}): HistoryOp {
  return { cpu: at.cpu ?? 0, context: 'task', op: 'lookup', map: at.map ?? 1, key, flags: 0, result, call, ret };
}
export function del(key: string, result: number, call: number, ret: number, at: At = {}): HistoryOp {
  return { cpu: at.cpu ?? 0, context: 'task', op: 'delete', map: at.map ?? 1, key, flags: 0, result, call, ret };
}
export function lookDel(key: string, result: string | number, call: number, ret: number, at: At = {}): HistoryOp {
  return { cpu: at.cpu ?? 0, context: 'task', op: 'lookup_and_delete', map: at.map ?? 1, key, flags: 0, result, call, ret };
}

/** mulberry32 */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Reference semantics, written apart from src/check/models.ts: one whole map (all keys), sequential.
 * Returns the next map state, or null if `op` cannot return what it returned. `evicted`: LRU only,
 * the op's key was evicted just before it (the caller tries both).
 */
export type MapState = ReadonlyMap<string, string>;
function refStep(type: 'hash' | 'lru_hash' | 'array', s: MapState, op: HistoryOp): MapState | null {
  const has = s.has(op.key);
  const cur = s.get(op.key);
  const flags = op.flags ?? 0;
  const r = op.result;
  const lockErr = r === -16 || r === -35 || r === -110;
  const next = (f: (m: Map<string, string>) => void): MapState => { const m = new Map(s); f(m); return m; };
  if (type === 'array') {
    const val = cur ?? ZERO;
    switch (op.op) {
      case 'lookup': return r === val ? s : null;
      case 'delete': case 'lookup_and_delete': return r === -22 ? s : null;
      case 'update':
        if (flags > 2) return r === -22 ? s : null;
        if (flags === 1) return r === -17 ? s : null;
        return r === 0 ? next((m) => m.set(op.key, op.value!)) : null;
    }
  }
  switch (op.op) {
    case 'lookup': return (has ? r === cur : r === -2) ? s : null;
    case 'lookup_and_delete':
      if (lockErr) return s;
      if (has) return r === cur ? next((m) => m.delete(op.key)) : null;
      return r === -2 ? s : null;
    case 'delete':
      if (lockErr) return s;
      if (has) return r === 0 ? next((m) => m.delete(op.key)) : null;
      return r === -2 ? s : null;
    case 'update':
      if (lockErr || r === -12) return s;
      if (flags > 2) return r === -22 ? s : null;
      if (r === -7) return !has && flags !== 2 ? s : null;
      if (flags === 1 && has) return r === -17 ? s : null;
      if (flags === 2 && !has) return r === -2 ? s : null;
      return r === 0 ? next((m) => m.set(op.key, op.value!)) : null;
  }
}

/** Fill in `op.result` as the reference semantics would, from state `s`; returns the next state. */
export function produce(type: 'hash' | 'lru_hash' | 'array', s: MapState, op: { -readonly [K in keyof HistoryOp]: HistoryOp[K] }): MapState {
  const cands: (number | string)[] = op.op === 'update' ? [0, -17, -2, -22] : op.op === 'delete' ? [0, -2, -22] : [-2, ...(s.has(op.key) ? [s.get(op.key)!] : []), ...(type === 'array' ? [s.get(op.key) ?? ZERO] : [])];
  for (const r of cands) {
    op.result = r;
    const ns = refStep(type, s, op);
    if (ns !== null) return ns;
  }
  throw new Error(`produce: no result fits ${JSON.stringify(op)}`);
}

const stateKey = (s: MapState): string => [...s.entries()].sort().map(([k, v]) => `${k}=${v}`).join(',');

/** Exhaustive linearizability check of a small history (<= ~12 ops) against the reference semantics. */
export function bruteForce(type: 'hash' | 'lru_hash' | 'array', ops: readonly HistoryOp[]): boolean {
  const n = ops.length;
  const seen = new Set<string>();
  const call = (i: number): number => Number(ops[i]!.call);
  const ret = (i: number): number => Number(ops[i]!.ret);
  const dfs = (done: number, s: MapState): boolean => {
    if (done === (1 << n) - 1) return true;
    const key = `${done}|${stateKey(s)}`;
    if (seen.has(key)) return false;
    seen.add(key);
    // op i may go next iff no other pending op returned strictly before i was called
    let minRet = Infinity;
    for (let j = 0; j < n; j++) if ((done & (1 << j)) === 0) minRet = Math.min(minRet, ret(j));
    for (let i = 0; i < n; i++) {
      if ((done & (1 << i)) !== 0 || call(i) > minRet) continue;
      const starts: MapState[] = [s];
      if (type === 'lru_hash' && s.has(ops[i]!.key)) { const m = new Map(s); m.delete(ops[i]!.key); starts.push(m); }
      for (const st of starts) {
        const ns = refStep(type, st, ops[i]!);
        if (ns !== null && dfs(done | (1 << i), ns)) return true;
      }
    }
    return false;
  };
  return dfs(0, new Map());
}
