/*
 * graph.bench.ts — how fast are BPF rbtrees and lists under bpf_spin_lock here, against what a
 * Node user would build, measured in the same run (the `bpfsim bench graph` cases, defined in
 * src/bench/cases.ts; programs src/cli/programs/bench_graph.ts and bench_graph_js.ts):
 *
 *  - rbtree: bpf_obj_new, then under the value's bpf_spin_lock bpf_rbtree_add (a key spread over the
 *    queue) + bpf_rbtree_first + bpf_rbtree_remove, then bpf_obj_drop; the tree holds 256 nodes.
 *    Baseline: a JS sorted array of 256 keys, binary-search insert + shift, behind an Atomics lock.
 *  - list: bpf_obj_new, push_back + pop_back under the lock, bpf_obj_drop. Baseline: JS array
 *    push + pop behind an Atomics lock.
 * At 1, 2, 4 … CPUs, "own lock" (each CPU its own map value; each JS thread its own Array and lock
 * word) and "shared lock" (all CPUs on one value; the JS threads on one SharedArrayBuffer-backed
 * array and one lock word). Figures: pairs per second, all CPUs together; median of the rounds,
 * min – max, ratio to the JS baseline of the same operation, mode and CPU count.
 *
 *   npm run build && node dist/bench/graph.bench.js [--cpus 4] [--rounds 5] [--seconds 0.5] [--json]
 */
import { runSuiteMain, textTable } from './bench_main.js';
import { formatRate, formatRatio, type BenchFigure } from '../src/bench/harness.js';

interface Row { readonly op: string; readonly mode: string; readonly cpus: number; readonly bpf: BenchFigure; readonly js: BenchFigure }

function rows(figures: readonly BenchFigure[]): Row[] {
  const out: Row[] = [];
  for (const f of figures) {
    const m = /^graph\/(rbtree|list)\/(own|shared)\/(\d+)$/.exec(f.id);
    const js = figures.find((x) => x.id === f.baseline);
    if (m !== null && js !== undefined) out.push({ op: m[1]!, mode: m[2]!, cpus: Number(m[3]), bpf: f, js });
  }
  return out.sort((a, b) => a.op.localeCompare(b.op) || a.mode.localeCompare(b.mode) || a.cpus - b.cpus);
}

const spread = (f: BenchFigure): string => formatRate(f.max - f.min).replace('/s', '');

function summary(figures: readonly BenchFigure[]): string {
  const r = rows(figures);
  return `\npairs/s, all CPUs (median ± spread = max − min of the rounds)\n${textTable(
    ['operation', 'lock', 'CPUs', 'bpfsim', '± spread', 'JS baseline', '± spread', 'ratio'],
    r.map((x) => [x.op, x.mode, String(x.cpus), formatRate(x.bpf.median), spread(x.bpf), formatRate(x.js.median), spread(x.js), formatRatio(x.bpf.ratio)]),
  )}`;
}

await runSuiteMain({
  name: 'graph',
  title: 'bpfsim graph (rbtree add+remove, list push+pop under bpf_spin_lock vs JS arrays behind an Atomics lock)',
  cpus: 4,
  maps: ['array'],
  alloc: ['prealloc'],
  rounds: 5,
  seconds: 0.5,
  summary,
  summaryJson: (f) => rows(f).map((x) => ({
    op: x.op, lock: x.mode, cpus: x.cpus, bpfMedian: x.bpf.median, bpfSpread: x.bpf.max - x.bpf.min,
    jsMedian: x.js.median, jsSpread: x.js.max - x.js.min, ratio: x.bpf.ratio,
  })),
});
