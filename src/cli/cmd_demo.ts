/*
 * cmd_demo.ts — `bpfsim demo` (`npm run demo`): the tour, about a minute on a 2-core machine.
 *   1. boots 4 simulated CPUs and runs a stress round over every map type, preallocated and
 *      dynamic (bpf_mem_alloc and kmalloc), with random NMIs and hardirqs;
 *   2. runs every seed scenario and prints its verdict;
 *   3. measures preallocated / bpf_mem_alloc (map_perf, helper path, 1 and 2 CPUs), CPU scaling
 *      (1 and 2 CPUs, against a JS Map per worker) and hash lookups against sharedmap (npm), as
 *      ratios with the min–max of their per-round ratios, and says whether the machine was busy;
 *   4. writes bpfsim-report/report.html and results.json.
 * Budget (2 cores, after the build): ~12 s stress, ~10 s scenarios, ~15 s benchmarks; the summary
 * prints where the time went. The benchmark step runs few cases for longer rather than many short
 * ones, so each ratio rests on 4 rounds: the helper path only, at most 2 CPUs, and no kmalloc (its
 * runtime is a second one, and switching runtimes every round cost more than all the rounds; the
 * legacy kmalloc path runs in the stress cells, and `bpfsim bench map_perf` measures it).
 * Exit 0 only if there was no splat, every invariant held, nothing leaked and every scenario
 * passed (splats a scenario provokes on purpose are part of its verdict, not failures).
 */
import type { Command } from './command.js';
import { parseCommandLine, parseCpus, parseSeconds } from './args.js';
import { COMMON_HELP, COMMON_OPTIONS, RT_OPTION, commonOptions, finish, humanStream } from './common.js';
import { EXIT_FAILED, EXIT_OK, EXIT_SIGINT, MAX_CPUS } from './limits.js';
import { MAP_TYPES, ALLOC_MODES, type StressOptions } from './engine_api.js';
import { DEFAULT_MIX } from './args.js';
import { runStressRound } from './cmd_stress.js';
import { runScenarios } from './cmd_scenario.js';
import { runBench, printBenchTable, benchCoverage, baselinesSummary } from './cmd_bench.js';
import { stressFailures, scenarioFailures } from './results.js';
import { formatFailures, formatStressSummary, makeResults, stressCoverage } from './output.js';
import type { BenchSection } from './results.js';
import { formatRate, formatRatio } from './format.js';
import type { BenchCase } from '../bench/harness.js';

/** The demo's time budget; tuned so the whole tour takes under a minute on 2 cores (≤ ~50 s after the build). */
export const DEMO = Object.freeze({
  cpus: 4,
  stressSeconds: 10,
  nmiRate: 2000,
  irqRate: 2000,
  seed: 1,
  benchRounds: 4,
  benchSeconds: 0.3,
  benchWarmupSeconds: 0.1,
  /** the most CPUs the benchmark step measures (1, 2) */
  benchCpus: 2,
  /** map_perf: the helper path only (bench map_perf has the syscall path too) */
  mapPerfPath: 'helper',
  /** one runtime for the whole step: kmalloc needs a second one (bench map_perf measures it) */
  benchAlloc: ['prealloc', 'bpf_mem_alloc'] as const,
  scalingMaps: ['hash'] as const,
  /** baselines: hash lookups against sharedmap, 1 CPU / thread (the JS Map per worker is in scaling) */
  baselineCases: ['baselines/hash/lookup/1'] as const,
});

/** The demo's benchmark cases: map_perf on the helper path, scaling, one baselines pair. */
export function demoBenchCase(c: BenchCase): boolean {
  return (c.bench === 'map_perf' && c.tags?.workload === DEMO.mapPerfPath) || c.bench === 'scaling'
    || (DEMO.baselineCases as readonly string[]).includes(c.id);
}

const OPTIONS = {
  ...COMMON_OPTIONS,
  ...RT_OPTION,
  cpus: { type: 'string' },
  seconds: { type: 'string' },
} as const;

const HELP = `Usage: bpfsim demo [options]

The tour (about a minute on 2 cores): boots ${DEMO.cpus} simulated CPUs; a stress round over every map
type, preallocated and dynamic, with NMI and IRQ injection; every seed scenario with its
verdict; benchmarks (preallocated vs bpf_mem_alloc, CPU scaling, hash vs sharedmap) as ratios
with their spread over the rounds; then writes the report. Exits 0 only if there was no splat, every invariant held and every scenario passed.

Options:
  --cpus N        simulated CPUs, 1..${MAX_CPUS} (default ${DEMO.cpus})
  --seconds S     length of the stress round (default ${DEMO.stressSeconds})
  --rt            PREEMPT_RT semantics
  --seed X        u32 seed (default ${DEMO.seed})

${COMMON_HELP}

Exit codes: 0 pass · 1 splat, violated invariant, leak or failed scenario · 2 bad arguments
            3 internal error · 130 interrupted (first Ctrl-C: the step running stops, the rest
            is skipped, what ran is checked and reported as INTERRUPTED; a second quits at once)
`;

function spreadNumber(r: number): string { return r >= 10 ? r.toFixed(1) : r.toFixed(2); }

export const demoCommand: Command = {
  name: 'demo',
  summary: 'the one-minute tour: stress, scenarios, benchmarks, report',
  help: HELP,
  async run(argv, ctx) {
    const started = new Date();
    const t0 = performance.now();
    const p = parseCommandLine('demo', argv, OPTIONS, false);
    const common = commonOptions(p, ctx, DEMO.seed);
    const cpus = parseCpus(p.values.cpus, DEMO.cpus);
    const out = humanStream(common, ctx);
    const stressOpts: StressOptions = {
      cpus, seconds: parseSeconds(p.values.seconds, DEMO.stressSeconds), maps: [...MAP_TYPES], alloc: [...ALLOC_MODES],
      nmiRate: DEMO.nmiRate, irqRate: DEMO.irqRate, preemptRt: common.preemptRt, seed: common.seed, mix: DEFAULT_MIX,
      faults: [], sampleIntervalMs: 250, ...(ctx.signal !== undefined ? { signal: ctx.signal } : {}),
    };

    out.write(`bpfsim demo: ${cpus} simulated CPUs · seed ${common.seed}${common.preemptRt ? ' · PREEMPT_RT' : ''}\n\n`);
    out.write(`== 1/3 stress: ${MAP_TYPES.length} map types × prealloc/bpf_mem_alloc/kmalloc, NMI ${DEMO.nmiRate}/s + IRQ ${DEMO.irqRate}/s per CPU, ${stressOpts.seconds} s\n`);
    /** Where the demo's time went, for the summary: [step, ms]. */
    const phases: [string, number][] = [];
    let tPhase = performance.now();
    const endPhase = (name: string): void => { const now = performance.now(); phases.push([name, now - tPhase]); tPhase = now; };
    const stress = await runStressRound(stressOpts, common, ctx, `bpfsim demo — stress (seed ${common.seed})`);
    endPhase('stress');
    out.write(`${formatStressSummary(stress)}\n\n`);

    const aborted = (): boolean => ctx.signal?.aborted === true;
    /** What ran, for the INTERRUPTED verdict. */
    const covered: string[] = [`stress ${stress.interrupted ? `partly (${stressCoverage(stress)})` : 'complete'}`];

    out.write('== 2/3 seed scenarios\n');
    let scenarios: Awaited<ReturnType<typeof runScenarios>> = [];
    if (aborted()) {
      out.write('skipped: interrupted (Ctrl-C)\n\n');
      covered.push('scenarios not run');
    } else {
      const total = (await (await ctx.engine()).listScenarios()).length;
      scenarios = await runScenarios(null, { seed: common.seed }, common, ctx);
      endPhase('scenarios');
      out.write(`${scenarios.filter((s) => s.verdict.ok).length}/${scenarios.length} scenarios passed${scenarios.length < total ? ` (${total - scenarios.length} not run: interrupted)` : ''}\n\n`);
      if (aborted()) covered.push(`${scenarios.length} of ${total} scenarios ran`);
    }

    const benchCpus = Math.min(cpus, DEMO.benchCpus);
    out.write(`== 3/3 benchmarks: preallocated vs bpf_mem_alloc (${DEMO.mapPerfPath} path), CPU scaling, hash vs sharedmap; up to ${benchCpus} CPU${benchCpus > 1 ? 's' : ''}, ${DEMO.benchRounds} rounds × ${DEMO.benchSeconds} s\n`);
    let bench: BenchSection | null = null;
    if (aborted()) {
      out.write('skipped: interrupted (Ctrl-C)\n');
      covered.push('benchmarks not run');
    } else {
      bench = await runBench({
        req: { names: ['map_perf', 'scaling', 'baselines'], cpus: benchCpus, maps: [...DEMO.scalingMaps], alloc: [...DEMO.benchAlloc], preemptRt: common.preemptRt, seed: common.seed },
        rounds: DEMO.benchRounds, seconds: DEMO.benchSeconds, warmupSeconds: DEMO.benchWarmupSeconds, select: demoBenchCase,
      }, common, ctx, 'bpfsim demo — benchmarks');
      endPhase('benchmarks');
      printBenchTable(bench, out);
      if (bench.interrupted) covered.push(`benchmarks partly (${benchCoverage(bench)})`);
    }

    const interrupted = aborted();
    const failures = [...stressFailures(stress), ...scenarioFailures(scenarios)];
    const results = makeResults({
      command: 'demo', argv, startedAt: started, durationMs: performance.now() - t0, seed: common.seed, cpus,
      preemptRt: common.preemptRt, failures, interrupted, stress, scenarios, ...(bench !== null ? { bench } : {}),
    });
    out.write('\n== summary\n');
    out.write(`stress: ${stress.cells.filter((c) => c.status === 'ran').length} cells, ${formatRate(stress.totals.opsPerSec)}, ${stress.splats.length} splats, `
      + `${stress.invariants.filter((i) => i.ok).length}/${stress.invariants.length} invariants held, leak check ${stress.leak.ok ? 'ok' : 'FAILED'}\n`);
    out.write(`scenarios: ${scenarios.filter((s) => s.verdict.ok).length}/${scenarios.length} passed\n`);
    for (const f of (bench?.figures ?? []).filter((x) => x.bench === 'map_perf' && x.baseline !== x.id)) {
      out.write(`map_perf: ${f.label} ${formatRate(f.median)} = ${formatRatio(f.ratio)} (rounds ${spreadNumber(f.ratioMin)}–${spreadNumber(f.ratioMax)}) of ${f.baselineLabel}`
        + `${f.noDifference === true ? ' — no difference' : ''}${f.meetsTarget === false ? ` — target ≥ ${f.target ?? 0}× MISSED` : ''}\n`);
    }
    for (const line of baselinesSummary(bench?.figures ?? [])) out.write(`${line}\n`);
    if (bench?.machine.busy === true) out.write(`machine: busy (${bench.machine.warnings.join('; ')})\n`);
    out.write(`time: ${phases.map(([k, ms]) => `${k} ${(ms / 1000).toFixed(1)} s`).join(', ')}, total ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    out.write(`${formatFailures(failures, interrupted ? `${covered.join('; ')}; the checks cover only what ran` : null)}\n`);
    finish(results, common, ctx);
    if (interrupted) {
      ctx.stderr.write(`bpfsim demo: INTERRUPTED (seed ${common.seed}): partial run, ${covered.join('; ')}\n`);
      return EXIT_SIGINT;
    }
    if (failures.length > 0) ctx.stderr.write(`bpfsim demo: FAIL (seed ${common.seed}): ${failures[0]!}${failures.length > 1 ? ` (+${failures.length - 1} more)` : ''}\n`);
    return failures.length === 0 ? EXIT_OK : EXIT_FAILED;
  },
};
