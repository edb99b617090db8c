// Single-thread harness for RCU, irq_work and bpf_mem_alloc tests: one arena, the main thread
// plays every CPU (setThisCpu switches between them) and is the coordinator (rcuPoll/irqWorkPoll
// are called by hand). Each call makes a fresh arena.
import { vi } from 'vitest';
import { setThisCpu, thisCpu } from '../../src/mem/this_cpu.js';
import { rcuPoll } from '../../src/rcu/rcu.js';
import { irqWorkPoll } from '../../src/cpu/irq_work.js';
import { bootArena } from '../boot_arena.js';

export interface RcuBootOptions {
  readonly ncpus?: number;
  readonly flags?: number;
  readonly rcuStallMs?: number;
  readonly memoryBytes?: number;
}

/** Boot an arena in this thread; returns the housekeeping CPU id (= ncpus), the current CPU. */
export function bootRcu(o: RcuBootOptions = {}): number {
  const ncpus = o.ncpus ?? 4;
  bootArena({ ncpus, memoryBytes: o.memoryBytes ?? 32 << 20, flags: o.flags ?? 0, rcuStallMs: o.rcuStallMs ?? 1000 });
  return ncpus;
}

/** Run `fn` as CPU `cpu` (this thread pretends to be that CPU's worker). */
export function onCpu<T>(cpu: number, fn: () => T): T {
  const saved = thisCpu;
  setThisCpu(cpu);
  try { return fn(); } finally { setThisCpu(saved); }
}

/** One coordinator round: both services, as the coordinator loop would call them. */
export function coordinatorPoll(): void {
  rcuPoll(performance.now());
  irqWorkPoll(performance.now());
}

const tick = (ms: number): Promise<void> => new Promise((r) => { if (ms > 0) setTimeout(r, ms); else setImmediate(r); });

/**
 * Poll the coordinator until `p` settles or `rounds` rounds passed (waiting `delayMs` between
 * rounds). Returns whether it settled.
 */
export async function pump(p: Promise<unknown>, rounds = 20, delayMs = 0): Promise<boolean> {
  let done = false;
  void p.then(() => { done = true; }, () => { done = true; });
  await tick(0);
  for (let i = 0; i < rounds && !done; i++) {
    coordinatorPoll();
    await tick(delayMs);
  }
  return done;
}

/** Poll for `ms` of clock time (real, or the manual clock's: then it advances by `stepMs` a poll). */
export async function pollFor(ms: number, stepMs = 2): Promise<void> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    coordinatorPoll();
    if (manual !== null) { manual.advance(Math.min(stepMs, end - performance.now())); await tick(0); } else await tick(stepMs);
  }
  coordinatorPoll(); // at least one poll after `ms` even if a tick overslept on a busy machine
}

/** The clock of useManualClock(): time moves only when the test says so. */
export interface ManualClock { advance(ms: number): void; restore(): void }
let manual: ManualClock | null = null;

/**
 * Stop this thread's clock (performance.now(), and so the arena's nowMs() that RCU's grace-period
 * ages, forced reports and stall checks use) until `advance(ms)`. RCU asks CPUs for reports 1 ms
 * (RCU_FQS_MS) after a grace period started: with the real clock a test that checks "not yet" can
 * be overtaken by a loaded machine between two statements. Install before bootRcu(); restore()
 * in afterEach. Vitest keeps its own reference to the real performance.now.
 */
export function useManualClock(): ManualClock {
  const real = performance.now.bind(performance);
  let now = real();
  const spy = vi.spyOn(performance, 'now').mockImplementation(() => now);
  manual = {
    advance: (ms: number) => { if (ms > 0) now += ms; },
    restore: () => { spy.mockRestore(); manual = null; },
  };
  return manual;
}
