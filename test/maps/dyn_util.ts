// Helpers for the BPF_F_NO_PREALLOC map tests (dyn_*.test.ts): the two dynAlloc modes, an
// in-process boot with RCU and irq_work (the main thread plays every CPU and the coordinator, as
// test/rcu/rcu_boot.ts does), and a settle() that drives deferred map frees to completion.
import { expect } from 'vitest';
import { bootRcu, pump } from '../rcu/rcu_boot.js';
import { FLAG_DYN_KMALLOC, FLAG_PREEMPT_RT } from '../../src/mem/layout.js';
import { readSplats, formatSplat } from '../../src/debug/splat.js';
import { rcuBarrier } from '../../src/rcu/rcu.js';
import { htabFreeIdle, type BpfHtab } from '../../src/maps/hashtab.js';
import type { BpfMapImpl } from '../../src/maps/map_ops.js';
import { MAP_OWNER } from '../../src/maps/map_ops.js';
import { I32 } from '../../src/mem/arena.js';

export type DynMode = 'bpf_mem_alloc' | 'kmalloc';
export const DYN_MODES: readonly DynMode[] = ['bpf_mem_alloc', 'kmalloc'];

export interface DynBootOptions {
  readonly cpus?: number;
  readonly rt?: boolean;
  readonly memoryBytes?: number;
}

/** A fresh in-process arena with RCU and irq_work; the main thread is the housekeeping CPU. */
export function bootDyn(mode: DynMode, o: DynBootOptions = {}): void {
  bootRcu({
    ncpus: o.cpus ?? 4,
    flags: (mode === 'kmalloc' ? FLAG_DYN_KMALLOC : 0) | (o.rt === true ? FLAG_PREEMPT_RT : 0),
    memoryBytes: o.memoryBytes ?? 64 << 20,
  });
}

/** Drive the coordinator until every deferred map free and every RCU callback is done. */
export async function settle(rounds = 200): Promise<void> {
  expect(await pump(htabFreeIdle(), rounds), 'deferred map frees did not finish').toBe(true);
  expect(await pump(rcuBarrier(), rounds), 'rcu_barrier did not finish').toBe(true);
}

/** The map's own memory owner and its element owner (dynamic maps). */
export function ownersOf(impl: BpfMapImpl): { map: number; elems: number } {
  const h = impl as BpfHtab;
  const alloc = h.alloc as unknown as { owner?: number } | null;
  return { map: I32[(impl.ptr + MAP_OWNER) >> 2]!, elems: alloc?.owner ?? -1 };
}

/** Every splat so far, formatted, minus the ones whose kind is in `allowed`. */
export function unexpectedSplats(allowed: readonly string[] = []): string[] {
  return readSplats().filter((s) => !allowed.includes(s.kind)).map(formatSplat);
}
