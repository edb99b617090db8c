// Benchmark body: raw spinlock acquire + release of one shared lock, `inner` times per run.
import { defineProgram } from 'bpfsim/program';

export default defineProgram({
  name: 'bench_spin',
  type: 'syscall',
  run(ctx) {
    const a = ctx.args;
    const lock = a.lock, n = a.inner;
    for (let i = 0; i < n; i++) {
      const e = ctx.rawSpinLock(lock);
      if (e !== 0) return e;
      ctx.rawSpinUnlock(lock);
    }
    return 0;
  },
});
