/*
 * bpf_timer.ts — BPF timers owned by maps (kernel/bpf/helpers.c: bpf_timer_init,
 * bpf_timer_set_callback, bpf_timer_start, bpf_timer_cancel, bpf_timer_cb,
 * bpf_timer_cancel_and_free, bpf_timer_delete_work; seed 003, reference §6).
 *
 * Era modelled: the classic locked design (v5.15 .. early 2026) with its 2024 fixes (the
 * `cancelling` counter against two callbacks cancelling each other; frees from a callback
 * deferred to a work item), plus the 2026 bpf_timer_cancel_async() kfunc, which never waits.
 * NMI: every helper returns -EOPNOTSUPP (the pre-2026 answer; the 2026 irq_work deferral is not
 * modelled), and the loader refuses tracing programs on maps with timers ("tracing progs cannot
 * use bpf_timer yet") and timers on PREEMPT_RT (the 2025 verifier).
 *
 * Layout: the 16-byte bpf_timer field in a map value (btf_record.ts):
 *   +0 pointer to this file's struct bpf_hrtimer (0 = not initialised; BPF_TIMER_RETIRED = the
 *      element was deleted: init is -EINVAL, see btf_record.ts)    [timer lock; peeked]
 *   +4 the bpf_spin_lock serialising init/set_callback/start/cancel/free on this timer
 * struct bpf_hrtimer (kmalloc, SIZEOF_BPF_HRTIMER bytes):
 *   +0  struct hrtimer (hrtimer.ts HT_*)
 *   +32 BT_MAP        owning map (struct bpf_map pointer)                      init only
 *   +36 BT_VALUE      the map value holding the field (back pointer)           init only
 *   +40 BT_PROG       program (its state pointer) holding a reference, 0 none  timer lock
 *   +44 BT_CB         callback_fn: (prog id + 1) << 8 | callback index, 0 none timer lock; Atomics
 *                     (RCU-published: the callback reads it without the lock)
 *   +48 BT_CANCELLING cancellations in flight from other callbacks (Atomics)
 *   +52 BT_FLAGS      init flags (clock id)
 *   +56 BT_MAGIC      BT_MAGIC_LIVE while live, 0 once queued for freeing
 *   +60 BT_WORK_NEXT  link of the deferred delete_work list
 *   +64 BT_RCU        rcu_head for kfree_rcu
 *
 * Ownership (seed 003 v3): the map owns its timers; bpf_timer_init refuses (-EPERM) once the
 * map has no user reference; set_callback takes one program reference per program change and
 * cancel / free drop it; map_release_uref (BpfMapImpl.releaseUref) cancels and frees every
 * timer and so breaks the program -> map -> timer -> program cycle.
 *
 * Races (reference §6.4) and how they stay safe:
 *  - callback vs cancel/delete/update/eviction/teardown: cancel waits (hrtimer_cancel) only from
 *    places that hold no bucket lock; every free path (bpfTimerCancelAndFree) detaches the timer
 *    under its lock (field = 0, program reference dropped) and then only try-cancels: if the
 *    callback is running, the free goes to the delete work (the coordinator retries the cancel
 *    and frees once the callback is done). So a callback deleting its own element, an LRU update
 *    evicting the running timer's element, two callbacks deleting each other's elements, and a
 *    prealloc replace freeing fields under the bucket lock never wait on a callback.
 *  - self cancel: hrtimer_running == t -> -EDEADLK; two callbacks cancelling each other: the
 *    cancelling counters -> at least one -EDEADLK, never a hang.
 *  - init vs uref release: init publishes the pointer, then (seq-cst Atomics = smp_mb) re-reads
 *    usercnt and backs out with -EPERM; the release reads every field under its lock.
 *  - memory: a detached timer is freed with kfree_rcu once not queued and not running; callbacks
 *    run inside an RCU read section, so nothing a callback can still reach is freed under it.
 *
 * Locking: timer lock (class 'timer', irqsave) -> hrtimer base lock. Taken under bucket and LRU
 * locks by the free path; never held while waiting.
 *
 * Contexts: helpers on CPU workers from program runs and callbacks (any context; NMI refused);
 * the free path from any map operation (any thread); the delete work and the coordinator service
 * on the main thread.
 */
import { I32, ktimeGetNs, arenaGeneration } from '../mem/arena.js';
import { HDR_FAULTS, FAULT_TIMER_MUTUAL_CANCEL } from '../mem/layout.js';
import { setIrqHooks } from '../cpu/window.js';
import { thisCpu } from '../mem/this_cpu.js';
import { kzalloc, kfree } from '../mm/slab.js';
import { OWNER_KERNEL } from '../mm/owners.js';
import { inNmi } from '../cpu/context.js';
import { rawSpinLockIrqsave, rawSpinUnlockIrqrestore } from '../locks/raw_spinlock.js';
import { LC_TIMER } from '../locks/lock_classes.js';
import { llistAdd, llistDelAll, llistNext } from '../cpu/llist.js';
import { defineRcuKind, registerRcuCallback, callRcuHead, rcuReadLock, rcuReadUnlock } from '../rcu/rcu.js';
import { ringDoorbell } from '../cpu/doorbell.js';
import { splat } from '../debug/splat.js';
import { EBUSY, EDEADLK, EINVAL, ENOENT, ENOMEM, EOPNOTSUPP, EPERM } from '../errno.js';
import { MAP_TYPE, MAP_KEY_SIZE, MAP_USERCNT, MAP_TIMER_OFF, BPF_MAP_TYPE_ARRAY, roundUp8 } from '../maps/map_ops.js';
import { ARR_VALUES, ARR_ELEM_SIZE } from '../maps/arraymap.js';
import { BPF_TIMER_LOCK, BPF_TIMER_RETIRED, registerTimerFieldOps } from '../maps/btf_record.js';
import {
  SIZEOF_HRTIMER, HB_BPF_RUNNING, HB_KEY, HG_WORK, HG_ALLOCS, HG_FREES, HG_STARTS, HG_DEFERRED,
  hrtimerBase, hrtimerGlobals, hrtimerRegion, hrtimerInit, hrtimerStart, hrtimerTryToCancel, hrtimerCancel,
  hrtimerRunSoftirq, hrtimerPollExpiry, hrtimerStats,
} from './hrtimer.js';

// ---- uapi ----
export const BPF_F_TIMER_ABS = 1 << 0;
export const BPF_F_TIMER_CPU_PIN = 1 << 1;
export const CLOCK_REALTIME = 0;
export const CLOCK_MONOTONIC = 1;
export const CLOCK_BOOTTIME = 7;
const MAX_CLOCKS = 16;

// ---- struct bpf_hrtimer ----
export const BT_MAP = SIZEOF_HRTIMER + 0;
export const BT_VALUE = SIZEOF_HRTIMER + 4;
export const BT_PROG = SIZEOF_HRTIMER + 8;
export const BT_CB = SIZEOF_HRTIMER + 12;
export const BT_CANCELLING = SIZEOF_HRTIMER + 16;
export const BT_FLAGS = SIZEOF_HRTIMER + 20;
export const BT_MAGIC = SIZEOF_HRTIMER + 24;
export const BT_WORK_NEXT = SIZEOF_HRTIMER + 28;
export const BT_RCU = SIZEOF_HRTIMER + 32;
export const SIZEOF_BPF_HRTIMER = SIZEOF_HRTIMER + 40;
export const BT_MAGIC_LIVE = 0x544d5242; // 'BRMT'

/** What the program layer provides (registered at thread boot; imports only point down). */
export interface BpfTimerProgOps {
  /** bpf_prog_inc_not_zero(): take a reference on the program at `state`; false if it is gone. */
  incNotZero(state: number): boolean;
  /** bpf_prog_put() */
  put(state: number): void;
  /** Run callback `cb` (BT_CB word) with (map, key, value) in the current (softirq) context. */
  run(cb: number, map: number, key: number, value: number): void;
}

let progOps: BpfTimerProgOps = { incNotZero: () => false, put: () => {}, run: () => {} };

export function registerBpfTimerProgOps(ops: BpfTimerProgOps): void { progOps = ops; }

const RCU_KIND_TIMER_FREE = defineRcuKind('bpf_timer.kfree_rcu');
registerRcuCallback(RCU_KIND_TIMER_FREE, (head: number) => {
  kfree(head - BT_RCU);
  Atomics.add(I32, (hrtimerGlobals() + HG_FREES) >> 2, 1);
});

function gI(off: number): number { return (hrtimerGlobals() + off) >> 2; }

function lockTimer(timer: number): number { return rawSpinLockIrqsave(timer + BPF_TIMER_LOCK, LC_TIMER); }
function unlockTimer(timer: number): void { rawSpinUnlockIrqrestore(timer + BPF_TIMER_LOCK); }

/** The timer of a field (timer lock held): its bpf_hrtimer, or 0 (not initialised or retired). */
function timerOf(field: number): number {
  const w = I32[field >> 2]!;
  return w === BPF_TIMER_RETIRED ? 0 : w;
}

/** this_cpu_read(hrtimer_running): the bpf_hrtimer whose callback runs on this CPU, or 0. */
export function hrtimerRunning(): number { return I32[(hrtimerBase(thisCpu) + HB_BPF_RUNNING) >> 2]!; }

/** drop_prog_refcnt(): timer lock held. */
function dropProgRefcnt(t: number): void {
  const prog = I32[(t + BT_PROG) >> 2]!;
  if (prog !== 0) {
    I32[(t + BT_PROG) >> 2] = 0;
    Atomics.store(I32, (t + BT_CB) >> 2, 0);
    progOps.put(prog);
  }
}

/** kfree_rcu(t): t is detached, not queued and not running. */
function kfreeRcu(t: number): void {
  Atomics.store(I32, (t + BT_MAGIC) >> 2, 0);
  callRcuHead(t + BT_RCU, RCU_KIND_TIMER_FREE);
}

/** queue_work(delete_work): the coordinator cancels and frees `t` once its callback is done. */
function queueDeleteWork(t: number): void {
  Atomics.add(I32, gI(HG_DEFERRED), 1);
  if (llistAdd(hrtimerGlobals() + HG_WORK, t, BT_WORK_NEXT)) ringDoorbell();
}

// ---------------------------------------------------------------------------------------------
// helpers (program path)

/**
 * bpf_timer_init(timer, map, flags): 0 | -EOPNOTSUPP | -EINVAL (bad flags; the element was
 * deleted) | -EBUSY | -EPERM | -ENOMEM.
 */
export function bpfTimerInit(timer: number, map: number, flags: number): number {
  if (inNmi()) return -EOPNOTSUPP;
  const clockid = flags & (MAX_CLOCKS - 1);
  if (!(flags >= 0 && flags < MAX_CLOCKS) || (clockid !== CLOCK_MONOTONIC && clockid !== CLOCK_REALTIME && clockid !== CLOCK_BOOTTIME)) return -EINVAL;
  const toff = I32[(map + MAP_TIMER_OFF) >> 2]! - 1;
  if (toff < 0) return -EINVAL; // the verifier's "map has no bpf_timer"
  const err = lockTimer(timer);
  if (err !== 0) return err;
  let ret = 0;
  const w = I32[timer >> 2]!;
  if (w !== 0) {
    ret = w === BPF_TIMER_RETIRED ? -EINVAL : -EBUSY; // retired: its element was deleted
  } else {
    const t = kzalloc(SIZEOF_BPF_HRTIMER, OWNER_KERNEL); // GFP_ATOMIC
    if (t === 0) {
      ret = -ENOMEM;
    } else {
      hrtimerInit(t);
      const ti = t >> 2;
      I32[ti + (BT_MAP >> 2)] = map;
      I32[ti + (BT_VALUE >> 2)] = timer - toff;
      I32[ti + (BT_FLAGS >> 2)] = flags;
      I32[ti + (BT_MAGIC >> 2)] = BT_MAGIC_LIVE;
      Atomics.store(I32, timer >> 2, t);
      // smp_mb() between publishing and reading usercnt: Atomics are sequentially consistent
      if (Atomics.load(I32, (map + MAP_USERCNT) >> 2) === 0) {
        Atomics.store(I32, timer >> 2, 0);
        kfree(t);
        ret = -EPERM;
      } else {
        Atomics.add(I32, gI(HG_ALLOCS), 1);
      }
    }
  }
  unlockTimer(timer);
  return ret;
}

/**
 * bpf_timer_set_callback(timer, callback): `prog` is the calling program's state pointer, `cb`
 * its BT_CB word. 0 | -EOPNOTSUPP | -EINVAL (not initialised) | -EPERM (no user reference) |
 * -ENOENT (program being freed).
 */
export function bpfTimerSetCallback(timer: number, prog: number, cb: number): number {
  if (inNmi()) return -EOPNOTSUPP;
  const err = lockTimer(timer);
  if (err !== 0) return err;
  let ret = 0;
  const t = timerOf(timer);
  if (t === 0) {
    ret = -EINVAL;
  } else if (Atomics.load(I32, (I32[(t + BT_MAP) >> 2]! + MAP_USERCNT) >> 2) === 0) {
    ret = -EPERM;
  } else {
    const prev = I32[(t + BT_PROG) >> 2]!;
    if (prev !== prog) {
      // one program reference per program change, whatever callbacks it picks
      if (!progOps.incNotZero(prog)) ret = -ENOENT;
      else {
        if (prev !== 0) progOps.put(prev);
        I32[(t + BT_PROG) >> 2] = prog;
      }
    }
    if (ret === 0) Atomics.store(I32, (t + BT_CB) >> 2, cb);
  }
  unlockTimer(timer);
  return ret;
}

/**
 * bpf_timer_start(timer, nsecs, flags): relative by default, BPF_F_TIMER_ABS absolute ktime,
 * BPF_F_TIMER_CPU_PIN pinned (both fire on this CPU here). 0 | -EOPNOTSUPP | -EINVAL (bad flags,
 * not initialised, no callback set).
 */
export function bpfTimerStart(timer: number, nsecs: number, flags: number): number {
  if (inNmi()) return -EOPNOTSUPP;
  if ((flags & ~(BPF_F_TIMER_ABS | BPF_F_TIMER_CPU_PIN)) !== 0) return -EINVAL;
  const err = lockTimer(timer);
  if (err !== 0) return err;
  let ret = 0;
  const t = timerOf(timer);
  if (t === 0 || I32[(t + BT_PROG) >> 2] === 0) {
    ret = -EINVAL;
  } else {
    const ns = nsecs > 0 ? nsecs : 0;
    const expires = (flags & BPF_F_TIMER_ABS) !== 0 ? ns : ktimeGetNs() + ns;
    ret = hrtimerStart(t, expires, thisCpu);
    if (ret === 0) Atomics.add(I32, gI(HG_STARTS), 1);
  }
  unlockTimer(timer);
  return ret;
}

/**
 * bpf_timer_cancel(timer): drops the callback and its program reference, then waits for a
 * running callback. 1 was queued | 0 was not | -EOPNOTSUPP | -EINVAL (not initialised) |
 * -EDEADLK (its own callback; or another callback is cancelling the caller's timer).
 */
export function bpfTimerCancel(timer: number): number {
  if (inNmi()) return -EOPNOTSUPP;
  rcuReadLock();
  const err = lockTimer(timer);
  if (err !== 0) { rcuReadUnlock(); return err; }
  let ret = 0;
  let inc = false;
  const t = timerOf(timer);
  if (t === 0) {
    ret = -EINVAL;
  } else {
    const cur = hrtimerRunning();
    if (cur === t) {
      ret = -EDEADLK; // waiting for our own callback would never end
    } else if (cur !== 0) {
      // only callbacks account in-flight cancellations (only they can be waited on by others)
      Atomics.add(I32, (t + BT_CANCELLING) >> 2, 1);
      inc = true;
      // (the era switch FAULT_TIMER_MUTUAL_CANCEL: the kernel before the 2024 fix, no such check)
      if (Atomics.load(I32, (cur + BT_CANCELLING) >> 2) !== 0 && (I32[HDR_FAULTS >> 2]! & FAULT_TIMER_MUTUAL_CANCEL) === 0) ret = -EDEADLK;
    }
    if (ret === 0) dropProgRefcnt(t);
  }
  unlockTimer(timer);
  if (ret === 0) ret = hrtimerCancel(t);
  if (inc) Atomics.sub(I32, (t + BT_CANCELLING) >> 2, 1);
  rcuReadUnlock();
  return ret;
}

/**
 * bpf_timer_cancel_async(timer) (2026 kfunc): dequeue without waiting and without dropping the
 * callback. 1 dequeued | 0 not queued | -1 its callback is running | -EOPNOTSUPP (NMI: the 2026
 * irq_work deferral, -ECANCELED, is not modelled) | -EINVAL (not initialised).
 */
export function bpfTimerCancelAsync(timer: number): number {
  if (inNmi()) return -EOPNOTSUPP;
  const err = lockTimer(timer);
  if (err !== 0) return err;
  const t = timerOf(timer);
  const ret = t === 0 ? -EINVAL : hrtimerTryToCancel(t);
  unlockTimer(timer);
  return ret;
}

// ---------------------------------------------------------------------------------------------
// the callback (softirq) and freeing

/** bpf_timer_cb(): run the timer's callback with (map, key, value); this CPU's hrtimer_running = t. */
function bpfTimerCb(t: number): void {
  if (Atomics.load(I32, (t + BT_MAGIC) >> 2) !== BT_MAGIC_LIVE) {
    // a queued timer is never freed (frees cancel first): firing one would be a use after free
    splat('use_after_free', `bpf_timer_cb: timer 0x${t.toString(16)} fired after it was freed`);
    return;
  }
  const cb = Atomics.load(I32, (t + BT_CB) >> 2);
  if (cb === 0) return;
  const ti = t >> 2;
  const map = I32[ti + (BT_MAP >> 2)]!;
  const value = I32[ti + (BT_VALUE >> 2)]!;
  const b = hrtimerBase(thisCpu);
  I32[(b + HB_BPF_RUNNING) >> 2] = t;
  let key: number;
  if (I32[(map + MAP_TYPE) >> 2] === BPF_MAP_TYPE_ARRAY) {
    key = b + HB_KEY;
    I32[key >> 2] = ((value - I32[(map + ARR_VALUES) >> 2]!) / I32[(map + ARR_ELEM_SIZE) >> 2]!) | 0;
  } else {
    key = value - roundUp8(I32[(map + MAP_KEY_SIZE) >> 2]!);
  }
  rcuReadLock();
  progOps.run(cb, map, key, value);
  rcuReadUnlock();
  I32[(b + HB_BPF_RUNNING) >> 2] = 0;
}

/** The softirq hook (window.ts hooks.softirq): this CPU's due timers. */
export function bpfTimerSoftirq(): void {
  hrtimerRunSoftirq(bpfTimerCb);
}

/**
 * bpf_timer_cancel_and_free(field) (btf_record.ts calls it for delete, replace, eviction, array
 * overwrite, uref release): detach under the timer lock (pointer cleared, or retired when the
 * element leaves the map: later helpers see "not initialised"; program reference dropped), then
 * cancel. `mayWait` (map_release_uref, main
 * thread, no lock held): hrtimer_cancel, waiting for a running callback. Otherwise never waits:
 * a running callback defers the free to the delete work.
 */
export function bpfTimerCancelAndFree(field: number, mayWait: boolean, retire: boolean): void {
  const w = Atomics.load(I32, field >> 2);
  if (w === BPF_TIMER_RETIRED || (w === 0 && !retire)) return;
  if (lockTimer(field) !== 0) return; // splatted (a deadlock the simulation could detect)
  const t = timerOf(field);
  if (t !== 0) dropProgRefcnt(t);
  // the element leaves the map: retire the field, so a late bpf_timer_init cannot publish into it
  if (t !== 0 || retire) Atomics.store(I32, field >> 2, retire ? BPF_TIMER_RETIRED : 0);
  unlockTimer(field);
  if (t === 0) return;
  if (mayWait && hrtimerRunning() !== t) {
    if (hrtimerCancel(t) >= 0) { kfreeRcu(t); return; }
  } else if (hrtimerTryToCancel(t) >= 0) {
    kfreeRcu(t);
    return;
  }
  queueDeleteWork(t);
}

// ---------------------------------------------------------------------------------------------
// delete work and the coordinator service (main thread)

let workGen = -1; // arenaGeneration this state belongs to (a number: keeps no arena alive)
let retry: number[] = [];

function workState(): void {
  if (workGen !== arenaGeneration) { workGen = arenaGeneration; retry = []; }
}

/**
 * bpf_timer_delete_work(): cancel and free every deferred timer whose callback is done.
 * `wait`: hrtimer_cancel (bounded) instead of try. Returns how many are still pending.
 */
export function bpfTimerRunDeferred(wait: boolean): number {
  workState();
  if (hrtimerRegion() === 0) return 0;
  let n = llistDelAll(hrtimerGlobals() + HG_WORK);
  while (n !== 0) {
    const next = llistNext(n, BT_WORK_NEXT);
    retry.push(n);
    n = next;
  }
  if (retry.length === 0) return 0;
  const keep: number[] = [];
  for (const t of retry) {
    const r = wait ? hrtimerCancel(t) : hrtimerTryToCancel(t);
    if (r >= 0) kfreeRcu(t);
    else keep.push(t);
  }
  retry = keep;
  return keep.length;
}

/** Resolves when no deferred timer free is pending (main thread; bounded: rejects after `timeoutMs`). */
export async function bpfTimersIdle(timeoutMs = 10_000): Promise<void> {
  const t0 = performance.now();
  while (bpfTimerRunDeferred(false) > 0) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`bpf_timer: deferred timer frees still pending after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** The coordinator service: timer expiry and the delete work. */
export const bpfTimerService = {
  name: 'bpf_timer',
  poll(_nowMs: number): number {
    const a = hrtimerPollExpiry();
    if (bpfTimerRunDeferred(false) > 0) return a < 0 ? 1 : Math.min(a, 1);
    return a;
  },
} as const;

/** Flush at uref release (btf_record.ts bpfTimersFlushDeferred): wait for deferred frees' callbacks. */
export function bpfTimerFlushDeferred(): void {
  bpfTimerRunDeferred(true);
}

export interface BpfTimerStats {
  /** bpf_hrtimer objects allocated by bpf_timer_init since boot */
  readonly allocated: number;
  /** ... and freed (after their grace period) */
  readonly freed: number;
  /** allocated - freed */
  readonly live: number;
  /** successful bpf_timer_start calls */
  readonly starts: number;
  /** callbacks run, per CPU */
  readonly fired: readonly number[];
  /** timers queued now, per CPU */
  readonly queued: readonly number[];
  /** frees deferred to the delete work since boot, and still pending now */
  readonly deferred: number;
  readonly deferredPending: number;
}

export function bpfTimerStats(): BpfTimerStats {
  workState();
  if (hrtimerRegion() === 0) return { allocated: 0, freed: 0, live: 0, starts: 0, fired: [], queued: [], deferred: 0, deferredPending: 0 };
  const allocated = Atomics.load(I32, gI(HG_ALLOCS));
  const freed = Atomics.load(I32, gI(HG_FREES));
  const bases = hrtimerStats();
  let pending = retry.length;
  for (let n = Atomics.load(I32, gI(HG_WORK)); n !== 0 && pending < 1_000_000; n = llistNext(n, BT_WORK_NEXT)) pending++;
  return {
    allocated, freed, live: allocated - freed, starts: Atomics.load(I32, gI(HG_STARTS)),
    fired: bases.map((b) => b.fired), queued: bases.map((b) => b.queued),
    deferred: Atomics.load(I32, gI(HG_DEFERRED)), deferredPending: pending,
  };
}

/**
 * Per-thread boot (every CPU thread and the main thread): plug the timer into the map layer's
 * record (bpf_obj_free_fields) and the timer softirq into the interrupt windows.
 */
export function bpfTimerThreadInit(): void {
  registerTimerFieldOps(bpfTimerCancelAndFree, bpfTimerFlushDeferred);
  setIrqHooks({ softirq: bpfTimerSoftirq });
}
