/*
 * limits.ts — the fixed limits and defaults of the command line.
 *
 * MAX_CPUS comes from the arena layout (src/mem/layout.ts, a constants-only module): the per-CPU
 * blocks and the attach table's 64-bit CPU masks are sized for it, so it is the most CPUs one
 * arena can hold. This is the only thing the CLI takes from the library outside the engine (engine.ts).
 */
import os from 'node:os';
import { MAX_CPUS } from '../mem/layout.js';

export { MAX_CPUS };

/** Where results.json and report.html go unless --out says otherwise. */
export const DEFAULT_OUT_DIR = 'bpfsim-report';

/** Simulated CPUs when --cpus is not given: the machine's cores (at most MAX_CPUS). */
export function defaultCpus(): number {
  return Math.max(1, Math.min(os.availableParallelism(), MAX_CPUS));
}

/** Exit codes of every subcommand. */
export const EXIT_OK = 0;
/** A splat, a violated invariant, a leak, or a failed scenario verdict. */
export const EXIT_FAILED = 1;
/** Bad command line. */
export const EXIT_USAGE = 2;
/** The engine could not run (library missing or crashed) or wrote results that fail the schema. */
export const EXIT_INTERNAL = 3;
/** Interrupted with Ctrl-C (the first stops the run early and still reports it; a second quits at once). */
export const EXIT_SIGINT = 130;
