/*
 * window.ts — interrupt windows: the places where a simulated CPU can be interrupted.
 *
 * A worker cannot be interrupted mid-statement, so runtime code calls window(SITE) wherever a
 * real CPU could take an interrupt or a kprobe could fire — above all inside lock-held regions.
 * Fast path: one plain load of this CPU's PC_PENDING word (a hint, as the kernel's need_resched():
 * a stale 0 delays delivery to a later window; windowSlow reads it again with Atomics.load before
 * acting — docs/INTERNALS.md, memory-ordering rule 6); nothing else when it is 0 (and one more
 * when only PEND_KPROBE is set: HDR_KPROBE_SITES says whether a kprobe may be at this site).
 *
 * Slow path, in this order:
 *   -. PEND_SCHED (sticky while this CPU takes part in a deterministic schedule): a schedule
 *      point first (sched.ts): the scheduler may run other CPUs before this window goes on.
 *   0. PEND_SRC (sticky while an interrupt source is armed here): count down, and every few
 *      windows raise on this CPU whatever source fell due (irq_source.ts); if nothing else is
 *      pending, return at once.
 *   1. PEND_KPROBE (sticky while any kprobe is attached): if HDR_KPROBE_SITES has this site's bit
 *      (site & 255), run the programs attached at this site; other windows pay that one load.
 *   2. PEND_SITE (sticky while a precise injection is armed for this CPU): an injection naming
 *      this site turns into a pending NMI/hardirq/softirq (with its program, if any).
 *   3. PEND_NMI: delivered always (unless already in NMI: then it waits for the next window).
 *   4. PEND_HARDIRQ, or PEND_IRQ_WORK on !RT (the self-IPI): delivered only with irqs on and
 *      below hardirq; irq_work runs at the end of the hardirq; then softirq on irq exit.
 *   5. PEND_SOFTIRQ: only in task context with irqs on.
 *   6. PEND_RCU_EXP: the RCU hook reports a quiescent state if it can (it clears the bit).
 * Handlers come from upper layers through setIrqHooks (imports only point down).
 *
 * Pending bits are set by anyone with Atomics.or and cleared by the owner with Atomics.and
 * before the handler runs, so a request raised during the handler is delivered at a later window.
 */
import { I32, headerI32 } from '../mem/arena.js';
import { pcpuI, thisCpu } from '../mem/this_cpu.js';
import {
  PC_PENDING, PC_CUR_SITE, PC_PEND_PROG_NMI, PC_PEND_PROG_HARDIRQ, PC_PEND_PROG_SOFTIRQ,
  PC_STAT_NMI, PC_STAT_HARDIRQ, PC_STAT_SOFTIRQ, PC_STAT_IRQ_WORK, PC_STAT_WINDOW_SLOW, PC_STAT_KPROBE,
  PEND_SRC, PEND_NMI, PEND_HARDIRQ, PEND_SOFTIRQ, PEND_IRQ_WORK, PEND_SITE, PEND_KPROBE,
  PEND_RCU_EXP, HDR_INJECT_BASE, HDR_ATTACH_BASE, HDR_KPROBE_SITES, KPROBE_SITE_BITS, INJECT_ENTRIES, INJECT_ENTRY, INJ_ACTIVE, INJ_CPU,
  INJ_SITE, INJ_KIND, INJ_REMAINING, INJ_PROG, INJ_FIRED, ATTACH_ENTRIES, ATTACH_ENTRY, ATT_ACTIVE,
  ATT_KIND, ATT_SITE, ATT_CPUMASK_LO, ATT_CPUMASK_HI, ATT_PROG, ATT_HITS, ATTACH_KPROBE,
  ATTACH_PERF_EVENT, ATTACH_HARDIRQ, ATTACH_SOFTIRQ, IRQ_KIND_NMI, IRQ_KIND_HARDIRQ,
  PC_CTX_MASK, PC_IRQS_OFF, PEND_SCHED,
} from '../mem/layout.js';
import { CTX_NMI, CTX_HARDIRQ, CTX_SOFTIRQ, enterContext, exitContext, isPreemptRt } from './context.js';
import { srcWindow, raiseIrq, KIND_NMI, KIND_HARDIRQ, KIND_SOFTIRQ } from './irq_source.js';
import { schedPoint } from './sched.js';

export interface IrqHooks {
  /** Run program `progId` in the context already entered (prog layer). */
  runProg(progId: number): void;
  /** Run this CPU's irq_work list (alloc layer). Called in hardirq context on !RT. */
  irqWork(): void;
  /** Softirq handlers beyond programs (timers). */
  softirq(): void;
  /** Expedited RCU: report a quiescent state if outside read sections, and clear PEND_RCU_EXP. */
  rcuExpQs(): void;
}

const noop = (): void => {};
const hooks: IrqHooks = { runProg: noop, irqWork: noop, softirq: noop, rcuExpQs: noop };

export function setIrqHooks(h: Partial<IrqHooks>): void {
  Object.assign(hooks, h);
}

const PEND_I = PC_PENDING >> 2;
const SITE_I = PC_CUR_SITE >> 2;
const CTX_I = PC_CTX_MASK >> 2;
const IRQS_I = PC_IRQS_OFF >> 2;
const KPROBE_SITES_I = HDR_KPROBE_SITES >> 2;

/**
 * window(site): a point where this CPU may take an interrupt. One plain load when idle; with
 * only kprobes attached (PEND_KPROBE alone), one more load skips the windows of other sites.
 */
export function window(site: number): void {
  const p = I32[pcpuI + PEND_I]!; // a hint: windowSlow reads it again with Atomics.load
  if (p !== 0 && (p !== PEND_KPROBE || kprobeMayBeAt(site))) windowSlow(site);
}

/** Is a kprobe attached at a site with this site's hash bit (HDR_KPROBE_SITES)? One load. */
function kprobeMayBeAt(site: number): boolean {
  return (Atomics.load(I32, KPROBE_SITES_I + ((site & KPROBE_SITE_BITS) >>> 5)) & (1 << (site & 31))) !== 0;
}

function bump(off: number): void {
  I32[pcpuI + (off >> 2)] = I32[pcpuI + (off >> 2)]! + 1;
}

function cpuInMask(base: number): boolean {
  const word = thisCpu < 32 ? I32[(base + ATT_CPUMASK_LO) >> 2]! : I32[(base + ATT_CPUMASK_HI) >> 2]!;
  return ((word >>> (thisCpu & 31)) & 1) !== 0;
}

/** Run every attached program of `kind` (for this CPU, or at `site` for kprobes). */
function runAttached(kind: number, site: number): void {
  const base = headerI32(HDR_ATTACH_BASE);
  for (let i = 0; i < ATTACH_ENTRIES; i++) {
    const e = base + i * ATTACH_ENTRY;
    if (Atomics.load(I32, (e + ATT_ACTIVE) >> 2) === 0 || I32[(e + ATT_KIND) >> 2] !== kind) continue;
    if (kind === ATTACH_KPROBE ? I32[(e + ATT_SITE) >> 2] !== site : !cpuInMask(e)) continue;
    Atomics.add(I32, (e + ATT_HITS) >> 2, 1);
    hooks.runProg(I32[(e + ATT_PROG) >> 2]!);
  }
}

function siteInject(site: number): void {
  // Clear first, rescan, re-arm if anything is left: a concurrent arm is never lost.
  Atomics.and(I32, pcpuI + PEND_I, ~PEND_SITE);
  const base = headerI32(HDR_INJECT_BASE);
  let left = false;
  for (let i = 0; i < INJECT_ENTRIES; i++) {
    const e = base + i * INJECT_ENTRY;
    if (Atomics.load(I32, (e + INJ_ACTIVE) >> 2) === 0 || I32[(e + INJ_CPU) >> 2] !== thisCpu) continue;
    if (I32[(e + INJ_SITE) >> 2] === site) {
      const rem = Atomics.sub(I32, (e + INJ_REMAINING) >> 2, 1) - 1;
      if (rem >= 0) {
        Atomics.add(I32, (e + INJ_FIRED) >> 2, 1);
        const kind = I32[(e + INJ_KIND) >> 2]!;
        const prog = I32[(e + INJ_PROG) >> 2]!;
        const slot = kind === IRQ_KIND_NMI ? PC_PEND_PROG_NMI : kind === IRQ_KIND_HARDIRQ ? PC_PEND_PROG_HARDIRQ : PC_PEND_PROG_SOFTIRQ;
        if (prog !== 0) Atomics.store(I32, pcpuI + (slot >> 2), prog);
        raiseIrq(pcpuI, kind === IRQ_KIND_NMI ? KIND_NMI : kind === IRQ_KIND_HARDIRQ ? KIND_HARDIRQ : KIND_SOFTIRQ);
      }
      if (rem <= 0) { Atomics.store(I32, (e + INJ_ACTIVE) >> 2, 0); continue; }
    }
    left = true;
  }
  if (left) Atomics.or(I32, pcpuI + PEND_I, PEND_SITE);
}

function runPendingProg(slotOff: number): void {
  const p = Atomics.exchange(I32, pcpuI + (slotOff >> 2), 0);
  if (p !== 0) hooks.runProg(p - 1);
}

function doNmi(): void {
  const saved = enterContext(CTX_NMI);
  bump(PC_STAT_NMI);
  runPendingProg(PC_PEND_PROG_NMI);
  runAttached(ATTACH_PERF_EVENT, 0);
  exitContext(CTX_NMI, saved);
}

function doSoftirq(): void {
  Atomics.and(I32, pcpuI + PEND_I, ~PEND_SOFTIRQ);
  const saved = enterContext(CTX_SOFTIRQ);
  bump(PC_STAT_SOFTIRQ);
  runPendingProg(PC_PEND_PROG_SOFTIRQ);
  runAttached(ATTACH_SOFTIRQ, 0);
  hooks.softirq();
  exitContext(CTX_SOFTIRQ, saved);
}

/** A hardirq (or the irq_work self-IPI): handler, irq_work on the way out, then softirq. */
function doHardirq(isIrqWorkIpi: boolean): void {
  const saved = enterContext(CTX_HARDIRQ);
  if (!isIrqWorkIpi) {
    bump(PC_STAT_HARDIRQ);
    runPendingProg(PC_PEND_PROG_HARDIRQ);
    runAttached(ATTACH_HARDIRQ, 0);
  }
  if (!isPreemptRt() && (Atomics.load(I32, pcpuI + PEND_I) & PEND_IRQ_WORK) !== 0) {
    Atomics.and(I32, pcpuI + PEND_I, ~PEND_IRQ_WORK);
    bump(PC_STAT_IRQ_WORK);
    hooks.irqWork();
  }
  exitContext(CTX_HARDIRQ, saved);
  // irq_exit(): pending softirqs run if we are back in task context
  if ((Atomics.load(I32, pcpuI + PEND_I) & PEND_SOFTIRQ) !== 0 && I32[pcpuI + CTX_I] === 1 && I32[pcpuI + IRQS_I] === 0) doSoftirq();
}

export function windowSlow(site: number): void {
  let p = Atomics.load(I32, pcpuI + PEND_I);
  if ((p & PEND_SCHED) !== 0) {
    // a deterministic schedule: this window is a schedule point (sched.ts); other CPUs may run
    // before it returns, so the pending word is read again
    I32[pcpuI + SITE_I] = site;
    schedPoint();
    p = Atomics.load(I32, pcpuI + PEND_I);
  }
  if ((p & PEND_SRC) !== 0) {
    if (srcWindow(p)) return;
    p = Atomics.load(I32, pcpuI + PEND_I);
  }
  I32[pcpuI + SITE_I] = site;
  bump(PC_STAT_WINDOW_SLOW);
  // one load decides: no kprobe is attached at a site hashing to this one's bit (most windows)
  if ((p & PEND_KPROBE) !== 0 && site !== 0 && kprobeMayBeAt(site)) {
    bump(PC_STAT_KPROBE);
    runAttached(ATTACH_KPROBE, site);
  }
  if ((p & PEND_SITE) !== 0) siteInject(site);
  p = Atomics.load(I32, pcpuI + PEND_I);
  const mask = I32[pcpuI + CTX_I]!;
  if ((p & PEND_NMI) !== 0) {
    if ((mask & (1 << CTX_NMI)) === 0) {
      Atomics.and(I32, pcpuI + PEND_I, ~PEND_NMI);
      doNmi();
    } // else: in NMI already; it stays pending (later requests coalesce into it) until a window outside
    p = Atomics.load(I32, pcpuI + PEND_I);
  }
  const irqsOn = I32[pcpuI + IRQS_I] === 0;
  const belowHardirq = mask < (1 << CTX_HARDIRQ);
  if (irqsOn && belowHardirq) {
    if ((p & PEND_HARDIRQ) !== 0) {
      Atomics.and(I32, pcpuI + PEND_I, ~PEND_HARDIRQ);
      doHardirq(false);
    } else if ((p & PEND_IRQ_WORK) !== 0 && !isPreemptRt()) {
      doHardirq(true);
    }
    p = Atomics.load(I32, pcpuI + PEND_I);
    if ((p & PEND_SOFTIRQ) !== 0 && I32[pcpuI + CTX_I] === 1 && I32[pcpuI + IRQS_I] === 0) doSoftirq();
  }
  if (isPreemptRt() && (p & PEND_IRQ_WORK) !== 0) {
    // RT: batches prepared by the irq_work thread (the coordinator) are spliced in by the
    // owner CPU; the hook decides whether its cache is free to take them now.
    hooks.irqWork();
  }
  if ((Atomics.load(I32, pcpuI + PEND_I) & PEND_RCU_EXP) !== 0) hooks.rcuExpQs();
}

/** Raise a pending interrupt on `cpu` (any thread). */
export function raisePending(cpuBlockI: number, bits: number): void {
  Atomics.or(I32, cpuBlockI + PEND_I, bits);
}

/** irq_work_queue() on this CPU: self-IPI on !RT (delivered at the next window with irqs on). */
export function raiseIrqWorkSelf(): void {
  Atomics.or(I32, pcpuI + PEND_I, PEND_IRQ_WORK);
}

/** Run pending interrupts now if the context allows (local_irq_enable, idle loop, etc.). */
export function processPending(): void {
  if (Atomics.load(I32, pcpuI + PEND_I) !== 0) windowSlow(0);
}
