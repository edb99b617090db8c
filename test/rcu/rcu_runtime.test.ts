// RCU and bpf_mem_alloc with real CPU workers (Runtime): a grace period waits for a program that
// was running at the call; idle and busy CPUs; expedited; a stall splat with the GP completing
// after the CPU leaves; bpf_mem_alloc churn with cross-CPU frees in task and NMI context on !RT
// and RT, then destroy with slab accounting back to zero. Workers run the compiled build:
// `npx tsc -p .` before vitest.
import { describe, it, expect } from 'vitest';
import { Runtime } from '../../src/runtime/runtime.js';
import { I32 } from '../../src/mem/arena.js';
import { kzalloc, kfree } from '../../src/mem/slab.js';
import { OWNER_KERNEL, allocOwner, ownerBytes } from '../../src/mem/owners.js';
import { formatSplat } from '../../src/debug/splat.js';
import { rcuStats, rcuGpLatencySamples } from '../../src/rcu/rcu.js';
import {
  bpfMemAllocInit, bpfMemAllocDestroy, bpfMemAllocStats, bpfMemAllocCheck, bpfMemCachePtr, BMC_IRQ_WORK,
} from '../../src/alloc/bpf_mem_alloc.js';
import { irqWorkPending } from '../../src/alloc/irq_work.js';
import { expectNoSplats } from '../helpers.js';

const fx = (name: string): URL => new URL(`./fixtures/${name}`, import.meta.url);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error('waitFor: timed out');
    await sleep(1);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

describe('RCU with CPU workers', () => {
  it('synchronizeRcu (normal and expedited) resolves only after the program running at the call ended', async () => {
    const rt = await Runtime.start({ cpus: 2, memoryBytes: 32 << 20 });
    try {
      const prog = await rt.loadProgram(fx('rcu_hold.mjs'));
      for (const expedited of [false, true]) {
        const flag = kzalloc(8, OWNER_KERNEL);
        const run = prog.testRun({ cpu: 1, repeat: 1, args: { holdMs: 150, flag } });
        await waitFor(() => Atomics.load(I32, flag >> 2) === 1);
        const t0 = performance.now();
        await rt.synchronizeRcu({ expedited });
        const waited = performance.now() - t0;
        expect(Atomics.load(I32, (flag + 4) >> 2)).toBe(1); // the program had left its section
        expect(waited).toBeGreaterThan(50);
        await run;
        kfree(flag);
      }
      expectNoSplats(rt);
    } finally {
      await rt.stop();
    }
  });

  it('a sleepable program on a CPU worker waits for a grace period with synchronizeRcuWait', async () => {
    const rt = await Runtime.start({ cpus: 2, memoryBytes: 32 << 20 });
    try {
      const hold = await rt.loadProgram(fx('rcu_hold.mjs'));
      const sync = await rt.loadProgram(fx('sync_wait.mjs'));
      const flag = kzalloc(8, OWNER_KERNEL);
      const run = hold.testRun({ cpu: 1, repeat: 1, args: { holdMs: 150, flag } });
      await waitFor(() => Atomics.load(I32, flag >> 2) === 1);
      const t0 = performance.now();
      const r = await sync.testRun({ cpu: 0, repeat: 1 });
      expect(r.retval).toBe(0);
      expect(Atomics.load(I32, (flag + 4) >> 2)).toBe(1); // CPU 1's section ended first
      expect(performance.now() - t0).toBeGreaterThan(50);
      await run;
      kfree(flag);
      expectNoSplats(rt);
    } finally {
      await rt.stop();
    }
  });

  it('idle CPUs never hold a grace period; busy CPUs report between programs', async () => {
    const rt = await Runtime.start({ cpus: 4, memoryBytes: 32 << 20 });
    try {
      const idle: number[] = [];
      for (let i = 0; i < 20; i++) {
        const t0 = performance.now();
        await rt.synchronizeRcu();
        idle.push(performance.now() - t0);
      }
      const nop = await rt.loadProgram(fx('rcu_nop.mjs'));
      const load = rt.runWorkload({ cpus: 'all', program: nop, seconds: 1.5 });
      await sleep(100);
      const busy: number[] = [];
      const busyExp: number[] = [];
      for (let i = 0; i < 25; i++) {
        let t0 = performance.now();
        await rt.synchronizeRcu();
        busy.push(performance.now() - t0);
        t0 = performance.now();
        await rt.synchronizeRcu({ expedited: true });
        busyExp.push(performance.now() - t0);
      }
      const w = await load;
      expect(w.ops).toBeGreaterThan(0);
      const st = rcuStats();
      // eslint-disable-next-line no-console
      console.log(`synchronizeRcu median ms: idle ${median(idle).toFixed(3)}, 4 busy CPUs ${median(busy).toFixed(3)}, expedited ${median(busyExp).toFixed(3)}; GPs ${st.gpsCompleted}, p50 ${st.gpLatency.p50Ms.toFixed(3)} p99 ${st.gpLatency.p99Ms.toFixed(3)} ms, samples ${rcuGpLatencySamples().length}`);
      expect(median(idle)).toBeLessThan(20);
      expect(median(busy)).toBeLessThan(50);
      expect(median(busyExp)).toBeLessThan(50);
      expect(st.expeditedGps).toBeGreaterThan(0);
      expectNoSplats(rt);
    } finally {
      await rt.stop();
    }
  });

  it('a CPU stuck in a read section: one rcu_stall splat, the grace period completes after it leaves', async () => {
    const rt = await Runtime.start({ cpus: 2, memoryBytes: 32 << 20, rcuStallMs: 100 });
    try {
      const prog = await rt.loadProgram(fx('rcu_hold.mjs'));
      const flag = kzalloc(8, OWNER_KERNEL);
      const run = prog.testRun({ cpu: 0, repeat: 1, args: { holdMs: 500, flag } });
      await waitFor(() => Atomics.load(I32, flag >> 2) === 1);
      await rt.synchronizeRcu();
      expect(Atomics.load(I32, (flag + 4) >> 2)).toBe(1);
      await run;
      const s = rt.splats();
      expect(s.map((x) => x.kind)).toEqual(['rcu_stall']);
      expect(s[0]!.cpu).toBe(0);
      expect(s[0]!.message).toMatch(/read-side critical section/);
      kfree(flag);
    } finally {
      await rt.stop();
    }
  });
});

describe('bpf_mem_alloc with CPU workers', () => {
  for (const preemptRt of [false, true]) {
    it(`churn with cross-CPU frees in task and NMI context (${preemptRt ? 'RT' : '!RT'}), destroy back to zero`, async () => {
      const rt = await Runtime.start({ cpus: 4, memoryBytes: 64 << 20, preemptRt });
      try {
        const owner = allocOwner('churn');
        const ma = bpfMemAllocInit(48, false, owner);
        expect(ma).toBeGreaterThan(0);
        const nslots = 1024;
        const slots = kzalloc(4 * nslots, OWNER_KERNEL);
        const prog = await rt.loadProgram(fx('mem_churn.mjs'));
        const args = { ma, slots, nslots };
        const [task, nmi] = await Promise.all([
          rt.runWorkload({ cpus: [0, 1, 2], program: prog, iterations: 40_000, args }),
          rt.runWorkload({ cpus: [3], context: 'nmi', program: prog, iterations: 20_000, args }),
        ]);
        expect(task.errors.EFAULT ?? 0).toBe(0);
        expect(nmi.errors.EFAULT ?? 0).toBe(0);
        if (!preemptRt) expect(task.errors.ENOMEM ?? 0).toBe(0); // refilled synchronously
        expect(task.ops).toBe(120_000);
        // CPU 1 frees everything still in the table, mostly objects of other CPUs' caches
        const drain = await rt.loadProgram(fx('mem_drain.mjs'));
        const d = await drain.testRun({ cpu: 1, repeat: 1, args });
        expect(d.retval).toBeGreaterThan(200);
        // RT: the trims of that drain run when the coordinator handed the irq_work back
        await waitFor(() => [0, 1, 2, 3, 4].every((c) => !irqWorkPending(bpfMemCachePtr(ma, c) + BMC_IRQ_WORK)));
        const st = bpfMemAllocStats(ma);
        // eslint-disable-next-line no-console
        console.log(`${preemptRt ? 'RT' : '!RT'}: task ENOMEM ${task.errors.ENOMEM ?? 0}, nmi ENOMEM ${nmi.errors.ENOMEM ?? 0}/20000, refills ${st.refills}, trims ${st.trims}, GP callbacks ${st.caches[0]!.perCpu.reduce((a, c) => a + c.gpCalls, 0)}, freed after GP ${st.freedAfterGp}`);
        expect(st.caches[0]!.perCpu[1]!.trims).toBeGreaterThan(0);
        expect(st.caches[0]!.perCpu.reduce((a, c) => a + c.gpCalls, 0)).toBeGreaterThan(0);
        expect(st.refills).toBeGreaterThan(0);
        // every CPU's cache is back inside its watermarks once its irq_work ran
        for (const c of st.caches[0]!.perCpu) expect(c.freeCnt).toBeLessThanOrEqual(st.caches[0]!.high);
        expect(bpfMemAllocCheck(ma)).toEqual([]);
        kfree(slots);
        expect(bpfMemAllocStats(ma).live).toBe(0);
        await bpfMemAllocDestroy(ma);
        expect(ownerBytes(owner)).toBe(0);
        expect(rt.splats().map(formatSplat)).toEqual([]);
      } finally {
        await rt.stop();
      }
    });
  }
});
