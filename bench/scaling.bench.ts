/*
 * scaling.bench.ts — do lookups scale with CPUs? A preallocated hash map of 100k entries (key
 * 4 B, value 8 B) shared by every CPU; each CPU walks the keys with a fixed stride, 64 lookups
 * per program run, on 1, 2, 4 and 8 CPUs (4 and 8 are oversubscribed on this 2-core machine:
 * the ideal there is the 2-CPU figure). Baselines in the same run: the 1-CPU figure (target:
 * 2 CPUs ≥ 1.8×), and a plain JS Map per worker thread doing the same walk over its own 100k
 * keys on 1, 2, 4, 8 threads, scaled the same way.
 *
 * `sharedmap` (npm) is measured by baselines.bench.ts (`bpfsim bench baselines`), with the same
 * walk over the same number of keys.
 *
 * Same cases as `bpfsim bench scaling --cpus 8 --maps hash` (definitions in src/bench/cases.ts).
 *
 *   npm run build && node dist/bench/scaling.bench.js [--cpus 8] [--maps hash,array] [--rounds 5] [--seconds 0.5] [--json]
 */
import { runSuiteMain, medianOf, textTable } from './bench_main.js';
import { formatRate, formatRatio, type BenchFigure } from '../src/bench/harness.js';

/** scaling/<map>/prealloc/<cpus> or scaling/js_map/<cpus> */
function parts(id: string): { map: string; cpus: number } {
  const s = id.split('/');
  return { map: s[1] ?? '', cpus: Number(s[s.length - 1]) };
}

function order(a: BenchFigure, b: BenchFigure): number {
  const x = parts(a.id), y = parts(b.id);
  const rank = (m: string): number => (m === 'js_map' ? 1 : 0);
  return rank(x.map) - rank(y.map) || x.map.localeCompare(y.map) || x.cpus - y.cpus;
}

interface Row { map: string; cpus: number; opsPerSec: number; vs1: number; js: number | null; jsVs1: number | null; vsJs: number | null }

function rows(figures: readonly BenchFigure[]): Row[] {
  const out: Row[] = [];
  for (const f of figures) {
    const p = parts(f.id);
    if (p.map === 'js_map') continue;
    const js = medianOf(figures, `scaling/js_map/${p.cpus}`) ?? null;
    const js1 = medianOf(figures, 'scaling/js_map/1') ?? null;
    out.push({
      map: p.map, cpus: p.cpus, opsPerSec: f.median, vs1: f.ratio, js,
      jsVs1: js !== null && js1 !== null ? js / js1 : null, vsJs: js !== null ? f.median / js : null,
    });
  }
  return out;
}

function summary(figures: readonly BenchFigure[]): string {
  const rs = rows(figures);
  const t = textTable(
    ['lookups, all CPUs together', 'CPUs', 'bpfsim', 'vs 1 CPU', 'JS Map per worker', 'vs 1 thread', 'bpfsim / JS'],
    rs.map((r) => [`${r.map} (prealloc, 100k keys)`, String(r.cpus), formatRate(r.opsPerSec), formatRatio(r.vs1),
      r.js === null ? '–' : formatRate(r.js), r.jsVs1 === null ? '–' : formatRatio(r.jsVs1), r.vsJs === null ? '–' : formatRatio(r.vsJs)]),
  );
  return `\nsummary (medians of the same run; target 2 CPUs ≥ 1.8× of 1 CPU)\n${t}\n`
    + 'sharedmap (npm): see `node dist/bench/baselines.bench.js` (bpfsim bench baselines).';
}

await runSuiteMain({
  name: 'scaling',
  title: 'bpfsim scaling (hash lookups on 1..N CPUs vs a JS Map per worker)',
  cpus: 8,
  maps: ['hash'],
  alloc: ['prealloc'],
  rounds: 5,
  seconds: 0.5,
  order,
  summary,
  summaryJson: (f) => ({ rows: rows(f), sharedmap: 'measured by baselines.bench.js' }),
});
