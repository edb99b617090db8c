/*
 * irq_work.ts — irq_work_queue() (kernel/irq_work.c): run a small piece of work soon, on this CPU,
 * from a context that could not do it itself (NMI, irqs off, inside an allocator).
 *
 * Layout: a struct irq_work is 16 bytes embedded in its owner (bpf_mem_alloc: one per cache):
 *   +0  IW_NEXT   llist link while queued
 *   +4  IW_FLAGS  IRQ_WORK_PENDING (queued, not started) | IRQ_WORK_BUSY (running); Atomics
 *   +8  IW_FN     handler id (registerIrqWork)
 *   +12 IW_CPU    CPU that queued it (RT: where the coordinator hands it back)
 * Global words (IRQW_STATE_BASE, layout.ts: irq_work's own region):
 *   +0  IRQW_RT_REQ   llist of works queued on PREEMPT_RT, drained by the coordinator
 *
 * !RT: irqWorkQueue claims PENDING (a work already pending is not queued twice), pushes the work
 *   on this CPU's PC_LL_IRQ_WORK and raises the self-IPI (PEND_IRQ_WORK). window.ts delivers it
 *   in hardirq context at the next window with irqs on and below hardirq, or at the end of the
 *   hardirq being handled: a task/softirq caller with irqs on gets it at the window right inside
 *   irqWorkQueue ("the IPI interrupts the program"), a hardirq caller when its handler returns,
 *   an NMI caller or a caller with irqs off at its next window with irqs on.
 * RT: the work goes to the coordinator (the irq_work kthread) through IRQW_RT_REQ and the
 *   doorbell. irqWorkService (main thread) runs the handler's rtPrepare (e.g. allocate a batch
 *   from the slab, where sleeping is allowed), then pushes the work onto the CPU's PC_LL_IRQ_WORK
 *   and raises PEND_IRQ_WORK there. The CPU runs rtRun at its next window, in whatever context;
 *   rtRun may refuse (its cache is busy: `active`), and the work stays pending for a later window.
 *
 * Invariant: a work is on at most one list, and only while PENDING is set; the flags return to 0
 * only after its handler finished, so irqWorkSync can tell when the owner may be freed.
 *
 * Contexts: irqWorkQueue from any context (NMI included: llist push + Atomics only). Handlers:
 * run() in hardirq on the queuing CPU (!RT); rtPrepare() on the main thread; rtRun() on the
 * queuing CPU at a window. PC_LL_IRQ_WORK has one consumer, its CPU.
 *
 * Differences from the kernel: no lazy list and no per-work IRQ_WORK_HARD_IRQ flag; on RT the
 * "kthread" is split into a main-thread part and a CPU part so that the CPU-owned cache is still
 * written only by its CPU (DESIGN.md §3).
 */
import { I32, nrCpus, arenaGeneration } from '../mem/arena.js';
import { pcpu, pcpuI, thisCpu, setThisCpu, perCpuBlock } from '../mem/this_cpu.js';
import { PC_LL_IRQ_WORK, PC_PENDING, PC_WAKE, PEND_IRQ_WORK, IRQW_STATE_BASE } from '../mem/layout.js';
import { isPreemptRt, inInterrupt, irqsDisabled } from './context.js';
import { window, raiseIrqWorkSelf, raisePending, setIrqHooks, processPending } from './window.js';
import { defineSite } from './sites.js';
import { llistAdd, llistDelAll } from './llist.js';
import { splat } from '../debug/splat.js';
import { ringDoorbell } from './doorbell.js';

export const IRQ_WORK_SIZE = 16;
export const IW_NEXT = 0;
export const IW_FLAGS = 4;
export const IW_FN = 8;
export const IW_CPU = 12;
export const IRQ_WORK_PENDING = 1;
export const IRQ_WORK_BUSY = 2;

export const IRQW_RT_REQ = IRQW_STATE_BASE;

/** Handler ids (a fixed table, so every thread agrees). */
export const IRQ_WORK_BPF_MEM_REFILL = 1;
export const IRQ_WORK_TEST_0 = 30;
export const IRQ_WORK_TEST_1 = 31;
export const IRQ_WORK_MAX = 32;

export interface IrqWorkHandler {
  readonly name: string;
  /** !RT: on the queuing CPU, hardirq context, irqs off. */
  run(work: number): void;
  /** RT: on the coordinator (main thread, task context) before the work goes back to its CPU. */
  rtPrepare?(work: number): void;
  /** RT: on the queuing CPU at a window (any context). false = busy now, retry at a later window. */
  rtRun?(work: number): boolean;
}

const handlers: (IrqWorkHandler | undefined)[] = new Array<IrqWorkHandler | undefined>(IRQ_WORK_MAX).fill(undefined);

const SITE_QUEUE = defineSite('irq_work.queue');
const PEND_I = PC_PENDING >> 2;

/** Register handler `id` (every thread that may queue or run it; module load time). */
export function registerIrqWork(id: number, h: IrqWorkHandler): void {
  if (!Number.isInteger(id) || id <= 0 || id >= IRQ_WORK_MAX) throw new RangeError(`registerIrqWork: id must be an integer in [1, ${IRQ_WORK_MAX - 1}]; got ${id}`);
  handlers[id] = h;
}

/** init_irq_work(): format the 16-byte struct at `work` for handler `id`. */
export function initIrqWork(work: number, id: number): void {
  const i = work >> 2;
  I32[i + (IW_NEXT >> 2)] = 0;
  Atomics.store(I32, i + (IW_FLAGS >> 2), 0);
  I32[i + (IW_FN >> 2)] = id;
  I32[i + (IW_CPU >> 2)] = -1;
}

/** irq_work_is_pending() || irq_work_is_busy(). */
export function irqWorkPending(work: number): boolean {
  return Atomics.load(I32, (work + IW_FLAGS) >> 2) !== 0;
}

let rtRequests = 0;
let rtHandbacks = 0;

/**
 * irq_work_queue(): queue `work` on this CPU. Returns false if it was already pending (it will
 * run once for both requests). Any context. Passes a window: a !RT caller with irqs on takes the
 * self-IPI right here.
 */
export function irqWorkQueue(work: number): boolean {
  const old = Atomics.or(I32, (work + IW_FLAGS) >> 2, IRQ_WORK_PENDING);
  const queued = (old & IRQ_WORK_PENDING) === 0;
  if (queued) {
    I32[(work + IW_CPU) >> 2] = thisCpu;
    if (isPreemptRt()) {
      if (llistAdd(IRQW_RT_REQ, work, IW_NEXT)) ringDoorbell();
    } else {
      llistAdd(pcpu + PC_LL_IRQ_WORK, work, IW_NEXT);
      raiseIrqWorkSelf();
    }
  }
  window(SITE_QUEUE);
  return queued;
}

function reverse(node: number): number {
  let prev = 0;
  while (node !== 0) {
    const next = I32[(node + IW_NEXT) >> 2]!;
    I32[(node + IW_NEXT) >> 2] = prev;
    prev = node;
    node = next;
  }
  return prev;
}

function handlerOf(work: number): IrqWorkHandler | undefined {
  const id = I32[(work + IW_FN) >> 2]!;
  const h = id > 0 && id < IRQ_WORK_MAX ? handlers[id] : undefined;
  if (h === undefined) splat('warn', `irq_work 0x${work.toString(16)} with unregistered handler ${id} dropped`);
  return h;
}

/** !RT: run this CPU's raised works (hardirq, from the window hook). */
function runRaised(): void {
  let node = reverse(llistDelAll(pcpu + PC_LL_IRQ_WORK));
  while (node !== 0) {
    const next = I32[(node + IW_NEXT) >> 2]!;
    const fi = (node + IW_FLAGS) >> 2;
    Atomics.store(I32, fi, IRQ_WORK_BUSY); // PENDING off: the handler may queue it again
    const h = handlerOf(node);
    if (h !== undefined) h.run(node);
    Atomics.compareExchange(I32, fi, IRQ_WORK_BUSY, 0);
    node = next;
  }
}

/** RT: run the works the coordinator handed back, as far as their owners allow now. */
function runHandedBack(): void {
  Atomics.and(I32, pcpuI + PEND_I, ~PEND_IRQ_WORK);
  let node = reverse(llistDelAll(pcpu + PC_LL_IRQ_WORK));
  let retry = false;
  while (node !== 0) {
    const next = I32[(node + IW_NEXT) >> 2]!;
    const h = handlerOf(node);
    let done = true;
    if (h !== undefined) {
      if (h.rtRun !== undefined) done = h.rtRun(node);
      else if (inInterrupt() || irqsDisabled()) done = false; // the kthread runs in task context
      else h.run(node);
    }
    if (done) Atomics.store(I32, (node + IW_FLAGS) >> 2, 0);
    else { llistAdd(pcpu + PC_LL_IRQ_WORK, node, IW_NEXT); retry = true; }
    node = next;
  }
  if (retry) Atomics.or(I32, pcpuI + PEND_I, PEND_IRQ_WORK);
}

/** The window hook (setIrqHooks irqWork). */
export function irqWorkRun(): void {
  if (isPreemptRt()) runHandedBack();
  else runRaised();
}

/** Per-thread init (bootThread): install the window hook. */
export function irqWorkThreadInit(): void {
  setIrqHooks({ irqWork: irqWorkRun });
}

// ---------------------------------------------------------------------------------------------
// coordinator side (main thread)

interface SyncWaiter { readonly work: number; readonly resolve: () => void }
let syncWaiters: SyncWaiter[] = [];
/** The arena generation the main-thread state below belongs to (a number: no reference kept). */
let stateGen = -1;

/** Main-thread state belongs to one arena: start afresh when a new one is attached. */
function mainState(): void {
  if (stateGen === arenaGeneration) return;
  stateGen = arenaGeneration;
  syncWaiters = [];
  rtRequests = 0;
  rtHandbacks = 0;
}

function wakeCpu(cpu: number): void {
  if (cpu < 0 || cpu >= nrCpus) return;
  const wi = (perCpuBlock(cpu) + PC_WAKE) >> 2;
  Atomics.add(I32, wi, 1);
  Atomics.notify(I32, wi);
}

/** Serve RT requests: prepare on this thread, hand back to the queuing CPU. */
function serveRtRequests(): void {
  let node = reverse(llistDelAll(IRQW_RT_REQ));
  while (node !== 0) {
    const next = I32[(node + IW_NEXT) >> 2]!;
    const cpu = I32[(node + IW_CPU) >> 2]!;
    rtRequests++;
    const h = handlerOf(node);
    if (h?.rtPrepare !== undefined) h.rtPrepare(node);
    const blk = perCpuBlock(cpu);
    llistAdd(blk + PC_LL_IRQ_WORK, node, IW_NEXT);
    raisePending(blk >> 2, PEND_IRQ_WORK);
    rtHandbacks++;
    wakeCpu(cpu);
    node = next;
  }
}

/**
 * The coordinator service: RT irq_work requests, the housekeeping CPU's own pending works, and
 * irqWorkSync waiters. Main thread only.
 */
export function irqWorkPoll(_nowMs?: number): number {
  mainState();
  const saved = thisCpu;
  const hk = nrCpus;
  if (saved !== hk) setThisCpu(hk); // the irq_work "kthread" allocates as the housekeeping CPU
  try {
    if (isPreemptRt()) serveRtRequests();
    // The main thread is the housekeeping CPU and polls from task context with irqs on: take its
    // own pending works here (nobody else would until its next syscall-side window).
    if ((Atomics.load(I32, pcpuI + PEND_I) & PEND_IRQ_WORK) !== 0) processPending();
  } finally {
    if (saved !== hk) setThisCpu(saved);
  }
  if (syncWaiters.length > 0) {
    const keep: SyncWaiter[] = [];
    for (const w of syncWaiters) {
      if (!irqWorkPending(w.work)) w.resolve();
      else { keep.push(w); wakeCpu(I32[(w.work + IW_CPU) >> 2]!); }
    }
    syncWaiters = keep;
  }
  return syncWaiters.length > 0 ? 2 : -1;
}

export const irqWorkService = {
  name: 'irq_work',
  poll(nowMs: number): number { return irqWorkPoll(nowMs); },
} as const;

/**
 * irq_work_sync() for the main thread: resolves once `work` is neither pending nor running. The
 * CPU that queued it runs it at its next window; the coordinator checks at each poll.
 */
export function irqWorkSync(work: number): Promise<void> {
  mainState();
  if (!irqWorkPending(work)) return Promise.resolve();
  const p = new Promise<void>((resolve) => { syncWaiters.push({ work, resolve }); });
  ringDoorbell();
  return p;
}

export function irqWorkStats(): { rtRequests: number; rtHandbacks: number; syncWaiters: number } {
  mainState();
  return { rtRequests, rtHandbacks, syncWaiters: syncWaiters.length };
}
