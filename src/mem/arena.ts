/*
 * arena.ts — kernel memory: the one SharedArrayBuffer every thread of a runtime maps, and the
 * typed views through which all code reads and writes it.
 *
 * The views are module-level bindings (not object fields) so that hot paths compile to
 * monomorphic typed-array accesses. Consequence: one thread serves one runtime at a time
 * (Runtime.start refuses a second concurrent runtime in the same thread).
 *
 * Ordering rule (the full contract: docs/INTERNALS.md, "Memory-ordering contract"): plain
 * loads/stores are for data only one thread writes at a time and that is ordered by something
 * else (owner-only per-CPU words, words under their lock, an object's fields written before the
 * Atomics.store that publishes it and read after the Atomics.load that finds it); every word
 * another thread may write or act on concurrently is read and written with Atomics (lock words,
 * every link a lock-free reader follows — on both sides, unlinks included —, RCU nesting at 0,
 * llist heads, pending bits, counters shared across CPUs). Only Atomics synchronise threads in
 * JavaScript's memory model: x86 forgives a plain access there, ARM64 and the model do not.
 */
import {
  ARENA_MAGIC, HDR_MAGIC, HDR_NCPUS, HDR_NR_CPU_IDS, HDR_FLAGS, HDR_SEED, HDR_MEM_BYTES,
  HDR_PERCPU_BASE, HDR_SPLAT_BASE, HDR_INJECT_BASE, HDR_ATTACH_BASE, HDR_LOCKDEP_BASE,
  HDR_PAGEMETA_BASE, HDR_PAGES_BASE, HDR_NPAGES, HDR_BOOT_EPOCH_MS, HDR_VCLOCK_NS,
  HDR_LOCK_TIMEOUT_MS, HDR_RCU_STALL_MS, HDR_WATCHDOG_MS, FLAG_VIRTUAL_CLOCK, FLAG_SCHED, type ArenaLayout,
} from './layout.js';

export let SAB: SharedArrayBuffer = new SharedArrayBuffer(8);
export let U8 = new Uint8Array(SAB);
export let I32 = new Int32Array(SAB);
export let U32 = new Uint32Array(SAB);
export let F64 = new Float64Array(SAB);
export let I64 = new BigInt64Array(SAB);
export let U16 = new Uint16Array(SAB);
export let attached = false;
/**
 * Bumped every time this thread attaches or detaches an arena. A handle (map, program, link)
 * records the generation it was made in; a different generation means its runtime is gone
 * (EBADF), whatever arena the views point to now.
 */
export let arenaGeneration = 0;

/** Header fields cached per thread after attach (read-only after boot). */
export let hdrFlags = 0;
export let nrCpus = 0;
export let nrCpuIds = 0;
export let memoryBytes = 0;
export let percpuBase = 0;
export let lockTimeoutMs = 250;
/** Watchdog period: a CPU making no progress this long is stuck (lock waits and the watchdog). */
export let watchdogMs = 2000;
/** epoch ms at boot, and this thread's offset so ktime is common to all threads. */
let bootEpochMs = 0;

export function attachArena(sab: SharedArrayBuffer): void {
  SAB = sab;
  U8 = new Uint8Array(sab);
  I32 = new Int32Array(sab);
  U32 = new Uint32Array(sab);
  F64 = new Float64Array(sab);
  I64 = new BigInt64Array(sab);
  U16 = new Uint16Array(sab);
  if (I32[HDR_MAGIC >> 2] !== ARENA_MAGIC) throw new Error('attachArena: not a bpfsim arena (bad magic)');
  hdrFlags = I32[HDR_FLAGS >> 2]!;
  nrCpus = I32[HDR_NCPUS >> 2]!;
  nrCpuIds = I32[HDR_NR_CPU_IDS >> 2]!;
  memoryBytes = I32[HDR_MEM_BYTES >> 2]! >>> 0;
  percpuBase = I32[HDR_PERCPU_BASE >> 2]!;
  lockTimeoutMs = I32[HDR_LOCK_TIMEOUT_MS >> 2]!;
  watchdogMs = I32[HDR_WATCHDOG_MS >> 2]! || 2000;
  bootEpochMs = F64[HDR_BOOT_EPOCH_MS >> 3]!;
  attached = true;
  arenaGeneration++;
}

export function detachArena(): void {
  attached = false;
  arenaGeneration++;
  SAB = new SharedArrayBuffer(8);
  U8 = new Uint8Array(SAB); I32 = new Int32Array(SAB); U32 = new Uint32Array(SAB);
  F64 = new Float64Array(SAB); I64 = new BigInt64Array(SAB); U16 = new Uint16Array(SAB);
}

export interface ArenaInit {
  readonly layout: ArenaLayout;
  readonly flags: number;
  readonly seed: number;
  readonly lockTimeoutMs: number;
  readonly rcuStallMs: number;
  /** @defaultValue 2000 */
  readonly watchdogMs?: number;
}

/** Create and format a new arena (main thread, at boot). The caller then attaches it. */
export function createArena(init: ArenaInit): SharedArrayBuffer {
  const l = init.layout;
  const sab = new SharedArrayBuffer(l.memoryBytes);
  const i32 = new Int32Array(sab);
  const f64 = new Float64Array(sab);
  i32[HDR_NCPUS >> 2] = l.ncpus;
  i32[HDR_NR_CPU_IDS >> 2] = l.nrCpuIds;
  i32[HDR_FLAGS >> 2] = init.flags;
  i32[HDR_SEED >> 2] = init.seed | 0;
  i32[HDR_MEM_BYTES >> 2] = l.memoryBytes | 0;
  i32[HDR_PERCPU_BASE >> 2] = l.percpuBase;
  i32[HDR_SPLAT_BASE >> 2] = l.splatBase;
  i32[HDR_INJECT_BASE >> 2] = l.injectBase;
  i32[HDR_ATTACH_BASE >> 2] = l.attachBase;
  i32[HDR_LOCKDEP_BASE >> 2] = l.lockdepBase;
  i32[HDR_PAGEMETA_BASE >> 2] = l.pageMetaBase;
  i32[HDR_PAGES_BASE >> 2] = l.pagesBase;
  i32[HDR_NPAGES >> 2] = l.npages;
  i32[HDR_LOCK_TIMEOUT_MS >> 2] = init.lockTimeoutMs;
  i32[HDR_RCU_STALL_MS >> 2] = init.rcuStallMs;
  i32[HDR_WATCHDOG_MS >> 2] = init.watchdogMs ?? 2000;
  f64[HDR_BOOT_EPOCH_MS >> 3] = performance.timeOrigin + performance.now();
  i32[HDR_MAGIC >> 2] = ARENA_MAGIC;
  return sab;
}

export function headerI32(off: number): number {
  return I32[off >> 2]!;
}

/** ktime_get_ns(): nanoseconds since boot, common to every thread (or the virtual clock). */
export function ktimeGetNs(): number {
  if ((hdrFlags & FLAG_VIRTUAL_CLOCK) !== 0) return Number(Atomics.load(I64, HDR_VCLOCK_NS >> 3));
  return (performance.timeOrigin + performance.now() - bootEpochMs) * 1e6;
}

/**
 * Milliseconds since boot, for timeouts: the real clock, except under a deterministic schedule
 * (FLAG_SCHED), where every timeout runs on the virtual clock the scheduler advances per step, so
 * a lock timeout or an interrupt source's due time falls on the same step in every replay.
 */
export function nowMs(): number {
  if ((hdrFlags & FLAG_SCHED) !== 0) return Number(Atomics.load(I64, HDR_VCLOCK_NS >> 3)) / 1e6;
  return performance.timeOrigin + performance.now() - bootEpochMs;
}

// ---- tiny accessors (byte pointer in, value out) ----
export function ld32(p: number): number { return I32[p >> 2]!; }
export function st32(p: number, v: number): void { I32[p >> 2] = v; }
export function ldu32(p: number): number { return U32[p >> 2]!; }
export function ald32(p: number): number { return Atomics.load(I32, p >> 2); }
export function ast32(p: number, v: number): void { Atomics.store(I32, p >> 2, v); }
export function aadd32(p: number, v: number): number { return Atomics.add(I32, p >> 2, v); }
export function acas32(p: number, expect: number, v: number): number { return Atomics.compareExchange(I32, p >> 2, expect, v); }

/** memcpy/memset on kernel memory (byte pointers). */
export function memcpy(dst: number, src: number, n: number): void { U8.copyWithin(dst, src, src + n); }
export function memset(dst: number, byte: number, n: number): void { U8.fill(byte, dst, dst + n); }
/** Compare n bytes; true when equal. Word compare when both are 4-aligned and n%4==0. */
export function memeq(a: number, b: number, n: number): boolean {
  if (((a | b | n) & 3) === 0) {
    const ai = a >> 2, bi = b >> 2, w = n >> 2;
    for (let i = 0; i < w; i++) if (I32[ai + i] !== I32[bi + i]) return false;
    return true;
  }
  for (let i = 0; i < n; i++) if (U8[a + i] !== U8[b + i]) return false;
  return true;
}

export function roundUp(n: number, a: number): number { return (n + a - 1) & ~(a - 1); }
