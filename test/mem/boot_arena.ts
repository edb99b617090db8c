// Boot an arena on the main thread only (no workers): the main thread becomes the housekeeping
// CPU (id = ncpus) with the allocator formatted. Each call makes a fresh arena.
import { createArena, attachArena } from '../../src/mem/arena.js';
import { computeLayout } from '../../src/mem/layout.js';
import { setThisCpu } from '../../src/mem/this_cpu.js';
import { contextInit } from '../../src/cpu/context.js';
import { memInit } from '../../src/mem/slab.js';

export interface BootOptions {
  readonly ncpus?: number;
  readonly memoryBytes?: number;
  readonly flags?: number;
  readonly seed?: number;
  readonly lockTimeoutMs?: number;
}

export function bootArena(opts: BootOptions = {}): SharedArrayBuffer {
  const ncpus = opts.ncpus ?? 4;
  const layout = computeLayout(ncpus, opts.memoryBytes ?? 16 << 20);
  const sab = createArena({
    layout, flags: opts.flags ?? 0, seed: opts.seed ?? 1,
    lockTimeoutMs: opts.lockTimeoutMs ?? 250, rcuStallMs: 1000,
  });
  attachArena(sab);
  setThisCpu(ncpus);
  contextInit();
  memInit();
  return sab;
}
