/*
 * bench_timers.ts — the timer benchmark program (`bpfsim bench timers`, bench/timers.bench.ts).
 * Map `m`: array; keys 0..63 one timer per CPU (key = CPU id), value { u64 fires @0; struct
 * bpf_timer @8; u64 requested expiry (ktime ns) @24; u32 period us @32; u32 samples left @36 };
 * keys from LATENCY_BASE on (when the map is that large): latency samples, u64 at +0, CPU c's
 * n-th at LATENCY_BASE + c * SAMPLES_PER_CPU + n.
 *   arm_cancel  ARM_CANCEL_PAIRS x (bpf_timer_start 1 s ahead + bpf_timer_cancel_async) per run on
 *               this CPU's timer (initialised and given its callback on the first run)
 *   latency     arm this CPU's timer args.periodUs ahead; its callback records how late it ran
 *               (ktime at the callback - requested expiry) into `samples` and re-arms until
 *               args.samples per CPU are taken
 */
import { defineProgram, CLOCK_MONOTONIC, EBUSY, type BpfMapImpl } from '../../program.js';

export const ARM_CANCEL_PAIRS = 16;
export const BT_FIRES = 0, BT_TIMER = 8, BT_EXPIRES = 24, BT_PERIOD = 32, BT_LEFT = 36;
export const BENCH_TIMER_VALUE_SIZE = 40;
export const LATENCY_BASE = 64;
export const SAMPLES_PER_CPU = 512;
export interface BenchTimerArgs { readonly op: 'arm_cancel' | 'latency'; readonly periodUs?: number; readonly samples?: number }

export default defineProgram<{ readonly m: BpfMapImpl }>({
  name: 'bench_timers',
  type: 'syscall',
  maps: ['m'],
  callbacks: {
    record(ctx, map: BpfMapImpl, key: number, value: number) {
      const late = ctx.timeNs() - Number(ctx.u64(value + BT_EXPIRES));
      const n = Number(ctx.atomicAddU64(value + BT_FIRES, 1n));
      const slot = n < SAMPLES_PER_CPU ? map.lookup(ctx.scratchU32(0, LATENCY_BASE + ctx.u32(key) * SAMPLES_PER_CPU + n)) : 0;
      if (slot !== 0) ctx.setU64(slot, BigInt(Math.max(0, Math.round(late))));
      const left = ctx.u32(value + BT_LEFT);
      if (left > 1) {
        ctx.setU32(value + BT_LEFT, left - 1);
        const ns = ctx.u32(value + BT_PERIOD) * 1000;
        ctx.setU64(value + BT_EXPIRES, BigInt(Math.round(ctx.timeNs() + ns)));
        ctx.timerStart(value + BT_TIMER, ns, 0);
      } else {
        ctx.setU32(value + BT_LEFT, 0);
      }
      return 0;
    },
  },
  run(ctx, { m }) {
    const a = ctx.args as BenchTimerArgs;
    const v = m.lookup(ctx.scratchU32(0, ctx.cpu));
    if (v === 0) return -2;
    const t = v + BT_TIMER;
    const r = ctx.timerInit(t, m, CLOCK_MONOTONIC);
    if (r === 0) ctx.timerSetCallback(t, 'record');
    else if (r !== -EBUSY) return r;
    if (a.op === 'arm_cancel') {
      for (let i = 0; i < ARM_CANCEL_PAIRS; i++) {
        const e = ctx.timerStart(t, 1e9, 0);
        if (e !== 0) return e;
        ctx.timerCancelAsync(t);
      }
      return 0;
    }
    const ns = (a.periodUs ?? 1000) * 1000;
    ctx.setU32(v + BT_PERIOD, a.periodUs ?? 1000);
    ctx.setU32(v + BT_LEFT, a.samples ?? 100);
    ctx.setU64(v + BT_FIRES, 0n);
    ctx.setU64(v + BT_EXPIRES, BigInt(Math.round(ctx.timeNs() + ns)));
    return ctx.timerStart(t, ns, 0);
  },
});
