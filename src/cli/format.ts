/*
 * format.ts — how numbers look in the terminal: counts (1.2k, 4.9M), rates (12.3 M/s), bytes
 * (12.3 MiB), durations. One place, so the live display, the summaries and the tables agree.
 */
export { formatRate, formatRatio } from '../bench/harness.js';
import type { StressSection } from './results.js';
import type { HistoryOp } from '../maps/map_history.js';

export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return '–';
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(a >= 1e8 ? 0 : 1)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(a >= 1e5 ? 0 : 1)}k`;
  return String(Math.round(n));
}

export function formatBytes(b: number): string {
  if (!Number.isFinite(b)) return '–';
  const a = Math.abs(b);
  if (a >= 1 << 30) return `${(b / (1 << 30)).toFixed(2)} GiB`;
  if (a >= 1 << 20) return `${(b / (1 << 20)).toFixed(1)} MiB`;
  if (a >= 1 << 10) return `${(b / (1 << 10)).toFixed(1)} KiB`;
  return `${Math.round(b)} B`;
}

export function formatSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

export function formatMs(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 1) return `${ms.toFixed(ms >= 100 ? 0 : 1)} ms`;
  return `${(ms * 1000).toFixed(0)} µs`;
}

/** "EBUSY 12, ENOMEM 3" sorted by count, or "none". */
export function formatErrors(errors: Readonly<Record<string, number>>, skip: readonly string[] = []): string {
  const e = Object.entries(errors).filter(([k, v]) => v > 0 && !skip.includes(k)).sort((a, b) => b[1] - a[1]);
  return e.length === 0 ? 'none' : e.map(([k, v]) => `${k} ${formatCount(v)}`).join(', ');
}

/** An interrupt flow as "requested / delivered / coalesced"; '?' where the runtime does not count it. */
export function formatIrqFlow(f: { readonly requested: number | null; readonly delivered: number; readonly coalesced: number | null }): string {
  const n = (v: number | null): string => (v === null ? '?' : formatCount(v));
  return `${n(f.requested)} / ${n(f.delivered)} / ${n(f.coalesced)}`;
}

/** Where the round's wall time went: "boot 1.81 s, setup 210 ms, …". */
export function formatPhases(s: StressSection): string {
  const p = s.phasesMs;
  return `boot ${formatMs(p.boot)}, setup ${formatMs(p.setup)}, measured ${formatMs(p.measured)}, sampling ${formatMs(p.sampling)}, checks ${formatMs(p.checks)}, teardown ${formatMs(p.teardown)}`;
}

/** What an interrupted stress round covers: "measured 2.1 s of 5 s; 6 of 14 cells ran, 8 not run". */
export function stressCoverage(s: StressSection): string {
  const ran = s.cells.filter((c) => c.status === 'ran').length;
  const notRun = s.cells.filter((c) => c.status === 'skipped' && (c.skipReason ?? '').startsWith('interrupted')).length;
  return `measured ${(s.measuredMs / 1000).toFixed(1)} s of ${s.options.seconds} s; ${ran} of ${ran + notRun} cells ran${notRun > 0 ? `, ${notRun} not run` : ''}`;
}


/** One recorded map operation, as the illegal windows print it: `cpu1 update(0200, 4b00) = 0 [444, 445]`. */
export function formatHistoryOp(op: HistoryOp): string {
  return `cpu${op.cpu} ${op.op}(${op.key}${op.value !== undefined ? `, ${op.value}` : ''}) = ${String(op.result)} [${op.call}, ${op.ret}]`;
}
