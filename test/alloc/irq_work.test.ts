// irq_work on one thread: claim semantics, !RT delivery per context (task at once, hardirq at
// handler exit, NMI and irqs-off later), the RT hand-back through the coordinator, irqWorkSync.
import { describe, it, expect, beforeEach } from 'vitest';
import { bootRcu, onCpu, coordinatorPoll, pump } from '../rcu/rcu_boot.js';
import { I32 } from '../../src/mem/arena.js';
import { perCpuBlock, thisCpu } from '../../src/mem/this_cpu.js';
import { FLAG_PREEMPT_RT, PC_PENDING, PEND_IRQ_WORK, PC_IRQS_OFF } from '../../src/mem/layout.js';
import { kzalloc } from '../../src/mm/slab.js';
import { OWNER_KERNEL } from '../../src/mm/owners.js';
import { enterContext, exitContext, currentContext, CTX_NMI, CTX_HARDIRQ, CTX_SOFTIRQ, CTX_TASK } from '../../src/cpu/context.js';
import { processPending } from '../../src/cpu/window.js';
import { readSplats, formatSplat } from '../../src/debug/splat.js';
import {
  IRQ_WORK_TEST_0, IRQ_WORK_TEST_1, IRQ_WORK_SIZE, initIrqWork, irqWorkQueue, irqWorkPending,
  irqWorkSync, irqWorkStats, registerIrqWork,
} from '../../src/cpu/irq_work.js';

interface Ran { cpu: number; ctx: number; where: string; work: number }
const ran: Ran[] = [];
let refuse = false;
registerIrqWork(IRQ_WORK_TEST_0, {
  name: 'test0',
  run(work) { ran.push({ cpu: thisCpu, ctx: currentContext(), where: 'run', work }); },
  rtPrepare(work) { ran.push({ cpu: thisCpu, ctx: currentContext(), where: 'prepare', work }); },
  rtRun(work) {
    if (refuse) return false;
    ran.push({ cpu: thisCpu, ctx: currentContext(), where: 'rtRun', work });
    return true;
  },
});
registerIrqWork(IRQ_WORK_TEST_1, {
  name: 'test1 (no RT split)',
  run(work) { ran.push({ cpu: thisCpu, ctx: currentContext(), where: 'run', work }); },
});

function expectNoSplats(): void { expect(readSplats().map(formatSplat)).toEqual([]); }
function pending(cpu: number): number { return Atomics.load(I32, (perCpuBlock(cpu) + PC_PENDING) >> 2); }
function newWork(id: number): number {
  const w = kzalloc(IRQ_WORK_SIZE, OWNER_KERNEL);
  initIrqWork(w, id);
  return w;
}
function inContext(ctx: number, fn: () => void): void {
  const s = enterContext(ctx);
  try { fn(); } finally { exitContext(ctx, s); }
}

beforeEach(() => { ran.length = 0; refuse = false; });

describe('!RT', () => {
  beforeEach(() => { bootRcu({ ncpus: 2 }); });

  it('task and softirq callers: the self-IPI runs inside irqWorkQueue, in hardirq', () => {
    const w = newWork(IRQ_WORK_TEST_0);
    onCpu(0, () => { expect(irqWorkQueue(w)).toBe(true); });
    expect(ran).toEqual([{ cpu: 0, ctx: CTX_HARDIRQ, where: 'run', work: w }]);
    expect(irqWorkPending(w)).toBe(false);
    onCpu(1, () => { inContext(CTX_SOFTIRQ, () => { irqWorkQueue(w); }); });
    expect(ran.map((r) => [r.cpu, r.ctx])).toEqual([[0, CTX_HARDIRQ], [1, CTX_HARDIRQ]]);
    expectNoSplats();
  });

  it('hardirq caller: runs when the handler returns; NMI / irqs off: at the next window with irqs on', () => {
    const w = newWork(IRQ_WORK_TEST_0);
    onCpu(0, () => {
      inContext(CTX_HARDIRQ, () => { irqWorkQueue(w); });
      expect(ran).toHaveLength(0);
      expect(pending(0) & PEND_IRQ_WORK).not.toBe(0);
      processPending();
      expect(ran).toHaveLength(1);
      inContext(CTX_NMI, () => { irqWorkQueue(w); processPending(); });
      expect(ran).toHaveLength(1);
      processPending();
      expect(ran).toHaveLength(2);
      I32[(perCpuBlock(0) + PC_IRQS_OFF) >> 2] = 1;
      irqWorkQueue(w);
      processPending();
      expect(ran).toHaveLength(2);
      I32[(perCpuBlock(0) + PC_IRQS_OFF) >> 2] = 0;
      processPending();
      expect(ran).toHaveLength(3);
    });
    expect(ran.every((r) => r.ctx === CTX_HARDIRQ && r.cpu === 0)).toBe(true);
  });

  it('a pending work is not queued twice', () => {
    const w = newWork(IRQ_WORK_TEST_0);
    onCpu(0, () => {
      inContext(CTX_NMI, () => {
        expect(irqWorkQueue(w)).toBe(true);
        expect(irqWorkQueue(w)).toBe(false);
      });
      processPending();
    });
    expect(ran).toHaveLength(1);
  });

  it('irqWorkSync resolves once the CPU ran the work', async () => {
    const w = newWork(IRQ_WORK_TEST_0);
    onCpu(1, () => { inContext(CTX_NMI, () => { irqWorkQueue(w); }); });
    const p = irqWorkSync(w);
    expect(await pump(p, 3)).toBe(false);
    onCpu(1, () => { processPending(); });
    expect(await pump(p, 3)).toBe(true);
  });
});

describe('PREEMPT_RT', () => {
  let hk = 0;
  beforeEach(() => { hk = bootRcu({ ncpus: 2, flags: FLAG_PREEMPT_RT }); });

  it('the coordinator prepares, the CPU runs the rest at its next window', () => {
    const w = newWork(IRQ_WORK_TEST_0);
    onCpu(1, () => { expect(irqWorkQueue(w)).toBe(true); processPending(); });
    expect(ran).toHaveLength(0); // nothing on the CPU by itself
    coordinatorPoll();
    expect(ran).toEqual([{ cpu: hk, ctx: CTX_TASK, where: 'prepare', work: w }]);
    expect(pending(1) & PEND_IRQ_WORK).not.toBe(0);
    expect(irqWorkPending(w)).toBe(true);
    onCpu(1, () => { inContext(CTX_NMI, () => { processPending(); }); }); // rtRun may run in any context
    expect(ran[1]).toEqual({ cpu: 1, ctx: CTX_NMI, where: 'rtRun', work: w });
    expect(irqWorkPending(w)).toBe(false);
    expect(irqWorkStats().rtRequests).toBe(1);
  });

  it('a refusing rtRun keeps the work pending for a later window', () => {
    const w = newWork(IRQ_WORK_TEST_0);
    onCpu(0, () => { irqWorkQueue(w); });
    coordinatorPoll();
    refuse = true;
    onCpu(0, () => { processPending(); });
    expect(pending(0) & PEND_IRQ_WORK).not.toBe(0);
    expect(irqWorkPending(w)).toBe(true);
    onCpu(0, () => { expect(irqWorkQueue(w)).toBe(false); }); // still pending: not queued again
    refuse = false;
    onCpu(0, () => { processPending(); });
    expect(ran.map((r) => r.where)).toEqual(['prepare', 'rtRun']);
    expect(irqWorkPending(w)).toBe(false);
  });

  it('a handler without an RT split runs on its CPU in task context only (the kthread)', () => {
    const w = newWork(IRQ_WORK_TEST_1);
    onCpu(0, () => { irqWorkQueue(w); });
    coordinatorPoll();
    onCpu(0, () => { inContext(CTX_HARDIRQ, () => { processPending(); }); });
    expect(ran).toHaveLength(0);
    onCpu(0, () => { processPending(); });
    expect(ran).toEqual([{ cpu: 0, ctx: CTX_TASK, where: 'run', work: w }]);
  });

  it("the housekeeping CPU's own works are taken by the coordinator poll", () => {
    const w = newWork(IRQ_WORK_TEST_0);
    irqWorkQueue(w); // main thread = housekeeping CPU
    coordinatorPoll();
    expect(ran.map((r) => [r.cpu, r.where])).toEqual([[hk, 'prepare'], [hk, 'rtRun']]);
    expectNoSplats();
  });
});
