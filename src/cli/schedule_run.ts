/*
 * schedule_run.ts — one scheduled stress run, and the replay token that names it.
 *
 * A run: a fresh runtime started with a deterministic schedule (Runtime.start({ schedule })),
 * one map, the stress_mix workload on every CPU for a fixed number of iterations (one scheduled
 * run: the workloads begin in one tick), every map operation recorded, then the history checked
 * for linearizability (in this thread: a sweep runs many of these on a piscina pool), the splats
 * read and the map's own check() run. Its verdict comes from what was observed: 'illegal' (the
 * checker found a partition no linearization explains, beyond the known kernel properties),
 * 'splat' (the kernel complained), 'invariant' (check() failed) or 'ok'.
 *
 * The token ("bpfsim1:" + base64url of a compact JSON) holds everything the run depends on —
 * map, allocation, CPUs, iterations, keys, schedule mode, seed, depth, faults — plus where to stop
 * when replayed (the history stamp of the failing window's last return, or the first splat) and
 * the hash of the history it produced, so a replay can say it reproduced the run exactly.
 */
import { Runtime } from '../runtime/runtime.js';
import { BPF_F_NO_PREALLOC } from '../maps/map_ops.js';
import { checkHistory } from '../check/check.js';
import type { HistoryOp } from '../maps/map_history.js';
import type { CpuState } from '../runtime/runtime.js';
import { formatHistoryOp } from './format.js';
import {
  FAULT_LOST_UPDATE, FAULT_PHANTOM_DELETE, FAULT_NOEXIST_OVERWRITE, FAULT_DELETE_UNLOCKED, FAULT_TIMER_MUTUAL_CANCEL,
} from '../mem/layout.js';

export const SCHEDULE_MAPS = ['hash', 'lru_hash', 'percpu_hash', 'array'] as const;
export type ScheduleMap = (typeof SCHEDULE_MAPS)[number];

/** Faults a scheduled run can switch on (the test-only FAULT_* bits), by name. */
export const SCHEDULE_FAULTS: Readonly<Record<string, number>> = Object.freeze({
  lost_update: FAULT_LOST_UPDATE,
  phantom_delete: FAULT_PHANTOM_DELETE,
  noexist_overwrite: FAULT_NOEXIST_OVERWRITE,
  delete_unlocked: FAULT_DELETE_UNLOCKED,
  timer_mutual_cancel: FAULT_TIMER_MUTUAL_CANCEL,
});

/**
 * The workload of a run: 'mix' (stress_mix: lookups, updates, deletes of contended keys on the
 * map) or 'timer_pair' (timer_lockup.c: on 2 CPUs, each arms its timer of a 2-entry array whose
 * callback cancels the other's).
 */
export type ScheduleWorkload = 'mix' | 'timer_pair';

export interface ScheduledRunConfig {
  readonly map: ScheduleMap;
  /** BPF_F_NO_PREALLOC (bpf_mem_alloc) or preallocated elements */
  readonly alloc: 'prealloc' | 'dyn';
  readonly cpus: number;
  /** program runs per CPU */
  readonly iterations: number;
  /** key range of the workload */
  readonly keys: number;
  readonly maxEntries: number;
  readonly mode: 'random' | 'pct';
  readonly seed: number;
  readonly depth: number;
  readonly steps: number;
  readonly faults: number;
  readonly preemptRt: boolean;
  /** @defaultValue 'mix' */
  readonly workload?: ScheduleWorkload;
}

export interface ReplayStop {
  readonly kind: 'stamp' | 'splat' | 'step';
  /** the history stamp to halt at ('stamp') */
  readonly stamp?: number;
  /** the step to halt at ('step': a livelock found by the step budget) */
  readonly step?: number;
}

export type ScheduledVerdict = 'ok' | 'illegal' | 'splat' | 'invariant' | 'livelock' | 'unknown';

/** A run's step budget: far beyond what its iterations take (2-10 windows per operation). */
export function stepBudget(c: ScheduledRunConfig): number { return 100 * c.cpus * c.iterations + (c.workload === 'timer_pair' ? 30_000 : 10_000); }

export interface ScheduledRunResult {
  readonly config: ScheduledRunConfig;
  readonly verdict: ScheduledVerdict;
  readonly ops: number;
  readonly opsChecked: number;
  readonly partitions: number;
  readonly illegal: number;
  readonly kernelProperties: number;
  readonly steps: number;
  readonly switches: number;
  /** FNV-1a of the recorded history (op, CPU, key, value, result, stamps): equal runs, equal hash */
  readonly historyHash: string;
  /** what went wrong, in a few lines (the illegal window, the splats, the check() problems) */
  readonly details: readonly string[];
  /** the token that replays it ('' when ok) */
  readonly token: string;
  readonly runMs: number;
  readonly checkMs: number;
}

export interface ReplayResult {
  readonly run: ScheduledRunResult;
  /** the step the run halted at (0: it ran to the end) */
  readonly haltedAt: number;
  readonly virtualNs: number;
  /** where every CPU stood when it halted */
  readonly cpus: readonly CpuState[];
  /** same history hash as the token recorded (null: the token recorded none) */
  readonly exact: boolean | null;
}

const TOKEN_PREFIX = 'bpfsim1:';

/** What a replay compares to say it reproduced the run: the whole history, or what led to the stop. */
export interface TokenEvidence {
  /** hash of the whole history */
  readonly h?: string;
  /** hash of the ops returned by the stop stamp */
  readonly hp?: string;
  /** the first splat, 'kind: message' */
  readonly sm?: string;
}

interface TokenBody extends TokenEvidence {
  readonly c: ScheduledRunConfig;
  readonly stop?: ReplayStop;
}

/** A printable token for a run (and where a replay should stop). */
export function encodeToken(config: ScheduledRunConfig, stop?: ReplayStop, evidence: TokenEvidence = {}): string {
  const body: TokenBody = { c: config, ...(stop !== undefined ? { stop } : {}), ...evidence };
  return TOKEN_PREFIX + Buffer.from(JSON.stringify(body)).toString('base64url');
}

/** Parse a token; throws a TypeError saying what is wrong with it. */
export function decodeToken(token: string): { config: ScheduledRunConfig; stop?: ReplayStop; evidence: TokenEvidence } {
  if (!token.startsWith(TOKEN_PREFIX)) throw new TypeError(`not a bpfsim replay token (expected '${TOKEN_PREFIX}…'): ${token.slice(0, 40)}`);
  let body: TokenBody;
  try {
    body = JSON.parse(Buffer.from(token.slice(TOKEN_PREFIX.length), 'base64url').toString('utf8')) as TokenBody;
  } catch {
    throw new TypeError('the replay token is damaged (it does not decode)');
  }
  const c = body.c;
  const ok = typeof c === 'object' && c !== null && (SCHEDULE_MAPS as readonly string[]).includes(c.map)
    && (c.alloc === 'prealloc' || c.alloc === 'dyn') && (c.mode === 'random' || c.mode === 'pct')
    && [c.cpus, c.iterations, c.keys, c.maxEntries, c.seed, c.depth, c.steps, c.faults].every((v) => Number.isInteger(v))
    && typeof c.preemptRt === 'boolean' && (c.workload === undefined || c.workload === 'mix' || c.workload === 'timer_pair');
  if (!ok) throw new TypeError('the replay token is damaged (its configuration is incomplete)');
  const evidence: TokenEvidence = {
    ...(typeof body.h === 'string' ? { h: body.h } : {}), ...(typeof body.hp === 'string' ? { hp: body.hp } : {}),
    ...(typeof body.sm === 'string' ? { sm: body.sm } : {}),
  };
  return { config: c, ...(body.stop !== undefined ? { stop: body.stop } : {}), evidence };
}

function workloadUrl(name: string): URL {
  const here = import.meta.url;
  return here.includes('/dist/') ? new URL(`./programs/${name}.js`, here) : new URL(`../../dist/src/cli/programs/${name}.js`, here);
}

/**
 * FNV-1a over the fields a replay must reproduce exactly, in call-stamp order (stamps are unique;
 * the order rt.history() returns depends on when the rings were drained).
 */
export function historyHash(ops: readonly HistoryOp[]): string {
  let h = 0x811c9dc5;
  const mix = (s: string): void => {
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  };
  for (const o of [...ops].sort((a, b) => a.call - b.call)) mix(`${o.cpu}|${o.context}|${o.op}|${o.map}|${o.key}|${o.value ?? ''}|${o.flags}|${String(o.result)}|${o.call}|${o.ret};`);
  return (h >>> 0).toString(16).padStart(8, '0');
}

interface Executed {
  readonly result: ScheduledRunResult;
  readonly haltedAt: number;
  readonly virtualNs: number;
  readonly cpus: readonly CpuState[];
  /** hash of the ops that returned by `stamp` */
  readonly hashUpTo: (stamp: number) => string;
  readonly firstSplat: string | null;
}

async function execute(config: ScheduledRunConfig, stop: ReplayStop | undefined): Promise<Executed> {
  const t0 = performance.now();
  const rt = await Runtime.start({
    cpus: config.cpus, record: true, preemptRt: config.preemptRt, faults: config.faults, seed: config.seed, memoryBytes: 32 << 20,
    // a replay that halts leaves CPUs where they stood: keep the stall bound out of its way
    watchdogMs: 10_000,
    schedule: {
      mode: config.mode, seed: config.seed, depth: config.depth, steps: config.steps,
      ...(stop?.kind === 'stamp' ? { stopAtStamp: stop.stamp ?? 0 } : {}),
      ...(stop?.kind === 'splat' ? { stopAtSplat: true } : {}),
      ...(stop?.kind === 'step' ? { stopAt: stop.step ?? 0 } : {}),
      maxSteps: stepBudget(config),
    },
  });
  try {
    const array = config.map === 'array';
    const timers = config.workload === 'timer_pair';
    const m = timers
      ? rt.createMap({ type: 'array', name: 'pair', keySize: 4, valueSize: 32, maxEntries: 2, fields: [{ type: 'bpf_timer', offset: 0 }] })
      : rt.createMap({
        type: config.map, name: 'sched', keySize: 4, valueSize: 8,
        maxEntries: array ? Math.max(config.keys, config.maxEntries) : config.maxEntries,
        flags: config.alloc === 'dyn' && !array ? BPF_F_NO_PREALLOC : 0,
      });
    const prog = timers
      ? await rt.loadProgram(workloadUrl('sched_timer_pair'), { maps: { pair: m } })
      : await rt.loadProgram(workloadUrl('stress_mix'), { maps: { m } });
    const args = timers ? {} : { updateBelow: 26_000, deleteBelow: 42_000, keys: config.keys, kind: array ? 'array' : 'hash' };
    const cpus = [...Array(config.cpus).keys()];
    const runs = cpus.map((c) => rt.runWorkload({ program: prog, cpus: [c], iterations: config.iterations, args }));
    // wait for the end, or a halt (a replay's stop, or the step budget), and say where CPUs stand
    let haltedAt = 0;
    const done = Promise.allSettled(runs);
    for (;;) {
      const s = rt.schedule()!;
      if (s.halted !== 0) { haltedAt = s.halted; break; }
      const fin = await Promise.race([done.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 5))]);
      if (fin) break;
    }
    const livelock = haltedAt !== 0 && stop === undefined;
    const crashed = haltedAt === 0 ? (await done).find((r) => r.status === 'rejected') : undefined;
    const runMs = performance.now() - t0;
    const sched = rt.schedule()!;
    const ops = rt.history();
    const t1 = performance.now();
    // timer_pair's callbacks write their values through pointers, not map updates: its verdict
    // comes from splats and progress, not from a history check
    const chk = timers
      ? { illegal: [], unknown: [], kernelProperties: [], opsChecked: 0, partitions: 0, result: 'ok' as const }
      : await checkHistory(ops, { maps: rt.historyMaps(), syscallCpu: rt.cpus, timeoutMs: 20_000, inProcessMaxOps: Number.MAX_SAFE_INTEGER });
    const checkMs = performance.now() - t1;
    const splats = rt.splats().filter((s) => s.kind !== 'sched_stall');
    const problems: string[] = haltedAt === 0 && !livelock ? m.check() : [];
    const details: string[] = [];
    let verdict: ScheduledVerdict = 'ok';
    let failStop: ReplayStop | undefined;
    const first = chk.illegal[0];
    if (first !== undefined) {
      verdict = 'illegal';
      const idx = first.window?.ops ?? first.ops;
      const win = idx.map((i) => ops[i]!);
      details.push(`illegal history: map ${first.map}, key ${first.key} (${chk.illegal.length} partition(s)); shortest window:`);
      for (const o of win.slice(0, 12)) details.push(`  ${formatHistoryOp(o)}`);
      failStop = { kind: 'stamp', stamp: Math.max(...win.map((o) => o.ret)) };
    } else if (livelock) {
      verdict = 'livelock';
      details.push(`no end after ${haltedAt - 0} steps (budget ${stepBudget(config)}): a CPU loops through windows for ever`);
      for (const c of sched.cpus) details.push(`  cpu ${c.cpu}: ${c.program ?? 'no program'} at ${c.site || '-'}, ${c.sched}${c.heldLocks.length ? `, holding ${c.heldLocks.join(', ')}` : ''}`);
      failStop = { kind: 'step', step: haltedAt };
    } else if (splats.length > 0) {
      verdict = 'splat';
      for (const s of splats.slice(0, 4)) details.push(`${s.kind}: ${s.message} (cpu ${s.cpu}${s.site ? `, at ${s.site}` : ''})`);
      failStop = { kind: 'splat' };
    } else if (problems.length > 0) {
      verdict = 'invariant';
      details.push(...problems.slice(0, 6).map((p: string) => `check(): ${p}`));
    } else if (crashed !== undefined) {
      verdict = 'splat';
      details.push(`a workload failed: ${String((crashed as PromiseRejectedResult).reason)}`);
    } else if (chk.result === 'unknown') {
      verdict = 'unknown';
      details.push(`the checker ran out of budget on ${chk.unknown.length} partition(s)`);
    }
    const hash = historyHash(ops);
    const hashUpTo = (stamp: number): string => historyHash(ops.filter((o) => o.ret <= stamp));
    const firstSplat = splats[0] === undefined ? null : `${splats[0].kind}: ${splats[0].message}`;
    const evidence: TokenEvidence = {
      h: hash,
      ...(failStop?.kind === 'stamp' ? { hp: hashUpTo(failStop.stamp ?? 0) } : {}),
      ...(failStop?.kind === 'splat' && firstSplat !== null ? { sm: firstSplat } : {}),
    };
    const result: ScheduledRunResult = {
      config, verdict, ops: ops.length, opsChecked: chk.opsChecked, partitions: chk.partitions, illegal: chk.illegal.length,
      kernelProperties: chk.kernelProperties.length, steps: sched.steps, switches: sched.switches, historyHash: hash, details,
      token: verdict === 'ok' || verdict === 'unknown' ? '' : encodeToken(config, failStop ?? { kind: 'splat' }, evidence),
      runMs, checkMs,
    };
    return { result, haltedAt, virtualNs: sched.virtualNs, cpus: sched.cpus, hashUpTo, firstSplat };
  } finally {
    await rt.stop();
  }
}

/** One scheduled run to its end: the verdict, the figures, and a token when it failed. */
export async function runScheduled(config: ScheduledRunConfig): Promise<ScheduledRunResult> {
  return (await execute(config, undefined)).result;
}

/** Re-run a token's schedule, halting where it failed; say where each CPU stood. */
export async function replayToken(token: string, o: { full?: boolean } = {}): Promise<ReplayResult> {
  const t = decodeToken(token);
  const halting = o.full !== true && t.stop !== undefined;
  const e = await execute(t.config, halting ? t.stop : undefined);
  const ev = t.evidence;
  let exact: boolean | null = null;
  if (!halting) exact = ev.h === undefined ? null : e.result.historyHash === ev.h;
  else if (t.stop?.kind === 'stamp') exact = ev.hp === undefined ? null : e.hashUpTo(t.stop.stamp ?? 0) === ev.hp;
  else if (t.stop?.kind === 'step') exact = e.haltedAt === t.stop.step;
  else exact = ev.sm === undefined ? null : e.firstSplat === ev.sm;
  return { run: e.result, haltedAt: e.haltedAt, virtualNs: e.virtualNs, cpus: e.cpus, exact };
}
