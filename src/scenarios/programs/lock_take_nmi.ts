// Scenario program (perf_event, runs in NMI): take the raw lock in this CPU's shared scratch.
import { defineProgram } from '../../program.js';

export default defineProgram({
  name: 'lock_take_nmi',
  type: 'perf_event',
  run(ctx) {
    const lock = ctx.cpuScratch;
    const err = ctx.rawSpinLock(lock);
    if (err !== 0) return err;
    ctx.rawSpinUnlock(lock);
    return 0;
  },
});
