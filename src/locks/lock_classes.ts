/*
 * lock_classes.ts — lock classes, as lockdep names them: every lock instance belongs to one class,
 * and order checks and splats speak in classes. A fixed table, so every thread agrees on ids.
 */

export const LOCK_CLASS_NAMES = [
  'none',
  'zone_lock',            // 1 page allocator
  'slab_lock',            // 2 slab size class
  'pcpu_freelist_head',   // 3
  'pcpu_freelist_extra',  // 4
  'htab_bucket',          // 5 raw bucket lock
  'htab_bucket_sleeping', // 6 spinlock_t bucket lock (legacy dynamic maps on RT)
  'lru_lock',             // 7 common LRU global lock
  'lru_local_lock',       // 8 LRU per-CPU local list lock
  'bpf_spin_lock',        // 9 program spin locks (bpf_spin_lock helpers)
  'mem_cache',            // 10 bpf_mem_alloc (irq_work side)
  'rcu',                  // 11 rcu internals
  'test_lock_a',          // 12 for tests and scenarios
  'test_lock_b',          // 13
  'test_sleeping',        // 14 spinlock_t used by tests
  'map_of_maps',          // 15
  'timer',                // 16 the bpf_spin_lock inside a bpf_timer (helpers.c bpf_async_kern lock)
  'hrtimer_base',         // 17 per-CPU hrtimer base (src/timers/hrtimer.ts)
  'graph_types',          // 18 the object type table (src/graph/btf_types.ts)
] as const;

export type LockClassName = (typeof LOCK_CLASS_NAMES)[number];

export const LC_NONE = 0;
export const LC_ZONE = 1;
export const LC_SLAB = 2;
export const LC_FREELIST_HEAD = 3;
export const LC_FREELIST_EXTRA = 4;
export const LC_HTAB_BUCKET = 5;
export const LC_HTAB_BUCKET_SLEEPING = 6;
export const LC_LRU = 7;
export const LC_LRU_LOCAL = 8;
export const LC_BPF_SPIN_LOCK = 9;
export const LC_MEM_CACHE = 10;
export const LC_RCU = 11;
export const LC_TEST_A = 12;
export const LC_TEST_B = 13;
export const LC_TEST_SLEEPING = 14;
export const LC_MAP_OF_MAPS = 15;
export const LC_TIMER = 16;
export const LC_HRTIMER_BASE = 17;
export const LC_GRAPH_TYPES = 18;

export function lockClassName(c: number): string {
  return LOCK_CLASS_NAMES[c] ?? `class#${c}`;
}
