// In-process boot for single-threaded map tests: a fresh arena, the main thread as the
// housekeeping CPU (id = cpus), every CPU's context state initialised so tests can act as any
// CPU with asCpu(), the allocator formatted, and RCU's per-thread state reset.
import { setThisCpu, thisCpu } from '../../src/mem/this_cpu.js';
import { readSplats, type Splat } from '../../src/debug/splat.js';
import { U8, I32 } from '../../src/mem/arena.js';
import { kzalloc, kfree } from '../../src/mm/slab.js';
import { OWNER_KERNEL } from '../../src/mm/owners.js';
import { bootArena } from '../boot_arena.js';

export interface MapBootOptions {
  readonly cpus?: number;
  readonly memoryBytes?: number;
  readonly flags?: number;
  readonly seed?: number;
  readonly lockTimeoutMs?: number;
}

export function boot(o: MapBootOptions = {}): SharedArrayBuffer {
  return bootArena({ ncpus: o.cpus ?? 4, memoryBytes: o.memoryBytes ?? 64 << 20, flags: o.flags ?? 0, seed: o.seed ?? 1, lockTimeoutMs: o.lockTimeoutMs ?? 250 });
}

/** Run `fn` as CPU `cpu` (program-path calls), then return to the housekeeping CPU. */
export function asCpu<T>(cpu: number, fn: () => T): T {
  const prev = thisCpu;
  setThisCpu(cpu);
  try { return fn(); } finally { setThisCpu(prev); }
}

export function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
}

export function u64(n: number | bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
}

export function readU32(b: Uint8Array, off = 0): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(off, true);
}

export function readU64(b: Uint8Array, off = 0): bigint {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(off, true);
}

/** A scratch area in kernel memory for program-path keys and values. */
export class Scratch {
  readonly ptr: number;
  constructor(bytes = 4096) {
    this.ptr = kzalloc(bytes, OWNER_KERNEL);
    if (this.ptr === 0) throw new Error('scratch: kzalloc failed');
  }
  u32(off: number, v: number): number { I32[(this.ptr + off) >> 2] = v | 0; return this.ptr + off; }
  bytes(off: number, b: Uint8Array): number { U8.set(b, this.ptr + off); return this.ptr + off; }
  free(): void { kfree(this.ptr); }
}

export function splatsOf(kind?: string): Splat[] {
  const all = readSplats();
  return kind === undefined ? all : all.filter((s) => s.kind === kind);
}
