/*
 * history_view.ts — an illegal history window drawn as Porcupine draws one: one row per CPU, a
 * bar per operation from its call stamp to its return stamp, the longest legal linearization
 * numbered in order, the operation that could not follow marked, operations still running at
 * the window's end hatched. Hovering a bar shows the operation, its result, and the model state
 * after it (for the linearized ones). Pure: data in, an SVG string out (the report inlines it;
 * nothing is fetched).
 *
 * Stamps are ordinal (one shared counter), so the x axis is the rank of each distinct stamp, not
 * time: equal stamps line up, and every bar has a visible width.
 */

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

import type { CellTimeline } from '../engine_api.js';

const ROW_H = 26;
const BAR_H = 16;
const LEFT = 64;
const STEP = 36;

/** The SVG of one window. */
export function renderTimeline(t: CellTimeline): string {
  const stamps = [...new Set(t.ops.flatMap((o) => [o.call, o.ret]))].sort((a, b) => a - b);
  const x = (s: number): number => LEFT + stamps.indexOf(s) * STEP;
  const cpus = [...new Set(t.ops.map((o) => o.cpu))].sort((a, b) => a - b);
  const width = LEFT + Math.max(1, stamps.length - 1) * STEP + 24;
  const height = cpus.length * ROW_H + 30;
  const parts: string[] = [];
  parts.push(`<svg class="history" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(t.title)}">`);
  parts.push('<defs><pattern id="pending" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="3" height="6" fill="#bbb"/></pattern></defs>');
  cpus.forEach((c, row) => {
    const y = 10 + row * ROW_H;
    parts.push(`<text x="4" y="${y + BAR_H - 3}" font-size="12" font-family="monospace">cpu ${c}</text>`);
    parts.push(`<line x1="${LEFT - 6}" x2="${width - 8}" y1="${y + BAR_H / 2}" y2="${y + BAR_H / 2}" stroke="#eee"/>`);
  });
  for (const o of t.ops) {
    const y = 10 + cpus.indexOf(o.cpu) * ROW_H;
    const x0 = x(o.call);
    const w = Math.max(10, x(o.ret) - x0);
    const fill = o.stuck ? '#d9534f' : o.pending ? 'url(#pending)' : o.order >= 0 ? '#5b9bd5' : '#c8c8c8';
    const tip = [o.label, `call ${o.call}, return ${o.ret}`,
      o.stuck ? 'cannot be linearized here: ILLEGAL' : o.order >= 0 ? `linearized #${o.order + 1}; state after: ${o.state ?? '?'}` : o.pending ? 'pending at the window end' : 'not reached by the longest linearization'].join('\n');
    parts.push(`<g class="op${o.stuck ? ' stuck' : ''}"><title>${escapeHtml(tip)}</title>`
      + `<rect x="${x0}" y="${y}" width="${w}" height="${BAR_H}" rx="3" fill="${fill}" stroke="${o.stuck ? '#a00' : '#555'}"/>`
      + (o.order >= 0 ? `<text x="${x0 + 3}" y="${y + BAR_H - 4}" font-size="10" fill="#fff" font-family="monospace">${o.order + 1}</text>` : '')
      + (o.stuck ? `<text x="${x0 + w + 3}" y="${y + BAR_H - 4}" font-size="11" fill="#a00" font-family="monospace">✗</text>` : '')
      + '</g>');
  }
  parts.push(`<text x="${LEFT}" y="${height - 6}" font-size="10" fill="#666" font-family="sans-serif">stamps in order (one shared counter) · blue: linearized (#) · red: could not follow · hatched: still running${t.fromAnyState ? ' · starts from any state of the key' : ''}</text>`);
  parts.push('</svg>');
  return parts.join('');
}
