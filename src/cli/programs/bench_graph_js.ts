/*
 * bench_graph_js.ts — the same-run baselines of `bpfsim bench graph`: the work of bench_graph.ts
 * done the way a Node user would, in worker_threads, behind an Atomics lock (100 spins, then
 * Atomics.wait until the holder's unlock notifies: the runtime's raw spinlock parks the same way).
 *   rbtree  a sorted array used as a priority queue: key = clock + rand(0..2^20); binary-search
 *           insert; remove the first (the smallest); clock = its key. Serial-number order, as the
 *           bpf side, and the same prefilled size (BENCH_GRAPH_TREE_SIZE).
 *   list    push + pop.
 * own:    each thread its own structure and its own lock word: a plain JS Array (splice + shift,
 *         push + pop), which only its thread can reach.
 * shared: one structure for all threads, which must then live in a SharedArrayBuffer: an Int32Array
 *         with a length (insert and remove-first are copyWithin; push/pop move the length), one lock.
 * Not a BPF program: a worker entry (this module recognises its workerData) and runGraphJs(), which
 * starts the threads, releases them together, stops them after `seconds` and sums their pairs. It
 * imports nothing of the library (bench_graph.ts takes the shared sizes from here); the harness's
 * measuring protocol (runTimedWorkers) is imported lazily, by the main thread only.
 */
import { isMainThread, workerData, parentPort } from 'node:worker_threads';

/** Nodes each tree / sorted array holds (prefilled; add + remove keeps the size). */
export const BENCH_GRAPH_TREE_SIZE = 256;
/** New keys: clock + a random offset below this (the spread of the queue). */
export const BENCH_GRAPH_KEY_SPREAD = 1 << 20;

export interface GraphJsSpec {
  readonly threads: number;
  readonly seconds: number;
  readonly op: 'rbtree' | 'list';
  readonly shared: boolean;
}

interface GraphJsData {
  readonly bpfsimGraphJs: 1;
  readonly ctl: SharedArrayBuffer;
  readonly mem: SharedArrayBuffer;
  readonly op: 'rbtree' | 'list';
  readonly shared: boolean;
  readonly index: number;
  readonly seed: number;
}

interface GraphJsResult { readonly ops: number; readonly elapsedNs: number; readonly sink: number }

// ctl words (main writes PHASE: 0 get ready, 1 go, 2 stop; workers add READY)
const PHASE = 0, READY = 1;
// one structure in `mem`: lock word, length, clock, then the elements
const S_LOCK = 0, S_LEN = 1, S_CLOCK = 2, S_ELEMS = 4;
const STRIDE = S_ELEMS + BENCH_GRAPH_TREE_SIZE + 16;
const MAX_THREADS = 64;
const SPINS = 100;
const BATCH = 64;
const MASK = BENCH_GRAPH_KEY_SPREAD - 1;

function lock(m: Int32Array, i: number): void {
  if (Atomics.compareExchange(m, i, 0, 1) === 0) return;
  for (let n = 0; ; n++) {
    if (n < SPINS) {
      if (Atomics.load(m, i) === 0 && Atomics.compareExchange(m, i, 0, 1) === 0) return;
      continue;
    }
    // park (a futex mutex: 2 = locked, maybe with sleepers); the bound only guards a lost wake
    const c = Atomics.load(m, i);
    if (c === 0) { if (Atomics.compareExchange(m, i, 0, 2) === 0) return; continue; }
    if (c === 1) Atomics.compareExchange(m, i, 1, 2);
    Atomics.wait(m, i, 2, 1);
  }
}

function unlock(m: Int32Array, i: number): void {
  if (Atomics.exchange(m, i, 0) === 2) Atomics.notify(m, i, 1);
}

/** Index of the first element after every element not after `key` (serial order; equal keys go right). */
function upperBound(get: (i: number) => number, len: number, key: number): number {
  let lo = 0, hi = len;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (((key - get(mid)) | 0) < 0) hi = mid; else lo = mid + 1;
  }
  return lo;
}

function xorshift(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return x >>> 0; };
}

function prefill(rand: () => number): number[] {
  const keys: number[] = [];
  for (let i = 0; i < BENCH_GRAPH_TREE_SIZE; i++) keys.push(rand() & MASK);
  return keys.sort((a, b) => a - b);
}

function workerMain(d: GraphJsData, port: NonNullable<typeof parentPort>): void {
  const ctl = new Int32Array(d.ctl);
  const mem = new Int32Array(d.mem);
  const base = d.shared ? 0 : d.index * STRIDE;
  const L = base + S_LOCK, E = base + S_ELEMS;
  const rand = xorshift(d.seed);
  const arr: number[] = d.op === 'rbtree' && !d.shared ? prefill(rand) : [];
  let clock = 0, sink = 0;
  const getShared = (i: number): number => mem[E + i]!;
  const getOwn = (i: number): number => arr[i]!;
  Atomics.add(ctl, READY, 1);
  Atomics.notify(ctl, READY);
  while (Atomics.load(ctl, PHASE) === 0) Atomics.wait(ctl, PHASE, 0, 50);
  const t0 = process.hrtime.bigint();
  let ops = 0;
  while (Atomics.load(ctl, PHASE) === 1) {
    for (let b = 0; b < BATCH; b++) {
      const r = rand();
      lock(mem, L);
      if (d.op === 'rbtree') {
        if (d.shared) {
          const len = mem[base + S_LEN]!;
          const key = (mem[base + S_CLOCK]! + (r & MASK)) | 0;
          const pos = upperBound(getShared, len, key);
          mem.copyWithin(E + pos + 1, E + pos, E + len);
          mem[E + pos] = key;
          const min = mem[E]!;
          mem.copyWithin(E, E + 1, E + len + 1);
          mem[base + S_CLOCK] = min;
        } else {
          const key = (clock + (r & MASK)) | 0;
          arr.splice(upperBound(getOwn, arr.length, key), 0, key);
          clock = arr.shift()!;
        }
      } else if (d.shared) {
        const len = mem[base + S_LEN]!;
        mem[E + len] = r | 0;
        mem[base + S_LEN] = len + 1;
        sink ^= mem[E + len]!;
        mem[base + S_LEN] = len;
      } else {
        arr.push(r);
        sink ^= arr.pop()!;
      }
      unlock(mem, L);
    }
    ops += BATCH;
  }
  const elapsedNs = Number(process.hrtime.bigint() - t0);
  port.postMessage({ ops, elapsedNs, sink: sink + clock } satisfies GraphJsResult);
}

function workerUrl(): URL {
  // Node 20 cannot start a .ts worker: from the sources (vitest) use the compiled module
  const here = import.meta.url;
  return here.endsWith('.ts') ? new URL('../../../dist/src/cli/programs/bench_graph_js.js', here) : new URL(here);
}

function isResult(v: unknown): v is GraphJsResult {
  return typeof v === 'object' && v !== null && typeof (v as GraphJsResult).ops === 'number' && typeof (v as GraphJsResult).elapsedNs === 'number';
}

/** Run the baseline on `threads` workers for `seconds`: pairs of all threads over the time they ran. */
export async function runGraphJs(spec: GraphJsSpec): Promise<{ ops: number; elapsedNs: number }> {
  if (!Number.isInteger(spec.threads) || spec.threads < 1 || spec.threads > MAX_THREADS) throw new RangeError(`threads must be 1..${MAX_THREADS}; got ${String(spec.threads)}`);
  const ctlBuf = new SharedArrayBuffer(16);
  const memBuf = new SharedArrayBuffer(4 * STRIDE * (spec.shared ? 1 : spec.threads));
  const mem = new Int32Array(memBuf);
  if (spec.shared && spec.op === 'rbtree') {
    const keys = prefill(xorshift(0x9e3779b9));
    mem.set(keys, S_ELEMS);
    mem[S_LEN] = keys.length;
  }
  // the harness's measuring protocol, loaded here only: this module is also imported by the
  // bench_graph program inside every CPU worker, which must not load the harness
  const { runTimedWorkers } = await import('../../bench/harness.js');
  const run = await runTimedWorkers({
    url: workerUrl(), threads: spec.threads, seconds: spec.seconds, ctl: ctlBuf, label: 'graph baseline worker',
    workerData: (t): GraphJsData => ({ bpfsimGraphJs: 1, ctl: ctlBuf, mem: memBuf, op: spec.op, shared: spec.shared, index: t, seed: 0x2545f491 + t * 0x9e3779b9 }),
    name: (t) => `graphjs${t}`, isResult,
  });
  return { ops: run.results.reduce((a, r) => a + r.ops, 0), elapsedNs: run.elapsedNs };
}

function isGraphJsData(v: unknown): v is GraphJsData {
  return typeof v === 'object' && v !== null && (v as { bpfsimGraphJs?: unknown }).bpfsimGraphJs === 1;
}

if (!isMainThread && parentPort !== null && isGraphJsData(workerData)) workerMain(workerData, parentPort);
