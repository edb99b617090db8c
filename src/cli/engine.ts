/*
 * engine.ts — the Engine (engine_api.ts) on top of the bpfsim library. The ONLY file of the CLI
 * that imports the library (the worker-side programs in ./programs/ import `../../program.js`,
 * as every program does). Everything else in src/cli works with the types in engine_api.ts.
 *
 * Runtimes: one thread holds one runtime at a time, and the dynamic allocator (bpf_mem_alloc or
 * kmalloc) is a runtime option. So a stress run boots one runtime for the prealloc and
 * bpf_mem_alloc cells and a second one for the kmalloc cells; a bench suite switches runtimes
 * lazily when a case needs the other allocator (boot time is outside every measured window).
 *
 * Stress cell: create the map, load stress_mix (task workload) and stress_irq (run by random NMIs
 * and hardirqs on the same map), run the workload in slices of sampleIntervalMs (each slice
 * reports progress and samples the timeline), stop the interrupts, wait for a grace period, then
 * check the map and tear it down. After the last cell of a runtime: rcu_barrier, the global
 * checks (allocator, lock words, recursion/preempt/RCU counters on every CPU), the leak check
 * (slab bytes back to their value before the first map), splats, stop.
 *
 * Timer and graph cells (runTimerCell, runGraphCell) run their own programs on a map whose values
 * hold a bpf_timer, or a bpf_spin_lock with an rbtree and a list; a graph cell's NMI program breaks
 * a rule on purpose a bounded number of times, and those prog_abort splats are counted by the
 * cell's invariant instead of reported (isExpectedSplat).
 */
import { formatHistoryOp } from './format.js';
import { Runtime, type Program } from '../runtime/runtime.js';
import { BPF_F_NO_PREALLOC, BPF_F_NO_COMMON_LRU } from '../maps/map_ops.js';
import type { BpfMap } from '../maps/bpf_map.js';
import { listScenarios, runScenario } from '../scenarios/index.js';
import { memStats, memCheck, ownerBytes, ownerName, OWNER_KERNEL } from '../mem/owners.js';
import { I32, U8 } from '../mem/arena.js';
import { kmalloc, kfree } from '../mem/slab.js';
import { perCpuBlock } from '../mem/this_cpu.js';
import {
  MEM_MAX_OWNERS, FAULT_DROP_FREELIST_PUSH, FAULT_LOST_UPDATE, FAULT_PHANTOM_DELETE, FAULT_NOEXIST_OVERWRITE, PC_HELD_COUNT, PC_WAIT_LOCK, PC_PROG_ACTIVE, PC_PREEMPT_COUNT,
  PC_MIGRATE_DISABLE, PC_IRQS_OFF, PC_RCU_NESTING, PC_RCU_TRACE_NESTING,
} from '../mem/layout.js';
import { errnoName } from '../errno.js';
import { rcuGpLatencySamples } from '../rcu/rcu.js';
import { htabMemAllocLevels } from '../maps/hashtab.js';
import { BPF_TIMER_RETIRED } from '../maps/btf_record.js';
import {
  runWorkers, runSharedMap, createFilledSharedMap, loadSharedMap, spawnUntilReady, allocateArena, importingWorkerSource,
  BARE_WORKER_SOURCE, type BenchCase, type Measurement,
} from '../bench/harness.js';
import {
  EngineUsageError, unsupportedReason, type Engine, type StressOptions, type StressResult, type LiveStats,
  type StressCell, type InvariantCheck, type CacheSeries, type TimelineSample, type SplatRecord,
  type Interrupts, type MapType, type AllocMode, type BenchRequest, type BenchSuite, type ScenarioInfo,
  type ScenarioOptions, type ScenarioResult, type ContextName, type FaultName, type StressPhases, type TimerLatencySeries, type CellCheck, type CellTimeline,
} from './engine_api.js';
import { readInterrupts, addInterrupts, ZERO_INTERRUPTS } from './irq_stats.js';
import { Worker } from 'node:worker_threads';
import { appendFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { checkHistory, type IllegalPartition, type HistoryOp as CheckOp } from '../check/index.js';
import type { HistoryOp } from '../maps/map_history.js';
import type { StressMixArgs } from './programs/stress_mix.js';
import { ERRS_SLOTS } from './programs/stress_irq.js';
import type { BenchArgs, BenchOp } from './programs/bench_ops.js';
import { eventsPerRun, type MapPerfArgs } from './programs/bench_map_perf.js';
import { HTAB_MEM_SCENARIOS, htabMemUserBytes, htabMemOps, type HtabMemArgs } from './programs/bench_htab_mem.js';
import { TIMER_STRESS_VALUE_SIZE, type TimerStressArgs } from './programs/stress_timers.js';
import { ARM_CANCEL_PAIRS, BENCH_TIMER_VALUE_SIZE, LATENCY_BASE, SAMPLES_PER_CPU, type BenchTimerArgs } from './programs/bench_timers.js';
import {
  GRAPH_STRESS_VALUE_SIZE, GRAPH_VALUE_FIELDS, GV_LOCK, GV_RES, GV_ROOT, GV_HEAD, GV_TREE_N, GV_LIST_N, GV_RES_PLAIN, GV_RES_ATOMIC,
  GN_RB, GN_LIST, GN_REF, GN_KEY, GRAPH_NODE_TYPE, type GraphStressArgs,
} from './programs/stress_graph.js';
import {
  GRAPH_NMI_CTL_SIZE, GRAPH_NMI_PROG_NAME, NC_BREAKS, NC_THROWS, NC_RES_DEADLK, NC_RES_TIMEDOUT, NC_RES_OTHER, NC_NOMEM,
  type GraphNmiArgs,
} from './programs/stress_graph_nmi.js';
import {
  BENCH_GRAPH_VALUE_SIZE, BENCH_GRAPH_FIELDS, BENCH_GRAPH_INNER, BENCH_GRAPH_TREE_SIZE, type BenchGraphArgs,
} from './programs/bench_graph.js';
import { runGraphJs } from './programs/bench_graph_js.js';
import { graphObjStats, graphObjCheck, objType } from '../graph/bpf_obj.js';
import { bpfListCheck, bpfListNodes } from '../graph/bpf_list.js';
import { bpfRbtreeCheck, bpfRbtreeNodes } from '../graph/bpf_rbtree.js';
import { LN_OWNER, RBN_OWNER } from '../graph/graph_layout.js';

const PROG = {
  mix: new URL('./programs/stress_mix.js', import.meta.url),
  irq: new URL('./programs/stress_irq.js', import.meta.url),
  bench: new URL('./programs/bench_ops.js', import.meta.url),
  mapPerf: new URL('./programs/bench_map_perf.js', import.meta.url),
  htabMem: new URL('./programs/bench_htab_mem.js', import.meta.url),
  timers: new URL('./programs/bench_timers.js', import.meta.url),
  stressTimers: new URL('./programs/stress_timers.js', import.meta.url),
  stressGraph: new URL('./programs/stress_graph.js', import.meta.url),
  stressGraphNmi: new URL('./programs/stress_graph_nmi.js', import.meta.url),
  benchGraph: new URL('./programs/bench_graph.js', import.meta.url),
};

const FAULT_BITS: Readonly<Record<FaultName, number>> = {
  drop_freelist_push: FAULT_DROP_FREELIST_PUSH, lost_update: FAULT_LOST_UPDATE, phantom_delete: FAULT_PHANTOM_DELETE,
  noexist_overwrite: FAULT_NOEXIST_OVERWRITE,
};

/** Memory for one runtime: enough for every stress cell's map plus the allocator's caches. */
const MEMORY_BYTES = 256 << 20;
const STRESS_MAX_ENTRIES = 4096;
/** Keys range over twice the capacity, so hash maps fill up and E2BIG/ENOMEM paths run too. */
const STRESS_KEYS = 2 * STRESS_MAX_ENTRIES;

// ---------------------------------------------------------------------------------------------
// Helpers over a runtime

function dynAllocOf(alloc: AllocMode): 'bpf_mem_alloc' | 'kmalloc' {
  return alloc === 'kmalloc' ? 'kmalloc' : 'bpf_mem_alloc';
}

function sumInterrupts(rt: Runtime): Interrupts {
  return readInterrupts(rt.stats());
}

function toSplatRecord(s: ReturnType<Runtime['splats']>[number]): SplatRecord {
  return { kind: s.kind, cpu: s.cpu, context: s.context as ContextName, site: s.site, heldLocks: [...s.heldLocks], message: s.message, timeNs: s.timeNs };
}

function mergeErrors(into: Record<string, number>, from: Readonly<Record<string, number>>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
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

/** Bytes charged to every owner id (memory accounting by owner). */
function ownerSnapshot(): number[] {
  const out: number[] = [];
  for (let id = 0; id < MEM_MAX_OWNERS; id++) out.push(ownerBytes(id));
  return out;
}

/**
 * Slab bytes of bpf_global_ma, the allocator of graph objects: created with the first program that
 * declares object types and never freed (as the kernel's), its per-CPU caches keep free objects
 * between their watermarks. The leak check leaves it out; the graph cells check that no object
 * stays live (graphObjStats) instead.
 */
function globalMaBytes(): number {
  let n = 0;
  for (let id = 0; id < MEM_MAX_OWNERS; id++) if (ownerName(id) === 'bpf_global_ma') n += ownerBytes(id);
  return n;
}

/** Owners holding more than at `before` (kernel: minus `kernelResidue`), as detail lines. */
function ownerGrowth(before: readonly number[]): string[] {
  const out: string[] = [];
  for (let id = 0; id < MEM_MAX_OWNERS; id++) {
    const d = ownerBytes(id) - before[id]!;
    if (d !== 0) out.push(`owner ${ownerName(id)} (#${id}): ${d > 0 ? '+' : ''}${d} bytes`);
  }
  return out;
}

/** Per-CPU state that must be back to zero when nothing runs: held locks, waits, counters. */
function cpuQuiescenceChecks(cpus: number): InvariantCheck[] {
  const locks: string[] = [];
  const counters: string[] = [];
  const words: [string, number][] = [
    ['bpf_prog_active', PC_PROG_ACTIVE], ['preempt_count', PC_PREEMPT_COUNT], ['migrate_disable', PC_MIGRATE_DISABLE],
    ['irqs_off', PC_IRQS_OFF], ['rcu_read_lock nesting', PC_RCU_NESTING], ['rcu_read_lock_trace nesting', PC_RCU_TRACE_NESTING],
  ];
  for (let c = 0; c < cpus; c++) {
    const b = perCpuBlock(c) >> 2;
    const held = Atomics.load(I32, b + (PC_HELD_COUNT >> 2));
    const waiting = Atomics.load(I32, b + (PC_WAIT_LOCK >> 2));
    if (held !== 0) locks.push(`CPU ${c} still holds ${held} lock(s)`);
    if (waiting !== 0) locks.push(`CPU ${c} still waits for the lock at 0x${(waiting >>> 0).toString(16)}`);
    for (const [name, off] of words) {
      const v = Atomics.load(I32, b + (off >> 2));
      if (v !== 0) counters.push(`CPU ${c}: ${name} = ${v}, expected 0`);
    }
  }
  return [
    { name: 'lock words free', scope: 'global', ok: locks.length === 0, details: locks },
    { name: 'recursion counters zero', scope: 'global', ok: counters.length === 0, details: counters },
  ];
}

// ---------------------------------------------------------------------------------------------
// Stress

/** A function, not a property read, so TypeScript does not narrow it across awaits. */
function isAborted(o: StressOptions): boolean { return o.signal?.aborted === true; }

interface CellPlan { readonly map: MapType; readonly alloc: AllocMode; readonly workload: NonNullable<StressCell['workload']> }

/** Map types whose values may hold a bpf_timer (map_check_btf): the timer cells. */
const TIMER_MAPS: readonly MapType[] = ['hash', 'lru_hash', 'array'];
const TIMER_STRESS_MAX_ENTRIES = 256;

/** Initialised bpf_timer fields in `m`'s values (main thread; program-path lookups of every key). */
function attachedTimers(m: BpfMap): number {
  let n = 0;
  const keyPtr = kmalloc(8, OWNER_KERNEL);
  try {
    for (const k of m.keys()) {
      U8.set(k, keyPtr);
      const v = m.impl.lookup(keyPtr);
      const w = v === 0 ? 0 : Atomics.load(I32, (v + 8) >> 2);
      if (w !== 0 && w !== BPF_TIMER_RETIRED) n++;
    }
  } finally {
    kfree(keyPtr);
  }
  return n;
}

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

/** Map types whose values may hold graph roots (map_check_btf): the graph cells. */
const GRAPH_MAPS: readonly MapType[] = ['hash', 'lru_hash', 'array'];
/** Values every CPU works on (few: every lock is contended), and the tree size each drifts towards. */
export const GRAPH_STRESS_KEYS = 4;
const GRAPH_STRESS_CAP = 32;
/** Rule breaks the NMI program may make per cell (each one expected 'prog_abort' splat: the ring holds 256). */
const GRAPH_STRESS_MAX_ABORTS = 8;

/**
 * The prog_abort splats of the graph cells' NMI program breaking its rule on purpose: its name and
 * that rule (the rest of the wording is run_state.ts's: what was released, the abort policy).
 */
function isExpectedSplat(s: { readonly kind: string; readonly message: string }): boolean {
  return s.kind === 'prog_abort' && s.message.startsWith(`program '${GRAPH_NMI_PROG_NAME}' aborted`)
    && s.message.includes(`bpf_list_push_back: bpf_spin_lock at off=${GV_LOCK} must be held for bpf_list_head`);
}

function keyBytes(k: number): Uint8Array { return new Uint8Array(new Uint32Array([k]).buffer); }

/**
 * A graph cell's map: values of GRAPH_STRESS_VALUE_SIZE bytes (bpf_spin_lock, bpf_res_spin_lock,
 * bpf_rb_root and bpf_list_head of GRAPH_NODE_TYPE objects), keys 0..keys-1 all present (the
 * workload never adds or deletes elements: a value deleted under a program that still holds its
 * pointer would take nodes pushed after its teardown with it, as in the kernel).
 */
export function createGraphStressMap(rt: Runtime, map: MapType, alloc: AllocMode, name: string, keys = GRAPH_STRESS_KEYS): BpfMap {
  const m = rt.createMap({
    type: map, name, keySize: 4, valueSize: GRAPH_STRESS_VALUE_SIZE, maxEntries: map === 'array' ? keys : 4 * keys,
    flags: alloc === 'prealloc' ? 0 : BPF_F_NO_PREALLOC, fields: GRAPH_VALUE_FIELDS,
  });
  if (map !== 'array') {
    const zero = new Uint8Array(GRAPH_STRESS_VALUE_SIZE);
    try {
      for (let k = 0; k < keys; k++) m.update(keyBytes(k), zero);
    } catch (e) {
      void m.close();
      throw e;
    }
  }
  return m;
}

/** What checkGraphValues found in a graph cell's map (main thread, every CPU idle). */
export interface GraphValuesCheck {
  readonly values: number;
  /** distinct objects in the values' collections (one in a tree and a list counts once) */
  readonly nodes: number;
  /** of those, in a tree and a list */
  readonly inBoth: number;
  /** bpfRbtreeCheck (ordered by key) and bpfListCheck of every value */
  readonly structure: readonly string[];
  /** lock words free; GV_TREE_N / GV_LIST_N = the collections' sizes; res plain = res atomic */
  readonly counters: readonly string[];
  /** every node a live object of the type; owner words 0 outside a collection; refcount = collections holding it */
  readonly membership: readonly string[];
}

/**
 * The structure invariants of a graph cell's map: each value's tree and list well formed, the
 * lock-protected counters equal to what the collections hold (the locks excluded), and every node
 * a live object whose owner words and refcount agree with the collections it is in.
 */
export function checkGraphValues(m: BpfMap): GraphValuesCheck {
  const u32 = (p: number): number => I32[p >> 2]! >>> 0;
  const less = (a: number, b: number): boolean => u32(a - GN_RB + GN_KEY) < u32(b - GN_RB + GN_KEY);
  const hx = (p: number): string => `0x${(p >>> 0).toString(16)}`;
  const structure: string[] = [], counters: string[] = [], membership: string[] = [];
  /** object -> [trees holding it, lists holding it] */
  const held = new Map<number, [number, number]>();
  let values = 0;
  const keyPtr = kmalloc(8, OWNER_KERNEL);
  try {
    for (const k of m.keys()) {
      U8.set(k, keyPtr);
      const v = m.impl.lookup(keyPtr);
      if (v === 0) continue;
      values++;
      const key = new DataView(k.buffer, k.byteOffset).getUint32(0, true);
      const where = `value ${key} (${hx(v)})`;
      const bad = [...bpfRbtreeCheck(v + GV_ROOT, less), ...bpfListCheck(v + GV_HEAD)];
      structure.push(...bad.map((b) => `${where}: ${b}`));
      if (Atomics.load(I32, (v + GV_LOCK) >> 2) !== 0) counters.push(`${where}: bpf_spin_lock word ${hx(I32[(v + GV_LOCK) >> 2]!)} with every CPU idle`);
      if (Atomics.load(I32, (v + GV_RES) >> 2) !== 0) counters.push(`${where}: bpf_res_spin_lock word ${hx(I32[(v + GV_RES) >> 2]!)} with every CPU idle`);
      if (u32(v + GV_RES_PLAIN) !== u32(v + GV_RES_ATOMIC)) {
        counters.push(`${where}: ${u32(v + GV_RES_PLAIN)} plain increments under bpf_res_spin_lock, ${u32(v + GV_RES_ATOMIC)} atomic ones (an update was lost: two holders at once)`);
      }
      if (bad.length > 0) continue; // links not safe to walk
      const tree = bpfRbtreeNodes(v + GV_ROOT).map((n) => n - GN_RB);
      const list = bpfListNodes(v + GV_HEAD).map((n) => n - GN_LIST);
      if (tree.length !== u32(v + GV_TREE_N)) counters.push(`${where}: the tree holds ${tree.length} nodes, its counter under bpf_spin_lock says ${u32(v + GV_TREE_N)}`);
      if (list.length !== u32(v + GV_LIST_N)) counters.push(`${where}: the list holds ${list.length} nodes, its counter under bpf_spin_lock says ${u32(v + GV_LIST_N)}`);
      for (const o of tree) { const h = held.get(o) ?? [0, 0]; h[0]++; held.set(o, h); }
      for (const o of list) { const h = held.get(o) ?? [0, 0]; h[1]++; held.set(o, h); }
    }
  } finally {
    kfree(keyPtr);
  }
  let inBoth = 0;
  for (const [o, [trees, lists]] of held) {
    if (trees > 0 && lists > 0) inBoth++;
    const t = objType(o);
    if (t === undefined || t.name !== GRAPH_NODE_TYPE) { membership.push(`node ${hx(o)} is not a live ${GRAPH_NODE_TYPE} object (header ${hx(I32[(o - 8) >> 2]!)})`); continue; }
    if (trees > 1 || lists > 1) membership.push(`object ${hx(o)} is in ${trees} trees and ${lists} lists`);
    if (trees === 0 && I32[(o + GN_RB + RBN_OWNER) >> 2] !== 0) membership.push(`object ${hx(o)} is in no tree but its bpf_rb_node owner is ${hx(I32[(o + GN_RB + RBN_OWNER) >> 2]!)}`);
    if (lists === 0 && I32[(o + GN_LIST + LN_OWNER) >> 2] !== 0) membership.push(`object ${hx(o)} is in no list but its bpf_list_node owner is ${hx(I32[(o + GN_LIST + LN_OWNER) >> 2]!)}`);
    const rc = I32[(o + GN_REF) >> 2]!;
    if (rc !== trees + lists) membership.push(`object ${hx(o)}: refcount ${rc}, held by ${trees + lists} collection(s)`);
  }
  return { values, nodes: held.size, inBoth, structure, counters, membership };
}

/** The accounting invariant: objects live beyond `liveBase` = nodes in the collections; graphObjCheck() clean. */
export function graphAccountingCheck(nodes: number, liveBase: number): string[] {
  const st = graphObjStats();
  const out = [...graphObjCheck()];
  if (st.live - liveBase !== nodes) out.push(`${st.live - liveBase} objects live (${st.live}, ${liveBase} before the cell), ${nodes} in the collections`);
  return out;
}

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

/** stress --record FILE: append operations, one JSON line each (docs/CHECK.md). */
function appendHistory(file: string, ops: readonly HistoryOp[]): void {
  if (ops.length > 0) appendFileSync(file, `${ops.map((op) => JSON.stringify(op)).join('\n')}\n`);
}

/**
 * stress --record FILE: after a runtime's operations, one header line
 * { "bpfsim": "history/1", "dynAlloc", "cpus", "syscallCpu", "recorded", "dropped", "maps" } that
 * says what they were recorded on (`maps` is CheckOptions.maps).
 */
function writeHistoryHeader(file: string, rt: Runtime, dynAlloc: string): void {
  const st = rt.historyStats();
  const head = { bpfsim: 'history/1', dynAlloc, cpus: rt.cpus, syscallCpu: rt.cpus, recorded: st.recorded, dropped: st.dropped, maps: rt.historyMaps() };
  appendFileSync(file, `${JSON.stringify(head)}\n`);
}

/** Check one cell's history (stress --check): a budget of 30 s; dropped operations make it incomplete. */
async function checkCell(rt: Runtime, ops: readonly HistoryOp[]): Promise<CellCheck> {
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

async function runStress(o: StressOptions, onProgress: (s: LiveStats) => void): Promise<StressResult> {
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

// ---------------------------------------------------------------------------------------------
// Bench — the case definitions, shared by `bpfsim bench` (engine.benchSuite) and by the files in
// bench/ (createBenchSuite): one definition of every workload, unit and baseline. The files in
// bench/ only choose the request (which benchmarks, maps, alloc modes, how many CPUs).
//
//   map_perf  samples/bpf/map_perf_test: per-CPU events/s at each CPU count of cpuSteps(cpus)
//             (1, 2, 4, …), each CPU on its own key. Hash-type maps: an event = update(BPF_ANY)
//             → lookup → delete, ten per program run (the kernel's loop since Sep 2022; its
//             printed "events per sec" counts syscalls, i.e. our events / 10). Arrays: an event
//             = one lookup of key 1, 64 per run (stress_array_map_lookup). lru_hash runs twice:
//             common LRU and BPF_F_NO_COMMON_LRU. Two paths: 'helper' (map helpers in a program)
//             and 'syscall' (the bpf(2) commands a task-context workload makes, ctx.sys.*).
//             Baseline: the preallocated map of the same type, path and CPU count.
//             max_entries as the kernel's maps: 1000, LRU 10 000.
//   htab_mem  selftests bench htab-mem: overwrite, batch_add_batch_del, add_del_on_diff_cpu with
//             `cpus` producers (add_del: an even number), key 4 B, value 8 B, max_entries =
//             max(8192, 64 × cpus), 64 keys per invocation; ops/s per producer and the map's
//             memory (mapMemoryBytes: slab bytes charged to the map and to its elements' owner,
//             sampled every 10 ms: the kernel's memcg figure). Baseline: preallocated.
//   lookup    1 CPU, 100k entries, hash lookup / overwrite vs JS Map.get / Map.set (bench_ops).
//   scaling   lookups (64 per run, a stride walk over 100k shared keys) on 1, 2, 4, … CPUs
//             (preallocated maps of each requested type), and a JS Map per worker doing the same
//             walk on as many threads; each against its own 1-CPU figure (target 2 CPUs ≥ 1.8×).
//   graph     rbtree add + remove-first and list push + pop pairs under bpf_spin_lock
//             (bench_graph.ts), on 1, 2, 4, … CPUs, each CPU on its own value or all on one;
//             against the same work in as many worker threads behind an Atomics lock
//             (bench_graph_js.ts: a JS sorted array / array, per thread or in one SharedArrayBuffer).
//   baselines what a Node user would pick instead, same keys and workload: BASELINE_KEYS u32 keys,
//             8-byte values, lookups or overwrite updates walking the keys with a fixed stride
//             (bench/programs/baselines_ops.ts, 64 per run), on 1 and 2 CPUs / threads: bpfsim's
//             hash map (prealloc), the `sharedmap` npm package (one map in a SharedArrayBuffer;
//             the baseline, target bpfsim ≥ 20×) and a JS Map per worker (harness.ts). Without
//             sharedmap installed, its cases are skipped and the JS Map is the baseline.
//   boot      Runtime.start({ cpus: 8 }) to ready (then stop), against 8 bare worker threads that
//             import nothing; the breakdown: 8 workers that import the CPU worker's module, and
//             the arena's SharedArrayBuffer alone (harness.ts boot probes). Unit: ms. The suite's
//             runtime is stopped first (one runtime per thread).
//   oversub   the lock-heavy mix (baselines_ops 'mix': 50 % update, 25 % delete, 25 % lookup of
//             OVERSUB_KEYS keys shared by every CPU) on 8 CPUs against 2, in one 8-CPU runtime;
//             total ops/s (target 8 CPUs ≥ 0.9× of 2 on a 2-core machine).
//
// Runtimes: one per thread, and the dynamic allocator is a runtime option, so a suite keeps one
// runtime and switches when a case needs the other allocator. Within each benchmark the cases
// that need the kmalloc runtime come last, so interleaved rounds switch twice per round at most.

interface RtConfig {
  readonly dynAlloc: 'bpf_mem_alloc' | 'kmalloc';
  /** CPUs of the runtime. @defaultValue the request's CPU count */
  readonly cpus?: number;
}

interface Fixture { readonly m: BpfMap; readonly prog: Program; readonly user: SharedArrayBuffer | null }

/**
 * Holds at most one runtime; cases ask for the configuration they need. A fixture made in a new
 * runtime runs in workers whose JIT has not seen the program yet: the map_perf, htab_mem and
 * scaling cases run WARM_S untimed first (`fresh`), so a runtime switch does not bias the round.
 */
class RuntimeSlot {
  readonly req: BenchRequest;
  #rt: Runtime | null = null;
  #cfg: RtConfig | null = null;
  #cache = new Map<string, Fixture>();
  constructor(req: BenchRequest) { this.req = req; }

  async get(cfg: RtConfig): Promise<Runtime> {
    const cpus = cfg.cpus ?? this.req.cpus;
    if (this.#rt !== null && this.#cfg?.dynAlloc === cfg.dynAlloc && this.#rt.cpus === cpus) return this.#rt;
    await this.close();
    this.#rt = await Runtime.start({ cpus, preemptRt: this.req.preemptRt, dynAlloc: cfg.dynAlloc, seed: this.req.seed, memoryBytes: MEMORY_BYTES });
    this.#cfg = cfg;
    return this.#rt;
  }

  /** A map + program for `key`, created and set up once per runtime. */
  async fixture(key: string, cfg: RtConfig, o: {
    make: (rt: Runtime) => BpfMap; prog: URL; userBytes?: number; setup?: (rt: Runtime, f: Fixture) => Promise<void>;
  }): Promise<{ rt: Runtime; fresh: boolean } & Fixture> {
    const rt = await this.get(cfg);
    let f = this.#cache.get(key);
    const fresh = f === undefined;
    if (f === undefined) {
      const m = o.make(rt);
      const prog = await rt.loadProgram(o.prog, { maps: { m } });
      f = { m, prog, user: o.userBytes !== undefined ? new SharedArrayBuffer(o.userBytes) : null };
      if (o.setup !== undefined) await o.setup(rt, f);
      this.#cache.set(key, f);
    }
    return { rt, fresh, ...f };
  }

  async close(): Promise<void> {
    this.#cache.clear();
    const rt = this.#rt;
    this.#rt = null; this.#cfg = null;
    if (rt !== null) await rt.stop();
  }
}

function cpuRange(n: number): number[] { return [...Array(n).keys()]; }

/**
 * Slab bytes charged to a map: its own memory owner plus, for BPF_F_NO_PREALLOC hash maps, the
 * owner its elements, value areas and bpf_mem_alloc caches are charged to (impl.alloc.owner) —
 * together what the kernel charges to the map's memcg. All slab bytes when the map has no owner.
 */
export function mapMemoryBytes(m: BpfMap): number {
  const impl = m.impl as unknown as { owner?: unknown; alloc?: { owner?: unknown } | null };
  if (typeof impl.owner !== 'number') return memStats().bytesInUse;
  const elems = impl.alloc?.owner;
  return ownerBytes(impl.owner) + (typeof elems === 'number' && elems !== impl.owner ? ownerBytes(elems) : 0);
}

async function measure(rt: Runtime, prog: Program, cpus: number, seconds: number, args: BenchArgs, opsPerIter = 1): Promise<Measurement> {
  const r = await rt.runWorkload({ cpus: cpuRange(cpus), context: 'task', program: prog, seconds, args });
  const elapsedNs = Math.max(...r.perCpu.map((c) => c.durationNs), 1);
  return { ops: r.ops * opsPerIter, elapsedNs };
}

async function prefill(rt: Runtime, prog: Program, keys: number): Promise<void> {
  await rt.runWorkload({ cpus: [0], context: 'task', program: prog, iterations: keys, args: { op: 'fill', keys, perCpu: false, canDelete: true } satisfies BenchArgs });
}

/**
 * Run `args` on CPUs 0..cpus-1 for `seconds`. perCpu: ops = mean events per CPU (per-CPU
 * events/s, as map_perf_test prints); else the sum over CPUs (throughput).
 */
async function runEvents(rt: Runtime, prog: Program, cpus: number, seconds: number, args: MapPerfArgs, perCpu: boolean, errors: Record<string, number>): Promise<Measurement> {
  const r = await rt.runWorkload({ cpus: cpuRange(cpus), context: 'task', program: prog, seconds, args });
  mergeErrors(errors, r.errors);
  const events = r.ops * eventsPerRun(args.op);
  const durs = r.perCpu.map((c) => c.durationNs);
  return perCpu
    ? { ops: events / cpus, elapsedNs: Math.max(durs.reduce((a, b) => a + b, 0) / durs.length, 1) }
    : { ops: events, elapsedNs: Math.max(...durs, 1) };
}

function cpuSteps(max: number): number[] {
  const out: number[] = [];
  for (let c = 1; c < max; c *= 2) out.push(c);
  out.push(max);
  return [...new Set(out)];
}

interface PlannedCase {
  readonly c: BenchCase;
  /** The map the case creates (probed before the run: a refused map skips the case). */
  readonly needs?: { readonly map: MapType; readonly alloc: AllocMode; readonly flags: number };
}

/** A map_perf map: a type, with flags (LRU: common or per-CPU lists), and its event. */
interface MapPerfVariant {
  readonly key: string;
  readonly map: MapType;
  readonly flags: number;
  readonly name: string;
  readonly op: 'triple' | 'lookup';
  readonly maxEntries: number;
}

function mapPerfVariants(maps: readonly MapType[]): MapPerfVariant[] {
  const out: MapPerfVariant[] = [];
  for (const map of maps) {
    if (map === 'hash' || map === 'percpu_hash') out.push({ key: map, map, flags: 0, name: map, op: 'triple', maxEntries: 1000 });
    else if (map === 'lru_hash' || map === 'lru_percpu_hash') {
      out.push({ key: map, map, flags: 0, name: map, op: 'triple', maxEntries: 10_000 });
      out.push({ key: `${map}_nocommon`, map, flags: BPF_F_NO_COMMON_LRU, name: `${map} (no common LRU)`, op: 'triple', maxEntries: 10_000 });
    } else if (map === 'array' || map === 'percpu_array') out.push({ key: map, map, flags: 0, name: `${map} lookup`, op: 'lookup', maxEntries: 1000 });
    // hash_of_maps / array_of_maps: map_perf has no workload for them (its INNER_LRU test aside)
  }
  return out;
}

const SCALING_KEYS = 100_000;
/** Untimed run of a fresh fixture (new runtime or new map), seconds. */
const WARM_S = 0.1;

/** The build's root seen from here: dist/src/cli/ in the build; from the sources (tests), the compiled files. */
const DIST_ROOT = import.meta.url.includes('/dist/') ? '../../' : '../../dist/';
/** The bench programs that live with the benchmarks (dist/bench/programs/). */
const BENCH_PROG = { baselines: new URL(`${DIST_ROOT}bench/programs/baselines_ops.js`, import.meta.url) };
/** The CPU worker's entry module (what every CPU of a runtime loads). */
const CPU_WORKER_ENTRY = new URL(`${DIST_ROOT}workers/cpu.js`, import.meta.url);
/** Operations per run of baselines_ops (lookup, update, mix). */
const BASELINE_OPS_PER_RUN = 64;
const BASELINE_KEYS = 100_000;
/** The issue's target for bpfsim's hash map against sharedmap. */
const BASELINE_SHAREDMAP_TARGET = 20;
const BOOT_CPUS = 8;
const OVERSUB_CPUS = 8;
const OVERSUB_BASE_CPUS = 2;
const OVERSUB_KEYS = 64;

/** What a suite found before planning: optional pieces that may be missing from an install. */
interface BenchEnv {
  /** the `sharedmap` package (a devDependency) can be loaded */
  readonly sharedMap: boolean;
  /** dist/bench/programs/baselines_ops.js exists */
  readonly baselinesProg: boolean;
}

async function probeBenchEnv(req: BenchRequest): Promise<BenchEnv> {
  const wants = req.names.includes('baselines');
  return {
    sharedMap: wants && (await loadSharedMap()) !== null,
    baselinesProg: existsSync(fileURLToPath(BENCH_PROG.baselines)),
  };
}

/** Args of bench/programs/baselines_ops.ts (kept in step with its BaselineArgs). */
interface BaselineOpsArgs { readonly op: 'lookup' | 'update' | 'mix' | 'fill'; readonly keys: number; readonly perRun: number }

function isPercpu(map: MapType): boolean { return map === 'percpu_hash' || map === 'lru_percpu_hash' || map === 'percpu_array'; }

function benchCases(req: BenchRequest, slot: RuntimeSlot, errorsOf: (id: string) => Record<string, number>, skip: (id: string, reason: string) => void, env: BenchEnv): PlannedCase[] {
  const cases: PlannedCase[] = [];
  const allocs = req.alloc;
  const flagsOf = (alloc: AllocMode, extra: number): number => (alloc === 'prealloc' ? 0 : BPF_F_NO_PREALLOC) | extra;
  /** Cases in the bpf_mem_alloc runtime first, kmalloc ones last (fewer runtime switches). */
  const pushGrouped = (list: PlannedCase[]): void => {
    cases.push(...list.filter((p) => p.needs === undefined || p.needs.alloc !== 'kmalloc'));
    cases.push(...list.filter((p) => p.needs !== undefined && p.needs.alloc === 'kmalloc'));
  };
  // the CLI's `lookup` cases (bench_ops: one operation per program run)
  const opsCase = (o: {
    id: string; label: string; tags: Record<string, string | number>; baseline?: string; target?: number;
    maxEntries: number; op: BenchOp; keys: number; cpus: number; fill: number;
  }): PlannedCase => ({ needs: { map: 'hash', alloc: 'prealloc', flags: 0 }, c: {
    id: o.id, bench: 'lookup', label: o.label, tags: o.tags,
    ...(o.baseline !== undefined ? { baseline: o.baseline } : {}), ...(o.target !== undefined ? { target: o.target } : {}),
    run: async (seconds) => {
      const { rt, prog } = await slot.fixture(`ops/hash/${o.maxEntries}/${o.fill}`, { dynAlloc: 'bpf_mem_alloc' }, {
        make: (r) => r.createMap({ type: 'hash', name: 'bench', keySize: 4, valueSize: 8, maxEntries: o.maxEntries }),
        prog: PROG.bench,
        setup: async (r, f) => { if (o.fill > 0) await prefill(r, f.prog, o.fill); },
      });
      return measure(rt, prog, o.cpus, seconds, { op: o.op, keys: o.keys, perCpu: false, canDelete: true });
    },
  } });

  for (const name of req.names) {
    if (name === 'map_perf') {
      const list: PlannedCase[] = [];
      for (const v of mapPerfVariants(req.maps)) {
        for (const alloc of allocs) {
          if (unsupportedReason(v.map, alloc) !== null) continue;
          for (const path of ['helper', 'syscall'] as const) {
            for (const cpus of cpuSteps(req.cpus)) {
              const id = `map_perf/${v.key}/${alloc}/${path}/${cpus}`;
              const base = `map_perf/${v.key}/prealloc/${path}/${cpus}`;
              list.push({ needs: { map: v.map, alloc, flags: flagsOf(alloc, v.flags) }, c: {
                id, bench: 'map_perf', label: `${v.name} ${alloc} · ${path} · ${cpus} CPU${cpus > 1 ? 's' : ''}`,
                tags: { map: v.map, alloc, cpus, op: v.op === 'triple' ? 'map_perf' : 'lookup', workload: path, ...(v.flags !== 0 ? { flags: 'BPF_F_NO_COMMON_LRU' } : {}) },
                ...(alloc !== 'prealloc' && allocs.includes('prealloc') ? { baseline: base } : {}),
                ...(alloc === 'bpf_mem_alloc' ? { target: 0.9 } : {}),
                run: async (seconds) => {
                  const { rt, prog, fresh } = await slot.fixture(`map_perf/${v.key}/${alloc}`, { dynAlloc: dynAllocOf(alloc) }, {
                    make: (r) => r.createMap({ type: v.map, name: 'map_perf', keySize: 4, valueSize: 8, maxEntries: v.maxEntries, flags: flagsOf(alloc, v.flags) }),
                    prog: PROG.mapPerf,
                  });
                  const args: MapPerfArgs = { op: v.op, path, keys: 1, sysValueBytes: isPercpu(v.map) ? rt.cpus * 8 : 8 };
                  if (fresh) { // both paths, every CPU: later cases share this fixture
                    for (const q of ['helper', 'syscall'] as const) await runEvents(rt, prog, rt.cpus, WARM_S / 2, { ...args, path: q }, true, {});
                  }
                  return runEvents(rt, prog, cpus, seconds, args, true, errorsOf(id));
                },
              } });
            }
          }
        }
      }
      pushGrouped(list);
    } else if (name === 'htab_mem') {
      const list: PlannedCase[] = [];
      const maxEntries = Math.max(8192, 64 * req.cpus);
      for (const scenario of HTAB_MEM_SCENARIOS) {
        const producers = scenario === 'add_del_on_diff_cpu' ? req.cpus - (req.cpus % 2) : req.cpus;
        for (const alloc of allocs) {
          const id = `htab_mem/${scenario}/${alloc}`;
          if (producers < 1) { skip(id, `${scenario} needs CPU pairs (an adder and a deleter): run with --cpus 2 or more`); continue; }
          list.push({ needs: { map: 'hash', alloc, flags: flagsOf(alloc, 0) }, c: {
            id, bench: 'htab_mem', label: `${scenario} ${alloc}`, tags: { map: 'hash', alloc, cpus: producers, workload: scenario },
            ...(alloc !== 'prealloc' && allocs.includes('prealloc') ? { baseline: `htab_mem/${scenario}/prealloc` } : {}),
            ...(alloc === 'bpf_mem_alloc' ? { target: 0.9 } : {}),
            run: async (seconds) => {
              const { rt, m, prog, user, fresh } = await slot.fixture(`htab_mem/${scenario}/${alloc}`, { dynAlloc: dynAllocOf(alloc) }, {
                make: (r) => r.createMap({ type: 'hash', name: 'htab_mem', keySize: 4, valueSize: 8, maxEntries, flags: flagsOf(alloc, 0) }),
                prog: PROG.htabMem, userBytes: htabMemUserBytes(req.cpus),
              });
              const args: HtabMemArgs = { scenario, producers, cpus: rt.cpus, user: user! };
              if (fresh) await rt.runWorkload({ cpus: cpuRange(producers), context: 'task', program: prog, seconds: WARM_S, args });
              const before = htabMemOps(user!, producers);
              let memSum = 0, memN = 0, memPeak = 0;
              const sample = (): void => { const b = mapMemoryBytes(m); memSum += b; memN++; if (b > memPeak) memPeak = b; };
              sample();
              const timer = setInterval(sample, 10);
              let r: Awaited<ReturnType<Runtime['runWorkload']>>;
              try {
                r = await rt.runWorkload({ cpus: cpuRange(producers), context: 'task', program: prog, seconds, args });
              } finally {
                clearInterval(timer);
              }
              sample();
              mergeErrors(errorsOf(id), r.errors);
              const ops = htabMemOps(user!, producers) - before;
              const durs = r.perCpu.map((c) => c.durationNs);
              return {
                ops: ops / producers, elapsedNs: Math.max(durs.reduce((a, b) => a + b, 0) / durs.length, 1),
                memory: { avgBytes: memSum / memN, peakBytes: memPeak },
              };
            },
          } });
        }
      }
      pushGrouped(list);
    } else if (name === 'lookup') {
      const n = 100_000;
      cases.push({ c: { id: 'lookup/js_map_get', bench: 'lookup', label: 'JS Map.get', tags: { op: 'lookup', cpus: 1 }, run: (s) => runWorkers({ threads: 1, seconds: s, kernel: 'js_map_get', entries: n }) } });
      cases.push({ c: { id: 'lookup/js_map_set', bench: 'lookup', label: 'JS Map.set', tags: { op: 'update', cpus: 1 }, run: (s) => runWorkers({ threads: 1, seconds: s, kernel: 'js_map_set', entries: n }) } });
      cases.push(opsCase({ id: 'lookup/hash/1', label: 'hash lookup, 1 CPU', tags: { map: 'hash', alloc: 'prealloc', cpus: 1, op: 'lookup' }, baseline: 'lookup/js_map_get', target: 0.5, maxEntries: n, op: 'lookup', keys: n, cpus: 1, fill: n }));
      cases.push(opsCase({ id: 'lookup/hash_update/1', label: 'hash update, 1 CPU', tags: { map: 'hash', alloc: 'prealloc', cpus: 1, op: 'update' }, baseline: 'lookup/js_map_set', target: 0.3, maxEntries: n, op: 'update', keys: n, cpus: 1, fill: n }));
      if (req.cpus >= 2) {
        cases.push(opsCase({ id: 'lookup/hash/2', label: 'hash lookup, 2 CPUs', tags: { map: 'hash', alloc: 'prealloc', cpus: 2, op: 'lookup' }, baseline: 'lookup/hash/1', target: 1.8, maxEntries: n, op: 'lookup', keys: n, cpus: 2, fill: n }));
      }
    } else if (name === 'timers') {
      cases.push({ c: {
        id: 'timers/js_timeout_pair', bench: 'timers', label: 'JS setTimeout + clearTimeout pair (main thread)', tags: { op: 'arm_cancel', cpus: 1, workload: 'js' },
        run: async (seconds) => {
          const noop = (): void => {};
          const t0 = performance.now();
          const end = t0 + seconds * 1000;
          let ops = 0;
          while (performance.now() < end) {
            for (let i = 0; i < 256; i++) clearTimeout(setTimeout(noop, 1000));
            ops += 256;
          }
          return { ops, elapsedNs: (performance.now() - t0) * 1e6 };
        },
      } });
      for (const cpus of cpuSteps(req.cpus)) {
        const id = `timers/arm_cancel/${cpus}`;
        cases.push({ needs: { map: 'array', alloc: 'prealloc', flags: 0 }, c: {
          id, bench: 'timers', label: `bpf_timer start + cancel_async pair, per CPU ×${cpus}`, tags: { map: 'array', alloc: 'prealloc', cpus, op: 'arm_cancel' },
          baseline: cpus === 1 ? 'timers/js_timeout_pair' : 'timers/arm_cancel/1',
          run: async (seconds) => {
            const { rt, prog, fresh } = await slot.fixture('timers', { dynAlloc: 'bpf_mem_alloc' }, {
              make: (r) => r.createMap({ type: 'array', name: 'bench_timers', keySize: 4, valueSize: BENCH_TIMER_VALUE_SIZE, maxEntries: 64, fields: [{ type: 'bpf_timer', offset: 8 }] }),
              prog: PROG.timers,
              setup: async () => {},
            });
            const args: BenchTimerArgs = { op: 'arm_cancel' };
            if (fresh) await rt.runWorkload({ cpus: cpuRange(rt.cpus), context: 'task', program: prog, seconds: WARM_S, args });
            const r = await rt.runWorkload({ cpus: cpuRange(cpus), context: 'task', program: prog, seconds, args });
            mergeErrors(errorsOf(id), r.errors);
            const durs = r.perCpu.map((c) => c.durationNs);
            return { ops: (r.ops * ARM_CANCEL_PAIRS) / cpus, elapsedNs: Math.max(durs.reduce((a, b) => a + b, 0) / durs.length, 1) };
          },
        } });
      }
    } else if (name === 'graph') {
      // every CPU on its own value (own lock) or all on value 0 (shared lock); the JS baselines the
      // same way (bench_graph_js.ts); 1 CPU: own only (shared is the same thing there)
      const labels = { rbtree: ['rbtree add + remove first', 'JS sorted array insert + shift'], list: ['list push + pop', 'JS array push + pop'] } as const;
      for (const op of ['rbtree', 'list'] as const) {
        for (const cpus of cpuSteps(req.cpus)) {
          for (const mode of cpus === 1 ? ['own'] as const : ['own', 'shared'] as const) {
            const shared = mode === 'shared';
            const where = `${mode} lock${cpus > 1 ? `, ${cpus} CPUs` : ', 1 CPU'}`;
            const js = `graph/js_${op}/${mode}/${cpus}`;
            const tags = { map: 'array', alloc: 'prealloc', cpus, op, workload: `${mode}_lock` };
            cases.push({ c: {
              id: js, bench: 'graph', label: `${labels[op][1]} (Atomics lock, ${where.replace('CPU', 'thread')})`, tags: { ...tags, map: 'js', alloc: 'js' },
              run: (seconds) => runGraphJs({ threads: cpus, seconds, op, shared }),
            } });
            const id = `graph/${op}/${mode}/${cpus}`;
            cases.push({ c: {
              id, bench: 'graph', label: `${labels[op][0]} under bpf_spin_lock (${where})`, tags, baseline: js,
              run: async (seconds) => {
                const { rt, prog, fresh } = await slot.fixture('graph', { dynAlloc: 'bpf_mem_alloc' }, {
                  make: (r) => r.createMap({ type: 'array', name: 'bench_graph', keySize: 4, valueSize: BENCH_GRAPH_VALUE_SIZE, maxEntries: r.cpus, fields: BENCH_GRAPH_FIELDS }),
                  prog: PROG.benchGraph,
                  setup: async (r, f) => { // every value's tree at its size
                    for (let k = 0; k < r.cpus; k++) {
                      const res = await f.prog.testRun({ cpu: 0, args: { op: 'fill', key: k, size: BENCH_GRAPH_TREE_SIZE } satisfies BenchGraphArgs });
                      if (res.retval !== 0) throw new Error(`bench graph: filling value ${k} returned ${errnoName(-res.retval)}`);
                    }
                  },
                });
                const args: BenchGraphArgs = { op, shared };
                if (fresh) for (const o of ['rbtree', 'list'] as const) await rt.runWorkload({ cpus: cpuRange(rt.cpus), context: 'task', program: prog, seconds: WARM_S / 2, args: { op: o, shared } });
                const r = await rt.runWorkload({ cpus: cpuRange(cpus), context: 'task', program: prog, seconds, args });
                mergeErrors(errorsOf(id), r.errors);
                return { ops: r.ops * BENCH_GRAPH_INNER, elapsedNs: Math.max(...r.perCpu.map((c) => c.durationNs), 1) };
              },
            } });
          }
        }
      }
    } else if (name === 'baselines') {
      const cfg: RtConfig = { dynAlloc: 'bpf_mem_alloc', cpus: Math.max(2, req.cpus) };
      let filled: Promise<unknown> | null = null;
      const sharedMap = (): Promise<unknown> => (filled ??= createFilledSharedMap(BASELINE_KEYS));
      const noProg = 'dist/bench/programs/baselines_ops.js is missing from this install';
      const words = { lookup: ['sharedmap.get', 'JS Map.get', 'lookup'], update: ['sharedmap.set', 'JS Map.set', 'update (overwrite)'] } as const;
      for (const op of ['lookup', 'update'] as const) {
        for (const n of [1, 2]) {
          const sm = `baselines/sharedmap/${op}/${n}`;
          const js = `baselines/js_map/${op}/${n}`;
          const hash = `baselines/hash/${op}/${n}`;
          const base = env.sharedMap ? sm : js;
          if (env.sharedMap) {
            cases.push({ c: {
              id: sm, bench: 'baselines', label: `${words[op][0]} (one shared map) ×${n}`,
              tags: { map: 'sharedmap', alloc: 'js', cpus: n, op },
              run: async (seconds) => runSharedMap({ threads: n, seconds, op, map: await sharedMap(), keys: BASELINE_KEYS }),
            } });
          } else {
            skip(sm, 'the sharedmap package is not installed (a devDependency: npm install --save-dev sharedmap); JS Map is the baseline');
          }
          cases.push({ c: {
            id: js, bench: 'baselines', label: `${words[op][1]} (a Map per worker) ×${n}`,
            tags: { map: 'js_map', alloc: 'js', cpus: n, op }, ...(base !== js ? { baseline: base } : {}),
            run: (seconds) => runWorkers({ threads: n, seconds, kernel: op === 'lookup' ? 'js_map_get' : 'js_map_set', entries: BASELINE_KEYS }),
          } });
          if (!env.baselinesProg) { skip(hash, noProg); continue; }
          cases.push({ needs: { map: 'hash', alloc: 'prealloc', flags: 0 }, c: {
            id: hash, bench: 'baselines', label: `hash prealloc ${words[op][2]} ×${n} CPU${n > 1 ? 's' : ''}`,
            tags: { map: 'hash', alloc: 'prealloc', cpus: n, op }, baseline: base,
            ...(env.sharedMap ? { target: BASELINE_SHAREDMAP_TARGET } : {}),
            run: async (seconds) => {
              const { rt, prog, fresh } = await slot.fixture('baselines/hash', cfg, {
                make: (r) => r.createMap({ type: 'hash', name: 'baselines', keySize: 4, valueSize: 8, maxEntries: BASELINE_KEYS }),
                prog: BENCH_PROG.baselines,
                setup: async (r, f) => {
                  const fill: BaselineOpsArgs = { op: 'fill', keys: BASELINE_KEYS, perRun: 1 };
                  const res = await r.runWorkload({ cpus: [0], context: 'task', program: f.prog, iterations: BASELINE_KEYS, args: fill });
                  mergeErrors(errorsOf('baselines/hash/fill'), res.errors);
                },
              });
              const args: BaselineOpsArgs = { op, keys: BASELINE_KEYS, perRun: BASELINE_OPS_PER_RUN };
              if (fresh) {
                for (const o of ['lookup', 'update'] as const) {
                  await rt.runWorkload({ cpus: cpuRange(2), context: 'task', program: prog, seconds: WARM_S / 2, args: { ...args, op: o } });
                }
              }
              const r = await rt.runWorkload({ cpus: cpuRange(n), context: 'task', program: prog, seconds, args });
              mergeErrors(errorsOf(hash), r.errors);
              return { ops: r.ops * BASELINE_OPS_PER_RUN, elapsedNs: Math.max(...r.perCpu.map((c) => c.durationNs), 1) };
            },
          } });
        }
      }
    } else if (name === 'boot') {
      const n = BOOT_CPUS;
      const bare = `boot/bare_workers/${n}`;
      const ms = (ns: number): Measurement => ({ ops: 1, elapsedNs: ns });
      const tags = { cpus: n, op: 'boot' };
      cases.push({ c: {
        id: bare, bench: 'boot', label: `${n} bare worker threads (import nothing): start → ready`, unit: 'ms', tags,
        run: async () => { await slot.close(); return ms(await spawnUntilReady(n, BARE_WORKER_SOURCE)); },
      } });
      cases.push({ c: {
        id: `boot/cpu_module_workers/${n}`, bench: 'boot', label: `${n} worker threads importing the CPU module: start → ready`,
        unit: 'ms', tags, baseline: bare,
        run: async () => { await slot.close(); return ms(await spawnUntilReady(n, importingWorkerSource(CPU_WORKER_ENTRY))); },
      } });
      cases.push({ c: {
        id: 'boot/arena', bench: 'boot', label: `arena alone: one ${MEMORY_BYTES / 1048576} MiB SharedArrayBuffer`, unit: 'ms',
        tags: { op: 'boot' },
        run: async () => { await slot.close(); return ms(allocateArena(MEMORY_BYTES)); },
      } });
      cases.push({ c: {
        id: `boot/runtime/${n}`, bench: 'boot', label: `Runtime.start({ cpus: ${n} }) → ready`, unit: 'ms', tags, baseline: bare,
        run: async () => {
          await slot.close();
          const t0 = process.hrtime.bigint();
          const rt = await Runtime.start({ cpus: n, preemptRt: req.preemptRt, seed: req.seed, memoryBytes: MEMORY_BYTES });
          const ns = Number(process.hrtime.bigint() - t0);
          await rt.stop();
          return ms(ns);
        },
      } });
    } else if (name === 'oversub') {
      const base = `oversub/hash/mix/${OVERSUB_BASE_CPUS}`;
      const cfg: RtConfig = { dynAlloc: 'bpf_mem_alloc', cpus: OVERSUB_CPUS };
      for (const cpus of [OVERSUB_BASE_CPUS, OVERSUB_CPUS]) {
        const id = `oversub/hash/mix/${cpus}`;
        if (!env.baselinesProg) { skip(id, 'dist/bench/programs/baselines_ops.js is missing from this install'); continue; }
        cases.push({ needs: { map: 'hash', alloc: 'prealloc', flags: 0 }, c: {
          id, bench: 'oversub', label: `hash prealloc update/delete/lookup mix, ${OVERSUB_KEYS} keys ×${cpus} CPUs`,
          tags: { map: 'hash', alloc: 'prealloc', cpus, op: 'mix', workload: 'lock-heavy' },
          ...(cpus !== OVERSUB_BASE_CPUS ? { baseline: base, target: 0.9 } : {}),
          run: async (seconds) => {
            const { rt, prog, fresh } = await slot.fixture('oversub', cfg, {
              make: (r) => r.createMap({ type: 'hash', name: 'oversub', keySize: 4, valueSize: 8, maxEntries: OVERSUB_KEYS }),
              prog: BENCH_PROG.baselines,
            });
            const args: BaselineOpsArgs = { op: 'mix', keys: OVERSUB_KEYS, perRun: BASELINE_OPS_PER_RUN };
            if (fresh) await rt.runWorkload({ cpus: cpuRange(rt.cpus), context: 'task', program: prog, seconds: WARM_S, args });
            const r = await rt.runWorkload({ cpus: cpuRange(cpus), context: 'task', program: prog, seconds, args });
            mergeErrors(errorsOf(id), r.errors);
            return { ops: r.ops * BASELINE_OPS_PER_RUN, elapsedNs: Math.max(...r.perCpu.map((c) => c.durationNs), 1) };
          },
        } });
      }
    } else {
      const steps = cpuSteps(req.cpus);
      for (const cpus of steps) {
        cases.push({ c: {
          id: `scaling/js_map/${cpus}`, bench: 'scaling', label: `JS Map.get (a Map per worker) ×${cpus}`,
          tags: { map: 'js_map', alloc: 'js', cpus, op: 'lookup' }, ...(cpus > 1 ? { baseline: 'scaling/js_map/1' } : {}),
          ...(cpus === 2 ? { target: 1.8 } : {}),
          run: (s) => runWorkers({ threads: cpus, seconds: s, kernel: 'js_map_get', entries: SCALING_KEYS }),
        } });
      }
      for (const map of req.maps) {
        if (map === 'hash_of_maps' || map === 'array_of_maps') continue;
        const array = map === 'array' || map === 'percpu_array';
        const lru = map === 'lru_hash' || map === 'lru_percpu_hash';
        // an LRU map may evict before it is full (per-CPU free-list caching): give it room
        const maxEntries = lru ? Math.ceil(SCALING_KEYS * 1.25) : SCALING_KEYS;
        for (const cpus of steps) {
          const id = `scaling/${map}/prealloc/${cpus}`;
          cases.push({ needs: { map, alloc: 'prealloc', flags: 0 }, c: {
            id, bench: 'scaling', label: `${map} lookup ×${cpus} CPU${cpus > 1 ? 's' : ''}`,
            tags: { map, alloc: 'prealloc', cpus, op: 'lookup' }, ...(cpus > 1 ? { baseline: `scaling/${map}/prealloc/1` } : {}),
            ...(cpus === 2 ? { target: 1.8 } : {}),
            run: async (seconds) => {
              const { rt, prog, fresh } = await slot.fixture(`scaling/${map}`, { dynAlloc: 'bpf_mem_alloc' }, {
                make: (r) => r.createMap({ type: map, name: 'scaling', keySize: 4, valueSize: 8, maxEntries }),
                prog: PROG.mapPerf,
                setup: async (r, f) => {
                  if (array) return; // every index exists
                  const fill: MapPerfArgs = { op: 'fill', path: 'helper', keys: SCALING_KEYS, sysValueBytes: 8 };
                  const res = await r.runWorkload({ cpus: [0], context: 'task', program: f.prog, iterations: SCALING_KEYS, args: fill });
                  mergeErrors(errorsOf(`scaling/${map}/fill`), res.errors);
                },
              });
              const args: MapPerfArgs = { op: 'walk', path: 'helper', keys: SCALING_KEYS, sysValueBytes: 8 };
              if (fresh) await runEvents(rt, prog, rt.cpus, WARM_S, args, false, {});
              return runEvents(rt, prog, cpus, seconds, args, false, errorsOf(id));
            },
          } });
        }
      }
    }
  }
  return cases;
}

/**
 * Drop the cases whose map the library refuses to create (e.g. a mode not implemented yet), and
 * the cases measured against a dropped baseline; each with its reason. Probes group by allocator
 * so each runtime boots once.
 */
async function probeCases(planned: readonly PlannedCase[], slot: RuntimeSlot): Promise<{ cases: BenchCase[]; skipped: { id: string; reason: string }[] }> {
  const refused = new Map<string, string>();
  const keyOf = (n: NonNullable<PlannedCase['needs']>): string => `${n.map}/${n.alloc}/${n.flags}`;
  const pairs = new Map<string, NonNullable<PlannedCase['needs']>>();
  for (const p of planned) if (p.needs !== undefined) pairs.set(keyOf(p.needs), p.needs);
  const ordered = [...pairs.entries()].sort((a, b) => dynAllocOf(a[1].alloc).localeCompare(dynAllocOf(b[1].alloc)));
  for (const [key, { map, alloc, flags }] of ordered) {
    const rt = await slot.get({ dynAlloc: dynAllocOf(alloc) });
    try {
      rt.createMap({ type: map, name: 'probe', keySize: 4, valueSize: 8, maxEntries: 64, flags }).close();
    } catch (e: unknown) {
      refused.set(key, `map_create failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const skipped: { id: string; reason: string }[] = [];
  const dropped = new Set<string>();
  for (const p of planned) {
    const why = p.needs === undefined ? undefined : refused.get(keyOf(p.needs));
    if (why !== undefined) { dropped.add(p.c.id); skipped.push({ id: p.c.id, reason: why }); }
  }
  for (let changed = true; changed;) {
    changed = false;
    for (const p of planned) {
      if (dropped.has(p.c.id) || p.c.baseline === undefined || !dropped.has(p.c.baseline)) continue;
      dropped.add(p.c.id); skipped.push({ id: p.c.id, reason: `its baseline ${p.c.baseline} cannot run` }); changed = true;
    }
  }
  return { cases: planned.filter((p) => !dropped.has(p.c.id)).map((p) => p.c), skipped };
}

// ---------------------------------------------------------------------------------------------
// Timer fire latency ('timers'): bpf timer callbacks against setTimeout and a bare waitAsync wake

export const TIMER_LATENCY_PERIOD_US = 1000;
export const TIMER_LATENCY_SAMPLES = 300;

/** bpf timers: every CPU re-arms its own timer periodUs ahead, `samples` times (real clock). */
async function bpfTimerLatency(cpus: number, samples: number, periodUs: number, seed: number): Promise<number[]> {
  const rt = await Runtime.start({ cpus, memoryBytes: 64 << 20, seed });
  try {
    const m = rt.createMap({
      type: 'array', name: 'bench_timers', keySize: 4, valueSize: BENCH_TIMER_VALUE_SIZE,
      maxEntries: LATENCY_BASE + 64 * SAMPLES_PER_CPU, fields: [{ type: 'bpf_timer', offset: 8 }],
    });
    const prog = await rt.loadProgram(PROG.timers, { maps: { m } });
    const args: BenchTimerArgs = { op: 'latency', periodUs, samples };
    await Promise.all(cpuRange(cpus).map((c) => prog.testRun({ cpu: c, args })));
    const k = (n: number): Uint8Array => new Uint8Array(new Uint32Array([n]).buffer);
    const u64 = (b: Uint8Array | undefined): number => (b === undefined ? 0 : Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true)));
    const fires = (c: number): number => u64(m.lookup(k(c)));
    const deadline = performance.now() + 30_000;
    while (cpuRange(cpus).some((c) => fires(c) < samples) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const out: number[] = [];
    for (let c = 0; c < cpus; c++) {
      const n = Math.min(fires(c), SAMPLES_PER_CPU);
      for (let i = 1; i < n; i++) out.push(u64(m.lookup(k(LATENCY_BASE + c * SAMPLES_PER_CPU + i))) / 1e6); // the first is cold
    }
    await prog.unload();
    await m.close();
    return out;
  } finally {
    await rt.stop();
  }
}

/** setTimeout(fn, periodUs / 1000) lateness on the main thread, ms. */
async function setTimeoutLatency(samples: number, periodUs: number): Promise<number[]> {
  const out: number[] = [];
  const ms = periodUs / 1000;
  for (let i = 0; i < samples; i++) {
    const due = performance.now() + ms;
    await new Promise<void>((r) => setTimeout(r, ms));
    out.push(Math.max(0, performance.now() - due));
  }
  return out;
}

/** A worker stores its clock and notifies every periodUs; the main thread's waitAsync wakes, ms. */
async function waitAsyncLatency(samples: number, periodUs: number): Promise<number[]> {
  const sab = new SharedArrayBuffer(24); // i32[0] sequence, f64[1] notify time, i32[4] done
  const i32 = new Int32Array(sab);
  const f64 = new Float64Array(sab);
  const src = `
    const { workerData } = require('node:worker_threads');
    const i32 = new Int32Array(workerData.sab); const f64 = new Float64Array(workerData.sab);
    const gap = new Int32Array(new SharedArrayBuffer(4));
    while (Atomics.load(i32, 4) === 0) { // until the main thread has its samples
      Atomics.wait(gap, 0, 0, workerData.ms);
      f64[1] = performance.timeOrigin + performance.now();
      Atomics.add(i32, 0, 1); Atomics.notify(i32, 0);
    }`;
  const w = new Worker(src, { eval: true, workerData: { sab, ms: periodUs / 1000 } });
  const out: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const seen = Atomics.load(i32, 0);
      const r = Atomics.waitAsync(i32, 0, seen, 5000);
      if (r.async) await r.value;
      out.push(Math.max(0, performance.timeOrigin + performance.now() - f64[1]!));
    }
  } finally {
    Atomics.store(i32, 4, 1);
    await w.terminate();
  }
  return out;
}

/**
 * Timer fire latency on the real clock: bpf timer callbacks on `cpus` CPUs (each timer re-armed
 * periodUs ahead by its callback), setTimeout on the main thread, and a bare Atomics.waitAsync
 * wake (worker -> main thread). Boots its own runtime: call with no other runtime running.
 */
export async function measureTimerLatency(cpus: number, seed = 1, samples = TIMER_LATENCY_SAMPLES, periodUs = TIMER_LATENCY_PERIOD_US): Promise<TimerLatencySeries[]> {
  const bpf = await bpfTimerLatency(cpus, samples, periodUs, seed);
  const st = await setTimeoutLatency(samples, periodUs);
  const wa = await waitAsyncLatency(samples, periodUs);
  return [
    { label: `bpf_timer callback (${cpus} CPU${cpus > 1 ? 's' : ''}, ${periodUs} us ahead)`, samplesMs: bpf },
    { label: `setTimeout(${periodUs / 1000} ms), main thread`, samplesMs: st },
    { label: 'Atomics.waitAsync wake (worker -> main thread)', samplesMs: wa },
  ];
}

/** A bench suite with the errors its operations returned (for the bench/ files' notes). */
export interface BenchSuiteDetail extends BenchSuite {
  /** Errors returned by the measured operations, by case id and errno name (all runs so far). */
  errors(): Readonly<Record<string, Readonly<Record<string, number>>>>;
}

/**
 * The bench cases for `req`: what `bpfsim bench` runs, and what bench/*.bench.ts run. Cases whose
 * map cannot be created here are in `skipped` with the reason. close() stops the runtime.
 */
export async function createBenchSuite(req: BenchRequest): Promise<BenchSuiteDetail> {
  const slot = new RuntimeSlot(req);
  const errors: Record<string, Record<string, number>> = {};
  const errorsOf = (id: string): Record<string, number> => (errors[id] ??= {});
  const notPlanned: { id: string; reason: string }[] = [];
  try {
    const env = await probeBenchEnv(req);
    const planned = benchCases(req, slot, errorsOf, (id, reason) => notPlanned.push({ id, reason }), env);
    const { cases, skipped } = await probeCases(planned, slot);
    return {
      cases, skipped: [...notPlanned, ...skipped], close: () => slot.close(),
      ...(req.names.includes('timers') ? { timerLatency: () => measureTimerLatency(req.cpus, req.seed) } : {}),
      errors: () => Object.fromEntries(Object.entries(errors).filter(([, v]) => Object.keys(v).length > 0)),
    };
  } catch (e) {
    await slot.close();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios: the registry in src/scenarios/ (each boots its own runtime)

// ---------------------------------------------------------------------------------------------

export function createEngine(): Engine {
  return {
    runStress,
    benchSuite: (req: BenchRequest): Promise<BenchSuite> => createBenchSuite(req),
    async listScenarios(): Promise<readonly ScenarioInfo[]> {
      return listScenarios().map((s) => ({ name: s.name, seed: s.seed, title: s.title, summary: s.summary }));
    },
    async runScenario(name: string, o: ScenarioOptions): Promise<ScenarioResult> {
      if (!listScenarios().some((s) => s.name === name)) {
        throw new EngineUsageError(`unknown scenario '${name}' (known: ${listScenarios().map((x) => x.name).join(', ')})`);
      }
      const r = await runScenario(name, { seed: o.seed });
      return {
        name: r.name, seed: r.seed, title: r.title, events: r.events.map((e) => ({ cpu: e.cpu, context: e.context, what: e.what })),
        verdict: { ...r.verdict }, splats: r.splats.map(toSplatRecord), elapsedMs: r.elapsedMs,
      };
    },
  };
}
