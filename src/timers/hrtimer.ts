/*
 * hrtimer.ts — per-CPU high-resolution timer bases, the soft-expiry subset BPF timers use
 * (kernel/time/hrtimer.c: hrtimer_start_range_ns, switch_hrtimer_base, lock_hrtimer_base,
 * hrtimer_try_to_cancel, hrtimer_cancel, hrtimer_run_softirq / __hrtimer_run_queues).
 *
 * Layout: one region (kzalloc'd at boot by the main thread, pointer in header HDR_TIMER_BASE):
 *   base c (CACHELINE each, c = 0 .. nrCpuIds-1)
 *     +0  HB_LOCK         raw spinlock (class hrtimer_base) protecting this base's queue
 *     +4  HB_HEAD         first queued timer (sorted by expiry, ties in arming order), 0 = empty
 *     +8  HB_NEXT         f64 expiry of HB_HEAD (+Inf when empty); written under the lock, read
 *                         racily by the coordinator (an aligned f64 store is one access on x64)
 *     +16 HB_RUNNING      the timer whose callback runs now on this CPU (hrtimer_callback_running),
 *                         written by the owner under the lock, read by anyone (Atomics + notify)
 *     +20 HB_RUN_SEQ      softirq runs completed (Atomics.add + notify: clock.advance waits on it)
 *     +24 HB_GEN          run generation: a timer armed during a run (HT_GEN == HB_GEN) waits for
 *                         the next run, so a callback re-arming at "now" cannot loop forever
 *     +28 HB_QUEUED       timers queued
 *     +32 HB_BPF_RUNNING  the bpf's per-CPU hrtimer_running (bpf_timer.ts; owner only)
 *     +36 HB_KEY          scratch word: an array timer's computed key (owner only)
 *     +40 HB_FIRED        callbacks run (owner writes)
 *   globals after the bases (HG_*): the coordinator's next planned poll (f64 ns), bpf_timer's
 *   counters and deferred-work list (bpf_timer.ts).
 *   A timer (embedded at offset 0 of its owner object, SIZEOF_HRTIMER bytes):
 *     +0 HT_NEXT, +4 HT_PREV   queue links (base lock)
 *     +8 HT_EXPIRES           f64 absolute ktime ns (base lock)
 *     +16 HT_STATE            HRTIMER_STATE_INACTIVE / ENQUEUED (base lock)
 *     +20 HT_BASE             cpu id of the base it belongs to; -1 while migrating (Atomics)
 *     +24 HT_GEN              HB_GEN of its base when queued (base lock)
 *
 * Invariants: a timer is queued on at most one base, on the base HT_BASE names; HB_NEXT is the
 * head's expiry; a callback runs with HB_RUNNING == timer and without the base lock; a timer
 * whose callback runs is never reported cancelled (try_to_cancel says -1) and hrtimer_cancel
 * returns only once it is neither queued nor running.
 *
 * Locking: lock_hrtimer_base: read HT_BASE, lock that base, re-check. A start moves a timer to
 * the arming CPU's base (switch_hrtimer_base) by unlocking the old base with HT_BASE = -1 and
 * locking the new one: never two base locks at once. A timer whose callback is running stays on
 * its base (the kernel does the same), so a re-arm from elsewhere fires where it ran.
 * Lock order: (bucket) -> timer (bpf_timer's lock) -> hrtimer base.
 *
 * Contexts: start / try_to_cancel from any context but NMI (the caller checks); hrtimer_cancel
 * waits (bounded), so never from a context that the running callback could be waiting for;
 * hrtimerRunSoftirq in softirq on its own CPU; the poll and drain functions on the main thread
 * (the coordinator raises the timer softirq on CPUs with due timers: callbacks never run there).
 *
 * Differences from the kernel: no clock event device and no hardirq expiry: expiry is detected
 * by the coordinator (or clock.advance) and delivered as a softirq at the CPU's next window; all
 * clock ids read the one runtime clock (real, or virtual: nothing expires until advanced); no
 * slack, no nohz migration of non-pinned timers (both fire on the arming CPU).
 */
import { I32, F64, nrCpus, nrCpuIds, ktimeGetNs, hdrFlags, nowMs } from '../mem/arena.js';
import { thisCpu, perCpuBlock } from '../mem/this_cpu.js';
import { HDR_TIMER_BASE, CACHELINE, FLAG_VIRTUAL_CLOCK, FLAG_SCHED, PC_WAKE } from '../mem/layout.js';
import { raiseIrq, KIND_SOFTIRQ } from '../cpu/irq_source.js';
import { schedWaitWord } from '../cpu/sched.js';
import { window } from '../cpu/window.js';
import { defineSite } from '../cpu/sites.js';
import { kzalloc } from '../mm/slab.js';
import { OWNER_KERNEL } from '../mm/owners.js';
import { rawSpinLockIrqsave, rawSpinUnlockIrqrestore } from '../locks/raw_spinlock.js';
import { LC_HRTIMER_BASE } from '../locks/lock_classes.js';
import { ringDoorbell } from '../cpu/doorbell.js';
import { splat } from '../debug/splat.js';
import { ETIMEDOUT } from '../errno.js';

const SITE_RUN_CALLBACK = defineSite('hrtimer.run.callback');

// ---- base ----
export const HB_LOCK = 0;
export const HB_HEAD = 4;
export const HB_NEXT = 8;
export const HB_RUNNING = 16;
export const HB_RUN_SEQ = 20;
export const HB_GEN = 24;
export const HB_QUEUED = 28;
export const HB_BPF_RUNNING = 32;
export const HB_KEY = 36;
export const HB_FIRED = 40;
// ---- globals after the bases ----
export const HG_COORD_NEXT = 0;   // f64 ktime ns of the coordinator's next planned poll
export const HG_WORK = 8;         // bpf_timer: deferred delete_work llist
export const HG_ALLOCS = 12;      // bpf_timer: bpf_hrtimer objects allocated
export const HG_FREES = 16;       // bpf_timer: bpf_hrtimer objects freed (after their grace period)
export const HG_STARTS = 20;      // bpf_timer: successful bpf_timer_start calls
export const HG_DEFERRED = 24;    // bpf_timer: frees deferred to the delete work
export const SIZEOF_HG = CACHELINE;
// ---- timer ----
export const HT_NEXT = 0;
export const HT_PREV = 4;
export const HT_EXPIRES = 8;
export const HT_STATE = 16;
export const HT_BASE = 20;
export const HT_GEN = 24;
export const SIZEOF_HRTIMER = 32;
export const HRTIMER_STATE_INACTIVE = 0;
export const HRTIMER_STATE_ENQUEUED = 1;

/** Bounded waits: a callback that runs longer than this is reported as a lockup. */
export const HRTIMER_CANCEL_WAIT_MS = 10_000;

/** hrtimer region pointer (0 before hrtimerGlobalInit). */
export function hrtimerRegion(): number { return I32[HDR_TIMER_BASE >> 2]!; }
/** Base of CPU `cpu`. */
export function hrtimerBase(cpu: number): number { return hrtimerRegion() + cpu * CACHELINE; }
/** The globals word block. */
export function hrtimerGlobals(): number { return hrtimerRegion() + nrCpuIds * CACHELINE; }

/** Main thread, once per arena, before workers start: allocate and initialise the bases. */
export function hrtimerGlobalInit(): void {
  const r = kzalloc((nrCpuIds + 1) * CACHELINE, OWNER_KERNEL);
  if (r === 0) throw new Error('hrtimer: no kernel memory for the per-CPU bases');
  for (let c = 0; c < nrCpuIds; c++) F64[(r + c * CACHELINE + HB_NEXT) >> 3] = Infinity;
  F64[(r + nrCpuIds * CACHELINE + HG_COORD_NEXT) >> 3] = Infinity;
  Atomics.store(I32, HDR_TIMER_BASE >> 2, r);
}

/**
 * Time moves only by rt.clock.advance (which fires what is due). Not under a deterministic
 * schedule: there the scheduler moves the virtual clock every step, and the coordinator's expiry
 * poll works as with the real clock (it asks for its next turn at the next expiry).
 */
function virtualClock(): boolean { return (hdrFlags & (FLAG_VIRTUAL_CLOCK | FLAG_SCHED)) === FLAG_VIRTUAL_CLOCK; }

/** hrtimer_init(): an inactive timer belonging to this CPU's base. */
export function hrtimerInit(t: number): void {
  const i = t >> 2;
  I32[i + (HT_NEXT >> 2)] = 0;
  I32[i + (HT_PREV >> 2)] = 0;
  F64[(t + HT_EXPIRES) >> 3] = 0;
  I32[i + (HT_STATE >> 2)] = HRTIMER_STATE_INACTIVE;
  I32[i + (HT_GEN >> 2)] = 0;
  Atomics.store(I32, i + (HT_BASE >> 2), thisCpu);
}

/** lock_hrtimer_base(): the base pointer, locked (irqs saved), or a negative lock error. */
function lockTimerBase(t: number): number {
  const bi = (t + HT_BASE) >> 2;
  for (let spins = 0; ; spins++) {
    const c = Atomics.load(I32, bi);
    if (c >= 0) {
      const b = hrtimerBase(c);
      const err = rawSpinLockIrqsave(b + HB_LOCK, LC_HRTIMER_BASE);
      if (err !== 0) return err;
      if (Atomics.load(I32, bi) === c) return b;
      rawSpinUnlockIrqrestore(b + HB_LOCK);
    } else if (spins > 50_000_000) {
      splat('lockup', `hrtimer 0x${t.toString(16)}: stuck migrating between bases`);
      return -ETIMEDOUT;
    }
  }
}

function unlockBase(b: number): void { rawSpinUnlockIrqrestore(b + HB_LOCK); }

/** enqueue_hrtimer(): sorted insert (ties after equals). Base lock held. */
function enqueueLocked(b: number, t: number, expires: number): void {
  const ti = t >> 2;
  F64[(t + HT_EXPIRES) >> 3] = expires;
  I32[ti + (HT_GEN >> 2)] = I32[(b + HB_GEN) >> 2]!;
  let prev = 0;
  let n = I32[(b + HB_HEAD) >> 2]!;
  while (n !== 0 && F64[(n + HT_EXPIRES) >> 3]! <= expires) { prev = n; n = I32[(n + HT_NEXT) >> 2]!; }
  I32[ti + (HT_NEXT >> 2)] = n;
  I32[ti + (HT_PREV >> 2)] = prev;
  if (n !== 0) I32[(n + HT_PREV) >> 2] = t;
  if (prev !== 0) I32[(prev + HT_NEXT) >> 2] = t;
  else {
    I32[(b + HB_HEAD) >> 2] = t;
    F64[(b + HB_NEXT) >> 3] = expires;
    // tell the coordinator if it plans to look later than this expiry (clock_event reprogram)
    const g = hrtimerGlobals();
    if (virtualClock() ? expires <= ktimeGetNs() : expires < F64[(g + HG_COORD_NEXT) >> 3]!) ringDoorbell();
  }
  I32[ti + (HT_STATE >> 2)] = HRTIMER_STATE_ENQUEUED;
  I32[(b + HB_QUEUED) >> 2] = I32[(b + HB_QUEUED) >> 2]! + 1;
}

/** __remove_hrtimer(): unlink a queued timer. Base lock held. */
function removeLocked(b: number, t: number): void {
  const ti = t >> 2;
  const next = I32[ti + (HT_NEXT >> 2)]!;
  const prev = I32[ti + (HT_PREV >> 2)]!;
  if (next !== 0) I32[(next + HT_PREV) >> 2] = prev;
  if (prev !== 0) I32[(prev + HT_NEXT) >> 2] = next;
  else {
    I32[(b + HB_HEAD) >> 2] = next;
    F64[(b + HB_NEXT) >> 3] = next !== 0 ? F64[(next + HT_EXPIRES) >> 3]! : Infinity;
  }
  I32[ti + (HT_NEXT >> 2)] = 0;
  I32[ti + (HT_PREV >> 2)] = 0;
  I32[ti + (HT_STATE >> 2)] = HRTIMER_STATE_INACTIVE;
  I32[(b + HB_QUEUED) >> 2] = I32[(b + HB_QUEUED) >> 2]! - 1;
}

/**
 * hrtimer_start(): (re)arm `t` to expire at absolute `expires` ns on `cpu`'s base (the arming CPU;
 * a timer whose callback is running stays on its base). 0 or a negative lock error.
 */
export function hrtimerStart(t: number, expires: number, cpu: number): number {
  const b = lockTimerBase(t);
  if (b < 0) return b;
  if (I32[(t + HT_STATE) >> 2] === HRTIMER_STATE_ENQUEUED) removeLocked(b, t);
  const cur = Atomics.load(I32, (t + HT_BASE) >> 2);
  if (cur === cpu || Atomics.load(I32, (b + HB_RUNNING) >> 2) === t) {
    enqueueLocked(b, t, expires);
    unlockBase(b);
    return 0;
  }
  // switch_hrtimer_base(): migrate to the target base, one base lock at a time
  Atomics.store(I32, (t + HT_BASE) >> 2, -1);
  unlockBase(b);
  const nb = hrtimerBase(cpu);
  const err = rawSpinLockIrqsave(nb + HB_LOCK, LC_HRTIMER_BASE);
  if (err !== 0) { Atomics.store(I32, (t + HT_BASE) >> 2, cur); return err; }
  Atomics.store(I32, (t + HT_BASE) >> 2, cpu);
  enqueueLocked(nb, t, expires);
  unlockBase(nb);
  return 0;
}

/**
 * hrtimer_try_to_cancel(): 1 dequeued, 0 was not queued, -1 its callback is running (nothing
 * done), or a negative lock error (< -1).
 */
export function hrtimerTryToCancel(t: number): number {
  const b = lockTimerBase(t);
  if (b < 0) return b;
  let ret = 0;
  if (Atomics.load(I32, (b + HB_RUNNING) >> 2) === t) ret = -1;
  else if (I32[(t + HT_STATE) >> 2] === HRTIMER_STATE_ENQUEUED) { removeLocked(b, t); ret = 1; }
  unlockBase(b);
  return ret;
}

/** hrtimer_active(): queued or its callback running (racy snapshot). */
export function hrtimerActive(t: number): boolean {
  const c = Atomics.load(I32, (t + HT_BASE) >> 2);
  if (c < 0) return true;
  return I32[(t + HT_STATE) >> 2] === HRTIMER_STATE_ENQUEUED || Atomics.load(I32, (hrtimerBase(c) + HB_RUNNING) >> 2) === t;
}

/**
 * hrtimer_cancel(): try_to_cancel until the callback is not running; waits (Atomics.wait on the
 * base's HB_RUNNING, bounded by HRTIMER_CANCEL_WAIT_MS: then a 'lockup' splat and -ETIMEDOUT).
 * Returns 1 if it was queued, else 0. The caller must not be what the callback waits for.
 */
export function hrtimerCancel(t: number): number {
  const deadline = nowMs() + HRTIMER_CANCEL_WAIT_MS;
  for (;;) {
    const r = hrtimerTryToCancel(t);
    if (r >= 0 || r < -1) return r;
    const c = Atomics.load(I32, (t + HT_BASE) >> 2);
    if (c >= 0) schedWaitWord((hrtimerBase(c) + HB_RUNNING) >> 2, t, 1);
    if (nowMs() > deadline) {
      splat('lockup', `hrtimer_cancel(0x${t.toString(16)}): its callback on cpu ${c} ran for more than ${HRTIMER_CANCEL_WAIT_MS} ms`);
      return -ETIMEDOUT;
    }
  }
}

/**
 * hrtimer_run_softirq() on this CPU (softirq context): run every callback due at the start of
 * the run, earliest first, each with the base unlocked and HB_RUNNING set. Timers armed during
 * the run wait for the next one.
 */
export function hrtimerRunSoftirq(invoke: (t: number) => void): void {
  const c = thisCpu;
  if (c < 0 || c >= nrCpus) return;
  if (hrtimerRegion() === 0) return; // no runtime booted the timer bases
  const b = hrtimerBase(c);
  if (Atomics.load(I32, (b + HB_HEAD) >> 2) === 0) return;
  const now = ktimeGetNs();
  if (F64[(b + HB_NEXT) >> 3]! > now) return;
  if (rawSpinLockIrqsave(b + HB_LOCK, LC_HRTIMER_BASE) !== 0) return;
  const gen = I32[(b + HB_GEN) >> 2]! + 1;
  I32[(b + HB_GEN) >> 2] = gen;
  for (;;) {
    const t = I32[(b + HB_HEAD) >> 2]!;
    if (t === 0 || F64[(t + HT_EXPIRES) >> 3]! > now || I32[(t + HT_GEN) >> 2] === gen) break;
    removeLocked(b, t);
    Atomics.store(I32, (b + HB_RUNNING) >> 2, t);
    unlockBase(b);
    // the base lock dropped, irqs back on (raw_spin_unlock_irqrestore in __run_hrtimer): another
    // CPU's callback can be running beside this one from here on (timer_lockup's overlap)
    window(SITE_RUN_CALLBACK);
    invoke(t);
    I32[(b + HB_FIRED) >> 2] = I32[(b + HB_FIRED) >> 2]! + 1;
    if (rawSpinLockIrqsave(b + HB_LOCK, LC_HRTIMER_BASE) !== 0) {
      Atomics.store(I32, (b + HB_RUNNING) >> 2, 0);
      Atomics.notify(I32, (b + HB_RUNNING) >> 2);
      return;
    }
    Atomics.store(I32, (b + HB_RUNNING) >> 2, 0);
    Atomics.notify(I32, (b + HB_RUNNING) >> 2);
  }
  unlockBase(b);
  Atomics.add(I32, (b + HB_RUN_SEQ) >> 2, 1);
  Atomics.notify(I32, (b + HB_RUN_SEQ) >> 2);
}

/** Raise the timer softirq on `cpu` and wake it if idle (any thread). */
function raiseTimerSoftirq(cpu: number): void {
  const p = perCpuBlock(cpu);
  raiseIrq(p >> 2, KIND_SOFTIRQ); // counted: requested (and coalesced when one is pending)
  Atomics.add(I32, (p + PC_WAKE) >> 2, 1);
  Atomics.notify(I32, (p + PC_WAKE) >> 2);
}

function dueCpus(now: number): number[] {
  const out: number[] = [];
  for (let c = 0; c < nrCpus; c++) {
    const b = hrtimerBase(c);
    if (Atomics.load(I32, (b + HB_HEAD) >> 2) !== 0 && F64[(b + HB_NEXT) >> 3]! <= now) out.push(c);
  }
  return out;
}

/**
 * The coordinator's expiry check (main thread): raise the timer softirq where something is due.
 * Returns the ms until the next expiry (real clock), 1 while raised timers are still due, or -1
 * (nothing queued; virtual clock: nothing due until clock.advance).
 */
export function hrtimerPollExpiry(): number {
  if (hrtimerRegion() === 0) return -1;
  const now = ktimeGetNs();
  let next = Infinity;
  let due = false;
  for (let c = 0; c < nrCpus; c++) {
    const b = hrtimerBase(c);
    if (Atomics.load(I32, (b + HB_HEAD) >> 2) === 0) continue;
    const e = F64[(b + HB_NEXT) >> 3]!;
    if (e <= now) { raiseTimerSoftirq(c); due = true; } else if (e < next) next = e;
  }
  const g = hrtimerGlobals();
  let ret: number;
  if (due) ret = 1;
  else if (next === Infinity || virtualClock()) ret = -1;
  else ret = Math.max(0, Math.floor((next - now) / 1e6));
  F64[(g + HG_COORD_NEXT) >> 3] = virtualClock() ? Infinity : ret < 0 ? now + 250e6 : now + ret * 1e6;
  return ret;
}

/**
 * Main thread (clock.advance): fire everything due now, round after round (a callback may arm a
 * timer that is due at once), at most `maxRounds`; each round waits (bounded) for the raised
 * CPUs' softirq runs. Rejects naming a CPU that did not run its timer softirq within `timeoutMs`.
 */
export async function hrtimerFireDue(maxRounds = 64, timeoutMs = 10_000): Promise<number> {
  let fired = 0;
  for (let round = 0; round < maxRounds; round++) {
    const cpus = dueCpus(ktimeGetNs());
    if (cpus.length === 0) return fired;
    const waits = cpus.map((c) => {
      const si = (hrtimerBase(c) + HB_RUN_SEQ) >> 2;
      const seen = Atomics.load(I32, si);
      raiseTimerSoftirq(c);
      return { c, si, seen };
    });
    const deadline = nowMs() + timeoutMs;
    for (const w of waits) {
      while (Atomics.load(I32, w.si) === w.seen) {
        const left = deadline - nowMs();
        if (left <= 0) throw new Error(`clock.advance: cpu ${w.c} did not run its timer softirq within ${timeoutMs} ms`);
        const r = Atomics.waitAsync(I32, w.si, w.seen, Math.min(left, 50));
        if (r.async) await r.value;
        if (Atomics.load(I32, w.si) === w.seen) raiseTimerSoftirq(w.c);
      }
    }
    fired += cpus.length;
  }
  return fired;
}

export interface HrtimerBaseStats { readonly cpu: number; readonly queued: number; readonly fired: number; readonly runs: number }

/** Per-CPU base counters (main thread; racy while CPUs run). */
export function hrtimerStats(): HrtimerBaseStats[] {
  const out: HrtimerBaseStats[] = [];
  if (hrtimerRegion() === 0) return out;
  for (let c = 0; c < nrCpus; c++) {
    const b = hrtimerBase(c);
    out.push({ cpu: c, queued: I32[(b + HB_QUEUED) >> 2]!, fired: I32[(b + HB_FIRED) >> 2]!, runs: Atomics.load(I32, (b + HB_RUN_SEQ) >> 2) });
  }
  return out;
}

/** Invariants of quiescent bases: lock words 0, queues well formed and sorted, counts right. */
export function hrtimerCheck(): string[] {
  const out: string[] = [];
  if (hrtimerRegion() === 0) return out;
  for (let c = 0; c < nrCpuIds; c++) {
    const b = hrtimerBase(c);
    if (Atomics.load(I32, (b + HB_LOCK) >> 2) !== 0) out.push(`hrtimer base ${c}: lock word is not 0`);
    if (Atomics.load(I32, (b + HB_RUNNING) >> 2) !== 0) out.push(`hrtimer base ${c}: a callback is marked running`);
    let n = I32[(b + HB_HEAD) >> 2]!;
    let prev = 0;
    let cnt = 0;
    let last = -Infinity;
    while (n !== 0 && cnt <= 1_000_000) {
      if (I32[(n + HT_PREV) >> 2] !== prev) out.push(`hrtimer base ${c}: bad prev link at 0x${n.toString(16)}`);
      if (I32[(n + HT_BASE) >> 2] !== c) out.push(`hrtimer base ${c}: timer 0x${n.toString(16)} names base ${I32[(n + HT_BASE) >> 2]}`);
      const e = F64[(n + HT_EXPIRES) >> 3]!;
      if (e < last) out.push(`hrtimer base ${c}: queue not sorted at 0x${n.toString(16)}`);
      last = e;
      prev = n;
      n = I32[(n + HT_NEXT) >> 2]!;
      cnt++;
    }
    if (cnt !== I32[(b + HB_QUEUED) >> 2]) out.push(`hrtimer base ${c}: ${cnt} timers queued, counter says ${I32[(b + HB_QUEUED) >> 2]}`);
    const head = I32[(b + HB_HEAD) >> 2]!;
    const nx = F64[(b + HB_NEXT) >> 3]!;
    if (head === 0 ? nx !== Infinity : nx !== F64[(head + HT_EXPIRES) >> 3]) out.push(`hrtimer base ${c}: next expiry ${nx} does not match its head`);
  }
  return out;
}
