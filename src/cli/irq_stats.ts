/*
 * irq_stats.ts — interrupt figures (requested / delivered / coalesced per kind) read from a
 * runtime's stats(), defensively, and summed.
 *
 * The runtime exposes `rt.stats().interrupts` as `{ nmi, hardirq, softirq }`, each
 * `{ requested, delivered, coalesced }` (totals over CPUs), and the same per CPU in
 * `rt.stats().cpus[i].interrupts`. A runtime without that field (older builds) still counts what
 * each CPU delivered (`cpus[i].nmi`, `.hardirq`, `.softirq`): then `requested` and `coalesced` are
 * null — unknown, never a made-up 0. irq_work comes from `cpus[i].irqWork` either way.
 *
 * The input is `unknown` on purpose: this file does not import the library, so the CLI keeps
 * type-checking whichever shape the runtime has, and tests can feed it plain objects.
 */
import type { Interrupts, IrqFlow } from './engine_api.js';

export const IRQ_KINDS_SHOWN = ['nmi', 'hardirq', 'softirq'] as const;
export type IrqKindShown = (typeof IRQ_KINDS_SHOWN)[number];

export const ZERO_FLOW: IrqFlow = { requested: 0, delivered: 0, coalesced: 0 };
export const ZERO_INTERRUPTS: Interrupts = { nmi: ZERO_FLOW, hardirq: ZERO_FLOW, softirq: ZERO_FLOW, irqWork: 0 };

function count(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : null;
}

function obj(v: unknown): Record<string, unknown> | null {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/** A `{ requested, delivered, coalesced }` object from the runtime, or null if it is not one. */
function flowOf(v: unknown): IrqFlow | null {
  const o = obj(v);
  if (o === null) return null;
  const delivered = count(o.delivered);
  if (delivered === null) return null;
  return { requested: count(o.requested), delivered, coalesced: count(o.coalesced) };
}

/** Interrupt figures of one runtime's stats() (see the file comment for the fallback). */
export function readInterrupts(stats: unknown): Interrupts {
  const s = obj(stats);
  const cpus = Array.isArray(s?.cpus) ? (s.cpus as unknown[]).map(obj).filter((c): c is Record<string, unknown> => c !== null) : [];
  const irqWork = cpus.reduce((a, c) => a + (count(c.irqWork) ?? 0), 0);
  const totals = obj(s?.interrupts);
  const out: Record<IrqKindShown, IrqFlow> = { nmi: ZERO_FLOW, hardirq: ZERO_FLOW, softirq: ZERO_FLOW };
  for (const k of IRQ_KINDS_SHOWN) {
    const given = totals === null ? null : flowOf(totals[k]);
    if (given !== null) { out[k] = given; continue; }
    // fallback: what each CPU delivered; how many were asked for or merged is unknown
    out[k] = { requested: null, delivered: cpus.reduce((a, c) => a + (count(c[k]) ?? 0), 0), coalesced: null };
  }
  return { ...out, irqWork };
}

function addNullable(a: number | null, b: number | null): number | null {
  return a === null || b === null ? null : a + b;
}

export function addFlow(a: IrqFlow, b: IrqFlow): IrqFlow {
  return { requested: addNullable(a.requested, b.requested), delivered: a.delivered + b.delivered, coalesced: addNullable(a.coalesced, b.coalesced) };
}

/** Sum of two runtimes' figures; a figure unknown in either stays unknown (null). */
export function addInterrupts(a: Interrupts, b: Interrupts): Interrupts {
  return { nmi: addFlow(a.nmi, b.nmi), hardirq: addFlow(a.hardirq, b.hardirq), softirq: addFlow(a.softirq, b.softirq), irqWork: a.irqWork + b.irqWork };
}

export const IRQ_LABEL: Readonly<Record<IrqKindShown, string>> = { nmi: 'NMI', hardirq: 'hardirq', softirq: 'softirq' };
