/*
 * schedule_sweep.ts — `bpfsim stress --schedule MODE --runs N`: many scheduled runs, one seed
 * each, as independent tasks on a piscina pool (each task boots its own runtime in its pool
 * thread), stopping at the first failure; that failure's replay token is what the user gets.
 *
 * Figures: schedules per second, operations checked per second and steps per second, over the
 * sweep's wall time (the pool runs min(threads, cores) tasks at once).
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { ScheduledRunConfig, ScheduledRunResult } from './schedule_run.js';

export interface SweepOptions {
  /** every run's configuration but the seed */
  readonly base: Omit<ScheduledRunConfig, 'seed'>;
  readonly firstSeed: number;
  readonly runs: number;
  /** pool threads @defaultValue min(2, cores) */
  readonly threads?: number;
  /** keep going after a failure @defaultValue false */
  readonly all?: boolean;
  readonly signal?: AbortSignal;
  /** called as each run ends, in completion order */
  readonly onRun?: (r: ScheduledRunResult, done: number) => void;
}

export interface SweepResult {
  readonly runs: number;
  readonly failures: readonly ScheduledRunResult[];
  /** the failing run with the lowest seed (null: none failed) */
  readonly first: ScheduledRunResult | null;
  readonly elapsedMs: number;
  readonly schedulesPerSec: number;
  readonly opsCheckedPerSec: number;
  readonly stepsPerSec: number;
  readonly verdicts: Readonly<Record<string, number>>;
}

function taskUrl(): string {
  const here = import.meta.url;
  return here.includes('/dist/') ? new URL('./schedule_task.js', here).href : new URL('../../dist/src/cli/schedule_task.js', here).href;
}

export async function sweepSchedules(o: SweepOptions): Promise<SweepResult> {
  const threads = Math.max(1, o.threads ?? Math.min(2, availableParallelism()));
  const pool = new Piscina({ filename: taskUrl(), minThreads: threads, maxThreads: threads, idleTimeout: 1000, resourceLimits: { maxOldGenerationSizeMb: 1024 } });
  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  o.signal?.addEventListener('abort', onAbort);
  const t0 = performance.now();
  const done: ScheduledRunResult[] = [];
  const verdicts: Record<string, number> = {};
  try {
    const tasks = [...Array(o.runs).keys()].map(async (i) => {
      const config: ScheduledRunConfig = { ...o.base, seed: (o.firstSeed + i) >>> 0 };
      let r: ScheduledRunResult;
      try {
        r = await pool.run(config, { signal: stop.signal }) as ScheduledRunResult;
      } catch (e) {
        if (stop.signal.aborted) return;
        throw e;
      }
      done.push(r);
      verdicts[r.verdict] = (verdicts[r.verdict] ?? 0) + 1;
      o.onRun?.(r, done.length);
      if (r.verdict !== 'ok' && r.verdict !== 'unknown' && o.all !== true) stop.abort();
    });
    await Promise.all(tasks);
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    await pool.destroy();
  }
  const elapsedMs = performance.now() - t0;
  const failures = done.filter((r) => r.verdict !== 'ok' && r.verdict !== 'unknown').sort((a, b) => a.config.seed - b.config.seed);
  const sec = elapsedMs / 1000;
  return {
    runs: done.length, failures, first: failures[0] ?? null, elapsedMs,
    schedulesPerSec: done.length / sec,
    opsCheckedPerSec: done.reduce((s, r) => s + r.opsChecked, 0) / sec,
    stepsPerSec: done.reduce((s, r) => s + r.steps, 0) / sec,
    verdicts,
  };
}
