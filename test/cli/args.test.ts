// Validators of the command line: every mistake is a one-line UsageError naming option and value.
import { describe, expect, it } from 'vitest';
import {
  parseCpus, parseSeconds, parseMaps, parseAlloc, parseMix, parseSeed, parseRate, parseBenchNames,
  parseCommandLine, UsageError, wantsHelp, parsePositiveInt, parseFaults,
} from '../../src/cli/args.js';
import { MAX_CPUS } from '../../src/mem/layout.js';

function usage(f: () => unknown): string {
  try { f(); } catch (e) { expect(e).toBeInstanceOf(UsageError); const m = (e as Error).message; expect(m).not.toContain('\n'); return m; }
  throw new Error('expected a UsageError');
}

describe('cpus', () => {
  it('accepts 1..MAX_CPUS and defaults', () => {
    expect(parseCpus(undefined, 3)).toBe(3);
    expect(parseCpus('1', 3)).toBe(1);
    expect(parseCpus(String(MAX_CPUS), 3)).toBe(MAX_CPUS);
  });
  it('refuses more CPUs than the arena holds, zero, negatives and fractions', () => {
    expect(usage(() => parseCpus(String(MAX_CPUS + 1), 1))).toMatch(/at most 64 CPUs/);
    expect(usage(() => parseCpus('0', 1))).toMatch(/at least 1/);
    expect(usage(() => parseCpus('-2', 1))).toMatch(/at least 1/);
    expect(usage(() => parseCpus('2.5', 1))).toMatch(/whole number/);
    expect(usage(() => parseCpus('four', 1))).toMatch(/'four'/);
  });
});

describe('seconds and rates', () => {
  it('accepts positive fractions', () => {
    expect(parseSeconds('0.5', 1)).toBe(0.5);
    expect(parseSeconds(undefined, 7)).toBe(7);
  });
  it('refuses negative, zero, non-numbers, absurd values', () => {
    expect(usage(() => parseSeconds('-3', 1))).toMatch(/positive number of seconds, got -3/);
    expect(usage(() => parseSeconds('0', 1))).toMatch(/positive/);
    expect(usage(() => parseSeconds('abc', 1))).toMatch(/'abc'/);
    expect(usage(() => parseSeconds('Infinity', 1))).toMatch(/number of seconds/);
    expect(usage(() => parseSeconds('1e9', 1))).toMatch(/more than a week/);
  });
  it('rates are >= 0', () => {
    expect(parseRate('0', 5, '--nmi-rate')).toBe(0);
    expect(usage(() => parseRate('-1', 5, '--nmi-rate'))).toMatch(/--nmi-rate must be 0 or more/);
  });
  it('rounds are whole and positive', () => {
    expect(parsePositiveInt('3', 5, '--rounds')).toBe(3);
    expect(usage(() => parsePositiveInt('0', 5, '--rounds'))).toMatch(/between 1 and/);
  });
});

describe('lists', () => {
  it('maps: names, all, dedup, unknown', () => {
    expect(parseMaps('hash,lru_hash,hash')).toEqual(['hash', 'lru_hash']);
    expect(parseMaps('all')).toHaveLength(8);
    expect(usage(() => parseMaps('hash,btree'))).toMatch(/unknown map type 'btree' in --maps \(known: hash, /);
    expect(usage(() => parseMaps(','))).toMatch(/at least one map type/);
  });
  it('alloc modes', () => {
    expect(parseAlloc('kmalloc,prealloc')).toEqual(['kmalloc', 'prealloc']);
    expect(usage(() => parseAlloc('slab'))).toMatch(/unknown alloc mode 'slab'/);
  });
  it('faults', () => {
    expect(parseFaults('drop_freelist_push')).toEqual(['drop_freelist_push']);
    expect(usage(() => parseFaults('explode'))).toMatch(/unknown fault 'explode'/);
  });
  it('bench names', () => {
    expect(parseBenchNames([])).toEqual(['map_perf', 'htab_mem', 'lookup', 'scaling', 'baselines', 'boot', 'oversub']);
    expect(parseBenchNames(['lookup', 'all'])).toEqual(['lookup', 'map_perf', 'htab_mem', 'scaling', 'baselines', 'boot', 'oversub']);
    expect(usage(() => parseBenchNames(['speed']))).toMatch(/unknown benchmark 'speed'/);
  });
});

describe('--mix', () => {
  it('parses weights; missing ops get 0', () => {
    expect(parseMix('update=40,delete=20,lookup=40')).toEqual({ update: 40, delete: 20, lookup: 40 });
    expect(parseMix('lookup=1')).toEqual({ update: 0, delete: 0, lookup: 1 });
    expect(parseMix(undefined)).toEqual({ update: 40, delete: 20, lookup: 40 });
  });
  it.each([
    ['update', /not op=weight/],
    ['update=abc', /weight of 'update' must be a number >= 0, got 'abc'/],
    ['update=-5', /weight of 'update' must be a number >= 0/],
    ['frobnicate=10', /unknown operation 'frobnicate'/],
    ['update=1,update=2', /given twice/],
    ['update=0,lookup=0', /add up to 0/],
    ['update=', /must be a number/],
  ])('refuses %s', (spec, re) => {
    expect(usage(() => parseMix(spec))).toMatch(re);
  });
});

describe('seed', () => {
  it('decimal, hex, random default', () => {
    expect(parseSeed('12', () => 0)).toBe(12);
    expect(parseSeed('0xff', () => 0)).toBe(255);
    expect(parseSeed(undefined, () => 99)).toBe(99);
    expect(usage(() => parseSeed('-1', () => 0))).toMatch(/--seed/);
    expect(usage(() => parseSeed('4294967296', () => 0))).toMatch(/--seed/);
  });
});

describe('parseCommandLine', () => {
  const opts = { seconds: { type: 'string' }, rt: { type: 'boolean' } } as const;
  it('turns parseArgs errors into one line', () => {
    expect(usage(() => parseCommandLine('stress', ['--bogus'], opts, false))).toBe("unknown option '--bogus' for 'bpfsim stress'");
    expect(usage(() => parseCommandLine('stress', ['extra'], opts, false))).toBe("unexpected argument 'extra' for 'bpfsim stress'");
    expect(usage(() => parseCommandLine('stress', ['--seconds'], opts, false))).toMatch(/'--seconds' needs a value/);
    expect(usage(() => parseCommandLine('stress', ['--rt=yes'], opts, false))).toMatch(/'--rt' does not take a value/);
  });
  it('lets a negative number through as the value of an option', () => {
    expect(parseCommandLine('stress', ['--seconds', '-3'], opts, false).values.seconds).toBe('-3');
  });
  it('help is found before --', () => {
    expect(wantsHelp(['--cpus', '3', '-h'])).toBe(true);
    expect(wantsHelp(['--', '--help'])).toBe(false);
  });
});
