/*
 * task.ts — the unit of work of the checker and its wire format: a batch of partitions packed in
 * one ArrayBuffer (transferred to a piscina worker, not copied), and runTask(), which both the
 * worker (check_worker.ts) and the in-process path call, so the two paths run the same code.
 *
 * Layout (Int32 words):
 *   [0] TASK_MAGIC  [1] P partitions  [2 .. 2+P) offset of each partition block
 *   block: [0] part id  [1] n  [2] model (MK_*)  [3] zero value id  [4] PF_* flags  [5] range
 *          then n words each: kind, flags, result, value, relax, callRank, retRank
 * A block's arrays are subarray views on the buffer: unpacking copies nothing.
 *
 * Messages: a CheckTask goes in, a PartitionVerdict[] comes out. Both are checked with type guards
 * on arrival (anything from another thread is `unknown` until narrowed).
 */
import type { PartitionOps } from './models.js';
import { checkPartition, type PartitionVerdict } from './verdict.js';

export const TASK_MAGIC = 0x43484b31; // 'CHK1'
const HDR = 6;
const FIELDS = 7;

export interface PackedPartition {
  readonly part: number;
  readonly ops: PartitionOps;
}

/** What a worker receives. */
export interface CheckTask {
  /** packTask() output */
  readonly buf: ArrayBuffer;
  /** Date.now() value at which every partition not finished is 'unknown' */
  readonly deadline: number;
  /** most ms one partition may take (its own deadline starts when the worker starts it) */
  readonly partitionTimeoutMs: number;
  readonly maxCacheEntries: number;
  readonly minimize: boolean;
  readonly kernelProperties: boolean;
}

export function packTask(parts: readonly PackedPartition[]): ArrayBuffer {
  let words = 2 + parts.length;
  for (const { ops } of parts) words += HDR + FIELDS * ops.n;
  const buf = new ArrayBuffer(words * 4);
  const w = new Int32Array(buf);
  w[0] = TASK_MAGIC;
  w[1] = parts.length;
  let off = 2 + parts.length;
  parts.forEach(({ part, ops: p }, j) => {
    w[2 + j] = off;
    w[off] = part; w[off + 1] = p.n; w[off + 2] = p.model; w[off + 3] = p.zero; w[off + 4] = p.pflags; w[off + 5] = p.range;
    let a = off + HDR;
    for (const arr of [p.kind, p.flags, p.result, p.value, p.relax, p.callRank, p.retRank]) { w.set(arr.subarray(0, p.n), a); a += p.n; }
    off = a;
  });
  return buf;
}

export function unpackTask(buf: ArrayBuffer): PackedPartition[] {
  const w = new Int32Array(buf);
  if (w.length < 2 || w[0] !== TASK_MAGIC) throw new TypeError('check task: bad magic');
  const P = w[1]!;
  const out: PackedPartition[] = [];
  for (let j = 0; j < P; j++) {
    const off = w[2 + j]!;
    const n = w[off + 1]!;
    if (off + HDR + FIELDS * n > w.length) throw new TypeError(`check task: partition ${j} overruns the buffer`);
    const view = (f: number): Int32Array => w.subarray(off + HDR + f * n, off + HDR + (f + 1) * n);
    out.push({
      part: w[off]!,
      ops: {
        n, model: w[off + 2]!, zero: w[off + 3]!, pflags: w[off + 4]!, range: w[off + 5]!,
        kind: view(0), flags: view(1), result: view(2), value: view(3), relax: view(4), callRank: view(5), retRank: view(6),
      },
    });
  }
  return out;
}

export function isCheckTask(x: unknown): x is CheckTask {
  if (typeof x !== 'object' || x === null) return false;
  const t = x as Record<string, unknown>;
  return t['buf'] instanceof ArrayBuffer && typeof t['deadline'] === 'number' && typeof t['partitionTimeoutMs'] === 'number'
    && typeof t['maxCacheEntries'] === 'number' && typeof t['minimize'] === 'boolean' && typeof t['kernelProperties'] === 'boolean';
}

const isNumArray = (x: unknown): x is number[] => Array.isArray(x) && x.every((v) => typeof v === 'number');

export function isVerdictList(x: unknown): x is PartitionVerdict[] {
  if (!Array.isArray(x)) return false;
  return x.every((v: unknown) => {
    if (typeof v !== 'object' || v === null) return false;
    const r = v as Record<string, unknown>;
    return typeof r['part'] === 'number' && typeof r['status'] === 'number' && typeof r['relaxMask'] === 'number'
      && isNumArray(r['relaxOps']) && isNumArray(r['relaxKinds']) && isNumArray(r['linearized']) && isNumArray(r['states'])
      && typeof r['stuck'] === 'number' && typeof r['steps'] === 'number' && (r['window'] === null || typeof r['window'] === 'object');
  });
}

/** Check every partition of a task, each under its own deadline. */
export function runTask(task: CheckTask): PartitionVerdict[] {
  return unpackTask(task.buf).map(({ part, ops }) => checkPartition(part, ops, {
    deadline: Math.min(task.deadline, Date.now() + task.partitionTimeoutMs),
    maxCacheEntries: task.maxCacheEntries,
    minimize: task.minimize,
    kernelProperties: task.kernelProperties,
  }));
}
