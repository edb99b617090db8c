/*
 * runtime_helpers.ts — what the engine's halves agree on about a runtime: how much memory one
 * gets, which dynamic allocator an allocation mode needs, and small readers over its results.
 * Used by the bench suites (cases.ts, runtime_slot.ts, timer_latency.ts), by the CLI's stress run
 * (src/cli/stress.ts) and scenario adapter (src/cli/scenario_adapter.ts).
 *
 * Runtimes: one thread holds one runtime at a time, and the dynamic allocator (bpf_mem_alloc or
 * kmalloc) is a runtime option: dynAllocOf names the runtime a map of an allocation mode is made
 * in (a BPF_F_NO_PREALLOC map needs its allocator's; preallocated ones go with bpf_mem_alloc).
 * Nothing here keeps state.
 */
import type { Runtime } from '../runtime/runtime.js';
import type { AllocMode, ContextName, SplatRecord } from '../cli/engine_api.js';

/** Memory for one runtime: enough for every stress cell's map plus the allocator's caches. */
export const MEMORY_BYTES = 256 << 20;

export function dynAllocOf(alloc: AllocMode): 'bpf_mem_alloc' | 'kmalloc' {
  return alloc === 'kmalloc' ? 'kmalloc' : 'bpf_mem_alloc';
}

export function toSplatRecord(s: ReturnType<Runtime['splats']>[number]): SplatRecord {
  return { kind: s.kind, cpu: s.cpu, context: s.context as ContextName, site: s.site, heldLocks: [...s.heldLocks], message: s.message, timeNs: s.timeNs };
}

export function mergeErrors(into: Record<string, number>, from: Readonly<Record<string, number>>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

export function cpuRange(n: number): number[] { return [...Array(n).keys()]; }
