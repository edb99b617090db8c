// Every seed scenario, by name: its verdict must hold (expected return values, expected splats
// and no others, invariants).
import { describe, it, expect } from 'vitest';
import { listScenarios, runScenario } from '../../src/scenarios/index.js';
import { formatSplat } from '../../src/debug/splat.js';

describe('seed scenarios', () => {
  for (const sc of listScenarios()) {
    it(`${sc.seed}: ${sc.name}`, async () => {
      const out = await runScenario(sc.name, { seed: 1 });
      const detail = [out.verdict.observed, ...out.events.map((e) => `cpu${e.cpu}/${e.context}: ${e.what}`), ...out.splats.map(formatSplat)].join('\n');
      expect(out.verdict.ok, detail).toBe(true);
    });
  }
});
