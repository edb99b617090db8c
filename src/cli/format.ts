/*
 * format.ts — how numbers look in the terminal: counts (1.2k, 4.9M), rates (12.3 M/s), bytes
 * (12.3 MiB), durations. One place, so the live display, the summaries and the tables agree.
 */
export { formatRate, formatRatio } from '../../bench/harness.js';

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
