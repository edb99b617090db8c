/*
 * output.ts — what every subcommand shares at its end: assembling the results document, checking
 * it against the schema, writing results.json and report.html, and the terminal summaries.
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Table from 'cli-table3';
import { benchEnvironment } from '../bench/harness.js';
import {
  RESULTS_SCHEMA, validateResults, type Results, type CommandName, type StressSection, type BenchSection,
  type ScenarioRecord,
} from './results.js';
import { renderReport } from './report/html.js';
import { EXIT_FAILED, EXIT_OK, EXIT_SIGINT } from './limits.js';
import { formatBytes, formatCount, formatErrors, formatIrqFlow, formatMs, formatPhases, formatRate } from './format.js';
export { stressCoverage } from './format.js';
import { IRQ_KINDS_SHOWN, IRQ_LABEL } from './irq_stats.js';

/** The results document failed its own schema: a bug in bpfsim, reported as an internal error. */
export class ResultsSchemaError extends Error {
  override readonly name = 'ResultsSchemaError';
}

let version: string | null = null;

/** bpfsim's version from its package.json (found by walking up from this file). */
export function toolVersion(): string {
  if (version !== null) return version;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = path.join(dir, 'package.json');
    if (existsSync(p)) {
      try {
        const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: unknown; version?: unknown };
        if (pkg.name === 'bpfsim' && typeof pkg.version === 'string') return (version = pkg.version);
      } catch { /* keep looking */ }
    }
    dir = path.dirname(dir);
  }
  return (version = '0.0.0');
}

export interface ResultsInput {
  readonly command: CommandName;
  readonly argv: readonly string[];
  readonly startedAt: Date;
  readonly durationMs: number;
  readonly seed: number;
  readonly cpus: number;
  readonly preemptRt: boolean;
  readonly failures: readonly string[];
  /** Ctrl-C cut the run short: exit code 130, verdict not ok. */
  readonly interrupted?: boolean;
  readonly stress?: StressSection;
  readonly bench?: BenchSection;
  readonly scenarios?: readonly ScenarioRecord[];
}

export function makeResults(i: ResultsInput): Results {
  return {
    schema: RESULTS_SCHEMA,
    tool: { name: 'bpfsim', version: toolVersion() },
    command: i.command,
    argv: [i.command, ...i.argv],
    startedAt: i.startedAt.toISOString(),
    durationMs: Math.max(0, i.durationMs),
    environment: benchEnvironment(),
    seed: i.seed,
    cpus: i.cpus,
    preemptRt: i.preemptRt,
    verdict: {
      ok: i.failures.length === 0 && i.interrupted !== true,
      exitCode: i.interrupted === true ? EXIT_SIGINT : i.failures.length === 0 ? EXIT_OK : EXIT_FAILED,
      interrupted: i.interrupted === true,
      failures: [...i.failures],
    },
    stress: i.stress ?? null,
    bench: i.bench ?? null,
    scenarios: i.scenarios === undefined ? null : [...i.scenarios],
  };
}

export interface Written { readonly resultsPath: string; readonly reportPath: string | null }

/** Validate, then write results.json (and report.html unless noReport) into outDir. */
export function writeOutputs(r: Results, outDir: string, noReport: boolean): Written {
  const v = validateResults(JSON.parse(JSON.stringify(r)) as unknown);
  if (!v.ok) throw new ResultsSchemaError(`results.json would not match schema ${RESULTS_SCHEMA}: ${v.errors.slice(0, 3).join('; ')}`);
  mkdirSync(outDir, { recursive: true });
  const resultsPath = path.join(outDir, 'results.json');
  writeFileSync(resultsPath, `${JSON.stringify(r, null, 2)}\n`);
  let reportPath: string | null = null;
  if (!noReport) {
    reportPath = path.join(outDir, 'report.html');
    writeFileSync(reportPath, renderReport(r));
  }
  return { resultsPath, reportPath };
}

function newTable(head: string[], aligns?: ('left' | 'right')[]): Table.Table {
  return new Table({ head, style: { head: [], border: [] }, ...(aligns !== undefined ? { colAligns: aligns } : {}) });
}

/** The end-of-run summary of a stress section (cells, checks, leak, splats). */
export function formatStressSummary(s: StressSection): string {
  const cells = newTable(['map', 'alloc', 'ops', 'ops/s', 'EBUSY', 'ENOMEM', 'other errors', 'rec. misses'],
    ['left', 'left', 'right', 'right', 'right', 'right', 'left', 'right']);
  for (const c of s.cells) {
    const map = c.workload === 'timers' || c.workload === 'graph' ? `${c.map} +${c.workload}` : c.map;
    if (c.status === 'skipped') { cells.push([map, c.alloc, { colSpan: 6, content: `skipped: ${c.skipReason ?? ''}` }]); continue; }
    cells.push([map, c.alloc, formatCount(c.ops), formatRate(c.opsPerSec), formatCount(c.errors.EBUSY ?? 0),
      formatCount(c.errors.ENOMEM ?? 0), formatErrors(c.errors, ['EBUSY', 'ENOMEM']), formatCount(c.recursionMisses)]);
  }
  const t = s.totals;
  const lines = [
    cells.toString(),
    `total ${formatCount(t.ops)} ops in ${formatMs(s.measuredMs)} measured (${formatRate(t.opsPerSec)}); whole round ${formatMs(s.elapsedMs)} (${formatPhases(s)}); grace periods ${formatCount(t.gracePeriods)} (p50 ${s.gpLatency.p50Ms.toFixed(2)} ms, p99 ${s.gpLatency.p99Ms.toFixed(2)} ms)`,
    `interrupts (requested / delivered / coalesced): ${IRQ_KINDS_SHOWN.map((k) => `${IRQ_LABEL[k]} ${formatIrqFlow(t.interrupts[k])}`).join(' · ')} · irq_work ${formatCount(t.interrupts.irqWork)}${IRQ_KINDS_SHOWN.some((k) => t.interrupts[k].requested === null) ? " ('?': not counted by this runtime)" : ''}`,
  ];
  const bad = s.invariants.filter((i) => !i.ok);
  lines.push(`invariants: ${s.invariants.length - bad.length}/${s.invariants.length} held${bad.length > 0 ? ` — VIOLATED: ${bad.map((b) => `${b.name} [${b.scope}]`).join(', ')}` : ''}`);
  lines.push(`leak check after teardown: ${s.leak.ok ? 'ok' : 'FAILED'} (slab ${formatBytes(s.leak.startBytes)} before, ${formatBytes(s.leak.endBytes)} after)`);
  lines.push(`splats: ${s.splats.length}`);
  const checked = s.cells.filter((c) => c.check !== undefined);
  if (checked.length > 0) {
    lines.push('linearizability (bpfsim/check, per cell: ops checked, partitions, illegal, unknown; kernel properties apart):');
    for (const c of checked) {
      const k = c.check!;
      const props = Object.entries(k.kernelProperties).map(([n, v]) => `${n} ×${v}`).join(', ');
      lines.push(`  ${`${c.map}/${c.alloc}`.padEnd(28)} ${k.result.toUpperCase().padEnd(10)} ${formatCount(k.ops)} ops, ${k.partitions} partitions, ${k.illegal} illegal, ${k.unknown} unknown`
        + `${k.opsNotModelled > 0 ? `, ${formatCount(k.opsNotModelled)} not modelled` : ''}${k.dropped > 0 ? `, ${formatCount(k.dropped)} dropped by the recorder (not judged)` : ''}${props !== '' ? `; kernel properties: ${props}` : ''}`);
      if (k.window.length > 0) lines.push(`    shortest illegal window: ${k.window.join(' · ')}`);
    }
  }
  return lines.join('\n');
}

/** One scenario as text: title, numbered events, verdict. */
export function formatScenario(s: ScenarioRecord): string {
  const out = [`scenario ${s.name} (seed ${s.seed}): ${s.title}`];
  s.events.forEach((ev, i) => out.push(`  ${String(i + 1).padStart(3)}. CPU${ev.cpu} ${ev.context.padEnd(7)} ${ev.what}`));
  for (const sp of s.splats) out.push(`       splat ${sp.kind} on CPU ${sp.cpu} (${sp.context}${sp.site !== '' ? ` at ${sp.site}` : ''}): ${sp.message}`);
  out.push(`  verdict: ${s.verdict.ok ? 'PASS' : 'FAIL'} — expected ${s.verdict.expected}; observed ${s.verdict.observed}`);
  return out.join('\n');
}

/**
 * The verdict as text. Interrupted: "verdict: INTERRUPTED — partial run (Ctrl-C): <what ran>",
 * then any failures seen in what ran.
 */
export function formatFailures(failures: readonly string[], interrupted: string | null = null): string {
  if (interrupted !== null) {
    return [`verdict: INTERRUPTED — partial run (Ctrl-C): ${interrupted}`, ...failures.map((f) => `  - ${f}`)].join('\n');
  }
  return failures.length === 0 ? 'verdict: PASS' : ['verdict: FAIL', ...failures.map((f) => `  - ${f}`)].join('\n');
}
