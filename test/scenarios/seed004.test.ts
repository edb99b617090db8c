// Seed 004 scenarios (bpf_spin_lock rules, objects, rbtrees, bpf_res_spin_lock, the abort that
// unwinds): each is registered, and its verdict — decided by the scenario from return values,
// splats, lock words and object / slab accounting — holds. The splat expectations are repeated
// here from the outcome so a verdict that forgot to look at them would still be caught.
import { describe, it, expect } from 'vitest';
import { findScenario, runScenario, type ScenarioOutcome } from '../../src/scenarios/index.js';
import { SEED004_SCENARIOS } from '../../src/scenarios/seed004_graph.js';
import { formatSplat } from '../../src/debug/splat.js';

function detail(out: ScenarioOutcome): string {
  return [out.verdict.observed, ...out.events.map((e) => `cpu${e.cpu}/${e.context}: ${e.what}`), ...out.splats.map(formatSplat)].join('\n');
}

describe('seed 004 scenarios', () => {
  it('are registered under their names, seed 004, with 2 CPUs', () => {
    expect(SEED004_SCENARIOS.map((s) => s.name)).toEqual(['graph-lock-check', 'graph-abort-unwind', 'res-spin-lock-abba']);
    for (const s of SEED004_SCENARIOS) {
      expect(findScenario(s.name)).toBe(s);
      expect(s.seed).toBe('004');
      expect(s.runtime.cpus).toBe(2);
    }
  });

  it('graph-lock-check: B (no lock) is aborted and unwound with one prog_abort splat; A works; the tree is intact', async () => {
    const out = await runScenario('graph-lock-check', { seed: 1 });
    expect(out.verdict.ok, detail(out)).toBe(true);
    expect(out.splats.map((s) => s.kind)).toEqual(['prog_abort']);
    expect(out.splats[0]!.message).toMatch(/graph_rb_nolock.*must be held/);
  });

  it('graph-abort-unwind: bpf_throw in task, softirq, hardirq and NMI releases 2 locks and 3 objects; slab exact; no splat', async () => {
    const out = await runScenario('graph-abort-unwind', { seed: 1 });
    expect(out.verdict.ok, detail(out)).toBe(true);
    expect(out.splats, detail(out)).toEqual([]);
    for (const c of ['task', 'softirq', 'hardirq', 'nmi']) expect(out.events.some((e) => e.context === c && /released 2 lock/.test(e.what))).toBe(true);
  });

  it('res-spin-lock-abba: AB-BA gives -EDEADLK, both CPUs go on, the counter counts the sections; no splat', async () => {
    const out = await runScenario('res-spin-lock-abba', { seed: 1 });
    expect(out.verdict.ok, detail(out)).toBe(true);
    expect(out.splats, detail(out)).toEqual([]);
  });
});
