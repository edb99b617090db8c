/*
 * this_cpu.ts — which simulated CPU the current thread is.
 *
 * Each CPU worker is CPU `id` for its whole life; the main thread is the housekeeping CPU
 * (id = nrCpus) that runs syscall-side work and never runs programs. `pcpu` is the byte offset of
 * this CPU's per-CPU block and `pcpuI` its Int32 index, so that `I32[pcpuI + (PC_X >> 2)]` is the
 * whole cost of a this_cpu access.
 */
import { percpuBase } from './arena.js';
import { PERCPU_BLOCK } from './layout.js';

export let thisCpu = -1;
export let pcpu = 0;
export let pcpuI = 0;

export function setThisCpu(id: number): void {
  thisCpu = id;
  pcpu = percpuBase + id * PERCPU_BLOCK;
  pcpuI = pcpu >> 2;
}

/** Byte offset of CPU `cpu`'s per-CPU block. */
export function perCpuBlock(cpu: number): number {
  return percpuBase + cpu * PERCPU_BLOCK;
}
