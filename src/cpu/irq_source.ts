/*
 * irq_source.ts — interrupt sources that a CPU arms for itself: random injection at a rate
 * (rt.inject({ kind, cpus, ratePerSec })) and perf_event sampling (attach({ kind: 'perf_event',
 * frequencyHz })).
 *
 * Why on the CPU: a perf_event counts events and raises its overflow NMI on the CPU that counted
 * them; nothing outside the CPU decides when. A coordinator that polls once a millisecond and
 * raises one interrupt per poll cannot deliver more than ~1000/s per CPU (it delivered 4–6 % of
 * 20 k/s). Here the main thread only writes a source slot (line 0 of the per-CPU block:
 * PC_SRC_BASE, kind and period) and sets the sticky PEND_SRC bit; the CPU, in the window slow
 * path, counts windows down and, every few windows (calibrated so that it looks at the clock about
 * four times per period), checks which sources are due and raises them on itself.
 *
 * Accounting, per kind (line 0, Atomics, any thread may add): REQUESTED counts every event that
 * came due (a rate × busy time), COALESCED every event merged into one already pending (the CPU
 * had not taken it yet, as hardware merges a pending interrupt), and the CPU's own
 * PC_STAT_{NMI,HARDIRQ,SOFTIRQ} count what it delivered. Several events due at one clock check
 * arrived at different times: the first is raised, the rest are owed (PC_SRC_BACKLOG) and raised
 * one per window while their kind is not pending. Invariant, per kind: requested = delivered +
 * coalesced + owed + (1 if one is pending now), for interrupts raised through raiseIrq (sources,
 * precise injection, timers, ctx.raiseSoftirq).
 *
 * Busy only: sources advance while the CPU runs work (a workload or a test run), not while it
 * idles — like a cycles counter, which stops in idle. srcResume() restarts their clocks when the
 * CPU becomes busy; srcPause() stops them. Likewise they skip the time a busy CPU's thread is off
 * the core (descheduled: no window passed for many check intervals); that time is counted
 * (offCoreMs in rt.stats()), so a shortfall against rate × wall time is explained, never hidden.
 * Events that fall due while the CPU cannot take them separately are requested and coalesced.
 *
 * Reproducible: each source draws its inter-arrival times (periodic, or exponential for random
 * injection) from a generator seeded by (runtime seed, cpu, slot, arming generation).
 *
 * Owner-only words (line 3: PC_SRC_*) are written by this CPU alone; the slot words (line 0) by
 * the main thread alone.
 */
import { I32, F64, U32, nowMs } from '../mem/arena.js';
import { pcpuI, thisCpu, perCpuBlock } from '../mem/this_cpu.js';
import {
  PC_PENDING, PC_WAKE, PC_IRQ_REQUESTED, PC_IRQ_COALESCED, PC_SRC_GEN, PC_SRC_BASE, IRQ_SOURCES,
  IRQ_SOURCE, PC_SRC_COUNTDOWN, PC_SRC_SEEN_GEN, PC_SRC_LAST_MS, PC_SRC_NEXT, PC_SRC_RNG,
  PC_SRC_PER_CHECK, PC_SRC_RAISED, PC_SRC_BACKLOG, PC_SRC_BACKLOG_ANY, PC_SRC_INTERVAL_MS, PC_SRC_OFFCORE_MS, PEND_NMI, PEND_HARDIRQ, PEND_SOFTIRQ, PEND_SRC, HDR_SEED,
} from '../mem/layout.js';

export const KIND_NMI = 0;
export const KIND_HARDIRQ = 1;
export const KIND_SOFTIRQ = 2;
const KIND_BITS = [PEND_NMI, PEND_HARDIRQ, PEND_SOFTIRQ] as const;

const PEND_I = PC_PENDING >> 2;
const BACKLOG_I = PC_SRC_BACKLOG >> 2;
const BACKLOG_ANY_I = PC_SRC_BACKLOG_ANY >> 2;
const CD_I = PC_SRC_COUNTDOWN >> 2;
const PAUSED = 0x3fffffff;
/** A check never waits longer than this (ms), nor less than this many windows. */
const MAX_CHECK_MS = 2;
const MIN_CHECK_MS = 0.002;
/** A gap between checks this many expected intervals long (and at least OFFCORE_MIN_MS) is off-core time. */
const OFFCORE_FACTOR = 8;
const OFFCORE_MIN_MS = 1;

/**
 * Raise interrupt `kind` (KIND_*) on the CPU whose block starts at i32 index `blockI`, counting it
 * as requested, and as coalesced when one was already pending. Any thread. Returns true when it
 * was newly raised.
 */
export function raiseIrq(blockI: number, kind: number, n = 1, counted = false): boolean {
  const bit = KIND_BITS[kind]!;
  if (!counted) Atomics.add(I32, blockI + (PC_IRQ_REQUESTED >> 2) + kind, n);
  const old = Atomics.or(I32, blockI + PEND_I, bit);
  const fresh = (old & bit) === 0;
  const merged = n - (fresh ? 1 : 0);
  if (merged > 0) Atomics.add(I32, blockI + (PC_IRQ_COALESCED >> 2) + kind, merged);
  return fresh;
}

// ---- main thread: arming ----

/** Arm source `slot` on `cpu` (main thread). `ratePerSec` > 0. */
export function armSource(cpu: number, slot: number, kind: number, ratePerSec: number, poisson: boolean): void {
  const b = perCpuBlock(cpu);
  Atomics.store(I32, ((b + PC_SRC_RAISED) >> 2) + slot, 0);
  const e = b + PC_SRC_BASE + slot * IRQ_SOURCE;
  F64[(e + 8) >> 3] = 1e9 / ratePerSec;
  I32[(e + 4) >> 2] = poisson ? 1 : 0;
  Atomics.store(I32, e >> 2, kind + 1);
  Atomics.add(I32, (b + PC_SRC_GEN) >> 2, 1);
  Atomics.or(I32, (b + PC_PENDING) >> 2, PEND_SRC);
  Atomics.add(I32, (b + PC_WAKE) >> 2, 1);
  Atomics.notify(I32, (b + PC_WAKE) >> 2);
}

/** Disarm source `slot` on `cpu` (main thread); the sticky bit goes when no source is left. */
export function disarmSource(cpu: number, slot: number): void {
  const b = perCpuBlock(cpu);
  Atomics.store(I32, (b + PC_SRC_BASE + slot * IRQ_SOURCE) >> 2, 0);
  Atomics.add(I32, (b + PC_SRC_GEN) >> 2, 1);
  if (activeSources(cpu) === 0) Atomics.and(I32, (b + PC_PENDING) >> 2, ~PEND_SRC);
}

function activeSources(cpu: number): number {
  const b = perCpuBlock(cpu);
  let n = 0;
  for (let s = 0; s < IRQ_SOURCES; s++) if (Atomics.load(I32, (b + PC_SRC_BASE + s * IRQ_SOURCE) >> 2) !== 0) n++;
  return n;
}

/** A free slot on `cpu`, or -1. */
export function freeSourceSlot(cpu: number): number {
  const b = perCpuBlock(cpu);
  for (let s = 0; s < IRQ_SOURCES; s++) if (Atomics.load(I32, (b + PC_SRC_BASE + s * IRQ_SOURCE) >> 2) === 0) return s;
  return -1;
}

/** Events source `slot` of `cpu` has requested since it was armed (any thread). */
export function sourceRaised(cpu: number, slot: number): number {
  return Atomics.load(I32, ((perCpuBlock(cpu) + PC_SRC_RAISED) >> 2) + slot);
}

/** Milliseconds of busy time this CPU's thread spent off-core (sources skipped them). */
export function offCoreMs(cpu: number): number {
  return F64[(perCpuBlock(cpu) + PC_SRC_OFFCORE_MS) >> 3]!;
}

/** Per-kind totals of CPU `cpu`: requested and coalesced (any thread). */
export function irqCounts(cpu: number, kind: number): { requested: number; coalesced: number } {
  const b = perCpuBlock(cpu) >> 2;
  return {
    requested: Atomics.load(I32, b + (PC_IRQ_REQUESTED >> 2) + kind),
    coalesced: Atomics.load(I32, b + (PC_IRQ_COALESCED >> 2) + kind),
  };
}

// ---- owner CPU ----

function rngNext(s: number): number {
  const i = pcpuI + (PC_SRC_RNG >> 2) + s;
  let x = U32[i]! || 0x9e3779b9;
  x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
  U32[i] = x >>> 0;
  return (x >>> 0) / 4294967296;
}

/** Milliseconds to the next event of slot `s` (period, or an exponential draw around it). */
function draw(s: number, periodMs: number, poisson: boolean): number {
  if (!poisson) return periodMs;
  return -Math.log(1 - rngNext(s)) * periodMs;
}

function rearm(now: number): void {
  const gen = Atomics.load(I32, pcpuI + (PC_SRC_GEN >> 2));
  I32[pcpuI + (PC_SRC_SEEN_GEN >> 2)] = gen;
  const seed = I32[HDR_SEED >> 2]!;
  for (let s = 0; s < IRQ_SOURCES; s++) {
    const e = pcpuI + (PC_SRC_BASE >> 2) + s * (IRQ_SOURCE >> 2);
    if (Atomics.load(I32, e) === 0) continue;
    U32[pcpuI + (PC_SRC_RNG >> 2) + s] = (Math.imul(seed ^ 0x2545f491, 0x9e3779b1) ^ Math.imul(thisCpu + 1, 0x85ebca6b) ^ Math.imul(s + 1, 0xc2b2ae35) ^ Math.imul(gen, 0x27d4eb2f)) >>> 0 || 1;
    const periodMs = F64[((pcpuI << 2) + PC_SRC_BASE + s * IRQ_SOURCE + 8) >> 3]! / 1e6;
    F64[((pcpuI << 2) + PC_SRC_NEXT) / 8 + s] = now + draw(s, periodMs, I32[e + 1] !== 0);
  }
}

/** The CPU became busy: restart the sources' clocks and look again soon. */
export function srcResume(): void {
  const now = nowMs();
  rearm(now);
  F64[((pcpuI << 2) + PC_SRC_LAST_MS) >> 3] = now;
  F64[((pcpuI << 2) + PC_SRC_INTERVAL_MS) >> 3] = 0;
  I32[pcpuI + (PC_SRC_PER_CHECK >> 2)] = 1;
  I32[pcpuI + CD_I] = 1;
}

/**
 * The CPU goes idle (and at boot): its sources stop counting. Events still owed merge into one
 * (coalesced): the CPU would have taken them before idling only if it had passed more windows.
 */
export function srcPause(): void {
  I32[pcpuI + CD_I] = PAUSED;
  for (let k = 0; k < 3; k++) {
    const owed = I32[pcpuI + BACKLOG_I + k]!;
    if (owed !== 0) Atomics.add(I32, pcpuI + (PC_IRQ_COALESCED >> 2) + k, owed);
    I32[pcpuI + BACKLOG_I + k] = 0;
  }
  I32[pcpuI + BACKLOG_ANY_I] = 0;
}

/**
 * Window slow path with PEND_SRC set: count down; at zero, raise what is due. Returns true when
 * the caller may return at once (nothing but the sticky source bit is pending).
 */
export function srcWindow(pending: number): boolean {
  if (I32[pcpuI + BACKLOG_ANY_I] !== 0 && drainBacklog(pending)) return false;
  const c = I32[pcpuI + CD_I]! - 1;
  if (c > 0) { I32[pcpuI + CD_I] = c; return pending === PEND_SRC; }
  srcCheck();
  return false;
}

/**
 * Events that fell due between two clock checks arrived at different times: a CPU running code
 * would have taken each at the first window after it. They are owed (PC_SRC_BACKLOG) and raised
 * one per window while that kind is not pending; one still pending when more fall due absorbs
 * them (coalesced). Returns true when it raised one.
 */
function drainBacklog(pending: number): boolean {
  for (let k = 0; k < 3; k++) {
    const bi = pcpuI + BACKLOG_I + k;
    const owed = I32[bi]!;
    if (owed === 0 || (pending & KIND_BITS[k]!) !== 0) continue;
    I32[bi] = owed - 1;
    I32[pcpuI + BACKLOG_ANY_I] = I32[pcpuI + BACKLOG_ANY_I]! - 1;
    raiseIrq(pcpuI, k, 1, true);
    return true;
  }
  return false;
}

function srcCheck(): void {
  const now = nowMs();
  const base = pcpuI << 2;
  if (Atomics.load(I32, pcpuI + (PC_SRC_GEN >> 2)) !== I32[pcpuI + (PC_SRC_SEEN_GEN >> 2)]) rearm(now);
  // Off-core: no window for far longer than a check interval means this CPU's thread was not
  // running (descheduled on an oversubscribed machine). A cycles counter does not count then:
  // the sources' clocks skip the gap, which is reported (PC_SRC_OFFCORE_MS), not requested.
  const lastI = (base + PC_SRC_LAST_MS) >> 3;
  const interval = F64[(base + PC_SRC_INTERVAL_MS) >> 3]!;
  const gap = now - F64[lastI]! - interval;
  if (interval > 0 && gap > Math.max(OFFCORE_MIN_MS, OFFCORE_FACTOR * interval)) {
    for (let s = 0; s < IRQ_SOURCES; s++) F64[(base + PC_SRC_NEXT) / 8 + s] = F64[(base + PC_SRC_NEXT) / 8 + s]! + gap;
    const oi = (base + PC_SRC_OFFCORE_MS) >> 3;
    F64[oi] = F64[oi]! + gap;
  }
  let minPeriodMs = Infinity;
  for (let s = 0; s < IRQ_SOURCES; s++) {
    const e = pcpuI + (PC_SRC_BASE >> 2) + s * (IRQ_SOURCE >> 2);
    const kind1 = Atomics.load(I32, e);
    if (kind1 === 0) continue;
    const periodMs = F64[(base + PC_SRC_BASE + s * IRQ_SOURCE + 8) >> 3]! / 1e6;
    if (periodMs < minPeriodMs) minPeriodMs = periodMs;
    const ni = (base + PC_SRC_NEXT) / 8 + s;
    let next = F64[ni]!;
    if (now < next) continue;
    const poisson = I32[e + 1] !== 0;
    let n = 0;
    if (!poisson || now - next > 1000 * periodMs) {
      n = Math.floor((now - next) / periodMs) + 1;
      next += n * periodMs;
      if (poisson) next = now + draw(s, periodMs, true);
    } else {
      while (next <= now) { n++; next += draw(s, periodMs, true); }
    }
    F64[ni] = next;
    I32[pcpuI + (PC_SRC_RAISED >> 2) + s] = I32[pcpuI + (PC_SRC_RAISED >> 2) + s]! + n;
    const kind = kind1 - 1;
    Atomics.add(I32, pcpuI + (PC_IRQ_REQUESTED >> 2) + kind, n);
    const bi = pcpuI + BACKLOG_I + kind;
    if ((Atomics.load(I32, pcpuI + PEND_I) & KIND_BITS[kind]!) !== 0) {
      // still pending from before: these, and whatever was owed, merge into it
      const merged = n + I32[bi]!;
      I32[pcpuI + BACKLOG_ANY_I] = I32[pcpuI + BACKLOG_ANY_I]! - I32[bi]!;
      I32[bi] = 0;
      Atomics.add(I32, pcpuI + (PC_IRQ_COALESCED >> 2) + kind, merged);
    } else {
      raiseIrq(pcpuI, kind, 1, true);
      I32[bi] = I32[bi]! + n - 1;
      I32[pcpuI + BACKLOG_ANY_I] = I32[pcpuI + BACKLOG_ANY_I]! + n - 1;
    }
  }
  // Calibrate: how many slow windows pass in a quarter of the shortest period.
  const li = (base + PC_SRC_LAST_MS) >> 3;
  const elapsed = now - F64[li]!;
  const per = I32[pcpuI + (PC_SRC_PER_CHECK >> 2)]!;
  F64[li] = now;
  let reload = per;
  if (minPeriodMs === Infinity) { I32[pcpuI + CD_I] = 4096; return; } // none armed: look again later
  const target = Math.min(MAX_CHECK_MS, Math.max(MIN_CHECK_MS, minPeriodMs / 4));
  if (elapsed > 0) reload = Math.round((per / elapsed) * target);
  reload = Math.max(1, Math.min(reload, per * 4 + 1, 1 << 20));
  F64[(base + PC_SRC_INTERVAL_MS) >> 3] = elapsed > 0 ? Math.min(target * 4, (elapsed * reload) / per) : target;
  I32[pcpuI + (PC_SRC_PER_CHECK >> 2)] = reload;
  I32[pcpuI + CD_I] = reload;
}
