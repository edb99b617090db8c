/*
 * gp.ts — grace periods, callbacks, synchronize_rcu and rcu_barrier on the coordinator
 * (kernel/rcu/tree.c rcu_gp_kthread + rcu_do_batch, tree_exp.h, tasks.h for tasks-trace).
 *
 * Two flavours run the same machine independently: 'rcu' (normal) and 'rcu_tasks_trace'. A grace
 * period g of a flavour:
 *   start      snapshot every CPU id's PC_RCU_QS_SEQ (and PC_RCU_TRACE_SEQ), THEN bump RCU_GP_GEN
 *              (so a CPU that sees the new generation reports after the snapshot); expedited GPs
 *              also set PEND_RCU_EXP on every program CPU.
 *   per CPU    normal part done when QS_SEQ moved past the snapshot, or PC_RCU_IDLE is 1, or its
 *              nesting is observed 0 after the GP started (userspace RCU's "memb" rule: the
 *              outermost rcuReadLock stores nesting with a full fence, so a reader that starts after
 *              our load sees every unlink made before the GP; a worker descheduled by the OS
 *              between two programs no longer holds a GP up); tasks-trace also
 *              needs PC_RCU_TRACE_NESTING observed 0 or PC_RCU_TRACE_SEQ moved. Idle does not end
 *              a tasks-trace reader (a sleeping sleepable program is idle).
 *   forcing    a CPU still owing a report FQS_MS after start gets PEND_RCU_EXP (the kernel's
 *              force-quiescent-state pass), so a long loop of windows without rcuQuiescentState
 *              still lets the GP end; a CPU inside a read section reports at its outermost unlock.
 *   boost      (normal flavour) a GP still waiting for a program CPU RCU_BOOST_MS after start
 *              (RCU_EXP_BOOST_MS when expedited), and again at doubling ages: store RCU_BOOST_GP
 *              and RCU_BOOST_SEQ, then bump RCU_GP_GEN. CPUs that pass rcuQuiescentState report and
 *              step aside (read_side.ts: Atomics.wait on RCU_GP_DONE, idle, ≤ STEP_ASIDE_MAX_MS),
 *              so a worker the OS descheduled inside a read section gets a core: with more CPUs
 *              than cores that wait was a scheduler slice (ms), the whole GP. The kernel's
 *              RCU_BOOST raises the preempted reader instead (after 500 ms by default). Not
 *              under a deterministic schedule (one CPU runs at a time there).
 *   stall      a CPU holding a GP for HDR_RCU_STALL_MS: one 'rcu_stall' splat per stall (not again
 *              until that CPU's QS counter moves), raised as that CPU (its context, last window and
 *              held locks are in the splat).
 *   end        when every CPU is done: callbacks tagged with g run, synchronize waiters resolve.
 * Callback tags: a callback drained while the flavour has started s GPs needs GP s+1 (the next
 * one to start, which starts after it was queued). Queues are FIFO with nondecreasing tags.
 *
 * Contexts: main thread only (the coordinator). rcuPoll never blocks; callbacks run only inside
 * rcuPoll (synchronizeRcu/rcuBarrier kick the machine but never run callbacks in their caller).
 * State here is JS state of the main thread, reset by rcuGlobalInit for each arena.
 *
 * Differences from the kernel: no callback lists per CPU segmented by GP number (the coordinator
 * keeps one queue per flavour); tasks-trace GPs imply normal ones (rcu_trace_implies_rcu_gp());
 * stall time counts from the GP start, as the kernel's does (not from the read section's start);
 * the callbacks run on the main thread (the housekeeping CPU, task context), not in softirq.
 */
import { I32, F64, nrCpus, nrCpuIds, nowMs } from '../mem/arena.js';
import { thisCpu, setThisCpu, perCpuBlock } from '../mem/this_cpu.js';
import {
  PC_PENDING, PEND_RCU_EXP, PC_RCU_NESTING, PC_RCU_QS_SEQ, PC_RCU_IDLE, PC_RCU_TRACE_NESTING,
  PC_RCU_READ_START, PC_LL_RCU_CB, HDR_RCU_STALL_MS, RCU_STATE_BASE, RCU_STATE_SIZE,
} from '../mem/layout.js';
import { llistDelAll } from '../cpu/llist.js';
import { splat } from '../debug/splat.js';
import { schedEnabled } from '../cpu/sched.js';
import {
  RCU_GP_GEN, RCU_TRACE_ACTIVE, RCU_EXP_SEQ, RCU_CLOCK_MS, RCU_GP_DONE, RCU_GP_REQ, RCU_GP_STARTED,
  RCU_BOOST_GP, RCU_BOOST_SEQ, RCU_STEP_ASIDES, PC_RCU_TRACE_SEQ,
} from './state.js';
import { ringDoorbell } from '../cpu/doorbell.js';
import { RH_NEXT, invokeRcuCallback, isTraceHead } from './callbacks.js';

/**
 * First force-quiescent-state pass. The kernel waits ~3 jiffies; we ask after 1 ms: a CPU running
 * programs back to back is almost always inside a read section when sampled, and the ask costs it
 * one slow window per grace period.
 */
export const RCU_FQS_MS = 1;
/**
 * First boost round of a normal GP (see the header): by then every CPU that has a core has
 * reported (a program run is tens of µs), so what is left was descheduled inside a read section
 * or runs a long one. Kept at the first forcing pass: a round costs each running CPU a wait.
 */
export const RCU_BOOST_MS = 1;
/**
 * First boost round of an expedited GP: at its start, right after the poke, when the first scan
 * did not end it. A running CPU reports at its next window and then steps aside at once, so the
 * cores go to the readers that have none; a GP that every CPU could end by itself costs each of
 * them one wait of about the coordinator's wake.
 */
export const RCU_EXP_BOOST_MS = 0;
/** Longest sleep between polls while a GP waits (catches the housekeeping CPU leaving a section). */
const ACTIVE_POLL_CAP_MS = 10;
const LAT_RING = 4096;

interface Waiter { readonly target: number; readonly resolve: () => void; readonly reject: (e: Error) => void }
/** rcu_barrier: resolved once each flavour has run as many callbacks as had been queued (FIFO). */
interface Barrier { readonly normal: number; readonly trace: number; readonly resolve: () => void; readonly reject: (e: Error) => void }

class Flavour {
  started = 0;
  completed = 0;
  active = false;
  startMs = 0;
  expedited = false;
  expTarget = 0;
  /** GP age (ms) of the next boost round; Infinity: none. */
  boostAt = Infinity;
  wantUpTo = 0;
  remaining = 0;
  snapQs = new Int32Array(0);
  snapTr = new Int32Array(0);
  doneN = new Uint8Array(0);
  doneT = new Uint8Array(0);
  poked = new Uint8Array(0);
  cbHeads: number[] = [];
  cbTags: number[] = [];
  cbFirst = 0;
  ready: number[] = [];
  waiters: Waiter[] = [];
  // statistics
  expGps = 0;
  cbsQueued = 0;
  cbsRun = 0;
  stalls = 0;
  forced = 0;
  boosts = 0;
  lat = new Float64Array(LAT_RING);
  latN = 0;
  latSum = 0;
  latMax = 0;

  constructor(readonly name: 'rcu' | 'rcu_tasks_trace', readonly trace: boolean) {}

  reset(n: number): void {
    this.started = 0; this.completed = 0; this.active = false; this.startMs = 0;
    this.expedited = false; this.expTarget = 0; this.wantUpTo = 0; this.remaining = 0; this.boostAt = Infinity;
    this.snapQs = new Int32Array(n); this.snapTr = new Int32Array(n);
    this.doneN = new Uint8Array(n); this.doneT = new Uint8Array(n);
    this.poked = new Uint8Array(n);
    this.cbHeads = []; this.cbTags = []; this.cbFirst = 0; this.ready = []; this.waiters = [];
    this.expGps = 0; this.cbsQueued = 0; this.cbsRun = 0; this.stalls = 0; this.forced = 0; this.boosts = 0;
    this.lat = new Float64Array(LAT_RING); this.latN = 0; this.latSum = 0; this.latMax = 0;
  }

  enqueue(head: number): void {
    const tag = this.started + 1;
    this.cbHeads.push(head);
    this.cbTags.push(tag);
    this.cbsQueued++;
    if (tag > this.wantUpTo) this.wantUpTo = tag;
  }

  pending(): number { return this.cbHeads.length - this.cbFirst + this.ready.length; }

  /** A new GP must start after now; returns its number. */
  want(expedited: boolean): number {
    const target = this.started + 1;
    if (target > this.wantUpTo) this.wantUpTo = target;
    if (expedited && target > this.expTarget) this.expTarget = target;
    return target;
  }
}

const normal = new Flavour('rcu', false);
const trace = new Flavour('rcu_tasks_trace', true);
let barriers: Barrier[] = [];
let inited = false;
let polling = false;
let stallMs = 1000;
let reqSeen = 0;
let hk = 0;
let stallSeen = new Uint8Array(0);
let stallAtQs = new Int32Array(0);

/** Global init (main thread, once per arena, before workers start). */
export function rcuGlobalInit(): void {
  I32.fill(0, RCU_STATE_BASE >> 2, (RCU_STATE_BASE + RCU_STATE_SIZE) >> 2);
  F64[RCU_CLOCK_MS >> 3] = nowMs();
  normal.reset(nrCpuIds);
  trace.reset(nrCpuIds);
  barriers = [];
  reqSeen = 0;
  polling = false;
  hk = nrCpus;
  stallSeen = new Uint8Array(nrCpuIds);
  stallAtQs = new Int32Array(nrCpuIds);
  const s = I32[HDR_RCU_STALL_MS >> 2]!;
  stallMs = s > 0 ? s : 1000;
  // Program CPUs are idle (an extended quiescent state) until their worker says otherwise.
  for (let c = 0; c < nrCpus; c++) Atomics.store(I32, (perCpuBlock(c) + PC_RCU_IDLE) >> 2, 1);
  inited = true;
}

// ---------------------------------------------------------------------------------------------
// grace-period machine

function pcI(c: number, off: number): number { return (perCpuBlock(c) + off) >> 2; }

function startGp(f: Flavour, now: number): void {
  f.started++;
  f.active = true;
  f.startMs = now;
  f.expedited = f.expTarget >= f.started;
  f.boostAt = f.trace || schedEnabled() ? Infinity : f.expedited ? RCU_EXP_BOOST_MS : RCU_BOOST_MS;
  for (let c = 0; c < nrCpuIds; c++) {
    f.snapQs[c] = Atomics.load(I32, pcI(c, PC_RCU_QS_SEQ));
    if (f.trace) f.snapTr[c] = Atomics.load(I32, pcI(c, PC_RCU_TRACE_SEQ));
    f.doneN[c] = 0;
    f.doneT[c] = f.trace ? 0 : 1;
    f.poked[c] = 0;
  }
  f.remaining = nrCpuIds;
  Atomics.add(I32, RCU_GP_GEN >> 2, 1); // after the snapshot: see the header comment
  if (f.trace) Atomics.store(I32, RCU_TRACE_ACTIVE >> 2, 1);
  else Atomics.store(I32, RCU_GP_STARTED >> 2, f.started);
  scan(f, now);
  if (f.expedited) f.expGps++;
  if (f.expedited && f.remaining > 0) {
    Atomics.add(I32, RCU_EXP_SEQ >> 2, 1);
    pokeAll(f);
  }
  maybeBoost(f, now);
}

/**
 * A boost round (see the header) when one is due and a program CPU still owes a report (the
 * housekeeping CPU is this thread: nobody can give it a core). The next round is due at twice the
 * age, so a reader held for long costs the running CPUs a bounded share of their time.
 */
function maybeBoost(f: Flavour, now: number): void {
  const age = now - f.startMs;
  if (f.remaining === 0 || age < f.boostAt) return;
  let owed = false;
  for (let c = 0; c < nrCpus && !owed; c++) owed = f.doneN[c] === 0;
  if (!owed) return;
  f.boosts++;
  f.boostAt = Math.max(2 * age, age + RCU_BOOST_MS);
  Atomics.store(I32, RCU_BOOST_GP >> 2, f.started);
  Atomics.add(I32, RCU_BOOST_SEQ >> 2, 1);
  Atomics.add(I32, RCU_GP_GEN >> 2, 1); // after the boost words: the CPU loop looks at them
}

function poke(f: Flavour, c: number): void {
  if (f.poked[c] !== 0 || c === hk) return;
  f.poked[c] = 1;
  f.forced++;
  Atomics.or(I32, pcI(c, PC_PENDING), PEND_RCU_EXP);
}

function pokeAll(f: Flavour): void {
  for (let c = 0; c < nrCpus; c++) if (f.doneN[c] === 0) poke(f, c);
}

/** Mark CPUs that passed a quiescent state; force and stall-check the others. */
function scan(f: Flavour, now: number): void {
  const age = now - f.startMs;
  for (let c = 0; c < nrCpuIds; c++) {
    if (f.doneN[c] !== 0 && f.doneT[c] !== 0) continue;
    if (f.doneN[c] === 0) {
      const ok = c === hk
        ? I32[pcI(c, PC_RCU_NESTING)] === 0
        : Atomics.load(I32, pcI(c, PC_RCU_QS_SEQ)) !== f.snapQs[c] || Atomics.load(I32, pcI(c, PC_RCU_IDLE)) !== 0
          || Atomics.load(I32, pcI(c, PC_RCU_NESTING)) === 0;
      if (ok) {
        f.doneN[c] = 1;
        if (c === hk) Atomics.add(I32, pcI(c, PC_RCU_QS_SEQ), 1); // we are that CPU: keep its counter honest
      }
    }
    if (f.doneT[c] === 0) {
      if (Atomics.load(I32, pcI(c, PC_RCU_TRACE_NESTING)) === 0 || Atomics.load(I32, pcI(c, PC_RCU_TRACE_SEQ)) !== f.snapTr[c]) f.doneT[c] = 1;
    }
    if (f.doneN[c] !== 0 && f.doneT[c] !== 0) { f.remaining--; continue; }
    if (f.doneN[c] === 0) {
      if (age >= RCU_FQS_MS) poke(f, c);
      if (age >= stallMs) maybeReportStall(f, c, age, now);
    }
  }
}

/** One splat per stall: not again for this CPU until its QS counter moves (it made progress). */
function maybeReportStall(f: Flavour, c: number, age: number, now: number): void {
  const qs = Atomics.load(I32, pcI(c, PC_RCU_QS_SEQ));
  if (stallSeen[c] !== 0 && stallAtQs[c] === qs) return;
  stallSeen[c] = 1;
  stallAtQs[c] = qs;
  f.stalls++;
  const nest = I32[pcI(c, PC_RCU_NESTING)]!;
  const since = now - F64[(perCpuBlock(c) + PC_RCU_READ_START) >> 3]!;
  const where = nest > 0
    ? `inside an RCU read-side critical section (nesting ${nest}, entered ~${Math.max(0, Math.round(since))} ms ago)`
    : 'outside read sections but no quiescent state reported (no rcuQuiescentState() or window)';
  const saved = thisCpu;
  setThisCpu(c); // the splat describes the stalled CPU: its context, last window, held locks
  splat('rcu_stall', `INFO: ${f.name} detected stall on CPU ${c}: grace period ${f.started} waited ${Math.round(age)} ms, cpu ${c} ${where}`);
  setThisCpu(saved);
}

function completeGp(f: Flavour, now: number): void {
  f.completed = f.started;
  f.active = false;
  const ms = now - f.startMs;
  f.lat[f.latN % LAT_RING] = ms;
  f.latN++;
  f.latSum += ms;
  if (ms > f.latMax) f.latMax = ms;
  while (f.cbFirst < f.cbHeads.length && f.cbTags[f.cbFirst]! <= f.completed) {
    f.ready.push(f.cbHeads[f.cbFirst]!);
    f.cbFirst++;
  }
  if (f.cbFirst > 1024 && f.cbFirst * 2 > f.cbHeads.length) {
    f.cbHeads = f.cbHeads.slice(f.cbFirst);
    f.cbTags = f.cbTags.slice(f.cbFirst);
    f.cbFirst = 0;
  }
  if (f.waiters.length > 0) {
    const keep: Waiter[] = [];
    for (const w of f.waiters) {
      if (w.target <= f.completed) w.resolve();
      else keep.push(w);
    }
    f.waiters = keep;
  }
  f.boostAt = Infinity;
  if (f.trace) Atomics.store(I32, RCU_TRACE_ACTIVE >> 2, 0);
  else {
    Atomics.store(I32, RCU_BOOST_GP >> 2, 0);
    Atomics.store(I32, RCU_GP_DONE >> 2, f.completed);
    Atomics.notify(I32, RCU_GP_DONE >> 2);
  }
}

/** Take every CPU's queued callbacks (any thread may have pushed). */
function drainCallbacks(): void {
  for (let c = 0; c < nrCpuIds; c++) {
    let node = llistDelAll(perCpuBlock(c) + PC_LL_RCU_CB);
    if (node === 0) continue;
    // the chain is newest first: reverse to keep each CPU's callbacks in queue order
    let prev = 0;
    while (node !== 0) {
      const next = I32[(node + RH_NEXT) >> 2]!;
      I32[(node + RH_NEXT) >> 2] = prev;
      prev = node;
      node = next;
    }
    for (node = prev; node !== 0;) {
      const next = I32[(node + RH_NEXT) >> 2]!;
      (isTraceHead(node) ? trace : normal).enqueue(node);
      node = next;
    }
  }
}

function advance(f: Flavour, now: number): void {
  for (let guard = 0; guard < 8; guard++) {
    if (f.active) {
      scan(f, now);
      if (f.remaining > 0) { maybeBoost(f, now); return; }
      completeGp(f, now);
    }
    if (f.wantUpTo > f.completed) startGp(f, now);
    else return;
  }
}

function checkBarriers(): void {
  if (barriers.length === 0) return;
  const keep: Barrier[] = [];
  for (const b of barriers) {
    if (normal.cbsRun >= b.normal && trace.cbsRun >= b.trace) b.resolve();
    else keep.push(b);
  }
  barriers = keep;
}

/** Drive the machine without running callbacks (safe from any main-thread caller). */
function kick(now: number): void {
  F64[RCU_CLOCK_MS >> 3] = now;
  drainCallbacks();
  const req = Atomics.load(I32, RCU_GP_REQ >> 2);
  if (req !== reqSeen) { reqSeen = req; normal.want(false); }
  advance(normal, now);
  advance(trace, now);
}

function runReady(f: Flavour): void {
  // callbacks may queue more callbacks (drained at the next poll) or request GPs
  while (f.ready.length > 0) {
    const batch = f.ready;
    f.ready = [];
    for (const head of batch) {
      invokeRcuCallback(head);
      f.cbsRun++;
    }
  }
}

function nextDelay(now: number): number {
  let next = -1;
  for (const f of [normal, trace]) {
    if (!f.active) continue;
    let d = ACTIVE_POLL_CAP_MS;
    const age = now - f.startMs;
    if (age < RCU_FQS_MS) d = Math.min(d, RCU_FQS_MS - age);
    else if (age < stallMs) d = Math.min(d, stallMs - age);
    if (age < f.boostAt) d = Math.min(d, f.boostAt - age);
    d = Math.max(0.1, d);
    if (next < 0 || d < next) next = d;
  }
  return next;
}

/**
 * The coordinator's RCU poll (main thread): drain callbacks, start/advance/end grace periods, run
 * the callbacks whose GP ended. Returns the ms until it wants the next poll, or -1.
 */
export function rcuPoll(_nowMs?: number): number {
  if (!inited) return -1;
  if (polling) return 0;
  polling = true;
  const saved = thisCpu;
  if (saved !== hk) setThisCpu(hk); // callbacks run as the housekeeping CPU
  try {
    let now = nowMs();
    kick(now);
    for (let i = 0; i < 4 && (normal.ready.length > 0 || trace.ready.length > 0); i++) {
      runReady(normal);
      runReady(trace);
      now = nowMs();
      kick(now); // callbacks may have asked for more
    }
    checkBarriers();
    if (normal.ready.length > 0 || trace.ready.length > 0) return 0; // more callbacks to run
    return nextDelay(now);
  } finally {
    if (saved !== hk) setThisCpu(saved);
    polling = false;
  }
}

function kickNow(): void {
  ringDoorbell();
  if (polling || !inited) return;
  const saved = thisCpu;
  if (saved !== hk) setThisCpu(hk);
  try { kick(nowMs()); } finally { if (saved !== hk) setThisCpu(saved); }
  checkBarriers();
}

// ---------------------------------------------------------------------------------------------
// main-thread waits

/**
 * synchronize_rcu() (main thread): resolves after a full grace period that started after the
 * call, so every read section that existed at the call has ended. `expedited` asks every CPU to
 * report at its next window instead of waiting for its next quiescent state.
 */
export function synchronizeRcu(o: { readonly expedited?: boolean } = {}): Promise<void> {
  if (!inited) return Promise.reject(new Error('synchronizeRcu: no RCU coordinator in this thread (main thread after rcuGlobalInit; CPU workers use synchronizeRcuWait)'));
  if (I32[pcI(hk, PC_RCU_NESTING)]! > 0) splat('warn', 'Illegal synchronize_rcu() in RCU read-side critical section (housekeeping CPU)');
  const expedited = o.expedited === true;
  const p = new Promise<void>((resolve, reject) => {
    normal.waiters.push({ target: normal.want(expedited), resolve, reject });
  });
  if (expedited && normal.active) { // hurry the GP in progress too
    pokeAll(normal);
    if (!schedEnabled()) normal.boostAt = Math.min(normal.boostAt, nowMs() - normal.startMs + RCU_EXP_BOOST_MS);
  }
  kickNow();
  return p;
}

export function synchronizeRcuExpedited(): Promise<void> { return synchronizeRcu({ expedited: true }); }

/** synchronize_rcu_tasks_trace() (main thread): waits for sleepable readers (and normal ones). */
export function synchronizeRcuTasksTrace(): Promise<void> {
  if (!inited) return Promise.reject(new Error('synchronizeRcuTasksTrace: RCU is not initialised'));
  const p = new Promise<void>((resolve, reject) => {
    trace.waiters.push({ target: trace.want(false), resolve, reject });
  });
  kickNow();
  return p;
}

/**
 * rcu_barrier() (main thread): resolves after every callback queued (on any CPU, either flavour)
 * before the call has run.
 */
export function rcuBarrier(): Promise<void> {
  if (!inited) return Promise.reject(new Error('rcuBarrier: RCU is not initialised'));
  drainCallbacks();
  const b = { normal: normal.cbsQueued, trace: trace.cbsQueued };
  if (normal.cbsRun >= b.normal && trace.cbsRun >= b.trace) return Promise.resolve();
  const p = new Promise<void>((resolve, reject) => { barriers.push({ ...b, resolve, reject }); });
  kickNow();
  return p;
}

/**
 * The runtime is going away (rt.stop()): every main-thread wait still pending rejects with `why`
 * (a grace period can no longer complete once the CPUs are gone), and RCU stops in this thread.
 */
export function rcuShutdown(why: Error): void {
  if (!inited) return;
  const ws = [...normal.waiters, ...trace.waiters];
  const bs = barriers;
  normal.waiters = []; trace.waiters = []; barriers = [];
  inited = false;
  for (const w of ws) w.reject(why);
  for (const b of bs) b.reject(why);
}

// ---------------------------------------------------------------------------------------------
// statistics

export interface RcuLatency {
  readonly count: number; readonly meanMs: number; readonly p50Ms: number; readonly p90Ms: number;
  readonly p99Ms: number; readonly maxMs: number;
}

export interface RcuFlavourStats {
  readonly gpsStarted: number;
  readonly gpsCompleted: number;
  readonly gpInProgress: boolean;
  readonly expeditedGps: number;
  readonly callbacksQueued: number;
  readonly callbacksRun: number;
  readonly callbacksPending: number;
  readonly waiters: number;
  readonly stalls: number;
  readonly forcedReports: number;
  /** Boost rounds issued (normal flavour only; see gp.ts): CPUs were asked to step aside. */
  readonly boosts: number;
  readonly gpLatency: RcuLatency;
}

export interface RcuStats extends RcuFlavourStats {
  readonly tasksTrace: RcuFlavourStats;
  /** Times a CPU stepped aside for a boost round (read_side.ts). */
  readonly stepAsides: number;
}

function samples(f: Flavour): number[] {
  const n = Math.min(f.latN, LAT_RING);
  return Array.from(f.lat.subarray(0, n));
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

function flavourStats(f: Flavour): RcuFlavourStats {
  const s = samples(f).sort((a, b) => a - b);
  return {
    gpsStarted: f.started, gpsCompleted: f.completed, gpInProgress: f.active, expeditedGps: f.expGps,
    callbacksQueued: f.cbsQueued, callbacksRun: f.cbsRun, callbacksPending: f.pending(),
    waiters: f.waiters.length, stalls: f.stalls, forcedReports: f.forced, boosts: f.boosts,
    gpLatency: {
      count: f.latN, meanMs: f.latN > 0 ? f.latSum / f.latN : 0, p50Ms: pct(s, 0.5), p90Ms: pct(s, 0.9),
      p99Ms: pct(s, 0.99), maxMs: f.latMax,
    },
  };
}

/** Counters for rt.stats() (main thread). */
export function rcuStats(): RcuStats {
  return { ...flavourStats(normal), tasksTrace: flavourStats(trace), stepAsides: Atomics.load(I32, RCU_STEP_ASIDES >> 2) };
}

/** The last (up to 4096) grace-period durations in ms, for a histogram. */
export function rcuGpLatencySamples(flavour: 'rcu' | 'rcu_tasks_trace' = 'rcu'): number[] {
  return samples(flavour === 'rcu' ? normal : trace);
}
