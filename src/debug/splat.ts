/*
 * splat.ts — the kernel's "BUG:" / "WARNING:" reports, as structured records in a ring in kernel
 * memory, so a splat raised on any CPU worker is visible to the main thread (rt.splats()).
 *
 * Ring: SPLAT_ENTRIES slots of SPLAT_ENTRY bytes. A writer takes a ticket with Atomics.add on
 * HDR_SPLAT_HEAD, fills slot ticket % SPLAT_ENTRIES, and publishes it by storing ticket + 1 into
 * the slot's SPL_SEQ last. A reader accepts a slot only when SPL_SEQ matches; if more than
 * SPLAT_ENTRIES splats were raised the oldest are overwritten (the total is still counted).
 *
 * Callers: any thread, any context (including NMI): it takes no lock and allocates nothing in
 * kernel memory. A splat never stops the runtime; tests decide what a splat means.
 */
import { I32, U8, F64, ktimeGetNs, attached } from '../mem/arena.js';
import { pcpuI, thisCpu, perCpuBlock } from '../mem/this_cpu.js';
import {
  HDR_SPLAT_BASE, HDR_SPLAT_HEAD, SPLAT_ENTRIES, SPLAT_ENTRY, SPL_SEQ, SPL_KIND, SPL_CPU, SPL_CTX,
  SPL_SITE, SPL_NHELD, SPL_HELD, SPL_TIME, SPL_MSG_LEN, SPL_MSG, SPL_MSG_MAX, PC_CTX_MASK,
  PC_CUR_SITE, PC_HELD_COUNT, PC_HELD_CLASS,
} from '../mem/layout.js';
import { siteName } from '../cpu/sites.js';
import { lockClassName } from '../locks/lock_classes.js';

export const SPLAT_KINDS = [
  'deadlock',            // AA: a CPU re-acquiring a lock it holds (rqspinlock -EDEADLK)
  'lock_timeout',        // lock wait past the timeout (rqspinlock -ETIMEDOUT)
  'sleeping_in_atomic',  // "BUG: sleeping function called from invalid context"
  'lock_order',          // lockdep: possible circular locking dependency (AB-BA)
  'double_free',
  'bad_free',            // freeing a pointer that was never allocated
  'use_after_free',      // a reader met poisoned memory
  'list_corruption',
  'rcu_stall',
  'lockup',
  'warn',
  'prog_abort',
  'leak',
  'invariant',
  'cpu_stuck',           // watchdog: a CPU made no progress for the watchdog period (soft lockup)
  'cpu_died',            // a CPU's thread exited (process.exit, an uncaught error, a crash)
  'sched_stall',         // a deterministic schedule stood still: a CPU left it (src/cpu/sched.ts)
] as const;
export type SplatKind = (typeof SPLAT_KINDS)[number];

export interface Splat {
  readonly kind: SplatKind;
  readonly cpu: number;
  readonly context: 'task' | 'softirq' | 'hardirq' | 'nmi';
  readonly site: string;
  readonly heldLocks: readonly string[];
  readonly message: string;
  readonly timeNs: number;
}

const CTX = ['task', 'softirq', 'hardirq', 'nmi'] as const;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Raise a splat from the current CPU. Returns nothing; never throws (unless no arena). */
export function splat(kind: SplatKind, message: string): void {
  splatAs(thisCpu, thisCpu >= 0 ? pcpuI : -1, kind, message);
}

/**
 * Raise a splat on behalf of CPU `cpu` (the watchdog on the main thread, reporting a stuck or dead
 * CPU): context, site and held locks are read from that CPU's block as it left them.
 */
export function splatOnCpu(cpu: number, kind: SplatKind, message: string): void {
  splatAs(cpu, perCpuBlock(cpu) >> 2, kind, message);
}

function splatAs(cpu: number, blockI: number, kind: SplatKind, message: string): void {
  if (!attached) throw new Error(`splat before boot: ${kind}: ${message}`);
  const pcpuI = blockI;
  const thisCpu = cpu;
  const base = I32[HDR_SPLAT_BASE >> 2]!;
  const ticket = Atomics.add(I32, HDR_SPLAT_HEAD >> 2, 1);
  const slot = base + (ticket % SPLAT_ENTRIES) * SPLAT_ENTRY;
  const si = slot >> 2;
  Atomics.store(I32, si + (SPL_SEQ >> 2), 0);
  I32[si + (SPL_KIND >> 2)] = SPLAT_KINDS.indexOf(kind);
  I32[si + (SPL_CPU >> 2)] = thisCpu;
  const mask = thisCpu >= 0 ? I32[pcpuI + (PC_CTX_MASK >> 2)]! : 1;
  I32[si + (SPL_CTX >> 2)] = 31 - Math.clz32(mask | 1);
  I32[si + (SPL_SITE >> 2)] = thisCpu >= 0 ? I32[pcpuI + (PC_CUR_SITE >> 2)]! : 0;
  const nheld = thisCpu >= 0 ? Math.min(4, I32[pcpuI + (PC_HELD_COUNT >> 2)]!) : 0;
  I32[si + (SPL_NHELD >> 2)] = nheld;
  for (let i = 0; i < nheld; i++) I32[si + (SPL_HELD >> 2) + i] = I32[pcpuI + (PC_HELD_CLASS >> 2) + i]! & 0xffff;
  F64[(slot + SPL_TIME) >> 3] = ktimeGetNs();
  const bytes = encoder.encode(message);
  const n = Math.min(bytes.length, SPL_MSG_MAX);
  U8.set(bytes.subarray(0, n), slot + SPL_MSG);
  I32[si + (SPL_MSG_LEN >> 2)] = n;
  Atomics.store(I32, si + (SPL_SEQ >> 2), ticket + 1);
}

/** Total splats raised since boot (including any overwritten in the ring). */
export function splatCount(): number {
  return Atomics.load(I32, HDR_SPLAT_HEAD >> 2);
}

/** Read the splats with index >= `from` still present in the ring. */
export function readSplats(from = 0): Splat[] {
  const base = I32[HDR_SPLAT_BASE >> 2]!;
  const head = splatCount();
  const out: Splat[] = [];
  for (let t = Math.max(from, head - SPLAT_ENTRIES); t < head; t++) {
    const slot = base + (t % SPLAT_ENTRIES) * SPLAT_ENTRY;
    const si = slot >> 2;
    if (Atomics.load(I32, si + (SPL_SEQ >> 2)) !== t + 1) continue; // being written or overwritten
    const nheld = I32[si + (SPL_NHELD >> 2)]!;
    const held: string[] = [];
    for (let i = 0; i < nheld; i++) held.push(lockClassName(I32[si + (SPL_HELD >> 2) + i]!));
    const len = I32[si + (SPL_MSG_LEN >> 2)]!;
    out.push({
      kind: SPLAT_KINDS[I32[si + (SPL_KIND >> 2)]!] ?? 'warn',
      cpu: I32[si + (SPL_CPU >> 2)]!,
      context: CTX[I32[si + (SPL_CTX >> 2)]!] ?? 'task',
      site: siteName(I32[si + (SPL_SITE >> 2)]!),
      heldLocks: held,
      message: decoder.decode(U8.slice(slot + SPL_MSG, slot + SPL_MSG + len)),
      timeNs: F64[(slot + SPL_TIME) >> 3]!,
    });
  }
  return out;
}

/** Format a splat the way the kernel log would show it. */
export function formatSplat(s: Splat): string {
  const held = s.heldLocks.length ? ` held: [${s.heldLocks.join(', ')}]` : '';
  return `${s.kind.toUpperCase()}: ${s.message} (cpu ${s.cpu}, ${s.context}${s.site ? `, at ${s.site}` : ''})${held}`;
}
