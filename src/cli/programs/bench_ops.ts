/*
 * bench_ops.ts — the benchmark workloads, one 'syscall' program driven by args (decoded once per
 * runWorkload call). Keys are u32; with perCpu each CPU works on its own key range (as the
 * kernel's benchmarks pin one process per CPU). Ops per iteration (the engine scales by it):
 *   lookup       1   walk [0, keys) with a fixed stride (as the JS Map baseline does)
 *   update       1   overwrite an existing key (BPF_ANY)
 *   fill         1   insert key = iter (BPF_NOEXIST), to populate before lookups
 *   map_perf     1   event = update(ANY, key) → lookup → delete  (samples/bpf/map_perf_test)
 *   overwrite    1   htab-mem overwrite: update(ANY) own keys
 *   batch        1   htab-mem batch_add_batch_del: 64 adds, then 64 deletes (op per add/delete)
 */
import { defineProgram, BPF_ANY, BPF_NOEXIST, type BpfMapImpl, type ProgramContext } from '../../program.js';

export type BenchOp = 'lookup' | 'update' | 'fill' | 'map_perf' | 'overwrite' | 'batch';
export interface BenchArgs { readonly op: BenchOp; readonly keys: number; readonly perCpu: boolean; readonly canDelete: boolean }

const STRIDE = 7919;
let lastArgs: unknown = null;
let op = 0, keys = 1, perCpu = false, canDelete = true;
let k = 0;

function decode(a: unknown): void {
  lastArgs = a;
  const s = a as BenchArgs;
  op = ['lookup', 'update', 'fill', 'map_perf', 'overwrite', 'batch'].indexOf(s.op);
  keys = Math.max(1, s.keys); perCpu = s.perCpu; canDelete = s.canDelete; k = 0;
}

function run(ctx: ProgramContext, m: BpfMapImpl): number {
  if (ctx.args !== lastArgs) decode(ctx.args);
  const base = perCpu ? ctx.cpu * keys : 0;
  switch (op) {
    case 0: { k += STRIDE; if (k >= keys) k -= keys; m.lookup(ctx.scratchU32(0, base + k)); return 0; }
    case 1: { k += STRIDE; if (k >= keys) k -= keys; return m.update(ctx.scratchU32(0, base + k), ctx.scratchU32(8, ctx.iter), BPF_ANY); }
    case 2: return m.update(ctx.scratchU32(0, ctx.iter % keys), ctx.scratchU32(8, ctx.iter), BPF_NOEXIST);
    case 3: {
      const key = ctx.scratchU32(0, base + (ctx.iter % keys));
      const e = m.update(key, ctx.scratchU32(8, ctx.iter), BPF_ANY);
      if (e < 0) return e;
      m.lookup(key);
      return canDelete ? m.delete(key) : 0;
    }
    case 4: { k += 1; if (k >= keys) k = 0; return m.update(ctx.scratchU32(0, base + k), ctx.scratchU32(8, ctx.iter), BPF_ANY); }
    default: {
      const phase = ctx.iter & 127;
      const key = ctx.scratchU32(0, base + (phase & 63));
      return phase < 64 ? m.update(key, ctx.scratchU32(8, ctx.iter), BPF_ANY) : m.delete(key);
    }
  }
}

export default defineProgram({
  name: 'bench_ops',
  type: 'syscall',
  maps: ['m'],
  run: (ctx, maps) => run(ctx, maps['m']!),
});
