/*
 * inject.ts — the main thread's side of interrupt injection and program attachment.
 *
 *  - Precise injection (rt.inject({ cpu, at, kind, times })): an entry in the INJECT table and the
 *    sticky PEND_SITE bit on that CPU; the CPU turns it into a pending interrupt when it passes the
 *    named window (window.ts). For scenarios: "an NMI on CPU 1 at htab.update.locked".
 *  - Attach table: programs run by windows (kprobe at a site) or by interrupts (perf_event in NMI,
 *    hardirq, softirq) on a CPU mask.
 *  - Random injection (rt.inject({ kind, cpus, ratePerSec })) and perf_event frequencies: an
 *    interrupt source armed on each CPU, which raises its own events (cpu/irq_source.ts), seeded;
 *    ratePerSec is per CPU. Interrupts raised faster than a CPU takes them coalesce, as on
 *    hardware, and are counted: requested, delivered, coalesced per kind (rt.stats()).
 *
 * Table entries are written by the main thread only; CPUs read them (and decrement
 * INJ_REMAINING / bump hit counters with Atomics).
 */
import { I32 } from '../mem/arena.js';
import { perCpuBlock } from '../mem/this_cpu.js';
import {
  HDR_KPROBE_SITES, KPROBE_SITE_BITS,
  HDR_INJECT_BASE, HDR_ATTACH_BASE, INJECT_ENTRIES, INJECT_ENTRY, INJ_ACTIVE, INJ_CPU, INJ_SITE,
  INJ_KIND, INJ_REMAINING, INJ_PROG, INJ_FIRED, ATTACH_ENTRIES, ATTACH_ENTRY, ATT_ACTIVE, ATT_KIND,
  ATT_SITE, ATT_CPUMASK_LO, ATT_CPUMASK_HI, ATT_PROG, ATT_HITS, ATTACH_KPROBE, PC_PENDING, PC_WAKE,
  PEND_SITE, PEND_KPROBE, PEND_NMI, PEND_HARDIRQ, PEND_SOFTIRQ, IRQ_KIND_NMI, IRQ_KIND_HARDIRQ,
  IRQ_KIND_SOFTIRQ,
} from '../mem/layout.js';
import {
  armSource, disarmSource, freeSourceSlot, sourceRaised, KIND_NMI, KIND_HARDIRQ, KIND_SOFTIRQ,
} from '../cpu/irq_source.js';
import { IRQ_SOURCES } from '../mem/layout.js';

export type IrqKind = 'nmi' | 'hardirq' | 'softirq';
export const IRQ_KINDS: readonly IrqKind[] = ['nmi', 'hardirq', 'softirq'];

export function irqKindCode(k: IrqKind): number {
  return k === 'nmi' ? IRQ_KIND_NMI : k === 'hardirq' ? IRQ_KIND_HARDIRQ : IRQ_KIND_SOFTIRQ;
}
export function irqPendBit(k: IrqKind): number {
  return k === 'nmi' ? PEND_NMI : k === 'hardirq' ? PEND_HARDIRQ : PEND_SOFTIRQ;
}

/** Raise `bits` on `cpu` and wake it if idle (any thread). */
export function raiseOnCpu(cpu: number, bits: number): void {
  const b = perCpuBlock(cpu);
  Atomics.or(I32, (b + PC_PENDING) >> 2, bits);
  Atomics.add(I32, (b + PC_WAKE) >> 2, 1);
  Atomics.notify(I32, (b + PC_WAKE) >> 2);
}

function clearOnCpu(cpu: number, bits: number): void {
  Atomics.and(I32, (perCpuBlock(cpu) + PC_PENDING) >> 2, ~bits);
}

// ---- precise injections ----

export function armInjection(cpu: number, site: number, kind: IrqKind, times: number, progId: number): number {
  const base = I32[HDR_INJECT_BASE >> 2]!;
  for (let i = 0; i < INJECT_ENTRIES; i++) {
    const e = base + i * INJECT_ENTRY;
    if (Atomics.load(I32, (e + INJ_ACTIVE) >> 2) !== 0) continue;
    I32[(e + INJ_CPU) >> 2] = cpu;
    I32[(e + INJ_SITE) >> 2] = site;
    I32[(e + INJ_KIND) >> 2] = irqKindCode(kind);
    I32[(e + INJ_PROG) >> 2] = progId + 1;
    Atomics.store(I32, (e + INJ_FIRED) >> 2, 0);
    Atomics.store(I32, (e + INJ_REMAINING) >> 2, times);
    Atomics.store(I32, (e + INJ_ACTIVE) >> 2, 1);
    raiseOnCpu(cpu, PEND_SITE);
    return i;
  }
  throw new RangeError(`inject: all ${INJECT_ENTRIES} precise injection slots are in use`);
}

export function injectionFired(slot: number): number {
  const e = I32[HDR_INJECT_BASE >> 2]! + slot * INJECT_ENTRY;
  return Atomics.load(I32, (e + INJ_FIRED) >> 2);
}

export function cancelInjection(slot: number): void {
  const e = I32[HDR_INJECT_BASE >> 2]! + slot * INJECT_ENTRY;
  Atomics.store(I32, (e + INJ_ACTIVE) >> 2, 0);
}

// ---- attach table ----

export function attachEntry(kind: number, site: number, cpus: readonly number[], progId: number, nrCpus: number): number {
  const base = I32[HDR_ATTACH_BASE >> 2]!;
  for (let i = 0; i < ATTACH_ENTRIES; i++) {
    const e = base + i * ATTACH_ENTRY;
    if (Atomics.load(I32, (e + ATT_ACTIVE) >> 2) !== 0) continue;
    let lo = 0, hi = 0;
    for (const c of cpus) { if (c < 32) lo |= 1 << c; else hi |= 1 << (c - 32); }
    I32[(e + ATT_KIND) >> 2] = kind;
    I32[(e + ATT_SITE) >> 2] = site;
    I32[(e + ATT_CPUMASK_LO) >> 2] = lo;
    I32[(e + ATT_CPUMASK_HI) >> 2] = hi;
    I32[(e + ATT_PROG) >> 2] = progId;
    Atomics.store(I32, (e + ATT_HITS) >> 2, 0);
    // the site's bit before the entry is active: a window that sees the entry also sees the bit
    if (kind === ATTACH_KPROBE) Atomics.or(I32, (HDR_KPROBE_SITES >> 2) + ((site & KPROBE_SITE_BITS) >>> 5), 1 << (site & 31));
    Atomics.store(I32, (e + ATT_ACTIVE) >> 2, 1);
    if (kind === ATTACH_KPROBE) for (let c = 0; c < nrCpus; c++) raiseOnCpu(c, PEND_KPROBE);
    return i;
  }
  throw new RangeError(`attach: all ${ATTACH_ENTRIES} attach slots are in use`);
}

export function attachHits(slot: number): number {
  const e = I32[HDR_ATTACH_BASE >> 2]! + slot * ATTACH_ENTRY;
  return Atomics.load(I32, (e + ATT_HITS) >> 2);
}

export function detachEntry(slot: number, nrCpus: number): void {
  const base = I32[HDR_ATTACH_BASE >> 2]!;
  Atomics.store(I32, (base + slot * ATTACH_ENTRY + ATT_ACTIVE) >> 2, 0);
  let kprobes = false;
  const sites = new Int32Array(8);
  for (let i = 0; i < ATTACH_ENTRIES; i++) {
    const e = base + i * ATTACH_ENTRY;
    if (Atomics.load(I32, (e + ATT_ACTIVE) >> 2) !== 0 && I32[(e + ATT_KIND) >> 2] === ATTACH_KPROBE) {
      kprobes = true;
      const s = I32[(e + ATT_SITE) >> 2]!;
      sites[(s & KPROBE_SITE_BITS) >>> 5]! |= 1 << (s & 31);
    }
  }
  // attach and detach run on the main thread only: recomputing the mask races with nothing
  for (let w = 0; w < 8; w++) Atomics.store(I32, (HDR_KPROBE_SITES >> 2) + w, sites[w]!);
  if (!kprobes) for (let c = 0; c < nrCpus; c++) clearOnCpu(c, PEND_KPROBE);
}

// ---- random injection and perf_event sampling ----

/**
 * Arm an interrupt source of `kind` at `ratePerSec` on each of `cpus` (random: exponential
 * inter-arrival times; periodic for perf_event sampling). The CPUs arm their own events
 * (cpu/irq_source.ts). Returns a handle that disarms them and counts what they requested.
 */
export function addIrqSource(kind: IrqKind, cpus: readonly number[], ratePerSec: number, random: boolean): { stop(): void; raised(): number } {
  const code = kind === 'nmi' ? KIND_NMI : kind === 'hardirq' ? KIND_HARDIRQ : KIND_SOFTIRQ;
  const slots: number[] = [];
  try {
    for (const c of cpus) {
      const s = freeSourceSlot(c);
      if (s < 0) throw new RangeError(`inject: all ${IRQ_SOURCES} interrupt sources of cpu ${c} are in use`);
      armSource(c, s, code, ratePerSec, random);
      slots.push(s);
    }
  } catch (e) {
    slots.forEach((s, i) => disarmSource(cpus[i]!, s));
    throw e;
  }
  let stopped = false;
  let final = 0;
  const raised = (): number => slots.reduce((a, s, i) => a + sourceRaised(cpus[i]!, s), 0);
  return {
    stop: () => {
      if (stopped) return;
      final = raised();
      stopped = true;
      slots.forEach((s, i) => disarmSource(cpus[i]!, s));
    },
    raised: () => (stopped ? final : raised()),
  };
}
