/*
 * engine.ts — the Engine (engine_api.ts) on top of the bpfsim library: createEngine() wires its
 * calls to the modules that implement them. cli.ts loads this file lazily, after the command line
 * has been validated, so `--help` and argument errors work even when the library cannot be loaded;
 * everything else in src/cli works with the types in engine_api.ts (tests use a fake engine).
 *
 *   runStress      stress.ts (cells, stress_invariants.ts, stress_graph_checks.ts, stress_history.ts)
 *   benchSuite     src/bench/cases.ts (createBenchSuite: the same cases bench/*.bench.ts run)
 *   listScenarios  scenario_adapter.ts (the registry in src/scenarios/; each boots its own runtime)
 *   runScenario    scenario_adapter.ts
 *
 * Only these modules import the library from src/cli (besides limits.ts's MAX_CPUS, and the
 * worker-side programs in ./programs/, which import `../../program.js` as every program does).
 */
import type { Engine, BenchRequest, BenchSuite } from './engine_api.js';
import { runStress } from './stress.js';
import { createBenchSuite } from '../bench/cases.js';
import { listScenarioInfos, runScenarioByName } from './scenario_adapter.js';

export function createEngine(): Engine {
  return {
    runStress,
    benchSuite: (req: BenchRequest): Promise<BenchSuite> => createBenchSuite(req),
    listScenarios: listScenarioInfos,
    runScenario: runScenarioByName,
  };
}
