/*
 * check.ts — checkHistory(): is a recorded history of BPF map operations linearizable?
 * (API.md "Checking and replay", docs/CHECK.md.)
 *
 * Pipeline (main thread, then workers):
 *   validate (history.ts) -> partition by (map, key[, cpu]) and intern values (partition.ts) ->
 *   pack partitions into tasks (task.ts) -> check each partition: strict, kernel-property
 *   re-checks, shortest window (verdict.ts over search.ts) -> map verdicts back to input indices.
 * Partitions are independent, CPU-bound and small, which is the job a piscina pool is for: tasks
 * go to dist/src/check/check_worker.js with their buffer transferred, each with an AbortSignal
 * (the hard stop; every search also stops itself at its deadline, which is what normally happens)
 * and workers we create run under resourceLimits. Histories of at most inProcessMaxOps modelled
 * ops run on the calling thread instead (the same runTask(), one task at a time, yielding between
 * tasks): a pool costs more to start than they take.
 *
 * Budget: timeoutMs bounds the whole check; partitionTimeoutMs bounds one partition (from when a
 * worker starts it). A partition out of budget (time, or Lowe's cache over maxCacheEntries) is
 * 'unknown', never 'ok'. The overall result is 'illegal' if any partition is illegal, else
 * 'unknown' if any is unknown, else 'ok'. Kernel properties never make a result illegal.
 *
 * Ownership: a pool passed in (options.pool) is the caller's and is left running; a pool created
 * here is destroyed before checkHistory returns, also on error.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { MAP_TYPE_NAMES, validateHistory, type HistoryOp, type MapTypeName, type NormalizedHistory } from './history.js';
import { ABSENT, ANYP, MODEL_NAMES, MK_LRU, MK_LRU_PERCPU_HASH, OOB, OP_UPDATE, RELAX_FOREIGN, RELAX_MISS, type ModelName } from './models.js';
import { modelOfType, partitionHistory, type MapInfo, type PartitionMeta, type Partitioned } from './partition.js';
import { isVerdictList, packTask, runTask, type CheckTask, type PackedPartition } from './task.js';
import { V_ILLEGAL, V_OK, V_UNKNOWN_MEMORY, V_UNKNOWN_TIMEOUT, type PartitionVerdict } from './verdict.js';

/** The model to apply to maps whose type the history does not give: a map type, or 'lru' / 'percpu' (lru_hash / percpu_hash). */
export type CheckModel = MapTypeName | 'lru' | 'percpu';

/** A piscina pool checkHistory can run on (createCheckPool() makes a suitable one). */
export type CheckPool = Piscina;

export interface CheckOptions {
  /** Model for maps with no type in `maps` or in the ops' mapType. @defaultValue 'hash' */
  readonly model?: CheckModel;
  /** Budget for the whole check, ms. Partitions not done by then are 'unknown'. @defaultValue 10_000 */
  readonly timeoutMs?: number;
  /** Budget for one partition, ms, counted from when it starts. @defaultValue timeoutMs */
  readonly partitionTimeoutMs?: number;
  /** What is known about each map, by map id (a plain object or a Map). */
  readonly maps?: Readonly<Record<number, MapInfo>> | ReadonlyMap<number, MapInfo>;
  /** Ops on this CPU id are syscall-side when they have no `side` (bpfsim: the housekeeping CPU, id = number of CPUs). */
  readonly syscallCpu?: number;
  /** A pool to run on (left running). Without one, checkHistory creates one when it needs it and destroys it after. */
  readonly pool?: CheckPool;
  /** Histories with at most this many modelled ops are checked on the calling thread. 0: always the pool. @defaultValue 2048 */
  readonly inProcessMaxOps?: number;
  /** Worker threads of a pool created here. @defaultValue availableParallelism() */
  readonly threads?: number;
  /** Compute the shortest window of each illegal partition. @defaultValue true */
  readonly minimize?: boolean;
  /** Re-check illegal partitions with the known kernel properties allowed (docs/CHECK.md). false: strict only. @defaultValue true */
  readonly kernelProperties?: boolean;
  /** Lowe's cache entries one partition search may hold before giving up ('unknown', reason 'memory'). @defaultValue 4_000_000 */
  readonly maxCacheEntries?: number;
  /** resourceLimits.maxOldGenerationSizeMb of the workers of a pool created here. @defaultValue 2048 */
  readonly maxOldGenerationSizeMb?: number;
}

const DEFAULTS = Object.freeze({
  model: 'hash' as CheckModel,
  timeoutMs: 10_000,
  inProcessMaxOps: 2048,
  minimize: true,
  kernelProperties: true,
  maxCacheEntries: 4_000_000,
  maxOldGenerationSizeMb: 2048,
});
const OPTION_KEYS = [
  'model', 'timeoutMs', 'partitionTimeoutMs', 'maps', 'syscallCpu', 'pool', 'inProcessMaxOps', 'threads', 'minimize',
  'kernelProperties', 'maxCacheEntries', 'maxOldGenerationSizeMb',
] as const;
/** Extra time the AbortSignal of a pool task allows past the deadline (the searches stop themselves at it). */
const ABORT_GRACE_MS = 2000;

export type KernelPropertyKind = 'replace_lookup_miss' | 'foreign_read';
export type UnknownReason = 'timeout' | 'memory' | 'aborted' | 'worker_error';

export interface PartitionInfo {
  readonly map: number;
  readonly key: string;
  /** per-CPU maps: the CPU whose slot the partition is; otherwise null */
  readonly cpu: number | null;
  readonly model: ModelName;
  /** number of ops in the partition */
  readonly opCount: number;
}

/** A slice of one partition that is illegal on its own. */
export interface HistoryWindow {
  /** ops that returned inside the window (input indices, call order) */
  readonly ops: number[];
  /** ops still running at the window's end: they may take effect or not */
  readonly pending: number[];
  /** the window starts after the history did, from whatever state the key was in */
  readonly fromAnyState: boolean;
  /** call stamp of its first op, return stamp of its last returned op */
  readonly from: number;
  readonly to: number;
  /** the longest linearization of the window found, the states after it, and the op that could not follow */
  readonly linearized: number[];
  readonly state: string[];
  readonly stuck: number | null;
}

export interface IllegalPartition extends PartitionInfo {
  /** every op of the partition (input indices, call order) */
  readonly ops: number[];
  /** the longest partial linearization found (input indices, in linearization order) */
  readonly linearized: number[];
  /** the model states after it: 'absent', 'out_of_range', 'present(any)' or the value (hex) */
  readonly state: string[];
  /** the op that could not be linearized next at that point */
  readonly stuck: number | null;
  /** the shortest window still illegal (null with minimize: false) */
  readonly window: HistoryWindow | null;
  /** kernel properties that were allowed and still did not explain it */
  readonly relaxed: KernelPropertyKind[];
}

export interface UnknownPartition extends PartitionInfo {
  readonly reason: UnknownReason;
  readonly message?: string;
}

export interface KernelPropertyReport {
  readonly kind: KernelPropertyKind;
  /** the kernel function responsible */
  readonly kernelFunction: string;
  readonly map: number;
  readonly key: string;
  readonly cpu: number | null;
  /** the lookups that needed it (input indices) */
  readonly ops: number[];
  /** replace_lookup_miss: the overlapping updates; foreign_read: the updates of other keys that wrote the values read */
  readonly related: number[];
  readonly description: string;
}

export interface CheckResult {
  readonly result: 'ok' | 'illegal' | 'unknown';
  /** partitions checked (modelled ones) */
  readonly partitions: number;
  readonly illegal: IllegalPartition[];
  readonly unknown: UnknownPartition[];
  readonly kernelProperties: KernelPropertyReport[];
  /** ops in partitions that got a verdict (ok or illegal) */
  readonly opsChecked: number;
  /** ops no model covers (map-in-map types; syscall-side ops on per-CPU maps) */
  readonly opsNotModelled: number;
  /** model steps taken by all searches */
  readonly steps: number;
  readonly elapsedMs: number;
  readonly ranOn: 'in-process' | 'pool';
}

export interface CheckPoolOptions {
  /** @defaultValue availableParallelism() */
  readonly threads?: number;
  /** @defaultValue 2048 */
  readonly maxOldGenerationSizeMb?: number;
}

/** The compiled worker: next to this file in dist, or dist/ seen from the TypeScript sources (tests). */
export function checkWorkerPath(): string {
  const here = import.meta.url;
  const url = here.includes('/dist/') ? new URL('./check_worker.js', here) : new URL('../../dist/src/check/check_worker.js', here);
  return fileURLToPath(url);
}

/** A piscina pool for checkHistory (pass it as options.pool to reuse it across checks; destroy() it when done). */
export function createCheckPool(o: CheckPoolOptions = {}): CheckPool {
  const threads = o.threads ?? availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`createCheckPool: threads must be an integer >= 1; got ${String(threads)}`);
  const mb = o.maxOldGenerationSizeMb ?? DEFAULTS.maxOldGenerationSizeMb;
  if (!Number.isInteger(mb) || mb < 16) throw new RangeError(`createCheckPool: maxOldGenerationSizeMb must be an integer >= 16; got ${String(mb)}`);
  const filename = checkWorkerPath();
  if (!existsSync(filename)) throw new Error(`bpfsim/check: the compiled checker worker ${filename} is missing; run \`npm run build\``);
  return new Piscina({ filename, minThreads: 0, maxThreads: threads, idleTimeout: 1000, resourceLimits: { maxOldGenerationSizeMb: mb } });
}

interface Resolved {
  readonly model: CheckModel;
  readonly timeoutMs: number;
  readonly partitionTimeoutMs: number;
  readonly maps: ReadonlyMap<number, MapInfo>;
  readonly syscallCpu: number | undefined;
  readonly pool: CheckPool | undefined;
  readonly inProcessMaxOps: number;
  readonly threads: number;
  readonly minimize: boolean;
  readonly kernelProperties: boolean;
  readonly maxCacheEntries: number;
  readonly maxOldGenerationSizeMb: number;
}

const MODEL_CHOICES: readonly string[] = [...MAP_TYPE_NAMES, 'lru', 'percpu'];

function canonicalType(t: CheckModel): MapTypeName {
  return t === 'lru' ? 'lru_hash' : t === 'percpu' ? 'percpu_hash' : t;
}

function posNumber(name: string, v: unknown, integer: boolean, min: number): number {
  if (typeof v !== 'number' || Number.isNaN(v) || v < min || (integer && Number.isFinite(v) && !Number.isInteger(v))) {
    throw new TypeError(`checkHistory: options.${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}; got ${String(v)}`);
  }
  return v;
}

function resolveOptions(o: unknown): Resolved {
  if (o === undefined) o = {};
  if (typeof o !== 'object' || o === null) throw new TypeError(`checkHistory: options must be an object; got ${String(o)}`);
  const r = o as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!(OPTION_KEYS as readonly string[]).includes(k)) throw new TypeError(`checkHistory: unknown option ${JSON.stringify(k)} (known: ${OPTION_KEYS.join(', ')})`);
  }
  const model = r['model'] ?? DEFAULTS.model;
  if (typeof model !== 'string' || !MODEL_CHOICES.includes(model)) throw new TypeError(`checkHistory: options.model must be one of ${MODEL_CHOICES.join(', ')}; got ${JSON.stringify(model)}`);
  const timeoutMs = posNumber('timeoutMs', r['timeoutMs'] ?? DEFAULTS.timeoutMs, false, 0);
  const partitionTimeoutMs = posNumber('partitionTimeoutMs', r['partitionTimeoutMs'] ?? timeoutMs, false, 0);
  const maps = new Map<number, MapInfo>();
  const rawMaps = r['maps'];
  if (rawMaps !== undefined) {
    if (typeof rawMaps !== 'object' || rawMaps === null) throw new TypeError('checkHistory: options.maps must be an object or a Map of map id -> { type }');
    const entries: [unknown, unknown][] = rawMaps instanceof Map ? [...(rawMaps as Map<unknown, unknown>).entries()] : Object.entries(rawMaps);
    for (const [k, v] of entries) {
      const id = typeof k === 'number' ? k : Number(k);
      if (!Number.isInteger(id) || id < 0) throw new TypeError(`checkHistory: options.maps: ${JSON.stringify(k)} is not a map id`);
      if (typeof v !== 'object' || v === null) throw new TypeError(`checkHistory: options.maps[${id}] must be { type, initialValue?, maxEntries? }`);
      const info = v as Record<string, unknown>;
      const type = info['type'];
      if (typeof type !== 'string' || !MODEL_CHOICES.includes(type)) throw new TypeError(`checkHistory: options.maps[${id}].type must be one of ${MODEL_CHOICES.join(', ')}; got ${JSON.stringify(type)}`);
      const iv = info['initialValue'];
      if (iv !== undefined && (typeof iv !== 'string' || (iv !== 'any' && !/^([0-9a-fA-F]{2})+$/.test(iv)))) {
        throw new TypeError(`checkHistory: options.maps[${id}].initialValue must be a hex string or 'any'; got ${JSON.stringify(iv)}`);
      }
      const me = info['maxEntries'];
      if (me !== undefined) posNumber(`maps[${id}].maxEntries`, me, true, 1);
      maps.set(id, {
        type: canonicalType(type as CheckModel),
        ...(iv !== undefined ? { initialValue: iv as string } : {}),
        ...(me !== undefined ? { maxEntries: me as number } : {}),
      });
    }
  }
  const sc = r['syscallCpu'];
  if (sc !== undefined) posNumber('syscallCpu', sc, true, 0);
  const pool = r['pool'];
  if (pool !== undefined && !(pool instanceof Piscina)) throw new TypeError('checkHistory: options.pool must be a Piscina pool (createCheckPool())');
  const minimize: unknown = r['minimize'] ?? DEFAULTS.minimize;
  if (typeof minimize !== 'boolean') throw new TypeError(`checkHistory: options.minimize must be a boolean; got ${String(minimize)}`);
  const kernelProperties: unknown = r['kernelProperties'] ?? DEFAULTS.kernelProperties;
  if (typeof kernelProperties !== 'boolean') throw new TypeError(`checkHistory: options.kernelProperties must be a boolean; got ${String(kernelProperties)}`);
  return {
    model: model as CheckModel, timeoutMs, partitionTimeoutMs, maps, syscallCpu: sc as number | undefined,
    pool: pool as CheckPool | undefined,
    inProcessMaxOps: posNumber('inProcessMaxOps', r['inProcessMaxOps'] ?? DEFAULTS.inProcessMaxOps, true, 0),
    threads: posNumber('threads', r['threads'] ?? availableParallelism(), true, 1),
    minimize,
    kernelProperties,
    maxCacheEntries: posNumber('maxCacheEntries', r['maxCacheEntries'] ?? DEFAULTS.maxCacheEntries, true, 1),
    maxOldGenerationSizeMb: posNumber('maxOldGenerationSizeMb', r['maxOldGenerationSizeMb'] ?? DEFAULTS.maxOldGenerationSizeMb, true, 16),
  };
}

/** Group partitions into tasks: the largest first, each task about `target` ops (a big partition alone). */
function batch(parts: readonly PackedPartition[], target: number): PackedPartition[][] {
  const sorted = [...parts].sort((a, b) => b.ops.n - a.ops.n);
  const tasks: PackedPartition[][] = [];
  let cur: PackedPartition[] = [];
  let size = 0;
  for (const p of sorted) {
    if (size > 0 && size + p.ops.n > target) { tasks.push(cur); cur = []; size = 0; }
    cur.push(p);
    size += p.ops.n;
  }
  if (cur.length > 0) tasks.push(cur);
  return tasks;
}

type Outcome = { readonly verdicts: PartitionVerdict[] } | { readonly parts: number[]; readonly reason: UnknownReason; readonly message: string };

async function runInProcess(tasks: PackedPartition[][], o: Resolved, deadline: number): Promise<Outcome[]> {
  const out: Outcome[] = [];
  for (const t of tasks) {
    const task: CheckTask = { buf: packTask(t), deadline, partitionTimeoutMs: o.partitionTimeoutMs, maxCacheEntries: o.maxCacheEntries, minimize: o.minimize, kernelProperties: o.kernelProperties };
    out.push({ verdicts: runTask(task) });
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return out;
}

async function runOnPool(pool: CheckPool, tasks: PackedPartition[][], o: Resolved, deadline: number): Promise<Outcome[]> {
  const filename = checkWorkerPath();
  if (!existsSync(filename)) throw new Error(`bpfsim/check: the compiled checker worker ${filename} is missing; run \`npm run build\``);
  return Promise.all(tasks.map(async (t): Promise<Outcome> => {
    const buf = packTask(t);
    const task: CheckTask = { buf, deadline, partitionTimeoutMs: o.partitionTimeoutMs, maxCacheEntries: o.maxCacheEntries, minimize: o.minimize, kernelProperties: o.kernelProperties };
    const signal = AbortSignal.timeout(Math.max(0, deadline - Date.now()) + ABORT_GRACE_MS);
    try {
      const res: unknown = await pool.run(task, { filename, signal, transferList: [buf] });
      if (!isVerdictList(res)) throw new TypeError('check worker answered something that is not a verdict list');
      return { verdicts: res };
    } catch (e: unknown) {
      const err = e instanceof Error ? e : new Error(String(e));
      const code = (err as { code?: unknown }).code;
      const reason: UnknownReason = err.name === 'AbortError' || signal.aborted ? 'aborted'
        : code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'memory' : 'worker_error';
      return { parts: t.map((p) => p.part), reason, message: err.message };
    }
  }));
}

function describeState(code: number, values: readonly string[] | undefined): string {
  if (code === ABSENT) return 'absent';
  if (code === ANYP) return 'present(any)';
  if (code === OOB) return 'out_of_range';
  return values?.[code] ?? `value#${code}`;
}

/**
 * Check a history of map operations for linearizability against the kernel's map semantics.
 * Throws TypeError for a malformed history or option (naming the op index or the option).
 */
export async function checkHistory(ops: readonly HistoryOp[], options?: CheckOptions): Promise<CheckResult> {
  const t0 = performance.now();
  const o = resolveOptions(options);
  const deadline = Date.now() + o.timeoutMs;
  const h = validateHistory(ops, o.syscallCpu);
  const defaultModel = modelOfType(canonicalType(o.model));
  const modelOf = (i: number): number => {
    const t = h.mapType[i] ?? o.maps.get(h.map[i]!)?.type;
    return t === undefined ? defaultModel : modelOfType(t);
  };
  const P = partitionHistory(h, modelOf, (m) => o.maps.get(m));
  const modelled = P.parts.reduce((s, p) => s + p.ops.n, 0);

  let outcomes: Outcome[];
  let ranOn: CheckResult['ranOn'];
  if (P.parts.length === 0 || modelled <= o.inProcessMaxOps) {
    ranOn = 'in-process';
    outcomes = await runInProcess(batch(P.parts, 4096), o, deadline);
  } else {
    ranOn = 'pool';
    const pool = o.pool ?? createCheckPool({ threads: o.threads, maxOldGenerationSizeMb: o.maxOldGenerationSizeMb });
    const threads = o.pool?.maxThreads ?? o.threads;
    try {
      outcomes = await runOnPool(pool, batch(P.parts, Math.min(65536, Math.max(256, Math.ceil(modelled / (threads * 4))))), o, deadline);
    } finally {
      if (o.pool === undefined) await pool.destroy();
    }
  }
  return assemble(h, P, outcomes, ranOn, performance.now() - t0);
}

function assemble(h: NormalizedHistory, P: Partitioned, outcomes: readonly Outcome[], ranOn: CheckResult['ranOn'], elapsedMs: number): CheckResult {
  const illegal: IllegalPartition[] = [];
  const unknown: UnknownPartition[] = [];
  let writes: Map<string, number[]> | null = null;
  /** successful updates of `map` that wrote `value` (indexed on first use) */
  const writersOf = (map: number, value: string): readonly number[] => {
    if (writes === null) {
      writes = new Map();
      for (let u = 0; u < h.n; u++) {
        if (h.kind[u] !== OP_UPDATE || h.resultErr[u] !== 0) continue;
        const k = `${h.map[u]!}:${h.value[u]!}`;
        const l = writes.get(k);
        if (l === undefined) writes.set(k, [u]); else l.push(u);
      }
    }
    return writes.get(`${map}:${value}`) ?? [];
  };
  const kernelProperties: KernelPropertyReport[] = [];
  let opsChecked = 0;
  let steps = 0;
  const info = (m: PartitionMeta): PartitionInfo => ({ map: m.map, key: m.key, cpu: m.cpu, model: MODEL_NAMES[m.model]!, opCount: m.opIdx.length });
  const idx = (m: PartitionMeta, local: readonly number[]): number[] => local.map((j) => m.opIdx[j]!);
  const states = (m: PartitionMeta, codes: readonly number[]): string[] => codes.map((c) => describeState(c, P.values.get(m.map)));
  const relaxNames = (mask: number): KernelPropertyKind[] => [
    ...((mask & RELAX_MISS) !== 0 ? ['replace_lookup_miss' as const] : []), ...((mask & RELAX_FOREIGN) !== 0 ? ['foreign_read' as const] : []),
  ];

  for (const out of outcomes) {
    if ('parts' in out) {
      for (const part of out.parts) unknown.push({ ...info(P.meta[part]!), reason: out.reason, message: out.message });
      continue;
    }
    for (const v of out.verdicts) {
      const m = P.meta[v.part]!;
      steps += v.steps;
      if (v.status === V_UNKNOWN_TIMEOUT || v.status === V_UNKNOWN_MEMORY) {
        unknown.push({ ...info(m), reason: v.status === V_UNKNOWN_MEMORY ? 'memory' : 'timeout' });
        continue;
      }
      opsChecked += m.opIdx.length;
      if (v.status === V_OK) {
        if (v.relaxOps.length > 0) kernelProperties.push(...propertyReports(h, m, v, writersOf));
        continue;
      }
      if (v.status !== V_ILLEGAL) continue;
      const w = v.window;
      illegal.push({
        ...info(m),
        ops: Array.from(m.opIdx),
        linearized: idx(m, v.linearized),
        state: states(m, v.states),
        stuck: v.stuck >= 0 ? m.opIdx[v.stuck]! : null,
        window: w === null ? null : {
          ops: idx(m, w.ops), pending: idx(m, w.pending), fromAnyState: w.fromAnyState,
          from: [...w.ops, ...w.pending].reduce((t, j) => Math.min(t, h.call[m.opIdx[j]!]!), Infinity),
          to: w.ops.reduce((t, j) => Math.max(t, h.ret[m.opIdx[j]!]!), -Infinity),
          linearized: idx(m, w.linearized), state: states(m, w.states), stuck: w.stuck >= 0 ? m.opIdx[w.stuck]! : null,
        },
        relaxed: relaxNames(v.relaxMask),
      });
    }
  }
  const byFirst = (a: { ops?: number[]; map: number; key: string }, b: { ops?: number[]; map: number; key: string }): number =>
    (a.ops?.[0] ?? 0) - (b.ops?.[0] ?? 0) || a.map - b.map || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
  illegal.sort(byFirst);
  kernelProperties.sort(byFirst);
  unknown.sort((a, b) => a.map - b.map || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) || (a.cpu ?? -1) - (b.cpu ?? -1));
  return {
    result: illegal.length > 0 ? 'illegal' : unknown.length > 0 ? 'unknown' : 'ok',
    partitions: P.parts.length, illegal, unknown, kernelProperties, opsChecked, opsNotModelled: P.opsNotModelled, steps, elapsedMs, ranOn,
  };
}

/** The kernel-property reports of a partition that passed only with a relaxation. */
function propertyReports(
  h: NormalizedHistory, m: PartitionMeta, v: PartitionVerdict, writersOf: (map: number, value: string) => readonly number[],
): KernelPropertyReport[] {
  const out: KernelPropertyReport[] = [];
  const lru = m.model === MK_LRU || m.model === MK_LRU_PERCPU_HASH;
  for (const kind of [RELAX_MISS, RELAX_FOREIGN]) {
    const lookups = v.relaxOps.filter((_, j) => v.relaxKinds[j] === kind).map((j) => m.opIdx[j]!);
    if (lookups.length === 0) continue;
    const related = new Set<number>();
    if (kind === RELAX_MISS) {
      for (const l of lookups) {
        for (const u of m.opIdx) {
          if (h.kind[u] === OP_UPDATE && h.resultErr[u] === 0 && h.call[u]! <= h.ret[l]! && h.ret[u]! >= h.call[l]!) related.add(u);
        }
      }
      out.push({
        kind: 'replace_lookup_miss', kernelFunction: 'htab_map_update_elem', map: m.map, key: m.key, cpu: m.cpu,
        ops: lookups, related: [...related].sort((a, b) => a - b),
        description: 'a lookup missed a key while an update replaced it: the new element is linked at the bucket head '
          + 'before the old one is unlinked, and a reader between the two passes neither (docs/KERNEL_PROPERTIES.md §2)',
      });
    } else {
      for (const l of lookups) {
        for (const u of writersOf(m.map, h.resultHex[l]!)) if (h.key[u] !== m.key && h.call[u]! < h.ret[l]!) related.add(u);
      }
      out.push({
        kind: 'foreign_read', kernelFunction: lru ? 'prealloc_lru_pop' : 'free_htab_elem', map: m.map, key: m.key, cpu: m.cpu,
        ops: lookups, related: [...related].sort((a, b) => a - b),
        description: 'a lookup returned a value written to another key of the map: the element it found was freed and '
          + 'reused for another key while the reader held it (elements are reused at once, without a grace period)',
      });
    }
  }
  return out;
}
