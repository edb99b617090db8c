// Context rules at interrupt windows: irqs-off blocks hardirq but never NMI, softirq on hardirq
// exit, nesting depth, and the RT sleeping-lock check.
import { describe, it, expect, afterEach } from 'vitest';
import { Runtime } from '../../src/runtime/runtime.js';
import { fixture, expectNoSplats } from '../helpers.js';

let rt: Runtime | undefined;
afterEach(async () => { await rt?.stop(); rt = undefined; });

const TASK = 1, SOFTIRQ = 2, HARDIRQ = 4, NMI = 8;

describe('interrupt delivery at windows', () => {
  it('a hardirq waits while irqs are off and is taken at the first window with irqs on', async () => {
    rt = await Runtime.start({ cpus: 2, memoryBytes: 16 << 20 });
    const task = await rt.loadProgram(fixture('ctx_irqs.mjs'));
    const mark = await rt.loadProgram(fixture('ctx_mark.mjs'));
    rt.inject({ cpu: 1, at: 'test.ctx.irqs_off', kind: 'hardirq', program: mark });
    const r = await task.testRun({ cpu: 1 });
    expect(r.retval).toBe(1); // not during irqs-off, but by the irqs-on window
    expect(mark.lastRetval(1)).toBe(TASK | HARDIRQ);
    expectNoSplats(rt);
  });

  it('an NMI is delivered even with irqs off', async () => {
    rt = await Runtime.start({ cpus: 2, memoryBytes: 16 << 20 });
    const task = await rt.loadProgram(fixture('ctx_irqs.mjs'));
    const mark = await rt.loadProgram(fixture('ctx_mark.mjs'));
    rt.inject({ cpu: 0, at: 'test.ctx.irqs_off', kind: 'nmi', program: mark });
    const r = await task.testRun({ cpu: 0 });
    expect(r.retval).toBe(11);
    expect(mark.lastRetval(0)).toBe(TASK | NMI);
    expectNoSplats(rt);
  });

  it('softirq raised in hardirq runs on hardirq exit, before the task goes on; NMI nests in hardirq', async () => {
    rt = await Runtime.start({ cpus: 2, memoryBytes: 16 << 20 });
    const task = await rt.loadProgram(fixture('ctx_seq.mjs'));
    const hi = await rt.loadProgram(fixture('hi_raise.mjs'));
    const si = await rt.loadProgram(fixture('si_mark.mjs'));
    const mark = await rt.loadProgram(fixture('ctx_mark.mjs'));
    const link = await si.attach({ kind: 'softirq', cpus: [0] });
    rt.inject({ cpu: 0, at: 'test.ctx.seq', kind: 'hardirq', program: hi });
    rt.inject({ cpu: 0, at: 'test.ctx.in_hardirq', kind: 'nmi', program: mark });
    const r = await task.testRun({ cpu: 0 });
    // sequence 12: hardirq (1) then softirq (2); the NMI inside the hardirq saw task|hardirq|nmi
    expect(r.retval).toBe(12 * 100 + (TASK | HARDIRQ | NMI));
    expect(si.lastRetval(0)).toBe(TASK | SOFTIRQ);
    expect(link.hits()).toBe(1);
    await link.detach();
    expectNoSplats(rt);
  });

  it('random NMIs from the coordinator are delivered to busy CPUs', async () => {
    rt = await Runtime.start({ cpus: 2, memoryBytes: 16 << 20, seed: 3 });
    const pass = await rt.loadProgram(fixture('pass_site.mjs'));
    const inj = rt.inject({ kind: 'nmi', cpus: 'all', ratePerSec: 2000 });
    await rt.runWorkload({ cpus: 'all', program: pass, seconds: 0.3 });
    inj.cancel();
    const taken = rt.stats().cpus.reduce((a, c) => a + c.nmi, 0);
    expect(inj.fired()).toBeGreaterThan(0);
    expect(taken).toBeGreaterThan(0);
    expect(taken).toBeLessThanOrEqual(inj.fired());
    expectNoSplats(rt);
  });
});

describe('PREEMPT_RT sleeping locks', () => {
  it('RT: a spinlock_t taken in NMI is "sleeping function called from invalid context"', async () => {
    rt = await Runtime.start({ cpus: 1, preemptRt: true, memoryBytes: 16 << 20 });
    const p = await rt.loadProgram(fixture('sleeping_lock.mjs'));
    const r = await p.testRun({ cpu: 0, context: 'nmi' });
    expect(r.retval).toBe(0);
    const s = rt.splats();
    expect(s).toHaveLength(1);
    expect(s[0]).toMatchObject({ kind: 'sleeping_in_atomic', context: 'nmi', cpu: 0 });
    // task context on RT is fine
    await p.testRun({ cpu: 0, context: 'task' });
    expect(rt.splats()).toHaveLength(1);
  });

  it('!RT: the same code raises nothing (spinlock_t is the raw lock)', async () => {
    rt = await Runtime.start({ cpus: 1, preemptRt: false, memoryBytes: 16 << 20 });
    const p = await rt.loadProgram(fixture('sleeping_lock.mjs'));
    expect((await p.testRun({ cpu: 0, context: 'nmi' })).retval).toBe(0);
    expectNoSplats(rt);
  });
});
