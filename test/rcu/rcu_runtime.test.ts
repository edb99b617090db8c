// RCU and bpf_mem_alloc with real CPU workers (Runtime): a grace period waits for a program that
// was running at the call (the test holds the reader in its section until it releases it, so no
// ordering depends on the machine's speed); idle CPUs are never asked for a report and busy CPUs
// report between programs (how long grace periods take is bench/rcu.bench.ts); expedited; a stall
// splat with the GP completing after the CPU leaves; bpf_mem_alloc churn with cross-CPU frees in task and NMI context on !RT
// and RT, then destroy with slab accounting back to zero. Workers run the compiled build:
// `npx tsc -p .` before vitest.
import { describe, it, expect } from 'vitest';
import { Runtime, type Program } from '../../src/runtime/runtime.js';
import { I32 } from '../../src/mem/arena.js';
import { kzalloc, kfree } from '../../src/mm/slab.js';
import { OWNER_KERNEL, allocOwner, ownerBytes } from '../../src/mm/owners.js';
import { formatSplat } from '../../src/debug/splat.js';
import { rcuStats, rcuGpLatencySamples } from '../../src/rcu/rcu.js';
import {
  bpfMemAllocInit, bpfMemAllocDestroy, bpfMemAllocStats, bpfMemAllocCheck, bpfMemCachePtr, BMC_IRQ_WORK,
} from '../../src/alloc/bpf_mem_alloc.js';
import { irqWorkPending } from '../../src/cpu/irq_work.js';
import { expectNoSplats } from '../helpers.js';

const fx = (name: string): URL => new URL(`./fixtures/${name}`, import.meta.url);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Wait until `cond` holds. The bound only keeps a broken runtime from hanging the test; it is
 * generous on purpose (a loaded 2-core machine) and never the claim of a test.
 */
async function waitFor(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`waitFor: ${what} did not happen within ${ms} ms`);
    await sleep(1);
  }
}

/**
 * Runtime options of the tests that hold a reader: one program run that lasts until the test
 * releases it makes no progress in the watchdog's eyes, so its period is raised well above any
 * hold (on a loaded machine too); a CPU stuck for real would still be reported.
 */
const HOLDING = { watchdogMs: 30_000 } as const;

/**
 * A reader held in its read section by rcu_hold.mjs until release() (flag: u32 entered, u32
 * left, u32 release). The hold is bounded (maxMs) only so that a failed test cannot leave its CPU
 * spinning.
 */
interface Hold { readonly flag: number; readonly run: Promise<{ retval: number }>; readonly entered: () => boolean; readonly left: () => boolean; readonly release: () => void }
async function holdReader(prog: Program, cpu: number): Promise<Hold> {
  const flag = kzalloc(16, OWNER_KERNEL);
  const run = prog.testRun({ cpu, repeat: 1, args: { flag, maxMs: 60_000 } });
  const h: Hold = {
    flag, run,
    entered: () => Atomics.load(I32, flag >> 2) === 1,
    left: () => Atomics.load(I32, (flag + 4) >> 2) === 1,
    release: () => { Atomics.store(I32, (flag + 8) >> 2, 1); },
  };
  await waitFor(h.entered, 'the reader entering its read section');
  return h;
}

/**
 * Let the RCU coordinator poll `n` more times (it polls at least every 10 ms while a grace period
 * waits, and after RCU_FQS_MS asks every CPU still owing a report): enough chances to end a grace
 * period it had no right to end.
 */
async function coordinatorPolls(rt: Runtime, n: number): Promise<void> {
  const p0 = rt.stats().coordinator.polls;
  await waitFor(() => rt.stats().coordinator.polls >= p0 + n, `${n} coordinator polls`);
}

describe('RCU with CPU workers', () => {
  it('synchronizeRcu (normal and expedited) resolves only after the program running at the call ended', async () => {
    const rt = await Runtime.start({ cpus: 2, memoryBytes: 32 << 20, ...HOLDING });
    try {
      const prog = await rt.loadProgram(fx('rcu_hold.mjs'));
      for (const expedited of [false, true]) {
        const h = await holdReader(prog, 1);
        let resolved = false;
        const sync = rt.synchronizeRcu({ expedited }).then(() => { resolved = true; });
        await coordinatorPolls(rt, 20);
        expect(h.left()).toBe(false); // still inside: the test has not released it
        expect(resolved, `expedited ${expedited}: resolved while the reader was still in its section`).toBe(false);
        h.release();
        await sync;
        expect(h.left()).toBe(true); // the program had left its section
        expect((await h.run).retval).toBe(0);
        kfree(h.flag);
      }
      expectNoSplats(rt);
    } finally {
      await rt.stop();
    }
  });

  it('a sleepable program on a CPU worker waits for a grace period with synchronizeRcuWait', async () => {
    const rt = await Runtime.start({ cpus: 2, memoryBytes: 32 << 20, ...HOLDING });
    try {
      const hold = await rt.loadProgram(fx('rcu_hold.mjs'));
      const sync = await rt.loadProgram(fx('sync_wait.mjs'));
      const h = await holdReader(hold, 1);
      let done = false;
      const waiting = sync.testRun({ cpu: 0, repeat: 1 }).then((r) => { done = true; return r; });
      await coordinatorPolls(rt, 20);
      expect(done, 'synchronizeRcuWait returned while CPU 1 was still in its read section').toBe(false);
      h.release();
      const r = await waiting;
      expect(r.retval).toBe(0); // not -ETIMEDOUT: the grace period ended
      expect(h.left()).toBe(true); // CPU 1's section ended first
      expect((await h.run).retval).toBe(0);
      kfree(h.flag);
      expectNoSplats(rt);
    } finally {
      await rt.stop();
    }
  });

  it('idle CPUs never hold a grace period; busy CPUs report between programs', async () => {
    // How long these grace periods take is a benchmark (bench/rcu.bench.ts: busy against idle
    // CPUs in the same run); this test checks who holds them.
    const rt = await Runtime.start({ cpus: 4, memoryBytes: 32 << 20 });
    try {
      // idle: every CPU is in its extended quiescent state, so each grace period ends at its
      // first scan — no CPU is ever asked for a report
      const idle0 = rcuStats();
      for (let i = 0; i < 20; i++) await rt.synchronizeRcu();
      const idle1 = rcuStats();
      expect(idle1.gpsCompleted - idle0.gpsCompleted).toBeGreaterThanOrEqual(20);
      expect(idle1.forcedReports - idle0.forcedReports).toBe(0);
      // busy: every CPU runs programs back to back (each run is a read section) until stopped;
      // every grace period, normal and expedited, ends while all of them keep running
      const nop = await rt.loadProgram(fx('rcu_nop.mjs'));
      let loadDone = false;
      const load = rt.runWorkload({ cpus: 'all', program: nop, seconds: 3600 }).finally(() => { loadDone = true; });
      try {
        const runs0 = nop.stats().runCount;
        await waitFor(() => nop.stats().runCount > runs0 + 4000, 'the workload running');
        const exp0 = rcuStats().expeditedGps;
        for (let i = 0; i < 25; i++) {
          await rt.synchronizeRcu();
          await rt.synchronizeRcu({ expedited: true });
        }
        expect(loadDone, 'the workload ended before the grace periods did').toBe(false);
        expect(rcuStats().expeditedGps - exp0).toBeGreaterThanOrEqual(25);
      } finally {
        rt.stopWorkloads();
      }
      const w = await load;
      for (const c of w.perCpu) expect(c.ok, `CPU ${c.cpu} ran no program`).toBeGreaterThan(0);
      const st = rcuStats();
      console.log(`synchronizeRcu (information only): GPs ${st.gpsCompleted}, p50 ${st.gpLatency.p50Ms.toFixed(3)} p99 ${st.gpLatency.p99Ms.toFixed(3)} ms, samples ${rcuGpLatencySamples().length}`);
      expectNoSplats(rt);
    } finally {
      await rt.stop();
    }
  });

  it('a CPU stuck in a read section: one rcu_stall splat, the grace period completes after it leaves', async () => {
    const rt = await Runtime.start({ cpus: 2, memoryBytes: 32 << 20, rcuStallMs: 100, ...HOLDING });
    try {
      const prog = await rt.loadProgram(fx('rcu_hold.mjs'));
      const h = await holdReader(prog, 0);
      let resolved = false;
      const sync = rt.synchronizeRcu().then(() => { resolved = true; });
      await waitFor(() => rt.splats().length > 0, 'the rcu_stall splat');
      await coordinatorPolls(rt, 20); // more polls while still stuck: no second splat
      expect(resolved).toBe(false);
      h.release();
      await sync;
      expect(h.left()).toBe(true);
      expect((await h.run).retval).toBe(0);
      const s = rt.splats();
      expect(s.map((x) => x.kind)).toEqual(['rcu_stall']);
      expect(s[0]!.cpu).toBe(0);
      expect(s[0]!.message).toMatch(/read-side critical section/);
      kfree(h.flag);
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
        await waitFor(() => [0, 1, 2, 3, 4].every((c) => !irqWorkPending(bpfMemCachePtr(ma, c) + BMC_IRQ_WORK)), 'every irq_work run');
        const st = bpfMemAllocStats(ma);
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
