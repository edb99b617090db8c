/*
 * sched.ts — deterministic schedules (Runtime.start({ schedule })): one simulated CPU runs at a
 * time, and at every window the scheduler picks, from a seed, which one continues — the random
 * and PCT schedulers of loom/shuttle, on real worker threads that hand a turn to each other.
 *
 * Model. A scheduled run is the set of CPUs running workloads begun in one tick (the
 * "participants") plus the coordinator (the housekeeping CPU, id nrCpus: RCU, irq_work on RT,
 * timers, history drain). Exactly one of them holds the turn (SC_TURN); the others sleep on their
 * own SC_GO word. At every schedule point — every window of a participant (PEND_SCHED is sticky on
 * it, so each window takes the slow path), every spin-wait, joining and leaving — the holder
 * counts a step, advances the virtual clock by STEP_NS and picks the next holder among the
 * runnable: participants not waiting, and the coordinator when its doorbell rang or its next poll
 * fell due (in virtual time). A CPU spinning on a word (a lock, a running timer callback, a grace
 * period) registers the word and the value it saw and is not runnable until the word changes,
 * so a spinner never starves the holder it waits for. When nobody is runnable (a true deadlock,
 * or every CPU waiting for a timeout) the clock jumps IDLE_JUMP_NS and a waiter re-checks: timeouts
 * run on this virtual clock (arena.ts nowMs), so they fire on the same step in every replay.
 *
 * Choices: 'random' draws uniformly among the runnable; 'pct' (Burckhardt et al., as in shuttle)
 * gives every CPU a random priority at the start of a run, runs the highest runnable one, and at
 * d-1 change points drawn in [1, steps] lowers the priority of the CPU running there below all.
 * All draws come from one generator in kernel memory (SC_RNG, mulberry32), advanced only by the
 * holder of the turn, so the same seed and the same runs give the same interleaving, history and
 * splats. Interrupt sources, lock timeouts and timers read the virtual clock, so they land on the
 * same windows too.
 *
 * Rules: only the holder of the turn writes SC_* words other than its own SC_GO wait and the
 * arrival counters (it hands the turn with Atomics: store SC_TURN, bump SC_GO[next], notify).
 * Outside a run (SC_ACTIVE 0) nothing here does anything; code outside a run (testRun,
 * syscall-side calls from the main thread) is not part of the schedule.
 * Nothing hangs: a CPU that waits for its turn while the step counter stands still for
 * STALL_MS of wall time leaves the schedule with a 'sched_stall' splat (the run is then no longer
 * deterministic, and says so); a holder taken offline by the watchdog is replaced by a waiter.
 */
import { I32, F64, I64, hdrFlags, nrCpus, watchdogMs } from '../mem/arena.js';
import { pcpuI, thisCpu, perCpuBlock } from '../mem/this_cpu.js';
import {
  SCHED_BASE, FLAG_SCHED, PC_PENDING, PEND_SCHED, HDR_VCLOCK_NS, HDR_STOPPING, RT_DOORBELL, PC_OFFLINE,
  HDR_HIST_CLOCK, HDR_SPLAT_HEAD, PC_SCHED_WHERE,
} from '../mem/layout.js';
import { splat } from '../debug/splat.js';

// ---- words (indexes relative to SCHED_BASE >> 2) ----
const B = SCHED_BASE >> 2;
export const SC_MODE = 0;        // SCHED_RANDOM | SCHED_PCT (0 with no schedule)
export const SC_ACTIVE = 1;      // 1 while a scheduled run is on
export const SC_TURN = 2;        // id of the CPU that runs now (nrCpus: the coordinator); -1 none; -2 halted
export const SC_STEP = 3;        // schedule points passed since boot
export const SC_RNG = 4;         // the generator's state
export const SC_PARTS_LO = 5;    // participant mask, CPUs 0..31
export const SC_PARTS_HI = 6;    // CPUs 32..63
export const SC_EXPECTED = 7;    // participants of the run being begun
export const SC_ARRIVED = 8;     // ... arrived so far (the last one makes the first pick)
export const SC_DEPTH = 9;       // PCT depth d
export const SC_STOP_AT = 10;    // replay: halt at this step (0: never)
export const SC_HALTED = 11;     // the step it halted at (0: running)
export const SC_STEPS_EST = 12;  // PCT: the steps over which change points are drawn
export const SC_H_SEEN = 13;     // doorbell value the coordinator's last turn saw
export const SC_SWITCHES = 14;   // turns handed from one CPU to another
export const SC_RUNS = 15;       // scheduled runs begun
export const SC_H_NEXT = 16;     // f64 (words 16-17): virtual ns the coordinator wants its next turn
export const SC_STALLS = 18;     // CPUs that left a stalled schedule
export const SC_IDLE_STEPS = 19; // steps at which nobody was runnable (the clock jumped)
export const SC_RUN_STEP0 = 20;  // SC_STEP when the current run made its first pick
export const SC_STOP_STAMP = 21; // replay: halt once the history clock reached this stamp (0: never)
export const SC_STOP_SPLAT = 22; // replay: halt at the first schedule point after a splat
export const SC_SPLAT_STEP = 23; // the first step at which a splat had been raised (0: none yet)
export const SC_CHANGE = 24;     // i32[16]: PCT change points, steps after SC_RUN_STEP0
export const SC_PRIO = 40;       // i32[65]: PCT priority per CPU id (the coordinator's last)
export const SC_MAX_STEPS = 105; // halt a run this many steps after its first pick (0: no bound): a livelock
export const SC_HALT_WHY = 106;  // why it halted: HALT_*
export const SC_WADDR = 112;     // i32[65]: I32 index a CPU waits to see change (0: not waiting)
export const SC_WVAL = 184;      // i32[65]: the value it saw there
export const SC_GO = 256;        // i32[65]: bumped to hand a CPU the turn; it sleeps on it

export const HALT_STOP_AT = 1;
export const HALT_STAMP = 2;
export const HALT_SPLAT = 3;
export const HALT_MAX_STEPS = 4;
export const HALT_NAMES = ['', 'the step asked for', 'the history stamp asked for', 'a splat', 'the step budget (a livelock?)'] as const;

export const SCHED_RANDOM = 1;
export const SCHED_PCT = 2;
export const SCHED_MAX_DEPTH = 16;
/** Virtual time one schedule point takes (a window every microsecond). */
export const STEP_NS = 1000;
/** Virtual time that passes at a step where nobody could run. */
export const IDLE_JUMP_NS = 1_000_000;
/** The coordinator's turn when nothing rang: at most this much virtual time apart. */
const COORD_IDLE_NS = 250e6;

const H_NEXT_F = (SCHED_BASE + SC_H_NEXT * 4) >> 3;

/** PC_SCHED_WHERE values: what a CPU of a scheduled run is doing (reports, stall diagnosis). */
export const WHERE_NONE = 0;
export const WHERE_RUNNING = 1;     // holds the turn, running kernel or program code
export const WHERE_PICKING = 2;     // holds the turn, choosing the next holder
export const WHERE_WAIT_TURN = 3;   // waits for its turn
export const WHERE_WAIT_WORD = 4;   // spin-waits on a word (a lock, a grace period) and waits for its turn
export const WHERE_NAMES = ['not scheduled', 'running', 'picking the next CPU', 'waiting for its turn', 'spin-waiting, off the CPU'] as const;
const WHERE_I = PC_SCHED_WHERE >> 2;
function where(v: number): void { if (selfId < nrCpus) I32[pcpuI + WHERE_I] = v; }

/** Does this runtime run deterministic schedules? (cached header flag) */
export function schedEnabled(): boolean { return (hdrFlags & FLAG_SCHED) !== 0; }

function ld(w: number): number { return Atomics.load(I32, B + w); }
function st(w: number, v: number): void { Atomics.store(I32, B + w, v); }
function vnow(): number { return Number(Atomics.load(I64, HDR_VCLOCK_NS >> 3)); }
function advance(ns: number): void { Atomics.add(I64, HDR_VCLOCK_NS >> 3, BigInt(ns)); }

/** mulberry32 on the shared state; only the holder of the turn (or the main thread between runs) calls it. */
function rng(): number {
  const a = (ld(SC_RNG) + 0x6d2b79f5) | 0;
  st(SC_RNG, a);
  let t = Math.imul(a ^ (a >>> 15), 1 | a);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return (t ^ (t >>> 14)) >>> 0;
}

function isPart(c: number): boolean {
  return c < 32 ? ((ld(SC_PARTS_LO) >>> c) & 1) !== 0 : ((ld(SC_PARTS_HI) >>> (c - 32)) & 1) !== 0;
}
function setPart(c: number, on: boolean): void {
  const w = c < 32 ? SC_PARTS_LO : SC_PARTS_HI;
  const bit = 1 << (c & 31);
  if (on) Atomics.or(I32, B + w, bit); else Atomics.and(I32, B + w, ~bit);
}

/** Is CPU `c` waiting for a word that still holds the value it saw? */
function waiting(c: number): boolean {
  const a = ld(SC_WADDR + c);
  return a !== 0 && Atomics.load(I32, a) === ld(SC_WVAL + c);
}

function coordRunnable(): boolean {
  const h = nrCpus;
  if (ld(SC_WADDR + h) !== 0) return !waiting(h);
  return Atomics.load(I32, RT_DOORBELL >> 2) !== ld(SC_H_SEEN) || vnow() >= F64[H_NEXT_F]!;
}

const cand: number[] = [];

/** The next holder of the turn, or -1 when no participant is left and the coordinator has nothing to do. */
function pick(): number {
  cand.length = 0;
  let parts = 0;
  for (let c = 0; c < nrCpus; c++) {
    if (!isPart(c)) continue;
    parts++;
    if (!waiting(c)) cand.push(c);
  }
  if (coordRunnable()) cand.push(nrCpus);
  if (cand.length === 0) {
    if (parts === 0) return ld(SC_WADDR + nrCpus) !== 0 ? nrCpus : -1;
    // Nobody can run: every participant waits for a word only a timeout will end. Time jumps and
    // a waiter re-checks (its lock or grace-period timeout reads the virtual clock).
    st(SC_IDLE_STEPS, ld(SC_IDLE_STEPS) + 1);
    advance(IDLE_JUMP_NS);
    for (let c = 0; c < nrCpus; c++) if (isPart(c)) cand.push(c);
    if (ld(SC_WADDR + nrCpus) !== 0) cand.push(nrCpus);
  }
  if (cand.length === 1) return cand[0]!;
  if (ld(SC_MODE) === SCHED_PCT) {
    let best = cand[0]!;
    for (let i = 1; i < cand.length; i++) if (ld(SC_PRIO + cand[i]!) > ld(SC_PRIO + best)) best = cand[i]!;
    return best;
  }
  return cand[rng() % cand.length]!;
}

function handTo(next: number): void {
  st(SC_TURN, next);
  if (next < 0) return;
  st(SC_SWITCHES, ld(SC_SWITCHES) + 1);
  Atomics.add(I32, B + SC_GO + next, 1);
  Atomics.notify(I32, B + SC_GO + next);
}

// ---- this thread ----
/** This thread takes part in the current run (a participant CPU, or the coordinator during its turn). */
let joined = false;
/**
 * This thread's id in the schedule (its CPU; the coordinator: nrCpus). Not thisCpu: the coordinator
 * impersonates other CPUs while it runs their irq_work or grace-period work, and a lock wait in
 * there is still the coordinator's.
 */
let selfId = -1;
let stallMs = 10_000;

/** Count one step and move on: the holder keeps the turn or hands it on and waits to get it back. */
function step(): void {
  const self = selfId;
  const s = (ld(SC_STEP) + 1) | 0;
  st(SC_STEP, s);
  advance(STEP_NS);
  if (ld(SC_MODE) === SCHED_PCT) {
    const rel = s - ld(SC_RUN_STEP0);
    const d = ld(SC_DEPTH);
    for (let k = 0; k < d - 1; k++) if (ld(SC_CHANGE + k) === rel) st(SC_PRIO + self, -1 - k);
  }
  const splatted = Atomics.load(I32, HDR_SPLAT_HEAD >> 2) !== 0;
  if (splatted && ld(SC_SPLAT_STEP) === 0) st(SC_SPLAT_STEP, s);
  const stopAt = ld(SC_STOP_AT), stopStamp = ld(SC_STOP_STAMP) >>> 0, maxSteps = ld(SC_MAX_STEPS);
  const why = self >= nrCpus || ld(SC_HALTED) !== 0 ? 0
    : stopAt !== 0 && s >= stopAt ? HALT_STOP_AT
    : stopStamp !== 0 && (Atomics.load(I32, HDR_HIST_CLOCK >> 2) >>> 0) > stopStamp ? HALT_STAMP
    : splatted && ld(SC_STOP_SPLAT) !== 0 ? HALT_SPLAT
    : maxSteps !== 0 && s - ld(SC_RUN_STEP0) >= maxSteps ? HALT_MAX_STEPS : 0;
  if (why !== 0) {
    st(SC_HALTED, s);
    st(SC_HALT_WHY, why);
    handTo(-2);
    Atomics.add(I32, RT_DOORBELL >> 2, 1);
    Atomics.notify(I32, RT_DOORBELL >> 2);
    waitTurn(self);
    return;
  }
  where(WHERE_PICKING);
  const next = pick();
  if (next !== self) {
    handTo(next);
    if (self !== nrCpus || joined) waitTurn(self);
  }
  where(WHERE_RUNNING);
}

/** Sleep until this CPU holds the turn again, the run ends or the schedule stalls (bounded). */
function waitTurn(self: number): void {
  if (ld(SC_WADDR + self) === 0) where(WHERE_WAIT_TURN);
  const goI = B + SC_GO + self;
  let lastStep = ld(SC_STEP);
  let since = performance.now();
  for (;;) {
    const g = Atomics.load(I32, goI);
    const t = ld(SC_TURN);
    if (t === self) return;
    if (ld(SC_ACTIVE) === 0 || Atomics.load(I32, HDR_STOPPING >> 2) !== 0) { leaveFree(self, null); return; }
    if (t >= 0 && t < nrCpus && Atomics.load(I32, (perCpuBlock(t) + PC_OFFLINE) >> 2) !== 0
        && Atomics.compareExchange(I32, B + SC_TURN, t, self) === t) {
      // the holder was taken offline by the watchdog: drop it and pick in its place
      setPart(t, false);
      const next = pick();
      if (next === self) return;
      handTo(next);
      continue;
    }
    Atomics.wait(I32, goI, g, 50);
    const s = ld(SC_STEP);
    const now = performance.now();
    if (s !== lastStep || ld(SC_TURN) === -2) { lastStep = s; since = now; continue; }
    if (now - since >= stallMs) {
      leaveFree(self, `cpu ${self} waited ${(now - since).toFixed(0)} ms for its turn while cpu ${t} held it and no step was taken: it leaves the schedule (the run is no longer deterministic)`);
      return;
    }
  }
}

function leaveFree(self: number, why: string | null): void {
  if (self < nrCpus) {
    setPart(self, false);
    Atomics.and(I32, pcpuI + (PC_PENDING >> 2), ~PEND_SCHED);
  }
  st(SC_WADDR + self, 0);
  where(WHERE_NONE);
  joined = false;
  if (why !== null) {
    Atomics.add(I32, B + SC_STALLS, 1);
    splat('sched_stall', why);
  }
}

// ---- the hooks the rest of the kernel calls ----

/** A window of a participant: a schedule point (window.ts, when PEND_SCHED is set). */
export function schedPoint(): void {
  if (joined && ld(SC_TURN) === selfId) step();
}

/**
 * Wait for I32[idx] to stop being `val` — a spin-wait. In a scheduled run this is a schedule point
 * that makes this CPU unrunnable until the word changes; otherwise Atomics.wait up to `ms`. The
 * caller re-checks its condition either way.
 */
export function schedWaitWord(idx: number, val: number, ms: number): void {
  if (joined && ld(SC_TURN) === selfId) {
    const self = selfId;
    st(SC_WADDR + self, idx);
    st(SC_WVAL + self, val);
    where(WHERE_WAIT_WORD);
    step();
    st(SC_WADDR + self, 0);
    return;
  }
  Atomics.wait(I32, idx, val, ms);
}

/** Is this thread inside a scheduled run now (busy waits must go through schedWaitWord)? */
export function schedHolding(): boolean { return joined; }

/** A participant CPU begins its workload (cpu_main.ts): arrive, and wait for the first turn. */
export function schedJoin(): void {
  if (!schedEnabled() || ld(SC_ACTIVE) === 0) return;
  const self = thisCpu;
  selfId = self;
  stallMs = Math.max(10_000, 4 * watchdogMs);
  st(SC_WADDR + self, 0);
  setPart(self, true);
  Atomics.or(I32, pcpuI + (PC_PENDING >> 2), PEND_SCHED);
  joined = true;
  if (Atomics.add(I32, B + SC_ARRIVED, 1) + 1 === ld(SC_EXPECTED)) {
    // the last to arrive makes the first pick: the set is complete, so the pick is the seed's
    st(SC_RUN_STEP0, ld(SC_STEP));
    handTo(pick());
  }
  waitTurn(self);
  where(WHERE_RUNNING);
}

/** A participant's workload ends: leave the run, and hand the turn on if it holds it. */
export function schedLeave(): void {
  if (!joined) return;
  const self = selfId;
  const holder = ld(SC_TURN) === self;
  leaveFree(self, null);
  if (holder) {
    st(SC_STEP, (ld(SC_STEP) + 1) | 0);
    advance(STEP_NS);
    handTo(pick());
  }
}

// ---- the main thread ----

export interface ScheduleConfig {
  readonly mode: 'random' | 'pct';
  readonly seed: number;
  /** PCT depth d (bugs of depth d are found with probability ≥ 1/(n·k^(d-1))). @defaultValue 3 */
  readonly depth?: number;
  /** PCT: the steps over which the change points are drawn (about a run's length). @defaultValue 20000 */
  readonly steps?: number;
  /** Replay: halt at this step (the CPUs stay where they are until the runtime stops). */
  readonly stopAt?: number;
  /** Replay: halt at the first schedule point after the history clock reached this stamp. */
  readonly stopAtStamp?: number;
  /** Replay: halt at the first schedule point after a splat. */
  readonly stopAtSplat?: boolean;
  /** Halt a run that took this many steps (a livelock: a CPU looping through windows for ever). */
  readonly maxSteps?: number;
}

/** Boot (main thread, before any CPU runs): seed the generator, write the mode. */
export function schedInit(c: ScheduleConfig): void {
  st(SC_MODE, c.mode === 'pct' ? SCHED_PCT : SCHED_RANDOM);
  st(SC_RNG, (c.seed ^ 0x5bd1e995) | 0);
  st(SC_DEPTH, Math.max(1, Math.min(SCHED_MAX_DEPTH, c.depth ?? 3)));
  st(SC_STEPS_EST, Math.max(1, c.steps ?? 20000));
  st(SC_STOP_AT, c.stopAt ?? 0);
  st(SC_STOP_STAMP, c.stopAtStamp ?? 0);
  st(SC_STOP_SPLAT, c.stopAtSplat === true ? 1 : 0);
  st(SC_MAX_STEPS, c.maxSteps ?? 0);
  st(SC_TURN, -1);
}

/**
 * Begin a run of `cpus` participants (main thread, all CPUs idle): PCT priorities and change
 * points are drawn here, from the same generator, so they too follow from the seed.
 */
export function schedBeginRun(cpus: readonly number[]): void {
  st(SC_PARTS_LO, 0);
  st(SC_PARTS_HI, 0);
  st(SC_ARRIVED, 0);
  st(SC_EXPECTED, cpus.length);
  st(SC_TURN, -1);
  for (let c = 0; c <= nrCpus; c++) st(SC_WADDR + c, 0);
  // priorities: a random permutation of 1..nrCpus+1 over every CPU id (coordinator included)
  const ids = [...Array(nrCpus + 1).keys()];
  for (let i = ids.length - 1; i > 0; i--) {
    const j = rng() % (i + 1);
    const t = ids[i]!; ids[i] = ids[j]!; ids[j] = t;
  }
  for (let i = 0; i < ids.length; i++) st(SC_PRIO + ids[i]!, i + 1);
  const k = ld(SC_STEPS_EST);
  for (let i = 0; i < SCHED_MAX_DEPTH; i++) st(SC_CHANGE + i, 1 + (rng() % k));
  st(SC_H_SEEN, Atomics.load(I32, RT_DOORBELL >> 2));
  F64[H_NEXT_F] = vnow();
  st(SC_RUNS, ld(SC_RUNS) + 1);
  st(SC_ACTIVE, 1);
}

/** End the run (main thread, after every participant returned). */
export function schedEndRun(): void {
  st(SC_ACTIVE, 0);
  st(SC_TURN, -1);
  Atomics.add(I32, B + SC_GO + nrCpus, 1);
  Atomics.notify(I32, B + SC_GO + nrCpus);
}

export function schedActive(): boolean { return schedEnabled() && ld(SC_ACTIVE) !== 0; }
export function schedTurn(): number { return ld(SC_TURN); }
/** The coordinator's wake word and its current value (it waits on it with Atomics.waitAsync). */
export function schedCoordGo(): { index: number; value: number } {
  return { index: B + SC_GO + nrCpus, value: Atomics.load(I32, B + SC_GO + nrCpus) };
}

/**
 * The coordinator's turn (main thread, SC_TURN === nrCpus): run `poll` with the virtual time,
 * remember what it asked for, take one step and hand the turn on (it may come straight back).
 */
export function schedCoordTurn(poll: (nowMs: number) => number): void {
  const doorbell = Atomics.load(I32, RT_DOORBELL >> 2);
  joined = true;
  selfId = nrCpus;
  stallMs = Math.max(10_000, 4 * watchdogMs);
  let next: number;
  try {
    next = poll(vnow() / 1e6);
  } finally {
    joined = false;
  }
  st(SC_H_SEEN, doorbell);
  F64[H_NEXT_F] = vnow() + (next < 0 ? COORD_IDLE_NS : Math.max(next * 1e6, STEP_NS));
  if (ld(SC_TURN) !== nrCpus) return; // halted, or the run ended under it
  step();
}

export interface ScheduleStats {
  readonly mode: 'random' | 'pct';
  readonly steps: number;
  readonly switches: number;
  readonly runs: number;
  readonly idleSteps: number;
  readonly stalls: number;
  readonly halted: number;
  /** The first step at which a splat had been raised (0: none). */
  readonly splatStep: number;
  /** Why it halted ('' while running). */
  readonly haltReason: string;
  readonly virtualNs: number;
  /** Who holds the turn now (-1 nobody, -2 halted), whether a run is on, its participants. */
  readonly turn: number;
  readonly active: boolean;
  readonly participants: readonly number[];
}

export function schedStats(): ScheduleStats {
  return {
    mode: ld(SC_MODE) === SCHED_PCT ? 'pct' : 'random',
    steps: ld(SC_STEP) >>> 0, switches: ld(SC_SWITCHES) >>> 0, runs: ld(SC_RUNS), idleSteps: ld(SC_IDLE_STEPS),
    stalls: ld(SC_STALLS), halted: ld(SC_HALTED), splatStep: ld(SC_SPLAT_STEP), haltReason: HALT_NAMES[ld(SC_HALT_WHY)] ?? '', virtualNs: vnow(),
    turn: ld(SC_TURN), active: ld(SC_ACTIVE) !== 0, participants: [...Array(nrCpus).keys()].filter(isPart),
  };
}
