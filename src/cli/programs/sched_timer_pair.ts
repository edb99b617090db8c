/*
 * sched_timer_pair.ts — timer_lockup.c as a scheduled workload: on CPU c, arm timer c of the
 * array `pair` (keys 0 and 1; value { struct bpf_timer @0; i32 err @16; u32 runs @20;
 * u32 deadlk @24 }) 1 ns ahead, pinned; each callback cancels the other timer. Under a schedule
 * the two callbacks overlap when the scheduler switches CPUs inside one of them: the kernel
 * since 2024 makes one of the two cancels -EDEADLK; before (the era switch
 * FAULT_TIMER_MUTUAL_CANCEL) each waits for the other's callback for ever.
 * Returns the start's result (0, or -errno: -EINVAL when the other callback's cancel dropped
 * this timer's callback between set_callback and start, as in the kernel).
 */
import { defineProgram, BPF_F_TIMER_CPU_PIN, CLOCK_BOOTTIME, type ProgramContext, type BpfMapImpl } from '../../program.js';

const ERR = 16, RUNS = 20, DEADLK = 24;
const EDEADLK = 35;

function cb(ctx: ProgramContext, map: BpfMapImpl, key: number, value: number): number {
  const me = ctx.u32(key);
  const other = map.lookup(ctx.scratchU32(0, 1 - me));
  if (other === 0) return 0;
  ctx.atomicAddU32(value + RUNS, 1);
  const e = ctx.timerCancel(other);
  ctx.setU32(value + ERR, e >>> 0);
  if (e === -EDEADLK) ctx.atomicAddU32(value + DEADLK, 1);
  return 0;
}

export default defineProgram({
  name: 'sched_timer_pair',
  type: 'tc',
  maps: ['pair'],
  callbacks: { cb },
  run(ctx, { pair }) {
    const key = ctx.cpu & 1;
    const timer = pair!.lookup(ctx.scratchU32(0, key));
    const other = pair!.lookup(ctx.scratchU32(4, 1 - key));
    if (timer === 0 || other === 0) return -2;
    ctx.timerInit(other, pair!, CLOCK_BOOTTIME); // -EBUSY once initialised: both exist before either fires
    ctx.timerInit(timer, pair!, CLOCK_BOOTTIME);
    ctx.timerSetCallback(timer, 'cb');
    return ctx.timerStart(timer, 1, BPF_F_TIMER_CPU_PIN);
  },
});
