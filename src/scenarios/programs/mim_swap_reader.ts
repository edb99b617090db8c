/*
 * Scenario program (seed 002, swap-and-drain): a reader that reaches its data through a map-in-map.
 * outer[0] is the current inner array map: inner[1] holds its generation (1 = old, 2 = new),
 * inner[0] counts the lookups that went through it. Each run takes the inner map from the outer
 * map, reads the generation, bumps the inner counter and stats[generation], then keeps using the
 * same inner map for args.spin more reads (windows on, so the main thread's swap, grace period and
 * free can land in the middle of a run). A generation that is not 1 or 2 is freed memory read
 * through a stale inner map: a 'use_after_free' splat, and the run returns -EFAULT.
 */
import { defineProgram, EFAULT, ENOENT, type BpfMapImpl } from '../../program.js';
import type { BpfMapInMap } from '../../maps/map_in_map.js';
import { splat } from '../../debug/splat.js';

export interface SwapReaderArgs { readonly spin?: number }

type Maps = { readonly outer: BpfMapInMap; readonly stats: BpfMapImpl };

export default defineProgram<Maps>({
  name: 'mim_swap_reader',
  type: 'xdp',
  windows: ['scenario.mim.reader'],
  maps: ['outer', 'stats'],
  run(ctx, { outer, stats }) {
    const inner = outer.lookupInner(ctx.scratchU32(0, 0));
    if (inner === null) return -ENOENT;
    const gp = inner.lookup(ctx.scratchU32(4, 1));
    const cp = inner.lookup(ctx.scratchU32(8, 0));
    if (gp === 0 || cp === 0) return -ENOENT;
    const gen = ctx.u32(gp);
    if (gen !== 1 && gen !== 2) {
      splat('use_after_free', `mim_swap_reader: inner map ${inner.id} generation word reads 0x${(gen >>> 0).toString(16)}`);
      return -EFAULT;
    }
    ctx.atomicAddU64(cp, 1n);
    ctx.atomicAddU64(stats.lookup(ctx.scratchU32(12, gen)), 1n);
    const spin = (ctx.args as SwapReaderArgs | undefined)?.spin ?? 16;
    for (let i = 0; i < spin; i++) {
      ctx.window('scenario.mim.reader');
      const g = ctx.u32(gp);
      if (g !== gen) {
        splat('use_after_free', `mim_swap_reader: inner map ${inner.id} generation changed from ${gen} to 0x${(g >>> 0).toString(16)} inside one read section`);
        return -EFAULT;
      }
    }
    return 0;
  },
});
