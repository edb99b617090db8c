/*
 * cmd_bench.ts — `bpfsim bench [map_perf|htab_mem|lookup|scaling|baselines|boot|oversub|timers|graph|all]`: the engine
 * supplies the measurable cases (simulated maps and their same-run baselines); src/bench/harness.ts runs the
 * interleaved rounds and computes medians and ratios; this file prints the table with the Node
 * version and core count and writes results.json / report.html.
 *
 * Baselines (each measured in the same run): a JS Map for lookup and update, preallocated for the
 * dynamic modes, 1 CPU for scaling, sharedmap for baselines, bare worker threads for boot, 2 CPUs for
 * oversub. Every ratio is printed with the min–max of its per-round ratios and flagged "no
 * difference" when that spread includes 1.0×; the run says whether the machine was busy (load
 * average and a calibration loop at both ends). Missed design targets are shown, not failed: a
 * benchmark on a shared machine is evidence, not a test.
 */
import type { Command, CommandContext } from './command.js';
import { parseCommandLine, parseCpus, parseSeconds, parsePositiveInt, parseMaps, parseAlloc, parseBenchNames } from './args.js';
import { COMMON_HELP, COMMON_OPTIONS, RT_OPTION, commonOptions, finish, humanStream, progressFor, type Common } from './common.js';
import { MAX_CPUS, EXIT_OK, EXIT_SIGINT, defaultCpus } from './limits.js';
import { ALL_BENCH_NAMES, MAP_TYPES, ALLOC_MODES, type BenchRequest, type MapType } from './engine_api.js';
import {
  runRounds, formatFigureTable, benchEnvironment, formatValue, formatRatioSpread, probeLoad,
  machineLoad, machineLoadWarning, formatMachineLine, ratioSpread, median, type BenchCase, type BenchFigure,
} from '../bench/harness.js';
import { timerLatencyRecord, type BenchSection, type TimerLatencyRecord } from './results.js';
import { formatFailures, makeResults } from './output.js';

export const BENCH_DEFAULTS = Object.freeze({ seconds: 1, rounds: 5, seed: 1 });
export const BENCH_DEFAULT_MAPS: readonly MapType[] = ['hash', 'percpu_hash', 'lru_hash', 'array'];

/**
 * After Ctrl-C the harness still measures every case that has no sample yet, once (so every figure
 * keeps its same-run baseline); those measurements are cut to this length, and the figures are
 * listed in bench.shortened.
 */
export const SHORT_ROUND_SECONDS = 0.05;

const OPTIONS = {
  ...COMMON_OPTIONS,
  ...RT_OPTION,
  cpus: { type: 'string' },
  seconds: { type: 'string' },
  rounds: { type: 'string' },
  maps: { type: 'string' },
  alloc: { type: 'string' },
} as const;

const HELP = `Usage: bpfsim bench [${ALL_BENCH_NAMES.join('|')}|all ...] [options]

Measures throughput and reports every figure as a ratio against a baseline measured in the same
run, as the median over interleaved rounds, with the min–max of the per-round ratios ("no
difference" when it includes 1.0×); warns when the machine was busy. Benchmarks (default: all):
  map_perf   update+lookup+delete per event (samples/bpf/map_perf_test): preallocated vs
             bpf_mem_alloc vs kmalloc; baseline: preallocated
  htab_mem   selftests 'htab-mem' overwrite / batch add-del; ops/s and memory; baseline: prealloc
  lookup     hash lookup and update on 1 CPU; baseline: JS Map.get / Map.set
  scaling    ops/s on 1, 2, 4 … CPUs per map type and alloc mode; baseline: 1 CPU
  baselines  lookups and overwrite updates of 100k u32 keys (8-byte values) on 1 and 2 CPUs:
             bpfsim's hash map (prealloc) vs the sharedmap npm package (baseline; target ≥ 20×)
             and a JS Map per worker thread
  boot       Runtime.start of 8 CPUs to ready (ms), vs 8 bare worker threads; breakdown: workers
             that import the CPU module, the arena's SharedArrayBuffer alone
  oversub    a lock-heavy update/delete/lookup mix on 8 CPUs vs 2 CPUs (same runtime; target
             ≥ 0.9× total ops/s)
  timers     bpf_timer arm+cancel pairs per CPU on 1, 2, 4 … CPUs; baseline: setTimeout +
             clearTimeout pairs on the main thread (only when named; fire latency: bench/timers.bench.ts)
  graph      rbtree add+remove and list push+pop under bpf_spin_lock on 1, 2, 4 … CPUs, each CPU
             on its own value and all on one; baseline: a JS sorted array / array behind an
             Atomics lock in as many worker threads (only when named)

Options:
  --cpus N        most CPUs to measure, 1..${MAX_CPUS} (default: this machine's cores)
  --seconds S     length of one measurement (default ${BENCH_DEFAULTS.seconds})
  --rounds N      rounds per case; figures are medians (default ${BENCH_DEFAULTS.rounds})
  --maps LIST     map types for scaling (default ${BENCH_DEFAULT_MAPS.join(',')}; known: ${MAP_TYPES.join(', ')})
  --alloc LIST    allocation modes (default all: ${ALLOC_MODES.join(', ')})
  --rt            PREEMPT_RT semantics
  --seed X        u32 seed (default ${BENCH_DEFAULTS.seed})

${COMMON_HELP}

Exit codes: 0 done (missed targets are shown, not failed) · 2 bad arguments · 3 internal error
            130 interrupted: after the first Ctrl-C every case not yet measured gets one
            ${SHORT_ROUND_SECONDS} s measurement (listed in bench.shortened), then the table and report
            are written as INTERRUPTED; a second Ctrl-C quits at once

Examples:
  bpfsim bench map_perf --seconds 2 --rounds 5
  bpfsim bench --json --seconds 1 > bench.json
`;

export interface BenchRun {
  readonly req: BenchRequest;
  readonly rounds: number;
  readonly seconds: number;
  /** Keep only these cases (their baselines are kept too); the demo's short selection. */
  readonly select?: (c: BenchCase) => boolean;
  /** Length of each case's unrecorded warm-up run. @defaultValue the harness's: min(0.25, seconds) */
  readonly warmupSeconds?: number;
}

/** The cases `select` keeps, plus every baseline they need. */
export function selectCases(cases: readonly BenchCase[], select: ((c: BenchCase) => boolean) | undefined): BenchCase[] {
  if (select === undefined) return [...cases];
  const keep = new Set(cases.filter(select).map((c) => c.id));
  for (const c of cases) if (keep.has(c.id) && c.baseline !== undefined) keep.add(c.baseline);
  return cases.filter((c) => keep.has(c.id));
}

/** Run the suite through the harness with progress; shared with `demo`. */
export async function runBench(run: BenchRun, common: Common, ctx: CommandContext, title: string): Promise<BenchSection> {
  const loadStart = probeLoad();
  const engine = await ctx.engine();
  const suite = await engine.benchSuite(run.req);
  const progress = await progressFor(common, ctx, title);
  const shortened = new Set<string>();
  const aborted = (): boolean => ctx.signal?.aborted === true;
  const cases = selectCases(suite.cases, run.select).map((c) => ({
    ...c,
    run: (seconds: number) => {
      if (!aborted()) return c.run(seconds);
      shortened.add(c.id);
      return c.run(Math.min(seconds, SHORT_ROUND_SECONDS));
    },
  }));
  try {
    const figures = await runRounds(cases, {
      rounds: run.rounds, seconds: run.seconds, ...(run.warmupSeconds !== undefined ? { warmupSeconds: run.warmupSeconds } : {}),
      onRound: (e) => progress.status(`${e.warmup ? 'warm-up' : `round ${e.round}/${e.rounds}`}  ${e.label}: ${formatValue(e.value, e.unit)}`),
      ...(ctx.signal !== undefined ? { signal: ctx.signal } : {}),
    });
    // a figure with a full-length sample from before the interrupt keeps it; only figures whose
    // sole sample is short are listed
    const short = figures.filter((f) => shortened.has(f.id) && f.samples.length === 1).map((f) => f.id);
    await suite.close();
    const machine = machineLoad(loadStart, probeLoad());
    const section: BenchSection = {
      names: [...run.req.names], rounds: run.rounds, seconds: run.seconds, cpus: run.req.cpus, figures,
      skipped: suite.skipped.map((x) => ({ ...x })), interrupted: aborted(), shortened: short, machine,
    };
    if (suite.timerLatency === undefined || aborted()) return section;
    progress.status('timer fire latency (real clock)');
    const lat = await suite.timerLatency();
    return { ...section, timerLatency: lat.map((l) => timerLatencyRecord(l.label, l.samplesMs)) };
  } finally {
    progress.stop();
    await suite.close();
  }
}

function formatLatency(rows: readonly TimerLatencyRecord[]): string {
  const us = (ms: number): string => (ms * 1000).toFixed(0).padStart(8);
  return ['timer fire latency (how late after the requested time), us:', `${'series'.padEnd(52)} samples      p50      p90      p99      max`,
    ...rows.map((r) => `${r.label.padEnd(52)} ${String(r.count).padStart(7)} ${us(r.p50Ms)} ${us(r.p90Ms)} ${us(r.p99Ms)} ${us(r.maxMs)}`)].join('\n');
}

const byId = (figs: readonly BenchFigure[], id: string): BenchFigure | undefined => figs.find((f) => f.id === id);

/** "25.3× (21.0–27.9)", with " no difference" when the spread includes 1.0×. */
function spreadText(r: { ratio: number; ratioMin: number; ratioMax: number; noDifference: boolean | null }): string {
  return `${formatRatioSpread(r)}${r.noDifference === true ? ' no difference' : ''}`;
}

/** bpfsim against sharedmap and against a JS Map, per operation and thread count (`baselines`). */
export function baselinesSummary(figs: readonly BenchFigure[]): string[] {
  const out: string[] = [];
  for (const op of ['lookup', 'update']) {
    for (const n of [1, 2]) {
      const hash = byId(figs, `baselines/hash/${op}/${n}`);
      if (hash === undefined) continue;
      const parts: string[] = [];
      const sm = byId(figs, `baselines/sharedmap/${op}/${n}`);
      if (sm !== undefined && hash.baseline === sm.id) {
        parts.push(`${spreadText(hash)} of sharedmap${hash.target !== null ? ` (target ≥ ${hash.target}× ${hash.meetsTarget === true ? 'met' : 'MISSED'})` : ''}`);
      }
      const js = byId(figs, `baselines/js_map/${op}/${n}`);
      if (js !== undefined) {
        const sp = ratioSpread(hash.samples, js.samples);
        parts.push(`${spreadText({ ratio: js.median > 0 ? hash.median / js.median : 0, ratioMin: sp.min, ratioMax: sp.max, noDifference: sp.samples.length > 0 ? sp.noDifference : null })} of a JS Map per worker`);
      }
      out.push(`baselines: bpfsim hash ${op}, ${n} CPU${n > 1 ? 's' : ''} vs ${n} thread${n > 1 ? 's' : ''}: ${formatValue(hash.median, 'ops/s')} = ${parts.join(', ')}`);
    }
  }
  return out;
}

/** Where Runtime.start's time goes (`boot`): medians, each with its rounds' min–max. */
export function bootSummary(figs: readonly BenchFigure[]): string[] {
  const rt = figs.find((f) => f.bench === 'boot' && f.id.startsWith('boot/runtime/'));
  if (rt === undefined) return [];
  const n = rt.id.split('/').pop() ?? '?';
  const bare = byId(figs, `boot/bare_workers/${n}`);
  const mod = byId(figs, `boot/cpu_module_workers/${n}`);
  const arena = byId(figs, 'boot/arena');
  const ms = (v: number): string => formatValue(v, 'ms');
  const spread = (xs: readonly number[]): string => `${ms(median(xs))}  (${ms(Math.min(...xs))} – ${ms(Math.max(...xs))})`;
  const rows: [string, string][] = [];
  if (bare !== undefined) rows.push([`${n} bare worker threads: thread + isolate start`, spread(bare.samples)]);
  if (bare !== undefined && mod !== undefined) rows.push([`+ loading the CPU module in each worker (importing − bare)`, spread(roundDiffs(mod.samples, bare.samples))]);
  if (arena !== undefined) rows.push([`+ the arena's SharedArrayBuffer alone`, spread(arena.samples)]);
  if (mod !== undefined) {
    rows.push([`+ the rest: per-CPU boot calls, global init, control channel`, spread(roundDiffs(rt.samples, mod.samples).map((v, i) => v - (arena?.samples[i] ?? 0)))]);
  }
  const w = Math.max(...rows.map((r) => r[0].length));
  return [
    `boot: Runtime.start of ${n} CPUs → ready ${spread(rt.samples)}${bare !== undefined ? ` = ${spreadText(rt)} of ${n} bare worker threads` : ''}; `
      + `median (min – max) of ${rt.samples.length} round(s), per round`,
    ...rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`),
  ];
}

/** a[i] − b[i] of the rounds both have (same round: interleaved). */
function roundDiffs(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.min(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(a[i]! - b[i]!);
  return out.length > 0 ? out : [0];
}

/** 8 CPUs against 2 on the lock-heavy mix (`oversub`). */
export function oversubSummary(figs: readonly BenchFigure[], cores: number): string[] {
  return figs.filter((f) => f.bench === 'oversub' && f.baseline !== f.id).map((f) => {
    const cpus = String(f.tags.cpus ?? '?');
    const base = byId(figs, f.baseline);
    return `oversub: ${cpus} CPUs on ${cores} cores ${formatValue(f.median, 'ops/s')} = ${spreadText(f)} of ${String(base?.tags.cpus ?? '?')} CPUs`
      + (f.target !== null ? ` (target ≥ ${f.target}× ${f.meetsTarget === true ? 'met' : 'MISSED'})` : '');
  });
}

export function printBenchTable(b: BenchSection, out: CommandContext['stdout']): void {
  const env = benchEnvironment();
  out.write(`${formatFigureTable(b.figures, env, { rounds: b.rounds, seconds: b.seconds })}\n`);
  for (const line of [...baselinesSummary(b.figures), ...bootSummary(b.figures), ...oversubSummary(b.figures, env.cores)]) out.write(`${line}\n`);
  out.write(`${formatMachineLine(b.machine)}\n`);
  const warn = machineLoadWarning(b.machine);
  if (warn !== null) out.write(`${warn}\n`);
  for (const x of b.skipped) out.write(`skipped ${x.id}: ${x.reason}\n`);
  if (b.timerLatency !== undefined) out.write(`${formatLatency(b.timerLatency)}\n`);
  if (b.shortened.length > 0) {
    const shown = b.shortened.slice(0, 6).join(', ');
    const more = b.shortened.length > 6 ? ` (+${b.shortened.length - 6} more: results.json bench.shortened)` : '';
    out.write(`interrupted: ${b.shortened.length} figure(s) rest on one ${SHORT_ROUND_SECONDS} s measurement taken after Ctrl-C: ${shown}${more}\n`);
  }
}

/** What an interrupted bench covers: "12 of 40 figures with every round; 28 on one short measurement". */
export function benchCoverage(b: BenchSection): string {
  const full = b.figures.filter((f) => f.samples.length === b.rounds).length;
  return `${full} of ${b.figures.length} figures have all ${b.rounds} round(s)${b.shortened.length > 0 ? `, ${b.shortened.length} rest on one short measurement` : ''}`;
}

export const benchCommand: Command = {
  name: 'bench',
  summary: 'preallocated vs bpf_mem_alloc vs kmalloc, lookups vs JS Map, CPU scaling',
  help: HELP,
  async run(argv, ctx) {
    const started = new Date();
    const t0 = performance.now();
    const p = parseCommandLine('bench', argv, OPTIONS, true);
    const v = p.values;
    const names = parseBenchNames(p.positionals);
    const common = commonOptions(p, ctx, BENCH_DEFAULTS.seed);
    const run: BenchRun = {
      req: {
        names, cpus: parseCpus(v.cpus, defaultCpus()), maps: parseMaps(v.maps, BENCH_DEFAULT_MAPS),
        alloc: parseAlloc(v.alloc), preemptRt: common.preemptRt, seed: common.seed,
      },
      rounds: parsePositiveInt(v.rounds, BENCH_DEFAULTS.rounds, '--rounds'),
      seconds: parseSeconds(v.seconds, BENCH_DEFAULTS.seconds),
    };
    const out = humanStream(common, ctx);
    out.write(`bpfsim bench ${names.join(' ')}: up to ${run.req.cpus} CPUs · ${run.rounds} rounds × ${run.seconds} s · seed ${common.seed}\n`);
    const section = await runBench(run, common, ctx, `bpfsim bench ${names.join(' ')}`);
    printBenchTable(section, out);
    const interrupted = section.interrupted || ctx.signal?.aborted === true;
    if (interrupted) out.write(`${formatFailures([], benchCoverage(section))}\n`);
    const results = makeResults({
      command: 'bench', argv, startedAt: started, durationMs: performance.now() - t0, seed: common.seed,
      cpus: run.req.cpus, preemptRt: common.preemptRt, failures: [], interrupted, bench: section,
    });
    finish(results, common, ctx);
    if (interrupted) {
      ctx.stderr.write(`bpfsim bench: INTERRUPTED: partial run, ${benchCoverage(section)}\n`);
      return EXIT_SIGINT;
    }
    return EXIT_OK;
  },
};
