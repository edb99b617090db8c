/*
 * map_perf.bench.ts — the kernel's samples/bpf/map_perf_test on bpfsim: per-CPU events/s at 1, 2
 * and 4 CPUs for hash, percpu_hash, lru_hash (common and BPF_F_NO_COMMON_LRU lists) and array
 * lookups; hash and percpu_hash also as BPF_F_NO_PREALLOC maps on bpf_mem_alloc and on the legacy
 * kmalloc path. Every dynamic figure is a ratio against the preallocated map of the same type,
 * path and CPU count, measured in the same run (interleaved rounds, medians).
 *
 *   event (hash types) = update(BPF_ANY, this CPU's key) → lookup → delete; 10 per program run
 *   event (arrays)     = one lookup of key 1; 64 per program run
 *   path 'helper'      map helpers inside a program (what map_perf_test's kprobe programs do)
 *   path 'syscall'     bpf(2) map commands from a task-context workload (ctx.sys.*)
 * The kernel prints program runs (syscalls) per second: its "events per sec" = our events / 10.
 *
 * Same cases as `bpfsim bench map_perf --cpus 4 --maps hash,percpu_hash,lru_hash,array`
 * (definitions in src/bench/cases.ts). Dynamic cases the library cannot create yet are listed as
 * skipped with the reason.
 *
 *   npm run build && node dist/bench/map_perf.bench.js [--rounds 5] [--seconds 0.5] [--cpus 4] [--json]
 */
import { runSuiteMain, medianOf, textTable } from './bench_main.js';
import { formatRate, formatRatio, type BenchFigure } from '../src/bench/harness.js';

const VARIANTS = ['hash', 'percpu_hash', 'lru_hash', 'lru_hash_nocommon', 'lru_percpu_hash', 'lru_percpu_hash_nocommon', 'array', 'percpu_array'];
const ALLOCS = ['prealloc', 'bpf_mem_alloc', 'kmalloc'];
const PATHS = ['helper', 'syscall'];

/** map_perf/<variant>/<alloc>/<path>/<cpus> */
function parts(id: string): { variant: string; alloc: string; path: string; cpus: number } {
  const [, variant = '', alloc = '', path = '', cpus = '0'] = id.split('/');
  return { variant, alloc, path, cpus: Number(cpus) };
}

function order(a: BenchFigure, b: BenchFigure): number {
  const x = parts(a.id), y = parts(b.id);
  return VARIANTS.indexOf(x.variant) - VARIANTS.indexOf(y.variant) || PATHS.indexOf(x.path) - PATHS.indexOf(y.path)
    || x.cpus - y.cpus || ALLOCS.indexOf(x.alloc) - ALLOCS.indexOf(y.alloc);
}

interface Row { variant: string; path: string; cpus: number; prealloc?: number; bpfMemAlloc?: number; kmalloc?: number }

function rows(figures: readonly BenchFigure[]): Row[] {
  const out: Row[] = [];
  for (const f of figures) {
    const p = parts(f.id);
    if (p.alloc !== 'prealloc') continue;
    const at = (alloc: string): number | undefined => medianOf(figures, `map_perf/${p.variant}/${alloc}/${p.path}/${p.cpus}`);
    const r: Row = { variant: p.variant, path: p.path, cpus: p.cpus, prealloc: f.median };
    const b = at('bpf_mem_alloc'), k = at('kmalloc');
    if (b !== undefined) r.bpfMemAlloc = b;
    if (k !== undefined) r.kmalloc = k;
    out.push(r);
  }
  return out;
}

function summary(figures: readonly BenchFigure[]): string {
  const rs = rows(figures);
  const cell = (v: number | undefined, base: number | undefined): string =>
    v === undefined ? '–' : base === undefined ? formatRate(v) : `${formatRate(v)} (${formatRatio(v / base)})`;
  const table = textTable(
    ['per-CPU events/s', 'CPUs', 'prealloc (baseline)', 'bpf_mem_alloc', 'kmalloc', 'kernel-unit runs/s (prealloc)'],
    rs.map((r) => [`${r.variant} · ${r.path}`, String(r.cpus), cell(r.prealloc, undefined), cell(r.bpfMemAlloc, r.prealloc), cell(r.kmalloc, r.prealloc),
      r.variant.includes('array') ? '–' : formatRate((r.prealloc ?? 0) / 10)]),
  );
  // per-CPU rate as CPUs are added (2 cores: 4 CPUs are oversubscribed, so ≈ 0.5× there is ideal)
  const scale: string[] = [];
  for (const r of rs) {
    if (r.cpus === 1) continue;
    const one = rs.find((x) => x.variant === r.variant && x.path === r.path && x.cpus === 1);
    if (one?.prealloc !== undefined && r.prealloc !== undefined) scale.push(`${r.variant} · ${r.path} ×${r.cpus}: ${formatRatio(r.prealloc / one.prealloc)}`);
  }
  return `\nsummary (medians; ratios against prealloc in the same run; the kernel's map_perf_test prints program runs/s = events / 10)\n${table}`
    + (scale.length > 0 ? `\nper-CPU rate against 1 CPU (prealloc): ${scale.join(' · ')}` : '');
}

await runSuiteMain({
  name: 'map_perf',
  title: 'bpfsim map_perf (samples/bpf/map_perf_test)',
  cpus: 4,
  maps: ['hash', 'percpu_hash', 'lru_hash', 'array'],
  rounds: 5,
  seconds: 0.5,
  order,
  summary,
  summaryJson: rows,
});
