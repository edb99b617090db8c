/*
 * bench_main.ts — the command line shared by bench/*.bench.ts that run engine bench cases
 * (map_perf, htab_mem, scaling). The cases themselves are defined once, in src/bench/cases.ts
 * (createBenchSuite), and are the same ones `bpfsim bench <name>` runs; a bench file only picks
 * the request (CPUs, maps, alloc modes) and adds its own summary.
 *
 * Output: the harness table (median, min–max, the baseline measured in the same run, ratio,
 * target), the skipped cases with their reason, the errors operations returned, and the file's
 * summary. --json prints one JSON document on stdout instead (progress stays on stderr).
 *
 *   node dist/bench/<name>.bench.js [--rounds N] [--seconds S] [--cpus N] [--maps a,b]
 *                                   [--alloc a,b] [--seed X] [--rt] [--json]
 */
import { parseArgs } from 'node:util';
import {
  runRounds, formatFigureTable, benchEnvironment, formatValue, probeLoad, machineLoad, machineLoadWarning, formatMachineLine,
  type BenchFigure, type BenchEnvironment, type MachineLoad,
} from '../src/bench/harness.js';
import { createBenchSuite } from '../src/bench/cases.js';
import { MAX_CPUS } from '../src/cli/limits.js';
import { MAP_TYPES, ALLOC_MODES, type AllocMode, type BenchName, type BenchRequest, type MapType } from '../src/cli/engine_api.js';

export interface SuiteDefaults {
  readonly name: BenchName;
  readonly title: string;
  readonly cpus: number;
  readonly maps: readonly MapType[];
  readonly alloc?: readonly AllocMode[];
  readonly rounds: number;
  readonly seconds: number;
  /** Display order of the table's rows (the run order groups cases by runtime). */
  readonly order?: (a: BenchFigure, b: BenchFigure) => number;
  /** Extra lines after the table (same-run derived figures). */
  readonly summary?: (figures: readonly BenchFigure[]) => string;
  /** Extra JSON (same-run derived figures). */
  readonly summaryJson?: (figures: readonly BenchFigure[]) => unknown;
  /** Measurements made after the suite (own runtimes), printed and put in the JSON as `extra`. */
  readonly after?: (o: { json: boolean; log: (s: string) => void; req: BenchRequest }) => Promise<{ text: string; json: unknown } | null>;
}

export interface SuiteOutput {
  readonly schema: 'bpfsim-bench/1';
  readonly bench: BenchName;
  readonly argv: readonly string[];
  readonly environment: BenchEnvironment;
  readonly request: BenchRequest;
  readonly rounds: number;
  readonly seconds: number;
  readonly figures: readonly BenchFigure[];
  readonly skipped: readonly { readonly id: string; readonly reason: string }[];
  readonly errors: Readonly<Record<string, Readonly<Record<string, number>>>>;
  readonly summary: unknown;
  readonly extra: unknown;
  /** Was the machine busy (load average, calibration loop at both ends of the rounds)? */
  readonly machine: MachineLoad;
}

function list<T extends string>(v: string | undefined, known: readonly T[], dflt: readonly T[], what: string): T[] {
  if (v === undefined) return [...dflt];
  const out = v.split(',').map((x) => x.trim()).filter((x) => x !== '');
  for (const x of out) if (!(known as readonly string[]).includes(x)) throw new UsageError(`unknown ${what} '${x}' (known: ${known.join(', ')})`);
  return out as T[];
}

function num(v: string | undefined, dflt: number, what: string, int: boolean, max = Infinity): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!(n > 0) || (int && !Number.isInteger(n))) throw new UsageError(`${what} must be a positive ${int ? 'integer' : 'number'}; got '${v}'`);
  if (n > max) throw new UsageError(`${what} must be at most ${max}; got '${v}'`);
  return n;
}

/** Parse the command line, run the suite, print; returns the document (also printed with --json). */
export async function runSuiteMain(d: SuiteDefaults): Promise<SuiteOutput | null> {
  try {
    return await runParsed(d);
  } catch (e: unknown) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`${e.message}\n`);
    process.exitCode = 2;
    return null;
  }
}

class UsageError extends Error {}

function parseCommandLine(argv: string[]): ReturnType<typeof parse> {
  try {
    return parse(argv);
  } catch (e: unknown) {
    throw new UsageError(e instanceof Error ? e.message : String(e)); // unknown option, missing value
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv, strict: true, allowPositionals: false,
    options: {
      rounds: { type: 'string' }, seconds: { type: 'string' }, cpus: { type: 'string' }, maps: { type: 'string' },
      alloc: { type: 'string' }, seed: { type: 'string' }, rt: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
}

async function runParsed(d: SuiteDefaults): Promise<SuiteOutput | null> {
  const argv = process.argv.slice(2);
  const { values } = parseCommandLine(argv);
  if (values.help === true) {
    process.stdout.write(`${d.title}\n\nOptions: --rounds N (${d.rounds})  --seconds S (${d.seconds})  --cpus N (${d.cpus})  --maps LIST (${d.maps.join(',')})\n`
      + `         --alloc LIST (${(d.alloc ?? ALLOC_MODES).join(',')})  --seed X (1)  --rt  --json\n`);
    return null;
  }
  const json = values.json === true;
  const req: BenchRequest = {
    names: [d.name],
    cpus: num(values.cpus, d.cpus, '--cpus', true, MAX_CPUS),
    maps: list(values.maps, MAP_TYPES, d.maps, 'map type'),
    alloc: list(values.alloc, ALLOC_MODES, d.alloc ?? ALLOC_MODES, 'alloc mode'),
    preemptRt: values.rt === true,
    seed: values.seed === undefined ? 1 : Number(values.seed) >>> 0,
  };
  const rounds = num(values.rounds, d.rounds, '--rounds', true);
  const seconds = num(values.seconds, d.seconds, '--seconds', false);
  const log = (s: string): void => { (json ? process.stderr : process.stdout).write(`${s}\n`); };
  const env = benchEnvironment();
  log(`${d.title}: up to ${req.cpus} CPUs · ${rounds} rounds × ${seconds} s · seed ${req.seed}${req.preemptRt ? ' · PREEMPT_RT' : ''}`);

  const loadStart = probeLoad();
  const suite = await createBenchSuite(req);
  let figures: BenchFigure[];
  try {
    const t0 = performance.now();
    figures = await runRounds(suite.cases, {
      rounds, seconds,
      onRound: (e) => {
        if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${e.warmup ? 'warm-up' : `round ${e.round}/${e.rounds}`}  ${e.label}: ${formatValue(e.value, e.unit)}`);
      },
    });
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
    log(`(${suite.cases.length} cases in ${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  } finally {
    await suite.close();
  }
  const machine = machineLoad(loadStart, probeLoad());
  const shown = d.order !== undefined ? [...figures].sort(d.order) : figures;
  const errors = suite.errors();
  let extra: { text: string; json: unknown } | null = null;
  if (d.after !== undefined) extra = await d.after({ json, log, req });
  const doc: SuiteOutput = {
    schema: 'bpfsim-bench/1', bench: d.name, argv, environment: env, request: req, rounds, seconds, figures: shown,
    skipped: suite.skipped, errors, summary: d.summaryJson?.(shown) ?? null, extra: extra?.json ?? null, machine,
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
    return doc;
  }
  if (shown.length > 0) log(formatFigureTable(shown, env, { rounds, seconds }));
  log(formatMachineLine(machine));
  const warn = machineLoadWarning(machine);
  if (warn !== null) log(warn);
  for (const s of suite.skipped) log(`skipped ${s.id}: ${s.reason}`);
  for (const [id, errs] of Object.entries(errors)) {
    log(`errors in ${id}: ${Object.entries(errs).map(([k, v]) => `${k} ×${v}`).join(', ')}`);
  }
  if (d.summary !== undefined && shown.length > 0) log(d.summary(shown));
  if (extra !== null) log(extra.text);
  return doc;
}

/** Median of a figure by id, or undefined when the case did not run. */
export function medianOf(figures: readonly BenchFigure[], id: string): number | undefined {
  return figures.find((f) => f.id === id)?.median;
}

/** A fixed-width text table (the summaries; the main table is cli-table3's). */
export function textTable(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}
