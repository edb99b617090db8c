// Shared helpers of the timer tests: little-endian buffers, errno codes, and the leak check run
// after every test (slab and bpf_mem_alloc back where they started, every bpf_hrtimer freed,
// hrtimer bases consistent, no splat the test did not ask for).
import { expect } from 'vitest';
import type { Runtime } from '../../src/runtime/runtime.js';
import { memStats, memCheck } from '../../src/mm/owners.js';
import { hrtimerCheck } from '../../src/timers/hrtimer.js';
import { formatSplat } from '../../src/debug/splat.js';
import { BpfError } from '../../src/errno.js';
import { fixture } from '../helpers.js';

export const u32 = (n: number): Uint8Array => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n >>> 0, true); return b; };
export const rdU32 = (b: Uint8Array | undefined, off = 0): number => (b === undefined ? -1 : new DataView(b.buffer, b.byteOffset).getUint32(off, true));
export const rdI32 = (b: Uint8Array | undefined, off = 0): number => (b === undefined ? -1 : new DataView(b.buffer, b.byteOffset).getInt32(off, true));
export const rdU64 = (b: Uint8Array | undefined, off = 0): number => (b === undefined ? -1 : Number(new DataView(b.buffer, b.byteOffset).getBigUint64(off, true)));
export function u64(n: number): Uint8Array { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(n), true); return b; }
export function bytes(n: number, fill = 0): Uint8Array { return new Uint8Array(n).fill(fill); }

export function errCode(fn: () => unknown): string {
  try { fn(); } catch (e: unknown) { if (e instanceof BpfError) return e.code; throw e; }
  return 'no error';
}

export interface MemBaseline { readonly bytes: number; readonly owners: number; readonly splats: number }

/**
 * The memory baseline of a test. `warm` first makes every CPU allocate its per-thread zeroValue
 * buffer (a worker keeps it for its life), so that programs using ctx.zeroValue do not look like
 * a leak.
 */
export async function warmBaseline(rt: Runtime): Promise<MemBaseline> {
  const p = await rt.loadProgram(fixture('timer_warm.mjs'));
  for (let c = 0; c < rt.cpus; c++) await p.testRun({ cpu: c });
  await p.unload();
  await rt.idle();
  return baseline(rt);
}

export function baseline(rt: Runtime): MemBaseline {
  const m = memStats();
  return { bytes: m.bytesInUse, owners: m.ownersInUse, splats: rt.splatCount() };
}

/**
 * After closing every map and unloading every program of the test: wait for deferred frees,
 * then the slab bytes and owners are back at the baseline and no bpf_hrtimer is alive.
 */
export async function expectNoLeak(rt: Runtime, base: MemBaseline): Promise<void> {
  await rt.idle();
  const t = rt.stats().timers;
  expect(t.live, `timers allocated ${t.allocated}, freed ${t.freed}`).toBe(0);
  expect(t.deferredPending).toBe(0);
  expect(t.queued.every((q) => q === 0)).toBe(true);
  const m = memStats();
  expect(m.bytesInUse).toBe(base.bytes);
  expect(m.ownersInUse).toBe(base.owners);
  expect(memCheck()).toEqual([]);
  expect(hrtimerCheck()).toEqual([]);
}

/** Splats since the baseline, formatted (tests expect [] unless they provoke one). */
export function newSplats(rt: Runtime, base: MemBaseline): string[] {
  return rt.splats().slice(base.splats).map(formatSplat);
}

/** Poll `cond` every ms until true or `ms` elapse (bounded waits only). */
export async function waitFor(cond: () => boolean, ms = 10_000): Promise<boolean> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > ms) return false;
    await new Promise((r) => setTimeout(r, 1));
  }
  return true;
}
