/*
 * common.ts — options every subcommand shares (--seed, --rt, --out, --no-report, --json) and the
 * end-of-run sequence (results document → results.json + report.html → paths or JSON on stdout).
 */
import path from 'node:path';
import { flag, parseOutDir, parseSeed, type OptionSpec, type Parsed } from './args.js';
import { DEFAULT_OUT_DIR } from './limits.js';
import type { CommandContext } from './command.js';
import type { Results } from './results.js';
import { writeOutputs } from './output.js';
import { createProgress, loadLiveDisplay, wantsLive, type Progress } from './progress.js';

export const COMMON_OPTIONS: OptionSpec = {
  seed: { type: 'string' },
  out: { type: 'string' },
  'no-report': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

export const COMMON_HELP = `Output:
  --out DIR        where results.json and report.html go (default: ${DEFAULT_OUT_DIR})
  --no-report      write results.json only
  --json           print the results document (docs/RESULTS.md) on stdout instead of tables;
                   progress then goes to stderr
  -h, --help       this help`;

export interface Common {
  readonly seed: number;
  readonly preemptRt: boolean;
  readonly outDir: string;
  readonly noReport: boolean;
  readonly json: boolean;
}

export function commonOptions(p: Parsed, ctx: CommandContext, defaultSeed?: number): Common {
  return {
    seed: parseSeed(p.values.seed, defaultSeed === undefined ? ctx.randomSeed : () => defaultSeed),
    preemptRt: flag(p.values.rt),
    outDir: path.resolve(ctx.cwd, parseOutDir(p.values.out, DEFAULT_OUT_DIR)),
    noReport: flag(p.values['no-report']),
    json: flag(p.values.json),
  };
}

/** --rt, for the commands that boot their own runtimes (stress, bench, demo). */
export const RT_OPTION: OptionSpec = { rt: { type: 'boolean' } };

/** Human output goes to stdout, unless --json reserves stdout for the document. */
export function humanStream(c: Common, ctx: CommandContext): CommandContext['stdout'] {
  return c.json ? ctx.stderr : ctx.stdout;
}

export async function progressFor(c: Common, ctx: CommandContext, title: string): Promise<Progress> {
  const stream = humanStream(c, ctx);
  if (wantsLive({ stream, ...(ctx.tty !== undefined ? { tty: ctx.tty } : {}) })) await loadLiveDisplay();
  return createProgress({
    stream, title,
    ...(ctx.tty !== undefined ? { tty: ctx.tty } : {}),
    ...(ctx.progressIntervalMs !== undefined ? { intervalMs: ctx.progressIntervalMs } : {}),
  });
}

/** Write the files, then print where they are (or the document itself with --json). */
export function finish(r: Results, c: Common, ctx: CommandContext): void {
  const w = writeOutputs(r, c.outDir, c.noReport);
  if (c.json) {
    ctx.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    return;
  }
  const rel = (p: string): string => path.relative(ctx.cwd, p) || p;
  ctx.stdout.write(`results: ${rel(w.resultsPath)}${w.reportPath !== null ? `\nreport:  ${rel(w.reportPath)}` : ''}\n`);
}
