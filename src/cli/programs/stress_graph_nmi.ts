/*
 * stress_graph_nmi.ts — what the NMIs (and hardirqs) of a graph cell run: a 'tc' program (not a
 * tracing one: those may not touch bpf_spin_lock maps' locks at all) loaded with abortPolicy
 * 'continue', on the same values the task workload (stress_graph.ts) is changing. Per run, one of:
 *   res    bpf_res_spin_lock on the value's res lock, the same section as the task workload's. An
 *          NMI that lands inside the interrupted task's own section gets -EDEADLK (AA), one that
 *          meets another CPU's NMI in a cycle gets -EDEADLK (AB-BA) or -ETIMEDOUT: counted, no splat.
 *   churn  bpf_obj_new + bpf_obj_drop in NMI (bpf_global_ma from NMI; 0 when the cache is dry).
 *   throw  bpf_obj_new, then bpf_throw with the owning reference held: the abort unwinds (drops) it,
 *          the exception callback makes the return value; no splat.
 *   break  (at most `maxAborts` times per cell, a budget in `ctl`) bpf_obj_new, then
 *          bpf_list_push_back on the value's list WITHOUT its bpf_spin_lock: the rule "bpf_spin_lock
 *          at off=0 must be held" aborts the run, which unwinds the new object. Each is one
 *          'prog_abort' splat naming this program: EXPECTED, counted by the engine, not a failure.
 * It never takes the value's bpf_spin_lock: in NMI that lock may be held by the task it interrupted
 * (AA: -EDEADLK with a 'deadlock' splat), and NMIs on two CPUs waiting for each other's task's lock
 * would be an AB-BA the raw lock cannot resolve — the reason the kernel keeps bpf_spin_lock out of
 * NMI-capable programs.
 *
 * Counters (u32, atomic) in the value of `ctl` key 0, read by the engine: see NC_*.
 */
import { defineProgram, EDEADLK, ETIMEDOUT, type BpfMapImpl, type ProgramContext } from '../../program.js';
import { GV_HEAD, GV_RES, GV_RES_ATOMIC, GV_RES_PLAIN, GN_LIST, GRAPH_NODE_DECL, GRAPH_NODE_TYPE, GN_KEY } from './stress_graph.js';

export const GRAPH_NMI_CTL_SIZE = 48;
/** ctl counters: break budget taken, breaks made, throws, res ok / EDEADLK / ETIMEDOUT / other, obj_new failures, churns. */
export const NC_BUDGET = 0, NC_BREAKS = 4, NC_THROWS = 8, NC_RES_OK = 12, NC_RES_DEADLK = 16, NC_RES_TIMEDOUT = 20, NC_RES_OTHER = 24;
export const NC_NOMEM = 28, NC_CHURN = 32;
export const GRAPH_NMI_PROG_NAME = 'stress_graph_nmi';
/** The cookie of the throws; the exception callback returns cookie + 1. */
export const GRAPH_NMI_COOKIE = 40;

export interface GraphNmiArgs {
  readonly keys: number;
  /** rule breaks (expected prog_abort splats) allowed per cell */
  readonly maxAborts: number;
}

function res(ctx: ProgramContext, v: number, c: number): number {
  const e = ctx.resSpinLock(v + GV_RES);
  if (e !== 0) {
    ctx.atomicAddU32(c + (e === -EDEADLK ? NC_RES_DEADLK : e === -ETIMEDOUT ? NC_RES_TIMEDOUT : NC_RES_OTHER), 1);
    return 0;
  }
  ctx.setU32(v + GV_RES_PLAIN, (ctx.u32(v + GV_RES_PLAIN) + 1) >>> 0);
  ctx.atomicAddU32(v + GV_RES_ATOMIC, 1);
  ctx.resSpinUnlock(v + GV_RES);
  ctx.atomicAddU32(c + NC_RES_OK, 1);
  return 0;
}

export default defineProgram<{ readonly m: BpfMapImpl; readonly ctl: BpfMapImpl }>({
  name: GRAPH_NMI_PROG_NAME,
  type: 'tc',
  maps: ['m', 'ctl'],
  types: { [GRAPH_NODE_TYPE]: GRAPH_NODE_DECL },
  callbacks: { exception: (_ctx: ProgramContext, cookie: number) => cookie + 1 },
  run(ctx, { m, ctl }) {
    const a = ctx.args as GraphNmiArgs;
    const c = ctl.lookup(ctx.scratchU32(0, 0));
    const r = ctx.rand();
    const v = m.lookup(ctx.scratchU32(8, (r >>> 8) % a.keys));
    if (c === 0 || v === 0) return 0;
    const dice = r & 0xff;
    if (dice < 192) return res(ctx, v, c);
    const n = ctx.objNew(GRAPH_NODE_TYPE);
    if (n === 0) { ctx.atomicAddU32(c + NC_NOMEM, 1); return 0; }
    ctx.setU32(n + GN_KEY, r);
    if (dice < 224) { ctx.objDrop(n); ctx.atomicAddU32(c + NC_CHURN, 1); return 0; }
    if (dice < 248 || ctx.atomicAddU32(c + NC_BUDGET, 1) >= a.maxAborts) {
      ctx.atomicAddU32(c + NC_THROWS, 1);
      return ctx.throw(GRAPH_NMI_COOKIE);
    }
    ctx.atomicAddU32(c + NC_BREAKS, 1);
    return ctx.listPushBack(v + GV_HEAD, n + GN_LIST); // aborts: the value's lock is not held
  },
});
