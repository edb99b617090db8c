/*
 * hashtab.ts — hash maps: hash, percpu_hash, lru_hash, lru_percpu_hash (kernel/bpf/hashtab.c;
 * reference §2). One class serves the four types (as the kernel's one htab with four ops tables),
 * so a program's map call sites stay monomorphic.
 *
 * Layout: struct bpf_htab, struct bucket and struct htab_elem are described in htab_layout.ts.
 * A bucket is an hlist_nulls chain whose end marker is (bucket index << 1) | 1.
 *
 * Invariants (checked by check()):
 *  - every chain of bucket i holds only elements with (hash & (n_buckets-1)) == i, pprev links
 *    right, and ends in bucket i's nulls marker; every bucket lock word and map_locked slot is 0;
 *  - preallocated: every element is on exactly one of {a bucket, the freelist, a CPU's
 *    extra_elems slot} (plain hash: free + live + spares == max_entries + nrCpuIds; per-CPU hash:
 *    free + live == max_entries); LRU: on exactly one LRU list, and in a bucket iff that list is
 *    active, inactive or a local pending list;
 *  - dynamic (BPF_F_NO_PREALLOC, htab_dyn_alloc.ts): every linked element is a live allocation of
 *    the map's allocator, reachable once; the allocator's count equals the linked elements;
 *  - the per-CPU element counters sum to the number of elements in buckets.
 *
 * Locking (see bucket_lock.ts for the lock itself and its recursion guard): the bucket lock
 * protects its chain; inserts publish a fully written element at the head with one atomic store;
 * a replace links the new element at the head BEFORE unlinking the old one (htab_map_update_elem),
 * so a lockless reader that starts after the link finds the new one — but a reader already past
 * the head and standing before the old element misses both: "not found" for a key present before
 * and after, as in the kernel (docs/KERNEL_PROPERTIES.md). Lookups take no lock: they load each
 * link with Atomics.load (every store of a link is an Atomics.store: the memory-ordering contract
 * of docs/INTERNALS.md; walks under the bucket lock use plain loads) and compare keys with plain
 * loads, and restart when the walk ends on another bucket's nulls marker, because elements
 * are reused at once (a deleted element may be relinked into another chain while a reader stands
 * on it). Consequence,
 * as in the kernel: a value pointer a program holds may change under it, even to another key's
 * data; bpf_spin_lock / BPF_F_LOCK give per-value consistency.
 * Lock order: lru locks -> bucket lock -> percpu_freelist head lock / value bpf_spin_lock /
 * slab class lock (legacy kmalloc maps). The LRU free node is popped BEFORE the bucket lock and
 * pushed back AFTER the unlock; dynamic elements are freed AFTER the unlock.
 * The bucket lock is raw (bucket_lock.ts) except for legacy kmalloc maps on PREEMPT_RT, where it
 * is the sleeping spinlock_t (seed 000's lock union: init/lock/unlock by allocation type), so
 * their kmalloc under the lock may sleep; tracing programs may not use them (runtime.ts refuses
 * them at load, BpfMap.usesSleepingBucketLock). bpf_mem_alloc maps always have raw locks.
 * A lockless walk that meets 0x6b6b6b6b (a next pointer or key of freed memory) raises a
 * 'use_after_free' splat and returns "not found": with RCU and immediate reuse that is a bug.
 *
 * Windows (interrupts and kprobes arrive here): htab.update.locked (bucket lock held, before the
 * lookup; every update flavour; the only one on the update fast path, a window costs one atomic
 * load), htab.lookup.walk (every lock-free chain walk — program lookup, syscall lookup,
 * get_next_key, the BPF_F_LOCK update path — after each element that is not the key, before its
 * next link is read: once per element passed, none for a hit on the first), htab.delete.locked,
 * htab.lookup_and_delete.locked, htab.batch.locked, htab.lru_evict.locked, plus the freelist's and the LRU's own; dynamic maps add htab.update.kmalloc.locked (legacy kmalloc
 * under the bucket lock) and htab.update.unlocked (right after the unlock of an update: where the
 * irq_work self-IPI that bpf_mem_alloc raised under the lock is delivered, as at the kernel's
 * irqrestore; task/softirq callers get their refill there). There is deliberately no window between a replace's
 * extra_elems swap and the unlink of the old element: an NMI program replacing a key of the same
 * map in another bucket-lock slot there would take the still-linked old element as its new one
 * and corrupt the chain (a window the kernel has too, only narrower).
 *
 * Contexts: program ops from any context on CPU workers, with RCU read lock held by the caller;
 * sys* ops on any CPU in task context inside bpf_disable_instrumentation + RCU (BpfMap, ctx.sys);
 * creation/free on the main thread. map_free of a dynamic map is partly deferred (allocator
 * destruction after rcu_barrier, legacy elements after their grace period): whenFreed(),
 * htabFreeIdle().
 *
 * Differences from the kernel: keys are compared as 32-bit words when aligned; "possible CPUs"
 * for kernel-internal per-CPU state (freelist heads, extra_elems, LRU lists, map_locked) are all
 * CPU ids including the housekeeping CPU, while preallocated per-CPU *values* exist for the program
 * CPUs only (dynamic ones come from alloc_percpu: every CPU id).
 */
import { I32, U8, arenaGeneration, nrCpus, nrCpuIds, hdrFlags, headerI32 } from '../mem/arena.js';
import { thisCpu, pcpuI } from '../mem/this_cpu.js';
import { PROG_LOCKED_I, helperUnderLock } from '../cpu/prog_locked.js';
import {
  CACHELINE, FLAG_RQSPINLOCK, FLAG_PREEMPT_RT, FLAG_DYN_KMALLOC, HDR_SEED, HDR_FAULTS, FAULT_LOST_UPDATE,
  FAULT_PHANTOM_DELETE, FAULT_NOEXIST_OVERWRITE, FAULT_DELETE_UNLOCKED, FAULT_PERIOD,
} from '../mem/layout.js';
import { kmalloc, kzalloc, kfree, POISON_WORD } from '../mm/slab.js';
import { ownerName } from '../mm/owners.js';
import { window } from '../cpu/window.js';
import { defineSite } from '../cpu/sites.js';
import { migrateDisable, migrateEnable } from '../cpu/context.js';
import { lockWord, spinLockIrqsave, spinUnlockIrqrestore } from '../locks/raw_spinlock.js';
import { LC_HTAB_BUCKET_SLEEPING } from '../locks/lock_classes.js';
import { splat } from '../debug/splat.js';
import { bpfMemCachePtr, bpfMemFreeCounts, BMC_UNIT_SIZE, BMC_LOW, BMC_HIGH } from '../alloc/bpf_mem_alloc.js';
import {
  BpfError, E2BIG, EBUSY, EEXIST, EINVAL, ENOENT, ENOMEM, ENOSPC, ENOTSUPP,
} from '../errno.js';
import {
  BPF_EXIST, BPF_F_LOCK, BPF_NOEXIST, BPF_F_NO_PREALLOC, BPF_F_NO_COMMON_LRU, BPF_F_NUMA_NODE,
  BPF_F_ACCESS_MASK, BPF_F_ZERO_SEED, KMALLOC_MAX_SIZE, PCPU_MIN_UNIT_SIZE, MAP_SERIAL,
  MAP_MAX_ENTRIES, MAP_OWNER, MAP_LOCK_OFF, MAP_TIMER_OFF, MAP_GRAPH_REC,
  BATCH_RES_COUNT, BATCH_RES_OUT, SIZEOF_BPF_MAP, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_HASH,
  BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH, roundUp8,
  type BpfMapImpl, type BpfMapStats, type ResolvedMapSpec, BpfMapHeader, sysLockFlagsCheck } from './map_ops.js';
import {
  HTAB_BUCKETS, HTAB_N_BUCKETS, HTAB_ELEMS, HTAB_ELEM_SIZE, HTAB_NUM_ELEMS, HTAB_HASHRND,
  HTAB_FREELIST, HTAB_LRU, HTAB_PCPU, HTAB_VALUES, HTAB_VALUES_STRIDE, HTAB_KEY_OFF,
  HTAB_ALLOC_MODE, HTAB_RAW_PCPU, HTAB_ALLOC_PREALLOC, HTAB_ALLOC_BPF_MA, HTAB_ALLOC_KMALLOC,
  HTAB_DYN_FLAGS, HTAB_DYN_PERCPU_COUNTER, HTAB_LOCKS, SIZEOF_BUCKET, E_NEXT, E_PPREV,
  E_FNODE, E_FLINK, E_HASH, E_LRU, E_KEY_PLAIN, E_KEY_LRU, E_KEY_RCU, LN_REF, HASHTAB_MAP_LOCK_COUNT,
  HP_MAP_LOCKED, HP_ELEM_COUNT, HP_EXTRA_ELEM, PPREV_POISON,
} from './htab_layout.js';
import { htabLockBucket, htabUnlockBucket } from './bucket_lock.js';
import { jhash1Word, jhash2Word, jhash2Words, htabMapHash } from './jhash.js';
import { kcopy, kmemeq } from './map_value.js';
import {
  BtfRecord, btfRecordFromWords, copyMapValue, copyMapValueLocked, checkAndInitMapValue, zeroMapValue,
  bpfObjFreeFields, bpfObjFreeTimer, bpfObjReuseFields, bpfTimersFlushDeferred, EMPTY_RECORD,
} from './btf_record.js';
import { HtabPreallocAlloc, type HtabElemAlloc } from './htab_alloc.js';
import { htabDynAllocInit, htabDynAllocOpen, htabDynOvershoot, type HtabDynGeometry } from './htab_dyn_alloc.js';
import {
  BpfLru, bpfLruAlloc, bpfLruDestroy, BPF_LRU_LIST_T_ACTIVE, BPF_LRU_LIST_T_INACTIVE,
  BPF_LRU_LOCAL_LIST_T_PENDING,
} from './bpf_lru_list.js';
import {
  pcpuFreelistInit, pcpuFreelistDestroy, pcpuFreelistPopulate, pcpuFreelistPop,
} from '../alloc/percpu_freelist.js';

const SITE_UPDATE_LOCKED = defineSite('htab.update.locked');
const SITE_DELETE_LOCKED = defineSite('htab.delete.locked');
const SITE_LAD_LOCKED = defineSite('htab.lookup_and_delete.locked');
const SITE_BATCH_LOCKED = defineSite('htab.batch.locked');
const SITE_LRU_EVICT_LOCKED = defineSite('htab.lru_evict.locked');
const SITE_UPDATE_UNLOCKED = defineSite('htab.update.unlocked');
/** In every lock-free chain walk, after an element that is not the key, before its next link is read. */
const SITE_LOOKUP_WALK = defineSite('htab.lookup.walk');

const K_HASH = 0;
const K_PERCPU = 1;
const K_LRU = 2;
const K_LRU_PERCPU = 3;

export const HTAB_CREATE_FLAG_MASK = BPF_F_NO_PREALLOC | BPF_F_NO_COMMON_LRU | BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK | BPF_F_ZERO_SEED;

// ---- hlist_nulls (include/linux/rculist_nulls.h) ----

/**
 * hlist_nulls_add_head_rcu(): the element's key, value and hash are written (plain stores); its
 * `next` and then the head are stored with Atomics.store. The head store is rcu_assign_pointer
 * (the release that publishes the plain writes before it to a reader whose Atomics.load reads it);
 * `next` is one too, because an element is reused at once: a lockless reader may still stand on
 * `n` and follow `next` to `first`. Caller holds the bucket lock: the head and `first`'s pprev
 * are read and written plainly (pprev is never read without the lock).
 */
function hlistNullsAddHeadRcu(n: number, head: number): void {
  const first = I32[head >> 2]!;
  Atomics.store(I32, (n + E_NEXT) >> 2, first);
  I32[(n + E_PPREV) >> 2] = head;
  if ((first & 1) === 0) I32[(first + E_PPREV) >> 2] = n + E_NEXT;
  Atomics.store(I32, head >> 2, n);
}

/**
 * hlist_nulls_del_rcu(): unlink; `next` stays intact for readers standing on `n`. Caller holds
 * the bucket lock. The store into the predecessor's link is a link lockless readers load, so it is
 * an Atomics.store (the kernel's WRITE_ONCE relies on address dependencies, which JavaScript's
 * memory model does not have: a reader must synchronise with the store it reads a link from).
 */
function hlistNullsDelRcu(n: number): void {
  const next = I32[(n + E_NEXT) >> 2]!;
  const pprev = I32[(n + E_PPREV) >> 2]!;
  Atomics.store(I32, pprev >> 2, next);
  if ((next & 1) === 0) I32[(next + E_PPREV) >> 2] = pprev;
  I32[(n + E_PPREV) >> 2] = PPREV_POISON;
}

// ---- the lock union of seed 000 (v5.7 … v6.0): legacy kmalloc maps on PREEMPT_RT ----

/**
 * htab_lock_bucket() for a bucket whose lock is the sleeping spinlock_t (legacy kmalloc maps on
 * PREEMPT_RT): migrate_disable instead of preempt_disable (the lock may sleep), the same map_locked
 * guard (none with rqspinlock: the lock layer reports AA itself), irqs stay on. Task or softirq
 * (thread) context only: anything else is a might_sleep splat from the lock layer.
 */
function htabLockBucketSleeping(lock: number, pcpuArea: number, lockMask: number, hash: number, rq: boolean): number {
  migrateDisable();
  let slot = -1;
  if (!rq) {
    slot = ((pcpuArea + thisCpu * CACHELINE + HP_MAP_LOCKED) >> 2) + (hash & lockMask);
    const v = I32[slot]! + 1;
    I32[slot] = v;
    if (v !== 1) {
      I32[slot] = v - 1;
      migrateEnable();
      return -EBUSY;
    }
  }
  const err = spinLockIrqsave(lock, LC_HTAB_BUCKET_SLEEPING);
  if (err !== 0) {
    if (slot >= 0) I32[slot] = I32[slot]! - 1;
    migrateEnable();
  }
  return err;
}

/** htab_unlock_bucket() of a sleeping bucket lock: its one unlock site. */
function htabUnlockBucketSleeping(lock: number, pcpuArea: number, lockMask: number, hash: number, rq: boolean): void {
  spinUnlockIrqrestore(lock);
  if (!rq) {
    const slot = ((pcpuArea + thisCpu * CACHELINE + HP_MAP_LOCKED) >> 2) + (hash & lockMask);
    I32[slot] = I32[slot]! - 1;
  }
  migrateEnable();
}

/** Copy a key into an element: word stores for small aligned keys (a copyWithin call costs more). */
function copyKeyIn(dst: number, key: number, kw: number, keySize: number): void {
  if ((key & 3) === 0) {
    if (kw === 1) { I32[dst >> 2] = I32[key >> 2]!; return; }
    if (kw !== 0 && kw <= 16) {
      const d = dst >> 2;
      const s = key >> 2;
      for (let i = 0; i < kw; i++) I32[d + i] = I32[s + i]!;
      return;
    }
  }
  kcopy(dst, key, keySize);
}

/** copy_map_value() into an element; word stores for small word-sized values without special fields. */
function copyValueIn(dst: number, value: number, vw: number, valueSize: number, rec: BtfRecord): void {
  if ((value & 3) === 0) {
    if (vw === 2) {
      I32[dst >> 2] = I32[value >> 2]!;
      I32[(dst >> 2) + 1] = I32[(value >> 2) + 1]!;
      return;
    }
    if (vw !== 0) {
      const d = dst >> 2;
      const s = value >> 2;
      for (let i = 0; i < vw; i++) I32[d + i] = I32[s + i]!;
      return;
    }
  }
  copyMapValue(dst, value, valueSize, rec);
}

function checkFlags(lOld: number, flags: number): number {
  const f = flags & ~BPF_F_LOCK;
  if (lOld !== 0 && f === BPF_NOEXIST) return -EEXIST;
  if (lOld === 0 && f === BPF_EXIST) return -ENOENT;
  return 0;
}

function kindOf(typeId: number): number {
  switch (typeId) {
    case BPF_MAP_TYPE_HASH: return K_HASH;
    case BPF_MAP_TYPE_PERCPU_HASH: return K_PERCPU;
    case BPF_MAP_TYPE_LRU_HASH: return K_LRU;
    default: return K_LRU_PERCPU;
  }
}


/** One thread's handle on a hash map in kernel memory. Construct with openMap(). */
export class BpfHtab extends BpfMapHeader implements BpfMapImpl {
  readonly percpu: boolean;
  readonly lru: boolean;
  readonly sysValueSize: number;
  /** K_HASH / K_PERCPU / K_LRU / K_LRU_PERCPU */
  readonly kind: number;
  /** n_buckets u32 chain heads (the hlist_nulls_head of each struct bucket) */
  readonly buckets: number;
  /** n_buckets u32 lock words (the raw_lock of each struct bucket) */
  readonly locks: number;
  /** buckets >> 2 */
  readonly bucketsI: number;
  /** plain hash with a one-word key: lookup() takes the inlined path */
  readonly fast1: boolean;
  readonly nBuckets: number;
  readonly nMask: number;
  readonly lockMask: number;
  readonly hashrnd: number;
  readonly keyOff: number;
  readonly valOff: number;
  /** keySize / 4 when keySize % 4 == 0, else 0 */
  readonly kw: number;
  /** valueSize / 4 for a small word-sized value without a spin lock (the inlined copy), else 0 */
  readonly vw: number;
  readonly elems: number;
  readonly elemSize: number;
  readonly numElems: number;
  readonly pcpuArea: number;
  readonly values: number;
  readonly valuesStride: number;
  /** round_up(valueSize, 8): one per-CPU value slot */
  readonly vsz: number;
  /** offset of the bpf_spin_lock in the value, -1 none */
  readonly lockOff: number;
  /** the value's special fields (btf_record.ts) */
  readonly rec: BtfRecord;
  /** bucketLock 'rqspinlock' */
  readonly rq: boolean;
  readonly owner: number;
  readonly alloc: HtabElemAlloc | null;
  readonly lruList: BpfLru | null;
  /** BPF_F_NO_PREALLOC (bpf_mem_alloc or legacy kmalloc elements) */
  readonly dyn: boolean;
  /** HTAB_ALLOC_PREALLOC / HTAB_ALLOC_BPF_MA / HTAB_ALLOC_KMALLOC */
  readonly allocMode: number;
  /** the bucket lock is the sleeping spinlock_t: a legacy kmalloc map on PREEMPT_RT (seed 000) */
  readonly sleepingLock: boolean;
  /** map_free's deferred part (main thread; resolved for preallocated maps) */
  #teardown: Promise<void> = Promise.resolve();
  /** test-only map-semantics faults (HDR_FAULTS, read once: the runtime sets them at boot) */
  readonly #faults: number;
  /** per-thread, per-map op count the faults fire on (every FAULT_PERIOD-th eligible op) */
  #faultTick = 0;

  constructor(ptr: number) {
    super(ptr, 'hash');
    const g = (off: number): number => I32[(ptr + off) >> 2]!;
    this.#faults = I32[HDR_FAULTS >> 2]! & (FAULT_LOST_UPDATE | FAULT_PHANTOM_DELETE | FAULT_NOEXIST_OVERWRITE | FAULT_DELETE_UNLOCKED);
    this.owner = g(MAP_OWNER);
    this.rec = btfRecordFromWords(g(MAP_LOCK_OFF), g(MAP_TIMER_OFF), g(MAP_GRAPH_REC));
    this.lockOff = this.rec.spinLockOff;
    this.kind = kindOf(this.typeId);
    this.percpu = this.kind === K_PERCPU || this.kind === K_LRU_PERCPU;
    this.lru = this.kind === K_LRU || this.kind === K_LRU_PERCPU;
    this.vsz = roundUp8(this.valueSize);
    this.sysValueSize = this.percpu ? nrCpus * this.vsz : this.valueSize;
    this.buckets = g(HTAB_BUCKETS);
    this.locks = g(HTAB_LOCKS);
    this.bucketsI = this.buckets >> 2;
    this.nBuckets = g(HTAB_N_BUCKETS);
    this.nMask = this.nBuckets - 1;
    this.lockMask = Math.min(HASHTAB_MAP_LOCK_COUNT - 1, this.nBuckets - 1);
    this.hashrnd = g(HTAB_HASHRND);
    this.keyOff = g(HTAB_KEY_OFF);
    this.valOff = this.keyOff + roundUp8(this.keySize);
    this.kw = (this.keySize & 3) === 0 ? this.keySize >> 2 : 0;
    this.fast1 = this.kind === K_HASH && this.kw === 1;
    this.vw = (this.valueSize & 3) === 0 && this.valueSize <= 64 && this.rec.cnt === 0 ? this.valueSize >> 2 : 0;
    this.elems = g(HTAB_ELEMS);
    this.elemSize = g(HTAB_ELEM_SIZE);
    this.numElems = g(HTAB_NUM_ELEMS);
    this.pcpuArea = g(HTAB_PCPU);
    this.values = g(HTAB_VALUES);
    this.valuesStride = g(HTAB_VALUES_STRIDE);
    this.rq = (hdrFlags & FLAG_RQSPINLOCK) !== 0;
    this.allocMode = this.lru ? HTAB_ALLOC_PREALLOC : g(HTAB_ALLOC_MODE);
    this.dyn = this.allocMode !== HTAB_ALLOC_PREALLOC;
    this.sleepingLock = this.allocMode === HTAB_ALLOC_KMALLOC && (hdrFlags & FLAG_PREEMPT_RT) !== 0;
    if (this.lru) {
      this.alloc = null;
      this.lruList = new BpfLru(g(HTAB_LRU), (node) => this.#lruDeleteNode(node));
    } else if (this.dyn) {
      this.alloc = htabDynAllocOpen(ptr, this.pcpuArea, {
        elemSize: this.elemSize, valOff: this.valOff, vsz: this.vsz, percpu: this.percpu, maxEntries: this.maxEntries,
      });
      this.lruList = null;
    } else {
      this.alloc = new HtabPreallocAlloc(g(HTAB_FREELIST), this.pcpuArea, this.kind === K_HASH, this.numElems);
      this.lruList = null;
    }
  }

  // ------------------------------------------------------------------------------------------
  // hashing and the two chain walks

  hash(key: number): number {
    if ((key & 3) === 0) {
      const kw = this.kw;
      if (kw === 1) return jhash1Word(I32[key >> 2]!, this.hashrnd);
      if (kw === 2) return jhash2Word(I32[key >> 2]!, I32[(key >> 2) + 1]!, this.hashrnd);
      if (kw !== 0) return jhash2Words(key, kw, this.hashrnd);
    }
    return htabMapHash(key, this.keySize, this.hashrnd);
  }

  /**
   * lookup_nulls_elem_raw(): lockless walk (RCU read side). Restarts when the walk ends on a
   * nulls marker that is not this bucket's: an element it passed was reused into another chain.
   * Every link (head, next) is loaded with Atomics.load (rcu_dereference): the element it names
   * was fully written before the Atomics.store that published it (docs/INTERNALS.md, "Memory-
   * ordering contract"); its key and value are then read with plain loads.
   */
  lookupNulls(key: number, hash: number): number {
    const idx = hash & this.nMask;
    const hi = (this.buckets >> 2) + idx;
    const nulls = (idx << 1) | 1;
    const ko = this.keyOff;
    if ((key & 3) === 0) {
      const kw = this.kw;
      if (kw === 1) {
        const k0 = I32[key >> 2]!;
        for (;;) {
          let n = Atomics.load(I32, hi);
          while ((n & 1) === 0) {
            if (I32[(n + ko) >> 2] === k0) { // the key determines the hash
              if (k0 === POISON_WORD && I32[n >> 2] === POISON_WORD) return this.#metPoison(n, 'key and next pointer');
              return n;
            }
            window(SITE_LOOKUP_WALK);
            n = Atomics.load(I32, n >> 2);
          }
          if (n === nulls) return 0;
          if (n === POISON_WORD) return this.#metPoison(hi << 2, 'next pointer');
        }
      }
      if (kw === 2) {
        const k0 = I32[key >> 2]!;
        const k1 = I32[(key >> 2) + 1]!;
        for (;;) {
          let n = Atomics.load(I32, hi);
          while ((n & 1) === 0) {
            if (I32[(n + ko) >> 2] === k0 && I32[(n + ko + 4) >> 2] === k1) {
              if (k0 === POISON_WORD && I32[n >> 2] === POISON_WORD) return this.#metPoison(n, 'key and next pointer');
              return n;
            }
            window(SITE_LOOKUP_WALK);
            n = Atomics.load(I32, n >> 2);
          }
          if (n === nulls) return 0;
          if (n === POISON_WORD) return this.#metPoison(hi << 2, 'next pointer');
        }
      }
    }
    const ks = this.keySize;
    for (;;) {
      let n = Atomics.load(I32, hi);
      while ((n & 1) === 0) {
        if (I32[(n + E_HASH) >> 2] === hash && kmemeq(n + ko, key, ks)) {
          if (I32[n >> 2] === POISON_WORD) return this.#metPoison(n, 'hash, key and next pointer');
          return n;
        }
        window(SITE_LOOKUP_WALK);
        n = Atomics.load(I32, n >> 2);
      }
      if (n === nulls) return 0;
      if (n === POISON_WORD) return this.#metPoison(hi << 2, 'next pointer');
    }
  }

  /**
   * lookup_elem_raw(): walk under the bucket lock (no restart needed). Plain loads: every store to
   * this chain is made under the same lock, whose Atomics acquire orders them before ours.
   */
  lookupRaw(b: number, key: number, hash: number): number {
    const ko = this.keyOff;
    const ks = this.keySize;
    let n = I32[b >> 2]!;
    if (this.kw === 1 && (key & 3) === 0) {
      const k0 = I32[key >> 2]!;
      while ((n & 1) === 0) {
        if (I32[(n + ko) >> 2] === k0) return n;
        n = I32[n >> 2]!;
      }
      return 0;
    }
    while ((n & 1) === 0) {
      if (I32[(n + E_HASH) >> 2] === hash && kmemeq(n + ko, key, ks)) return n;
      n = I32[n >> 2]!;
    }
    return 0;
  }

  /** htab_lock_bucket(): the raw bucket lock, or the sleeping one of a legacy map on RT. */
  #lock(lk: number, hash: number): number {
    return this.sleepingLock ? htabLockBucketSleeping(lk, this.pcpuArea, this.lockMask, hash, this.rq)
      : htabLockBucket(lk, this.pcpuArea, this.lockMask, hash, this.rq);
  }

  #unlock(lk: number, hash: number): void {
    if (this.sleepingLock) htabUnlockBucketSleeping(lk, this.pcpuArea, this.lockMask, hash, this.rq);
    else htabUnlockBucket(lk, this.pcpuArea, this.lockMask, hash, this.rq);
  }

  /** A lock-free walk met freed (0x6b-poisoned) memory: with RCU this can only be a bug. */
  #metPoison(at: number, what: string): number {
    splat('use_after_free', `htab '${this.name}' (map ${this.id}): lock-free lookup met freed memory: ${what} 0x6b6b6b6b (walking from 0x${at.toString(16)})`);
    return 0;
  }

  #incElemCount(): void {
    const i = (this.pcpuArea + thisCpu * CACHELINE + HP_ELEM_COUNT) >> 2;
    I32[i] = I32[i]! + 1;
  }

  #decElemCount(): void {
    const i = (this.pcpuArea + thisCpu * CACHELINE + HP_ELEM_COUNT) >> 2;
    I32[i] = I32[i]! - 1;
  }

  /** free_htab_elem() (non-LRU), after the bucket unlock: special fields first (check_and_free_fields). */
  #freeHtabElem(l: number): void {
    if (this.rec.cnt !== 0) bpfObjFreeFields(this.rec, l + this.valOff, true);
    this.#decElemCount();
    this.alloc!.freeElem(l);
  }

  /** htab_lru_push_free(): special fields first (check_and_free_fields). */
  #lruPushFree(l: number): void {
    if (this.rec.cnt !== 0) bpfObjFreeFields(this.rec, l + this.valOff, true);
    this.#decElemCount();
    this.lruList!.pushFree(l + E_LRU);
  }

  // ------------------------------------------------------------------------------------------
  // program path

  lookup(key: number): number {
    if (I32[pcpuI + PROG_LOCKED_I] !== 0) helperUnderLock('bpf_map_lookup_elem');
    if (this.fast1 && (key & 3) === 0) {
      // the common case inlined: plain hash, one-word key (jhash2 of one word, word compare)
      const m = I32;
      const k0 = m[key >> 2]!;
      const hash = jhash1Word(k0, this.hashrnd);
      const idx = hash & this.nMask;
      const hi = this.bucketsI + idx;
      const ko = this.keyOff;
      for (;;) {
        let n = Atomics.load(m, hi); // rcu_dereference: acquire
        while ((n & 1) === 0) {
          // a one-word key determines its hash: comparing the key alone is enough
          if (m[(n + ko) >> 2] === k0) {
            if (k0 === POISON_WORD && m[n >> 2] === POISON_WORD) return this.#metPoison(n, 'key and next pointer');
            return n + this.valOff;
          }
          window(SITE_LOOKUP_WALK); // only past a miss: a hit on the first element passes none
          n = Atomics.load(m, n >> 2);
        }
        if (n === ((idx << 1) | 1)) return 0;
        // restart: an element we passed was reused into another chain, or (a bug) freed
        if (n === POISON_WORD) return this.#metPoison(hi << 2, 'next pointer');
      }
    }
    return this.#lookupGeneric(key);
  }

  #lookupGeneric(key: number): number {
    const l = this.lookupNulls(key, this.hash(key));
    if (l === 0) return 0;
    const kind = this.kind;
    if (kind === K_HASH) return l + this.valOff;
    if (kind !== K_PERCPU && U8[l + E_LRU + LN_REF] === 0) U8[l + E_LRU + LN_REF] = 1; // bpf_lru_node_set_ref
    if (kind === K_LRU) return l + this.valOff;
    const cpu = thisCpu;
    if (cpu >= nrCpus) return 0;
    return I32[(l + this.valOff) >> 2]! + cpu * this.valuesStride;
  }

  ownsValue(value: number): boolean | null {
    if (this.dyn) return null;
    const off = value - this.valOff - this.elems;
    return off >= 0 && off < this.numElems * this.elemSize && (off % this.elemSize) === 0;
  }

  lookupPercpu(key: number, cpu: number): number {
    if (I32[pcpuI + PROG_LOCKED_I] !== 0) helperUnderLock('bpf_map_lookup_percpu_elem');
    if (!this.percpu || cpu < 0 || cpu >= nrCpus) return 0;
    const l = this.lookupNulls(key, this.hash(key));
    if (l === 0) return 0;
    if (this.kind === K_LRU_PERCPU && U8[l + E_LRU + LN_REF] === 0) U8[l + E_LRU + LN_REF] = 1;
    return I32[(l + this.valOff) >> 2]! + cpu * this.valuesStride;
  }

  update(key: number, value: number, flags: number): number {
    if (I32[pcpuI + PROG_LOCKED_I] !== 0) helperUnderLock('bpf_map_update_elem');
    return this.#update(key, value, flags, false);
  }

  /** Both paths; `sys`: per-CPU values come as nrCpus slots (syscall) instead of this CPU's one. */
  #update(key: number, value: number, flags: number, sys: boolean): number {
    switch (this.kind) {
      case K_HASH: return this.#htabUpdate(key, value, flags);
      case K_PERCPU: return this.#percpuUpdate(key, value, flags, sys);
      case K_LRU: return this.#lruUpdate(key, value, flags);
      default: return this.#lruPercpuUpdate(key, value, flags, sys);
    }
  }

  delete(key: number): number {
    if (I32[pcpuI + PROG_LOCKED_I] !== 0) helperUnderLock('bpf_map_delete_elem');
    const hash = this.hash(key);
    const bi = hash & this.nMask;
    const b = this.buckets + (bi << 2);
    const lk = this.locks + (bi << 2);
    const unlocked = (this.#faults & FAULT_DELETE_UNLOCKED) !== 0; // test fault: no bucket lock
    let ret = unlocked ? 0 : this.#lock(lk, hash);
    if (ret !== 0) return ret;
    window(SITE_DELETE_LOCKED);
    let l = this.lookupRaw(b, key, hash);
    if (unlocked) window(SITE_DELETE_LOCKED); // found, not yet unlinked: where a racing writer slips in
    if (l !== 0 && (this.#faults & FAULT_PHANTOM_DELETE) !== 0 && this.#faultFires()) l = -1; // test fault: report 0, unlink nothing
    if (l > 0) hlistNullsDelRcu(l);
    else if (l === 0) ret = -ENOENT;
    if (l < 0) l = 0;
    if (!unlocked) this.#unlock(lk, hash);
    if (l !== 0) {
      if (this.lru) this.#lruPushFree(l);
      else this.#freeHtabElem(l);
    }
    return ret;
  }

  /** htab_map_update_elem (plain hash). */
  #htabUpdate(key: number, value: number, flags: number): number {
    if (((flags & ~BPF_F_LOCK) >>> 0) > BPF_EXIST) return -EINVAL;
    const hash = this.hash(key);
    const bi = hash & this.nMask;
    const b = this.buckets + (bi << 2);
    const lk = this.locks + (bi << 2);
    if ((flags & BPF_F_LOCK) !== 0) {
      if (this.lockOff < 0) return -EINVAL;
      // find the element without the bucket lock; update it in place under its spin lock
      const l = this.lookupNulls(key, hash);
      const r = checkFlags(l, flags);
      if (r !== 0) return r;
      if (l !== 0) return copyMapValueLocked(l + this.valOff, value, this.valueSize, this.rec, false);
      // not found: take the bucket lock and look again
    }
    let ret = this.#lock(lk, hash);
    if (ret !== 0) return ret;
    window(SITE_UPDATE_LOCKED);
    const lOld = this.lookupRaw(b, key, hash);
    ret = checkFlags(lOld, flags);
    if (this.#faults !== 0) ret = this.#updateFault(lOld, flags, ret);
    if (ret === 1) {
      ret = 0; // test fault: the replace "succeeded" without changing anything
    } else if (ret === 0) {
      if (lOld !== 0 && (flags & BPF_F_LOCK) !== 0) {
        ret = copyMapValueLocked(lOld + this.valOff, value, this.valueSize, this.rec, false);
      } else {
        const lNew = this.alloc!.allocElem(lOld);
        if (lNew < 0) {
          ret = lNew;
        } else {
          copyKeyIn(lNew + this.keyOff, key, this.kw, this.keySize);
          // check_and_init_map_value(): a legacy kmalloc element is fresh (poisoned) memory nobody
          // can reach: initialise its fields; a reused one (freelist, extra_elems, bpf_mem_alloc
          // cache) has valid fields, retired when it left the map: reopen them without touching
          // lock words (btf_record.ts)
          if (this.rec.cnt !== 0) {
            if (this.allocMode === HTAB_ALLOC_KMALLOC) checkAndInitMapValue(lNew + this.valOff, this.rec);
            else bpfObjReuseFields(this.rec, lNew + this.valOff);
          }
          copyValueIn(lNew + this.valOff, value, this.vw, this.valueSize, this.rec);
          I32[(lNew + E_HASH) >> 2] = hash;
          hlistNullsAddHeadRcu(lNew, b);
          if (lOld !== 0) {
            hlistNullsDelRcu(lOld);
            // prealloc: l_old is already this CPU's extra element; free its special fields before
            // it can be reused (as the kernel, under the lock: the timer free never waits)
            if (!this.dyn && this.rec.cnt !== 0) bpfObjFreeFields(this.rec, lOld + this.valOff, true);
          } else {
            this.#incElemCount();
          }
        }
      }
    }
    this.#unlock(lk, hash);
    // irqrestore: the refill irq_work bpf_mem_alloc raised under the lock is delivered here (!RT)
    if (this.dyn) window(SITE_UPDATE_UNLOCKED);
    if (ret === 0 && lOld !== 0 && (flags & BPF_F_LOCK) === 0) {
      if (this.dyn && this.rec.cnt !== 0) bpfObjFreeFields(this.rec, lOld + this.valOff, true);
      this.alloc!.freeReplaced(lOld);
    }
    return ret;
  }

  /**
   * Test faults of the plain hash update: 1 = report success and change nothing (lost update);
   * an -EEXIST of BPF_NOEXIST turned into a replace (noexist overwrite). Otherwise `ret`.
   */
  #updateFault(lOld: number, flags: number, ret: number): number {
    if (lOld === 0) return ret;
    if (ret === -EEXIST && (this.#faults & FAULT_NOEXIST_OVERWRITE) !== 0 && this.#faultFires()) return 0;
    if (ret === 0 && (flags & BPF_F_LOCK) === 0 && (this.#faults & FAULT_LOST_UPDATE) !== 0 && this.#faultFires()) return 1;
    return ret;
  }

  #faultFires(): boolean { return ++this.#faultTick % FAULT_PERIOD === 0; }

  /** pcpu_copy_value(): existing element, in place. */
  #pcpuCopyValue(pptr: number, value: number, onallcpus: boolean): void {
    if (!onallcpus) {
      const cpu = thisCpu;
      if (cpu < nrCpus) kcopy(pptr + cpu * this.valuesStride, value, this.valueSize);
      return;
    }
    const vsz = this.vsz;
    for (let cpu = 0; cpu < nrCpus; cpu++) kcopy(pptr + cpu * this.valuesStride, value + cpu * vsz, vsz);
  }

  /** pcpu_init_value(): new element; from a program: this CPU's slot, zeroes elsewhere. */
  #pcpuInitValue(pptr: number, value: number, onallcpus: boolean): void {
    if (onallcpus) { this.#pcpuCopyValue(pptr, value, true); return; }
    const me = thisCpu;
    for (let cpu = 0; cpu < nrCpus; cpu++) {
      const dst = pptr + cpu * this.valuesStride;
      if (cpu === me) kcopy(dst, value, this.valueSize);
      else zeroMapValue(dst, this.valueSize, EMPTY_RECORD);
    }
  }

  /** __htab_percpu_map_update_elem */
  #percpuUpdate(key: number, value: number, flags: number, onallcpus: boolean): number {
    if ((flags >>> 0) > BPF_EXIST) return -EINVAL;
    const hash = this.hash(key);
    const bi = hash & this.nMask;
    const b = this.buckets + (bi << 2);
    const lk = this.locks + (bi << 2);
    let ret = this.#lock(lk, hash);
    if (ret !== 0) return ret;
    window(SITE_UPDATE_LOCKED);
    const lOld = this.lookupRaw(b, key, hash);
    ret = checkFlags(lOld, flags);
    if (ret === 0) {
      if (lOld !== 0) {
        this.#pcpuCopyValue(I32[(lOld + this.valOff) >> 2]!, value, onallcpus);
      } else {
        const lNew = this.alloc!.allocElem(0);
        if (lNew < 0) {
          ret = lNew;
        } else {
          copyKeyIn(lNew + this.keyOff, key, this.kw, this.keySize);
          this.#pcpuInitValue(I32[(lNew + this.valOff) >> 2]!, value, onallcpus);
          I32[(lNew + E_HASH) >> 2] = hash;
          hlistNullsAddHeadRcu(lNew, b);
          this.#incElemCount();
        }
      }
    }
    this.#unlock(lk, hash);
    if (this.dyn) window(SITE_UPDATE_UNLOCKED);
    return ret;
  }

  /** prealloc_lru_pop(): a free LRU element with its key copied, or 0. No bucket lock held. */
  #lruPop(key: number, hash: number): number {
    const node = this.lruList!.popFree(hash);
    if (node === 0) return 0;
    this.#incElemCount();
    const l = node - E_LRU;
    copyKeyIn(l + this.keyOff, key, this.kw, this.keySize);
    if (this.rec.cnt !== 0) bpfObjReuseFields(this.rec, l + this.valOff);
    return l;
  }

  /** htab_lru_map_update_elem */
  #lruUpdate(key: number, value: number, flags: number): number {
    if ((flags >>> 0) > BPF_EXIST) return -EINVAL;
    const hash = this.hash(key);
    const bi = hash & this.nMask;
    const b = this.buckets + (bi << 2);
    const lk = this.locks + (bi << 2);
    // Pop before the bucket lock: getting a free node may evict, which takes bucket locks.
    const lNew = this.#lruPop(key, hash);
    if (lNew === 0) return -ENOMEM;
    copyValueIn(lNew + this.valOff, value, this.vw, this.valueSize, this.rec);
    let lOld = 0;
    let ret = htabLockBucket(lk, this.pcpuArea, this.lockMask, hash, this.rq);
    if (ret === 0) {
      window(SITE_UPDATE_LOCKED);
      lOld = this.lookupRaw(b, key, hash);
      ret = checkFlags(lOld, flags);
      if (ret === 0) {
        hlistNullsAddHeadRcu(lNew, b);
        if (lOld !== 0) {
          if (U8[lNew + E_LRU + LN_REF] === 0) U8[lNew + E_LRU + LN_REF] = 1;
          hlistNullsDelRcu(lOld);
        }
      }
      htabUnlockBucket(lk, this.pcpuArea, this.lockMask, hash, this.rq);
    }
    if (ret !== 0) this.#lruPushFree(lNew);
    else if (lOld !== 0) this.#lruPushFree(lOld);
    return ret;
  }

  /** __htab_lru_percpu_map_update_elem */
  #lruPercpuUpdate(key: number, value: number, flags: number, onallcpus: boolean): number {
    if ((flags >>> 0) > BPF_EXIST) return -EINVAL;
    const hash = this.hash(key);
    const bi = hash & this.nMask;
    const b = this.buckets + (bi << 2);
    const lk = this.locks + (bi << 2);
    let lNew = 0;
    if (flags !== BPF_EXIST) {
      lNew = this.#lruPop(key, hash);
      if (lNew === 0) return -ENOMEM;
    }
    let ret = htabLockBucket(lk, this.pcpuArea, this.lockMask, hash, this.rq);
    if (ret === 0) {
      window(SITE_UPDATE_LOCKED);
      const lOld = this.lookupRaw(b, key, hash);
      ret = checkFlags(lOld, flags);
      if (ret === 0) {
        if (lOld !== 0) {
          if (U8[lOld + E_LRU + LN_REF] === 0) U8[lOld + E_LRU + LN_REF] = 1;
          this.#pcpuCopyValue(I32[(lOld + this.valOff) >> 2]!, value, onallcpus);
        } else {
          this.#pcpuInitValue(I32[(lNew + this.valOff) >> 2]!, value, onallcpus);
          hlistNullsAddHeadRcu(lNew, b);
          lNew = 0;
        }
      }
      htabUnlockBucket(lk, this.pcpuArea, this.lockMask, hash, this.rq);
    }
    if (lNew !== 0) this.#lruPushFree(lNew);
    return ret;
  }

  /**
   * htab_lru_map_delete_node(): the LRU's del_from_htab. Called with LRU locks held (order
   * lru -> bucket). Returns true when the element was unlinked.
   */
  #lruDeleteNode(node: number): boolean {
    const tgt = node - E_LRU;
    const hash = I32[(tgt + E_HASH) >> 2]!;
    const bi = hash & this.nMask;
    const b = this.buckets + (bi << 2);
    const lk = this.locks + (bi << 2);
    if (htabLockBucket(lk, this.pcpuArea, this.lockMask, hash, this.rq) !== 0) return false;
    window(SITE_LRU_EVICT_LOCKED);
    let found = false;
    let n = I32[b >> 2]!; // under the bucket lock: plain loads
    while ((n & 1) === 0) {
      if (n === tgt) {
        hlistNullsDelRcu(n);
        this.#decElemCount();
        found = true;
        break;
      }
      n = I32[n >> 2]!;
    }
    htabUnlockBucket(lk, this.pcpuArea, this.lockMask, hash, this.rq);
    // evicted: free its special fields after the bucket unlock (its timer's callback may be the
    // one running this eviction: the free never waits for it)
    if (found && this.rec.cnt !== 0) bpfObjFreeFields(this.rec, tgt + this.valOff, true);
    return found;
  }

  // ------------------------------------------------------------------------------------------
  // syscall path

  /** Copy element `l`'s value (all CPUs for per-CPU maps) to `out`. */
  #copyValueOut(l: number, out: number, flags: number): number {
    if (this.percpu) {
      const pptr = I32[(l + this.valOff) >> 2]!;
      const vsz = this.vsz;
      for (let cpu = 0; cpu < nrCpus; cpu++) kcopy(out + cpu * vsz, pptr + cpu * this.valuesStride, vsz);
      return 0;
    }
    const v = l + this.valOff;
    if ((flags & BPF_F_LOCK) !== 0) {
      const err = copyMapValueLocked(out, v, this.valueSize, this.rec, true);
      if (err !== 0) return err;
    } else {
      copyMapValue(out, v, this.valueSize, this.rec);
    }
    checkAndInitMapValue(out, this.rec);
    return 0;
  }

  sysLookup(key: number, out: number, flags: number): number {
    if (sysLockFlagsCheck(flags, this.lockOff) !== 0) return -EINVAL;
    // map_lookup_elem_sys_only: an LRU lookup from user space does not set the ref bit
    const l = this.lookupNulls(key, this.hash(key));
    if (l === 0) return -ENOENT;
    return this.#copyValueOut(l, out, flags);
  }

  sysUpdate(key: number, value: number, flags: number): number {
    if ((flags & BPF_F_LOCK) !== 0 && this.lockOff < 0) return -EINVAL;
    return this.#update(key, value, flags, true);
  }

  sysDelete(key: number): number {
    return this.delete(key);
  }

  /**
   * map_lookup_and_delete_elem's flag check (BPF_F_LOCK only, and only with a spin lock: per-CPU
   * maps never have one), then __htab_map_lookup_and_delete_elem.
   */
  sysLookupAndDelete(key: number, out: number, flags: number): number {
    if (sysLockFlagsCheck(flags, this.lockOff) !== 0) return -EINVAL;
    const hash = this.hash(key);
    const bi = hash & this.nMask;
    const b = this.buckets + (bi << 2);
    const lk = this.locks + (bi << 2);
    let ret = this.#lock(lk, hash);
    if (ret !== 0) return ret;
    window(SITE_LAD_LOCKED);
    const l = this.lookupRaw(b, key, hash);
    if (l === 0) {
      ret = -ENOENT;
    } else {
      ret = this.#copyValueOut(l, out, flags);
      if (ret === 0) hlistNullsDelRcu(l);
    }
    this.#unlock(lk, hash);
    if (l !== 0 && ret === 0) {
      if (this.lru) this.#lruPushFree(l);
      else this.#freeHtabElem(l);
    }
    return ret;
  }

  /**
   * htab_map_get_next_key(): key 0 → first element. A key not found (deleted meanwhile) restarts
   * at bucket 0, so a concurrent delete can make an iteration yield duplicates, as the kernel.
   * Order: bucket index ascending, most recent first within a bucket.
   */
  getNextKey(key: number, outKey: number): number {
    let i = 0;
    if (key !== 0) {
      const hash = this.hash(key);
      const l = this.lookupNulls(key, hash);
      if (l !== 0) {
        const next = Atomics.load(I32, (l + E_NEXT) >> 2); // lockless: rcu_dereference
        if ((next & 1) === 0) {
          kcopy(outKey, next + this.keyOff, this.keySize);
          return 0;
        }
        i = (hash & this.nMask) + 1;
      }
    }
    const hb = this.buckets >> 2;
    for (; i < this.nBuckets; i++) {
      const first = Atomics.load(I32, hb + i);
      if ((first & 1) === 0) {
        kcopy(outKey, first + this.keyOff, this.keySize);
        return 0;
      }
    }
    return -ENOENT;
  }

  /** __htab_map_lookup_and_delete_batch (reference §2.11). */
  lookupBatch(inBatch: number, keys: number, values: number, count: number, elemFlags: number, flags: number, doDelete: boolean, res: number): number {
    const resI = res >> 2;
    I32[resI + (BATCH_RES_COUNT >> 2)] = 0;
    I32[resI + (BATCH_RES_OUT >> 2)] = inBatch;
    if ((elemFlags & ~BPF_F_LOCK) !== 0 || ((elemFlags & BPF_F_LOCK) !== 0 && (this.lockOff < 0 || this.percpu))) return -EINVAL;
    if (flags !== 0) return -EINVAL;
    if (count === 0) return 0;
    let batch = inBatch >>> 0;
    if (batch >= this.nBuckets) return -ENOENT;
    const ks = this.keySize;
    const vs = this.sysValueSize;
    let total = 0;
    let ret = 0;
    const limit = this.numElems + 1;
    for (;;) {
      const b = this.buckets + (batch << 2);
      const lk = this.locks + (batch << 2);
      // count without the lock (RCU: Atomics loads of the links); lock only a non-empty bucket
      // and count again
      let cnt = 0;
      for (let n = Atomics.load(I32, b >> 2); (n & 1) === 0 && cnt < limit; n = Atomics.load(I32, n >> 2)) cnt++;
      if (cnt !== 0) {
        const err = this.#lock(lk, batch);
        if (err !== 0) { ret = err; break; }
        window(SITE_BATCH_LOCKED);
        // under the bucket lock from here to the unlock: plain loads of the chain
        cnt = 0;
        for (let n = I32[b >> 2]!; (n & 1) === 0; n = I32[n >> 2]!) cnt++;
        if (cnt > count - total) {
          if (total === 0) ret = -ENOSPC;
          this.#unlock(lk, batch);
          break;
        }
        let toFree = 0;
        let dk = keys + total * ks;
        let dv = values + total * vs;
        let n = I32[b >> 2]!;
        while ((n & 1) === 0) {
          const next = I32[n >> 2]!;
          kcopy(dk, n + this.keyOff, ks);
          const e = this.#copyValueOut(n, dv, elemFlags);
          if (e !== 0 && ret === 0) ret = e;
          if (doDelete) {
            hlistNullsDelRcu(n);
            I32[(n + E_FLINK) >> 2] = toFree; // batch_flink aliases the freed pprev
            toFree = n;
          }
          dk += ks;
          dv += vs;
          n = next;
        }
        this.#unlock(lk, batch);
        while (toFree !== 0) {
          const l = toFree;
          toFree = I32[(l + E_FLINK) >> 2]!;
          if (this.lru) this.#lruPushFree(l);
          else this.#freeHtabElem(l);
        }
        if (ret !== 0) break;
      }
      total += cnt;
      batch++;
      if (batch >= this.nBuckets) { ret = -ENOENT; break; }
    }
    I32[resI + (BATCH_RES_COUNT >> 2)] = total;
    I32[resI + (BATCH_RES_OUT >> 2)] = batch;
    return ret;
  }

  // ------------------------------------------------------------------------------------------
  // lifetime and introspection

  /**
   * map_release_uref (htab_map_free_timers_and_wq): cancel and free the timer of every value
   * (preallocated: every element, free ones hold none; dynamic: every linked element), waiting
   * for callbacks running elsewhere. Main thread.
   */
  releaseUref(): void {
    if (!this.rec.hasTimer) return;
    if (!this.dyn) {
      for (let i = 0; i < this.numElems; i++) bpfObjFreeTimer(this.rec, this.elems + i * this.elemSize + this.valOff);
    } else {
      const hb = this.buckets >> 2;
      for (let i = 0; i < this.nBuckets; i++) {
        for (let n = Atomics.load(I32, hb + i); (n & 1) === 0 && n !== POISON_WORD; n = Atomics.load(I32, n >> 2)) {
          bpfObjFreeTimer(this.rec, n + this.valOff);
        }
      }
    }
    bpfTimersFlushDeferred();
  }

  /**
   * map_free (main thread; nothing can reach the map any more). Preallocated: everything now.
   * Dynamic: every linked element back to its allocator (bpf_mem_cache_free / kfree), buckets
   * now; the allocator's deferred part (bpf_mem_alloc_destroy's rcu_barrier, legacy elements still
   * waiting for their grace period) finishes later: whenFreed() / htabFreeIdle().
   */
  free(): void {
    if (!this.dyn && this.rec.cnt !== 0) {
      // htab_free_prealloced_fields()
      for (let i = 0; i < this.numElems; i++) bpfObjFreeFields(this.rec, this.elems + i * this.elemSize + this.valOff, true);
    }
    if (this.lruList !== null) {
      bpfLruDestroy(this.lruList.ptr);
    } else if (!this.dyn) {
      void this.alloc!.destroy();
    } else {
      // htab_free_malloced_elems / delete_all_elements (nothing else can reach the map: plain loads)
      const alloc = this.alloc!;
      const hb = this.buckets >> 2;
      for (let i = 0; i < this.nBuckets; i++) {
        let n = I32[hb + i]!;
        while ((n & 1) === 0) {
          const next = I32[n >> 2]!;
          if (this.rec.cnt !== 0) bpfObjFreeFields(this.rec, n + this.valOff, true);
          alloc.freeOnDestroy(n);
          n = next;
        }
        I32[hb + i] = (i << 1) | 1;
      }
      this.#teardown = trackTeardown(alloc.destroy());
    }
    if (this.values !== 0) kfree(this.values);
    if (this.elems !== 0) kfree(this.elems);
    kfree(this.buckets);
    kfree(I32[(this.ptr + HTAB_RAW_PCPU) >> 2]!);
  }

  /**
   * Resolves when the memory of this map is back in the slab after free() (at once for
   * preallocated maps and for maps not freed yet). Main thread. Never rejects.
   */
  whenFreed(): Promise<void> {
    return this.#teardown;
  }

  /** htab_map_mem_usage() (reference §2.2). */
  memUsage(): number {
    let usage = SIZEOF_BPF_MAP + SIZEOF_BUCKET * this.nBuckets + 4 * nrCpuIds * HASHTAB_MAP_LOCK_COUNT;
    if (this.dyn) return usage + this.alloc!.memUsage();
    usage += this.elemSize * this.numElems;
    if (this.percpu) usage += this.vsz * nrCpus * this.numElems;
    else if (!this.lru) usage += 4 * nrCpuIds;
    return usage;
  }

  elemCount(): number {
    let n = 0;
    for (let cpu = 0; cpu < nrCpuIds; cpu++) n += I32[(this.pcpuArea + cpu * CACHELINE + HP_ELEM_COUNT) >> 2]!;
    return n;
  }

  stats(): BpfMapStats {
    return {
      elements: this.elemCount(),
      memoryBytes: this.memUsage(),
      maxEntries: this.maxEntries,
      freeElements: this.lruList !== null ? this.lruList.freeCount(this.numElems) : this.alloc!.freeCount(),
      spareElements: this.alloc !== null ? this.alloc.spareCount() : 0,
      nBuckets: this.nBuckets,
    };
  }

  /**
   * Invariants of a quiescent map (no operation in flight). Every map: chains well formed (each
   * element once, in its hash's bucket, pprev right, the bucket's own nulls marker at the end),
   * lock words and map_locked slots 0, per-CPU element counters = elements in buckets.
   * Preallocated: conservation over buckets, freelist and spares (LRU: lists). Dynamic: every
   * linked element is a live allocation of the map's allocator (not poisoned), the element count
   * equals the live elements (the percpu_counter's exact sum; its folded part within
   * (batch-1) × CPU ids), live <= max_entries (+ htabDynOvershoot for bpf_mem_alloc), and the
   * bpf_mem_alloc caches are consistent.
   */
  check(): string[] {
    const out: string[] = [];
    const N = this.numElems;
    const dyn = this.dyn;
    const alloc = this.alloc;
    // prealloc: 0 unseen, 1 bucket, 2+ held elsewhere (LRU: type + 2); dynamic: the set of linked elements
    const where = new Uint8Array(dyn ? 0 : N);
    const seen = new Set<number>();
    const limit = dyn ? this.maxEntries + htabDynOvershoot(this.allocMode, (I32[(this.ptr + HTAB_DYN_FLAGS) >> 2]! & HTAB_DYN_PERCPU_COUNTER) !== 0) : N;
    const elemIndex = (e: number): number => {
      const off = e - this.elems;
      if (off < 0 || off % this.elemSize !== 0 || off / this.elemSize >= N) return -1;
      return off / this.elemSize;
    };
    const label = (e: number): string => (dyn ? `element 0x${e.toString(16)}` : `element ${elemIndex(e)}`);
    let live = 0;
    const hb = this.buckets >> 2;
    for (let i = 0; i < this.nBuckets; i++) {
      const b = this.buckets + (i << 2);
      const lw = lockWord(this.locks + (i << 2));
      if (lw !== 0) out.push(`bucket ${i}: lock word 0x${lw.toString(16)}, expected 0`);
      let prevLink = b;
      let n = I32[hb + i]!;
      let steps = 0;
      while ((n & 1) === 0) {
        if (++steps > limit) { out.push(`bucket ${i}: chain longer than ${limit} elements (cycle?)`); break; }
        if (dyn) {
          if (seen.has(n)) { out.push(`${label(n)} is reachable twice (again in bucket ${i})`); break; }
          const bad = alloc!.checkElem(n);
          if (bad !== null) { out.push(`bucket ${i}: ${label(n)}: ${bad}`); break; }
          seen.add(n);
        } else {
          const idx = elemIndex(n);
          if (idx < 0) { out.push(`bucket ${i}: link 0x${n.toString(16)} is not an element`); break; }
          if (where[idx] !== 0) out.push(`element ${idx} is in bucket ${i} and elsewhere (twice)`);
          where[idx] = 1;
        }
        live++;
        const h = I32[(n + E_HASH) >> 2]!;
        if ((h & this.nMask) !== i) out.push(`${label(n)} with hash 0x${(h >>> 0).toString(16)} is in bucket ${i}`);
        if (h !== this.hash(n + this.keyOff)) out.push(`${label(n)}: stored hash does not match its key`);
        if (I32[(n + E_PPREV) >> 2] !== prevLink) out.push(`${label(n)} in bucket ${i}: pprev 0x${(I32[(n + E_PPREV) >> 2]! >>> 0).toString(16)}, expected 0x${prevLink.toString(16)}`);
        prevLink = n + E_NEXT;
        n = I32[n >> 2]!;
      }
      if ((n & 1) === 1 && n !== ((i << 1) | 1)) out.push(`bucket ${i}: chain ends in ${n === POISON_WORD ? 'poison 0x6b6b6b6b' : `nulls marker ${n >>> 1}`}, expected ${i}`);
    }
    for (let cpu = 0; cpu < nrCpuIds; cpu++) {
      const base = this.pcpuArea + cpu * CACHELINE + HP_MAP_LOCKED;
      for (let s = 0; s < HASHTAB_MAP_LOCK_COUNT; s++) {
        const v = I32[(base + s * 4) >> 2]!;
        if (v !== 0) out.push(`map_locked[${s}] of cpu ${cpu} is ${v}, expected 0`);
      }
    }
    const counted = this.elemCount();
    if (counted !== live) out.push(`element count: per-CPU counters sum to ${counted}, buckets hold ${live}`);
    if (dyn) {
      alloc!.checkCount(live, out);
      alloc!.checkHeld(() => {}, out);
      return out;
    }
    if (live > this.maxEntries) out.push(`${live} live elements exceed max_entries ${this.maxEntries}`);
    if (this.percpu) {
      for (let i = 0; i < N; i++) {
        const e = this.elems + i * this.elemSize;
        if (I32[(e + this.valOff) >> 2] !== this.values + i * this.vsz) out.push(`element ${i}: per-CPU value pointer changed`);
      }
    }
    let held = 0;
    if (this.lruList !== null) {
      this.lruList.check(N, (node, type, list) => {
        const idx = elemIndex(node - E_LRU);
        if (idx < 0) { out.push(`lru: ${list} holds 0x${node.toString(16)}, not an element`); return; }
        const w = where[idx]!;
        const inLru = type === BPF_LRU_LIST_T_ACTIVE || type === BPF_LRU_LIST_T_INACTIVE || type === BPF_LRU_LOCAL_LIST_T_PENDING;
        if (w >= 2) out.push(`element ${idx} is on two LRU lists`);
        else if (w === 1 && !inLru) out.push(`element ${idx} is in a bucket and on LRU ${list}`);
        else if (w === 0 && inLru) out.push(`element ${idx} is on LRU ${list} but in no bucket`);
        where[idx] = 2 + type;
        held++;
      }, out);
      for (let i = 0; i < N; i++) if (where[i] === 1) out.push(`element ${i} is in a bucket but on no LRU list`);
      if (held !== N) out.push(`conservation: ${held} elements on LRU lists, expected ${N} (max_entries)`);
    } else {
      alloc!.checkHeld((e, list) => {
        const idx = elemIndex(e);
        if (idx < 0) { out.push(`${list} holds 0x${e.toString(16)}, not an element`); return; }
        if (where[idx] !== 0) out.push(`element ${idx} is on ${list} and elsewhere (twice)`);
        where[idx] = 2;
        held++;
      }, out);
      if (live + held !== N) {
        out.push(`conservation: free + spares (${held}) + live (${live}) = ${held + live}, expected ${N} (max_entries ${this.maxEntries}${this.kind === K_HASH ? ` + ${nrCpuIds} spares` : ''})`);
      }
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// map_free's deferred part (main thread)

let teardowns = new Set<Promise<void>>();
let teardownGen = -1; // arenaGeneration this state belongs to (a number: keeps no arena alive)

/** Teardown bookkeeping belongs to one arena (main thread). */
function teardownSet(): Set<Promise<void>> {
  if (teardownGen !== arenaGeneration) {
    teardownGen = arenaGeneration;
    teardowns = new Set();
  }
  return teardowns;
}

function trackTeardown(p: Promise<void>): Promise<void> {
  const set = teardownSet();
  const t: Promise<void> = p.then(() => { set.delete(t); });
  set.add(t);
  return t;
}

/**
 * Resolves when every dynamic hash map freed so far has its memory back in the slab: the
 * bpf_mem_alloc caches destroyed (after their rcu_barrier) and legacy elements past their grace
 * period, element owners retired. Main thread; needs the RCU coordinator running (a Runtime). After
 * `m.close()` (or the last Program.unload), `await htabFreeIdle()` then memStats() is exact.
 */
export async function htabFreeIdle(): Promise<void> {
  const set = teardownSet();
  while (set.size > 0) await Promise.all([...set]);
}

// ---------------------------------------------------------------------------------------------
// creation (main thread)

function fail(errno: number, msg: string): never {
  throw new BpfError(errno, msg);
}

/** htab_map_alloc_check(): throws BpfError naming the offending field. */
export function htabMapAllocCheck(spec: ResolvedMapSpec): void {
  const percpu = spec.typeId === BPF_MAP_TYPE_PERCPU_HASH || spec.typeId === BPF_MAP_TYPE_LRU_PERCPU_HASH;
  const lru = spec.typeId === BPF_MAP_TYPE_LRU_HASH || spec.typeId === BPF_MAP_TYPE_LRU_PERCPU_HASH;
  const f = spec.flags;
  if ((f & ~HTAB_CREATE_FLAG_MASK) !== 0) fail(EINVAL, `flags has bits not valid for ${spec.type} maps: 0x${((f & ~HTAB_CREATE_FLAG_MASK) >>> 0).toString(16)}`);
  if (!lru && (f & BPF_F_NO_COMMON_LRU) !== 0) fail(EINVAL, `flags: BPF_F_NO_COMMON_LRU is only valid for LRU maps, not ${spec.type}`);
  if (lru && (f & BPF_F_NO_PREALLOC) !== 0) fail(ENOTSUPP, `flags: BPF_F_NO_PREALLOC is not supported for ${spec.type} maps (LRU maps are always preallocated)`);
  if ((f & BPF_F_NUMA_NODE) !== 0 && (percpu || (f & BPF_F_NO_COMMON_LRU) !== 0)) fail(EINVAL, 'flags: BPF_F_NUMA_NODE is not valid with per-CPU values or per-CPU LRU lists');
  if (spec.maxEntries === 0) fail(EINVAL, 'maxEntries must not be 0');
  if (spec.keySize === 0) fail(EINVAL, 'keySize must not be 0');
  if (spec.valueSize === 0) fail(EINVAL, 'valueSize must not be 0');
  if (spec.keySize + spec.valueSize >= KMALLOC_MAX_SIZE - E_KEY_LRU) {
    fail(E2BIG, `keySize + valueSize (${spec.keySize + spec.valueSize}) must be below ${KMALLOC_MAX_SIZE - E_KEY_LRU}`);
  }
  if (percpu && roundUp8(spec.valueSize) > PCPU_MIN_UNIT_SIZE) fail(E2BIG, `valueSize of a per-CPU map must be at most ${PCPU_MIN_UNIT_SIZE}; got ${spec.valueSize}`);
  if (spec.maxEntries > 2 ** 31) fail(E2BIG, `maxEntries must be at most 2^31; got ${spec.maxEntries}`);
}

function roundupPowOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** A per-map hash seed derived from the runtime seed (deterministic per boot). */
function deriveHashrnd(serial: number): number {
  let x = (headerI32(HDR_SEED) ^ Math.imul(serial, 0x9e3779b9)) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) | 0;
}

/**
 * htab_map_alloc(): fill in struct bpf_htab at `ptr` (whose common header registry.ts wrote) and
 * allocate buckets, per-CPU lines and the preallocated elements, or (BPF_F_NO_PREALLOC) the
 * dynamic allocator chosen by the runtime's dynAlloc. Throws BpfError (ENOMEM, E2BIG) after
 * freeing what it took. May lower MAP_MAX_ENTRIES (per-CPU LRU rounding).
 */
export function htabMapAlloc(ptr: number, spec: ResolvedMapSpec, owner: number): void {
  const typeId = spec.typeId;
  const percpu = typeId === BPF_MAP_TYPE_PERCPU_HASH || typeId === BPF_MAP_TYPE_LRU_PERCPU_HASH;
  const lru = typeId === BPF_MAP_TYPE_LRU_HASH || typeId === BPF_MAP_TYPE_LRU_PERCPU_HASH;
  const percpuLru = (spec.flags & BPF_F_NO_COMMON_LRU) !== 0;
  let maxEntries = spec.maxEntries;
  if (percpuLru) {
    // every CPU's list gets the same number of elements, at least one
    const r = Math.ceil(maxEntries / nrCpuIds) * nrCpuIds;
    maxEntries = r > 2 ** 32 - 1 ? Math.floor(maxEntries / nrCpuIds) * nrCpuIds : r;
  }
  if (maxEntries > 2 ** 31) fail(E2BIG, `maxEntries must be at most 2^31; got ${maxEntries}`);
  const nBuckets = roundupPowOfTwo(maxEntries);
  const dyn = !lru && (spec.flags & BPF_F_NO_PREALLOC) !== 0;
  const mode = !dyn ? HTAB_ALLOC_PREALLOC : (hdrFlags & FLAG_DYN_KMALLOC) !== 0 ? HTAB_ALLOC_KMALLOC : HTAB_ALLOC_BPF_MA;
  // legacy kmalloc elements carry an rcu_head where LRU elements carry their node
  const keyOff = lru ? E_KEY_LRU : mode === HTAB_ALLOC_KMALLOC ? E_KEY_RCU : E_KEY_PLAIN;
  const vsz = roundUp8(spec.valueSize);
  const elemSize = keyOff + roundUp8(spec.keySize) + (percpu ? 8 : vsz);
  const numElems = dyn ? maxEntries : maxEntries + (!percpu && !lru ? nrCpuIds : 0);
  const serial = I32[(ptr + MAP_SERIAL) >> 2]!;
  I32[(ptr + MAP_MAX_ENTRIES) >> 2] = maxEntries;

  const taken: number[] = [];
  let freelist = 0;
  let lruPtr = 0;
  const nomem = (what: string): never => {
    if (freelist !== 0) pcpuFreelistDestroy(freelist);
    if (lruPtr !== 0) bpfLruDestroy(lruPtr);
    for (const p of taken) kfree(p);
    fail(ENOMEM, `cannot allocate ${what} for ${spec.type} map '${spec.name}' (${maxEntries} entries)`);
  };
  const buckets = kmalloc(nBuckets * SIZEOF_BUCKET, owner);
  if (buckets === 0) nomem('buckets');
  taken.push(buckets);
  const locks = buckets + nBuckets * 4;
  for (let i = 0; i < nBuckets; i++) {
    I32[(buckets >> 2) + i] = (i << 1) | 1; // INIT_HLIST_NULLS_HEAD(&b->head, i)
    I32[(locks >> 2) + i] = 0;              // raw_spin_lock_init(&b->raw_lock)
  }
  const rawPcpu = kzalloc((nrCpuIds + 1) * CACHELINE, owner);
  if (rawPcpu === 0) nomem('per-CPU state');
  taken.push(rawPcpu);
  const pcpuArea = (rawPcpu + CACHELINE - 1) & ~(CACHELINE - 1);
  const s = (off: number, v: number): void => { I32[(ptr + off) >> 2] = v; };
  const common = (): void => {
    s(HTAB_BUCKETS, buckets);
    s(HTAB_LOCKS, locks);
    s(HTAB_N_BUCKETS, nBuckets);
    s(HTAB_ELEM_SIZE, elemSize);
    s(HTAB_NUM_ELEMS, numElems);
    s(HTAB_HASHRND, (spec.flags & BPF_F_ZERO_SEED) !== 0 ? 0 : deriveHashrnd(serial));
    s(HTAB_PCPU, pcpuArea);
    s(HTAB_KEY_OFF, keyOff);
    s(HTAB_RAW_PCPU, rawPcpu);
  };

  if (dyn) {
    const g: HtabDynGeometry = { elemSize, valOff: keyOff + roundUp8(spec.keySize), vsz, percpu, maxEntries };
    if (htabDynAllocInit(ptr, mode, g, ownerName(owner)) !== 0) nomem(mode === HTAB_ALLOC_BPF_MA ? 'bpf_mem_alloc caches' : 'element owner');
    common();
    s(HTAB_ELEMS, 0);
    s(HTAB_FREELIST, 0);
    s(HTAB_LRU, 0);
    s(HTAB_VALUES, 0);
    s(HTAB_VALUES_STRIDE, percpu ? vsz : 0); // alloc_percpu(vsz): CPU c's copy at pptr + c × vsz
    return;
  }

  const elems = kzalloc(numElems * elemSize, owner);
  if (elems === 0) nomem('preallocated elements');
  taken.push(elems);
  for (let i = 0; i < numElems; i++) I32[(elems + i * elemSize + E_NEXT) >> 2] = 1; // a nulls marker, never 0
  let values = 0;
  let stride = 0;
  if (percpu) {
    values = kzalloc(nrCpus * numElems * vsz, owner);
    if (values === 0) nomem('per-CPU values');
    taken.push(values);
    stride = numElems * vsz;
    const vo = keyOff + roundUp8(spec.keySize);
    for (let i = 0; i < numElems; i++) I32[(elems + i * elemSize + vo) >> 2] = values + i * vsz;
  }
  if (lru) {
    lruPtr = bpfLruAlloc(owner, percpuLru, E_HASH - E_LRU, numElems);
    if (lruPtr === 0) nomem('LRU lists');
    new BpfLru(lruPtr, () => false).populate(elems, E_LRU, elemSize, numElems);
  } else {
    freelist = pcpuFreelistInit(owner);
    if (freelist === 0) nomem('freelist');
    pcpuFreelistPopulate(freelist, elems + E_FNODE, elemSize, numElems);
    if (!percpu) {
      // alloc_extra_elems(): one spare per CPU id, taken from the freelist
      for (let cpu = 0; cpu < nrCpuIds; cpu++) {
        const node = pcpuFreelistPop(freelist);
        I32[(pcpuArea + cpu * CACHELINE + HP_EXTRA_ELEM) >> 2] = node - E_FNODE;
      }
    }
  }
  common();
  s(HTAB_ELEMS, elems);
  s(HTAB_FREELIST, freelist);
  s(HTAB_LRU, lruPtr);
  s(HTAB_VALUES, values);
  s(HTAB_VALUES_STRIDE, stride);
  s(HTAB_ALLOC_MODE, HTAB_ALLOC_PREALLOC);
}

/** Per-CPU cache levels of a dynamically allocated hash map's bpf_mem_alloc (CLI timelines). */
export interface HtabMemAllocLevels {
  readonly unitSize: number;
  readonly low: number;
  readonly high: number;
  /** free_cnt of each CPU id's cache */
  readonly perCpu: readonly number[];
}

/**
 * The element cache levels of a bpf_mem_alloc-backed hash map (free_cnt of every CPU id's cache,
 * the housekeeping CPU last, with its watermarks), or null when the map has none (preallocated and
 * legacy kmalloc maps, LRU maps, every non-hash map). A racy snapshot; any thread.
 */
export function htabMemAllocLevels(m: BpfMapImpl): HtabMemAllocLevels | null {
  if (!(m instanceof BpfHtab) || m.alloc === null || m.alloc.ma === 0) return null;
  const ma = m.alloc.ma;
  const c = bpfMemCachePtr(ma, 0);
  return {
    unitSize: Atomics.load(I32, (c + BMC_UNIT_SIZE) >> 2),
    low: Atomics.load(I32, (c + BMC_LOW) >> 2),
    high: Atomics.load(I32, (c + BMC_HIGH) >> 2),
    perCpu: bpfMemFreeCounts(ma),
  };
}
