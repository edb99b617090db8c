// src/bench/harness.ts: medians, interleaved rounds, ratios against a same-run baseline, the table,
// and the multi-worker throughput harness (compiled: workers run JS).
import { beforeAll, describe, expect, it } from 'vitest';
import {
  median, ratio, runRounds, validateCases, formatFigureTable, benchEnvironment, environmentLine, formatRate,
  roundRatios, ratioSpread, spansOne, differenceWord, formatRatioSpread, machineLoad, machineLoadWarning, formatMs,
  type BenchCase, type LoadProbe,
} from '../../src/bench/harness.js';
import { ensureBuilt, ROOT } from './helpers.js';

function fixed(id: string, rate: number, extra: Partial<BenchCase> = {}, log?: string[]): BenchCase {
  let i = 0;
  return {
    id, bench: 'b', label: id, ...extra,
    run: async (s) => { log?.push(id); i++; return { ops: rate * s * (i % 2 === 0 ? 1.1 : 0.9), elapsedNs: s * 1e9 }; },
  };
}

describe('statistics', () => {
  it('median of odd and even counts; never of nothing', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(() => median([])).toThrow(RangeError);
  });
  it('ratio never divides by zero', () => {
    expect(ratio(5, 10)).toBe(0.5);
    expect(ratio(5, 0)).toBe(0);
  });
});

describe('ratio spread', () => {
  it('pairs the rounds: sample i over the baseline\'s sample i', () => {
    expect(roundRatios([10, 20, 30], [10, 10, 10])).toEqual([1, 2, 3]);
    expect(roundRatios([10, 20, 30], [5, 10])).toEqual([2, 2]); // only rounds both have
    expect(roundRatios([1], [0])).toEqual([0]); // never NaN or Infinity
  });

  it('"no difference" exactly when the min–max of the per-round ratios includes 1.0×', () => {
    // hand-made rounds: a case that beats its baseline in every round, one that loses in every round,
    // one that wins some and loses some, one that ties in one round
    expect(ratioSpread([12, 11, 13], [10, 10, 10])).toEqual({ samples: [1.2, 1.1, 1.3], min: 1.1, max: 1.3, noDifference: false });
    expect(ratioSpread([8, 9, 7], [10, 10, 10])).toMatchObject({ min: 0.7, max: 0.9, noDifference: false });
    expect(ratioSpread([11, 9, 10.5], [10, 10, 10])).toMatchObject({ min: 0.9, max: 1.1, noDifference: true });
    expect(ratioSpread([10, 12], [10, 10])).toMatchObject({ min: 1, max: 1.2, noDifference: true });
    // the medians alone would say 1.1× here; the rounds say the two cannot be told apart
    expect(ratioSpread([14, 9, 11], [10, 10, 10]).noDifference).toBe(true);
    expect(spansOne(0.5, 0.99)).toBe(false);
    expect(spansOne(1.01, 2)).toBe(false);
    expect(spansOne(0.99, 1.01)).toBe(true);
  });

  it('runRounds puts the spread and the flag on every figure; a baseline has none', async () => {
    let n = 0;
    const cases: BenchCase[] = [
      { id: 'base', bench: 'b', label: 'base', run: async (s) => ({ ops: 1000 * s, elapsedNs: s * 1e9 }) },
      // alternates 20 % above and below the baseline: its rounds span 1.0×
      { id: 'wobbly', bench: 'b', label: 'wobbly', baseline: 'base', run: async (s) => ({ ops: 1000 * s * (++n % 2 === 0 ? 1.2 : 0.8), elapsedNs: s * 1e9 }) },
      { id: 'fast', bench: 'b', label: 'fast', baseline: 'base', target: 1.5, run: async (s) => ({ ops: 2000 * s, elapsedNs: s * 1e9 }) },
      { id: 'boot', bench: 'b', label: 'boot', unit: 'ms', run: async () => ({ ops: 1, elapsedNs: 5e6 }) },
    ];
    const figs = await runRounds(cases, { rounds: 4, seconds: 1, warmupSeconds: 0 });
    const [b, w, f, t] = figs;
    expect(b).toMatchObject({ ratioSamples: [1, 1, 1, 1], ratioMin: 1, ratioMax: 1, noDifference: null });
    expect(w!.ratioSamples).toHaveLength(4);
    expect(w!.ratioMin).toBeCloseTo(0.8, 10);
    expect(w!.ratioMax).toBeCloseTo(1.2, 10);
    expect(w!.noDifference).toBe(true);
    expect(f).toMatchObject({ ratioMin: 2, ratioMax: 2, noDifference: false, meetsTarget: true });
    expect(t).toMatchObject({ unit: 'ms', median: 5 });
    expect(formatRatioSpread(w!)).toMatch(/^1\.00× \(0\.80–1\.20\)$/);
    expect(differenceWord(w!)).toBe('no difference');
    expect(differenceWord(f!)).toBe('higher');
    expect(differenceWord(b!)).toBe('');
    const table = formatFigureTable(figs, benchEnvironment(), { rounds: 4, seconds: 1 });
    expect(table).toMatch(/wobbly .* 1\.00× \(0\.80–1\.20\) .* no difference/);
    expect(table).toMatch(/fast .* 2\.00× \(2\.00–2\.00\) .* higher/);
    expect(table).toContain('5.00 ms');
    expect(formatMs(-151.2)).toBe('-151 ms');
  });
});

describe('machine load', () => {
  const probe = (loadAvg: number, calibrationMs: number, cpuS: number, atS: number): LoadProbe => ({ loadAvg, calibrationMs, cpuUsageUs: cpuS * 1e6, atMs: atS * 1000 });

  it('a quiet machine: no warning', () => {
    const m = machineLoad(probe(0.3, 10, 0, 0), probe(1.2, 10.5, 60, 60), 2);
    expect(m.busy).toBe(false);
    expect(m.warnings).toEqual([]);
    expect(m.calibrationSlowdown).toBeCloseTo(0.05, 10);
    expect(machineLoadWarning(m)).toBeNull();
  });

  it('says which check fired: load at the start, others\' load at the end, the calibration loop', () => {
    const start = machineLoad(probe(2.5, 10, 0, 0), probe(0.1, 10, 0, 60), 2);
    expect(start.warnings).toEqual(['load average 2.50 ≥ 2 cores at the start']);
    // at the end the run's own threads (2 busy for 60 s: ~1.26 of the 1-minute average) do not count
    const own = machineLoad(probe(0.1, 10, 0, 0), probe(2.2, 10, 120, 60), 2);
    expect(own.ownLoadEnd).toBeCloseTo(2 * (1 - Math.exp(-1)), 6);
    expect(own.busy).toBe(false);
    const others = machineLoad(probe(0.1, 10, 0, 0), probe(3.5, 10, 120, 60), 2);
    expect(others.warnings).toHaveLength(1);
    expect(others.warnings[0]).toMatch(/^load average 3\.50 at the end, 2\.24 of it not this run's/);
    const slow = machineLoad(probe(0.1, 10, 0, 0), probe(0.1, 13, 0, 60), 2);
    expect(slow.warnings).toEqual([expect.stringMatching(/^calibration loop 30 % slower at the end than at the start \(10\.0 → 13\.0 ms; limit 25 %\)$/)]);
    expect(machineLoadWarning(slow)).toMatch(/^warning: the machine was busy during this run \(calibration loop 30 %/);
  });
});

describe('runRounds', () => {
  it('interleaves the cases, one warm-up each, medians and ratios of medians', async () => {
    const log: string[] = [];
    const cases = [fixed('base', 1000, {}, log), fixed('fast', 2000, { baseline: 'base', target: 1.5 }, log), fixed('slow', 100, { baseline: 'base', target: 0.5 }, log)];
    const figs = await runRounds(cases, { rounds: 3, seconds: 1, warmupSeconds: 0.1 });
    expect(log).toEqual(['base', 'fast', 'slow', /* r1 */ 'base', 'fast', 'slow', /* r2 */ 'fast', 'slow', 'base', /* r3 */ 'slow', 'base', 'fast']);
    const [b, f, s] = figs;
    expect(b!.samples).toHaveLength(3);
    expect(b!.ratio).toBe(1);
    expect(b!.baseline).toBe('base');
    expect(f!.ratio).toBeCloseTo(f!.median / b!.median, 12);
    expect(f!.meetsTarget).toBe(true);
    expect(s!.meetsTarget).toBe(false);
    expect(b!.target).toBeNull();
    expect(b!.min).toBeLessThanOrEqual(b!.median);
    expect(b!.max).toBeGreaterThanOrEqual(b!.median);
  });

  it('refuses duplicate ids and missing baselines', () => {
    expect(() => validateCases([fixed('a', 1), fixed('a', 1)])).toThrow(/used twice/);
    expect(() => validateCases([fixed('a', 1, { baseline: 'zz' })])).toThrow(/baseline 'zz', which is not in this run/);
  });

  it('the table names the Node version, the cores, baselines and ratios', async () => {
    const figs = await runRounds([fixed('base', 1e6), fixed('dyn', 9e5, { baseline: 'base', target: 0.9 })], { rounds: 2, seconds: 1, warmupSeconds: 0 });
    const env = benchEnvironment();
    const t = formatFigureTable(figs, env, { rounds: 2, seconds: 1 });
    expect(t).toContain(environmentLine(env));
    expect(t).toContain(`Node ${process.version}`);
    expect(t).toContain(`${env.cores} cores`);
    expect(t).toContain('(baseline)');
    expect(t).toMatch(/dyn .* base .* 0\.9\d×/);
    expect(formatRate(12_345_678)).toBe('12.3 M/s');
  });
});

describe('runWorkers', () => {
  beforeAll(() => ensureBuilt(), 180_000);

  it('measures a JS Map baseline on 1 and 2 worker threads', async () => {
    const { runWorkers } = (await import(`${ROOT}/dist/src/bench/harness.js`)) as typeof import('../../src/bench/harness.js');
    // the elapsed time a measurement reports is bounded by the wall time of the same call (the
    // baseline, measured here): the workers ran inside it, and never longer
    const timed = async (spec: Parameters<typeof runWorkers>[0]): Promise<{ m: Awaited<ReturnType<typeof runWorkers>>; wallNs: number }> => {
      const t0 = process.hrtime.bigint();
      const m = await runWorkers(spec);
      return { m, wallNs: Number(process.hrtime.bigint() - t0) };
    };
    const one = await timed({ threads: 1, seconds: 0.3, kernel: 'js_map_get', entries: 10_000 });
    const two = await timed({ threads: 2, seconds: 0.3, kernel: 'js_map_set', entries: 10_000, locked: true });
    for (const { m, wallNs } of [one, two]) {
      expect(m.ops).toBeGreaterThan(0);
      expect(m.elapsedNs).toBeGreaterThan(0);
      expect(m.elapsedNs).toBeLessThanOrEqual(wallNs);
    }
    await expect(runWorkers({ threads: 0, seconds: 1, kernel: 'js_map_get' })).rejects.toThrow(/threads/);
  });
});
