// Scenario program: hold a raw lock in this CPU's shared scratch across the window 'scenario.lock.held'.
import { defineProgram } from '../../program.js';

export default defineProgram({
  name: 'lock_hold',
  type: 'syscall',
  windows: ['scenario.lock.held'],
  run(ctx) {
    const lock = ctx.cpuScratch;
    const err = ctx.rawSpinLock(lock);
    if (err !== 0) return err;
    ctx.window('scenario.lock.held');
    ctx.rawSpinUnlock(lock);
    return 0;
  },
});
