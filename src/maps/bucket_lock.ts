/*
 * bucket_lock.ts — htab_lock_bucket / htab_unlock_bucket: the hash bucket lock together with the
 * recursion guard that keeps a program interrupting a bucket-lock holder on the same CPU from
 * spinning on that lock forever (kernel/bpf/hashtab.c; reference §1.5, §1.6).
 *
 * Two designs, chosen per runtime (HDR_FLAGS & FLAG_RQSPINLOCK, `bucketLock` option):
 *
 *  'map_locked' (v5.10 … v6.14, default): 8 per-CPU counters per map (HP_MAP_LOCKED in the map's
 *    per-CPU line). Lock: preempt_disable, irqs off, this_cpu map_locked[hash & min(7, n-1)] += 1;
 *    if it is not 1 someone on this CPU (an NMI/kprobe program over a holder) is inside a bucket
 *    of this map with the same slot: undo and return -EBUSY, without touching the lock word.
 *    Otherwise take the raw spinlock. Coarse on purpose: any bucket with the same slot is refused.
 *
 *  'rqspinlock' (v6.15+): no counters; the bucket lock is a resilient queued spinlock whose
 *    acquisition returns -EDEADLK (AA: this CPU holds it; AB-BA) or -ETIMEDOUT. The lock layer
 *    (locks/raw_spinlock.ts) implements exactly that, with a splat.
 *
 * Locking: the bucket lock protects the bucket's chain (its head word and the E_NEXT/E_PPREV of its elements)
 * and, for a plain preallocated hash, this CPU's extra_elems slot while an update swaps it.
 * Nested inside it: the percpu_freelist head locks (prealloc pop/push) and a value's
 * bpf_spin_lock (BPF_F_LOCK). Never nested inside it: LRU locks (order lru_lock -> bucket_lock).
 *
 * Contexts: any CPU, any context, irqs saved in the held-lock table by the _irqsave lock.
 * Each lock has one unlock site: htabUnlockBucket.
 */
import { I32 } from '../mem/arena.js';
import { thisCpu } from '../mem/this_cpu.js';
import { CACHELINE } from '../mem/layout.js';
import { preemptDisable, preemptEnable } from '../cpu/context.js';
import { rawSpinLockIrqsave, rawSpinUnlockIrqrestore } from '../locks/raw_spinlock.js';
import { LC_HTAB_BUCKET } from '../locks/lock_classes.js';
import { EBUSY } from '../errno.js';
import { HP_MAP_LOCKED } from './htab_layout.js';

/**
 * htab_lock_bucket(). `lock` = the bucket's lock word (HTAB_LOCKS + 4 × index); `pcpuArea` = the map's per-CPU area;
 * `lockMask` = min(HASHTAB_MAP_LOCK_COUNT - 1, n_buckets - 1); `hash` selects the map_locked slot
 * (batch ops pass the bucket index). Returns 0, -EBUSY, -EDEADLK or -ETIMEDOUT.
 */
export function htabLockBucket(lock: number, pcpuArea: number, lockMask: number, hash: number, rq: boolean): number {
  preemptDisable();
  if (rq) {
    const err = rawSpinLockIrqsave(lock, LC_HTAB_BUCKET);
    if (err !== 0) preemptEnable();
    return err;
  }
  const si = (pcpuArea + thisCpu * CACHELINE + HP_MAP_LOCKED) >> 2;
  const slot = si + (hash & lockMask);
  const v = I32[slot]! + 1;
  I32[slot] = v;
  if (v !== 1) {
    I32[slot] = v - 1;
    preemptEnable();
    return -EBUSY;
  }
  const err = rawSpinLockIrqsave(lock, LC_HTAB_BUCKET);
  if (err !== 0) {
    I32[slot] = I32[slot]! - 1;
    preemptEnable();
  }
  return err;
}

/** htab_unlock_bucket(): the one unlock site of every bucket lock. */
export function htabUnlockBucket(lock: number, pcpuArea: number, lockMask: number, hash: number, rq: boolean): void {
  rawSpinUnlockIrqrestore(lock);
  if (!rq) {
    const slot = ((pcpuArea + thisCpu * CACHELINE + HP_MAP_LOCKED) >> 2) + (hash & lockMask);
    I32[slot] = I32[slot]! - 1;
  }
  preemptEnable();
}
