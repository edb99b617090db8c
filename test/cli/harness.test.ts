// bench/harness.ts: medians, interleaved rounds, ratios against a same-run baseline, the table,
// and the multi-worker throughput harness (compiled: workers run JS).
import { beforeAll, describe, expect, it } from 'vitest';
import {
  median, ratio, runRounds, validateCases, formatFigureTable, benchEnvironment, environmentLine, formatRate,
  type BenchCase,
} from '../../bench/harness.js';
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
    const { runWorkers } = (await import(`${ROOT}/dist/bench/harness.js`)) as typeof import('../../bench/harness.js');
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
