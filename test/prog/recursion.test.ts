// Recursion protection: a kprobe program passing the site it is attached to is skipped (miss),
// never nested without bound.
import { describe, it, expect, afterEach } from 'vitest';
import { Runtime } from '../../src/runtime/runtime.js';
import { fixture, expectNoSplats } from '../helpers.js';

let rt: Runtime | undefined;
afterEach(async () => { await rt?.stop(); rt = undefined; });

describe('program recursion protection', () => {
  it('kprobe on a site the program itself passes: one recursion miss per run', async () => {
    rt = await Runtime.start({ cpus: 2, memoryBytes: 16 << 20 });
    const kp = await rt.loadProgram(fixture('kprobe_self.mjs'));
    const pass = await rt.loadProgram(fixture('pass_site.mjs'));
    const link = await kp.attach({ kind: 'kprobe', site: 'test.kprobe.self' });
    const r = await rt.runWorkload({ cpus: 'all', program: pass, iterations: 500 });
    expect(r.ops).toBe(1000);
    const st = kp.stats();
    expect(st.runCount).toBe(1000);
    expect(st.recursionMisses).toBe(1000);
    expect(link.hits()).toBe(2000);
    await link.detach();
    await rt.runWorkload({ cpus: 'all', program: pass, iterations: 100 });
    expect(kp.stats().runCount).toBe(1000);
    expectNoSplats(rt);
  });

  it('a non-tracing program nested in itself through an NMI counts a miss on its own counter', async () => {
    rt = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20 });
    const pass = await rt.loadProgram(fixture('pass_site.mjs'));
    rt.inject({ cpu: 0, at: 'test.recursion.inner', kind: 'nmi', times: 3, program: pass });
    const r = await pass.testRun({ cpu: 0, repeat: 3, args: { site: 'test.recursion.inner' } });
    expect(r.runs).toBe(3);
    expect(r.recursionMisses).toBe(3);
    expect(pass.stats().recursionMisses).toBe(3);
    expectNoSplats(rt);
  });
});
