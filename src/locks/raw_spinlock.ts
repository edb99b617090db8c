/*
 * raw_spinlock.ts — raw_spinlock_t and spinlock_t on Atomics, with the failure behaviour of the
 * kernel's resilient queued spinlock (rqspinlock, 2025): acquisition can fail.
 *
 * Lock word (one i32 in kernel memory):
 *   0                       free
 *   bits 0..7   owner cpu + 1
 *   bits 8..10  owner context (CTX_*)
 *   bit  30     LOCK_WAITERS: some thread sleeps in Atomics.wait on the word; unlock must notify
 *
 * Acquire: CAS 0 -> owner. On contention: if the owner is this CPU it is an AA deadlock (an
 * interrupt re-taking a lock its own CPU holds): splat 'deadlock', return -EDEADLK. Otherwise spin
 * SPIN_LIMIT times, then set LOCK_WAITERS and Atomics.wait in bounded slices (the 2-core machine
 * oversubscribes: a spinner must not burn the core its descheduled holder needs). While waiting,
 * if the owner CPU is itself waiting for a lock this CPU holds, that is AB-BA: -EDEADLK.
 *
 * Timeout: a stuck holder, not a descheduled one. The kernel's 250 ms (HDR_LOCK_TIMEOUT_MS)
 * presumes a holder that runs; here a holder's thread can be off-core for long on an
 * oversubscribed machine. Once one owner has held the lock for lockTimeoutMs of our wait, we look
 * at it: the wait is cut with splat 'lock_timeout' and -ETIMEDOUT only when
 *   - the owner CPU is offline (the watchdog declared it stuck, or its thread died), or
 *   - the owner waits for a lock whose owner waits ... for a lock this CPU holds (a wait cycle of
 *     three or more CPUs: rqspinlock detects AA and AB-BA, and times out on longer cycles), or
 *   - the CPU at the end of the owner's wait chain has made no progress (PC_PROGRESS, bumped by
 *     the CPU loop at every program run and idle turn) for the watchdog period: it is spinning
 *     inside its critical section (an endless loop under a lock), or
 *   - one owner held it continuously for HOLD_CAP_FACTOR lock timeouts (and at least twice the
 *     watchdog period) while making progress: a lock leaked across a quiescent state.
 * An owner that is merely not running (descheduled, or sleeping) keeps progressing once it runs,
 * and the wait goes on. A change of owner restarts the clock (the lock is not stuck, we are
 * unlucky: this CAS lock is not FIFO like the kernel's qspinlock).
 *
 * Every held lock is recorded in this CPU's held-lock table (per-CPU line 1), LIFO: the table is
 * rqspinlock's AA table, lockdep's held stack, the list printed in splats, and where the
 * _irqsave variants keep the saved irq flag. Each lock has exactly one unlock site in its user.
 *
 * spinlock_t (spinLock*): the raw lock on !RT. On PREEMPT_RT it is a sleeping lock: it does not
 * spin and does not disable irqs, and taking it from NMI/hardirq, with irqs off or under a raw
 * lock is "sleeping function called from invalid context" (splat; the lock is still taken).
 *
 * Lockdep (FLAG_LOCKDEP): on nested acquisition the pair (held class -> new class) is recorded in
 * a shared bit matrix; seeing the reverse pair anywhere is a 'lock_order' splat, once per pair.
 */
import { I32, U8, nowMs, lockTimeoutMs, watchdogMs, hdrFlags, nrCpuIds } from '../mem/arena.js';
import { pcpuI, thisCpu, perCpuBlock } from '../mem/this_cpu.js';
import {
  PC_CTX_MASK, PC_HELD_COUNT, PC_HELD_LOCK, PC_HELD_CLASS, PC_HELD_MAX, PC_IRQS_OFF,
  PC_WAIT_LOCK, HDR_LOCKDEP_BASE, LOCKDEP_CLASSES, LOCKDEP_BYTES, FLAG_LOCKDEP, FLAG_PREEMPT_RT,
  HELD_CLASS_MASK, HELD_IRQSAVE, HELD_IRQ_WAS_OFF, HELD_SLEEPING, HELD_CTX_SHIFT, PC_OFFLINE,
  PC_PROGRESS,
} from '../mem/layout.js';
import { EDEADLK, ETIMEDOUT } from '../errno.js';
import { splat } from '../debug/splat.js';
import { lockClassName } from './lock_classes.js';
import { rawHeld } from '../cpu/context.js';
import { schedHolding, schedWaitWord } from '../cpu/sched.js';

export const LOCK_WAITERS = 1 << 30;
const OWNER_MASK = 0x7ff;
const SPIN_LIMIT = 100;
const WAIT_SLICE_MS = 20;
const HOLD_CAP_FACTOR = 20;


const CTX_I = PC_CTX_MASK >> 2;
const HELD_N_I = PC_HELD_COUNT >> 2;
const HELD_L_I = PC_HELD_LOCK >> 2;
const HELD_C_I = PC_HELD_CLASS >> 2;
const IRQS_I = PC_IRQS_OFF >> 2;
const WAIT_I = PC_WAIT_LOCK >> 2;

function curCtx(): number {
  return 31 - Math.clz32(I32[pcpuI + CTX_I]!);
}

function pushHeld(lock: number, clsBits: number, ctx: number): void {
  const n = I32[pcpuI + HELD_N_I]!;
  if (n > 0 && (hdrFlags & FLAG_LOCKDEP) !== 0) lockdepCheck(clsBits & HELD_CLASS_MASK, n, ctx);
  if (n < PC_HELD_MAX) {
    I32[pcpuI + HELD_L_I + n] = lock;
    I32[pcpuI + HELD_C_I + n] = clsBits | (ctx << HELD_CTX_SHIFT);
  }
  I32[pcpuI + HELD_N_I] = n + 1;
}

/**
 * Remove `lock` from the held table (normally the top); returns its class bits or -1. The LIFO
 * case is kept small enough for V8 to inline into every unlock; the rest is popHeldSlow.
 */
function popHeld(lock: number): number {
  const n = I32[pcpuI + HELD_N_I]!;
  if (n > 0 && n <= PC_HELD_MAX && I32[pcpuI + HELD_L_I + n - 1] === lock) { // LIFO: the common case
    I32[pcpuI + HELD_N_I] = n - 1;
    return I32[pcpuI + HELD_C_I + n - 1]!;
  }
  return popHeldSlow(lock, n);
}

/** popHeld out of order (or past the table's end): find `lock` and close the gap. */
function popHeldSlow(lock: number, n: number): number {
  const top = Math.min(n, PC_HELD_MAX) - 1;
  for (let i = top; i >= 0; i--) {
    if (I32[pcpuI + HELD_L_I + i] === lock) {
      const bits = I32[pcpuI + HELD_C_I + i]!;
      for (let j = i; j < top; j++) {
        I32[pcpuI + HELD_L_I + j] = I32[pcpuI + HELD_L_I + j + 1]!;
        I32[pcpuI + HELD_C_I + j] = I32[pcpuI + HELD_C_I + j + 1]!;
      }
      I32[pcpuI + HELD_N_I] = n - 1;
      return bits;
    }
  }
  if (n > PC_HELD_MAX) { I32[pcpuI + HELD_N_I] = n - 1; return 0; }
  return -1;
}

/** True when this CPU holds `lock` (any context). */
export function lockHeldByMe(lock: number): boolean {
  const n = Math.min(I32[pcpuI + HELD_N_I]!, PC_HELD_MAX);
  for (let i = 0; i < n; i++) if (I32[pcpuI + HELD_L_I + i] === lock) return true;
  return false;
}

export function heldLockCount(): number { return I32[pcpuI + HELD_N_I]!; }

/**
 * Record "held -> cls" for every lock held in the same context (an interrupt's locks do not depend
 * on the locks of the context it interrupted: lockdep keeps chains per irq context), and report the
 * reverse order if it was ever seen.
 */
function lockdepCheck(cls: number, n: number, ctx: number): void {
  if (cls >= LOCKDEP_CLASSES) return;
  const base = I32[HDR_LOCKDEP_BASE >> 2]!;
  const lim = Math.min(n, PC_HELD_MAX);
  for (let i = 0; i < lim; i++) {
    const bits = I32[pcpuI + HELD_C_I + i]!;
    if (((bits >> HELD_CTX_SHIFT) & 3) !== ctx) continue;
    const h = bits & HELD_CLASS_MASK;
    if (h === cls || h >= LOCKDEP_CLASSES) continue;
    const fwd = h * LOCKDEP_CLASSES + cls;
    const rev = cls * LOCKDEP_CLASSES + h;
    if ((U8[base + (fwd >> 3)]! & (1 << (fwd & 7))) === 0) Atomics.or(U8, base + (fwd >> 3), 1 << (fwd & 7));
    if ((U8[base + (rev >> 3)]! & (1 << (rev & 7))) !== 0) {
      const key = Math.min(fwd, rev);
      const rb = base + LOCKDEP_BYTES + (key >> 3);
      const old = Atomics.or(U8, rb, 1 << (key & 7));
      if ((old & (1 << (key & 7))) === 0) {
        splat('lock_order', `possible circular locking dependency: ${lockClassName(h)} -> ${lockClassName(cls)} here, ${lockClassName(cls)} -> ${lockClassName(h)} seen before`);
      }
    }
  }
}

/** Is the CPU owning `word` waiting for a lock this CPU holds? (AB-BA) */
function abbaWith(word: number): boolean {
  const ownerCpu = (word & 0xff) - 1;
  if (ownerCpu < 0 || ownerCpu >= nrCpuIds) return false;
  const want = Atomics.load(I32, (perCpuBlock(ownerCpu) + PC_WAIT_LOCK) >> 2);
  return want !== 0 && lockHeldByMe(want);
}

/**
 * Contended acquisition. `spin` false for sleeping locks (no busy wait). Returns 0 with the lock
 * owned by `me`, or -EDEADLK / -ETIMEDOUT after a splat.
 */
function lockSlow(lock: number, me: number, spin: boolean, what: string): number {
  const idx = lock >> 2;
  let v = Atomics.load(I32, idx);
  if (v !== 0 && ((v & 0xff) === thisCpu + 1)) {
    splat('deadlock', `AA deadlock: ${what} at 0x${lock.toString(16)} already held by this CPU (owner context ${(v >> 8) & 7})`);
    return -EDEADLK;
  }
  if (spin && !schedHolding()) { // under a schedule nobody else runs while we spin: wait at once
    for (let i = 0; i < SPIN_LIMIT; i++) {
      v = Atomics.load(I32, idx);
      if (v === 0 && Atomics.compareExchange(I32, idx, 0, me) === 0) return 0;
    }
  }
  I32[pcpuI + WAIT_I] = lock;
  Atomics.store(I32, pcpuI + WAIT_I, lock);
  // The owner we are waiting for, since when, and the progress of the end of its wait chain.
  let owner = -1, ownerSince = 0;
  endCpu = -1;
  try {
    for (;;) {
      v = Atomics.load(I32, idx);
      if (v === 0) {
        // We may have been one of several waiters: keep the bit so our unlock wakes the rest.
        if (Atomics.compareExchange(I32, idx, 0, me | LOCK_WAITERS) === 0) return 0;
        continue;
      }
      if ((v & LOCK_WAITERS) === 0 && Atomics.compareExchange(I32, idx, v, v | LOCK_WAITERS) !== v) continue;
      // Re-read the owner after looking at its wait: it may have released this lock and started
      // waiting for one of ours meanwhile (a stale `v` made that a false AB-BA).
      if (abbaWith(v) && (Atomics.load(I32, idx) & OWNER_MASK) === (v & OWNER_MASK)) {
        splat('deadlock', `ABBA deadlock: ${what} at 0x${lock.toString(16)} is held by cpu ${(v & 0xff) - 1}, which waits for a lock this CPU holds`);
        return -EDEADLK;
      }
      const now = nowMs();
      if ((v & OWNER_MASK) !== owner) { owner = v & OWNER_MASK; ownerSince = now; endCpu = -1; }
      const held = now - ownerSince;
      if (held >= lockTimeoutMs) {
        const why = holderStuck(v, now, held);
        if (why !== null) {
          splat('lock_timeout', `${what} at 0x${lock.toString(16)}: waited ${held.toFixed(0)} ms for cpu ${(v & 0xff) - 1} (owner word 0x${(v & OWNER_MASK).toString(16)}): ${why}`);
          return -ETIMEDOUT;
        }
      }
      schedWaitWord(idx, v | LOCK_WAITERS, WAIT_SLICE_MS);
    }
  } finally {
    Atomics.store(I32, pcpuI + WAIT_I, 0);
  }
}

// The end of the wait chain being watched by this thread's lockSlow (one wait at a time per
// thread: no window, hence no nested wait, inside lockSlow), and since when it stood still.
let endCpu = -1, endProgress = 0, endSince = 0;

/** Why the owner of `word` will not release it (a reason for -ETIMEDOUT), or null: keep waiting. */
function holderStuck(word: number, now: number, held: number): string | null {
  let c = (word & 0xff) - 1;
  if (c < 0 || c >= nrCpuIds) return null;
  if (Atomics.load(I32, (perCpuBlock(c) + PC_OFFLINE) >> 2) !== 0) return `cpu ${c} is offline (stuck or dead)`;
  // Follow the wait chain: c waits for a lock owned by c2, which waits ...
  for (let hops = 0; hops < nrCpuIds; hops++) {
    const want = Atomics.load(I32, (perCpuBlock(c) + PC_WAIT_LOCK) >> 2);
    if (want === 0) break;
    const next = (Atomics.load(I32, want >> 2) & 0xff) - 1;
    if (next < 0 || next >= nrCpuIds) break;
    if (next === thisCpu) return `a wait cycle of ${hops + 2} CPUs through cpu ${c}`;
    if (Atomics.load(I32, (perCpuBlock(next) + PC_OFFLINE) >> 2) !== 0) return `cpu ${c} waits for cpu ${next}, which is offline (stuck or dead)`;
    c = next;
  }
  const progress = Atomics.load(I32, (perCpuBlock(c) + PC_PROGRESS) >> 2);
  if (c !== endCpu || progress !== endProgress) { endCpu = c; endProgress = progress; endSince = now; }
  if (now - endSince >= watchdogMs) return `cpu ${c} made no progress for ${(now - endSince).toFixed(0)} ms (stuck inside its critical section)`;
  if (held >= Math.max(HOLD_CAP_FACTOR * lockTimeoutMs, 2 * watchdogMs)) return `one owner held it for ${held.toFixed(0)} ms while making progress (a lock leaked across a quiescent state)`;
  return null;
}

/** raw_spin_lock(): 0, or -EDEADLK / -ETIMEDOUT (with a splat). Does not touch irqs. */
export function rawSpinLock(lock: number, cls: number): number {
  const ctx = curCtx();
  const me = (thisCpu + 1) | (ctx << 8);
  if (Atomics.compareExchange(I32, lock >> 2, 0, me) !== 0) {
    const err = lockSlow(lock, me, true, lockClassName(cls));
    if (err !== 0) return err;
  }
  pushHeld(lock, cls, ctx);
  return 0;
}

/** raw_spin_trylock(): true when taken. Never waits, never splats (the NMI-safe way in). */
export function rawSpinTrylock(lock: number, cls: number): boolean {
  const ctx = curCtx();
  if (Atomics.compareExchange(I32, lock >> 2, 0, (thisCpu + 1) | (ctx << 8)) !== 0) return false;
  pushHeld(lock, cls, ctx);
  return true;
}

function release(lock: number): void {
  const old = Atomics.exchange(I32, lock >> 2, 0);
  if ((old & 0xff) !== thisCpu + 1) splat('warn', `unlock of a lock not held by this CPU at 0x${lock.toString(16)} (word 0x${old.toString(16)})`);
  if ((old & LOCK_WAITERS) !== 0) Atomics.notify(I32, lock >> 2, 1);
}

export function rawSpinUnlock(lock: number): void {
  if (popHeld(lock) < 0) splat('warn', `raw_spin_unlock of 0x${lock.toString(16)} not in the held-lock table`);
  release(lock);
}

/** raw_spin_lock_irqsave(): irqs off, then lock; on failure irqs are restored. */
export function rawSpinLockIrqsave(lock: number, cls: number): number {
  const was = I32[pcpuI + IRQS_I]!;
  I32[pcpuI + IRQS_I] = 1;
  const ctx = curCtx();
  const me = (thisCpu + 1) | (ctx << 8);
  if (Atomics.compareExchange(I32, lock >> 2, 0, me) !== 0) {
    const err = lockSlow(lock, me, true, lockClassName(cls));
    if (err !== 0) { I32[pcpuI + IRQS_I] = was; return err; }
  }
  pushHeld(lock, cls | HELD_IRQSAVE | (was !== 0 ? HELD_IRQ_WAS_OFF : 0), ctx);
  return 0;
}

/** raw_spin_trylock_irqsave(): true when taken (irqs then off until the unlock). */
export function rawSpinTrylockIrqsave(lock: number, cls: number): boolean {
  const was = I32[pcpuI + IRQS_I]!;
  const ctx = curCtx();
  if (Atomics.compareExchange(I32, lock >> 2, 0, (thisCpu + 1) | (ctx << 8)) !== 0) return false;
  I32[pcpuI + IRQS_I] = 1;
  pushHeld(lock, cls | HELD_IRQSAVE | (was !== 0 ? HELD_IRQ_WAS_OFF : 0), ctx);
  return true;
}

export function rawSpinUnlockIrqrestore(lock: number): void {
  const bits = popHeld(lock);
  if (bits < 0) splat('warn', `raw_spin_unlock_irqrestore of 0x${lock.toString(16)} not in the held-lock table`);
  release(lock);
  if (bits >= 0 && (bits & HELD_IRQSAVE) !== 0) I32[pcpuI + IRQS_I] = (bits & HELD_IRQ_WAS_OFF) !== 0 ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// spinlock_t: raw on !RT, sleeping on RT.

function rt(): boolean { return (hdrFlags & FLAG_PREEMPT_RT) !== 0; }

/** might_sleep(): on RT, report a sleep from truly atomic context. Returns true if it splatted. */
export function mightSleep(what: string): boolean {
  if (!rt()) return false;
  const mask = I32[pcpuI + CTX_I]!;
  const reason = (mask & 8) !== 0 ? 'in NMI' : (mask & 4) !== 0 ? 'in hardirq'
    : I32[pcpuI + IRQS_I] !== 0 ? 'with irqs disabled' : rawHeld() > 0 ? 'under a raw spinlock' : '';
  if (reason === '') return false;
  splat('sleeping_in_atomic', `BUG: sleeping function called from invalid context: ${what} ${reason}`);
  return true;
}

/** spin_lock_irqsave() on a spinlock_t. On RT: a sleeping lock; irqs stay as they are. */
export function spinLockIrqsave(lock: number, cls: number): number {
  if (!rt()) return rawSpinLockIrqsave(lock, cls);
  mightSleep(`spin_lock(${lockClassName(cls)})`);
  const ctx = curCtx();
  const me = (thisCpu + 1) | (ctx << 8);
  if (Atomics.compareExchange(I32, lock >> 2, 0, me) !== 0) {
    const err = lockSlow(lock, me, false, lockClassName(cls));
    if (err !== 0) return err;
  }
  pushHeld(lock, cls | HELD_SLEEPING, ctx);
  return 0;
}

export function spinUnlockIrqrestore(lock: number): void {
  if (!rt()) { rawSpinUnlockIrqrestore(lock); return; }
  if (popHeld(lock) < 0) splat('warn', `spin_unlock of 0x${lock.toString(16)} not in the held-lock table`);
  release(lock);
}

/** Read a lock word (tests and check(): every lock word must end at 0). */
export function lockWord(lock: number): number { return Atomics.load(I32, lock >> 2); }

/**
 * Release every lock this CPU took after the held-lock table had `toCount` entries, newest first
 * (program abort: "unwind what it owns"). Returns how many were released.
 */
export function unwindHeldLocks(toCount: number): number {
  let n = 0;
  for (;;) {
    const cnt = I32[pcpuI + HELD_N_I]!;
    if (cnt <= toCount || cnt > PC_HELD_MAX) return n;
    const lock = I32[pcpuI + HELD_L_I + cnt - 1]!;
    const bits = I32[pcpuI + HELD_C_I + cnt - 1]!;
    if ((bits & HELD_SLEEPING) !== 0) spinUnlockIrqrestore(lock);
    else if ((bits & HELD_IRQSAVE) !== 0) rawSpinUnlockIrqrestore(lock);
    else rawSpinUnlock(lock);
    n++;
  }
}
