// Shared helpers of the CLI tests: run the CLI in-process with a fake engine, build dist for the
// tests that spawn the real executable, and a complete results document (the report fixture).
import { mkdtempSync, statSync, readdirSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { main, type CliIo } from '../../src/cli/cli.js';
import type { Engine, StressOptions } from '../../src/cli/engine_api.js';
import { ALLOC_MODES, MAP_TYPES } from '../../src/cli/engine_api.js';
import { createFakeEngine, fakeBenchCases, fakeScenarioResult, fakeStressResult, FAKE_SCENARIOS } from './fake_engine.js';
import { runRounds } from '../../src/bench/harness.js';
import { makeResults } from '../../src/cli/output.js';
import { toScenarioRecord, toStressSection, stressFailures, type Results } from '../../src/cli/results.js';
import { DEFAULT_MIX } from '../../src/cli/args.js';

/** A quiet machine, as machineLoad() reports it (the report fixture's bench section). */
export const FAKE_MACHINE = {
  cores: 2, loadAvgStart: 0.4, loadAvgEnd: 1.3, ownLoadEnd: 1.1, calibrationStartMs: 6.1, calibrationEndMs: 6.3,
  calibrationSlowdown: 6.3 / 6.1 - 1, slowdownLimit: 0.25, busy: false, warnings: [],
} as const;

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const TEST_OUTPUT = path.join(ROOT, 'test-output');

export class Capture {
  text = '';
  readonly isTTY: boolean;
  readonly columns = 120;
  constructor(tty = false) { this.isTTY = tty; }
  write(s: string): boolean { this.text += s; return true; }
}

export interface CliRun { readonly code: number; readonly stdout: string; readonly stderr: string }

export async function runCli(argv: readonly string[], o: { engine?: Engine; loadEngine?: CliIo['loadEngine']; cwd?: string; tty?: boolean; progressIntervalMs?: number; signal?: AbortSignal } = {}): Promise<CliRun> {
  const stdout = new Capture(o.tty ?? false);
  const stderr = new Capture(false);
  const engine = o.engine ?? createFakeEngine();
  const code = await main(argv, {
    stdout, stderr, cwd: o.cwd ?? tmpDir(), env: {},
    loadEngine: o.loadEngine ?? (async () => engine),
    randomSeed: () => 424242,
    ...(o.tty !== undefined ? { tty: o.tty } : {}),
    progressIntervalMs: o.progressIntervalMs ?? 0,
    ...(o.signal !== undefined ? { signal: o.signal } : {}),
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

export function tmpDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'bpfsim-cli-'));
}

export function lines(s: string): string[] {
  return s.split('\n').filter((l) => l.trim() !== '');
}

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return t;
}

/**
 * Make sure dist/ has a current build of the CLI and the harness (the tests that spawn the real
 * executable or start harness workers run compiled JS). tsc emits even while other parts of the
 * project do not type-check, so a type error elsewhere does not block these tests.
 */
export function ensureBuilt(): void {
  const bin = path.join(ROOT, 'dist/src/cli/main.js');
  const harness = path.join(ROOT, 'dist/src/bench/harness.js');
  const fresh = existsSync(bin) && existsSync(harness)
    && statSync(bin).mtimeMs >= newestMtime(path.join(ROOT, 'src/cli'))
    && statSync(harness).mtimeMs >= statSync(path.join(ROOT, 'src/bench/harness.ts')).mtimeMs;
  if (fresh) return;
  try {
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', ROOT], { stdio: 'pipe' });
  } catch (e: unknown) {
    if (!existsSync(bin) || !existsSync(harness)) throw new Error(`build failed and produced no CLI: ${String((e as { stdout?: unknown }).stdout ?? e)}`);
  }
}

/** A complete results document (demo-shaped: stress, bench with scaling, scenarios). */
export async function fixtureResults(): Promise<Results> {
  const opts: StressOptions = {
    cpus: 4, seconds: 10, maps: [...MAP_TYPES], alloc: [...ALLOC_MODES], nmiRate: 2000, irqRate: 2000,
    preemptRt: false, seed: 7, mix: DEFAULT_MIX, faults: [], sampleIntervalMs: 250,
  };
  const stress = toStressSection(opts, fakeStressResult(opts, 40));
  // one splat, with HTML in its message: the report must escape it
  const withSplat = { ...stress, splats: [{ kind: 'warn', cpu: 2, context: 'nmi' as const, site: 'htab.update.locked', heldLocks: ['htab_bucket'], message: 'test </script><script>window.__pwned=1</script> & <b>bold</b>', timeNs: 123456 }] };
  const req = { names: ['map_perf', 'lookup', 'htab_mem', 'scaling'] as const, cpus: 4, maps: ['hash', 'percpu_hash', 'lru_hash'] as const, alloc: [...ALLOC_MODES], preemptRt: false, seed: 7 };
  const figures = await runRounds(fakeBenchCases({ ...req, names: [...req.names], maps: [...req.maps] }), { rounds: 3, seconds: 0.5, warmupSeconds: 0 });
  const scenarios = FAKE_SCENARIOS.map((s) => toScenarioRecord(fakeScenarioResult(s)));
  return makeResults({
    command: 'demo', argv: ['--seed', '7'], startedAt: new Date('2026-01-02T03:04:05Z'), durationMs: 61_000, seed: 7, cpus: 4, preemptRt: false,
    failures: [...stressFailures(withSplat), "scenario 'always-fails' failed: expected the NMI update gets -EBUSY; observed the NMI update got 0"],
    stress: withSplat, bench: { names: [...req.names], rounds: 3, seconds: 0.5, cpus: 4, figures, skipped: [{ id: 'lookup/hash/2', reason: 'needs 2 CPUs' }], interrupted: false, shortened: [], machine: FAKE_MACHINE }, scenarios,
  });
}
