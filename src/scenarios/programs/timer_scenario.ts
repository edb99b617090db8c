/*
 * Scenario program (seed 003, BPF timers): one bpf_timer helper per run on map `tmap` (hash or
 * array, value layout below), chosen by args.op, and the callbacks the timer scenarios arm.
 *
 * Map `ctl`: array of u32, one per key: the 'hold' callback of key k spins until ctl[k] != 0.
 *
 * value (48 bytes): +0 u64 callback runs | +8 struct bpf_timer | +24 u32 arrived (rendezvous)
 *   | +28 i32 what the callback's own helper returned | +32 u32 CPU of the last callback
 *   | +36 u32 1 once a callback finished | +40 u32 argument (spin us / period us) | +44 u32 peer key
 */
import { defineProgram, BPF_NOEXIST, EEXIST, EBUSY, CLOCK_MONOTONIC, type BpfMapImpl, type ProgramContext } from '../../program.js';

export const TV_COUNT = 0, TV_TIMER = 8, TV_ARRIVED = 24, TV_ERR = 28, TV_CPU = 32, TV_DONE = 36, TV_ARG = 40, TV_PEER = 44;
export const TIMER_SCENARIO_VALUE_SIZE = 48;

export interface TimerScenarioArgs {
  readonly op: 'arm' | 'cancel' | 'delete' | 'init';
  readonly key: number;
  readonly cb?: 'spin' | 'hold' | 'self_cancel' | 'cancel_peer' | 'periodic';
  readonly ns?: number;
  readonly arg?: number;
  readonly peer?: number;
  readonly flags?: number;
}

function enter(ctx: ProgramContext, value: number): void {
  ctx.atomicAddU64(value + TV_COUNT, 1n);
  ctx.setU32(value + TV_CPU, ctx.cpu);
}

function done(ctx: ProgramContext, value: number, err: number): void {
  ctx.setU32(value + TV_ERR, err);
  ctx.setU32(value + TV_DONE, 1);
}

export default defineProgram<{ readonly tmap: BpfMapImpl; readonly ctl: BpfMapImpl }>({
  name: 'timer_scenario',
  type: 'xdp',
  maps: ['tmap', 'ctl'],
  callbacks: {
    /** busy until ctl[key] != 0 (bounded: 5 s of real time) */
    hold(ctx, map: BpfMapImpl, key: number, value: number, maps) {
      enter(ctx, value);
      const flag = maps.ctl.lookup(key);
      const t0 = performance.now();
      while (flag !== 0 && ctx.atomicAddU32(flag, 0) === 0 && performance.now() - t0 < 5000) { /* held */ }
      done(ctx, value, 0);
      return 0;
    },
    /** busy for `arg` microseconds of real time */
    spin(ctx, map: BpfMapImpl, key: number, value: number) {
      enter(ctx, value);
      const us = ctx.u32(value + TV_ARG);
      const t0 = performance.now();
      while ((performance.now() - t0) * 1000 < us) { /* spin */ }
      done(ctx, value, 0);
      return 0;
    },
    self_cancel(ctx, map: BpfMapImpl, key: number, value: number) {
      enter(ctx, value);
      done(ctx, value, ctx.timerCancel(value + TV_TIMER));
      return 0;
    },
    /** wait (bounded) until the peer's callback runs too, then cancel the peer's timer */
    cancel_peer(ctx, map: BpfMapImpl, key: number, value: number) {
      enter(ctx, value);
      const peer = map.lookup(ctx.scratchU32(0, ctx.u32(value + TV_PEER)));
      if (peer === 0) { done(ctx, value, -2); return 0; }
      ctx.atomicAddU32(value + TV_ARRIVED, 1);
      const t0 = performance.now();
      while (ctx.atomicAddU32(peer + TV_ARRIVED, 0) === 0 && performance.now() - t0 < 3000) { /* rendezvous (bounded) */ }
      done(ctx, value, ctx.timerCancel(peer + TV_TIMER));
      return 0;
    },
    /** count and re-arm every `arg` microseconds */
    periodic(ctx, map: BpfMapImpl, key: number, value: number) {
      enter(ctx, value);
      ctx.setU32(value + TV_ERR, ctx.timerStart(value + TV_TIMER, ctx.u32(value + TV_ARG) * 1000, 0));
      return 0;
    },
  },
  run(ctx, { tmap }) {
    const a = ctx.args as TimerScenarioArgs;
    const key = ctx.scratchU32(0, a.key);
    let v = tmap.lookup(key);
    if (v === 0 && (a.op === 'arm' || a.op === 'init')) {
      const r = tmap.update(key, ctx.zeroValue(tmap), BPF_NOEXIST);
      if (r !== 0 && r !== -EEXIST) return r;
      v = tmap.lookup(key);
    }
    if (v === 0) return -2;
    const t = v + TV_TIMER;
    switch (a.op) {
      case 'init': return ctx.timerInit(t, tmap, CLOCK_MONOTONIC);
      case 'cancel': return ctx.timerCancel(t);
      case 'delete': return tmap.delete(key);
      case 'arm': {
        ctx.setU32(v + TV_ARG, a.arg ?? 0);
        ctx.setU32(v + TV_PEER, a.peer ?? 0);
        ctx.setU32(v + TV_DONE, 0);
        ctx.setU32(v + TV_ARRIVED, 0);
        let r = ctx.timerInit(t, tmap, CLOCK_MONOTONIC);
        if (r !== 0 && r !== -EBUSY) return r;
        r = ctx.timerSetCallback(t, a.cb ?? 'spin');
        if (r !== 0) return r;
        return ctx.timerStart(t, a.ns ?? 0, a.flags ?? 0);
      }
      default: return -22;
    }
  },
});
