/*
 * command.ts — what a command is and what it gets (the io, the engine on demand). cli.ts dispatches
 * to the commands and the commands implement this: apart from both, so neither imports the other.
 */
import type { Engine } from './engine_api.js';
import type { OutStream } from './progress.js';

export interface CliIo {
  readonly stdout: OutStream;
  readonly stderr: OutStream;
  /** Directory relative paths (--out) resolve against. */
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Loads the engine; default: import('./engine.js'). */
  readonly loadEngine: () => Promise<Engine>;
  /** Source of seeds when --seed is not given. */
  readonly randomSeed: () => number;
  /** Force the live display on/off (default: the stream's isTTY). */
  readonly tty?: boolean;
  /** Plain progress: one line per interval. */
  readonly progressIntervalMs?: number;
  /** Aborted on Ctrl-C: runs stop early but still check and report. */
  readonly signal?: AbortSignal;
}

/** What a command gets: the io, plus the engine on demand. */
export interface CommandContext extends CliIo {
  engine(): Promise<Engine>;
}

export interface Command {
  readonly name: string;
  readonly summary: string;
  readonly help: string;
  run(argv: readonly string[], ctx: CommandContext): Promise<number>;
}
