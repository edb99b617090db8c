/*
 * stress_mix.ts — the task-context stress workload (a 'syscall' program: a simulated process
 * calling map helpers in a loop, where an NMI can land inside a bucket lock).
 *
 * args (StressMixArgs, decoded once per runWorkload call): cumulative thresholds out of 65536 for
 * update / delete (the rest is lookup), the key range, and the map kind. Keys are u32 in
 * [0, keys); values are 8 bytes (CPU id, iteration). Arrays cannot delete, so their deletes
 * become updates. Map-in-map outer maps are updated from the syscall path with an inner map id
 * (programs cannot update them, as in the kernel).
 * Returns the op's result: 0, or -errno (runWorkload counts them by name). A lookup miss is 0.
 */
import { defineProgram, BPF_ANY, type BpfMapImpl, type ProgramContext } from '../../program.js';

export interface StressMixArgs {
  readonly updateBelow: number;
  readonly deleteBelow: number;
  readonly keys: number;
  readonly kind: 'hash' | 'array' | 'of_maps';
  /** of_maps: inner map ids to store. */
  readonly innerIds?: readonly number[];
}

let lastArgs: unknown = null;
let upd = 0, del = 0, keys = 1, kind = 0;
let inner: readonly number[] = [];

function decode(a: unknown): void {
  lastArgs = a;
  const s = a as StressMixArgs;
  upd = s.updateBelow; del = s.deleteBelow; keys = Math.max(1, s.keys);
  kind = s.kind === 'hash' ? 0 : s.kind === 'array' ? 1 : 2;
  inner = s.innerIds ?? [];
}

function run(ctx: ProgramContext, m: BpfMapImpl): number {
  if (ctx.args !== lastArgs) decode(ctx.args);
  const r = ctx.rand();
  const dice = r & 0xffff;
  const key = ctx.scratchU32(0, (r >>> 16) % keys);
  if (kind === 2) {
    if (dice < upd && inner.length > 0) return ctx.sys.update(m, key, ctx.scratchU32(8, inner[ctx.iter % inner.length]!), BPF_ANY);
    if (dice < del) return ctx.sys.delete(m, key);
    m.lookup(key);
    return 0;
  }
  if (dice < upd || (kind === 1 && dice < del)) {
    const val = ctx.scratchU32(8, ctx.iter);
    ctx.setU32(val + 4, ctx.cpu);
    return m.update(key, val, BPF_ANY);
  }
  if (dice < del) {
    const e = m.delete(key);
    return e === -2 ? 0 : e; // -ENOENT: the key was not there, not a failure of the map
  }
  m.lookup(key);
  return 0;
}

export default defineProgram({
  name: 'stress_mix',
  type: 'syscall',
  maps: ['m'],
  run: (ctx, maps) => run(ctx, maps['m']!),
});
