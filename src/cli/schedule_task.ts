/*
 * schedule_task.ts — one scheduled run as a piscina task (a sweep runs one per seed, each in its
 * own pool thread with its own runtime: a thread holds one runtime at a time).
 */
import { runScheduled, type ScheduledRunConfig, type ScheduledRunResult } from './schedule_run.js';

export default async function scheduledRunTask(config: ScheduledRunConfig): Promise<ScheduledRunResult> {
  return runScheduled(config);
}
