/*
 * mem_fill.ts — scenario program: insert args.count new keys starting at args.base into a dynamic
 * hash map, in whatever context it runs. Returns ok | (enomem << 16): how many inserts succeeded
 * and how many got -ENOMEM (an empty bpf_mem_alloc cache that could not be refilled in this
 * context), so the scenario can print the seed-001 table.
 */
import { defineProgram, BPF_NOEXIST, ENOMEM } from '../../program.js';

interface FillArgs { readonly base: number; readonly count: number }

export default defineProgram({
  name: 'mem_fill',
  type: 'raw_tracepoint',
  maps: ['m'],
  run(ctx, maps) {
    const m = maps['m']!;
    const a = ctx.args as FillArgs;
    let ok = 0, enomem = 0;
    for (let i = 0; i < a.count; i++) {
      const key = ctx.scratchU32(0, a.base + i);
      const val = ctx.scratchU32(8, i);
      const r = m.update(key, val, BPF_NOEXIST);
      if (r === 0) ok++;
      else if (r === -ENOMEM) enomem++;
      else return r;
    }
    return ok | (enomem << 16);
  },
});
