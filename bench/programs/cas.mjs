// Baseline: a bare Atomics.compareExchange 0->1 and a store back, `inner` times per run.
import { defineProgram } from 'bpfsim/program';

export default defineProgram({
  name: 'bench_cas',
  type: 'syscall',
  run(ctx) {
    const a = ctx.args;
    const p = a.lock, n = a.inner;
    for (let i = 0; i < n; i++) {
      while (ctx.atomicCasU32(p, 0, 1) !== 0) { /* spin */ }
      ctx.setU32(p, 0);
    }
    return 0;
  },
});
