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
 * (slab bytes back to their value before the first map, minus program state), splats, stop.
 *
 * TODO(wiring) marks the places that assume library API not yet written when this was drafted.
 */
import {
  Runtime, BPF_F_NO_PREALLOC, listScenarios, runScenario, type BpfMap, type Program,
} from '../index.js';
import { memStats, memCheck, ownerBytes, ownerName, OWNER_KERNEL } from '../mem/owners.js';
import { ksize } from '../mem/slab.js';
import { I32 } from '../mem/arena.js';
import { perCpuBlock } from '../mem/this_cpu.js';
import {
  MEM_MAX_OWNERS, FAULT_DROP_FREELIST_PUSH, PC_HELD_COUNT, PC_WAIT_LOCK, PC_PROG_ACTIVE, PC_PREEMPT_COUNT,
  PC_MIGRATE_DISABLE, PC_IRQS_OFF, PC_RCU_NESTING, PC_RCU_TRACE_NESTING,
} from '../mem/layout.js';
import { errnoName } from '../errno.js';
import { rcuGpLatencySamples } from '../rcu/rcu.js';
import { bpfMemAllocStats } from '../alloc/bpf_mem_alloc.js';
import { runWorkers, type BenchCase, type Measurement } from '../../bench/harness.js';
import {
  EngineUsageError, unsupportedReason, type Engine, type StressOptions, type StressResult, type LiveStats,
  type StressCell, type InvariantCheck, type CacheSeries, type TimelineSample, type SplatRecord,
  type Interrupts, type MapType, type AllocMode, type BenchRequest, type BenchSuite, type ScenarioInfo,
  type ScenarioOptions, type ScenarioResult, type ContextName, type FaultName,
} from './engine_api.js';
import type { StressMixArgs } from './programs/stress_mix.js';
import { ERRS_SLOTS } from './programs/stress_irq.js';
import type { BenchArgs, BenchOp } from './programs/bench_ops.js';

const PROG = {
  mix: new URL('./programs/stress_mix.js', import.meta.url),
  irq: new URL('./programs/stress_irq.js', import.meta.url),
  bench: new URL('./programs/bench_ops.js', import.meta.url),
};

const FAULT_BITS: Readonly<Record<FaultName, number>> = { drop_freelist_push: FAULT_DROP_FREELIST_PUSH };

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
  let nmi = 0, hardirq = 0, softirq = 0, irqWork = 0;
  for (const c of rt.stats().cpus) { nmi += c.nmi; hardirq += c.hardirq; softirq += c.softirq; irqWork += c.irqWork; }
  return { nmi, hardirq, softirq, irqWork };
}

function addInterrupts(a: Interrupts, b: Interrupts): Interrupts {
  return { nmi: a.nmi + b.nmi, hardirq: a.hardirq + b.hardirq, softirq: a.softirq + b.softirq, irqWork: a.irqWork + b.irqWork };
}

const ZERO_IRQS: Interrupts = { nmi: 0, hardirq: 0, softirq: 0, irqWork: 0 };

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
      closeAll(made); // the outer map was refused: release what was made for it
      throw e;
    }
  }
  const m = rt.createMap({ type: map, name, keySize: 4, valueSize: 8, maxEntries, flags });
  return { m, extra: [], kind: map === 'array' || map === 'percpu_array' ? 'array' : 'hash', innerIds: [] };
}

function closeAll(maps: readonly BpfMap[]): void {
  for (const m of maps) m.close();
}

/** Unload a program if the library supports it (maps stay referenced until then). */
async function unload(p: Program): Promise<void> {
  // TODO(wiring): Program.unload() (BPF prog release) so maps can be freed before the leak check.
  const u = (p as unknown as Partial<{ unload(): Promise<void> }>).unload;
  if (typeof u === 'function') await u.call(p);
}

/**
 * Per-CPU free_cnt of a dynamically allocated hash map's bpf_mem_alloc cache, with its watermarks.
 * TODO(wiring): assumes the htab's element allocator exposes its bpf_mem_alloc as `alloc.ma`
 * (dynamic allocation lands with the next issue); returns null until then and for other maps.
 */
function cacheLevels(m: BpfMap, cpus: number): { unitSize: number; low: number; high: number; perCpu: number[] } | null {
  const alloc = (m.impl as unknown as { alloc?: unknown }).alloc;
  const ma = typeof alloc === 'object' && alloc !== null ? (alloc as { ma?: unknown }).ma : undefined;
  if (typeof ma !== 'number' || ma === 0) return null;
  const c = bpfMemAllocStats(ma).caches[0];
  if (c === undefined) return null;
  return { unitSize: c.unitSize, low: c.low, high: c.high, perCpu: c.perCpu.slice(0, cpus).map((x) => x.freeCnt) };
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

/** Owners holding more than at `before` (kernel: minus `kernelResidue`), as detail lines. */
function ownerGrowth(before: readonly number[], kernelResidue: number): string[] {
  const out: string[] = [];
  for (let id = 0; id < MEM_MAX_OWNERS; id++) {
    const d = ownerBytes(id) - before[id]! - (id === OWNER_KERNEL ? kernelResidue : 0);
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

interface CellPlan { readonly map: MapType; readonly alloc: AllocMode }

class StressRun {
  readonly o: StressOptions;
  readonly onProgress: (s: LiveStats) => void;
  readonly t0 = performance.now();
  readonly totalMs: number;
  ops = 0;
  errors: Record<string, number> = {};
  splats: SplatRecord[] = [];
  gracePeriods = 0;
  interrupts: Interrupts = ZERO_IRQS;
  timeline: TimelineSample[] = [];
  caches = new Map<string, { cache: string; cpu: number; unitSize: number; low: number; high: number; points: [number, number][] }>();
  gpLatencyMs: number[] = [];
  invariants: InvariantCheck[] = [];
  leakDetails: string[] = [];
  leakStart = 0;
  leakEnd = 0;
  lastSampleMs = 0;
  lastSampleOps = 0;

  constructor(o: StressOptions, onProgress: (s: LiveStats) => void) {
    this.o = o;
    this.onProgress = onProgress;
    this.totalMs = o.seconds * 1000;
  }

  elapsed(): number { return performance.now() - this.t0; }

  sample(rt: Runtime, phase: string, gpsBase: number, irqBase: Interrupts, cell: MapSet | null, cellName: string): void {
    const t = this.elapsed();
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
      phase, elapsedMs: t, totalMs: this.totalMs, ops: this.ops, opsPerSec: rate, errors: { ...this.errors },
      splats: this.splats.length + rt.splatCount(), gracePeriods: gps, memoryBytes: st.memory.bytesInUse, interrupts: irqs,
    });
  }

  async runGroup(dynAlloc: 'bpf_mem_alloc' | 'kmalloc', cells: readonly CellPlan[], msPerCell: number, out: StressCell[]): Promise<void> {
    const o = this.o;
    const faults = o.faults.reduce((a, f) => a | FAULT_BITS[f], 0);
    const rt = await Runtime.start({ cpus: o.cpus, preemptRt: o.preemptRt, dynAlloc, seed: o.seed, memoryBytes: MEMORY_BYTES, faults });
    const gpsBase = this.gracePeriods;
    const irqBase = this.interrupts;
    const progState: Program[] = [];
    try {
      this.leakStart = memStats().bytesInUse;
      const ownersBefore = ownerSnapshot();
      const errs = rt.createMap({ type: 'percpu_array', name: 'stress_errs', keySize: 4, valueSize: 8, maxEntries: ERRS_SLOTS });
      for (const plan of cells) {
        if (isAborted(o)) {
          out.push({ map: plan.map, alloc: plan.alloc, status: 'skipped', skipReason: 'interrupted', ops: 0, opsPerSec: 0, errors: {}, recursionMisses: 0 });
          continue;
        }
        const name = `${plan.map}/${plan.alloc}`;
        let set: MapSet;
        try {
          set = createCellMap(rt, plan.map, plan.alloc, STRESS_MAX_ENTRIES, `st_${out.length}`);
        } catch (e: unknown) {
          // map_create refused (e.g. a mode the library does not implement): report, do not abort
          const why = e instanceof Error ? e.message : String(e);
          out.push({ map: plan.map, alloc: plan.alloc, status: 'skipped', skipReason: `map_create failed: ${why}`, ops: 0, opsPerSec: 0, errors: {}, recursionMisses: 0 });
          continue;
        }
        const mix = await rt.loadProgram(PROG.mix, { maps: { m: set.m } });
        // Interrupt programs only read LRU maps: an NMI updating an LRU map whose lru_lock its own
        // CPU holds is a real deadlock of the modelled kernel (LRU locks were raw spinlocks without
        // a map_locked guard until the 2025 rqspinlock conversion); scenario 'nmi-in-lru-lock'
        // shows it on purpose. Stress runs keep to what that kernel survives.
        const lru = plan.map === 'lru_hash' || plan.map === 'lru_percpu_hash';
        const irq = await rt.loadProgram(PROG.irq, { maps: { m: set.m, errs }, args: { keys: set.kind === 'hash' ? STRESS_KEYS : STRESS_MAX_ENTRIES, readOnly: lru } });
        progState.push(mix, irq);
        const injections = [
          ...(o.nmiRate > 0 ? [rt.inject({ kind: 'nmi', cpus: 'all', ratePerSec: o.nmiRate, program: irq })] : []),
          ...(o.irqRate > 0 ? [rt.inject({ kind: 'hardirq', cpus: 'all', ratePerSec: o.irqRate, program: irq })] : []),
        ];
        const w = o.mix.update + o.mix.delete + o.mix.lookup;
        const args: StressMixArgs = {
          updateBelow: Math.round((o.mix.update / w) * 65536), deleteBelow: Math.round(((o.mix.update + o.mix.delete) / w) * 65536),
          keys: set.kind === 'hash' ? STRESS_KEYS : STRESS_MAX_ENTRIES, kind: set.kind, innerIds: set.innerIds,
        };
        const errsBefore = readErrs(errs, o.cpus);
        const cellErrors: Record<string, number> = {};
        let cellOps = 0;
        const cellT0 = performance.now();
        while (performance.now() - cellT0 < msPerCell && !isAborted(o)) {
          const slice = Math.min(o.sampleIntervalMs, msPerCell - (performance.now() - cellT0));
          const r = await rt.runWorkload({ cpus: 'all', context: 'task', program: mix, seconds: Math.max(slice, 10) / 1000, args });
          cellOps += r.ops; this.ops += r.ops;
          mergeErrors(cellErrors, r.errors); mergeErrors(this.errors, r.errors);
          this.sample(rt, name, gpsBase, irqBase, plan.alloc === 'bpf_mem_alloc' ? set : null, name);
          // a BPF_SYNCHRONIZE from "user space" between slices: grace periods happen under load
          // even for preallocated maps (their durations come from the RCU coordinator's samples)
          await rt.synchronizeRcu();
        }
        const cellMs = performance.now() - cellT0;
        for (const inj of injections) inj.cancel();
        await rt.synchronizeRcu();
        const irqErrors = diffErrors(readErrs(errs, o.cpus), errsBefore);
        mergeErrors(cellErrors, irqErrors); mergeErrors(this.errors, irqErrors);
        const violations = set.m.check();
        this.invariants.push({ name: 'map check()', scope: name, ok: violations.length === 0, details: violations });
        out.push({
          map: plan.map, alloc: plan.alloc, status: 'ran', ops: cellOps, opsPerSec: cellMs > 0 ? (cellOps * 1000) / cellMs : 0,
          errors: cellErrors, recursionMisses: mix.stats().recursionMisses + irq.stats().recursionMisses,
        });
        await unload(mix); await unload(irq);
        closeAll([set.m, ...set.extra]);
      }
      closeAll([errs]);
      await rt.rcuBarrier();
      await rt.synchronizeRcu();
      await rt.rcuBarrier();
      // global checks with every CPU idle
      const mem = memCheck();
      this.invariants.push({ name: 'allocator accounting', scope: `runtime ${dynAlloc}`, ok: mem.length === 0, details: mem });
      for (const c of cpuQuiescenceChecks(o.cpus)) this.invariants.push({ ...c, scope: `runtime ${dynAlloc}` });
      // leak check: slab back to where it was before the first map (program state is freed at unload;
      // while the library cannot unload programs it is subtracted here)
      const residue = progState.reduce((a, p) => a + ksize(p.statePtr), 0);
      const end = memStats().bytesInUse;
      this.leakEnd += end - residue - this.leakStart;
      if (end - residue !== this.leakStart) {
        this.leakDetails.push(`runtime ${dynAlloc}: slab ${this.leakStart} bytes before the first map, ${end - residue} after teardown`, ...ownerGrowth(ownersBefore, residue));
      }
      this.gracePeriods = gpsBase + rt.stats().rcu.gpsCompleted;
      this.interrupts = addInterrupts(irqBase, sumInterrupts(rt));
      this.gpLatencyMs.push(...rcuGpLatencySamples('rcu'));
      this.splats.push(...rt.splats().map(toSplatRecord));
    } finally {
      await rt.stop();
    }
  }
}

async function runStress(o: StressOptions, onProgress: (s: LiveStats) => void): Promise<StressResult> {
  const run = new StressRun(o, onProgress);
  const plans: CellPlan[] = [];
  const skipped: StressCell[] = [];
  for (const map of o.maps) {
    for (const alloc of o.alloc) {
      const why = unsupportedReason(map, alloc);
      if (why === null) plans.push({ map, alloc });
      else skipped.push({ map, alloc, status: 'skipped', skipReason: why, ops: 0, opsPerSec: 0, errors: {}, recursionMisses: 0 });
    }
  }
  const msPerCell = plans.length > 0 ? (o.seconds * 1000) / plans.length : 0;
  const cells: StressCell[] = [];
  const groups: ['bpf_mem_alloc' | 'kmalloc', CellPlan[]][] = [
    ['bpf_mem_alloc', plans.filter((p) => dynAllocOf(p.alloc) === 'bpf_mem_alloc')],
    ['kmalloc', plans.filter((p) => dynAllocOf(p.alloc) === 'kmalloc')],
  ];
  let leakStartTotal = 0;
  for (const [dyn, list] of groups) {
    if (list.length === 0) continue;
    await run.runGroup(dyn, list, msPerCell, cells);
    leakStartTotal += run.leakStart;
  }
  const leaked = run.leakEnd;
  return {
    seed: o.seed,
    elapsedMs: run.elapsed(),
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
// Bench

interface RtConfig { readonly dynAlloc: 'bpf_mem_alloc' | 'kmalloc' }

/** Holds at most one runtime; cases ask for the configuration they need. */
class RuntimeSlot {
  readonly req: BenchRequest;
  #rt: Runtime | null = null;
  #cfg: RtConfig | null = null;
  #cache = new Map<string, { m: BpfMap; prog: Program }>();
  constructor(req: BenchRequest) { this.req = req; }

  async get(cfg: RtConfig): Promise<Runtime> {
    if (this.#rt !== null && this.#cfg?.dynAlloc === cfg.dynAlloc) return this.#rt;
    await this.close();
    this.#rt = await Runtime.start({ cpus: this.req.cpus, preemptRt: this.req.preemptRt, dynAlloc: cfg.dynAlloc, seed: this.req.seed, memoryBytes: MEMORY_BYTES });
    this.#cfg = cfg;
    return this.#rt;
  }

  /** A map + bench program for `key`, created and prefilled with `fill` keys once per runtime. */
  async fixture(key: string, cfg: RtConfig, make: (rt: Runtime) => BpfMap, fill: number): Promise<{ rt: Runtime; m: BpfMap; prog: Program }> {
    const rt = await this.get(cfg);
    let f = this.#cache.get(key);
    if (f === undefined) {
      const m = make(rt);
      const prog = await rt.loadProgram(PROG.bench, { maps: { m } });
      if (fill > 0) await prefill(rt, prog, fill);
      f = { m, prog };
      this.#cache.set(key, f);
    }
    return { rt, ...f };
  }

  async close(): Promise<void> {
    this.#cache.clear();
    const rt = this.#rt;
    this.#rt = null; this.#cfg = null;
    if (rt !== null) await rt.stop();
  }
}

async function measure(rt: Runtime, prog: Program, cpus: number, seconds: number, args: BenchArgs, opsPerIter = 1, sampleMemory = false): Promise<Measurement> {
  const sel = [...Array(cpus).keys()];
  let memSum = 0, memN = 0, memPeak = 0;
  const timer = sampleMemory ? setInterval(() => {
    const b = memStats().bytesInUse; memSum += b; memN++; if (b > memPeak) memPeak = b;
  }, 20) : null;
  try {
    const r = await rt.runWorkload({ cpus: sel, context: 'task', program: prog, seconds, args });
    const elapsedNs = Math.max(...r.perCpu.map((c) => c.durationNs), 1);
    return {
      ops: r.ops * opsPerIter, elapsedNs,
      ...(sampleMemory ? { memory: { avgBytes: memN > 0 ? memSum / memN : 0, peakBytes: memPeak } } : {}),
    };
  } finally {
    if (timer !== null) clearInterval(timer);
  }
}

async function prefill(rt: Runtime, prog: Program, keys: number): Promise<void> {
  await rt.runWorkload({ cpus: [0], context: 'task', program: prog, iterations: keys, args: { op: 'fill', keys, perCpu: false, canDelete: true } satisfies BenchArgs });
}

function cpuSteps(max: number): number[] {
  const out: number[] = [];
  for (let c = 1; c < max; c *= 2) out.push(c);
  out.push(max);
  return [...new Set(out)];
}

interface PlannedCase { readonly c: BenchCase; readonly needs?: { readonly map: MapType; readonly alloc: AllocMode } }

function benchCases(req: BenchRequest, slot: RuntimeSlot): PlannedCase[] {
  const cases: PlannedCase[] = [];
  const mapCase = (o: {
    id: string; bench: string; label: string; tags: Record<string, string | number>; baseline?: string; target?: number;
    map: MapType; alloc: AllocMode; maxEntries: number; op: BenchOp; keys: number; perCpu: boolean; cpus: number; fill?: number;
    opsPerIter?: number; memory?: boolean;
  }): PlannedCase => ({ needs: { map: o.map, alloc: o.alloc }, c: {
    id: o.id, bench: o.bench, label: o.label, tags: o.tags,
    ...(o.baseline !== undefined ? { baseline: o.baseline } : {}), ...(o.target !== undefined ? { target: o.target } : {}),
    run: async (seconds) => {
      const cfg = { dynAlloc: dynAllocOf(o.alloc) };
      const { rt, prog } = await slot.fixture(`${o.map}/${o.alloc}/${o.maxEntries}/${o.fill ?? 0}`, cfg,
        (r) => r.createMap({ type: o.map, name: 'bench', keySize: 4, valueSize: 8, maxEntries: o.maxEntries, flags: o.alloc === 'prealloc' ? 0 : BPF_F_NO_PREALLOC }),
        o.fill ?? 0);
      const canDelete = o.map !== 'array' && o.map !== 'percpu_array';
      return measure(rt, prog, o.cpus, seconds, { op: o.op, keys: o.keys, perCpu: o.perCpu, canDelete }, o.opsPerIter ?? 1, o.memory ?? false);
    },
  } });
  const allocs = req.alloc;
  for (const name of req.names) {
    if (name === 'map_perf') {
      for (const map of ['hash', 'percpu_hash'] as const) {
        for (const alloc of allocs) {
          cases.push(mapCase({
            id: `map_perf/${map}/${alloc}`, bench: 'map_perf', label: `${map} ${alloc}`, tags: { map, alloc, cpus: req.cpus, op: 'map_perf' },
            ...(alloc !== 'prealloc' && allocs.includes('prealloc') ? { baseline: `map_perf/${map}/prealloc` } : {}),
            ...(alloc === 'bpf_mem_alloc' ? { target: 0.9 } : {}),
            map, alloc, maxEntries: 1000, op: 'map_perf', keys: 1, perCpu: true, cpus: req.cpus,
          }));
        }
      }
    } else if (name === 'htab_mem') {
      const maxEntries = Math.max(8192, 64 * req.cpus);
      for (const wl of ['overwrite', 'batch'] as const) {
        for (const alloc of allocs) {
          cases.push(mapCase({
            id: `htab_mem/${wl}/${alloc}`, bench: 'htab_mem', label: `${wl} ${alloc}`, tags: { map: 'hash', alloc, cpus: req.cpus, workload: wl },
            ...(alloc !== 'prealloc' && allocs.includes('prealloc') ? { baseline: `htab_mem/${wl}/prealloc` } : {}),
            map: 'hash', alloc, maxEntries, op: wl, keys: 64, perCpu: true, cpus: req.cpus, memory: true,
            ...(wl === 'overwrite' ? { fill: 64 * req.cpus } : {}),
          }));
        }
      }
    } else if (name === 'lookup') {
      const n = 100_000;
      cases.push({ c: { id: 'lookup/js_map_get', bench: 'lookup', label: 'JS Map.get', tags: { op: 'lookup', cpus: 1 }, run: (s) => runWorkers({ threads: 1, seconds: s, kernel: 'js_map_get', entries: n }) } });
      cases.push({ c: { id: 'lookup/js_map_set', bench: 'lookup', label: 'JS Map.set', tags: { op: 'update', cpus: 1 }, run: (s) => runWorkers({ threads: 1, seconds: s, kernel: 'js_map_set', entries: n }) } });
      cases.push(mapCase({ id: 'lookup/hash/1', bench: 'lookup', label: 'hash lookup, 1 CPU', tags: { map: 'hash', alloc: 'prealloc', cpus: 1, op: 'lookup' }, baseline: 'lookup/js_map_get', target: 0.5, map: 'hash', alloc: 'prealloc', maxEntries: n, op: 'lookup', keys: n, perCpu: false, cpus: 1, fill: n }));
      cases.push(mapCase({ id: 'lookup/hash_update/1', bench: 'lookup', label: 'hash update, 1 CPU', tags: { map: 'hash', alloc: 'prealloc', cpus: 1, op: 'update' }, baseline: 'lookup/js_map_set', target: 0.3, map: 'hash', alloc: 'prealloc', maxEntries: n, op: 'update', keys: n, perCpu: false, cpus: 1, fill: n }));
      if (req.cpus >= 2) {
        cases.push(mapCase({ id: 'lookup/hash/2', bench: 'lookup', label: 'hash lookup, 2 CPUs', tags: { map: 'hash', alloc: 'prealloc', cpus: 2, op: 'lookup' }, baseline: 'lookup/hash/1', target: 1.8, map: 'hash', alloc: 'prealloc', maxEntries: n, op: 'lookup', keys: n, perCpu: false, cpus: 2, fill: n }));
      }
    } else {
      for (const map of req.maps) {
        for (const alloc of allocs) {
          if (unsupportedReason(map, alloc) !== null || map === 'hash_of_maps' || map === 'array_of_maps') continue;
          for (const cpus of cpuSteps(req.cpus)) {
            cases.push(mapCase({
              id: `scaling/${map}/${alloc}/${cpus}`, bench: 'scaling', label: `${map} ${alloc} ×${cpus} CPU${cpus > 1 ? 's' : ''}`,
              tags: { map, alloc, cpus, op: 'map_perf' }, ...(cpus > 1 ? { baseline: `scaling/${map}/${alloc}/1` } : {}),
              map, alloc, maxEntries: Math.max(1024, 64 * req.cpus), op: 'map_perf', keys: 64, perCpu: true, cpus,
            }));
          }
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
  const pairs = new Map<string, { map: MapType; alloc: AllocMode }>();
  for (const p of planned) if (p.needs !== undefined) pairs.set(`${p.needs.map}/${p.needs.alloc}`, p.needs);
  const ordered = [...pairs.entries()].sort((a, b) => dynAllocOf(a[1].alloc).localeCompare(dynAllocOf(b[1].alloc)));
  for (const [key, { map, alloc }] of ordered) {
    const rt = await slot.get({ dynAlloc: dynAllocOf(alloc) });
    try {
      rt.createMap({ type: map, name: 'probe', keySize: 4, valueSize: 8, maxEntries: 64, flags: alloc === 'prealloc' ? 0 : BPF_F_NO_PREALLOC }).close();
    } catch (e: unknown) {
      refused.set(key, `map_create failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const skipped: { id: string; reason: string }[] = [];
  const dropped = new Set<string>();
  for (const p of planned) {
    const why = p.needs === undefined ? undefined : refused.get(`${p.needs.map}/${p.needs.alloc}`);
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
// Scenarios: the registry in src/scenarios/ (each boots its own runtime)

// ---------------------------------------------------------------------------------------------

export function createEngine(): Engine {
  return {
    runStress,
    async benchSuite(req: BenchRequest): Promise<BenchSuite> {
      const slot = new RuntimeSlot(req);
      try {
        const { cases, skipped } = await probeCases(benchCases(req, slot), slot);
        return { cases, skipped, close: () => slot.close() };
      } catch (e) {
        await slot.close();
        throw e;
      }
    },
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
