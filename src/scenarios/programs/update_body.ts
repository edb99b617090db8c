/*
 * update_body.ts — the body shared by the scenario programs that update a map: key from
 * args.key (default 1), an 8-byte value made of the CPU id and the iteration; args.sys selects
 * the syscall path (bpf_disable_instrumentation around the op) instead of the program helper.
 */
import { BPF_ANY, type BpfMapImpl, type ProgramContext } from '../../program.js';

export interface UpdateArgs { readonly key?: number; readonly sys?: boolean; readonly flags?: number }

export function updateBody(ctx: ProgramContext, m: BpfMapImpl): number {
  const a = ctx.args as UpdateArgs | undefined;
  const key = ctx.scratchU32(0, a?.key ?? 1);
  const val = ctx.scratchU32(8, ctx.iter + 1);
  ctx.setU32(val + 4, ctx.cpu);
  const flags = a?.flags ?? BPF_ANY;
  return a?.sys === true ? ctx.sys.update(m, key, val, flags) : m.update(key, val, flags);
}
