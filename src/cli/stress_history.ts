/*
 * stress_history.ts — a stress run's operation history (docs/CHECK.md): `stress --record FILE`
 * appends every recorded map operation as a JSON line, and after a runtime's operations one
 * header line saying what they were recorded on; `stress --check` runs the linearizability
 * checker (bpfsim/check) over each mix cell's operations and keeps, for the report, the first
 * illegal partition's shortest window (illegalTimeline).
 *
 * Invariants: a history with dropped operations (the recording ring was full) is never judged
 * illegal, only 'incomplete'; a cell's check has a budget of 30 s (partitions over it are
 * 'unknown'). Callers: the main thread, after a cell's workload stopped (src/cli/stress.ts).
 */
import { appendFileSync } from 'node:fs';
import { formatHistoryOp } from './format.js';
import type { Runtime } from '../runtime/runtime.js';
import { checkHistory, type IllegalPartition, type HistoryOp as CheckOp } from '../check/index.js';
import type { HistoryOp } from '../maps/map_history.js';
import type { CellCheck, CellTimeline } from './engine_api.js';

/** stress --record FILE: append operations, one JSON line each (docs/CHECK.md). */
export function appendHistory(file: string, ops: readonly HistoryOp[]): void {
  if (ops.length > 0) appendFileSync(file, `${ops.map((op) => JSON.stringify(op)).join('\n')}\n`);
}

/**
 * stress --record FILE: after a runtime's operations, one header line
 * { "bpfsim": "history/1", "dynAlloc", "cpus", "syscallCpu", "recorded", "dropped", "maps" } that
 * says what they were recorded on (`maps` is CheckOptions.maps).
 */
export function writeHistoryHeader(file: string, rt: Runtime, dynAlloc: string): void {
  const st = rt.historyStats();
  const head = { bpfsim: 'history/1', dynAlloc, cpus: rt.cpus, syscallCpu: rt.cpus, recorded: st.recorded, dropped: st.dropped, maps: rt.historyMaps() };
  appendFileSync(file, `${JSON.stringify(head)}\n`);
}

/** Check one cell's history (stress --check): a budget of 30 s; dropped operations make it incomplete. */
export async function checkCell(rt: Runtime, ops: readonly HistoryOp[]): Promise<CellCheck> {
  const dropped = rt.historyStats().dropped;
  const t0 = performance.now();
  const r = await checkHistory(ops, { maps: rt.historyMaps(), syscallCpu: rt.cpus, timeoutMs: 30_000 });
  const kp: Record<string, number> = {};
  for (const k of r.kernelProperties) kp[`${k.kind} (${k.kernelFunction})`] = (kp[`${k.kind} (${k.kernelFunction})`] ?? 0) + 1;
  const first = r.illegal[0];
  const window = first === undefined ? [] : (first.window?.ops ?? first.ops).slice(0, 12).map((i) => formatHistoryOp(ops[i]!));
  const result = r.result === 'illegal' && dropped > 0 ? 'incomplete' : r.result;
  const timeline = first === undefined ? undefined : illegalTimeline(ops, first);
  return {
    result, ops: r.opsChecked, opsNotModelled: r.opsNotModelled, partitions: r.partitions, illegal: r.illegal.length,
    unknown: r.unknown.length, kernelProperties: kp, dropped, elapsedMs: performance.now() - t0, window,
    ...(timeline !== undefined ? { timeline } : {}),
  };
}

/**
 * The report's picture of an illegal partition: its shortest window (or, without one, the whole
 * partition, at most 40 ops), each op with its place in the longest linearization found, the
 * model state after it, and the op that could not follow.
 */
export function illegalTimeline(ops: readonly CheckOp[], part: IllegalPartition): CellTimeline {
  const w = part.window;
  const returned = w?.ops ?? part.ops;
  const pending = new Set(w?.pending ?? []);
  const lin = w?.linearized ?? part.linearized;
  const states = w?.state ?? part.state;
  const stuck = w !== null ? w.stuck : part.stuck;
  const idx = [...returned, ...pending].slice(0, 40);
  return {
    title: `map ${part.map} key ${part.key}${part.cpu !== null ? ` cpu slot ${part.cpu}` : ''} (${part.model})`,
    fromAnyState: w?.fromAnyState ?? false,
    ops: idx.map((i) => {
      const op = ops[i]!;
      const order = lin.indexOf(i);
      return {
        cpu: op.cpu, call: Number(op.call), ret: Number(op.ret), order, state: order >= 0 ? states[order] ?? null : null,
        stuck: i === stuck, pending: pending.has(i),
        label: `${op.op}(${op.key}${op.value !== undefined ? `, ${op.value}` : ''}) = ${String(op.result)}`,
      };
    }),
  };
}
