/*
 * stress.ts — `bpfsim stress` on the library (Engine.runStress): cells of map type × allocation
 * mode × workload, each run on every CPU while random NMIs and hardirqs land, then checked.
 *
 * Runtimes: one thread holds one runtime at a time, and the dynamic allocator (bpf_mem_alloc or
 * kmalloc) is a runtime option. So a stress run boots one runtime for the prealloc and
 * bpf_mem_alloc cells and a second one for the kmalloc cells.
 *
 * Stress cell: create the map, load stress_mix (task workload) and stress_irq (run by random NMIs
 * and hardirqs on the same map), run the workload in slices of sampleIntervalMs (each slice
 * reports progress and samples the timeline), stop the interrupts, wait for a grace period, then
 * check the map and tear it down. After the last cell of a runtime: rcu_barrier, the global
 * checks (allocator, lock words, recursion/preempt/RCU counters on every CPU: stress_invariants.ts),
 * the leak check (slab bytes back to their value before the first map), splats, stop.
 *
 * Timer and graph cells (runTimerCell, runGraphCell) run their own programs on a map whose values
 * hold a bpf_timer, or a bpf_spin_lock with an rbtree and a list; a graph cell's NMI program breaks
 * a rule on purpose a bounded number of times, and those prog_abort splats are counted by the
 * cell's invariant instead of reported (isExpectedSplat, stress_graph_checks.ts).
 *
 * The engine never decides pass/fail here: splats, invariants and the leak check are returned as
 * data (cmd_stress.ts judges). --record / --check: stress_history.ts.
 */
import { Runtime, type Program } from '../runtime/runtime.js';
import { BPF_F_NO_PREALLOC } from '../maps/map_ops.js';
import type { BpfMap } from '../maps/bpf_map.js';
import { memStats, memCheck } from '../mm/owners.js';
import { FAULT_DROP_FREELIST_PUSH, FAULT_LOST_UPDATE, FAULT_PHANTOM_DELETE, FAULT_NOEXIST_OVERWRITE } from '../mem/layout.js';
import { errnoName } from '../errno.js';
import { rcuGpLatencySamples } from '../rcu/rcu.js';
import { htabMemAllocLevels } from '../maps/hashtab.js';
import {
  unsupportedReason, type StressOptions, type StressResult, type LiveStats, type StressCell, type InvariantCheck, type CacheSeries,
  type TimelineSample, type SplatRecord, type Interrupts, type MapType, type AllocMode, type FaultName, type StressPhases, type CellCheck,
} from './engine_api.js';
import { readInterrupts, addInterrupts, ZERO_INTERRUPTS } from './irq_stats.js';
import type { HistoryOp } from '../maps/map_history.js';
import type { StressMixArgs } from './programs/stress_mix.js';
import { ERRS_SLOTS } from './programs/stress_irq.js';
import { TIMER_STRESS_VALUE_SIZE, type TimerStressArgs } from './programs/stress_timers.js';
import type { GraphStressArgs } from './programs/stress_graph.js';
import {
  GRAPH_NMI_CTL_SIZE, NC_BREAKS, NC_THROWS, NC_RES_DEADLK, NC_RES_TIMEDOUT, NC_RES_OTHER, NC_NOMEM, type GraphNmiArgs,
} from './programs/stress_graph_nmi.js';
import { graphObjStats } from '../graph/bpf_obj.js';
import { MEMORY_BYTES, dynAllocOf, toSplatRecord, mergeErrors } from '../bench/runtime_helpers.js';
import { ownerSnapshot, globalMaBytes, ownerGrowth, cpuQuiescenceChecks, attachedTimers } from './stress_invariants.js';
import {
  GRAPH_MAPS, GRAPH_STRESS_KEYS, GRAPH_STRESS_CAP, GRAPH_STRESS_MAX_ABORTS, isExpectedSplat, keyBytes, createGraphStressMap,
  checkGraphValues, graphAccountingCheck,
} from './stress_graph_checks.js';
import { appendHistory, writeHistoryHeader, checkCell } from './stress_history.js';

const PROG = {
  mix: new URL('./programs/stress_mix.js', import.meta.url),
  irq: new URL('./programs/stress_irq.js', import.meta.url),
  stressTimers: new URL('./programs/stress_timers.js', import.meta.url),
  stressGraph: new URL('./programs/stress_graph.js', import.meta.url),
  stressGraphNmi: new URL('./programs/stress_graph_nmi.js', import.meta.url),
};

const FAULT_BITS: Readonly<Record<FaultName, number>> = {
  drop_freelist_push: FAULT_DROP_FREELIST_PUSH, lost_update: FAULT_LOST_UPDATE, phantom_delete: FAULT_PHANTOM_DELETE,
  noexist_overwrite: FAULT_NOEXIST_OVERWRITE,
};

const STRESS_MAX_ENTRIES = 4096;
/** Keys range over twice the capacity, so hash maps fill up and E2BIG/ENOMEM paths run too. */
const STRESS_KEYS = 2 * STRESS_MAX_ENTRIES;

// ---------------------------------------------------------------------------------------------
// Helpers over a runtime

function sumInterrupts(rt: Runtime): Interrupts {
  return readInterrupts(rt.stats());
}

interface MapSet { readonly m: BpfMap; readonly extra: readonly BpfMap[]; readonly kind: StressMixArgs['kind']; readonly innerIds: readonly number[] }

/** Create the map of a cell (and the inner maps of a map-in-map). */
function createCellMap(rt: Runtime, map: MapType, alloc: AllocMode, maxEntries: number, name: string): MapSet {
  const flags = alloc === 'prealloc' ? 0 : BPF_F_NO_PREALLOC;
  if (map === 'hash_of_maps' || map === 'array_of_maps') {
    const made: BpfMap[] = [];
    try {
      const template = rt.createMap({ type: 'array', name: `${name}_tpl`, keySize: 4, valueSize: 8, maxEntries: 16 });
      made.push(template);
      for (let i = 0; i < 4; i++) made.push(rt.createMap({ type: 'array', name: `${name}_in${i}`, keySize: 4, valueSize: 8, maxEntries: 16 }));
      const m = rt.createMap({ type: map, name, keySize: 4, valueSize: 4, maxEntries: Math.min(maxEntries, 1024), flags, innerMap: template });
      return { m, extra: made, kind: 'of_maps', innerIds: made.slice(1).map((x) => x.info().id) };
    } catch (e) {
      void closeAll(made); // the outer map was refused: release what was made for it
      throw e;
    }
  }
  const m = rt.createMap({ type: map, name, keySize: 4, valueSize: 8, maxEntries, flags });
  return { m, extra: [], kind: map === 'array' || map === 'percpu_array' ? 'array' : 'hash', innerIds: [] };
}

/** Close maps and wait until their memory is back (dynamic maps free after their grace periods). */
async function closeAll(maps: readonly BpfMap[]): Promise<void> {
  for (const m of maps) await m.close();
}

/** Unload a program: its map references go, so closed maps are freed. */
async function unload(p: Program): Promise<void> {
  await p.unload();
}

/** Per-CPU free_cnt of a dynamically allocated hash map's bpf_mem_alloc cache, with its watermarks. */
function cacheLevels(m: BpfMap, cpus: number): { unitSize: number; low: number; high: number; perCpu: number[] } | null {
  const lv = htabMemAllocLevels(m.impl);
  return lv === null ? null : { unitSize: lv.unitSize, low: lv.low, high: lv.high, perCpu: lv.perCpu.slice(0, cpus) };
}

/** Sum a per-CPU u64 array map's slots into errno-name counts. */
function readErrs(errs: BpfMap, cpus: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (let e = 1; e < ERRS_SLOTS; e++) {
    const key = new Uint8Array(new Uint32Array([e]).buffer);
    const v = errs.lookup(key);
    if (v === undefined) continue;
    const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
    let n = 0;
    for (let c = 0; c < cpus; c++) n += Number(dv.getBigUint64(c * 8, true));
    if (n > 0) out[errnoName(e)] = n;
  }
  return out;
}

function diffErrors(now: Readonly<Record<string, number>>, before: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(now)) { const d = v - (before[k] ?? 0); if (d > 0) out[k] = d; }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Stress

/** A function, not a property read, so TypeScript does not narrow it across awaits. */
function isAborted(o: StressOptions): boolean { return o.signal?.aborted === true; }

interface CellPlan { readonly map: MapType; readonly alloc: AllocMode; readonly workload: NonNullable<StressCell['workload']> }

/** Map types whose values may hold a bpf_timer (map_check_btf): the timer cells. */
const TIMER_MAPS: readonly MapType[] = ['hash', 'lru_hash', 'array'];
const TIMER_STRESS_MAX_ENTRIES = 256;

/**
 * One timer cell: CPUs arm, re-arm and cancel the timers of `m`'s values while updating and
 * deleting its elements; interrupts land (bare: tracing programs may not use timer maps).
 * Invariants: every live timer object is attached to a value once the CPUs stop (none lost, none
 * leaked), none survives the map's uref release, and no callback fired on a freed timer (a
 * use_after_free splat from bpf_timer_cb).
 */
async function runTimerCell(run: StressRun, rt: Runtime, plan: CellPlan, n: number, msPerCell: number, gpsBase: number, irqBase: Interrupts): Promise<StressCell> {
  const o = run.o;
  const name = `${plan.map}+timers/${plan.alloc}`;
  const m = rt.createMap({
    type: plan.map, name: `tm_${n}`, keySize: 4, valueSize: TIMER_STRESS_VALUE_SIZE, maxEntries: TIMER_STRESS_MAX_ENTRIES,
    flags: plan.alloc === 'prealloc' ? 0 : BPF_F_NO_PREALLOC, fields: [{ type: 'bpf_timer', offset: 8 }],
  });
  const prog = await rt.loadProgram(PROG.stressTimers, { maps: { m } });
  const injections = [
    ...(o.nmiRate > 0 ? [rt.inject({ kind: 'nmi', cpus: 'all', ratePerSec: o.nmiRate })] : []),
    ...(o.irqRate > 0 ? [rt.inject({ kind: 'hardirq', cpus: 'all', ratePerSec: o.irqRate })] : []),
  ];
  const args: TimerStressArgs = { keys: plan.map === 'array' ? TIMER_STRESS_MAX_ENTRIES : 2 * TIMER_STRESS_MAX_ENTRIES };
  run.lap('setup');
  const { ops, errors, ms } = await run.runSlices(rt, prog, msPerCell, args, name, gpsBase, irqBase, null, false);
  for (const inj of injections) inj.cancel();
  await rt.idle();
  const st = rt.stats().timers;
  const attached = attachedTimers(m);
  run.invariants.push({
    name: 'timer objects accounted for', scope: name, ok: st.live === attached && st.deferredPending === 0,
    details: st.live === attached && st.deferredPending === 0 ? [] : [`${st.live} bpf_hrtimer objects live, ${attached} attached to values, ${st.deferredPending} frees pending`],
  });
  const violations = m.check();
  run.invariants.push({ name: 'map check()', scope: name, ok: violations.length === 0, details: violations });
  const recursionMisses = prog.stats().recursionMisses; // its state is freed (and poisoned) at unload
  await prog.unload();
  await m.close();
  await rt.idle();
  const after = rt.stats().timers;
  run.invariants.push({
    name: 'uref release frees every timer', scope: name, ok: after.live === 0 && after.queued.every((q) => q === 0),
    details: after.live === 0 ? [] : [`${after.live} bpf_hrtimer objects still live after close`],
  });
  run.lap('checks');
  return { map: plan.map, alloc: plan.alloc, workload: 'timers', status: 'ran', ops, opsPerSec: ms > 0 ? (ops * 1000) / ms : 0, errors, recursionMisses, measuredMs: ms };
}

// ---------------------------------------------------------------------------------------------
// Graph cells (docs/GRAPH.md): bpf_spin_lock, objects, lists, rbtrees, bpf_res_spin_lock, abort

/**
 * One graph cell: every CPU grows and shrinks the trees and lists of GRAPH_STRESS_KEYS values under
 * their bpf_spin_lock (stress_graph.ts), while NMIs and hardirqs run stress_graph_nmi.ts on the
 * same values (bpf_res_spin_lock sections, objects allocated and dropped in NMI, bpf_throw and
 * bounded rule breaks that abort and unwind). Invariants once the CPUs stop: checkGraphValues,
 * every live object in a collection (graphAccountingCheck), the NMI program's aborts exactly its
 * rule breaks (each an expected prog_abort splat) and throws, each unwinding its one object; after
 * the map is freed, no object left.
 */
async function runGraphCell(run: StressRun, rt: Runtime, plan: CellPlan, n: number, msPerCell: number, gpsBase: number, irqBase: Interrupts): Promise<StressCell> {
  const o = run.o;
  const name = `${plan.map}+graph/${plan.alloc}`;
  const liveBase = graphObjStats().live;
  const expectedBefore = rt.splats().filter(isExpectedSplat).length;
  const m = createGraphStressMap(rt, plan.map, plan.alloc, `gr_${n}`);
  const made: BpfMap[] = [m];
  const progs: Program[] = [];
  const injections: ReturnType<Runtime['inject']>[] = [];
  try {
    const ctl = rt.createMap({ type: 'array', name: `grc_${n}`, keySize: 4, valueSize: GRAPH_NMI_CTL_SIZE, maxEntries: 1 });
    made.push(ctl);
    const prog = await rt.loadProgram(PROG.stressGraph, { maps: { m } });
    progs.push(prog);
    const nmiArgs: GraphNmiArgs = { keys: GRAPH_STRESS_KEYS, maxAborts: GRAPH_STRESS_MAX_ABORTS };
    const nmi = await rt.loadProgram(PROG.stressGraphNmi, { maps: { m, ctl }, args: nmiArgs, abortPolicy: 'continue' });
    progs.push(nmi);
    if (o.nmiRate > 0) injections.push(rt.inject({ kind: 'nmi', cpus: 'all', ratePerSec: o.nmiRate, program: nmi }));
    if (o.irqRate > 0) injections.push(rt.inject({ kind: 'hardirq', cpus: 'all', ratePerSec: o.irqRate, program: nmi }));
    const args: GraphStressArgs = { keys: GRAPH_STRESS_KEYS, cap: GRAPH_STRESS_CAP };
    run.lap('setup');
    const { ops, errors, ms } = await run.runSlices(rt, prog, msPerCell, args, name, gpsBase, irqBase, null, false);
    for (const inj of injections.splice(0)) inj.cancel();
    await rt.idle();
    // what the interrupts' attempts returned: bpf_res_spin_lock failures, bpf_obj_new finding the
    // cache dry, and the rule breaks (an aborted run returns -1, EPERM)
    const cv = ctl.lookup(keyBytes(0));
    const c = (off: number): number => (cv === undefined ? 0 : new DataView(cv.buffer, cv.byteOffset).getUint32(off, true));
    const irqErrors: Record<string, number> = {};
    const irqOutcomes = [['EDEADLK', c(NC_RES_DEADLK)], ['ETIMEDOUT', c(NC_RES_TIMEDOUT)], ['EINVAL', c(NC_RES_OTHER)], ['ENOMEM', c(NC_NOMEM)], ['EPERM', c(NC_BREAKS)]] as const;
    for (const [k, v] of irqOutcomes) if (v > 0) irqErrors[k] = v;
    mergeErrors(errors, irqErrors); mergeErrors(run.errors, irqErrors);

    const g = checkGraphValues(m);
    const inv = (nm: string, details: readonly string[]): void => { run.invariants.push({ name: nm, scope: name, ok: details.length === 0, details }); };
    inv('graph structures well formed', g.structure);
    inv('graph counters under their locks', g.counters);
    inv('graph owners and refcounts match membership', g.membership);
    inv('graph objects accounted for', graphAccountingCheck(g.nodes, liveBase));
    // the NMI program: every abort is one of its rule breaks or throws, each unwound one object
    const st = nmi.stats();
    const breaks = c(NC_BREAKS), throws = c(NC_THROWS);
    const expected = rt.splats().filter(isExpectedSplat).length - expectedBefore;
    const nmiDetails: string[] = [];
    if (st.violations !== breaks) nmiDetails.push(`${st.violations} runs aborted for a broken rule, ${breaks} rule breaks made`);
    if (expected !== breaks) nmiDetails.push(`${expected} prog_abort splats for its rule breaks, ${breaks} rule breaks made`);
    if (st.exceptions !== throws) nmiDetails.push(`${st.exceptions} runs ended in bpf_throw, ${throws} throws made`);
    if (st.unwound.objects !== breaks + throws) nmiDetails.push(`unwinding dropped ${st.unwound.objects} objects, ${breaks + throws} were held`);
    if (st.unwound.locks !== 0) nmiDetails.push(`unwinding released ${st.unwound.locks} locks, none was held`);
    if (st.aborted) nmiDetails.push('the program was disabled (abortPolicy continue)');
    inv('NMI aborts unwind (expected prog_abort splats)', nmiDetails);
    const violations = m.check();
    inv('map check()', violations);
    run.lap('checks');
    const recursionMisses = prog.stats().recursionMisses + st.recursionMisses;
    for (const p of progs.splice(0)) await p.unload();
    for (const x of made.splice(0)) await x.close();
    await rt.idle();
    inv('map free drops every graph object', graphAccountingCheck(0, liveBase));
    run.lap('teardown');
    return { map: plan.map, alloc: plan.alloc, workload: 'graph', status: 'ran', ops, opsPerSec: ms > 0 ? (ops * 1000) / ms : 0, errors, recursionMisses, measuredMs: ms };
  } finally {
    // after an exception: what this cell still holds
    for (const inj of injections) inj.cancel();
    await Promise.allSettled(progs.map((p) => p.unload()));
    await Promise.allSettled(made.map((x) => x.close()));
  }
}

type Phase = keyof StressPhases;

function skippedCell(plan: CellPlan, why: string): StressCell {
  return {
    map: plan.map, alloc: plan.alloc, ...(plan.workload !== 'mix' ? { workload: plan.workload } : {}), status: 'skipped', skipReason: why,
    ops: 0, opsPerSec: 0, errors: {}, recursionMisses: 0, measuredMs: 0,
  };
}

const INTERRUPTED = 'interrupted (Ctrl-C) before this cell ran';

/**
 * One stress run. Time: the measured phase (workloads running) is what --seconds bounds. Each
 * cell's share is what is left of it divided by the cells left, so a slice that overran shortens
 * the next cells instead of the run; a cell runs in slices of at most sampleIntervalMs, so the
 * measured phase ends within one slice of --seconds. Everything else (boot, setup, checks,
 * teardown) is counted per phase in `phases`.
 */
class StressRun {
  readonly o: StressOptions;
  readonly onProgress: (s: LiveStats) => void;
  readonly t0 = performance.now();
  readonly totalMs: number;
  readonly phases: Record<Phase, number> = { boot: 0, setup: 0, measured: 0, sampling: 0, checks: 0, teardown: 0 };
  #lapT = performance.now();
  /** Wall time workloads have run so far (the measured phase). */
  measuredMs = 0;
  cellsLeft: number;
  ops = 0;
  errors: Record<string, number> = {};
  splats: SplatRecord[] = [];
  gracePeriods = 0;
  interrupts: Interrupts = ZERO_INTERRUPTS;
  timeline: TimelineSample[] = [];
  caches = new Map<string, { cache: string; cpu: number; unitSize: number; low: number; high: number; points: [number, number][] }>();
  gpLatencyMs: number[] = [];
  invariants: InvariantCheck[] = [];
  leakDetails: string[] = [];
  leakStart = 0;
  leakEnd = 0;
  lastSampleMs = 0;
  lastSampleOps = 0;

  constructor(o: StressOptions, onProgress: (s: LiveStats) => void, cells: number) {
    this.o = o;
    this.onProgress = onProgress;
    this.totalMs = o.seconds * 1000;
    this.cellsLeft = cells;
  }

  elapsed(): number { return performance.now() - this.t0; }

  /** Charge the time since the previous lap to `phase`. */
  lap(phase: Phase): void {
    const t = performance.now();
    this.phases[phase] += t - this.#lapT;
    this.#lapT = t;
  }

  /**
   * Run `prog` on every CPU in slices of at most sampleIntervalMs until `budgetMs` of workload
   * time has passed (at least one slice, 1 ms when nothing is left, so every cell that ran did
   * run) or Ctrl-C; sample after each slice; with `synchronize`, a BPF_SYNCHRONIZE from "user
   * space" between slices (grace periods keep happening even for preallocated maps).
   */
  async runSlices(rt: Runtime, prog: Program, budgetMs: number, args: unknown, name: string, gpsBase: number, irqBase: Interrupts,
    cell: MapSet | null, synchronize: boolean): Promise<{ ops: number; errors: Record<string, number>; ms: number }> {
    const errors: Record<string, number> = {};
    let ops = 0;
    let ms = 0;
    for (let first = true; (first || budgetMs - ms >= 1) && !isAborted(this.o); first = false) {
      const slice = Math.max(1, Math.min(this.o.sampleIntervalMs, budgetMs - ms));
      const ts = performance.now();
      const r = await rt.runWorkload({ cpus: 'all', context: 'task', program: prog, seconds: slice / 1000, args });
      const te = performance.now();
      ms += te - ts;
      this.measured(ts, te);
      ops += r.ops; this.ops += r.ops;
      mergeErrors(errors, r.errors); mergeErrors(this.errors, r.errors);
      this.sample(rt, name, gpsBase, irqBase, cell, name);
      if (synchronize) await rt.synchronizeRcu();
      this.lap('sampling');
    }
    return { ops, errors, ms };
  }

  /** A workload slice ran from `ts` to `te`: the measured phase, exactly; the gap before it is sampling. */
  measured(ts: number, te: number): void {
    this.phases.sampling += ts - this.#lapT;
    this.phases.measured += te - ts;
    this.measuredMs += te - ts;
    this.#lapT = te;
  }

  /** A progress snapshot outside the measured phase (boot, teardown): figures as they stand. */
  status(phase: string): void {
    this.onProgress({
      phase, elapsedMs: this.measuredMs, totalMs: this.totalMs, wallMs: this.elapsed(), ops: this.ops, opsPerSec: 0,
      errors: { ...this.errors }, splats: this.splats.length, gracePeriods: this.gracePeriods, memoryBytes: 0, interrupts: this.interrupts,
    });
  }

  sample(rt: Runtime, phase: string, gpsBase: number, irqBase: Interrupts, cell: MapSet | null, cellName: string): void {
    const t = this.measuredMs;
    const dt = Math.max(1, t - this.lastSampleMs);
    const rate = ((this.ops - this.lastSampleOps) * 1000) / dt;
    this.lastSampleMs = t; this.lastSampleOps = this.ops;
    const st = rt.stats();
    const gps = gpsBase + st.rcu.gpsCompleted;
    const irqs = addInterrupts(irqBase, sumInterrupts(rt));
    this.timeline.push({ tMs: t, opsPerSec: rate, memoryBytes: st.memory.bytesInUse, gracePeriods: gps });
    if (cell !== null) {
      const levels = cacheLevels(cell.m, this.o.cpus);
      if (levels !== null) {
        levels.perCpu.forEach((freeCnt, cpu) => {
          const key = `${cellName}#${cpu}`;
          const s = this.caches.get(key) ?? { cache: cellName, cpu, unitSize: levels.unitSize, low: levels.low, high: levels.high, points: [] };
          s.points.push([t, freeCnt]);
          this.caches.set(key, s);
        });
      }
    }
    this.onProgress({
      phase, elapsedMs: t, totalMs: this.totalMs, wallMs: this.elapsed(), ops: this.ops, opsPerSec: rate, errors: { ...this.errors },
      splats: this.splats.length + rt.splatCount() - rt.splats().filter(isExpectedSplat).length, gracePeriods: gps, memoryBytes: st.memory.bytesInUse, interrupts: irqs,
    });
  }

  async runGroup(dynAlloc: 'bpf_mem_alloc' | 'kmalloc', cells: readonly CellPlan[], out: StressCell[]): Promise<void> {
    const o = this.o;
    const faults = o.faults.reduce((a, f) => a | FAULT_BITS[f], 0);
    this.status(`booting runtime (${dynAlloc})`);
    this.lap('setup');
    const recording = o.check === true || o.record !== undefined;
    const rt = await Runtime.start({ cpus: o.cpus, preemptRt: o.preemptRt, dynAlloc, seed: o.seed, memoryBytes: MEMORY_BYTES, faults, record: recording });
    this.lap('boot');
    const gpsBase = this.gracePeriods;
    const irqBase = this.interrupts;
    // Ctrl-C: end the running slice at its next window, not at its deadline
    const onAbort = (): void => rt.stopWorkloads();
    o.signal?.addEventListener('abort', onAbort);
    // A cell's teardown (unload its programs, then free its maps after their grace periods) runs
    // in the background while the next cell runs; the group waits for all of them at its end.
    // programs/maps: what the current cell holds until its teardown starts (for the error path).
    const programs: Program[] = [];
    const maps: BpfMap[] = [];
    const teardowns: Promise<void>[] = [];
    try {
      this.leakStart = memStats().bytesInUse - globalMaBytes();
      const ownersBefore = ownerSnapshot();
      const errs = rt.createMap({ type: 'percpu_array', name: 'stress_errs', keySize: 4, valueSize: 8, maxEntries: ERRS_SLOTS });
      for (const plan of cells) {
        if (isAborted(o)) { out.push(skippedCell(plan, INTERRUPTED)); this.cellsLeft--; continue; }
        if (plan.workload !== 'mix') {
          // this cell's share of what is left of the measured phase
          const budget = Math.max(0, this.totalMs - this.measuredMs) / Math.max(1, this.cellsLeft);
          try {
            const cell = plan.workload === 'timers' ? runTimerCell : runGraphCell;
            out.push(await cell(this, rt, plan, out.length, budget, gpsBase, irqBase));
          } catch (e: unknown) {
            const why = e instanceof Error ? e.message : String(e);
            out.push(skippedCell(plan, why));
          }
          this.cellsLeft--;
          continue;
        }
        const name = `${plan.map}/${plan.alloc}`;
        let set: MapSet;
        try {
          set = createCellMap(rt, plan.map, plan.alloc, STRESS_MAX_ENTRIES, `st_${out.length}`);
        } catch (e: unknown) {
          // map_create refused (e.g. a mode the library does not implement): report, do not abort
          const why = e instanceof Error ? e.message : String(e);
          out.push(skippedCell(plan, `map_create failed: ${why}`));
          this.cellsLeft--;
          continue;
        }
        maps.push(set.m, ...set.extra);
        // Interrupt programs update only maps the modelled kernel (the map_locked era, before the
        // 2025 rqspinlock conversion) can update from NMI without deadlocking: arrays (no lock) and
        // bpf_mem_alloc hash maps (per-CPU caches, seed 001). Elsewhere they only read, because an
        // NMI spinning on a bucket lock can deadlock against the CPU holding it: that CPU may be
        // stealing from the interrupted CPU's freelist head (preallocated hash), spinning on its
        // slab lock (legacy kmalloc) or on its LRU lock (LRU maps; scenario 'nmi-in-lru-lock').
        const hashLike = plan.map !== 'array' && plan.map !== 'percpu_array' && plan.map !== 'array_of_maps';
        const nmiReadOnly = hashLike && plan.alloc !== 'bpf_mem_alloc';
        // On PREEMPT_RT a legacy (kmalloc) dynamic map takes a sleeping bucket lock, and the verifier
        // of that era refused tracing programs on it: such cells take their interrupts bare.
        const bareIrqs = set.m.usesSleepingBucketLock();
        // both programs load at once (each load is a round trip to every CPU)
        const loads = await Promise.allSettled([
          rt.loadProgram(PROG.mix, { maps: { m: set.m } }),
          bareIrqs ? Promise.resolve(null)
            : rt.loadProgram(PROG.irq, { maps: { m: set.m, errs }, args: { keys: set.kind === 'hash' ? STRESS_KEYS : STRESS_MAX_ENTRIES, readOnly: nmiReadOnly } }),
        ]);
        for (const l of loads) if (l.status === 'fulfilled' && l.value !== null) programs.push(l.value);
        for (const l of loads) if (l.status === 'rejected') throw l.reason;
        const mix = (loads[0] as PromiseFulfilledResult<Program>).value;
        const irq = (loads[1] as PromiseFulfilledResult<Program | null>).value;
        const withProg = irq !== null ? { program: irq } : {};
        const injections = [
          ...(o.nmiRate > 0 ? [rt.inject({ kind: 'nmi', cpus: 'all', ratePerSec: o.nmiRate, ...withProg })] : []),
          ...(o.irqRate > 0 ? [rt.inject({ kind: 'hardirq', cpus: 'all', ratePerSec: o.irqRate, ...withProg })] : []),
        ];
        const w = o.mix.update + o.mix.delete + o.mix.lookup;
        const args: StressMixArgs = {
          updateBelow: Math.round((o.mix.update / w) * 65536), deleteBelow: Math.round(((o.mix.update + o.mix.delete) / w) * 65536),
          keys: set.kind === 'hash' ? STRESS_KEYS : STRESS_MAX_ENTRIES, kind: set.kind, innerIds: set.innerIds,
        };
        const errsBefore = readErrs(errs, o.cpus);
        // this cell's share of what is left of the measured phase
        const budget = Math.max(0, this.totalMs - this.measuredMs) / Math.max(1, this.cellsLeft);
        this.lap('setup');
        const ran = await this.runSlices(rt, mix, budget, args, name, gpsBase, irqBase, plan.alloc === 'bpf_mem_alloc' ? set : null, true);
        const cellErrors: Record<string, number> = ran.errors;
        const cellOps = ran.ops;
        const cellMs = ran.ms;
        this.cellsLeft--;
        for (const inj of injections) inj.cancel();
        await rt.synchronizeRcu();
        const irqErrors = diffErrors(readErrs(errs, o.cpus), errsBefore);
        mergeErrors(cellErrors, irqErrors); mergeErrors(this.errors, irqErrors);
        const violations = set.m.check();
        this.invariants.push({ name: 'map check()', scope: name, ok: violations.length === 0, details: violations });
        let check: CellCheck | undefined;
        let taken: HistoryOp[] = [];
        if (recording) {
          // hand the history over cell by cell: the runtime keeps none (memory stays flat)
          taken = rt.history({ clear: true });
          if (o.record !== undefined) appendHistory(o.record, taken);
        }
        if (o.check === true) {
          const ids = new Set([set.m.id, ...set.extra.map((x) => x.id)]);
          check = await checkCell(rt, taken.filter((op) => ids.has(op.map)));
          this.invariants.push({
            name: 'linearizable (bpfsim/check)', scope: name, ok: check.result !== 'illegal',
            details: check.result === 'illegal' ? [`${check.illegal} of ${check.partitions} partitions illegal; shortest window: ${check.window.join(' · ')}`] : [],
          });
        }
        out.push({
          map: plan.map, alloc: plan.alloc, status: 'ran', ops: cellOps, opsPerSec: cellMs > 0 ? (cellOps * 1000) / cellMs : 0,
          errors: cellErrors, recursionMisses: mix.stats().recursionMisses + (irq?.stats().recursionMisses ?? 0), measuredMs: cellMs,
          ...(check !== undefined ? { check } : {}),
        });
        const cellProgs = programs.splice(0);
        const cellMaps = maps.splice(0);
        const teardown = (async () => {
          await Promise.all(cellProgs.map((p) => unload(p)));
          await Promise.all(cellMaps.map((m) => m.close()));
        })();
        teardown.catch(() => undefined); // handled: the group awaits it (and rethrows) at its end
        teardowns.push(teardown);
        this.lap('checks');
      }
      this.status(isAborted(o) ? 'interrupted: checks and teardown' : 'checks and teardown');
      await Promise.all(teardowns.splice(0));
      await errs.close();
      this.lap('teardown');
      await rt.rcuBarrier();
      await rt.synchronizeRcu();
      await rt.rcuBarrier();
      // global checks with every CPU idle
      const mem = memCheck();
      this.invariants.push({ name: 'allocator accounting', scope: `runtime ${dynAlloc}`, ok: mem.length === 0, details: mem });
      for (const c of cpuQuiescenceChecks(o.cpus)) this.invariants.push({ ...c, scope: `runtime ${dynAlloc}` });
      // leak check: programs are unloaded and maps closed, so the slab is back exactly where it was
      // before the first map (bpf_global_ma aside: see globalMaBytes)
      const end = memStats().bytesInUse - globalMaBytes();
      this.leakEnd += end - this.leakStart;
      if (end !== this.leakStart) {
        this.leakDetails.push(`runtime ${dynAlloc}: slab ${this.leakStart} bytes before the first map, ${end} after teardown`, ...ownerGrowth(ownersBefore));
      }
      this.gracePeriods = gpsBase + rt.stats().rcu.gpsCompleted;
      this.interrupts = addInterrupts(irqBase, sumInterrupts(rt));
      this.gpLatencyMs.push(...rcuGpLatencySamples('rcu'));
      // splats a cell provoked on purpose were counted by that cell's invariant
      this.splats.push(...rt.splats().filter((s) => !isExpectedSplat(s)).map(toSplatRecord));
      if (o.record !== undefined) {
        appendHistory(o.record, rt.history({ clear: true }));
        writeHistoryHeader(o.record, rt, dynAlloc);
      }
      this.lap('checks');
    } finally {
      o.signal?.removeEventListener('abort', onAbort);
      // after an exception: whatever is still loaded or open goes with the runtime
      await Promise.allSettled(teardowns);
      await Promise.allSettled(programs.map((p) => unload(p)));
      await Promise.allSettled(maps.map((m) => m.close()));
      await rt.stop();
      this.lap('teardown');
    }
  }
}

export async function runStress(o: StressOptions, onProgress: (s: LiveStats) => void): Promise<StressResult> {
  const plans: CellPlan[] = [];
  const skipped: StressCell[] = [];
  for (const map of o.maps) {
    for (const alloc of o.alloc) {
      const why = unsupportedReason(map, alloc);
      if (why === null) plans.push({ map, alloc, workload: 'mix' });
      else skipped.push(skippedCell({ map, alloc, workload: 'mix' }, why));
    }
  }
  // timer cells: every map type that may hold a bpf_timer, in each allocation mode it supports
  for (const map of o.maps) {
    if (!TIMER_MAPS.includes(map)) continue;
    for (const alloc of o.alloc) {
      if (unsupportedReason(map, alloc) !== null) continue;
      if (o.preemptRt) skipped.push(skippedCell({ map, alloc, workload: 'timers' }, 'bpf_timer cannot be used on PREEMPT_RT (the 2025 verifier)'));
      else plans.push({ map, alloc, workload: 'timers' });
    }
  }
  // graph cells: every map type whose values may hold graph roots, in each allocation mode it supports
  for (const map of o.maps) {
    if (!GRAPH_MAPS.includes(map)) continue;
    for (const alloc of o.alloc) if (unsupportedReason(map, alloc) === null) plans.push({ map, alloc, workload: 'graph' });
  }
  const run = new StressRun(o, onProgress, plans.length);
  const cells: StressCell[] = [];
  const groups: ['bpf_mem_alloc' | 'kmalloc', CellPlan[]][] = [
    ['bpf_mem_alloc', plans.filter((p) => dynAllocOf(p.alloc) === 'bpf_mem_alloc')],
    ['kmalloc', plans.filter((p) => dynAllocOf(p.alloc) === 'kmalloc')],
  ];
  let leakStartTotal = 0;
  for (const [dyn, list] of groups) {
    if (list.length === 0) continue;
    if (isAborted(o)) { // no runtime boots after Ctrl-C
      for (const p of list) cells.push(skippedCell(p, INTERRUPTED));
      continue;
    }
    await run.runGroup(dyn, list, cells);
    leakStartTotal += run.leakStart;
  }
  const leaked = run.leakEnd;
  return {
    seed: o.seed,
    elapsedMs: run.elapsed(),
    measuredMs: run.measuredMs,
    phasesMs: { ...run.phases },
    interrupted: isAborted(o),
    cells: [...cells, ...skipped],
    interrupts: run.interrupts,
    gracePeriods: run.gracePeriods,
    splats: run.splats,
    invariants: run.invariants,
    leak: { ok: leaked === 0, startBytes: leakStartTotal, endBytes: leakStartTotal + leaked, details: run.leakDetails },
    timeline: run.timeline,
    caches: [...run.caches.values()] satisfies CacheSeries[],
    gpLatencyMs: run.gpLatencyMs,
  };
}
