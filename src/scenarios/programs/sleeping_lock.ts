// Scenario program: take and release a spinlock_t (sleeping on PREEMPT_RT, raw otherwise).
import { defineProgram } from '../../program.js';

export default defineProgram({
  name: 'sleeping_lock',
  type: 'raw_tracepoint',
  run(ctx) {
    const lock = ctx.cpuScratch + 64;
    const err = ctx.spinLock(lock);
    if (err !== 0) return err;
    ctx.spinUnlock(lock);
    return 0;
  },
});
