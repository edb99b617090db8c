// Program args: load-time args serve runs that bring none (interrupts included); a run's own
// args apply to that run only.
import { describe, it, expect, afterEach } from 'vitest';
import { Runtime } from '../../src/runtime/runtime.js';
import { fixture, expectNoSplats } from '../helpers.js';

let rt: Runtime | undefined;
afterEach(async () => { await rt?.stop(); rt = undefined; });

describe('program args', () => {
  it('default args at load, per-run args, restored afterwards, seen by injected runs', async () => {
    rt = await Runtime.start({ cpus: 2, memoryBytes: 16 << 20 });
    const withDefault = await rt.loadProgram(fixture('ret_arg.mjs'), { args: { v: 7 } });
    const plain = await rt.loadProgram(fixture('ret_arg.mjs'));
    expect((await withDefault.testRun({ cpu: 0 })).retval).toBe(7);
    expect((await withDefault.testRun({ cpu: 0, args: { v: 3 } })).retval).toBe(3);
    expect((await withDefault.testRun({ cpu: 0 })).retval).toBe(7);
    expect((await plain.testRun({ cpu: 1 })).retval).toBe(-1);
    rt.inject({ cpu: 1, at: 'test.args.window', kind: 'nmi', program: withDefault });
    await plain.testRun({ cpu: 1 });
    expect(withDefault.lastRetval(1)).toBe(7);
    const w = await rt.runWorkload({ cpus: 'all', program: withDefault, iterations: 10, args: { v: 5 } });
    expect(w.ops).toBe(20);
    expect((await withDefault.testRun({ cpu: 1 })).retval).toBe(7);
    expectNoSplats(rt);
  });
});
