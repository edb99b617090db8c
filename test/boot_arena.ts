// Boot an arena on the main thread only (no workers), for single-threaded tests: a fresh arena,
// every CPU id's context (and RCU / irq_work per-thread) state initialised so the test can act as
// any CPU with setThisCpu, the allocator formatted and RCU reset; the main thread is left as the
// housekeeping CPU (id = ncpus). Each call makes a fresh arena.
import { createArena, attachArena } from '../src/mem/arena.js';
import { computeLayout } from '../src/mem/layout.js';
import { setThisCpu } from '../src/mem/this_cpu.js';
import { contextInit } from '../src/cpu/context.js';
import { memInit } from '../src/mm/slab.js';
import { rcuThreadInit, rcuGlobalInit } from '../src/rcu/rcu.js';
import { irqWorkThreadInit } from '../src/cpu/irq_work.js';

export interface ArenaBootOptions {
  /** program CPUs @defaultValue 4 */
  readonly ncpus?: number;
  /** @defaultValue 16 MiB */
  readonly memoryBytes?: number;
  /** HDR_FLAGS bits (FLAG_PREEMPT_RT, …) @defaultValue 0 */
  readonly flags?: number;
  readonly seed?: number;
  readonly lockTimeoutMs?: number;
  readonly rcuStallMs?: number;
}

export function bootArena(o: ArenaBootOptions = {}): SharedArrayBuffer {
  const ncpus = o.ncpus ?? 4;
  const sab = createArena({
    layout: computeLayout(ncpus, o.memoryBytes ?? 16 << 20), flags: o.flags ?? 0, seed: o.seed ?? 1,
    lockTimeoutMs: o.lockTimeoutMs ?? 250, rcuStallMs: o.rcuStallMs ?? 1000,
  });
  attachArena(sab);
  for (let c = 0; c <= ncpus; c++) {
    setThisCpu(c);
    contextInit();
    rcuThreadInit();
  }
  irqWorkThreadInit();
  setThisCpu(ncpus);
  memInit();
  rcuGlobalInit();
  return sab;
}
