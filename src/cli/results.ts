/*
 * results.ts — the results.json schema ("bpfsim-results/2"): TypeScript types, the runtime
 * validator (the JSON Schema schema/results.schema.json plus the rules across fields), and the
 * conversions from engine results into it. Documented in docs/RESULTS.md;
 * change both together and bump RESULTS_SCHEMA on any incompatible change.
 *
 * Shape rules: every key is always present (absent data is `null`, never a missing key), numbers
 * are finite (JSON has no NaN/Infinity), times are milliseconds unless the key says `Ns`, sizes are
 * bytes, rates are per second. The validator is strict: unknown keys are errors, so a typo in a
 * producer is caught by the tests rather than by a consumer.
 *
 * Every command validates its document before writing it (cli.ts); a document that fails is an
 * internal error (exit 3), never silently written.
 */
import type { BenchEnvironment, BenchFigure, MachineLoad } from '../bench/harness.js';
import type {
  MapType, AllocMode, BenchName, Mix, StressOptions, StressResult, ScenarioResult, ContextName, StressPhases, CellCheck,
} from './engine_api.js';
import { schemaValidator } from '../json_schema.js';

export const RESULTS_SCHEMA = 'bpfsim-results/2';
export const COMMANDS = ['demo', 'stress', 'bench', 'scenario'] as const;
export type CommandName = (typeof COMMANDS)[number];

/** At most this many grace-period latency samples are kept in results.json. */
export const GP_SAMPLES_MAX = 2000;

export interface Results {
  readonly schema: typeof RESULTS_SCHEMA;
  readonly tool: { readonly name: 'bpfsim'; readonly version: string };
  readonly command: CommandName;
  readonly argv: readonly string[];
  /** ISO 8601, UTC. */
  readonly startedAt: string;
  readonly durationMs: number;
  readonly environment: BenchEnvironment;
  readonly seed: number;
  readonly cpus: number;
  readonly preemptRt: boolean;
  readonly verdict: Verdict;
  readonly stress: StressSection | null;
  readonly bench: BenchSection | null;
  readonly scenarios: readonly ScenarioRecord[] | null;
}

export interface Verdict {
  /** No failure and not interrupted. */
  readonly ok: boolean;
  /** 0 ok, 1 failures, 130 interrupted (Ctrl-C). */
  readonly exitCode: number;
  /** Ctrl-C cut the run short: every section covers only what ran before it. */
  readonly interrupted: boolean;
  /** One line per failure, naming it: "splat deadlock on CPU 1 …", "invariant … violated: …". */
  readonly failures: readonly string[];
}

export interface IrqFlowEntry { readonly requested: number | null; readonly delivered: number; readonly coalesced: number | null }
export interface InterruptCounts { readonly nmi: IrqFlowEntry; readonly hardirq: IrqFlowEntry; readonly softirq: IrqFlowEntry; readonly irqWork: number }
export type StressPhasesEntry = StressPhases;

export interface SplatEntry {
  readonly kind: string;
  readonly cpu: number;
  readonly context: ContextName;
  readonly site: string;
  readonly heldLocks: readonly string[];
  readonly message: string;
  readonly timeNs: number;
}

export interface StressSection {
  readonly options: {
    readonly cpus: number; readonly seconds: number; readonly maps: readonly MapType[];
    readonly alloc: readonly AllocMode[]; readonly nmiRate: number; readonly irqRate: number;
    readonly preemptRt: boolean; readonly seed: number; readonly mix: Mix; readonly faults: readonly string[];
  };
  /** Wall time of the stress round: boot, setup, measured phase, checks, teardown. */
  readonly elapsedMs: number;
  /** The measured phase: wall time workloads ran (bounded by options.seconds plus one slice). */
  readonly measuredMs: number;
  readonly phasesMs: StressPhasesEntry;
  /** Ctrl-C cut the round short (cells not run are 'skipped', reason 'interrupted …'). */
  readonly interrupted: boolean;
  readonly totals: {
    readonly ops: number; readonly opsPerSec: number; readonly errors: Readonly<Record<string, number>>;
    readonly recursionMisses: number; readonly splats: number; readonly gracePeriods: number;
    readonly interrupts: InterruptCounts;
  };
  readonly cells: readonly {
    readonly map: MapType; readonly alloc: AllocMode; readonly workload: 'mix' | 'timers' | 'graph'; readonly status: 'ran' | 'skipped';
    readonly skipReason: string | null; readonly ops: number; readonly opsPerSec: number;
    readonly errors: Readonly<Record<string, number>>; readonly recursionMisses: number; readonly measuredMs: number;
    /** stress --check: the linearizability check of the cell's history (absent without --check) */
    readonly check?: CellCheck;
  }[];
  readonly splats: readonly SplatEntry[];
  readonly invariants: readonly {
    readonly name: string; readonly scope: string; readonly ok: boolean; readonly details: readonly string[];
  }[];
  readonly leak: {
    readonly ok: boolean; readonly startBytes: number; readonly endBytes: number; readonly leakedBytes: number;
    readonly details: readonly string[];
  };
  readonly timeline: readonly {
    readonly tMs: number; readonly opsPerSec: number; readonly memoryBytes: number; readonly gracePeriods: number;
  }[];
  readonly caches: readonly {
    readonly cache: string; readonly cpu: number; readonly unitSize: number; readonly low: number;
    readonly high: number; readonly points: readonly (readonly [number, number])[];
  }[];
  readonly gpLatency: GpLatency;
}

export interface GpLatency {
  readonly count: number;
  /** Up to GP_SAMPLES_MAX samples (evenly thinned when there were more), ms. */
  readonly samplesMs: readonly number[];
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/**
 * Timer fire latency (`bpfsim bench timers`): how late after the requested expiry, per series
 * (the bpf timer callbacks and the same-run baselines), latency in milliseconds.
 */
export interface TimerLatencyRecord extends GpLatency {
  readonly label: string;
}

export interface BenchSection {
  readonly names: readonly BenchName[];
  readonly rounds: number;
  readonly seconds: number;
  readonly cpus: number;
  readonly figures: readonly BenchFigure[];
  /** Cases that could not run in this build or on this machine, with the reason. */
  readonly skipped: readonly { readonly id: string; readonly reason: string }[];
  /** Ctrl-C cut the run short. */
  readonly interrupted: boolean;
  /** Figures whose only sample is a short measurement (SHORT_ROUND_SECONDS) taken after Ctrl-C,
   * so that every figure keeps a same-run baseline. */
  readonly shortened: readonly string[];
  /**
   * Was the machine busy? The load average and a calibration loop at the start and at the end of
   * the run (src/bench/harness.ts MachineLoad); `busy` with one line per reason in `warnings`.
   */
  readonly machine: MachineLoad;
  /** Present when 'timers' ran: fire latency of bpf timers and of the baselines. */
  readonly timerLatency?: readonly TimerLatencyRecord[];
}

export interface ScenarioRecord {
  readonly name: string;
  readonly seed: string;
  readonly title: string;
  readonly events: readonly { readonly cpu: number; readonly context: ContextName; readonly what: string; readonly tNs: number | null }[];
  readonly verdict: { readonly ok: boolean; readonly expected: string; readonly observed: string };
  readonly splats: readonly SplatEntry[];
  readonly elapsedMs: number;
}

// ---------------------------------------------------------------------------------------------
// Validator: the JSON Schema schema/results.schema.json (shipped with the package) checks every
// shape; the rules across fields that a schema does not express are checked here.

const resultsSchema = schemaValidator('results.schema.json');

/** validateResults' answer: `errors` is empty exactly when `ok`. */
export type Validation =
  | { readonly ok: true; readonly value: Results; readonly errors: string[] }
  | { readonly ok: false; readonly errors: string[] };

/**
 * Check a parsed results.json against schema/results.schema.json, then the rules across fields
 * (verdict consistency, a section present, baselines that name a figure of the run). Errors are
 * "path: expected X, got Y", "path: missing", "path: unknown key" or the rule broken.
 */
export function validateResults(v: unknown): Validation {
  const errors = resultsSchema(v);
  if (errors.length === 0) {
    const r = v as Results;
    // cross-field rules the shapes cannot express
    if (r.verdict.ok !== (r.verdict.failures.length === 0 && !r.verdict.interrupted)) errors.push('.verdict: ok must be true exactly when failures is empty and the run was not interrupted');
    if (r.verdict.interrupted !== (r.verdict.exitCode === 130)) errors.push('.verdict: exitCode must be 130 exactly when the run was interrupted');
    if (r.stress !== null && r.stress.interrupted && !r.verdict.interrupted) errors.push('.stress.interrupted: the verdict must say interrupted too');
    if (r.bench !== null && r.bench.interrupted && !r.verdict.interrupted) errors.push('.bench.interrupted: the verdict must say interrupted too');
    if (r.stress === null && r.bench === null && r.scenarios === null) errors.push('(root): at least one of stress, bench, scenarios must be present');
    if (r.bench !== null) {
      const ids = new Set(r.bench.figures.map((f) => f.id));
      for (const f of r.bench.figures) if (!ids.has(f.baseline)) errors.push(`.bench.figures[${f.id}].baseline: '${f.baseline}' is not a figure of this run`);
    }
  }
  return errors.length === 0 ? { ok: true, value: v as Results, errors } : { ok: false, errors };
}

// ---------------------------------------------------------------------------------------------
// Conversions from engine results

/** Percentile by nearest rank on sorted samples; 0 for none. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** A latency record (ms samples; thinned like gpLatency). */
export function timerLatencyRecord(label: string, samplesMs: readonly number[]): TimerLatencyRecord {
  return { label, ...gpLatencyFields(gpLatency(samplesMs)) };
}
function gpLatencyFields(g: GpLatency): Omit<TimerLatencyRecord, 'label'> {
  return { count: g.count, samplesMs: g.samplesMs, p50Ms: g.p50Ms, p90Ms: g.p90Ms, p99Ms: g.p99Ms, maxMs: g.maxMs };
}

export function gpLatency(samplesMs: readonly number[]): GpLatency {
  const s = samplesMs.filter((x) => Number.isFinite(x) && x >= 0).sort((a, b) => a - b);
  let kept = s;
  if (s.length > GP_SAMPLES_MAX) {
    kept = [];
    for (let i = 0; i < GP_SAMPLES_MAX; i++) kept.push(s[Math.floor((i * s.length) / GP_SAMPLES_MAX)]!);
  }
  return {
    count: s.length, samplesMs: kept, p50Ms: percentile(s, 50), p90Ms: percentile(s, 90),
    p99Ms: percentile(s, 99), maxMs: s.length > 0 ? s[s.length - 1]! : 0,
  };
}

function sumErrors(list: readonly Readonly<Record<string, number>>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of list) for (const [k, v] of Object.entries(e)) out[k] = (out[k] ?? 0) + v;
  return out;
}

export function toStressSection(o: StressOptions, r: StressResult): StressSection {
  const ops = r.cells.reduce((a, c) => a + c.ops, 0);
  return {
    options: {
      cpus: o.cpus, seconds: o.seconds, maps: [...o.maps], alloc: [...o.alloc], nmiRate: o.nmiRate, irqRate: o.irqRate,
      preemptRt: o.preemptRt, seed: o.seed, mix: { ...o.mix }, faults: [...o.faults],
    },
    elapsedMs: r.elapsedMs,
    measuredMs: r.measuredMs,
    phasesMs: { ...r.phasesMs },
    interrupted: r.interrupted,
    totals: {
      // over the measured phase: boot, checks and teardown run no operations
      ops, opsPerSec: r.measuredMs > 0 ? (ops * 1000) / r.measuredMs : 0,
      errors: sumErrors(r.cells.map((c) => c.errors)),
      recursionMisses: r.cells.reduce((a, c) => a + c.recursionMisses, 0),
      splats: r.splats.length, gracePeriods: r.gracePeriods,
      interrupts: { nmi: { ...r.interrupts.nmi }, hardirq: { ...r.interrupts.hardirq }, softirq: { ...r.interrupts.softirq }, irqWork: r.interrupts.irqWork },
    },
    cells: r.cells.map((c) => ({
      map: c.map, alloc: c.alloc, workload: c.workload ?? 'mix', status: c.status, skipReason: c.skipReason ?? null, ops: c.ops,
      opsPerSec: c.opsPerSec, errors: { ...c.errors }, recursionMisses: c.recursionMisses, measuredMs: c.measuredMs,
      ...(c.check !== undefined ? { check: { ...c.check, kernelProperties: { ...c.check.kernelProperties }, window: [...c.check.window] } } : {}),
    })),
    splats: r.splats.map((s) => ({ ...s, heldLocks: [...s.heldLocks] })),
    invariants: r.invariants.map((i) => ({ name: i.name, scope: i.scope, ok: i.ok, details: [...i.details] })),
    leak: { ok: r.leak.ok, startBytes: r.leak.startBytes, endBytes: r.leak.endBytes, leakedBytes: r.leak.endBytes - r.leak.startBytes, details: [...r.leak.details] },
    timeline: r.timeline.map((t) => ({ ...t })),
    caches: r.caches.map((c) => ({ ...c, points: c.points.map(([t, v]) => [t, v] as const) })),
    gpLatency: gpLatency(r.gpLatencyMs),
  };
}

export function toScenarioRecord(r: ScenarioResult): ScenarioRecord {
  return {
    name: r.name, seed: r.seed, title: r.title,
    events: r.events.map((e) => ({ cpu: e.cpu, context: e.context, what: e.what, tNs: e.tNs ?? null })),
    verdict: { ...r.verdict },
    splats: r.splats.map((s) => ({ ...s, heldLocks: [...s.heldLocks] })),
    elapsedMs: r.elapsedMs,
  };
}

/**
 * Splats as failure lines, identical ones grouped: same kind, context, site and message once
 * addresses and CPU numbers are masked. "splat deadlock ×40 (nmi at bpf_lru.pop.locked, CPUs
 * 0,1,2,3): AA deadlock: lru_local_lock at 0xff7c694 already held by this CPU". Order: first seen.
 */
export function groupSplats(splats: readonly SplatEntry[]): string[] {
  const groups = new Map<string, { first: SplatEntry; n: number; cpus: Set<number> }>();
  for (const sp of splats) {
    const norm = sp.message.replace(/0x[0-9a-f]+/gi, '0x?').replace(/\bcpu \d+/gi, 'cpu ?').replace(/\d+/g, '#');
    const key = `${sp.kind}|${sp.context}|${sp.site}|${norm}`;
    const g = groups.get(key);
    if (g === undefined) groups.set(key, { first: sp, n: 1, cpus: new Set([sp.cpu]) });
    else { g.n++; g.cpus.add(sp.cpu); }
  }
  return [...groups.values()].map(({ first: sp, n, cpus }) => {
    const where = `${sp.context}${sp.site !== '' ? ` at ${sp.site}` : ''}`;
    return n === 1
      ? `splat ${sp.kind} on CPU ${sp.cpu} (${where}): ${sp.message}`
      : `splat ${sp.kind} ×${n} (${where}, CPU${cpus.size > 1 ? 's' : ''} ${[...cpus].sort((a, b) => a - b).join(',')}): ${sp.message}`;
  });
}

/** The failures of a stress section, one line each (identical splats grouped), naming what was violated. */
export function stressFailures(s: StressSection): string[] {
  const out: string[] = groupSplats(s.splats);
  for (const inv of s.invariants) {
    if (!inv.ok) out.push(`invariant '${inv.name}' violated [${inv.scope}]: ${inv.details[0] ?? 'no detail'}${inv.details.length > 1 ? ` (+${inv.details.length - 1} more)` : ''}`);
  }
  if (!s.leak.ok) {
    out.push(`leak check failed: ${s.leak.leakedBytes} bytes still allocated after teardown${s.leak.details.length > 0 ? ` (${s.leak.details[0]})` : ''}`);
  }
  return out;
}

export function scenarioFailures(list: readonly ScenarioRecord[]): string[] {
  return list.filter((s) => !s.verdict.ok).map((s) => `scenario '${s.name}' failed: expected ${s.verdict.expected}; observed ${s.verdict.observed}`);
}
