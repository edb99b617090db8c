/*
 * cmd_stress.ts — `bpfsim stress`: a parallel stress run over map types × allocation modes with
 * random NMI/IRQ injection, then the invariant checks, a leak check after teardown, the report,
 * and a non-zero exit naming every splat or violation. The seed is printed first and last, so a
 * failure can be rerun exactly.
 */
import type { Command, CommandContext } from './command.js';
import {
  parseCommandLine, parseCpus, parseSeconds, parseMaps, parseAlloc, parseRate, parseMix, parseFaults,
  DEFAULT_MIX,
} from './args.js';
import { COMMON_HELP, COMMON_OPTIONS, RT_OPTION, commonOptions, finish, humanStream, progressFor, type Common } from './common.js';
import { MAX_CPUS, EXIT_FAILED, EXIT_OK, EXIT_SIGINT } from './limits.js';
import { defaultCpus } from './limits.js';
import { MAP_TYPES, ALLOC_MODES, MIX_OPS, FAULT_NAMES, type StressOptions } from './engine_api.js';
import { toStressSection, stressFailures, type StressSection } from './results.js';
import { formatFailures, formatStressSummary, makeResults, stressCoverage } from './output.js';
import { runScheduleSweep, SCHEDULE_HELP } from './cmd_schedule.js';

export const STRESS_DEFAULTS = Object.freeze({ seconds: 10, nmiRate: 1000, irqRate: 1000, sampleIntervalMs: 250 });

/**
 * What a stress command takes on top of --seconds, as stated in --help and the README. Measured on
 * a 2-core machine (--cpus 4, every cell, other jobs running): node start-up, loading the library
 * and writing the report 0.5–1 s (fixed); Runtime.start 0.5–1.2 s per runtime (worker start-up:
 * it grows with the machine's load); per cell program loads, map check(), grace periods and its
 * share of teardown 30–70 ms. Each run's split is in results.json (stress.phasesMs).
 */
export const STRESS_OVERHEAD = Object.freeze({ fixedSeconds: 1, perRuntimeSeconds: 1.2, perCellSeconds: 0.05 });

const OPTIONS = {
  ...COMMON_OPTIONS,
  ...RT_OPTION,
  cpus: { type: 'string' },
  seconds: { type: 'string' },
  maps: { type: 'string' },
  alloc: { type: 'string' },
  'nmi-rate': { type: 'string' },
  'irq-rate': { type: 'string' },
  mix: { type: 'string' },
  fault: { type: 'string' },
  check: { type: 'boolean' },
  record: { type: 'string' },
} as const;

const HELP = `Usage: bpfsim stress [options]

Runs every selected map type in every selected allocation mode on N simulated CPUs, with
random NMIs and hardirqs landing inside map operations, then checks every invariant (check() of
each map, allocator accounting, lock words free, recursion counters at zero) and that the slab
is back to its starting state after teardown. Exits 1 naming any splat or violation.

Options:
  --cpus N          simulated CPUs, 1..${MAX_CPUS} (default: this machine's cores)
  --seconds S       length of the measured phase (workloads running), split over the cells
                    (default ${STRESS_DEFAULTS.seconds}); the panel's clock counts it and ends within ${STRESS_DEFAULTS.sampleIntervalMs / 1000} s of S.
                    The whole command takes S plus a fixed overhead: start-up ~${STRESS_OVERHEAD.fixedSeconds} s, one
                    runtime boot per allocator group ~${STRESS_OVERHEAD.perRuntimeSeconds} s (two when kmalloc cells run),
                    ~${STRESS_OVERHEAD.perCellSeconds * 1000} ms per cell — about 4 s for all cells on 2 cores, more on a
                    busy machine; results.json splits it (stress.phasesMs)
  --maps LIST       comma-separated map types or 'all' (default all):
                    ${MAP_TYPES.join(', ')}
  --alloc LIST      allocation modes or 'all' (default all): ${ALLOC_MODES.join(', ')}
                    (array and LRU maps are always preallocated; other pairs are skipped)
  --nmi-rate R      random NMIs per second per CPU, 0 = none (default ${STRESS_DEFAULTS.nmiRate})
  --irq-rate R      random hardirqs per second per CPU, 0 = none (default ${STRESS_DEFAULTS.irqRate})
  --mix SPEC        operation weights (default ${MIX_OPS.map((o) => `${o}=${DEFAULT_MIX[o]}`).join(',')})
  --rt              PREEMPT_RT semantics
  --seed X          u32 seed, decimal or 0x hex (default: random, always printed)
  --check           record every map operation and check each cell's history for
                    linearizability (bpfsim/check); an illegal history fails the run, the
                    kernel's own properties (a lookup missing a key being replaced, a read of a
                    reused preallocated element) are reported apart (docs/CHECK.md)
  --record FILE     write the recorded history to FILE (JSON lines, docs/CHECK.md)
  --fault NAME      TEST ONLY: switch on a fault (${FAULT_NAMES.join(', ')}) to see the checks fire

${COMMON_HELP}
${SCHEDULE_HELP}
Exit codes: 0 pass · 1 splat, violated invariant or leak · 2 bad arguments · 3 internal error
            130 interrupted: the first Ctrl-C stops the workloads at once, checks and reports what
            ran (verdict INTERRUPTED, "interrupted": true in results.json); a second quits at once

Examples:
  bpfsim stress --seconds 3 --cpus 4 --seed 1
  bpfsim stress --maps hash,lru_hash --alloc prealloc,bpf_mem_alloc --nmi-rate 20000 --rt
`;

/** The canonical command line that reruns exactly this stress run. */
export function rerunCommand(o: StressOptions): string {
  const mix = MIX_OPS.map((op) => `${op}=${o.mix[op]}`).join(',');
  return `bpfsim stress --cpus ${o.cpus} --seconds ${o.seconds} --maps ${o.maps.join(',')} --alloc ${o.alloc.join(',')}`
    + ` --nmi-rate ${o.nmiRate} --irq-rate ${o.irqRate} --mix ${mix}${o.preemptRt ? ' --rt' : ''}`
    + `${o.faults.length > 0 ? ` --fault ${o.faults.join(',')}` : ''}${o.check === true ? ' --check' : ''} --seed ${o.seed}`;
}

export function parseStress(argv: readonly string[], ctx: CommandContext): { opts: StressOptions; common: Common } {
  const p = parseCommandLine('stress', argv, OPTIONS, false);
  const v = p.values;
  const common = commonOptions(p, ctx);
  const opts: StressOptions = {
    cpus: parseCpus(v.cpus, defaultCpus()),
    seconds: parseSeconds(v.seconds, STRESS_DEFAULTS.seconds),
    maps: parseMaps(v.maps),
    alloc: parseAlloc(v.alloc),
    nmiRate: parseRate(v['nmi-rate'], STRESS_DEFAULTS.nmiRate, '--nmi-rate'),
    irqRate: parseRate(v['irq-rate'], STRESS_DEFAULTS.irqRate, '--irq-rate'),
    preemptRt: common.preemptRt,
    seed: common.seed,
    mix: parseMix(v.mix),
    faults: parseFaults(v.fault),
    ...(v.check === true ? { check: true } : {}),
    ...(typeof v.record === 'string' && v.record !== '' ? { record: v.record } : {}),
    sampleIntervalMs: STRESS_DEFAULTS.sampleIntervalMs,
    ...(ctx.signal !== undefined ? { signal: ctx.signal } : {}),
  };
  return { opts, common };
}

/** Run a stress round through the engine with the live display; shared with `demo`. */
export async function runStressRound(opts: StressOptions, common: Common, ctx: CommandContext, title: string): Promise<StressSection> {
  const engine = await ctx.engine();
  const progress = await progressFor(common, ctx, title);
  try {
    const r = await engine.runStress(opts, (s) => progress.update(s));
    return toStressSection(opts, r);
  } finally {
    progress.stop();
  }
}

export const stressCommand: Command = {
  name: 'stress',
  summary: 'parallel stress with NMI/IRQ injection, invariant checks and a leak check',
  help: HELP,
  async run(argv, ctx) {
    if (argv.some((a) => a === '--schedule' || a.startsWith('--schedule='))) return runScheduleSweep(argv, ctx);
    const started = new Date();
    const t0 = performance.now();
    const { opts, common } = parseStress(argv, ctx);
    const out = humanStream(common, ctx);
    out.write(`bpfsim stress: seed ${opts.seed} · ${opts.cpus} CPUs · ${opts.seconds} s · maps ${opts.maps.join(',')} · alloc ${opts.alloc.join(',')}${opts.preemptRt ? ' · PREEMPT_RT' : ''}\n`);
    if (opts.faults.length > 0) out.write(`bpfsim stress: TEST FAULTS ON: ${opts.faults.join(', ')} — this run is expected to fail\n`);
    const section = await runStressRound(opts, common, ctx, `bpfsim stress (seed ${opts.seed})`);
    const failures = stressFailures(section);
    // Ctrl-C at any point before the verdict: exit 130 and say what the run covers
    const interrupted = section.interrupted || ctx.signal?.aborted === true;
    const coverage = interrupted ? stressCoverage(section) : null;
    out.write(`${formatStressSummary(section)}\n${formatFailures(failures, coverage === null ? null : `${coverage}; the checks cover only what ran`)}\n`);
    out.write(`seed ${opts.seed} — rerun: ${rerunCommand(opts)}\n`);
    const results = makeResults({
      command: 'stress', argv, startedAt: started, durationMs: performance.now() - t0, seed: opts.seed,
      cpus: opts.cpus, preemptRt: opts.preemptRt, failures, interrupted, stress: section,
    });
    finish(results, common, ctx);
    if (interrupted) {
      ctx.stderr.write(`bpfsim stress: INTERRUPTED (seed ${opts.seed}): partial run, ${coverage!}${failures.length > 0 ? `; ${failures.length} failure(s) in what ran: ${failures[0]!}` : ''}\n`);
      return EXIT_SIGINT;
    }
    if (failures.length > 0) ctx.stderr.write(`bpfsim stress: FAIL (seed ${opts.seed}): ${failures[0]!}${failures.length > 1 ? ` (+${failures.length - 1} more)` : ''}\n`);
    return failures.length === 0 ? EXIT_OK : EXIT_FAILED;
  },
};
