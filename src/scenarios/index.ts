/*
 * index.ts — the scenario registry: every seed scenario by name, and the runner that boots the
 * runtime a scenario asks for, plays it, collects its splats and always stops the runtime.
 */
import { Runtime } from '../runtime/runtime.js';
import type { Scenario, ScenarioEvent, ScenarioOutcome, ScenarioRunOptions } from './scenario.js';
import { SEED000_SCENARIOS } from './seed000_rt.js';
import { SEED001_SCENARIOS } from './seed001_mem_alloc.js';
import { SEED002_SCENARIOS } from './seed002_synchronize.js';
import { SEED003_SCENARIOS } from './seed003_timers.js';
import { SEED000_MIGRATE_SCENARIOS } from './seed000_migrate.js';
import { SEED004_SCENARIOS } from './seed004_graph.js';

export * from './scenario.js';

export const SCENARIOS: readonly Scenario[] = [...SEED000_SCENARIOS, ...SEED000_MIGRATE_SCENARIOS, ...SEED001_SCENARIOS, ...SEED002_SCENARIOS, ...SEED003_SCENARIOS, ...SEED004_SCENARIOS];

export function listScenarios(): readonly Scenario[] { return SCENARIOS; }

export function findScenario(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}

export async function runScenario(name: string, o: ScenarioRunOptions = {}): Promise<ScenarioOutcome> {
  const sc = findScenario(name);
  if (sc === undefined) throw new RangeError(`unknown scenario '${name}'; known: ${SCENARIOS.map((s) => s.name).join(', ')}`);
  const t0 = performance.now();
  const rt = await Runtime.start({ ...sc.runtime, seed: o.seed ?? 1 });
  const events: ScenarioEvent[] = [];
  try {
    const verdict = await sc.play(rt, (e) => events.push(e));
    return { name: sc.name, seed: sc.seed, title: sc.title, events, verdict, splats: rt.splats(), elapsedMs: performance.now() - t0 };
  } finally {
    await rt.stop();
  }
}
