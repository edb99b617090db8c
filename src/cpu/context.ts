/*
 * context.ts — execution contexts and the preempt / migrate / irq state of this CPU
 * (include/linux/preempt.h, irqflags.h).
 *
 * Contexts nest strictly upward: task -> softirq -> hardirq -> NMI, at most one of each, so the
 * "stack" is a bit mask (PC_CTX_MASK) and the current context is its highest bit. Rules, as the
 * kernel's: irqs-off blocks hardirq and softirq delivery but never NMI; hardirq and NMI entry
 * disable irqs; softirq runs on hardirq exit or when raised in task context.
 *
 * All words here are owner-only (line 1 of the per-CPU block): only this CPU's thread, and its
 * own nested handlers, write them. Plain loads and stores suffice.
 *
 * Difference from the kernel: on PREEMPT_RT softirqs are threaded and hardirq handlers mostly
 * threaded too; we keep the same nesting model on RT and express RT only through which locks
 * sleep and what may allocate (the parts the seeds are about).
 */
import { I32, hdrFlags } from '../mem/arena.js';
import { pcpuI } from '../mem/this_cpu.js';
import {
  PC_CTX_MASK, PC_PREEMPT_COUNT, PC_MIGRATE_DISABLE, PC_IRQS_OFF, PC_PROG_ACTIVE, PC_HELD_COUNT,
  PC_HELD_CLASS, PC_HELD_MAX, HELD_SLEEPING,
  FLAG_PREEMPT_RT,
} from '../mem/layout.js';

export const CTX_TASK = 0;
export const CTX_SOFTIRQ = 1;
export const CTX_HARDIRQ = 2;
export const CTX_NMI = 3;

export type ContextName = 'task' | 'softirq' | 'hardirq' | 'nmi';
export const CONTEXT_NAMES: readonly ContextName[] = ['task', 'softirq', 'hardirq', 'nmi'];

export function contextFromName(name: string): number {
  const i = CONTEXT_NAMES.indexOf(name as ContextName);
  if (i < 0) throw new RangeError(`context must be one of ${CONTEXT_NAMES.join(', ')}; got ${JSON.stringify(name)}`);
  return i;
}

const CTX_I = PC_CTX_MASK >> 2;
const PREEMPT_I = PC_PREEMPT_COUNT >> 2;
const MIGRATE_I = PC_MIGRATE_DISABLE >> 2;
const IRQS_I = PC_IRQS_OFF >> 2;
const ACTIVE_I = PC_PROG_ACTIVE >> 2;

export function isPreemptRt(): boolean { return (hdrFlags & FLAG_PREEMPT_RT) !== 0; }

/** Initialise this CPU's context state (boot, owner thread). */
export function contextInit(): void {
  I32[pcpuI + CTX_I] = 1 << CTX_TASK;
  I32[pcpuI + PREEMPT_I] = 0;
  I32[pcpuI + MIGRATE_I] = 0;
  I32[pcpuI + IRQS_I] = 0;
  I32[pcpuI + ACTIVE_I] = 0;
}

export function ctxMask(): number { return I32[pcpuI + CTX_I]!; }
export function currentContext(): number { return 31 - Math.clz32(I32[pcpuI + CTX_I]!); }
export function inNmi(): boolean { return (I32[pcpuI + CTX_I]! & (1 << CTX_NMI)) !== 0; }
export function inHardirq(): boolean { return (I32[pcpuI + CTX_I]! & (1 << CTX_HARDIRQ)) !== 0; }
/** in_interrupt(): hardirq, softirq or NMI. */
export function inInterrupt(): boolean { return I32[pcpuI + CTX_I]! > 1; }
export function irqsDisabled(): boolean { return I32[pcpuI + IRQS_I] !== 0; }

/** Enter a nested context. Returns the saved irq state to give back to exitContext. */
export function enterContext(ctx: number): number {
  const saved = I32[pcpuI + IRQS_I]!;
  I32[pcpuI + CTX_I] = I32[pcpuI + CTX_I]! | (1 << ctx);
  if (ctx >= CTX_HARDIRQ) I32[pcpuI + IRQS_I] = 1;   // hardirq and NMI run with irqs off
  if (ctx === CTX_SOFTIRQ) I32[pcpuI + IRQS_I] = 0;  // softirqs run with irqs on
  I32[pcpuI + PREEMPT_I] = I32[pcpuI + PREEMPT_I]! + 1; // in_interrupt implies !preemptible
  return saved;
}

export function exitContext(ctx: number, savedIrqs: number): void {
  I32[pcpuI + PREEMPT_I] = I32[pcpuI + PREEMPT_I]! - 1;
  I32[pcpuI + CTX_I] = I32[pcpuI + CTX_I]! & ~(1 << ctx);
  I32[pcpuI + IRQS_I] = savedIrqs;
}

export function preemptDisable(): void { I32[pcpuI + PREEMPT_I] = I32[pcpuI + PREEMPT_I]! + 1; }
export function preemptEnable(): void { I32[pcpuI + PREEMPT_I] = I32[pcpuI + PREEMPT_I]! - 1; }
export function preemptCount(): number { return I32[pcpuI + PREEMPT_I]!; }
/** migrate_disable(): on !RT the kernel maps it to preempt_disable. */
export function migrateDisable(): void {
  if (isPreemptRt()) I32[pcpuI + MIGRATE_I] = I32[pcpuI + MIGRATE_I]! + 1;
  else I32[pcpuI + PREEMPT_I] = I32[pcpuI + PREEMPT_I]! + 1;
}
export function migrateEnable(): void {
  if (isPreemptRt()) I32[pcpuI + MIGRATE_I] = I32[pcpuI + MIGRATE_I]! - 1;
  else I32[pcpuI + PREEMPT_I] = I32[pcpuI + PREEMPT_I]! - 1;
}
export function migrateDisableCount(): number { return I32[pcpuI + MIGRATE_I]!; }

/** local_irq_save(): returns the previous state for localIrqRestore. */
export function localIrqSave(): number {
  const f = I32[pcpuI + IRQS_I]!;
  I32[pcpuI + IRQS_I] = 1;
  return f;
}
export function localIrqRestore(flags: number): void { I32[pcpuI + IRQS_I] = flags; }
export function localIrqDisable(): void { I32[pcpuI + IRQS_I] = 1; }
export function localIrqEnable(): void { I32[pcpuI + IRQS_I] = 0; }

/** bpf_prog_active (per-CPU), shared by kprobe/tracepoint/perf_event programs and syscall map ops. */
export function progActiveInc(): number {
  const v = I32[pcpuI + ACTIVE_I]! + 1;
  I32[pcpuI + ACTIVE_I] = v;
  return v;
}
export function progActiveDec(): void { I32[pcpuI + ACTIVE_I] = I32[pcpuI + ACTIVE_I]! - 1; }
export function progActive(): number { return I32[pcpuI + ACTIVE_I]!; }

/** Raw (spinning) locks held by this CPU; maintained by the lock code. */
export function rawHeld(): number {
  const n = Math.min(I32[pcpuI + (PC_HELD_COUNT >> 2)]!, PC_HELD_MAX);
  let raw = 0;
  for (let i = 0; i < n; i++) if ((I32[pcpuI + (PC_HELD_CLASS >> 2) + i]! & HELD_SLEEPING) === 0) raw++;
  return raw;
}

/**
 * True when the current context may not sleep on PREEMPT_RT: NMI, hardirq, irqs off, or a raw
 * spinlock held. (On RT, preempt_disable sections are also atomic; migrate_disable is not.)
 */
export function inAtomicContextRt(): boolean {
  return (I32[pcpuI + CTX_I]! & ((1 << CTX_NMI) | (1 << CTX_HARDIRQ))) !== 0
    || I32[pcpuI + IRQS_I] !== 0 || rawHeld() > 0;
}

/**
 * bpf_disable_instrumentation(): what a syscall-side map operation does around the map op, so that
 * no kprobe/tracepoint/perf_event program runs on this CPU while it holds a bucket lock.
 */
export function bpfDisableInstrumentation(): void {
  migrateDisable();
  I32[pcpuI + ACTIVE_I] = I32[pcpuI + ACTIVE_I]! + 1;
}
export function bpfEnableInstrumentation(): void {
  I32[pcpuI + ACTIVE_I] = I32[pcpuI + ACTIVE_I]! - 1;
  migrateEnable();
}
