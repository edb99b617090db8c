// Stuck and dead CPUs are reported, their calls settle, and stop() returns (issue §1).
import { describe, it, expect, afterEach } from 'vitest';
import { Runtime, CpuOfflineError } from '../../src/runtime/runtime.js';
import { fixture } from '../helpers.js';
import { I32 } from '../../src/mem/arena.js';
import { perCpuBlock } from '../../src/mem/this_cpu.js';
import { PC_RUNNING_PROG } from '../../src/mem/layout.js';

let rt: Runtime | undefined;
afterEach(async () => { await rt?.stop(); rt = undefined; });

describe('watchdog', () => {
  for (const how of ['loop', 'wait'] as const) {
    it(`a program that never returns (${how === 'loop' ? 'endless loop' : 'permanent Atomics.wait'}) is reported cpu_stuck; its call rejects naming the CPU; grace periods and the other CPU go on`, async () => {
      rt = await Runtime.start({ cpus: 2, memoryBytes: 16 << 20, watchdogMs: 300 });
      const hang = await rt.loadProgram(fixture('rb_hang.mjs'), { args: { how } });
      const pass = await rt.loadProgram(fixture('pass_site.mjs'));
      const err = await hang.testRun({ cpu: 1 }).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(CpuOfflineError);
      expect(err).toMatchObject({ code: 'ERR_BPFSIM_CPU_STUCK', cpu: 1 });
      const stuck = rt.splats().filter((s) => s.kind === 'cpu_stuck');
      expect(stuck).toHaveLength(1);
      expect(stuck[0]).toMatchObject({ cpu: 1 });
      expect(stuck[0]!.message).toMatch(/running program 'rb_hang'/);
      // The stuck CPU held an RCU read section: grace periods no longer wait for it.
      await rt.synchronizeRcu();
      // Later calls on it are refused at once; the other CPU still works.
      await expect(pass.testRun({ cpu: 1 })).rejects.toMatchObject({ code: 'ERR_BPFSIM_CPU_STUCK', cpu: 1 });
      expect((await pass.testRun({ cpu: 0, repeat: 3 })).runs).toBe(3);
      expect(rt.stats().cpus.map((c) => c.offline)).toEqual([null, 'stuck']);
    });
  }

  it('process.exit() inside a worker is reported cpu_died by the exit event, not by the watchdog', async () => {
    // A watchdog period far beyond the test timeout: only the exit event can settle the call.
    rt = await Runtime.start({ cpus: 2, memoryBytes: 16 << 20, watchdogMs: 600_000 });
    const die = await rt.loadProgram(fixture('rb_hang.mjs'), { args: { how: 'exit' } });
    await expect(die.testRun({ cpu: 0 })).rejects.toMatchObject({ name: 'CpuOfflineError', code: 'ERR_BPFSIM_CPU_DIED', cpu: 0 });
    const died = rt.splats().filter((s) => s.kind === 'cpu_died');
    expect(died).toHaveLength(1);
    expect(died[0]!.message).toMatch(/exited with code 3 while running program 'rb_hang'/);
    await rt.synchronizeRcu();
    expect(rt.stats().cpus[0]!.offline).toBe('died');
  });

  it('stop() returns with a CPU stuck in a workload, and the pending workload rejects (ERR_BPFSIM_STOPPED)', async () => {
    rt = await Runtime.start({ cpus: 2, memoryBytes: 16 << 20, watchdogMs: 600_000 });
    const hang = await rt.loadProgram(fixture('rb_hang.mjs'));
    const pending = rt.runWorkload({ cpus: [1], program: hang, iterations: 1 }).then(() => null, (e: unknown) => e);
    // Wait until CPU 1 is inside the program (PC_RUNNING_PROG names it): bounded, never a hang.
    const running = (perCpuBlock(1) + PC_RUNNING_PROG) >> 2;
    for (let i = 0; i < 3000 && Atomics.load(I32, running) !== hang.id + 1; i++) await new Promise((r) => setTimeout(r, 10));
    expect(Atomics.load(I32, running)).toBe(hang.id + 1);
    const stopping = rt.stop();
    rt = undefined;
    await stopping;
    expect(await pending).toMatchObject({ name: 'CpuOfflineError', code: 'ERR_BPFSIM_STOPPED', cpu: 1 });
  });

  it('a program module whose top level never returns: loadProgram rejects, cpu_stuck is reported', async () => {
    rt = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20, watchdogMs: 300 });
    const url = new URL(`data:text/javascript,${encodeURIComponent('for(;;){}')}`);
    await expect(rt.loadProgram(url)).rejects.toMatchObject({ code: 'ERR_BPFSIM_CPU_STUCK', cpu: 0 });
    expect(rt.splats().filter((s) => s.kind === 'cpu_stuck')).toHaveLength(1);
  });
});
