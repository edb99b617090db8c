/*
 * bench_map_perf.ts — the event loops of samples/bpf/map_perf_test.bpf.c (and the lookup walk of
 * the scaling benchmark), one 'syscall' program driven by args (decoded once per runWorkload).
 *
 *   op 'triple'  one run = EVENTS_PER_RUN (10, as the kernel's programs since Sep 2022) events;
 *                an event = update(BPF_ANY, this CPU's own key) → lookup → delete if found
 *                (stress_hmap, stress_percpu_hmap, stress_hmap_alloc, …)
 *   op 'lookup'  one run = LOOKUPS_PER_RUN (64) lookups of key 1 (stress_array_map_lookup,
 *                stress_hash_map_lookup); an event = one lookup
 *   op 'walk'    one run = LOOKUPS_PER_RUN lookups walking [0, keys) with a fixed stride (every
 *                CPU over the same shared keys; the JS baseline walks its own Map the same way)
 *   op 'fill'    one run = insert key `iter` (BPF_NOEXIST), to populate a map before 'walk'
 *
 * path 'helper'  the map helpers (m.update / m.lookup / m.delete), as the kernel's programs do
 * path 'syscall' the bpf(2) map commands a task makes (ctx.sys.*: bpf_disable_instrumentation
 *                + RCU read section + copy in/out around each operation)
 *
 * A run returns 0, or the last -errno an operation gave (the runtime counts them by errno); the
 * kernel's programs ignore errors, and so does the event count: every run counts in full.
 *
 * Memory: the key, value and copy-out buffer sit in this run's scratch frame (512 B): key at +0,
 * value at +64, copy-out at +256. The syscall path copies nrCpus × 8 bytes for per-CPU maps;
 * when that does not fit (more than 24 CPUs) the worker takes one kmalloc'd buffer instead,
 * kept for the worker's life.
 */
import { defineProgram, BPF_ANY, BPF_NOEXIST, type BpfMapImpl, type ProgramContext } from '../../program.js';

export const EVENTS_PER_RUN = 10;
export const LOOKUPS_PER_RUN = 64;

export type MapPerfOp = 'triple' | 'lookup' | 'walk' | 'fill';
export type MapPerfPath = 'helper' | 'syscall';
export interface MapPerfArgs {
  readonly op: MapPerfOp;
  readonly path: MapPerfPath;
  /** 'walk' / 'fill': keys 0..keys-1. */
  readonly keys: number;
  /** Bytes a syscall-side value has (valueSize; per-CPU maps: nrCpus × round_up(valueSize, 8)). */
  readonly sysValueBytes: number;
}

/** Events one program run performs for `op` (the engine multiplies runs by it). */
export function eventsPerRun(op: MapPerfOp): number {
  return op === 'triple' ? EVENTS_PER_RUN : op === 'fill' ? 1 : LOOKUPS_PER_RUN;
}

const KEY = 0, VALUE = 64, OUT = 256;
const FRAME = 512;
const STRIDE = 7919;
const OPS: readonly MapPerfOp[] = ['triple', 'lookup', 'walk', 'fill'];

let lastArgs: unknown = null;
let op = 0, sys = false, keys = 1, big = false;
/** Offsets of the value and the copy-out buffer from base(). */
let valOff = VALUE, outOff = OUT;
let k = 0;
/** A worker-lifetime buffer for values too large for the scratch frame (syscall path only). */
let bigBuf = 0, bigBufBytes = 0;

function decode(a: unknown): void {
  lastArgs = a;
  const s = a as MapPerfArgs;
  op = OPS.indexOf(s.op);
  if (op < 0) throw new RangeError(`bench_map_perf: unknown op ${JSON.stringify(s.op)}`);
  sys = s.path === 'syscall';
  keys = Math.max(1, s.keys | 0);
  const v = (s.sysValueBytes + 7) & ~7;
  big = sys && (VALUE + v > OUT || OUT + v > FRAME);
  valOff = VALUE;
  outOff = big ? VALUE + v : OUT;
  k = 0;
}

/** Base of the key/value/out layout: the scratch frame, or the big buffer. */
function base(ctx: ProgramContext): number {
  if (!big) return ctx.scratch;
  const need = outOff + (((lastArgs as MapPerfArgs).sysValueBytes + 7) & ~7);
  if (bigBufBytes < need) {
    if (bigBuf !== 0) ctx.kfree(bigBuf);
    bigBuf = ctx.kmalloc(need);
    bigBufBytes = bigBuf === 0 ? 0 : need;
    if (bigBuf === 0) throw new Error('bench_map_perf: no memory for the syscall value buffer');
  }
  return bigBuf;
}

function triple(ctx: ProgramContext, m: BpfMapImpl, s: number): number {
  const key = s + KEY, val = s + valOff, out = s + outOff;
  ctx.setU32(key, ctx.cpu);
  ctx.setU32(val, 1); ctx.setU32(val + 4, 0);
  let err = 0;
  if (sys) {
    const q = ctx.sys;
    for (let i = 0; i < EVENTS_PER_RUN; i++) {
      const e = q.update(m, key, val, BPF_ANY);
      if (e < 0) err = e;
      if (q.lookup(m, key, out) === 0) {
        const d = q.delete(m, key);
        if (d < 0) err = d;
      }
    }
  } else {
    for (let i = 0; i < EVENTS_PER_RUN; i++) {
      const e = m.update(key, val, BPF_ANY);
      if (e < 0) err = e;
      if (m.lookup(key) !== 0) {
        const d = m.delete(key);
        if (d < 0) err = d;
      }
    }
  }
  return err;
}

function lookups(ctx: ProgramContext, m: BpfMapImpl, s: number, walk: boolean): number {
  const key = s + KEY, out = s + outOff;
  let found = 0;
  if (!walk) ctx.setU32(key, 1);
  if (sys) {
    const q = ctx.sys;
    for (let i = 0; i < LOOKUPS_PER_RUN; i++) {
      if (walk) { k += STRIDE; if (k >= keys) k -= keys; ctx.setU32(key, k); }
      if (q.lookup(m, key, out) === 0) found++;
    }
  } else {
    for (let i = 0; i < LOOKUPS_PER_RUN; i++) {
      if (walk) { k += STRIDE; if (k >= keys) k -= keys; ctx.setU32(key, k); }
      if (m.lookup(key) !== 0) found++;
    }
  }
  return found === LOOKUPS_PER_RUN ? 0 : -2; // -ENOENT: a key the benchmark expected was missing
}

function run(ctx: ProgramContext, m: BpfMapImpl): number {
  if (ctx.args !== lastArgs) decode(ctx.args);
  const s = base(ctx);
  switch (op) {
    case 0: return triple(ctx, m, s);
    case 1: return lookups(ctx, m, s, false);
    case 2: return lookups(ctx, m, s, true);
    default: {
      const key = s + KEY, val = s + valOff;
      ctx.setU32(key, ctx.iter % keys);
      ctx.setU32(val, ctx.iter); ctx.setU32(val + 4, 0);
      return sys ? ctx.sys.update(m, key, val, BPF_NOEXIST) : m.update(key, val, BPF_NOEXIST);
    }
  }
}

export default defineProgram({
  name: 'bench_map_perf',
  type: 'syscall',
  maps: ['m'],
  run: (ctx, maps) => run(ctx, maps['m']!),
});
