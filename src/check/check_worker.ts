/*
 * check_worker.ts — the piscina worker of the checker: one task (a batch of partitions, task.ts)
 * in, their verdicts out. Loaded compiled (dist/src/check/check_worker.js); no state between
 * tasks. The task's buffer arrives transferred; the verdicts go back by structured clone (small:
 * numbers only).
 */
import { isCheckTask, runTask } from './task.js';
import type { PartitionVerdict } from './verdict.js';

export default function checkWorker(task: unknown): PartitionVerdict[] {
  if (!isCheckTask(task)) throw new TypeError('check_worker: not a check task');
  return runTask(task);
}
