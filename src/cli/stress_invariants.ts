/*
 * stress_invariants.ts — what a stress run checks with every CPU idle, beyond each map's check():
 * the per-CPU state that must be back to zero (held locks, lock waits, bpf_prog_active, preempt
 * and migrate counts, irqs off, RCU read-side nesting), the memory accounting by owner that the
 * leak check compares (slab bytes before the first map = after teardown, bpf_global_ma aside),
 * and the timer cells' count of timers attached to map values.
 *
 * Callers: the main thread, between cells or after a runtime's last cell, never while a workload
 * runs (the per-CPU words are read with Atomics but only mean something on an idle CPU). Each
 * check returns data (InvariantCheck, detail lines); cmd_stress.ts turns them into a verdict.
 */
import type { BpfMap } from '../maps/bpf_map.js';
import { ownerBytes, ownerName, OWNER_KERNEL } from '../mm/owners.js';
import { I32, U8 } from '../mem/arena.js';
import { kmalloc, kfree } from '../mm/slab.js';
import { perCpuBlock } from '../mem/this_cpu.js';
import {
  MEM_MAX_OWNERS, PC_HELD_COUNT, PC_WAIT_LOCK, PC_PROG_ACTIVE, PC_PREEMPT_COUNT, PC_MIGRATE_DISABLE, PC_IRQS_OFF, PC_RCU_NESTING,
  PC_RCU_TRACE_NESTING,
} from '../mem/layout.js';
import { BPF_TIMER_RETIRED } from '../maps/btf_record.js';
import type { InvariantCheck } from './engine_api.js';

/** Bytes charged to every owner id (memory accounting by owner). */
export function ownerSnapshot(): number[] {
  const out: number[] = [];
  for (let id = 0; id < MEM_MAX_OWNERS; id++) out.push(ownerBytes(id));
  return out;
}

/**
 * Slab bytes of bpf_global_ma, the allocator of graph objects: created with the first program that
 * declares object types and never freed (as the kernel's), its per-CPU caches keep free objects
 * between their watermarks. The leak check leaves it out; the graph cells check that no object
 * stays live (graphObjStats) instead.
 */
export function globalMaBytes(): number {
  let n = 0;
  for (let id = 0; id < MEM_MAX_OWNERS; id++) if (ownerName(id) === 'bpf_global_ma') n += ownerBytes(id);
  return n;
}

/** Owners holding more than at `before` (kernel: minus `kernelResidue`), as detail lines. */
export function ownerGrowth(before: readonly number[]): string[] {
  const out: string[] = [];
  for (let id = 0; id < MEM_MAX_OWNERS; id++) {
    const d = ownerBytes(id) - before[id]!;
    if (d !== 0) out.push(`owner ${ownerName(id)} (#${id}): ${d > 0 ? '+' : ''}${d} bytes`);
  }
  return out;
}

/** Per-CPU state that must be back to zero when nothing runs: held locks, waits, counters. */
export function cpuQuiescenceChecks(cpus: number): InvariantCheck[] {
  const locks: string[] = [];
  const counters: string[] = [];
  const words: [string, number][] = [
    ['bpf_prog_active', PC_PROG_ACTIVE], ['preempt_count', PC_PREEMPT_COUNT], ['migrate_disable', PC_MIGRATE_DISABLE],
    ['irqs_off', PC_IRQS_OFF], ['rcu_read_lock nesting', PC_RCU_NESTING], ['rcu_read_lock_trace nesting', PC_RCU_TRACE_NESTING],
  ];
  for (let c = 0; c < cpus; c++) {
    const b = perCpuBlock(c) >> 2;
    const held = Atomics.load(I32, b + (PC_HELD_COUNT >> 2));
    const waiting = Atomics.load(I32, b + (PC_WAIT_LOCK >> 2));
    if (held !== 0) locks.push(`CPU ${c} still holds ${held} lock(s)`);
    if (waiting !== 0) locks.push(`CPU ${c} still waits for the lock at 0x${(waiting >>> 0).toString(16)}`);
    for (const [name, off] of words) {
      const v = Atomics.load(I32, b + (off >> 2));
      if (v !== 0) counters.push(`CPU ${c}: ${name} = ${v}, expected 0`);
    }
  }
  return [
    { name: 'lock words free', scope: 'global', ok: locks.length === 0, details: locks },
    { name: 'recursion counters zero', scope: 'global', ok: counters.length === 0, details: counters },
  ];
}

/** Initialised bpf_timer fields in `m`'s values (main thread; program-path lookups of every key). */
export function attachedTimers(m: BpfMap): number {
  let n = 0;
  const keyPtr = kmalloc(8, OWNER_KERNEL);
  try {
    for (const k of m.keys()) {
      U8.set(k, keyPtr);
      const v = m.impl.lookup(keyPtr);
      const w = v === 0 ? 0 : Atomics.load(I32, (v + 8) >> 2);
      if (w !== 0 && w !== BPF_TIMER_RETIRED) n++;
    }
  } finally {
    kfree(keyPtr);
  }
  return n;
}
