/*
 * stress_irq.ts — what runs in the random NMIs and hardirqs of a stress run (a 'perf_event'
 * program: a tracing program, guarded by bpf_prog_active). It updates or looks up a random key of
 * the same map the task workload is hammering, so it lands inside that workload's bucket locks
 * and allocator fast paths: -EBUSY (map_locked), -ENOMEM (empty bpf_mem_alloc cache in NMI) and
 * friends are the expected outcomes, never a splat. Failures are counted per errno in the
 * per-CPU array `errs` (index = errno, capped at 159), which the engine reads afterwards.
 */
import { defineProgram, BPF_ANY, type BpfMapImpl, type ProgramContext } from '../../program.js';

export const ERRS_SLOTS = 160;

function count(ctx: ProgramContext, errs: BpfMapImpl, ret: number): number {
  if (ret >= 0) return ret;
  const v = errs.lookup(ctx.scratchU32(16, Math.min(-ret, ERRS_SLOTS - 1)));
  if (v !== 0) ctx.setU64(v, ctx.u64(v) + 1n);
  return ret;
}

function run(ctx: ProgramContext, m: BpfMapImpl, errs: BpfMapImpl): number {
  const r = ctx.rand();
  const args = ctx.args as { keys?: number; readOnly?: boolean } | undefined;
  const key = ctx.scratchU32(0, (r >>> 16) % Math.max(1, args?.keys ?? 1024));
  if ((r & 1) === 0 || args?.readOnly === true) { m.lookup(key); return 0; }
  const val = ctx.scratchU32(8, r);
  ctx.setU32(val + 4, ctx.cpu);
  return count(ctx, errs, m.update(key, val, BPF_ANY));
}

export default defineProgram({
  name: 'stress_irq',
  type: 'perf_event',
  maps: ['m', 'errs'],
  run: (ctx, maps) => run(ctx, maps['m']!, maps['errs']!),
});
