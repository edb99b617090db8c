/*
 * htab_layout.ts — where a hash map's pieces live in kernel memory (struct bpf_htab, struct
 * bucket, struct htab_elem of kernel/bpf/hashtab.c; reference §2.2). Offsets only, no logic, so
 * that hashtab.ts, its element allocators and bpf_lru_list.ts can share them without cycles.
 *
 * struct bpf_htab = struct bpf_map header (map_ops.ts) + these fields from MAP_OPS_BASE; all are
 * written once at creation by the main thread and read by every thread in openMap():
 *
 *   HTAB_BUCKETS      bucket heads: n_buckets u32 words (one kmalloc with the locks)
 *   HTAB_LOCKS        bucket locks: n_buckets u32 lock words, right after the heads
 *   HTAB_N_BUCKETS    roundup_pow_of_two(max_entries)
 *   HTAB_ELEMS        preallocated element area (HTAB_NUM_ELEMS × HTAB_ELEM_SIZE), 0 if dynamic
 *   HTAB_ELEM_SIZE    E_KEY + round_up(key,8) + (percpu ? 8 : round_up(value,8))
 *   HTAB_NUM_ELEMS    max_entries (+ nrCpuIds spares for a plain preallocated hash); dynamic:
 *                     max_entries (a bound for list walks, not a capacity)
 *   HTAB_HASHRND      jhash seed (0 with BPF_F_ZERO_SEED)
 *   HTAB_FREELIST     pcpu_freelist (preallocated, not LRU)
 *   HTAB_LRU          struct bpf_lru (LRU types)
 *   HTAB_PCPU         per-CPU area, one CACHELINE per CPU id (HP_* below)
 *   HTAB_VALUES       per-CPU preallocated maps: the value region (0 if dynamic)
 *   HTAB_VALUES_STRIDE  per-CPU maps: CPU c's copy of a value at pptr + c × stride (preallocated:
 *                     max_entries × round_up(value,8); dynamic: round_up(value,8), alloc_percpu's)
 *   HTAB_KEY_OFF      E_KEY: 16, or 24 when the element carries an LRU node or an rcu_head
 *   HTAB_ALLOC_MODE   HTAB_ALLOC_PREALLOC / HTAB_ALLOC_BPF_MA / HTAB_ALLOC_KMALLOC
 *   HTAB_RAW_PCPU     the kmalloc pointer behind the aligned HTAB_PCPU
 *   HTAB_COUNT        dynamic modes: atomic_t count, or percpu_counter.count (the folded part);
 *                     Atomics from every CPU (htab_dyn_alloc.ts)
 *   HTAB_ALLOC_PRIV   dynamic modes, written once at creation:
 *     HTAB_MA           bpf_mem_alloc of the elements (HTAB_ALLOC_BPF_MA), else 0
 *     HTAB_PCPU_MA      per-CPU maps: bpf_mem_alloc of the per-CPU value areas (pcpu_ma), else 0
 *     HTAB_ELEM_OWNER   memory owner the element memory is charged to (outlives the map until
 *                       its deferred frees are done: the kernel's objcg reference)
 *     HTAB_DYN_FLAGS    HTAB_DYN_PERCPU_COUNTER: use_percpu_counter (reference §2.7)
 *
 * struct bucket (8 bytes) is split into two parallel arrays: the head of bucket i (the
 * hlist_nulls_head.first: an element, or the nulls marker (i << 1) | 1 when empty) at
 * HTAB_BUCKETS + 4i, and its raw spinlock / rqspinlock word at HTAB_LOCKS + 4i. Difference from
 * the kernel: the lockless walk then touches 4 bytes per bucket instead of 16, halving the cache
 * footprint of lookups (an update touches one more line).
 *
 * struct htab_elem (8-byte aligned, so bit 0 of an element pointer is 0 and a nulls marker is
 * never mistaken for one):
 *   E_NEXT  hash_node.next: next element or this chain's nulls marker. Lockless readers follow
 *           it, so it is stored with Atomics.store and loaded there with Atomics.load, as is
 *           every bucket head (docs/INTERNALS.md, "Memory-ordering contract")
 *   E_PPREV hash_node.pprev: address of the word that points at this element (read and written
 *           only under the bucket lock: plain). Aliased by
 *           E_FNODE (pcpu_freelist_node.next) and E_FLINK (batch_flink) — so pushing a deleted
 *           element on the freelist keeps E_NEXT intact for a reader still standing on it.
 *   E_HASH  the full 32-bit hash (signed i32)
 *   E_PTR   bpf_mem_alloc per-CPU maps: ptr_to_pptr, the pcpu_ma handle  \
 *   E_LRU   bpf_lru_node (LRU types): next, prev, cpu u16, type u8, ref u8  | union
 *   E_RCU   legacy kmalloc maps: rcu_head (8 bytes) for the element's call_rcu /
 *   E_RCU_PPTR legacy kmalloc per-CPU maps: the value area again, for the RCU callback (which
 *           cannot know the key size)
 *   key at E_KEY (16; 24 for LRU and legacy kmalloc elements), value at E_KEY + round_up(key_size, 8):
 *   the value itself, or for per-CPU maps a u32 pptr (CPU c's slot at pptr + c × HTAB_VALUES_STRIDE).
 *   Dynamic elements: bpf_mem_alloc's hidden 8-byte header precedes the element (free-list link
 *   while free, the allocating cache while allocated); kmalloc'd legacy elements have none.
 *
 * Per-CPU area line (HP_*), written only by its CPU (and its own nested contexts):
 *   HP_MAP_LOCKED  i32[8] map_locked recursion counters (bucketLock 'map_locked')
 *   HP_ELEM_COUNT  i32 bpf_map_{inc,dec}_elem_count (summed for stats and check)
 *   HP_EXTRA_ELEM  u32 extra_elems: this CPU's spare element (plain preallocated hash)
 *   HP_PCOUNT      i32 this CPU's unfolded part of the percpu_counter (dynamic maps with
 *                  use_percpu_counter); |value| < PERCPU_COUNTER_BATCH; other CPUs read it racily
 */
import { MAP_OPS_BASE } from './map_ops.js';

export const HTAB_BUCKETS = MAP_OPS_BASE + 0;
export const HTAB_N_BUCKETS = MAP_OPS_BASE + 4;
export const HTAB_ELEMS = MAP_OPS_BASE + 8;
export const HTAB_ELEM_SIZE = MAP_OPS_BASE + 12;
export const HTAB_NUM_ELEMS = MAP_OPS_BASE + 16;
export const HTAB_HASHRND = MAP_OPS_BASE + 20;
export const HTAB_FREELIST = MAP_OPS_BASE + 24;
export const HTAB_LRU = MAP_OPS_BASE + 28;
export const HTAB_PCPU = MAP_OPS_BASE + 32;
export const HTAB_VALUES = MAP_OPS_BASE + 36;
export const HTAB_VALUES_STRIDE = MAP_OPS_BASE + 40;
export const HTAB_KEY_OFF = MAP_OPS_BASE + 44;
export const HTAB_ALLOC_MODE = MAP_OPS_BASE + 48;
export const HTAB_RAW_PCPU = MAP_OPS_BASE + 52;
export const HTAB_COUNT = MAP_OPS_BASE + 56;
export const HTAB_LOCKS = MAP_OPS_BASE + 60;
export const HTAB_ALLOC_PRIV = MAP_OPS_BASE + 64; // 4 words
export const HTAB_MA = HTAB_ALLOC_PRIV + 0;
export const HTAB_PCPU_MA = HTAB_ALLOC_PRIV + 4;
export const HTAB_ELEM_OWNER = HTAB_ALLOC_PRIV + 8;
export const HTAB_DYN_FLAGS = HTAB_ALLOC_PRIV + 12;
export const HTAB_DYN_PERCPU_COUNTER = 1;

export const HTAB_ALLOC_PREALLOC = 0;
export const HTAB_ALLOC_BPF_MA = 1;     // bpf_mem_alloc (2022 design), htab_dyn_alloc.ts
export const HTAB_ALLOC_KMALLOC = 2;    // legacy kmalloc + call_rcu per element, htab_dyn_alloc.ts

/** head + lock word, in two arrays */
export const SIZEOF_BUCKET = 8;

export const E_NEXT = 0;
export const E_PPREV = 4;
export const E_FNODE = 4;
export const E_FLINK = 4;
export const E_HASH = 8;
export const E_PTR = 12;
export const E_LRU = 12;
export const E_RCU = 12;
export const E_RCU_PPTR = 20;
export const E_KEY_PLAIN = 16;
export const E_KEY_LRU = 24;
export const E_KEY_RCU = 24;

// bpf_lru_node inside the element (offsets from the node, i.e. from E_LRU)
export const LN_NEXT = 0;
export const LN_PREV = 4;
export const LN_CPU = 8;    // u16
export const LN_TYPE = 10;  // u8
export const LN_REF = 11;   // u8
export const SIZEOF_LRU_NODE = 12;

export const HASHTAB_MAP_LOCK_COUNT = 8;
export const HP_MAP_LOCKED = 0;
export const HP_ELEM_COUNT = 32;
export const HP_EXTRA_ELEM = 36;
export const HP_PCOUNT = 40;

/** LIST_POISON2 stand-in written into E_PPREV by an unlink (odd, never a valid address). */
export const PPREV_POISON = 0x122 | 1;
