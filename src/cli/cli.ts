/*
 * cli.ts — `bpfsim <command> [options]`: dispatch, help, and the one place errors become exit codes.
 *
 *   0  success                         1  splat / violated invariant / leak / failed scenario
 *   2  bad command line (one line on stderr, never a stack trace)
 *   3  internal error (engine missing or crashed, results failing their schema)
 *   130 interrupted (Ctrl-C): the run stopped early; what ran is checked and reported as INTERRUPTED
 *
 * main() takes its streams, environment and engine loader as parameters, so tests run the
 * commands in-process with a fake engine; main.ts is the thin executable around it. The engine
 * (engine.ts and the modules it wires, the only importers of the library) is loaded lazily, after
 * the command line has been validated: `--help` and argument errors work even when the library
 * cannot be loaded.
 */
import { randomInt } from 'node:crypto';
import type { Engine } from './engine_api.js';
import { EngineUsageError } from './engine_api.js';
import { UsageError, wantsHelp } from './args.js';
import { EXIT_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_SIGINT, EXIT_USAGE } from './limits.js';
import type { CliIo, Command, CommandContext } from './command.js';
import { toolVersion } from './output.js';
import { demoCommand } from './cmd_demo.js';
import { stressCommand } from './cmd_stress.js';
import { benchCommand } from './cmd_bench.js';
import { scenarioCommand } from './cmd_scenario.js';
import { replayCommand } from './cmd_schedule.js';

export type { CliIo, CommandContext, Command } from './command.js';

/** The engine could not be loaded (library missing or failing at import). */
export class EngineLoadError extends Error {
  override readonly name = 'EngineLoadError';
}

export const COMMAND_LIST: readonly Command[] = [demoCommand, stressCommand, benchCommand, scenarioCommand, replayCommand];

export function generalHelp(): string {
  const w = Math.max(...COMMAND_LIST.map((c) => c.name.length));
  return `bpfsim ${toolVersion()} — Linux BPF map machinery (hashtab, percpu_freelist, bpf_mem_alloc, RCU)
on worker_threads sharing one SharedArrayBuffer.

Usage: bpfsim <command> [options]

Commands:
${COMMAND_LIST.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`).join('\n')}

Run 'bpfsim <command> --help' for a command's options.
Every run writes bpfsim-report/results.json and bpfsim-report/report.html (see docs/RESULTS.md).

Exit codes: 0 ok · 1 splat, violated invariant, leak or failed scenario · 2 bad arguments
            3 internal error · 130 interrupted (Ctrl-C: what ran is checked and reported as
            INTERRUPTED; a second Ctrl-C quits at once)
`;
}

async function defaultLoadEngine(): Promise<Engine> {
  const mod = (await import('./engine.js')) as { createEngine: () => Engine };
  return mod.createEngine();
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

function resolveIo(io: Partial<CliIo>): CliIo {
  return {
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    cwd: io.cwd ?? process.cwd(),
    env: io.env ?? process.env,
    loadEngine: io.loadEngine ?? defaultLoadEngine,
    randomSeed: io.randomSeed ?? (() => randomInt(0, 2 ** 31)),
    ...(io.tty !== undefined ? { tty: io.tty } : {}),
    ...(io.progressIntervalMs !== undefined ? { progressIntervalMs: io.progressIntervalMs } : {}),
    ...(io.signal !== undefined ? { signal: io.signal } : {}),
  };
}

/** Run the command line; returns the exit code. Never throws. */
export async function main(argv: readonly string[], ioIn: Partial<CliIo> = {}): Promise<number> {
  const io = resolveIo(ioIn);
  const first = argv[0];
  const cmd = COMMAND_LIST.find((c) => c.name === first);
  const who = cmd === undefined ? 'bpfsim' : `bpfsim ${cmd.name}`;
  const hint = cmd === undefined ? "try 'bpfsim --help'" : `see 'bpfsim ${cmd.name} --help'`;
  try {
    if (first === undefined) throw new UsageError(`missing command (one of ${COMMAND_LIST.map((c) => c.name).join(', ')})`);
    if (first === '--help' || first === '-h' || first === 'help') {
      const topic = argv[1];
      const c = COMMAND_LIST.find((x) => x.name === topic);
      if (topic !== undefined && c === undefined) throw new UsageError(`no help for unknown command '${topic}'`);
      io.stdout.write(c === undefined ? generalHelp() : c.help);
      return 0;
    }
    if (first === '--version' || first === '-V') {
      io.stdout.write(`${toolVersion()}\n`);
      return 0;
    }
    if (cmd === undefined) {
      throw new UsageError(first.startsWith('-') ? `expected a command before '${first}'` : `unknown command '${first}' (one of ${COMMAND_LIST.map((c) => c.name).join(', ')})`);
    }
    const rest = argv.slice(1);
    if (wantsHelp(rest)) {
      io.stdout.write(cmd.help);
      return 0;
    }
    let engine: Promise<Engine> | null = null;
    const ctx: CommandContext = {
      ...io,
      engine: () => (engine ??= io.loadEngine().catch((e: unknown) => {
        throw new EngineLoadError(`cannot load the simulation engine: ${e instanceof Error ? e.message : String(e)}`);
      })),
    };
    const code = await cmd.run(rest, ctx);
    // Ctrl-C during any command: never 0 (or 1) as if the run had completed
    return io.signal?.aborted === true && (code === EXIT_OK || code === EXIT_FAILED) ? EXIT_SIGINT : code;
  } catch (e: unknown) {
    if (e instanceof UsageError || e instanceof EngineUsageError) {
      io.stderr.write(`${who}: ${oneLine(e.message)} (${hint})\n`);
      return EXIT_USAGE;
    }
    const msg = e instanceof Error ? e.message : String(e);
    const debug = io.env.BPFSIM_DEBUG !== undefined && io.env.BPFSIM_DEBUG !== '' && io.env.BPFSIM_DEBUG !== '0';
    if (e instanceof EngineLoadError) {
      io.stderr.write(`${who}: ${oneLine(msg)} (was the project built? npm run build)\n`);
    } else {
      io.stderr.write(`${who}: internal error: ${oneLine(msg)}${debug ? '' : ' (set BPFSIM_DEBUG=1 for details)'}\n`);
    }
    if (debug && e instanceof Error && e.stack !== undefined) io.stderr.write(`${e.stack}\n`);
    return EXIT_INTERNAL;
  }
}
