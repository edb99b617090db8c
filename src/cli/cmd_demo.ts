/*
 * cmd_demo.ts — `bpfsim demo` (`npm run demo`): the tour, about a minute on a 2-core machine.
 *   1. boots 4 simulated CPUs and runs a stress round over every map type, preallocated and
 *      dynamic (bpf_mem_alloc and kmalloc), with random NMIs and hardirqs;
 *   2. runs every seed scenario and prints its verdict;
 *   3. measures preallocated / bpf_mem_alloc / kmalloc (map_perf) and CPU scaling, as ratios;
 *   4. writes bpfsim-report/report.html and results.json.
 * Exit 0 only if there was no splat, every invariant held, nothing leaked and every scenario
 * passed (splats a scenario provokes on purpose are part of its verdict, not failures).
 */
import type { Command } from './cli.js';
import { parseCommandLine, parseCpus, parseSeconds } from './args.js';
import { COMMON_HELP, COMMON_OPTIONS, RT_OPTION, commonOptions, finish, humanStream } from './common.js';
import { EXIT_FAILED, EXIT_OK, EXIT_SIGINT, MAX_CPUS } from './limits.js';
import { MAP_TYPES, ALLOC_MODES, type StressOptions } from './engine_api.js';
import { DEFAULT_MIX } from './args.js';
import { runStressRound } from './cmd_stress.js';
import { runScenarios } from './cmd_scenario.js';
import { runBench, printBenchTable, benchCoverage } from './cmd_bench.js';
import { stressFailures, scenarioFailures } from './results.js';
import { formatFailures, formatStressSummary, makeResults, stressCoverage } from './output.js';
import type { BenchSection } from './results.js';
import { formatRate, formatRatio } from './format.js';

/** The demo's time budget; tuned so the whole tour takes about a minute on 2 cores. */
export const DEMO = Object.freeze({
  cpus: 4,
  stressSeconds: 12,
  nmiRate: 2000,
  irqRate: 2000,
  seed: 1,
  benchRounds: 3,
  benchSeconds: 0.3,
  scalingMaps: ['hash'] as const,
});

const OPTIONS = {
  ...COMMON_OPTIONS,
  ...RT_OPTION,
  cpus: { type: 'string' },
  seconds: { type: 'string' },
} as const;

const HELP = `Usage: bpfsim demo [options]

The tour (about a minute on 2 cores): boots ${DEMO.cpus} simulated CPUs; a stress round over every map
type, preallocated and dynamic, with NMI and IRQ injection; every seed scenario with its
verdict; the preallocated / bpf_mem_alloc / kmalloc benchmark table with ratios; then writes the
report. Exits 0 only if there was no splat, every invariant held and every scenario passed.

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
    const stress = await runStressRound(stressOpts, common, ctx, `bpfsim demo — stress (seed ${common.seed})`);
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
      out.write(`${scenarios.filter((s) => s.verdict.ok).length}/${scenarios.length} scenarios passed${scenarios.length < total ? ` (${total - scenarios.length} not run: interrupted)` : ''}\n\n`);
      if (aborted()) covered.push(`${scenarios.length} of ${total} scenarios ran`);
    }

    out.write(`== 3/3 benchmarks: preallocated vs bpf_mem_alloc vs kmalloc, and CPU scaling (${DEMO.benchRounds} rounds × ${DEMO.benchSeconds} s)\n`);
    let bench: BenchSection | null = null;
    if (aborted()) {
      out.write('skipped: interrupted (Ctrl-C)\n');
      covered.push('benchmarks not run');
    } else {
      bench = await runBench({
        req: { names: ['map_perf', 'scaling'], cpus, maps: [...DEMO.scalingMaps], alloc: [...ALLOC_MODES], preemptRt: common.preemptRt, seed: common.seed },
        rounds: DEMO.benchRounds, seconds: DEMO.benchSeconds,
      }, common, ctx, 'bpfsim demo — benchmarks');
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
      out.write(`map_perf: ${f.label} ${formatRate(f.median)} = ${formatRatio(f.ratio)} of ${f.baselineLabel}\n`);
    }
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
