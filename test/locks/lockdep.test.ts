// Lock checker: an AB-BA order seen across CPUs is reported once; a lock taken in an interrupt is
// not ordered after the locks of the context it interrupted.
import { describe, it, expect, afterEach } from 'vitest';
import { Runtime } from '../../src/runtime/runtime.js';
import { LC_TEST_A, LC_TEST_B } from '../../src/locks/lock_classes.js';
import { fixture, expectNoSplats } from '../helpers.js';

let rt: Runtime | undefined;
afterEach(async () => { await rt?.stop(); rt = undefined; });

describe('lockdep', () => {
  it('A->B on CPU 0, later B->A on CPU 1: one lock_order splat, no deadlock', async () => {
    rt = await Runtime.start({ cpus: 2, memoryBytes: 16 << 20 });
    const p = await rt.loadProgram(fixture('lock_pair.mjs'));
    expect((await p.testRun({ cpu: 0, args: { xo: 256, cx: LC_TEST_A, yo: 260, cy: LC_TEST_B } })).retval).toBe(0);
    expectNoSplats(rt);
    expect((await p.testRun({ cpu: 1, repeat: 3, args: { xo: 256, cx: LC_TEST_B, yo: 260, cy: LC_TEST_A } })).retval).toBe(0);
    const s = rt.splats();
    expect(s).toHaveLength(1);
    expect(s[0]).toMatchObject({ kind: 'lock_order', cpu: 1, heldLocks: ['test_lock_b'] });
    expect(s[0]!.message).toContain('test_lock_b -> test_lock_a');
  });

  it('an NMI taking A while its task holds B does not record B->A', async () => {
    rt = await Runtime.start({ cpus: 2, memoryBytes: 16 << 20 });
    const p = await rt.loadProgram(fixture('lock_pair.mjs'));
    const nmi = await rt.loadProgram(fixture('lock_a_nmi.mjs'));
    rt.inject({ cpu: 0, at: 'test.lockdep.held', kind: 'nmi', program: nmi });
    expect((await p.testRun({ cpu: 0, args: { xo: 256, cx: LC_TEST_B, win: 'test.lockdep.held' } })).retval).toBe(0);
    expect(nmi.lastRetval(0)).toBe(0);
    expect((await p.testRun({ cpu: 1, args: { xo: 256, cx: LC_TEST_A, yo: 260, cy: LC_TEST_B } })).retval).toBe(0);
    expectNoSplats(rt);
  });
});
