/*
 * search.ts — the linearizability search for one partition: Wing & Gong's backtracking search with
 * Lowe's cache ("Testing for linearizability", 2017), in the form Porcupine (anishathalye/porcupine,
 * checker.go) gives it. Written here over typed arrays; no object per step.
 *
 * The history is a doubly linked list of call and return events in time order (ties: calls
 * first, so equal stamps count as overlapping). The search walks it from the head: at a call it
 * tries to linearize that op next (model step legal, and the pair (set of linearized ops, state
 * set) not seen before: Lowe's cache), lifting the op's two events out of the list and restarting
 * from the head; at a return it has met an op that must already have been linearized, so it
 * backtracks (pops the last op, re-inserts its events, tries the next call). The list empty (here:
 * every mandatory op linearized) means linearizable; backtracking with nothing to pop means not.
 *
 * Cache key. The set of linearized ops is a bitset over the partition's ops in call order. Every op
 * before k (the first op not linearized) is linearized, and every linearized op after k overlaps op
 * k in time, so the key is (k, last linearized op, the bitset words between them), hashed with a
 * Zobrist hash kept incrementally (XOR of a per-op random word) and mixed with the state handle.
 * Entries live in one open-addressing table over typed arrays.
 *
 * Ops may be excluded (outside a window) or optional (pending when a window is cut: they may be
 * linearized, with the result the history gives them, or left out: their return event moves to
 * the end of the list). Excluded ops count as linearized for k and the bitset and never enter the
 * list.
 *
 * Budget: the search stops at `deadline` (Date.now() clock, so a deadline means the same in every
 * thread) or when the cache holds maxCacheEntries entries; both answer "unknown". Complexity:
 * exponential in the number of mutually overlapping ops in the worst case; with the cache, at most
 * (number of distinct linearized sets) x (number of state sets) steps, which for histories whose
 * concurrency is bounded by c CPUs is about n * 2^c * |states|.
 */
import { ILLEGAL, StateSpace, Stepper, initialStates, type PartitionOps } from './models.js';

export const ST_OK = 0;
export const ST_ILLEGAL = 1;
export const ST_TIMEOUT = 2;
export const ST_MEMORY = 3;

/** include[] values. */
export const INC_OUT = 0;
export const INC_MANDATORY = 1;
export const INC_OPTIONAL = 2;

export interface SearchOptions {
  /** RELAX_* bits enabled */
  readonly relaxMask: number;
  /** per op: INC_*; null: every op mandatory */
  readonly include: Uint8Array | null;
  /** start from any state (a window that does not start at the beginning of the history) */
  readonly wildcard: boolean;
  /** Date.now() value after which the search gives up */
  readonly deadline: number;
  readonly maxCacheEntries: number;
}

export interface SearchResult {
  readonly status: number;
  /** ST_OK: a linearization (op indices in order); otherwise the longest partial linearization met */
  readonly order: Int32Array;
  /** the states the key may be in after `order` */
  readonly states: Int32Array;
  /** ST_ILLEGAL: the op whose return forced the backtrack at the longest point; -1 otherwise */
  readonly stuck: number;
  /** model steps taken */
  readonly steps: number;
  /** the initial state handle, and the space and stepper its handles belong to (for replays) */
  readonly initial: number;
  readonly space: StateSpace;
  readonly stepper: Stepper;
}

/** fmix32 of MurmurHash3: a per-op Zobrist word. */
function zobrist(i: number): number {
  let h = Math.imul(i + 1, 0x9e3779b1);
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

/** Lowe's cache: a set of (linearized set, state handle), open addressing over typed arrays. */
class LinCache {
  #table: Int32Array;
  #mask: number;
  #count = 0;
  #hash: Int32Array;
  #state: Int32Array;
  #k: Int32Array;
  #max: Int32Array;
  #off: Int32Array;
  #words: Uint32Array;
  #wlen = 0;
  readonly #limit: number;

  /** `expect`: entries expected (sizes the first allocation; everything grows) */
  constructor(limit: number, expect: number) {
    let cap = 16;
    while (cap < 2 * expect && cap < 1 << 16) cap <<= 1;
    this.#table = new Int32Array(2 * cap);
    this.#mask = 2 * cap - 1;
    this.#hash = new Int32Array(cap); this.#state = new Int32Array(cap); this.#k = new Int32Array(cap);
    this.#max = new Int32Array(cap); this.#off = new Int32Array(cap);
    this.#words = new Uint32Array(cap);
    this.#limit = limit;
  }

  get size(): number { return this.#count; }

  /** 1: added; 0: already there; -1: full (maxCacheEntries). */
  add(h: number, state: number, k: number, max: number, bits: Uint32Array): number {
    const w0 = k >>> 5;
    const nw = max >= k ? (max >>> 5) - w0 + 1 : 0;
    let slot = h & this.#mask;
    for (;;) {
      const e = this.#table[slot]! - 1;
      if (e < 0) break;
      if (this.#hash[e] === h && this.#state[e] === state && this.#k[e] === k && this.#max[e] === max) {
        const off = this.#off[e]!;
        let same = true;
        for (let w = 0; w < nw; w++) if (this.#words[off + w] !== bits[w0 + w]) { same = false; break; }
        if (same) return 0;
      }
      slot = (slot + 1) & this.#mask;
    }
    if (this.#count >= this.#limit) return -1;
    const e = this.#count++;
    if (e >= this.#hash.length) this.#growEntries();
    if (this.#wlen + nw > this.#words.length) {
      const nwds = new Uint32Array(Math.max(this.#words.length * 2, this.#wlen + nw));
      nwds.set(this.#words.subarray(0, this.#wlen));
      this.#words = nwds;
    }
    this.#hash[e] = h; this.#state[e] = state; this.#k[e] = k; this.#max[e] = max; this.#off[e] = this.#wlen;
    for (let w = 0; w < nw; w++) this.#words[this.#wlen + w] = bits[w0 + w]!;
    this.#wlen += nw;
    this.#table[slot] = e + 1;
    if (this.#count * 2 > this.#table.length) this.#rehash();
    return 1;
  }

  #growEntries(): void {
    const grow = (a: Int32Array): Int32Array => { const b = new Int32Array(a.length * 2); b.set(a); return b; };
    this.#hash = grow(this.#hash); this.#state = grow(this.#state); this.#k = grow(this.#k);
    this.#max = grow(this.#max); this.#off = grow(this.#off);
  }

  #rehash(): void {
    const table = new Int32Array(this.#table.length * 2);
    const mask = table.length - 1;
    for (let e = 0; e < this.#count; e++) {
      let slot = this.#hash[e]! & mask;
      while (table[slot] !== 0) slot = (slot + 1) & mask;
      table[slot] = e + 1;
    }
    this.#table = table;
    this.#mask = mask;
  }
}

/** Run the search over partition `p`. */
export function search(p: PartitionOps, o: SearchOptions): SearchResult {
  const n = p.n;
  const inc = o.include;
  const space = new StateSpace();
  const stepper = new Stepper(p, space, o.relaxMask);

  // ---- the event list ----
  const evAt = new Int32Array(2 * n);
  for (let i = 0; i < n; i++) { evAt[p.callRank[i]!] = i << 1; evAt[p.retRank[i]!] = (i << 1) | 1; }
  let m = 0;
  let mandatory = 0;
  for (let i = 0; i < n; i++) {
    const c = inc === null ? INC_MANDATORY : inc[i]!;
    if (c !== INC_OUT) m++;
    if (c === INC_MANDATORY) mandatory++;
  }
  const HEAD = 2 * m;
  const nodeOp = new Int32Array(2 * m);
  const isRet = new Uint8Array(2 * m);
  const match = new Int32Array(2 * m);
  const next = new Int32Array(2 * m + 1);
  const prev = new Int32Array(2 * m + 1);
  const retNodeOf = new Int32Array(n);
  const order: number[] = []; // events in list order, optional returns last
  const tail: number[] = [];
  for (let r = 0; r < 2 * n; r++) {
    const ev = evAt[r]!;
    const op = ev >> 1;
    const c = inc === null ? INC_MANDATORY : inc[op]!;
    if (c === INC_OUT) continue;
    if ((ev & 1) === 1 && c === INC_OPTIONAL) tail.push(ev);
    else order.push(ev);
  }
  for (const ev of tail) order.push(ev);
  for (let j = 0; j < order.length; j++) {
    const ev = order[j]!;
    nodeOp[j] = ev >> 1;
    isRet[j] = ev & 1;
    if ((ev & 1) === 1) retNodeOf[ev >> 1] = j;
  }
  for (let j = 0; j < order.length; j++) if (isRet[j] === 0) match[j] = retNodeOf[nodeOp[j]!]!;
  prev[HEAD] = -1;
  next[HEAD] = order.length > 0 ? 0 : -1;
  for (let j = 0; j < order.length; j++) { prev[j] = j === 0 ? HEAD : j - 1; next[j] = j + 1 < order.length ? j + 1 : -1; }

  // ---- the linearized set ----
  const bits = new Uint32Array((n >>> 5) + 2);
  const lin = new Uint8Array(n);
  const z = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    z[i] = zobrist(i);
    if (inc !== null && inc[i] === INC_OUT) bits[i >>> 5]! |= 1 << (i & 31);
  }
  const isSet = (i: number): boolean => (bits[i >>> 5]! & (1 << (i & 31))) !== 0;
  // prevInc[i]: the included op before i (-1: none), so finding the new last linearized op skips excluded runs
  const prevInc = new Int32Array(n);
  for (let i = 0, last = -1; i < n; i++) { prevInc[i] = last; if (inc === null || inc[i] !== INC_OUT) last = i; }
  let k = 0;
  while (k < n && isSet(k)) k++;
  let maxLin = -1; // the last linearized op (exact); the cache key uses it only when >= k
  let zob = 0;

  const cache = new LinCache(o.maxCacheEntries, m);
  const stackNode = new Int32Array(m);
  const stackState = new Int32Array(m);
  let sp = 0;
  const initial = initialStates(p, space, o.wildcard);
  let state = initial;
  // the longest partial linearization met: best[0..bestLen). Entries below lowWater are still equal
  // to the stack's (it has not popped below lowWater since the last copy), so a new best copies
  // only stack[lowWater..sp): amortized O(1) per step instead of O(sp)
  const best = new Int32Array(m);
  let bestLen = 0;
  let lowWater = 0;
  let bestState = state;
  let stuck = -1;
  let left = mandatory;
  let steps = 0;
  let status = ST_ILLEGAL;

  const finish = (st: number): SearchResult => {
    const ord = st === ST_OK ? stackOps() : best.slice(0, bestLen);
    return { status: st, order: ord, states: Int32Array.from(space.states(st === ST_OK ? state : bestState)), stuck: st === ST_ILLEGAL ? stuck : -1, steps, initial, space, stepper };
  };
  const stackOps = (): Int32Array => {
    const a = new Int32Array(sp);
    for (let s = 0; s < sp; s++) a[s] = nodeOp[stackNode[s]!]!;
    return a;
  };

  if (left === 0) return finish(ST_OK);
  let e = next[HEAD]!;
  let iter = 0;
  for (;;) {
    if ((++iter & 1023) === 0 && Date.now() > o.deadline) { status = ST_TIMEOUT; break; }
    if (e >= 0 && isRet[e] === 0) {
      const op = nodeOp[e]!;
      steps++;
      const ns = stepper.step(state, op);
      if (ns !== ILLEGAL) {
        // tentatively add op to the linearized set
        const k0 = k, max0 = maxLin;
        bits[op >>> 5]! |= 1 << (op & 31);
        lin[op] = 1;
        zob ^= z[op]!;
        if (op === k) while (k < n && isSet(k)) k++;
        if (op > maxLin) maxLin = op;
        const added = cache.add((zob ^ StateSpace.hash(ns)) | 0, ns, k, maxLin >= k ? maxLin : -1, bits);
        if (added === 1) {
          stackNode[sp] = e;
          stackState[sp] = state;
          sp++;
          state = ns;
          // lift e and its return
          const r = match[e]!;
          next[prev[e]!] = next[e]!; prev[next[e]!] = prev[e]!;
          next[prev[r]!] = next[r]!; if (next[r]! >= 0) prev[next[r]!] = prev[r]!;
          if (inc === null || inc[op] === INC_MANDATORY) left--;
          if (left === 0) { status = ST_OK; break; }
          e = next[HEAD]!;
          continue;
        }
        bits[op >>> 5]! &= ~(1 << (op & 31));
        lin[op] = 0;
        zob ^= z[op]!;
        k = k0; maxLin = max0;
        if (added < 0) { status = ST_MEMORY; break; }
      }
      e = next[e]!;
    } else {
      // a return (or the end): this op had to be linearized already; backtrack
      if (sp > bestLen || (sp === 0 && stuck < 0)) {
        for (let s = lowWater; s < sp; s++) best[s] = nodeOp[stackNode[s]!]!;
        bestLen = sp;
        lowWater = sp;
        bestState = state;
        stuck = e >= 0 ? nodeOp[e]! : -1;
      }
      if (sp === 0) { status = ST_ILLEGAL; break; }
      sp--;
      if (sp < lowWater) lowWater = sp;
      e = stackNode[sp]!;
      state = stackState[sp]!;
      const op = nodeOp[e]!;
      bits[op >>> 5]! &= ~(1 << (op & 31));
      lin[op] = 0;
      zob ^= z[op]!;
      if (op < k) k = op;
      if (op === maxLin) { let j = prevInc[op]!; while (j >= 0 && lin[j] === 0) j = prevInc[j]!; maxLin = j; }
      if (inc === null || inc[op] === INC_MANDATORY) left++;
      const r = match[e]!;
      next[prev[r]!] = r; if (next[r]! >= 0) prev[next[r]!] = r;
      next[prev[e]!] = e; prev[next[e]!] = e;
      e = next[e]!;
    }
  }
  return finish(status);
}
