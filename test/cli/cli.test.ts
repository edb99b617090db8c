// The command line's contract: bad arguments → exactly one line on stderr and exit code 2, never
// a stack trace; --help works for every subcommand (and wins over other arguments).
import { describe, expect, it } from 'vitest';
import { runCli, lines } from './helpers.js';
import { COMMAND_LIST } from '../../src/cli/cli.js';
import { createFakeEngine } from './fake_engine.js';

const BAD: [string, string[], RegExp][] = [
  ['unknown map type', ['stress', '--maps', 'hash,btree'], /unknown map type 'btree'/],
  ['negative seconds', ['stress', '--seconds', '-3'], /--seconds must be a positive number of seconds, got -3/],
  ['negative seconds (=)', ['stress', '--seconds=-1'], /positive number of seconds/],
  ['zero seconds', ['bench', '--seconds', '0'], /positive/],
  ['seconds not a number', ['stress', '--seconds', 'soon'], /'soon'/],
  ['too many CPUs', ['stress', '--cpus', '65'], /--cpus 65: the arena holds at most 64 CPUs/],
  ['too many CPUs (demo)', ['demo', '--cpus', '1000'], /at most 64 CPUs/],
  ['too many CPUs (bench)', ['bench', 'scaling', '--cpus', '128'], /at most 64 CPUs/],
  ['zero CPUs', ['stress', '--cpus', '0'], /at least 1/],
  ['unknown alloc mode', ['stress', '--alloc', 'prealloc,slab'], /unknown alloc mode 'slab'/],
  ['bad --mix op', ['stress', '--mix', 'update=40,frob=60'], /--mix: unknown operation 'frob'/],
  ['bad --mix weight', ['stress', '--mix', 'update=x'], /weight of 'update'/],
  ['bad --mix syntax', ['stress', '--mix', 'update'], /not op=weight/],
  ['--mix all zero', ['stress', '--mix', 'update=0'], /add up to 0/],
  ['negative NMI rate', ['stress', '--nmi-rate', '-5'], /--nmi-rate must be 0 or more/],
  ['bad seed', ['stress', '--seed', 'abc'], /--seed must be a whole number/],
  ['unknown option', ['stress', '--frobnicate'], /unknown option '--frobnicate' for 'bpfsim stress'/],
  ['stray argument', ['stress', 'now'], /unexpected argument 'now'/],
  ['option without value', ['stress', '--cpus'], /'--cpus' needs a value/],
  ['unknown benchmark', ['bench', 'speed'], /unknown benchmark 'speed'/],
  ['zero rounds', ['bench', '--rounds', '0'], /--rounds must be between 1 and/],
  ['unknown scenario', ['scenario', 'no-such-scenario'], /unknown scenario 'no-such-scenario'/],
  ['--list with names', ['scenario', '--list', 'x'], /--list takes no scenario names/],
  ['unknown fault', ['stress', '--fault', 'boom'], /unknown fault 'boom'/],
  ['unknown command', ['frob'], /unknown command 'frob'/],
  ['no command', [], /missing command/],
  ['option before command', ['--cpus', '4'], /expected a command before '--cpus'/],
  ['help for unknown command', ['help', 'frob'], /no help for unknown command 'frob'/],
];

describe('bad arguments', () => {
  it.each(BAD)('%s → exit 2, one line', async (_what, argv, re) => {
    const engine = createFakeEngine();
    const r = await runCli(argv, { engine });
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(re);
    expect(r.stderr).toMatch(/^bpfsim( \w+)?: /);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(r.stdout).toBe('');
    expect(engine.stressCalls).toHaveLength(0); // nothing ran
  });

  it('the line points at the help of the command', async () => {
    const r = await runCli(['stress', '--cpus', '99']);
    expect(r.stderr.trim()).toBe("bpfsim stress: --cpus 99: the arena holds at most 64 CPUs (MAX_CPUS in src/mem/layout.ts) (see 'bpfsim stress --help')");
  });

  it('an engine that cannot load → exit 3, one line, no stack', async () => {
    const r = await runCli(['stress', '--seconds', '1'], { loadEngine: async () => { throw new Error("Cannot find module '../index.js'\n    at somewhere"); } });
    expect(r.code).toBe(3);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/cannot load the simulation engine: Cannot find module/);
  });

  it('an engine crash → exit 3, one line naming it', async () => {
    const engine = { ...createFakeEngine(), runStress: async () => { throw new TypeError('boom'); } };
    const r = await runCli(['stress', '--seconds', '1', '--seed', '5'], { engine });
    expect(r.code).toBe(3);
    expect(lines(r.stderr)).toEqual(["bpfsim stress: internal error: boom (set BPFSIM_DEBUG=1 for details)"]);
  });
});

describe('--help', () => {
  it.each(COMMAND_LIST.map((c) => c.name))('%s --help, -h and `help %s`', async (name) => {
    for (const argv of [[name, '--help'], [name, '-h'], ['help', name], [name, '--cpus', '999', '--help']]) {
      const r = await runCli(argv);
      expect(r.code, argv.join(' ')).toBe(0);
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain(`Usage: bpfsim ${name}`);
      expect(r.stdout).toContain('--json');
    }
  });

  it('general help lists every command and the exit codes', async () => {
    for (const argv of [['--help'], ['-h'], ['help']]) {
      const r = await runCli(argv);
      expect(r.code).toBe(0);
      for (const c of COMMAND_LIST) expect(r.stdout).toContain(c.name);
      expect(r.stdout).toMatch(/Exit codes/);
    }
  });

  it('--version prints the package version', async () => {
    const r = await runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
