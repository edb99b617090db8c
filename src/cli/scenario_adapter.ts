/*
 * scenario_adapter.ts — the seed scenarios (the registry in src/scenarios/) behind the Engine's
 * listScenarios / runScenario: their info and results turned into engine_api.ts's shapes.
 *
 * Each scenario boots the runtime it needs (CPUs, PREEMPT_RT, lock mode) and stops it; only the
 * seed comes from the command line. Unlike a stress run, a scenario decides its own verdict (it
 * knows which splats it provokes on purpose): the result carries it, with every splat raised.
 * An unknown name is the user's mistake: EngineUsageError (exit code 2), naming the known ones.
 */
import { listScenarios, runScenario } from '../scenarios/index.js';
import { EngineUsageError, type ScenarioInfo, type ScenarioOptions, type ScenarioResult } from './engine_api.js';
import { toSplatRecord } from '../bench/runtime_helpers.js';

/** Engine.listScenarios: every registered scenario, in the registry's order. */
export async function listScenarioInfos(): Promise<readonly ScenarioInfo[]> {
  return listScenarios().map((s) => ({ name: s.name, seed: s.seed, title: s.title, summary: s.summary }));
}

/** Engine.runScenario: run the scenario `name` with the given seed. */
export async function runScenarioByName(name: string, o: ScenarioOptions): Promise<ScenarioResult> {
  if (!listScenarios().some((s) => s.name === name)) {
    throw new EngineUsageError(`unknown scenario '${name}' (known: ${listScenarios().map((x) => x.name).join(', ')})`);
  }
  const r = await runScenario(name, { seed: o.seed });
  return {
    name: r.name, seed: r.seed, title: r.title, events: r.events.map((e) => ({ cpu: e.cpu, context: e.context, what: e.what })),
    verdict: { ...r.verdict }, splats: r.splats.map(toSplatRecord), elapsedMs: r.elapsedMs,
  };
}
