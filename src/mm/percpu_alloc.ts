/*
 * percpu_alloc.ts — alloc_percpu()/free_percpu() (mm/percpu.c) for kernel memory.
 *
 * Layout: one block holds a copy per CPU id, CPU c's at ptr + c * percpuStride(size), for every
 * id 0..nrCpuIds-1 (the program CPUs and the housekeeping CPU). stride = round_up(size, 8), so
 * every copy is 8-byte aligned. The block is zeroed, as alloc_percpu's memory is.
 *
 * Invariants: a percpu block is tagged as such in the slab (per-object owner tag or PG_PERCPU on
 * a page run): kfree() of a percpu block and freePercpu() of a kmalloc block are 'bad_free'
 * splats. The owner is charged ksize of the whole block.
 *
 * Locking and contexts: those of kmalloc/kfree (slab.ts): any thread, any context; NMI may get 0.
 *
 * Differences from the kernel: no chunked percpu areas with per-CPU unit offsets; the copies of
 * one allocation are contiguous (which the per-CPU 64-byte padding rule of hot data does not
 * apply to: callers wanting no false sharing round `size` up to 64 themselves).
 */
import { nrCpuIds } from '../mem/arena.js';
import { kmallocPercpuArea, kfreePercpuArea } from './slab.js';

/** Distance between two CPUs' copies of a `size`-byte percpu object. */
export function percpuStride(size: number): number {
  return (size + 7) & ~7;
}

/** alloc_percpu(size): zeroed copies for every CPU id, or 0 (size 0, exhaustion). */
export function allocPercpu(size: number, owner: number): number {
  if (!(size > 0)) return 0;
  return kmallocPercpuArea(percpuStride(size) * nrCpuIds, owner);
}

/** free_percpu(ptr); NULL is a no-op. Poisons all copies. */
export function freePercpu(ptr: number): void {
  kfreePercpuArea(ptr);
}

/** CPU `cpu`'s copy (per_cpu_ptr). */
export function perCpuPtr(ptr: number, size: number, cpu: number): number {
  return ptr + cpu * percpuStride(size);
}
