/*
 * cmd_scenario.ts — `bpfsim scenario [NAME ... | --all | --list]`: the seed scenarios, each a
 * precise interleaving (an NMI on CPU 1 inside the bucket lock, an empty bpf_mem_alloc cache in
 * hardirq, …), printed as what happened — who held which lock, what each context got back — and
 * the verdict. With no name it lists the scenarios.
 */
import Table from 'cli-table3';
import type { Command, CommandContext } from './command.js';
import { flag, parseCommandLine, UsageError } from './args.js';
import { COMMON_HELP, COMMON_OPTIONS, commonOptions, finish, humanStream, progressFor, type Common } from './common.js';
import { EXIT_FAILED, EXIT_OK, EXIT_SIGINT } from './limits.js';
import { EngineUsageError, type Engine, type ScenarioInfo, type ScenarioOptions, type ScenarioResult } from './engine_api.js';
import { scenarioFailures, toScenarioRecord, type ScenarioRecord } from './results.js';
import { formatScenario, makeResults, formatFailures } from './output.js';

export const SCENARIO_DEFAULTS = Object.freeze({ seed: 1 });

const OPTIONS = {
  ...COMMON_OPTIONS,
  list: { type: 'boolean' },
  all: { type: 'boolean' },
} as const;

const HELP = `Usage: bpfsim scenario [NAME ...] [options]
       bpfsim scenario --list
       bpfsim scenario --all

Runs seed scenarios by name: each boots the runtime it needs (CPUs, PREEMPT_RT or not, lock
mode), sets up maps and programs, injects interrupts at exact windows, prints what happened (who
held which lock, what each context got back) and a verdict. Exits 1 if any verdict fails. With
no NAME, lists the scenarios.

Options:
  --list          list the scenarios (name, seed, title)
  --all           run every scenario
  --seed X        u32 runtime seed (default ${SCENARIO_DEFAULTS.seed})

${COMMON_HELP}
`;

export function formatScenarioList(list: readonly ScenarioInfo[]): string {
  const w = Math.max(6, ...list.map((s) => s.name.length)) + 2;
  const t = new Table({ head: ['name', 'seed', 'title'], style: { head: [], border: [] }, wordWrap: true, colWidths: [w, 6, 70] });
  for (const s of list) t.push([s.name, s.seed, `${s.title}\n${s.summary}`]);
  return t.toString();
}

/** A scenario that throws has failed: its verdict names the error (the other scenarios still run). */
async function runOne(engine: Engine, name: string, opts: ScenarioOptions, known: readonly ScenarioInfo[]): Promise<ScenarioResult> {
  const t0 = performance.now();
  try {
    return await engine.runScenario(name, opts);
  } catch (e: unknown) {
    if (e instanceof UsageError || e instanceof EngineUsageError) throw e;
    const info = known.find((s) => s.name === name);
    const msg = (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, ' ');
    return {
      name, seed: info?.seed ?? '?', title: info?.title ?? name, events: [], splats: [], elapsedMs: performance.now() - t0,
      verdict: { ok: false, expected: 'the scenario to run to its verdict', observed: `it threw ${e instanceof Error ? e.name : 'an error'}: ${msg}` },
    };
  }
}

/** Run scenarios by name (all when `names` is null); shared with `demo`. */
export async function runScenarios(names: readonly string[] | null, opts: ScenarioOptions, common: Common, ctx: CommandContext): Promise<ScenarioRecord[]> {
  const engine = await ctx.engine();
  const known = await engine.listScenarios();
  const chosen = names ?? known.map((s) => s.name);
  for (const n of chosen) {
    if (!known.some((s) => s.name === n)) throw new UsageError(`unknown scenario '${n}' (known: ${known.map((s) => s.name).join(', ') || 'none'}; bpfsim scenario --list)`);
  }
  const progress = await progressFor(common, ctx, 'bpfsim scenario');
  const records: ScenarioRecord[] = [];
  try {
    for (const n of chosen) {
      if (ctx.signal?.aborted) break;
      progress.status(`running scenario ${n}`);
      const r = toScenarioRecord(await runOne(engine, n, opts, known));
      records.push(r);
      progress.log(formatScenario(r));
    }
  } finally {
    progress.stop();
  }
  return records;
}

export const scenarioCommand: Command = {
  name: 'scenario',
  summary: 'run the seed scenarios by name and print what happened and the verdict',
  help: HELP,
  async run(argv, ctx) {
    const started = new Date();
    const t0 = performance.now();
    const p = parseCommandLine('scenario', argv, OPTIONS, true);
    const common = commonOptions(p, ctx, SCENARIO_DEFAULTS.seed);
    const list = flag(p.values.list);
    const all = flag(p.values.all);
    if (list && (all || p.positionals.length > 0)) throw new UsageError(`--list takes no scenario names and no --all`);
    if (all && p.positionals.length > 0) throw new UsageError(`give scenario names or --all, not both`);
    if (list || (!all && p.positionals.length === 0)) {
      const engine = await ctx.engine();
      const scenarios = await engine.listScenarios();
      if (common.json) ctx.stdout.write(`${JSON.stringify(scenarios, null, 2)}\n`);
      else ctx.stdout.write(`${formatScenarioList(scenarios)}\nRun one with: bpfsim scenario NAME   (or --all)\n`);
      return EXIT_OK;
    }
    const wanted = all ? (await (await ctx.engine()).listScenarios()).length : p.positionals.length;
    const records = await runScenarios(all ? null : p.positionals, { seed: common.seed }, common, ctx);
    const failures = scenarioFailures(records);
    const interrupted = ctx.signal?.aborted === true;
    const coverage = `${records.length} of ${wanted} scenario(s) ran`;
    humanStream(common, ctx).write(`${formatFailures(failures, interrupted ? coverage : null)}\n`);
    const results = makeResults({
      command: 'scenario', argv, startedAt: started, durationMs: performance.now() - t0, seed: common.seed,
      cpus: 0, preemptRt: false, failures, interrupted, scenarios: records,
    });
    finish(results, common, ctx);
    if (interrupted) {
      ctx.stderr.write(`bpfsim scenario: INTERRUPTED: partial run, ${coverage}\n`);
      return EXIT_SIGINT;
    }
    return failures.length === 0 ? EXIT_OK : EXIT_FAILED;
  },
};
