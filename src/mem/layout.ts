/*
 * layout.ts — where everything fixed lives in kernel memory (the one SharedArrayBuffer).
 *
 * Layout (byte offsets; pointers are u32 byte offsets and 0 is NULL, so page 0 is never handed out):
 *
 *   0            HEADER (16 KiB)  core header, then fixed regions owned by one module each:
 *                  0..511      core: magic, cpu counts, flags, region bases, clocks
 *                  512..2047   mm: page allocator + slab class state
 *                  2048..4095  mm: bytes in use per owner (512 owners x i32)
 *                  4096..6143  rcu: global grace-period state (4096..5119), irq_work (5120..6143)
 *                  6144..8191  runtime: doorbell, coordinator counters
 *                  8192..16383 maps: id -> map pointer table (2048 entries)
 *   percpuBase   PER-CPU BLOCKS, PERCPU_BLOCK bytes each, for cpu ids 0..nrCpuIds-1
 *                (the last id is the housekeeping CPU = the main thread)
 *   splatBase    SPLAT RING, SPLAT_ENTRIES x SPLAT_ENTRY
 *   injectBase   INJECT TABLE (precise injections), attachBase ATTACH TABLE (kprobe/perf/irq progs)
 *   lockdepBase  lock-order matrix (LOCKDEP_CLASSES^2 bits, then the same again as "reported")
 *   pageMetaBase struct page array, 8 bytes per page
 *   pagesBase    the pages managed by the page allocator, PAGE_SIZE aligned, up to memoryBytes
 *
 * Every per-CPU block is split into 128-byte lines by writer, so that two CPUs never write the
 * same line on a hot path:
 *   line 0  PC_PENDING..   written by anyone (Atomics.or), read by the owner at every window
 *   line 1  PC_CTX_MASK..  context/preempt/irq state + held-lock table, owner only
 *   line 2  PC_RCU_*       RCU read side, owner writes, the coordinator reads
 *   line 3  PC_STAT_*      interrupt statistics, owner writes
 *   line 4  PC_LL_*        llist heads pushed by other CPUs (CAS), drained by one consumer
 *   line 5-7 PC_MOD_*      per-module owner-only words (bpf_prog_active lives in line 1)
 *   8..39   PC_SCRATCH     8 x 512 B frames, one per program-run nesting depth (a program's
 *                          stack: an NMI or kprobe program never overwrites the key of the
 *                          update it interrupted)
 *   40..47  PC_SHARED      1 KiB shared by every context of this CPU (ctx.cpuScratch)
 *
 * Invariant: these numbers are the ABI between the main thread and every worker; a worker reads
 * the region bases from the header, never computes them itself.
 */

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
export const CACHELINE = 128;

export const ARENA_MAGIC = 0x42504653; // 'BPFS'
export const HEADER_SIZE = 16384;

// ---- core header (byte offsets) ----
export const HDR_MAGIC = 0;
export const HDR_NCPUS = 4;          // program CPUs
export const HDR_NR_CPU_IDS = 8;     // program CPUs + housekeeping CPU
export const HDR_FLAGS = 12;
export const HDR_SEED = 16;
export const HDR_MEM_BYTES = 20;
export const HDR_PERCPU_BASE = 24;
export const HDR_SPLAT_BASE = 28;
export const HDR_SPLAT_HEAD = 32;    // total splats ever written (Atomics.add); slot = head % SPLAT_ENTRIES
export const HDR_INJECT_BASE = 36;
export const HDR_ATTACH_BASE = 40;
export const HDR_LOCKDEP_BASE = 44;
export const HDR_PAGEMETA_BASE = 48;
export const HDR_PAGES_BASE = 52;
export const HDR_NPAGES = 56;
export const HDR_STOPPING = 60;      // 1 once rt.stop() began: workloads end at their next window
export const HDR_BOOT_EPOCH_MS = 64; // f64: epoch milliseconds at boot; ktime 0
export const HDR_VCLOCK_NS = 72;     // i64: virtual clock (clock: 'virtual')
export const HDR_LOCK_TIMEOUT_MS = 80;
export const HDR_RCU_STALL_MS = 84;
export const HDR_FAULTS = 88;        // test-only fault switches (FAULT_*)
export const HDR_WATCHDOG_MS = 92;   // a CPU whose PC_PROGRESS stands still this long is stuck
export const HDR_HIST_BASE = 96;     // history rings (map_history.ts), 0 when not recording
export const HDR_HIST_CLOCK = 100;   // u32: the history's call/return stamp counter
export const HDR_HIST_ENTRIES = 104; // entries per CPU ring
export const HDR_HIST_OFF = 108;     // 1: recording stopped (cap reached, or the stamps would wrap)
export const HDR_TIMER_BASE = 112;   // the hrtimer bases and bpf_timer globals (src/timers/hrtimer.ts), 0 until booted
export const HDR_KPROBE_SITES = 128; // u32[8]: bit (site & 255) set while a kprobe is attached at a site hashing there (inject.ts)
export const KPROBE_SITE_BITS = 255;
export const HDR_GRAPH_BASE = 116;   // object types, bpf_global_ma and object accounting (src/graph/), 0 until the first program declares types

// HDR_FLAGS bits
export const FLAG_PREEMPT_RT = 1 << 0;
export const FLAG_RQSPINLOCK = 1 << 1;   // bucketLock: 'rqspinlock'
export const FLAG_DYN_KMALLOC = 1 << 2;  // dynAlloc: 'kmalloc'
export const FLAG_LOCKDEP = 1 << 3;
export const FLAG_VIRTUAL_CLOCK = 1 << 4;
export const FLAG_RECORD = 1 << 5;       // record map operations (Runtime.start({ record: true }))
export const FLAG_SCHED = 1 << 6;        // deterministic schedules (Runtime.start({ schedule })): src/cpu/sched.ts

// HDR_FAULTS bits (test-only fault injection; never set by default)
export const FAULT_DROP_FREELIST_PUSH = 1 << 0;
// map-semantics bugs the linearizability checker must find (hash maps, every FAULT_PERIOD-th op):
export const FAULT_LOST_UPDATE = 1 << 1;        // a replace returns 0 and changes nothing
export const FAULT_PHANTOM_DELETE = 1 << 2;     // a delete returns 0 and leaves the element
export const FAULT_NOEXIST_OVERWRITE = 1 << 3;  // BPF_NOEXIST on an existing key replaces it and returns 0
// a concurrency bug only an interleaving shows (the deterministic schedules' sweep must find it):
export const FAULT_DELETE_UNLOCKED = 1 << 4;   // htab delete without the bucket lock (every delete)
// a kernel era switch: bpf_timer_cancel before the 2024 fix ("bpf: Fail bpf_timer_cancel when
// callback is being cancelled"): two callbacks cancelling each other wait for each other for ever
export const FAULT_TIMER_MUTUAL_CANCEL = 1 << 5;
export const FAULT_PERIOD = 8;

// ---- fixed module regions inside the header ----
export const MEM_STATE_BASE = 512;       // ..2047
export const MEM_STATE_SIZE = 1536;
export const MEM_OWNER_BASE = 2048;      // ..4095, i32 bytes-in-use per owner
export const MEM_MAX_OWNERS = 512;
export const RCU_STATE_BASE = 4096;      // ..6143
export const RCU_STATE_SIZE = 2048;
export const RT_STATE_BASE = 6144;       // ..8191
export const RT_DOORBELL = RT_STATE_BASE;            // coordinator doorbell word (own line)
export const RT_DOORBELL_SLEEPING = RT_STATE_BASE + 4; // 1 while the coordinator waits on the doorbell
export const RT_STATE_WORDS = RT_STATE_BASE + CACHELINE; // runtime-owned words from here
/** The deterministic scheduler's state (src/cpu/sched.ts, SC_* word indexes inside it). */
export const SCHED_BASE = RT_STATE_BASE + 256;        // ..SCHED_BASE + SCHED_BYTES
export const SCHED_BYTES = 1536;
/** irq_work's global words (src/cpu/irq_work.ts): the rest of the runtime region. */
export const IRQW_STATE_BASE = SCHED_BASE + SCHED_BYTES; // ..8191
export const IRQW_STATE_SIZE = 256;
export const MAP_TABLE_BASE = 8192;      // ..16383
export const MAP_TABLE_ENTRIES = 2048;

// ---- per-CPU block (byte offsets inside one block) ----
export const PERCPU_BLOCK = 8192;
// line 0: written by anyone
export const PC_PENDING = 0;             // PEND_* bits
export const PC_WAKE = 4;                // idle CPU waits here (Atomics.waitAsync); bumped to wake
export const PC_PEND_PROG_NMI = 8;       // progId+1 to run with the next injected NMI (0: none)
export const PC_PEND_PROG_HARDIRQ = 12;
export const PC_PEND_PROG_SOFTIRQ = 16;
// interrupt accounting, per kind (0 nmi, 1 hardirq, 2 softirq): whoever raises one adds to
// REQUESTED, and to COALESCED when the kind was already pending (Atomics.add, any thread)
export const PC_IRQ_REQUESTED = 20;      // i32[3]
export const PC_IRQ_COALESCED = 32;      // i32[3]
export const PC_OFFLINE = 44;            // written once by the main thread: 1 stuck, 2 died (CPU_OFFLINE_*)
// interrupt sources armed on this CPU (rt.inject random, perf_event frequencyHz): the main
// thread writes a slot, the CPU arms its own next event (window.ts, irq_source.ts)
export const PC_SRC_GEN = 48;            // bumped by the main thread after changing a slot
export const PC_SRC_BASE = 56;           // IRQ_SOURCES x IRQ_SOURCE bytes
export const IRQ_SOURCES = 4;
export const IRQ_SOURCE = 16;            // +0 kind+1 (0: free)  +4 poisson (0/1)  +8 f64 period ns
// line 1: owner-only context state
export const PC_CTX_MASK = 128;          // bit per active context level (CTX_*)
export const PC_PREEMPT_COUNT = 132;
export const PC_MIGRATE_DISABLE = 136;
export const PC_IRQS_OFF = 140;          // 1 when local irqs are disabled
export const PC_PROG_ACTIVE = 144;       // bpf_prog_active
export const PC_HELD_COUNT = 148;        // entries in the held-lock table
export const PC_CUR_SITE = 152;          // last window passed (for splats)
export const PC_IN_WINDOW = 156;         // >0 while the window slow path runs (no re-entry)
export const PC_SCHED_WHERE = 160;       // where this CPU stands in a deterministic schedule (sched.ts WHERE_*), for reports
export const PC_WAIT_LOCK = 164;         // lock this CPU is waiting for (ABBA detection reads it)
export const PC_PROG_DEPTH = 168;        // programs running on this CPU, nested (scratch frame index + 1)
export const PC_SRC_BACKLOG = 172;       // i32[3] per kind: source events due, not yet raised (irq_source.ts)
export const PC_SRC_BACKLOG_ANY = 184;   // sum of the three (0: nothing owed)
export const PC_HELD_MAX = 8;
export const PC_HELD_LOCK = 192;         // u32[8] lock pointers
export const PC_HELD_CLASS = 224;        // i32[8] class | HELD_* bits (saved irq flag, kind)
// bits of a PC_HELD_CLASS entry
export const HELD_CLASS_MASK = 0xffff;
export const HELD_IRQSAVE = 1 << 16;     // taken with _irqsave
export const HELD_IRQ_WAS_OFF = 1 << 17; // saved flag: irqs were already off
export const HELD_SLEEPING = 1 << 18;    // a spinlock_t taken as a sleeping lock (RT)
export const HELD_CTX_SHIFT = 20;        // bits 20..21: context level the lock was taken in
// line 2: RCU read side (owner writes; coordinator reads)
export const PC_RCU_NESTING = 256;
export const PC_RCU_QS_SEQ = 260;        // bumped at every quiescent state
export const PC_RCU_IDLE = 264;          // 1 while the CPU idles (extended quiescent state)
export const PC_RCU_TRACE_NESTING = 268;
export const PC_RCU_EXP_SEQ = 272;       // last expedited request acknowledged
export const PC_RCU_READ_START = 280;    // f64 ms: when the outermost read section began
// 288..307: further rcu words (src/rcu/state.ts owns their meaning)
export const PC_PROGRESS = 320;          // bumped by the owner at every unit of progress (watchdog)
export const PC_RUNNING_PROG = 324;      // id+1 of the outermost program running (0: none), for reports
// line 3: statistics (owner writes)
export const PC_STAT_NMI = 384;
export const PC_STAT_HARDIRQ = 388;
export const PC_STAT_SOFTIRQ = 392;
export const PC_STAT_IRQ_WORK = 396;
export const PC_STAT_WINDOW_SLOW = 400;
export const PC_STAT_KPROBE = 404;
// owner state of the interrupt sources (irq_source.ts)
export const PC_SRC_COUNTDOWN = 420;     // slow windows left before the next clock check
export const PC_SRC_SEEN_GEN = 416;      // PC_SRC_GEN this CPU last armed from
export const PC_SRC_LAST_MS = 424;       // f64: clock at the last check
export const PC_SRC_NEXT = 432;          // f64[IRQ_SOURCES]: when each source is next due (ms)
export const PC_SRC_RNG = 464;           // u32[IRQ_SOURCES]: per-source seeded generator
export const PC_SRC_PER_CHECK = 484;     // countdown reload value
export const PC_SRC_RAISED = 488;        // i32[IRQ_SOURCES]: events each source requested (owner writes)
export const PC_SRC_OFFCORE_MS = 504;    // f64: busy time the thread was off-core (sources skipped it)
export const PC_SRC_INTERVAL_MS = 408;   // f64: expected time between two checks
// line 4: llist heads pushed by other CPUs
export const PC_LL_IRQ_WORK = 512;       // irq_work requests (RT: batches handed back by the coordinator)
export const PC_LL_RCU_CB = 516;         // call_rcu callbacks queued on this CPU
export const PC_LL_SPARE0 = 520;
export const PC_LL_SPARE1 = 524;
// lines 5..7: per-module owner-only words (640..895: res_spinlock.ts's held table and counters)
export const PC_MOD_BASE = 640;
export const PC_MOD_SIZE = 384;
export const PC_PROG_LOCKED = 896;       // 1 while the innermost running program holds a bpf_spin_lock / res_spin_lock (helper calls are refused)
export const PC_GRAPH_DEFER = 900;       // llist of objects whose drop was deferred from NMI (bpf_obj.ts)
export const PC_GRAPH_IRQ_WORK = 904;    // the irq_work that drops them (16 bytes)
export const PC_GRAPH_STATS = 920;       // i32[5] owner-written object counters (bpf_obj.ts GS_*)
// lines 8..39: per-run-depth scratch frames; 40..47: shared scratch
export const PC_SCRATCH = 1024;
export const PC_SCRATCH_SIZE = 512;      // one frame
export const PC_SCRATCH_FRAMES = 8;
export const PC_SHARED = PC_SCRATCH + PC_SCRATCH_SIZE * PC_SCRATCH_FRAMES;
export const PC_SHARED_SIZE = 1024;

// PC_PENDING bits
export const PEND_NMI = 1 << 0;
export const PEND_HARDIRQ = 1 << 1;
export const PEND_SOFTIRQ = 1 << 2;
export const PEND_IRQ_WORK = 1 << 3;
export const PEND_SITE = 1 << 4;     // sticky: a precise injection is armed for this CPU
export const PEND_KPROBE = 1 << 5;   // sticky: some kprobe program is attached
export const PEND_RCU_EXP = 1 << 6;  // expedited grace period wants a quiescent-state report
export const PEND_STOP = 1 << 7;     // end the running workload at the next window
export const PEND_SRC = 1 << 8;      // sticky: an interrupt source is armed on this CPU
export const PEND_SCHED = 1 << 9;    // sticky: this CPU runs in a deterministic schedule (every window is a schedule point)

// PC_OFFLINE values
export const CPU_OFFLINE_STUCK = 1;
export const CPU_OFFLINE_DIED = 2;

// ---- splat ring ----
export const SPLAT_ENTRIES = 256;
export const SPLAT_ENTRY = 256;
export const SPL_SEQ = 0;        // written last: total index + 1 (a reader ignores a slot until it matches)
export const SPL_KIND = 4;
export const SPL_CPU = 8;
export const SPL_CTX = 12;
export const SPL_SITE = 16;
export const SPL_NHELD = 20;
export const SPL_HELD = 24;      // i32[4] lock classes
export const SPL_TIME = 40;      // f64 ns
export const SPL_MSG_LEN = 48;
export const SPL_MSG = 52;
export const SPL_MSG_MAX = SPLAT_ENTRY - SPL_MSG;

// ---- inject table: precise injections ----
export const INJECT_ENTRIES = 32;
export const INJECT_ENTRY = 32;
export const INJ_ACTIVE = 0;
export const INJ_CPU = 4;
export const INJ_SITE = 8;
export const INJ_KIND = 12;      // IRQ_KIND_*
export const INJ_REMAINING = 16;
export const INJ_PROG = 20;      // progId+1 or 0
export const INJ_FIRED = 24;

// ---- attach table: programs run by windows or interrupts ----
export const ATTACH_ENTRIES = 64;
export const ATTACH_ENTRY = 32;
export const ATT_ACTIVE = 0;
export const ATT_KIND = 4;       // ATTACH_*
export const ATT_SITE = 8;       // kprobe: site id
export const ATT_CPUMASK_LO = 12; // cpus 0..31
export const ATT_CPUMASK_HI = 16; // cpus 32..63
export const ATT_PROG = 20;      // progId
export const ATT_HITS = 24;

export const ATTACH_KPROBE = 1;
export const ATTACH_PERF_EVENT = 2;  // runs in NMI when an NMI is taken
export const ATTACH_HARDIRQ = 3;     // runs in hardirq when a hardirq is taken
export const ATTACH_SOFTIRQ = 4;     // runs in softirq when a softirq is taken

export const IRQ_KIND_NMI = 1;
export const IRQ_KIND_HARDIRQ = 2;
export const IRQ_KIND_SOFTIRQ = 3;

// ---- lockdep ----
export const LOCKDEP_CLASSES = 64;
export const LOCKDEP_BYTES = (LOCKDEP_CLASSES * LOCKDEP_CLASSES) / 8;

export const MAX_CPUS = 64;

export interface ArenaLayout {
  readonly ncpus: number;
  readonly nrCpuIds: number;
  readonly memoryBytes: number;
  readonly percpuBase: number;
  readonly splatBase: number;
  readonly injectBase: number;
  readonly attachBase: number;
  readonly lockdepBase: number;
  readonly pageMetaBase: number;
  readonly pagesBase: number;
  readonly npages: number;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Compute the fixed layout for `ncpus` program CPUs in `memoryBytes` of arena. */
export function computeLayout(ncpus: number, memoryBytes: number): ArenaLayout {
  const nrCpuIds = ncpus + 1;
  let off = HEADER_SIZE;
  const percpuBase = off; off += nrCpuIds * PERCPU_BLOCK;
  const splatBase = alignUp(off, CACHELINE); off = splatBase + SPLAT_ENTRIES * SPLAT_ENTRY;
  const injectBase = alignUp(off, CACHELINE); off = injectBase + INJECT_ENTRIES * INJECT_ENTRY;
  const attachBase = alignUp(off, CACHELINE); off = attachBase + ATTACH_ENTRIES * ATTACH_ENTRY;
  const lockdepBase = alignUp(off, CACHELINE); off = lockdepBase + 2 * LOCKDEP_BYTES;
  // struct page array, then the pages themselves, page aligned
  const pageMetaBase = alignUp(off, CACHELINE);
  const remaining = memoryBytes - pageMetaBase;
  let npages = Math.floor(remaining / (PAGE_SIZE + 8));
  let pagesBase = alignUp(pageMetaBase + npages * 8, PAGE_SIZE);
  while (npages > 0 && pagesBase + npages * PAGE_SIZE > memoryBytes) {
    npages--;
    pagesBase = alignUp(pageMetaBase + npages * 8, PAGE_SIZE);
  }
  return { ncpus, nrCpuIds, memoryBytes, percpuBase, splatBase, injectBase, attachBase, lockdepBase, pageMetaBase, pagesBase, npages };
}
