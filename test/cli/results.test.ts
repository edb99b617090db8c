/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access -- these tests corrupt untyped JSON documents at arbitrary paths on purpose */
// The results.json schema: the validator accepts every document the CLI writes and rejects
// anything else with a path to the problem.
import { describe, expect, it } from 'vitest';
import { validateResults, gpLatency, percentile, groupSplats, RESULTS_SCHEMA, GP_SAMPLES_MAX, type Results } from '../../src/cli/results.js';
import { fixtureResults } from './helpers.js';

function mutate(r: Results, f: (x: Record<string, any>) => void): unknown {
  const c = JSON.parse(JSON.stringify(r)) as Record<string, any>;
  f(c);
  return c;
}

function errorsOf(v: unknown): string[] {
  const r = validateResults(v);
  return r.ok ? [] : [...r.errors];
}

describe('validateResults', () => {
  it('accepts the fixture (demo-shaped, every section present) after a JSON round trip', async () => {
    const r = await fixtureResults();
    expect(r.schema).toBe(RESULTS_SCHEMA);
    expect(errorsOf(JSON.parse(JSON.stringify(r)))).toEqual([]);
  });

  it('rejects with the path of the problem', async () => {
    const r = await fixtureResults();
    expect(errorsOf(mutate(r, (x) => { delete x.seed; }))).toContain('.seed: missing');
    expect(errorsOf(mutate(r, (x) => { x.extra = 1; }))).toContain('.extra: unknown key');
    expect(errorsOf(mutate(r, (x) => { x.schema = 'bpfsim-results/1'; }))[0]).toMatch(/^\.schema: expected one of "bpfsim-results\/2"/);
    expect(errorsOf(mutate(r, (x) => { x.stress.cells[0].map = 'btree'; }))[0]).toMatch(/^\.stress\.cells\[0\]\.map: expected one of "hash"/);
    expect(errorsOf(mutate(r, (x) => { x.bench.figures[1].ratio = null; }))).toContain('.bench.figures[1].ratio: expected a number >= 0, got null');
    expect(errorsOf(mutate(r, (x) => { x.stress.totals.errors.EBUSY = -1; }))).toContain('.stress.totals.errors.EBUSY: expected a number >= 0, got -1');
    expect(errorsOf(mutate(r, (x) => { x.stress.caches[0].points[0] = [1]; }))[0]).toMatch(/points\[0\]: expected a \[number, number\] pair/);
    expect(errorsOf(mutate(r, (x) => { x.startedAt = 'yesterday'; }))[0]).toMatch(/startedAt: expected an ISO 8601 date/);
    expect(errorsOf('nope')).toEqual(['(root): expected an object, got "nope"']);
    // interrupt figures: counts, or null where the runtime does not count them
    expect(errorsOf(mutate(r, (x) => { x.stress.totals.interrupts.nmi.requested = null; x.stress.totals.interrupts.nmi.coalesced = null; }))).toEqual([]);
    expect(errorsOf(mutate(r, (x) => { x.stress.totals.interrupts.nmi.delivered = null; }))).toContain('.stress.totals.interrupts.nmi.delivered: expected a number >= 0, got null');
    expect(errorsOf(mutate(r, (x) => { x.stress.totals.interrupts.hardirq = 5; }))).toContain('.stress.totals.interrupts.hardirq: expected an object, got 5');
  });

  it('checks rules across fields', async () => {
    const r = await fixtureResults();
    expect(errorsOf(mutate(r, (x) => { x.verdict.ok = true; }))).toContain('.verdict: ok must be true exactly when failures is empty and the run was not interrupted');
    // interrupted: never ok, always exit code 130, and a section that says so needs the verdict to
    const clean = mutate(r, (x) => { x.verdict.failures = []; x.verdict.ok = true; x.verdict.exitCode = 0; x.stress.splats = []; }) as Record<string, any>;
    expect(errorsOf(clean)).toEqual([]);
    expect(errorsOf(mutate(clean as Results, (x) => { x.verdict.interrupted = true; x.verdict.exitCode = 130; }))).toContain('.verdict: ok must be true exactly when failures is empty and the run was not interrupted');
    expect(errorsOf(mutate(clean as Results, (x) => { x.verdict.interrupted = true; x.verdict.ok = false; }))).toContain('.verdict: exitCode must be 130 exactly when the run was interrupted');
    expect(errorsOf(mutate(clean as Results, (x) => { x.stress.interrupted = true; }))).toContain('.stress.interrupted: the verdict must say interrupted too');
    expect(errorsOf(mutate(clean as Results, (x) => { x.stress.interrupted = true; x.verdict.interrupted = true; x.verdict.ok = false; x.verdict.exitCode = 130; }))).toEqual([]);
    expect(errorsOf(mutate(r, (x) => { x.stress = null; x.bench = null; x.scenarios = null; }))).toContain('(root): at least one of stress, bench, scenarios must be present');
    expect(errorsOf(mutate(r, (x) => { x.bench.figures[1].baseline = 'nowhere'; }))[0]).toMatch(/baseline: 'nowhere' is not a figure of this run/);
  });

  it('caps the grace-period samples', async () => {
    const r = await fixtureResults();
    const many = mutate(r, (x) => { x.stress.gpLatency.samplesMs = new Array(GP_SAMPLES_MAX + 1).fill(1); });
    expect(errorsOf(many)[0]).toMatch(/at most 2000 items/);
  });
});

describe('derived figures', () => {
  it('percentiles by nearest rank', () => {
    const s = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(s, 50)).toBe(5);
    expect(percentile(s, 90)).toBe(9);
    expect(percentile(s, 99)).toBe(10);
    expect(percentile([], 50)).toBe(0);
  });

  it('gpLatency summarises and thins evenly', () => {
    const g = gpLatency(Array.from({ length: 10_000 }, (_, i) => i / 100));
    expect(g.count).toBe(10_000);
    expect(g.samplesMs).toHaveLength(GP_SAMPLES_MAX);
    expect(g.maxMs).toBeCloseTo(99.99);
    expect(g.p50Ms).toBeCloseTo(49.99);
    expect(gpLatency([])).toEqual({ count: 0, samplesMs: [], p50Ms: 0, p90Ms: 0, p99Ms: 0, maxMs: 0 });
  });

  it('identical splats are grouped into one failure line with a count', () => {
    const base = { kind: 'deadlock', context: 'nmi' as const, site: 'bpf_lru.pop.locked', heldLocks: [], timeNs: 1 };
    const out = groupSplats([
      { ...base, cpu: 2, message: 'AA deadlock: lru_local_lock at 0xff7c694 already held by this CPU' },
      { ...base, cpu: 0, message: 'AA deadlock: lru_local_lock at 0xff7c594 already held by this CPU' },
      { ...base, cpu: 2, message: 'AA deadlock: lru_local_lock at 0xff7c694 already held by this CPU' },
      { ...base, cpu: 1, kind: 'lock_order', site: 'htab.update.locked', message: 'possible circular locking dependency' },
    ]);
    expect(out).toEqual([
      'splat deadlock ×3 (nmi at bpf_lru.pop.locked, CPUs 0,2): AA deadlock: lru_local_lock at 0xff7c694 already held by this CPU',
      'splat lock_order on CPU 1 (nmi at htab.update.locked): possible circular locking dependency',
    ]);
  });
});
