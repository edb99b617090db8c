/*
 * baselines_ops.ts — the bpfsim side of `bpfsim bench baselines` and `bpfsim bench oversub`: one
 * 'syscall' program driven by args (decoded once per runWorkload call), map helpers on a hash map
 * with u32 keys and 8-byte values. `perRun` operations per program run (the engine passes it and
 * multiplies the run count by it; 'fill' always does one).
 *   lookup  walk keys [0, keys) with the fixed stride of the JS and sharedmap baselines, each CPU
 *           from its own start (walkStart), lookups
 *   update  the same walk, overwrite updates (BPF_ANY) of existing keys with an 8-byte value
 *   mix     the lock-heavy mix: random keys in [0, keys) (a small set shared by every CPU): 50 %
 *           update (BPF_ANY), 25 % delete, 25 % lookup; every update and delete takes a bucket lock
 *           and a freelist lock
 *   fill    one insert (BPF_NOEXIST) of key = iteration per run, to populate the map
 * A run returns 0 or the last -errno an operation gave (the runtime counts them by errno).
 */
import { defineProgram, BPF_ANY, BPF_NOEXIST, type BpfMapImpl, type ProgramContext } from '../../src/program.js';

export type BaselineOp = 'lookup' | 'update' | 'mix' | 'fill';
export interface BaselineArgs { readonly op: BaselineOp; readonly keys: number; readonly perRun: number }

const OPS: readonly BaselineOp[] = ['lookup', 'update', 'mix', 'fill'];
const STRIDE = 7919;
const KEY = 0, VALUE = 8;

let lastArgs: unknown = null;
let op = 0, keys = 1, perRun = 1, k = 0, rnd = 1;

/** Where CPU `cpu` starts its walk (src/bench/harness.ts walkStart: the sharedmap threads start the same way). */
export function walkStart(cpu: number, n: number): number {
  return (cpu * 50_021) % Math.max(1, n);
}

function decode(ctx: ProgramContext, a: unknown): void {
  lastArgs = a;
  const s = a as BaselineArgs;
  op = OPS.indexOf(s.op);
  if (op < 0) throw new RangeError(`baselines_ops: unknown op ${JSON.stringify(s.op)}`);
  keys = Math.max(1, s.keys | 0);
  perRun = Math.max(1, s.perRun | 0);
  k = walkStart(ctx.cpu, keys);
  rnd = (0x9e3779b9 ^ (ctx.cpu * 0x85ebca6b)) | 0 || 1;
}

function run(ctx: ProgramContext, m: BpfMapImpl): number {
  if (ctx.args !== lastArgs) decode(ctx, ctx.args);
  const key = ctx.scratch + KEY, val = ctx.scratch + VALUE;
  let err = 0;
  switch (op) {
    case 0:
      for (let i = 0; i < perRun; i++) {
        k += STRIDE; if (k >= keys) k -= keys;
        ctx.setU32(key, k);
        if (m.lookup(key) === 0) err = -2; // -ENOENT: a key the benchmark filled is missing
      }
      return err;
    case 1:
      ctx.setU32(val + 4, 0);
      for (let i = 0; i < perRun; i++) {
        k += STRIDE; if (k >= keys) k -= keys;
        ctx.setU32(key, k);
        ctx.setU32(val, i);
        const e = m.update(key, val, BPF_ANY);
        if (e < 0) err = e;
      }
      return err;
    case 2:
      ctx.setU32(val + 4, 0);
      for (let i = 0; i < perRun; i++) {
        rnd ^= rnd << 13; rnd ^= rnd >>> 17; rnd ^= rnd << 5;
        const r = rnd >>> 0;
        ctx.setU32(key, r % keys);
        const what = r >>> 30; // 0, 1: update; 2: delete; 3: lookup
        if (what < 2) {
          ctx.setU32(val, i);
          const e = m.update(key, val, BPF_ANY);
          if (e < 0) err = e;
        } else if (what === 2) {
          m.delete(key); // -ENOENT when another CPU deleted it first: part of the mix, not an error
        } else {
          m.lookup(key);
        }
      }
      return err;
    default:
      ctx.setU32(key, ctx.iter % keys);
      ctx.setU32(val, ctx.iter); ctx.setU32(val + 4, 0);
      return m.update(key, val, BPF_NOEXIST);
  }
}

export default defineProgram({
  name: 'bench_baselines',
  type: 'syscall',
  maps: ['m'],
  run: (ctx, maps) => run(ctx, maps['m']!),
});
