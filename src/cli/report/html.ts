/*
 * html.ts — the report: one self-contained HTML file rendered from a results document.
 *
 * Self-contained means no network, ever: Chart.js's UMD build is read from node_modules at
 * generation time and inlined in a <script>; the chart data is inlined as JSON; a Content
 * Security Policy (`default-src 'none'`) makes the browser refuse any fetch the page might try.
 * Every piece of text from the results is HTML-escaped; every inlined script is escaped so that
 * no `</script` can end it early.
 *
 * Test hooks: after drawing, the page sets `document.body.dataset.chartsReady` to the number of
 * charts drawn (or to "error: …"); each chart's <canvas> has the chart's id.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Results } from '../results.js';
import { buildCharts, isChartSpec, type ChartSpec, type ChartNote } from './charts.js';
import { formatBytes, formatCount, formatErrors, formatMs, formatPhases, formatRate, stressCoverage } from '../format.js';
import { IRQ_KINDS_SHOWN, IRQ_LABEL } from '../irq_stats.js';
import { environmentLine, formatValue, formatRatioSpread, differenceWord, formatMachineLine } from '../../bench/harness.js';
import { renderTimeline } from './history_view.js';

let chartJs: { source: string; version: string } | null = null;

/** Chart.js's UMD build and version, read once from node_modules. */
export function chartJsSource(): { source: string; version: string } {
  if (chartJs === null) {
    const require = createRequire(import.meta.url);
    const main = require.resolve('chart.js'); // …/chart.js/dist/chart.cjs (the UMD file is not exported)
    const dir = path.dirname(main);
    const source = readFileSync(path.join(dir, 'chart.umd.min.js'), 'utf8');
    const pkg = JSON.parse(readFileSync(path.join(dir, '..', 'package.json'), 'utf8')) as { version?: unknown };
    chartJs = { source, version: typeof pkg.version === 'string' ? pkg.version : 'unknown' };
  }
  return chartJs;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Make text safe inside <script>…</script>. */
export function escapeScript(s: string): string {
  return s.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
}

/** JSON safe to embed in a <script type="application/json">. */
export function jsonForScript(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

const CSS = `
:root { --fg:#1b1f24; --muted:#5b6470; --ok:#1a7f37; --bad:#cf222e; --line:#d0d7de; --bg2:#f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); margin: 0; padding: 24px 32px 48px; max-width: 1280px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.meta { color: var(--muted); margin: 2px 0; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; color: #fff; font-weight: 600; font-size: 13px; vertical-align: middle; }
.ok { background: var(--ok); } .bad { background: var(--bad); } .warn { background: #9a6700; }
.tok { color: var(--ok); font-weight: 600; } .tbad { color: var(--bad); font-weight: 600; }
ul.failures li { color: var(--bad); font-family: ui-monospace, monospace; font-size: 13px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 20px; }
figure.wide { grid-column: 1 / -1; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 12px; background: #fff; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 6px; }
figure h3 { margin-top: 0; }
.chart-box { position: relative; width: 100%; }
.nodata { color: var(--muted); font-style: italic; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: var(--bg2); } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; }
details { margin: 6px 0; } summary { cursor: pointer; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
`;

const CLIENT = `
(function () {
  'use strict';
  var ready = function (v) { document.body.dataset.chartsReady = v; };
  try {
    var specs = JSON.parse(document.getElementById('bpfsim-charts').textContent);
    var si = function (v, unit) {
      var a = Math.abs(v), u = [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
      for (var i = 0; i < u.length; i++) if (a >= u[i][0]) return (v / u[i][0]).toFixed(a / u[i][0] >= 100 ? 0 : 1) + ' ' + u[i][1] + unit;
      return (Math.round(v * 100) / 100) + (unit ? ' ' + unit : '');
    };
    var fmt = {
      rate: function (v) { return si(v, '/s'); },
      count: function (v) { return si(v, ''); },
      bytes: function (v) { var a = Math.abs(v); return a >= 1048576 ? (v / 1048576).toFixed(1) + ' MiB' : a >= 1024 ? (v / 1024).toFixed(1) + ' KiB' : v + ' B'; },
      ms: function (v) { return v.toFixed(2) + ' ms'; },
      seconds: function (v) { return (Math.round(v * 10) / 10) + ' s'; },
      ratio: function (v) { return (Math.round(v * 100) / 100) + '\\u00d7'; }
    };
    var drawn = 0;
    specs.forEach(function (spec) {
      var canvas = document.getElementById(spec.id);
      if (!canvas) return;
      var cfg = spec.config;
      var scales = (cfg.options && cfg.options.scales) || {};
      Object.keys(spec.format).forEach(function (axis) {
        var f = fmt[spec.format[axis]];
        if (!scales[axis] || !f) return;
        scales[axis].ticks = Object.assign({}, scales[axis].ticks, { callback: function (v) { return typeof v === 'number' ? f(v) : this.getLabelForValue(v); } });
      });
      cfg.options.plugins = cfg.options.plugins || {};
      cfg.options.plugins.tooltip = {
        callbacks: {
          label: function (ctx) {
            var axis = ctx.dataset.yAxisID || (cfg.options.indexAxis === 'y' ? 'x' : 'y');
            var f = fmt[spec.format[axis]];
            var v = cfg.options.indexAxis === 'y' ? ctx.parsed.x : ctx.parsed.y;
            return ctx.dataset.label + ': ' + (f ? f(v) : v);
          }
        }
      };
      new Chart(canvas, cfg);
      drawn++;
    });
    ready(String(drawn));
  } catch (e) {
    ready('error: ' + (e && e.message));
    throw e;
  }
})();
`;

function chartBlock(c: ChartSpec | ChartNote): string {
  if (!isChartSpec(c)) {
    return `<figure id="${c.id}-figure"><h3>${escapeHtml(c.title)}</h3><p class="nodata">${escapeHtml(c.note)}</p></figure>`;
  }
  return `<figure id="${c.id}-figure"${c.wide === true ? ' class="wide"' : ''}><h3>${escapeHtml(c.title)}</h3>`
    + `<div class="chart-box" style="height:${c.height}px"><canvas id="${c.id}" role="img" aria-label="${escapeHtml(c.title)}"></canvas></div>`
    + `<figcaption>${escapeHtml(c.caption)}</figcaption></figure>`;
}

function table(head: readonly string[], rows: readonly (readonly string[])[], numCols: readonly number[] = []): string {
  const th = head.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const trs = rows.map((r) => `<tr>${r.map((c, i) => `<td${numCols.includes(i) ? ' class="num"' : ''}>${c}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${trs}\n</tbody></table>`;
}

const e = escapeHtml;
const okCell = (ok: boolean): string => (ok ? '<span class="tok">ok</span>' : '<span class="tbad">FAILED</span>');

function stressHtml(r: Results): string {
  const s = r.stress;
  if (s === null) return '';
  const o = s.options;
  const t = s.totals;
  const parts: string[] = ['<h2 id="stress">Stress</h2>'];
  parts.push(`<p class="meta">${o.cpus} CPUs · ${o.seconds} s · maps ${e(o.maps.join(', '))} · alloc ${e(o.alloc.join(', '))} · NMI ${o.nmiRate}/s · IRQ ${o.irqRate}/s per CPU · mix update=${o.mix.update}, delete=${o.mix.delete}, lookup=${o.mix.lookup}${o.preemptRt ? ' · PREEMPT_RT' : ''}${o.faults.length > 0 ? ` · <span class="tbad">faults: ${e(o.faults.join(', '))}</span>` : ''} · seed <code>${o.seed}</code></p>`);
  if (s.interrupted) parts.push(`<p class="tbad" id="stress-interrupted">Interrupted (Ctrl-C): partial run — ${e(stressCoverage(s))}. Every figure below covers only what ran.</p>`);
  parts.push(`<p>${formatCount(t.ops)} operations in ${formatMs(s.measuredMs)} measured, ${formatRate(t.opsPerSec)} · errors: ${e(formatErrors(t.errors))} · recursion misses ${formatCount(t.recursionMisses)} · splats ${t.splats} · grace periods ${formatCount(t.gracePeriods)}</p>`);
  parts.push(`<p class="meta">Whole round ${formatMs(s.elapsedMs)}: ${e(formatPhases(s))}.</p>`);
  const unknown = IRQ_KINDS_SHOWN.some((k) => t.interrupts[k].requested === null || t.interrupts[k].coalesced === null);
  const cnt = (v: number | null): string => (v === null ? '<span class="nodata">not counted</span>' : formatCount(v));
  parts.push('<h3 id="stress-interrupts">Interrupts</h3>', table(
    ['kind', 'requested', 'delivered', 'coalesced'],
    [...IRQ_KINDS_SHOWN.map((k) => [IRQ_LABEL[k], cnt(t.interrupts[k].requested), formatCount(t.interrupts[k].delivered), cnt(t.interrupts[k].coalesced)]),
      ['irq_work', '', formatCount(t.interrupts.irqWork), '']],
    [1, 2, 3],
  ) + '<p class="meta">Requested: raised by random injection and perf_event sampling; delivered: handled by a CPU; coalesced: raised while one was already pending or while the CPU could not take it (merged, as hardware does).'
    + `${unknown ? ' "Not counted": this runtime does not count that figure.' : ''}</p>`);
  parts.push('<h3>Cells</h3>', table(
    ['map', 'alloc', 'status', 'ops', 'ops/s', 'EBUSY', 'ENOMEM', 'other errors', 'recursion misses'],
    s.cells.map((c) => (c.status === 'ran'
      ? [e(c.workload === 'timers' || c.workload === 'graph' ? `${c.map} +${c.workload}` : c.map), e(c.alloc), 'ran', formatCount(c.ops), formatRate(c.opsPerSec), formatCount(c.errors.EBUSY ?? 0),
        formatCount(c.errors.ENOMEM ?? 0), e(formatErrors(c.errors, ['EBUSY', 'ENOMEM'])), formatCount(c.recursionMisses)]
      : [e(c.workload === 'timers' || c.workload === 'graph' ? `${c.map} +${c.workload}` : c.map), e(c.alloc), `<span class="nodata">skipped: ${e(c.skipReason ?? '')}</span>`, '', '', '', '', '', ''])), [3, 4, 5, 6, 8]));
  parts.push(checkHtml(s));
  parts.push('<h3>Invariants</h3>', table(
    ['check', 'scope', 'result', 'details'],
    s.invariants.map((i) => [e(i.name), e(i.scope), okCell(i.ok), i.details.map((d) => `<div class="mono">${e(d)}</div>`).join('')]),
  ));
  parts.push('<h3>Leak check after teardown</h3>', `<p>${okCell(s.leak.ok)} · slab in use before the first map: ${formatBytes(s.leak.startBytes)}; after teardown: ${formatBytes(s.leak.endBytes)} (${s.leak.leakedBytes >= 0 ? '+' : ''}${s.leak.leakedBytes} bytes)</p>`
    + s.leak.details.map((d) => `<div class="mono">${e(d)}</div>`).join(''));
  parts.push(`<h3>Splats (${s.splats.length})</h3>`);
  parts.push(s.splats.length === 0 ? '<p>None.</p>' : splatTable(s.splats));
  return parts.join('\n');
}

/**
 * stress --check: per cell, the operations checked, partitions, illegal and unknown ones, the
 * kernel properties seen (named with the kernel function responsible, counted apart from
 * violations), and for an illegal cell its shortest window drawn as Porcupine draws one.
 */
function checkHtml(s: NonNullable<Results['stress']>): string {
  const cells = s.cells.filter((c) => c.check !== undefined);
  if (cells.length === 0) return '';
  const name = (c: (typeof cells)[number]): string => (c.workload === 'timers' || c.workload === 'graph' ? `${c.map} +${c.workload}` : c.map);
  const parts = ['<h3 id="stress-check">Linearizability (stress --check)</h3>', table(
    ['map', 'alloc', 'result', 'ops checked', 'partitions', 'illegal', 'unknown', 'kernel properties (not violations)'],
    cells.map((c) => {
      const k = c.check!;
      const kp = Object.entries(k.kernelProperties).map(([n, v]) => `${e(n)}: ${formatCount(v)}`).join('<br>');
      const res = k.result === 'ok' ? okCell(true) : k.result === 'illegal' ? okCell(false) : `<span class="nodata">${e(k.result)}</span>`;
      return [e(name(c)), e(c.alloc), res, formatCount(k.ops), formatCount(k.partitions), formatCount(k.illegal), formatCount(k.unknown), kp === '' ? '—' : kp];
    }),
    [3, 4, 5, 6],
  )];
  for (const c of cells) {
    const tl = c.check!.timeline;
    if (tl === undefined) continue;
    parts.push(`<h4>${e(name(c))} / ${e(c.alloc)}: ${e(tl.title)}</h4>`, `<div class="timeline">${renderTimeline(tl)}</div>`,
      '<p class="meta">One row per CPU, a bar per operation from call to return. Blue bars are the longest legal order the checker found, numbered; the red one cannot follow it at any point; hover a bar for the operation and the model state after it.</p>');
  }
  return parts.join('\n');
}

function splatTable(list: NonNullable<Results['stress']>['splats']): string {
  return table(['kind', 'CPU', 'context', 'site', 'held locks', 'message'],
    list.map((sp) => [e(sp.kind), String(sp.cpu), e(sp.context), `<code>${e(sp.site)}</code>`, e(sp.heldLocks.join(', ')), e(sp.message)]));
}

function benchHtml(r: Results): string {
  const b = r.bench;
  if (b === null) return '';
  const warn = b.machine.busy ? `<p class="tbad">The machine was busy during this run: ${e(b.machine.warnings.join('; '))}. Absolute figures are less trustworthy; ratios hold up better (their rounds interleave): read their spreads.</p>` : '';
  return ['<h2 id="bench">Benchmarks</h2>',
    `<p class="meta">${e(environmentLine(r.environment))} · medians of ${b.rounds} round(s) × ${b.seconds} s · up to ${b.cpus} CPUs · ratios against a baseline measured in the same run, with the min–max of the per-round ratios ("no difference": that spread includes 1.0×)</p>`,
    `<p class="meta">${e(formatMachineLine(b.machine))}</p>`, warn,
    table(['bench', 'case', 'median', 'min – max', 'baseline', 'ratio (min–max)', 'vs baseline', 'target', 'memory avg / peak'],
      b.figures.map((f) => {
        const base = f.baseline === f.id;
        const unit = f.unit ?? 'ops/s';
        return [e(f.bench), e(f.label), formatValue(f.median, unit), `${formatValue(f.min, unit)} – ${formatValue(f.max, unit)}`,
          base ? '(baseline)' : e(f.baselineLabel), base ? '1×' : formatRatioSpread(f), e(differenceWord(f)),
          f.target === null ? '' : `≥ ${f.target}× ${okCell(f.meetsTarget === true)}`,
          f.memory === null ? '' : `${formatBytes(f.memory.avgBytes)} / ${formatBytes(f.memory.peakBytes)}`];
      }), [2, 3, 5]),
    b.skipped.length > 0 ? `<p class="nodata">Not measured: ${b.skipped.map((x) => `${e(x.id)} (${e(x.reason)})`).join('; ')}</p>` : ''].join('\n');
}

function scenariosHtml(r: Results): string {
  const list = r.scenarios;
  if (list === null) return '';
  const parts = ['<h2 id="scenarios">Scenarios</h2>', table(['scenario', 'seed', 'verdict', 'expected', 'observed'],
    list.map((s) => [`<a href="#sc-${e(s.name)}">${e(s.name)}</a>`, e(s.seed), okCell(s.verdict.ok), e(s.verdict.expected), e(s.verdict.observed)]))];
  for (const s of list) {
    parts.push(`<details id="sc-${e(s.name)}"><summary><b>${e(s.name)}</b> — ${e(s.title)} (${formatMs(s.elapsedMs)})</summary>`
      + table(['#', 'CPU', 'context', 'what happened'], s.events.map((ev, i) => [String(i + 1), String(ev.cpu), e(ev.context), e(ev.what)]))
      + (s.splats.length > 0 ? `<p>Splats raised (the verdict says whether they were expected):</p>${splatTable(s.splats)}` : '')
      + '</details>');
  }
  return parts.join('\n');
}

export interface ReportOptions {
  /** Override the inlined Chart.js (tests). */
  readonly chartJs?: { source: string; version: string };
}

/** The whole report page for a results document. */
export function renderReport(r: Results, o: ReportOptions = {}): string {
  const lib = o.chartJs ?? chartJsSource();
  const charts = buildCharts(r);
  const specs = charts.filter(isChartSpec).map((c) => ({ id: c.id, format: c.format, config: c.config }));
  const v = r.verdict;
  const word = v.interrupted ? 'INTERRUPTED' : v.ok ? 'PASS' : 'FAIL';
  // a missed benchmark target does not fail a run, but the badge never shows PASS without saying so
  const missed = (r.bench?.figures ?? []).filter((f) => f.meetsTarget === false).length;
  const missedText = missed > 0 ? `${missed} benchmark target${missed > 1 ? 's' : ''} missed` : '';
  const busy = r.bench?.machine?.busy === true;
  const badges = `<span class="badge ${v.interrupted ? 'warn' : v.ok ? 'ok' : 'bad'}">${word}</span>`
    + (missed > 0 ? ` <span class="badge warn">${e(missedText)}</span>` : '')
    + (busy ? ' <span class="badge warn">machine busy</span>' : '');
  const title = `bpfsim ${r.command} — ${word}${missed > 0 ? ` (${missedText})` : ''}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${e(title)}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>bpfsim ${e(r.command)} ${badges}</h1>
${v.interrupted ? '<p class="tbad">Interrupted with Ctrl-C: a partial run. Everything below covers only what ran before the interrupt.</p>' : ''}
<p class="meta">${e(r.startedAt)} · ${formatMs(r.durationMs)} · ${r.cpus} simulated CPUs${r.preemptRt ? ' · PREEMPT_RT' : ''} · seed <code>${r.seed}</code> · exit code ${v.exitCode}</p>
<p class="meta">${e(environmentLine(r.environment))} · bpfsim ${e(r.tool.version)}</p>
<p class="meta mono">$ bpfsim ${e(r.argv.join(' '))}</p>
${v.failures.length > 0 ? `<h2>Failures</h2><ul class="failures">${v.failures.map((f) => `<li>${e(f)}</li>`).join('')}</ul>` : ''}
</header>
<main>
<h2 id="charts">Charts</h2>
<div class="charts">
${charts.map(chartBlock).join('\n')}
</div>
${stressHtml(r)}
${benchHtml(r)}
${scenariosHtml(r)}
</main>
<footer>Generated by bpfsim ${e(r.tool.version)} from results.json (schema ${e(r.schema)}). Charts drawn with Chart.js ${e(lib.version)} (MIT License), embedded in this file; the page makes no network requests.</footer>
<script type="application/json" id="bpfsim-charts">${jsonForScript(specs)}</script>
<script>${escapeScript(lib.source)}</script>
<script>${escapeScript(CLIENT)}</script>
</body>
</html>
`;
}
