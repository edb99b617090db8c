/*
 * scenario.ts — named, runnable reproductions of what the seed posts describe. Each scenario boots
 * its own runtime with the options it needs, provokes one situation precisely (interrupts injected
 * at named windows), records what each CPU and context did and got back, and decides its verdict
 * from what it observed: expected return values, expected splats (and no others), invariants.
 *
 * Used by `bpfsim scenario NAME`, the demo, and the tests (one test per scenario).
 */
import type { Splat } from '../debug/splat.js';
import { nowMs } from '../mem/arena.js';
import type { Runtime, RuntimeOptions } from '../runtime/runtime.js';
import type { ContextName } from '../cpu/context.js';

export interface ScenarioEvent {
  readonly cpu: number;
  readonly context: ContextName;
  readonly what: string;
}

export interface ScenarioVerdict {
  readonly ok: boolean;
  readonly expected: string;
  readonly observed: string;
}

export interface ScenarioOutcome {
  readonly name: string;
  readonly seed: string;
  readonly title: string;
  readonly events: readonly ScenarioEvent[];
  readonly verdict: ScenarioVerdict;
  readonly splats: readonly Splat[];
  readonly elapsedMs: number;
}

export interface ScenarioRunOptions {
  /** Runtime seed. @defaultValue 1 */
  readonly seed?: number;
}

export interface Scenario {
  readonly name: string;
  /** Seed post it reproduces: '000' … '004'. */
  readonly seed: string;
  readonly title: string;
  readonly summary: string;
  /** Runtime options the scenario needs (cpus, preemptRt, bucketLock, dynAlloc). */
  readonly runtime: RuntimeOptions;
  /** Provoke the situation; push events; return the verdict. The runtime is stopped afterwards. */
  play(rt: Runtime, log: (e: ScenarioEvent) => void): Promise<ScenarioVerdict>;
}

/** URL of a compiled scenario program (workers import the build, never TypeScript). */
export function programUrl(name: string): URL {
  const here = import.meta.url;
  return here.includes('/dist/')
    ? new URL(`./programs/${name}.js`, here)
    : new URL(`../../dist/src/scenarios/programs/${name}.js`, here);
}

/** A verdict from a list of named checks: ok when all pass; `observed` lists the failures. */
export function verdictOf(expected: string, checks: ReadonlyArray<readonly [string, boolean]>, observed: string): ScenarioVerdict {
  const failed = checks.filter(([, ok]) => !ok).map(([what]) => what);
  return { ok: failed.length === 0, expected, observed: failed.length === 0 ? observed : `${observed}; FAILED: ${failed.join('; ')}` };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll `cond` every millisecond until it holds (true) or `timeoutMs` passed (false): never a hang. */
export async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = nowMs() + timeoutMs;
  while (!cond()) {
    if (nowMs() > end) return false;
    await sleep(1);
  }
  return true;
}
