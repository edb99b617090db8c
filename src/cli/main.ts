#!/usr/bin/env node
/*
 * main.ts — the `bpfsim` executable (package.json "bin"). Everything happens in cli.ts; this file
 * only wires the process to it: argv, Ctrl-C (first: stop the run early, check and report what
 * ran as INTERRUPTED, exit 130; second: exit 130 at once), and the exit code. Unexpected failures print one line, never a stack
 * trace, unless BPFSIM_DEBUG=1.
 */
import { main } from './cli.js';
import { EXIT_INTERNAL, EXIT_SIGINT } from './limits.js';

const debug = (process.env.BPFSIM_DEBUG ?? '') !== '' && process.env.BPFSIM_DEBUG !== '0';
const last = (e: unknown): void => {
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`bpfsim: internal error: ${msg.replace(/\s*\n\s*/g, ' ')}\n`);
  if (debug && e instanceof Error && e.stack !== undefined) process.stderr.write(`${e.stack}\n`);
  process.exit(EXIT_INTERNAL);
};
process.on('uncaughtException', last);
process.on('unhandledRejection', last);

const ac = new AbortController();
process.on('SIGINT', () => {
  if (ac.signal.aborted) process.exit(EXIT_SIGINT);
  process.stderr.write('\nbpfsim: interrupted — stopping; checking and reporting what ran as a partial run (Ctrl-C again to quit at once)\n');
  ac.abort();
});

const code = await main(process.argv.slice(2), { signal: ac.signal });
process.exitCode = code;
// Let stdout drain; if a stray handle (a worker that did not stop) keeps the loop alive, leave anyway.
setTimeout(() => process.exit(code), 3000).unref();
