/*
 * res_spinlock.ts — bpf_res_spin_lock(): the BPF kfuncs over the kernel's resilient queued
 * spinlock (rqspinlock, kernel/bpf/rqspinlock.c, 2025). Unlike bpf_spin_lock a program may hold
 * several of them, and acquisition can FAIL: 0, -EDEADLK (AA or AB-BA detected) or -ETIMEDOUT
 * (RES_DEF_TIMEOUT = lockTimeoutMs, 250 ms by default). Both failures are ordinary return values
 * that programs must handle: no splat, only the per-CPU counters below.
 *
 * Lock word (one i32 in kernel memory, inside a map value):
 *   0                      free
 *   bits 0..7   owner cpu + 1       (as raw_spinlock.ts)
 *   bits 8..10  owner context (CTX_*)
 *   bit  30     RES_WAITERS: a thread sleeps in Atomics.wait on the word; the unlock notifies.
 * A test-and-set lock, not the kernel's MCS queue: a waiter spins RES_SPIN_LIMIT loads, then
 * sleeps in RES_WAIT_SLICE_MS slices (a 2-core machine oversubscribes its CPUs: a waiter must
 * not burn the core its descheduled holder needs). Between slices it passes the interrupt window
 * 'res_spin_lock.wait' (NMIs, and hardirqs when irqs are on, land while a CPU spins, as in the
 * kernel); all wait state is local, so a nested wait from an interrupt is safe.
 *
 * Held-lock table (rqspinlock_held_locks), per CPU, owner-written, read by every CPU (AB-BA):
 * LIFO. The lock being acquired is pushed as the newest entry BEFORE waiting (grab_held_lock_entry)
 * and popped again if acquisition fails. Only the first RES_NR_HELD = 31 entries are "recorded"
 * (visible to deadlock detection); deeper locks still count (RES_PC_COUNT exceeds 31) but are
 * invisible to it, so re-taking one is not seen as AA and ends in -ETIMEDOUT — exactly what the
 * kernel selftest res_spin_lock_test_held_lock_max asserts. Deeper entries (up to
 * RES_MAX_TRACKED) are kept in a shadow list only so unlock can check LIFO order and the abort
 * path can release them; nothing else reads the shadow.
 *
 * Deadlock detection (while waiting; "not exhaustive, the timeout is the last defence"):
 *   AA    at once: the lock is among this CPU's recorded entries below the one being acquired
 *         (the held table is per CPU, shared by its contexts: an NMI re-taking a lock of the
 *         task it interrupted is AA).
 *   AB-BA at once, then about every RES_ABBA_PERIOD_MS: the lock's owner (from the lock word) is
 *         another CPU whose newest recorded entry — the lock it is waiting for — is a lock this
 *         CPU holds, and whose older entries include the lock we wait for. Owners with fewer than
 *         2 or more than RES_NR_HELD entries are skipped (check_deadlock_ABBA). The picture is
 *         re-read after the scan (count, newest entry, owner word) so a stale read is not taken
 *         for a deadlock.
 *   timeout: lockTimeoutMs of waiting without the lock making progress. Progress = a release we
 *         observed (the word seen free, a different owner, a notify waking us): the kernel's
 *         RES_DEF_TIMEOUT is per critical section at the head of a FIFO queue, and this TAS lock
 *         is not FIFO, so a waiter that merely lost a race restarts its clock (bounded: a wait
 *         ends after RES_WAIT_CAP_FACTOR timeouts whatever it saw). A holder that is
 *         descheduled, sleeping or stuck makes no progress: its waiters DO time out (no relaxing
 *         here, unlike raw_spinlock.ts: -ETIMEDOUT is a documented result of this kfunc).
 *   While asleep on the word a waiter publishes the lock in PC_WAIT_LOCK (line 1, the lock
 *   layer's "waiting for" word: the watchdog does not count a waiting CPU as stuck, and
 *   raw_spinlock.ts follows wait chains through it); it is cleared around the interrupt window so
 *   a handler looping there is still caught.
 *
 * Unlock is strictly LIFO (the verifier's "bpf_res_spin_unlock cannot be out of order"): anything
 * but the newest held res lock of this CPU, taken with the matching variant, is -EINVAL and
 * releases nothing. _irqsave disables local irqs before locking and saves the previous flag with
 * the entry; a failed acquisition restores it at once; _irqrestore restores it.
 *
 * Per-CPU layout (byte offsets in the per-CPU block; the PC_MOD_BASE region 640..895 is this
 * module's; every word owner-written):
 *   640         RES_PC_COUNT    held count (including the entry being acquired while waiting)
 *   644..767    RES_PC_LOCKS    u32[31] recorded lock pointers, depth 0..30
 *   768..783    RES_PC_IRQ      bit masks, bit d for depth d (d < 64): [0..1] taken with _irqsave
 *                               (depths 0..31, 32..63), [2..3] irqs were already off then
 *   784..879    RES_PC_SHADOW   u32[24] lock pointers of depths 31..54 (unlock/unwind only)
 *   880..895    RES_PC_STATS    i32 acquired, deadlocksAA, deadlocksABBA, timeouts
 */
import { I32, nowMs, lockTimeoutMs, nrCpuIds, memoryBytes } from '../mem/arena.js';
import { pcpuI, thisCpu, perCpuBlock } from '../mem/this_cpu.js';
import { PC_IRQS_OFF, PC_WAIT_LOCK } from '../mem/layout.js';
import { currentContext } from '../cpu/context.js';
import { window } from '../cpu/window.js';
import { schedHolding, schedWaitWord } from '../cpu/sched.js';
import { defineSite } from '../cpu/sites.js';
import { EDEADLK, ETIMEDOUT, EINVAL } from '../errno.js';
import { splat } from '../debug/splat.js';

/** Entries in the per-CPU held table visible to deadlock detection (RES_NR_HELD). */
export const RES_NR_HELD = 31;
/** Depths whose lock pointer is kept at all (recorded + shadow); deeper locks cannot be unwound. */
export const RES_MAX_TRACKED = 55;

export const RES_PC_COUNT = 640;
export const RES_PC_LOCKS = 644;
export const RES_PC_IRQ = 768;
export const RES_PC_SHADOW = 784;
export const RES_PC_STATS = 880;

/** Lock word bit: someone sleeps on the word. */
export const RES_WAITERS = 1 << 30;
const OWNER_MASK = 0x7ff;
const RES_SPIN_LIMIT = 100;
const RES_WAIT_SLICE_MS = 1;
const RES_ABBA_PERIOD_MS = 1;
/** A wait that keeps seeing progress (others served before us) still ends after this many timeouts. */
const RES_WAIT_CAP_FACTOR = 8;

const COUNT_I = RES_PC_COUNT >> 2;
const LOCKS_I = RES_PC_LOCKS >> 2;
const IRQ_I = RES_PC_IRQ >> 2;
const SHADOW_I = RES_PC_SHADOW >> 2;
const ST_ACQ = RES_PC_STATS >> 2;
const ST_AA = ST_ACQ + 1;
const ST_ABBA = ST_ACQ + 2;
const ST_TIMEOUT = ST_ACQ + 3;
const IRQS_I = PC_IRQS_OFF >> 2;
const WAIT_I = PC_WAIT_LOCK >> 2;

// entry flag bits (as passed around; stored split into the RES_PC_IRQ masks)
const F_IRQSAVE = 1;
const F_WAS_OFF = 2;

const WAIT_SITE = defineSite('res_spin_lock.wait');

function bump(i: number): void { I32[pcpuI + i] = I32[pcpuI + i]! + 1; }

function checkLockPtr(lock: number, what: string): void {
  if ((lock >>> 0) !== lock || lock === 0 || (lock & 3) !== 0 || lock + 4 > memoryBytes) {
    // the verifier would refuse the program: the helper throws, the program aborts
    // a program's argument may be anything at run time (undefined, a string): describe it without throwing
    const shown = typeof lock === 'number' ? `0x${lock.toString(16)}` : String(lock as unknown);
    throw new TypeError(`${what}: ${shown} is not a pointer to a bpf_res_spin_lock`);
  }
}

/** Lock pointer stored for depth d of this CPU's table, or 0 when not tracked. */
function entryAt(d: number): number {
  if (d < RES_NR_HELD) return I32[pcpuI + LOCKS_I + d]!;
  if (d < RES_MAX_TRACKED) return I32[pcpuI + SHADOW_I + d - RES_NR_HELD]!;
  return 0;
}

function entryFlags(d: number): number {
  if (d >= 64) return 0;
  const w = d >> 5, bit = 1 << (d & 31);
  return ((I32[pcpuI + IRQ_I + w]! & bit) !== 0 ? F_IRQSAVE : 0)
    | ((I32[pcpuI + IRQ_I + 2 + w]! & bit) !== 0 ? F_WAS_OFF : 0);
}

/** Push `lock` at depth `d` (= the current count); returns nothing. Owner only. */
function push(lock: number, d: number, flags: number): void {
  if (d < RES_NR_HELD) Atomics.store(I32, pcpuI + LOCKS_I + d, lock);
  else if (d < RES_MAX_TRACKED) I32[pcpuI + SHADOW_I + d - RES_NR_HELD] = lock;
  if (d < 64) {
    const w = d >> 5, bit = 1 << (d & 31);
    const a = pcpuI + IRQ_I + w, b = pcpuI + IRQ_I + 2 + w;
    I32[a] = (flags & F_IRQSAVE) !== 0 ? I32[a]! | bit : I32[a]! & ~bit;
    I32[b] = (flags & F_WAS_OFF) !== 0 ? I32[b]! | bit : I32[b]! & ~bit;
  }
  // entry first, count last: a remote reader never sees a count covering an unwritten entry
  Atomics.store(I32, pcpuI + COUNT_I, d + 1);
}

/** Pop the entry at depth `d` (the newest): clear it first, then the count. */
function pop(d: number): void {
  if (d < RES_NR_HELD) Atomics.store(I32, pcpuI + LOCKS_I + d, 0);
  else if (d < RES_MAX_TRACKED) I32[pcpuI + SHADOW_I + d - RES_NR_HELD] = 0;
  Atomics.store(I32, pcpuI + COUNT_I, d);
}

/** Is `lock` among the first `n` recorded entries of the table at int index `base`? */
function inRecorded(base: number, lock: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (Atomics.load(I32, base + LOCKS_I + i) === lock) return true;
  return false;
}

/** Number of recorded entries below depth d, i.e. locks this CPU holds while acquiring at d. */
function heldBelow(d: number): number { return d < RES_NR_HELD ? d : RES_NR_HELD; }

/**
 * check_deadlock_ABBA, with the owner taken from the lock word: does the owner of `lock` (word
 * `v`) wait for a lock this CPU holds while it holds `lock`?
 */
function abba(lock: number, v: number, d: number): boolean {
  const o = (v & 0xff) - 1;
  if (o < 0 || o >= nrCpuIds || o === thisCpu) return false;
  const ob = perCpuBlock(o) >> 2;
  const oc = Atomics.load(I32, ob + COUNT_I);
  if (oc < 2 || oc > RES_NR_HELD) return false;
  const want = Atomics.load(I32, ob + LOCKS_I + oc - 1);
  if (want === 0 || want === lock) return false;
  if (!inRecorded(pcpuI, want, heldBelow(d))) return false;
  if (!inRecorded(ob, lock, oc - 1)) return false;
  // the same picture still: the owner still waits for `want` and still owns `lock`
  return Atomics.load(I32, ob + COUNT_I) === oc
    && Atomics.load(I32, ob + LOCKS_I + oc - 1) === want
    && (Atomics.load(I32, lock >> 2) & OWNER_MASK) === (v & OWNER_MASK);
}

/**
 * Contended acquisition; the entry is already pushed at depth `d`. Returns 0 owning the lock, or
 * -EDEADLK / -ETIMEDOUT (the caller pops the entry).
 */
function lockSlow(lock: number, me: number, d: number): number {
  const idx = lock >> 2;
  // check_deadlock_AA: before any waiting
  if (inRecorded(pcpuI, lock, heldBelow(d))) { bump(ST_AA); return -EDEADLK; }
  for (let i = 0; i < RES_SPIN_LIMIT; i++) {
    if (Atomics.load(I32, idx) === 0 && Atomics.compareExchange(I32, idx, 0, me) === 0) return 0;
  }
  const start = nowMs();
  const cap = RES_WAIT_CAP_FACTOR * lockTimeoutMs;
  let since = start;
  let lastAbba = -Infinity;
  let owner = -1;
  const waitI = pcpuI + WAIT_I;
  const prevWait = Atomics.load(I32, waitI);
  try {
    for (;;) {
      const v = Atomics.load(I32, idx);
      if (v === 0) {
        // keep the waiters bit: other sleepers may remain, our unlock must wake them
        if (Atomics.compareExchange(I32, idx, 0, me | RES_WAITERS) === 0) return 0;
        since = nowMs();
        continue;
      }
      if ((v & RES_WAITERS) === 0 && Atomics.compareExchange(I32, idx, v, v | RES_WAITERS) !== v) continue;
      const now = nowMs();
      if ((v & OWNER_MASK) !== owner) { owner = v & OWNER_MASK; since = now; }
      if (now - lastAbba >= RES_ABBA_PERIOD_MS) {
        lastAbba = now;
        if (abba(lock, v, d)) { bump(ST_ABBA); return -EDEADLK; }
      }
      if (now - since >= lockTimeoutMs || now - start >= cap) { bump(ST_TIMEOUT); return -ETIMEDOUT; }
      // PC_WAIT_LOCK only while asleep here: not while an interrupt handler runs in the window
      Atomics.store(I32, waitI, lock);
      if (schedHolding()) schedWaitWord(idx, v | RES_WAITERS, RES_WAIT_SLICE_MS);
      else if (Atomics.wait(I32, idx, v | RES_WAITERS, RES_WAIT_SLICE_MS) === 'ok') since = nowMs();
      Atomics.store(I32, waitI, prevWait);
      window(WAIT_SITE);
    }
  } finally {
    Atomics.store(I32, waitI, prevWait);
  }
}

/**
 * Push the entry, then take the lock. On failure (or if an interrupt handler run from the wait
 * window throws through us) the entry is popped and, for _irqsave, the irq flag restored.
 */
function lockCommon(lock: number, flags: number): number {
  const d = I32[pcpuI + COUNT_I]!;
  const me = (thisCpu + 1) | (currentContext() << 8);
  const wasIrqs = I32[pcpuI + IRQS_I]!;
  if ((flags & F_IRQSAVE) !== 0) I32[pcpuI + IRQS_I] = 1;
  push(lock, d, flags);
  if (Atomics.compareExchange(I32, lock >> 2, 0, me) !== 0) {
    let err: number;
    try {
      err = lockSlow(lock, me, d);
    } catch (e: unknown) {
      pop(d);
      if ((flags & F_IRQSAVE) !== 0) I32[pcpuI + IRQS_I] = wasIrqs;
      throw e;
    }
    if (err !== 0) {
      pop(d);
      if ((flags & F_IRQSAVE) !== 0) I32[pcpuI + IRQS_I] = wasIrqs;
      return err;
    }
  }
  bump(ST_ACQ);
  return 0;
}

/** bpf_res_spin_lock(): 0 | -EDEADLK | -ETIMEDOUT. Irqs untouched. */
export function resSpinLock(lock: number): number {
  checkLockPtr(lock, 'bpf_res_spin_lock');
  return lockCommon(lock, 0);
}

/** bpf_res_spin_lock_irqsave(): local irqs off (flag saved with the entry), then the lock; on failure irqs are restored. */
export function resSpinLockIrqsave(lock: number): number {
  checkLockPtr(lock, 'bpf_res_spin_lock_irqsave');
  return lockCommon(lock, F_IRQSAVE | (I32[pcpuI + IRQS_I] !== 0 ? F_WAS_OFF : 0));
}

/** Release the lock word (owner check, then wake a sleeper). */
function release(lock: number): void {
  const old = Atomics.exchange(I32, lock >> 2, 0);
  if ((old & 0xff) !== thisCpu + 1) splat('warn', `bpf_res_spin_unlock of 0x${lock.toString(16)} not owned by this CPU (word 0x${old.toString(16)})`);
  if ((old & RES_WAITERS) !== 0) Atomics.notify(I32, lock >> 2, 1);
}

/**
 * The newest held entry, if it is `lock`, owned, and taken with the variant `irqsave`: its flags
 * (>= 0); else -1.
 */
function topIfMatches(lock: number, irqsave: boolean): number {
  const n = I32[pcpuI + COUNT_I]!;
  if (n <= 0) return -1;
  const d = n - 1;
  if (d < RES_MAX_TRACKED) {
    if (entryAt(d) !== lock) return -1;
  } else {
    // untracked depth: accept only a lock owned by this CPU that no tracked entry names
    for (let i = 0; i < RES_MAX_TRACKED; i++) if (entryAt(i) === lock) return -1;
  }
  // the newest entry may be an interrupted context's wait, not a held lock
  if ((Atomics.load(I32, lock >> 2) & 0xff) !== thisCpu + 1) return -1;
  const f = entryFlags(d);
  if (d < 64 && ((f & F_IRQSAVE) !== 0) !== irqsave) return -1;
  return f;
}

/** bpf_res_spin_unlock(): 0, or -EINVAL (nothing released) unless `lock` is the newest held res lock. */
export function resSpinUnlock(lock: number): number {
  if (topIfMatches(lock, false) < 0) return -EINVAL;
  pop(I32[pcpuI + COUNT_I]! - 1);
  release(lock);
  return 0;
}

/** bpf_res_spin_unlock_irqrestore(): as resSpinUnlock, then the saved irq flag is restored. */
export function resSpinUnlockIrqrestore(lock: number): number {
  const f = topIfMatches(lock, true);
  if (f < 0) return -EINVAL;
  const d = I32[pcpuI + COUNT_I]! - 1;
  pop(d);
  release(lock);
  if (d < 64) I32[pcpuI + IRQS_I] = (f & F_WAS_OFF) !== 0 ? 1 : 0;
  return 0;
}

/** This CPU's held count (may exceed RES_NR_HELD). */
export function resHeldCount(): number { return I32[pcpuI + COUNT_I]!; }

/**
 * Release this CPU's res locks, newest first, restoring saved irq flags, until the count is
 * `toCount` (the program abort path). Returns how many were released. Never throws.
 */
export function resUnwindHeld(toCount: number): number {
  let released = 0;
  try {
    const to = Math.max(0, toCount | 0);
    for (let n = I32[pcpuI + COUNT_I]!; n > to; n--) {
      const d = n - 1;
      const lock = entryAt(d);
      const f = entryFlags(d);
      pop(d);
      if (lock === 0) {
        splat('leak', `res lock at held depth ${d} was never recorded (deeper than ${RES_MAX_TRACKED}): cannot release it`);
        continue;
      }
      release(lock);
      released++;
      if ((f & F_IRQSAVE) !== 0) I32[pcpuI + IRQS_I] = (f & F_WAS_OFF) !== 0 ? 1 : 0;
    }
  } catch { /* the abort path must go on */ }
  return released;
}

export interface ResLockStats { acquired: number; deadlocksAA: number; deadlocksABBA: number; timeouts: number }

/** Counters summed over every CPU id (each CPU writes only its own). */
export function resLockStats(): ResLockStats {
  const s: ResLockStats = { acquired: 0, deadlocksAA: 0, deadlocksABBA: 0, timeouts: 0 };
  for (let c = 0; c < nrCpuIds; c++) {
    const b = perCpuBlock(c) >> 2;
    s.acquired += Atomics.load(I32, b + ST_ACQ);
    s.deadlocksAA += Atomics.load(I32, b + ST_AA);
    s.deadlocksABBA += Atomics.load(I32, b + ST_ABBA);
    s.timeouts += Atomics.load(I32, b + ST_TIMEOUT);
  }
  return s;
}
