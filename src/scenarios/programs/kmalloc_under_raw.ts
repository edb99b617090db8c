// Scenario program: kmalloc while holding a raw spinlock (fine on !RT; "sleeping in atomic" on RT).
import { defineProgram } from '../../program.js';

export default defineProgram({
  name: 'kmalloc_under_raw',
  type: 'syscall',
  run(ctx) {
    const lock = ctx.cpuScratch + 128;
    const err = ctx.rawSpinLock(lock);
    if (err !== 0) return err;
    const p = ctx.kmalloc(64);
    ctx.rawSpinUnlock(lock);
    if (p === 0) return -12;
    ctx.kfree(p);
    return 0;
  },
});
