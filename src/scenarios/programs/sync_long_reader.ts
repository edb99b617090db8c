/*
 * Scenario program (seed 002, BPF_SYNCHRONIZE): one long RCU read section. Writes its start time
 * (ktime ns) to times[args.slot], loops with windows for args.holdMs (interrupts and RCU's
 * expedited/forced requests arrive there, but cannot end the read section), then writes its end
 * time to times[args.slot + 1]. The whole run is one read section (every program run is).
 */
import { defineProgram, ENOENT, type BpfMapImpl } from '../../program.js';

export interface LongReaderArgs { readonly holdMs: number; readonly slot: number }

export default defineProgram<{ readonly times: BpfMapImpl }>({
  name: 'sync_long_reader',
  type: 'kprobe',
  windows: ['scenario.sync.reader'],
  maps: ['times'],
  run(ctx, { times }) {
    const a = ctx.args as LongReaderArgs;
    const start = times.lookup(ctx.scratchU32(0, a.slot));
    const end = times.lookup(ctx.scratchU32(4, a.slot + 1));
    if (start === 0 || end === 0) return -ENOENT;
    const t0 = ctx.timeNs();
    ctx.setU64(start, BigInt(Math.floor(t0)));
    const until = t0 + a.holdMs * 1e6;
    let loops = 0;
    while (ctx.timeNs() < until) { ctx.window('scenario.sync.reader'); loops++; }
    ctx.setU64(end, BigInt(Math.floor(ctx.timeNs())));
    return loops > 0 ? 0 : -ENOENT;
  },
});
