/*
 * charts.ts — which charts the report shows, built from a results document as plain Chart.js
 * configurations (JSON only: no functions, so they embed as data). The page's small client script
 * (html.ts) adds tick/tooltip formatters by name and calls `new Chart(canvas, config)`.
 *
 * Charts and their data:
 *  - throughput     every bench figure in ops/s with a CPU count: ops/s against CPUs (threads for the
 *                   JS baselines), one line per benchmark, map type, allocation mode and operation,
 *                   labelled in words ("hash map, preallocated — lookups, all CPUs (scaling)")
 *  - cache-<i>      stress caches: per-CPU bpf_mem_alloc free_cnt over time with low/high watermarks
 *  - gp             stress grace-period duration histogram (as the RCU coordinator recorded them)
 *  - memory         stress timeline: kernel memory in use (and ops/s) over time
 *  - timer-latency  bench timerLatency (`bpfsim bench timers`): p50/p90/p99 of how late bpf timer
 *                   callbacks ran after their requested expiry, next to setTimeout and a bare
 *                   Atomics.waitAsync wake measured in the same run
 *  - bench-ratio    every non-baseline bench figure: ratio to its same-run baseline (bars, full width),
 *                   with the min–max of the per-round ratios as a floating bar beside it
 * A chart whose data is absent in this run is replaced by a note saying which command fills it.
 */
import type { ChartConfiguration } from 'chart.js';
import type { Results } from '../results.js';

export type Fmt = 'rate' | 'bytes' | 'ms' | 'count' | 'ratio' | 'seconds';

export interface ChartSpec {
  readonly id: string;
  readonly title: string;
  readonly caption: string;
  readonly config: ChartConfiguration;
  /** Formatter per scale id, applied by the client script. */
  readonly format: Readonly<Record<string, Fmt>>;
  readonly height: number;
  /** Span the whole row of the chart grid. */
  readonly wide?: boolean;
}

export interface ChartNote {
  readonly id: string;
  readonly title: string;
  readonly note: string;
}

const PALETTE = [
  '#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f',
  '#bcbd22', '#393b79', '#637939',
];
export function color(i: number): string { return PALETTE[i % PALETTE.length]!; }

const ALLOC_DASH: Readonly<Record<string, number[]>> = { prealloc: [], bpf_mem_alloc: [6, 3], kmalloc: [2, 2] };

function baseOptions(xTitle: string, yTitle: string, xType: 'linear' | 'category' = 'linear'): NonNullable<ChartConfiguration['options']> {
  return {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    interaction: { mode: 'nearest', intersect: false },
    plugins: { legend: { position: 'bottom', labels: { usePointStyle: true, pointStyle: 'line' } } },
    scales: {
      x: { type: xType, title: { display: true, text: xTitle } },
      y: { type: 'linear', beginAtZero: true, title: { display: true, text: yTitle } },
    },
  };
}

const MAP_WORDS: Readonly<Record<string, string>> = {
  hash: 'hash map', percpu_hash: 'per-CPU hash map', lru_hash: 'LRU hash map', lru_percpu_hash: 'per-CPU LRU hash map',
  array: 'array map', percpu_array: 'per-CPU array map', hash_of_maps: 'hash of maps', array_of_maps: 'array of maps',
  js_map: 'JS Map (one per worker)', js: 'plain JS', sharedmap: 'sharedmap (npm, one shared map)',
};
const ALLOC_WORDS: Readonly<Record<string, string>> = {
  prealloc: 'preallocated', bpf_mem_alloc: 'dynamic (bpf_mem_alloc)', kmalloc: 'dynamic (legacy kmalloc)', js: 'plain JS',
};
/** What a benchmark's figure counts, in words. */
function whatWords(bench: string, op: string, workload: string): string {
  switch (bench) {
    case 'map_perf': return `${op === 'lookup' ? 'lookups' : 'update + lookup + delete events'} per CPU, ${workload || 'helper'} path (map_perf)`;
    case 'scaling': return 'lookups, all CPUs (scaling)';
    case 'baselines': return `${op === 'update' ? 'overwrite updates' : 'lookups'}, all CPUs or threads (baselines)`;
    case 'oversub': return 'update/delete/lookup mix, all CPUs (oversub)';
    case 'htab_mem': return `${workload} ops per producer (htab_mem)`;
    case 'lookup': return `${op === 'update' ? 'updates' : 'lookups'} (lookup)`;
    case 'timers': return 'timer arm + cancel pairs per CPU (timers)';
    case 'graph': return `${op} pairs, ${workload.replace('_', ' ')} (graph)`;
    default: return bench;
  }
}

/** A series' label: map type and allocation mode in words, then what was counted. */
export function seriesLabel(bench: string, tags: Readonly<Record<string, string | number>>): string {
  const map = String(tags.map ?? '');
  const alloc = String(tags.alloc ?? '');
  const flags = tags.flags !== undefined ? `, ${String(tags.flags)}` : '';
  const who = MAP_WORDS[map] ?? (map || 'map');
  const how = ALLOC_WORDS[alloc] ?? alloc;
  return `${who}${how !== '' && how !== who ? `, ${how}` : ''}${flags} — ${whatWords(bench, String(tags.op ?? ''), String(tags.workload ?? ''))}`;
}

const JS_DASH = [8, 3, 2, 3];

function throughputChart(r: Results): ChartSpec | ChartNote {
  const id = 'chart-throughput';
  const title = 'Throughput against CPUs, per map type and allocation mode';
  const figs = (r.bench?.figures ?? []).filter((f) => (f.unit ?? 'ops/s') === 'ops/s' && typeof f.tags.cpus === 'number');
  if (figs.length === 0) return { id, title, note: 'No scaling figures in this run, nor any other throughput measured against CPUs — run `bpfsim bench` (or `bpfsim demo`).' };
  const groups = new Map<string, { alloc: string; points: { x: number; y: number }[] }>();
  for (const f of figs) {
    const key = seriesLabel(f.bench, f.tags);
    const g = groups.get(key) ?? { alloc: String(f.tags.alloc ?? ''), points: [] };
    g.points.push({ x: f.tags.cpus as number, y: f.median });
    groups.set(key, g);
  }
  const datasets = [...groups.entries()].map(([label, g], i) => ({
    label,
    data: g.points.sort((a, b) => a.x - b.x),
    borderColor: color(i),
    backgroundColor: color(i),
    borderDash: g.alloc === 'js' ? JS_DASH : ALLOC_DASH[g.alloc] ?? [],
    tension: 0,
  }));
  const ys = figs.map((f) => f.median).filter((v) => v > 0);
  const log = ys.length > 0 && Math.max(...ys) / Math.min(...ys) > 50;
  const options = baseOptions('simulated CPUs (threads for the JS baselines)', `ops/s (median${log ? ', logarithmic' : ''})`);
  (options.scales!.x as { ticks?: object }).ticks = { stepSize: 1 };
  if (log) options.scales!.y = { type: 'logarithmic', title: { display: true, text: 'ops/s (median, logarithmic)' } };
  return {
    id, title, height: Math.max(360, 260 + 18 * datasets.length), format: { y: 'rate', x: 'count' }, wide: datasets.length > 8,
    caption: 'Median ops/s over rounds of every series measured in this run. Solid: preallocated; dashed: bpf_mem_alloc; dotted: kmalloc (legacy dynamic); '
      + 'dash-dot: plain JS baselines (a JS Map per worker, sharedmap). Per-CPU figures (map_perf, htab_mem, timers) count one CPU; the others all CPUs together.',
    config: { type: 'line', data: { datasets }, options },
  };
}

function ratioChart(r: Results): ChartSpec | ChartNote {
  const id = 'chart-bench-ratio';
  const title = 'Benchmark figures against their same-run baselines';
  const figs = (r.bench?.figures ?? []).filter((f) => f.baseline !== f.id);
  if (figs.length === 0) return { id, title, note: 'No benchmark figures in this run — run `bpfsim bench`.' };
  const labels = figs.map((f) => `${f.bench}: ${f.label}  ÷  ${f.baselineLabel}${f.noDifference === true ? '  (no difference)' : ''}`);
  const datasets: ChartConfiguration<'bar'>['data']['datasets'] = [{
    label: 'ratio (median / baseline median)',
    data: figs.map((f) => f.ratio),
    backgroundColor: figs.map((f) => (f.meetsTarget === false ? '#d62728' : f.noDifference === true ? '#8c8c8c' : '#1f77b4')),
  }, {
    label: 'spread: min – max of the per-round ratios',
    data: figs.map((f) => [f.ratioMin ?? f.ratio, f.ratioMax ?? f.ratio] as unknown as number),
    backgroundColor: '#9ecae1',
  }];
  const targets = figs.map((f) => f.target);
  if (targets.some((t) => t !== null)) {
    datasets.push({ label: 'target (minimum)', data: targets.map((t) => t ?? 0), backgroundColor: '#bbbbbb' });
  }
  const options = baseOptions('ratio', '', 'linear');
  return {
    id, title, height: Math.max(220, 24 * figs.length + 90), format: { x: 'ratio' }, wide: true,
    caption: 'Each bar is a median divided by the median of its baseline measured in the same run, with the min–max of the per-round ratios (same round: both measured under the same load) beside it; red = below the design target; grey = no difference (the spread includes 1×).',
    config: {
      type: 'bar',
      data: { labels, datasets },
      options: { ...options, plugins: { legend: { position: 'bottom' } }, indexAxis: 'y', scales: { x: { type: 'linear', beginAtZero: true, title: { display: true, text: 'ratio' } }, y: { type: 'category' } } },
    },
  };
}

function cacheCharts(r: Results): (ChartSpec | ChartNote)[] {
  const caches = r.stress?.caches ?? [];
  if (caches.length === 0) {
    return [{ id: 'chart-cache-0', title: 'bpf_mem_alloc per-CPU cache level over time', note: 'No bpf_mem_alloc caches were sampled — run `bpfsim stress --alloc bpf_mem_alloc`.' }];
  }
  const byCache = new Map<string, typeof caches[number][]>();
  for (const c of caches) byCache.set(c.cache, [...(byCache.get(c.cache) ?? []), c]);
  let i = 0;
  return [...byCache.entries()].map(([cache, series]) => {
    const tMax = Math.max(...series.flatMap((s) => s.points.map((p) => p[0])), 1) / 1000;
    const first = series[0]!;
    const datasets: ChartConfiguration<'line'>['data']['datasets'] = series.sort((a, b) => a.cpu - b.cpu).map((s, k) => ({
      label: `CPU ${s.cpu}`,
      data: s.points.map(([t, v]) => ({ x: t / 1000, y: v })),
      borderColor: color(k), backgroundColor: color(k), pointRadius: 0, borderWidth: 1.5, stepped: true,
    }));
    datasets.push(
      { label: `low watermark (${first.low})`, data: [{ x: 0, y: first.low }, { x: tMax, y: first.low }], borderColor: '#888', borderDash: [6, 4], pointRadius: 0, borderWidth: 1 },
      { label: `high watermark (${first.high})`, data: [{ x: 0, y: first.high }, { x: tMax, y: first.high }], borderColor: '#444', borderDash: [6, 4], pointRadius: 0, borderWidth: 1 },
    );
    return {
      id: `chart-cache-${i++}`,
      title: `bpf_mem_alloc cache level over time — ${cache} (unit ${first.unitSize} B)`,
      caption: 'free_cnt of each CPU\'s cache. Below the low watermark irq_work refills a batch; above the high one it frees down to the middle.',
      height: 300, format: { x: 'seconds', y: 'count' },
      config: { type: 'line', data: { datasets }, options: baseOptions('measured time (s)', 'free objects in cache') },
    };
  });
}

/** Histogram bins for latency samples: ~24 equal bins up to the 99th percentile, then one overflow bin. */
export function histogram(samples: readonly number[], p99: number, max: number): { labels: string[]; counts: number[] } {
  if (samples.length === 0) return { labels: [], counts: [] };
  const top = p99 > 0 ? p99 : max > 0 ? max : 1;
  const nb = 24;
  const w = top / nb;
  const counts = new Array<number>(nb + 1).fill(0);
  for (const s of samples) {
    const b = s >= top ? (s === top ? nb - 1 : nb) : Math.floor(s / w);
    counts[Math.min(b, nb)]! += 1;
  }
  const fmt = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  const labels = counts.map((_, b) => (b < nb ? `${fmt(b * w)}–${fmt((b + 1) * w)}` : `> ${fmt(top)}`));
  if (counts[nb] === 0) { counts.pop(); labels.pop(); }
  return { labels, counts };
}

function gpChart(r: Results): ChartSpec | ChartNote {
  const id = 'chart-gp';
  const title = 'Grace-period latency distribution';
  const g = r.stress?.gpLatency;
  if (g === undefined || g.count === 0) return { id, title, note: 'No grace periods were measured — run `bpfsim stress`.' };
  const h = histogram(g.samplesMs, g.p99Ms, g.maxMs);
  return {
    id, title, height: 300, format: { y: 'count' },
    caption: `Grace-period durations (start to end, as the RCU coordinator recorded them): ${g.count} grace periods, p50 ${g.p50Ms.toFixed(2)} ms, p90 ${g.p90Ms.toFixed(2)} ms, p99 ${g.p99Ms.toFixed(2)} ms, max ${g.maxMs.toFixed(2)} ms.`,
    config: {
      type: 'bar',
      data: { labels: h.labels, datasets: [{ label: 'grace periods', data: h.counts, backgroundColor: '#2ca02c' }] },
      options: { ...baseOptions('latency (ms)', 'count', 'category'), plugins: { legend: { display: false } } },
    },
  };
}

function memoryChart(r: Results): ChartSpec | ChartNote {
  const id = 'chart-memory';
  const title = 'Kernel memory in use over time';
  const tl = r.stress?.timeline ?? [];
  if (tl.length === 0) return { id, title, note: 'No timeline in this run — run `bpfsim stress`.' };
  const options = baseOptions('measured time (s)', 'bytes in use');
  options.scales!.y1 = { type: 'linear', position: 'right', beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: 'ops/s' } };
  return {
    id, title, height: 300, format: { x: 'seconds', y: 'bytes', y1: 'rate' },
    caption: 'Slab bytes in use (left) and workload throughput (right), sampled during the stress run.',
    config: {
      type: 'line',
      data: {
        datasets: [
          { label: 'memory in use', data: tl.map((t) => ({ x: t.tMs / 1000, y: t.memoryBytes })), borderColor: color(0), backgroundColor: color(0), pointRadius: 0, yAxisID: 'y' },
          { label: 'ops/s', data: tl.map((t) => ({ x: t.tMs / 1000, y: t.opsPerSec })), borderColor: color(3), backgroundColor: color(3), pointRadius: 0, borderDash: [4, 3], yAxisID: 'y1' },
        ],
      },
      options,
    },
  };
}

function timerLatencyChart(r: Results): ChartSpec | ChartNote {
  const id = 'chart-timer-latency';
  const title = 'Timer fire latency';
  const rows = r.bench?.timerLatency ?? [];
  if (rows.length === 0) return { id, title, note: 'No timer latency in this run — run `bpfsim bench timers`.' };
  const labels = ['p50', 'p90', 'p99'];
  return {
    id, title, height: 300, format: { y: 'ms' },
    caption: `How late after the requested expiry each series ran (real clock): ${rows.map((x) => `${x.label}: ${x.count} samples, p50 ${(x.p50Ms * 1000).toFixed(0)} us, p99 ${(x.p99Ms * 1000).toFixed(0)} us, max ${(x.maxMs * 1000).toFixed(0)} us`).join('; ')}.`,
    config: {
      type: 'bar',
      data: { labels, datasets: rows.map((x, i) => ({ label: x.label, data: [x.p50Ms, x.p90Ms, x.p99Ms], backgroundColor: color(i) })) },
      options: baseOptions('percentile', 'lateness (ms)', 'category'),
    },
  };
}

/** Every chart of the report, in page order. */
export function buildCharts(r: Results): (ChartSpec | ChartNote)[] {
  return [throughputChart(r), ...cacheCharts(r), gpChart(r), memoryChart(r), timerLatencyChart(r), ratioChart(r)];
}

export function isChartSpec(c: ChartSpec | ChartNote): c is ChartSpec {
  return 'config' in c;
}
