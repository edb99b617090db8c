/*
 * verdict.ts — the verdict on one partition: strict check, kernel-property re-checks, and the
 * shortest window that still shows a violation. Runs in a piscina worker (check_worker.ts) or on
 * the calling thread; it sees only the partition's typed arrays (PartitionOps) and answers with
 * plain numbers (partition-local op indices, state codes) that the main thread maps back.
 *
 * Order of checks:
 *   1. strict (no relaxation). ok -> ok; out of budget -> unknown.
 *   2. if illegal and some ops are candidates for a kernel property (models.ts RELAX_*): re-check
 *      with RELAX_MISS, then RELAX_FOREIGN, then both. The first that passes makes the partition
 *      ok; replaying its linearization names the ops that needed the relaxation (the kernel
 *      properties reported). None passes -> illegal.
 *   3. illegal: shrink to a window, under the most relaxed mode tried (so the window is a
 *      violation no kernel property explains):
 *      - prefix: the smallest cut T (just after some op returns) such that the ops called before T
 *        are already illegal. Ops still running at T are optional (linearized with their recorded
 *        result, or not at all), which makes "illegal" monotone in T: binary search.
 *      - suffix: within that prefix, the latest quiescent point s (every op before s returned
 *        before op s was called) such that the ops from s on, starting from any state, are still
 *        illegal. Also monotone: binary search.
 *      Each probe is a full search; together they may take SHRINK_FACTOR times what the verdict
 *      took (at least SHRINK_MIN_MS, at most the partition's remaining budget). When that runs
 *      out the best window found so far stands (at worst: the whole partition).
 */
import { RELAX_FOREIGN, RELAX_MISS, type PartitionOps } from './models.js';
import { INC_MANDATORY, INC_OPTIONAL, INC_OUT, ST_ILLEGAL, ST_MEMORY, ST_OK, search, type SearchResult } from './search.js';

/** Shrinking an illegal partition to its window may take SHRINK_FACTOR x the verdict's time, and at least SHRINK_MIN_MS (within the partition's budget). */
const SHRINK_FACTOR = 4;
const SHRINK_MIN_MS = 1000;

export const V_OK = 0;
export const V_ILLEGAL = 1;
export const V_UNKNOWN_TIMEOUT = 2;
export const V_UNKNOWN_MEMORY = 3;

export interface WindowVerdict {
  /** partition-local ops that must be linearized (returned before the cut), in call order */
  readonly ops: number[];
  /** ops still running at the cut (optional) */
  readonly pending: number[];
  /** the window starts mid-history (from any state) */
  readonly fromAnyState: boolean;
  readonly linearized: number[];
  readonly states: number[];
  readonly stuck: number;
}

/** The verdict on one partition (structured-clone friendly: it crosses the worker boundary). */
export interface PartitionVerdict {
  /** the partition's id, as the main thread numbered it */
  readonly part: number;
  /** V_* */
  readonly status: number;
  /** ok: the RELAX_* mask of the passing re-check (0: strict); illegal: the most relaxed mask tried */
  readonly relaxMask: number;
  /** ok after a re-check: the ops that needed a relaxation, and which one (RELAX_* per op) */
  readonly relaxOps: number[];
  readonly relaxKinds: number[];
  /** illegal / unknown: the longest partial linearization met (partition-local op indices) */
  readonly linearized: number[];
  /** the states after `linearized` (models.ts state codes) */
  readonly states: number[];
  /** illegal: the op that could not be linearized at the longest point; -1 otherwise */
  readonly stuck: number;
  readonly window: WindowVerdict | null;
  /** model steps taken, all searches together */
  readonly steps: number;
}

export interface PartitionBudget {
  /** Date.now() value after which the partition is 'unknown' */
  readonly deadline: number;
  readonly maxCacheEntries: number;
  /** compute the shortest window of an illegal partition */
  readonly minimize: boolean;
  /** re-check an illegal partition with the kernel properties allowed */
  readonly kernelProperties: boolean;
}

function statusOf(r: SearchResult): number {
  return r.status === ST_OK ? V_OK : r.status === ST_ILLEGAL ? V_ILLEGAL : r.status === ST_MEMORY ? V_UNKNOWN_MEMORY : V_UNKNOWN_TIMEOUT;
}

/** Check one partition. */
export function checkPartition(part: number, p: PartitionOps, budget: PartitionBudget): PartitionVerdict {
  let steps = 0;
  const t0 = Date.now();
  let deadline = budget.deadline;
  const run = (relaxMask: number, include: Uint8Array | null, wildcard: boolean): SearchResult => {
    const r = search(p, { relaxMask, include, wildcard, deadline, maxCacheEntries: budget.maxCacheEntries });
    steps += r.steps;
    return r;
  };
  const out = (status: number, relaxMask: number, r: SearchResult, extra?: Partial<PartitionVerdict>): PartitionVerdict => ({
    part, status, relaxMask, relaxOps: [], relaxKinds: [],
    linearized: status === V_OK ? [] : Array.from(r.order), states: status === V_OK ? [] : Array.from(r.states),
    stuck: r.stuck, window: null, steps, ...extra,
  });

  const strict = run(0, null, false);
  if (strict.status !== ST_ILLEGAL) return out(statusOf(strict), 0, strict);

  let cand = 0;
  if (budget.kernelProperties) for (let i = 0; i < p.n; i++) cand |= p.relax[i]!;
  const masks: number[] = [];
  if ((cand & RELAX_MISS) !== 0) masks.push(RELAX_MISS);
  if ((cand & RELAX_FOREIGN) !== 0) masks.push(RELAX_FOREIGN);
  if (masks.length === 2) masks.push(RELAX_MISS | RELAX_FOREIGN);
  let last = strict;
  let lastMask = 0;
  for (const mask of masks) {
    const r = run(mask, null, false);
    if (r.status === ST_OK) {
      // replay the linearization: which relaxed ops were illegal in the state they were linearized in?
      const relaxOps: number[] = [];
      const relaxKinds: number[] = [];
      let h = r.initial;
      for (const op of r.order) {
        if ((p.relax[op]! & mask) !== 0 && !r.stepper.strictlyLegal(h, op)) { relaxOps.push(op); relaxKinds.push(p.relax[op]! & mask); }
        h = r.stepper.step(h, op);
      }
      return out(V_OK, mask, r, { relaxOps, relaxKinds });
    }
    if (r.status !== ST_ILLEGAL) return out(statusOf(r), mask, r);
    last = r;
    lastMask = mask;
  }
  // the window is a courtesy: it may take a few times what the verdict took, not the whole budget
  deadline = Math.min(budget.deadline, Date.now() + Math.max(SHRINK_MIN_MS, SHRINK_FACTOR * (Date.now() - t0)));
  const window = budget.minimize ? shrink(p, lastMask, run, last) : null;
  return out(V_ILLEGAL, lastMask, last, { window });
}

/** The shortest window (prefix cut, then quiescent suffix cut) that is still illegal under `mask`. */
function shrink(
  p: PartitionOps, mask: number, run: (m: number, inc: Uint8Array | null, w: boolean) => SearchResult, full: SearchResult,
): WindowVerdict {
  const n = p.n;
  // ---- prefix: cuts just after a return, ascending; the last one (everything) is known illegal ----
  const cuts = Array.from(new Set(Array.from(p.retRank, (r) => r + 1))).sort((a, b) => a - b);
  const prefixInc = (T: number): Uint8Array => {
    const inc = new Uint8Array(n);
    for (let i = 0; i < n; i++) inc[i] = p.callRank[i]! >= T ? INC_OUT : p.retRank[i]! < T ? INC_MANDATORY : INC_OPTIONAL;
    return inc;
  };
  let lo = 0, hi = cuts.length - 1; // invariant: cut hi is illegal
  let bestRes: SearchResult | null = null;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const r = run(mask, prefixInc(cuts[mid]!), false);
    if (r.status === ST_ILLEGAL) { hi = mid; bestRes = r; }
    else if (r.status === ST_OK) lo = mid + 1;
    else break; // out of budget: keep the best so far
  }
  const T = cuts[hi]!;
  let inc = prefixInc(T);
  // ---- suffix: quiescent points s (ops before s all returned before op s was called) ----
  const quiet: number[] = [0];
  let maxRet = -1;
  for (let s = 0; s < n; s++) {
    if (s > 0 && maxRet < p.callRank[s]! && p.callRank[s]! < T) quiet.push(s);
    maxRet = Math.max(maxRet, p.retRank[s]!);
  }
  const suffixInc = (s: number): Uint8Array => {
    const a = inc.slice();
    for (let i = 0; i < s; i++) a[i] = INC_OUT;
    return a;
  };
  let qlo = 0, qhi = quiet.length - 1; // invariant: quiet[qlo] is illegal
  let sufRes: SearchResult | null = null;
  while (qlo < qhi) {
    const mid = (qlo + qhi + 1) >>> 1;
    const r = run(mask, suffixInc(quiet[mid]!), true);
    if (r.status === ST_ILLEGAL) { qlo = mid; sufRes = r; }
    else if (r.status === ST_OK) qhi = mid - 1;
    else break;
  }
  const s = quiet[qlo]!;
  if (s > 0) inc = suffixInc(s);
  const final = (s > 0 ? sufRes : bestRes) ?? full;
  const ops: number[] = [];
  const pending: number[] = [];
  for (let i = 0; i < n; i++) if (inc[i] === INC_MANDATORY) ops.push(i); else if (inc[i] === INC_OPTIONAL) pending.push(i);
  return {
    ops, pending, fromAnyState: s > 0,
    linearized: Array.from(final.order), states: Array.from(final.states), stuck: final.stuck,
  };
}
