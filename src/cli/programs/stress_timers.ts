/*
 * stress_timers.ts — the timer stress workload (`bpfsim stress` timer cells): a 'syscall' program
 * that, per run, picks a random key and one of: update (BPF_ANY: frees the element's timer), delete
 * (frees it), arm (init, tolerating -EBUSY; set_callback; start 0..50 us ahead), cancel, or
 * cancel_async, on map `m` (hash, lru_hash or array; value TIMER_STRESS_VALUE_SIZE bytes with a
 * bpf_timer at 8). The callback counts its runs and re-arms itself one time in four, so timers
 * fire, re-arm and get freed while other CPUs update and delete their elements.
 * Returns 0, or the -errno of the operation (runWorkload counts them by name): -ENOENT (delete or
 * a helper on a missing key), -EBUSY (init of an initialised timer), -EINVAL (a timer freed or
 * cancelled by another CPU meanwhile), -E2BIG / -ENOMEM (full map) are expected races.
 */
import { defineProgram, BPF_ANY, CLOCK_MONOTONIC, EBUSY, type BpfMapImpl } from '../../program.js';

export const TIMER_STRESS_VALUE_SIZE = 32;
export const TS_FIRES = 0, TS_TIMER = 8;
export interface TimerStressArgs { readonly keys: number }

export default defineProgram<{ readonly m: BpfMapImpl }>({
  name: 'stress_timers',
  type: 'syscall',
  maps: ['m'],
  callbacks: {
    tick(ctx, map: BpfMapImpl, key: number, value: number) {
      ctx.atomicAddU64(value + TS_FIRES, 1n);
      if ((ctx.rand() & 3) === 0) ctx.timerStart(value + TS_TIMER, ctx.rand() % 50_000, 0);
      return 0;
    },
  },
  run(ctx, { m }) {
    const a = ctx.args as TimerStressArgs;
    const r = ctx.rand();
    const key = ctx.scratchU32(0, (r >>> 8) % a.keys);
    const dice = r & 0xff;
    // a zero value in this run's scratch frame (not ctx.zeroValue: its buffer lives on per CPU,
    // and the stress leak check counts every byte)
    const zero = ctx.scratch + 64;
    for (let o = 0; o < TIMER_STRESS_VALUE_SIZE; o += 4) ctx.setU32(zero + o, 0);
    if (dice < 64) return m.update(key, zero, BPF_ANY);
    if (dice < 88) {
      const e = m.delete(key);
      return e === -2 || e === -22 ? 0 : e; // missing key; arrays cannot delete
    }
    let v = m.lookup(key);
    if (v === 0) {
      const e = m.update(key, zero, BPF_ANY);
      if (e !== 0) return e;
      v = m.lookup(key);
      if (v === 0) return 0; // deleted meanwhile
    }
    const t = v + TS_TIMER;
    if (dice < 192) {
      const e = ctx.timerInit(t, m, CLOCK_MONOTONIC);
      if (e !== 0 && e !== -EBUSY) return e;
      const s = ctx.timerSetCallback(t, 'tick');
      if (s !== 0) return s;
      return ctx.timerStart(t, ctx.rand() % 50_000, 0);
    }
    if (dice < 224) { const c = ctx.timerCancel(t); return c > 0 ? 0 : c; }
    const c = ctx.timerCancelAsync(t);
    return c >= -1 ? 0 : c;
  },
});
