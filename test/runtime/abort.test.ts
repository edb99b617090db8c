// The abort path is total and disabled means disabled (issue "Nothing hangs, nothing lies" §1).
import { describe, it, expect, afterEach } from 'vitest';
import { Runtime, type Program } from '../../src/runtime/runtime.js';
import { BpfError } from '../../src/errno.js';
import { fixture } from '../helpers.js';

let rt: Runtime | undefined;
afterEach(async () => { await rt?.stop(); rt = undefined; });

const aborts = (r: Runtime): string[] => r.splats().filter((s) => s.kind === 'prog_abort').map((s) => s.message);

describe('abort path', () => {
  for (const what of ['null-proto', 'undefined', 'symbol', 'bad-tostring', 'error']) {
    it(`a program throwing ${what} is aborted, leaves its RCU read section, and the runtime goes on`, async () => {
      rt = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20 });
      const p = await rt.loadProgram(fixture('rb_throw.mjs'), { args: { what } });
      const r = await p.testRun({ cpu: 0 });
      expect(r).toMatchObject({ retval: -1, runs: 1 });
      expect(aborts(rt)).toHaveLength(1);
      expect(aborts(rt)[0]).toMatch(/program 'rb_throw' aborted \(released 0 lock\(s\), dropped 0 object reference\(s\); disabled\): threw /);
      // The read section was left: a grace period completes.
      await rt.synchronizeRcu();
      expect(p.stats()).toMatchObject({ runCount: 1, aborted: true });
      expect(rt.splats().map((s) => s.kind)).toEqual(['prog_abort']);
    });
  }

  it('a non-number return (5n) is an abort with a splat, not a TypeError', async () => {
    rt = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20 });
    const p = await rt.loadProgram(fixture('rb_throw.mjs'), { args: { ret: 'bigint' } });
    expect((await p.testRun({ cpu: 0 })).retval).toBe(-1);
    expect(aborts(rt)).toEqual([expect.stringMatching(/returned 5n \(bigint\), not a number/)]);
    expect(p.stats().aborted).toBe(true);
  });

  it('a kprobe throwing Object.create(null) inside a bucket lock unwinds itself only: the update completes, later updates are not EBUSY, the splat names the kprobe', async () => {
    rt = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20 });
    const m = rt.createMap({ type: 'hash', name: 'h', keySize: 4, valueSize: 4, maxEntries: 16 });
    const upd = await rt.loadProgram(fixture('map_update_key.mjs'), { maps: { m }, args: { key: 1, value: 7, off: 0 } });
    const kp = await rt.loadProgram(fixture('rb_kprobe_throw.mjs'));
    const link = await kp.attach({ kind: 'kprobe', site: 'htab.update.locked' });
    expect((await upd.testRun({ cpu: 0 })).retval).toBe(0);
    expect(link.hits()).toBe(1);
    await link.detach();
    expect(aborts(rt)).toEqual([expect.stringMatching(/^program 'rb_kprobe_throw' aborted/)]);
    // map_locked and the bucket lock were released by the interrupted update itself.
    const again = await upd.testRun({ cpu: 0, repeat: 10 });
    expect(again).toMatchObject({ retval: 0, runs: 10 });
    expect(upd.stats().aborted).toBe(false);
    await rt.synchronizeRcu();
    expect(m.lookup(new Uint8Array([1, 0, 0, 0]))).toEqual(new Uint8Array([7, 0, 0, 0]));
  });
});

describe('disabled means disabled', () => {
  it('a workload stops at the abort: one splat, one EPERM, no run after it; later calls are refused with EPERM', async () => {
    rt = await Runtime.start({ cpus: 2, memoryBytes: 16 << 20 });
    const p: Program = await rt.loadProgram(fixture('rb_throw.mjs'), { args: { afterIter: 5, what: 'error' } });
    const w = await rt.runWorkload({ cpus: [0], program: p, iterations: 100 });
    expect(w.errors).toEqual({ EPERM: 1 });
    expect(w.ops).toBe(6);
    expect(w.disabled).toBe(true);
    expect(aborts(rt)).toHaveLength(1);
    expect(p.stats()).toMatchObject({ runCount: 6, aborted: true });
    await expect(p.testRun({ cpu: 1 })).rejects.toMatchObject({ name: 'BpfError', code: 'EPERM' });
    await expect(rt.runWorkload({ cpus: 'all', program: p, iterations: 100 })).rejects.toBeInstanceOf(BpfError);
    expect(p.stats().runCount).toBe(6);
    expect(aborts(rt)).toHaveLength(1);
  });

  it('an aborted interrupt program is refused at every later interrupt and counted, never run again', async () => {
    rt = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20 });
    const thrower = await rt.loadProgram(fixture('rb_throw.mjs'), { args: { what: 'error' } });
    const pass = await rt.loadProgram(fixture('pass_site.mjs'), { args: { site: 'test.recursion.inner' } });
    const inj = rt.inject({ cpu: 0, at: 'test.recursion.inner', kind: 'nmi', times: 5, program: thrower });
    expect((await pass.testRun({ cpu: 0, repeat: 5 })).retval).toBe(0);
    expect(inj.fired()).toBe(5);
    expect(thrower.stats()).toMatchObject({ runCount: 1, aborted: true, refused: 4 });
    expect(aborts(rt)).toHaveLength(1);
  });
});
