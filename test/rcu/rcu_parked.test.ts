// Who may hold a grace period, with real CPU workers, counted in grace periods (no durations):
// a CPU parked in a lock wait outside every normal read section (a sleepable program: a
// tasks-trace section only) lets normal grace periods complete, one after another, for as long as
// it stays parked; the same wait inside a read section holds the grace period until it ends (the
// control, in the same run). And the boost of gp.ts: CPUs that step aside for a grace period
// never end it early, and keep running programs while a reader holds it. How long grace periods
// take is bench/rcu.bench.ts. Workers run the compiled build: `npm run build` before vitest.
import { describe, it, expect } from 'vitest';
import { Runtime } from '../../src/runtime/runtime.js';
import { I32 } from '../../src/mem/arena.js';
import { perCpuBlock } from '../../src/mem/this_cpu.js';
import { PC_WAIT_LOCK } from '../../src/mem/layout.js';
import { kzalloc, kfree } from '../../src/mm/slab.js';
import { OWNER_KERNEL } from '../../src/mm/owners.js';
import { rawSpinLock, rawSpinUnlock } from '../../src/locks/raw_spinlock.js';
import { LC_BPF_SPIN_LOCK } from '../../src/locks/lock_classes.js';
import { rcuStats } from '../../src/rcu/rcu.js';
import { expectNoSplats } from '../helpers.js';

const fx = (name: string): URL => new URL(`./fixtures/${name}`, import.meta.url);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Wait until `cond` holds; the bound only keeps a broken runtime from hanging the test. */
async function waitFor(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`waitFor: ${what} did not happen within ${ms} ms`);
    await sleep(1);
  }
}

/** Let the coordinator poll `n` more times: enough chances to end a grace period it may not end. */
async function coordinatorPolls(rt: Runtime, n: number): Promise<void> {
  const p0 = rt.stats().coordinator.polls;
  await waitFor(() => rt.stats().coordinator.polls >= p0 + n, `${n} coordinator polls`);
}

/**
 * Nothing here may time out on a loaded machine: readers and lock waiters are held until the test
 * lets them go (the watchdog, the lock timeout and the stall detector wait far longer).
 */
const PARKING = { cpus: 2, memoryBytes: 32 << 20, watchdogMs: 30_000, lockTimeoutMs: 60_000, rcuStallMs: 60_000 } as const;

/**
 * Did `p` settle before the coordinator polled `n` more times? A grace period that may end ends at
 * the first poll that scans (an idle or parked CPU outside a read section is seen at once); one held
 * by a reader would hang the test instead of failing it without this bound.
 */
async function settlesWithin(rt: Runtime, p: Promise<void>, n: number): Promise<boolean> {
  let done = false;
  const q = p.then(() => { done = true; });
  q.catch(() => undefined); // not settled when this returns false: rt.stop() rejects it later
  const p0 = rt.stats().coordinator.polls;
  await waitFor(() => done || rt.stats().coordinator.polls >= p0 + n, `the grace period or ${n} coordinator polls`);
  if (done) await q;
  return done;
}

/** A lock a CPU will wait for (the test holds it, as the housekeeping CPU) and its u32 flags. */
interface Park { readonly lock: number; readonly flag: number }
const parkWords = (): Park => ({ lock: kzalloc(8, OWNER_KERNEL), flag: kzalloc(8, OWNER_KERNEL) });
const waitingFor = (cpu: number): number => Atomics.load(I32, (perCpuBlock(cpu) + PC_WAIT_LOCK) >> 2);
const gotLock = (p: Park): boolean => Atomics.load(I32, (p.flag + 4) >> 2) !== 0;

describe('RCU: who holds a grace period (CPU workers)', () => {
  it('a CPU parked in a lock wait outside a read section holds no grace period; inside one it does', async () => {
    const rt = await Runtime.start(PARKING);
    const outside = parkWords();
    const inside = parkWords();
    expect(rawSpinLock(outside.lock, LC_BPF_SPIN_LOCK)).toBe(0);
    expect(rawSpinLock(inside.lock, LC_BPF_SPIN_LOCK)).toBe(0);
    let outsideHeld = true, insideHeld = true;
    try {
      const sleepable = await rt.loadProgram(fx('lock_park.mjs'));
      const reader = await rt.loadProgram(fx('lock_park_rcu.mjs'));
      // CPU 1 parks outside every normal read section (its program is sleepable)
      const run1 = sleepable.testRun({ cpu: 1, repeat: 1, args: outside });
      await waitFor(() => waitingFor(1) === outside.lock, 'CPU 1 waiting for the lock');
      const gps0 = rcuStats().gpsCompleted;
      for (let i = 0; i < 20; i++) {
        const ended = await settlesWithin(rt, rt.synchronizeRcu({ expedited: i % 2 === 1 }), 100);
        expect(ended, `grace period ${i + 1} did not end while CPU 1 was parked outside a read section`).toBe(true);
      }
      // twenty grace periods ended, and CPU 1 never left its wait meanwhile
      expect(rcuStats().gpsCompleted - gps0).toBeGreaterThanOrEqual(20);
      expect(waitingFor(1)).toBe(outside.lock);
      expect(gotLock(outside)).toBe(false);

      // the control: CPU 0 parks the same way inside a read section; a grace period waits for it
      const run0 = reader.testRun({ cpu: 0, repeat: 1, args: inside });
      await waitFor(() => waitingFor(0) === inside.lock, 'CPU 0 waiting for the lock');
      let resolved = false;
      const sync = rt.synchronizeRcu({ expedited: true }).then(() => { resolved = true; });
      await coordinatorPolls(rt, 20);
      expect(resolved, 'a grace period ended while CPU 0 waited inside its read section').toBe(false);
      rawSpinUnlock(inside.lock);
      insideHeld = false;
      await sync; // CPU 0 left its section; CPU 1 is still parked and holds nothing
      expect(gotLock(inside)).toBe(true);
      expect((await run0).retval).toBe(0);
      expect(waitingFor(1)).toBe(outside.lock);
      expect(gotLock(outside)).toBe(false);
      expect(await settlesWithin(rt, rt.synchronizeRcu(), 100), 'CPU 1, parked outside, held a grace period').toBe(true);

      rawSpinUnlock(outside.lock);
      outsideHeld = false;
      expect((await run1).retval).toBe(0);
      expect(gotLock(outside)).toBe(true);
      expectNoSplats(rt);
    } finally {
      if (insideHeld) rawSpinUnlock(inside.lock);
      if (outsideHeld) rawSpinUnlock(outside.lock);
      for (const p of [outside, inside]) { kfree(p.lock); kfree(p.flag); }
      await rt.stop();
    }
  });

  it('CPUs that step aside for a boosted grace period never end it early, and keep running programs', async () => {
    const rt = await Runtime.start(PARKING);
    try {
      const hold = await rt.loadProgram(fx('rcu_hold.mjs'));
      const nop = await rt.loadProgram(fx('rcu_nop.mjs'));
      const flag = kzalloc(16, OWNER_KERNEL);
      const held = hold.testRun({ cpu: 0, repeat: 1, args: { flag, maxMs: 60_000 } });
      await waitFor(() => Atomics.load(I32, flag >> 2) === 1, 'the reader entering its read section');
      const left = (): boolean => Atomics.load(I32, (flag + 4) >> 2) === 1;
      const load = rt.runWorkload({ cpus: [1], program: nop, seconds: 3600 });
      try {
        const s0 = rcuStats();
        let resolved = false;
        const sync = rt.synchronizeRcu().then(() => { resolved = true; });
        // the grace period waits for CPU 0: the coordinator boosts it, and CPU 1 steps aside
        await waitFor(() => rcuStats().stepAsides > s0.stepAsides, 'CPU 1 stepping aside');
        expect(rcuStats().boosts).toBeGreaterThan(s0.boosts);
        // CPU 1 keeps running programs (a step-aside is bounded), and the GP keeps waiting
        const runs = nop.stats().runCount;
        await waitFor(() => nop.stats().runCount > runs + 1000, 'CPU 1 running programs again');
        await coordinatorPolls(rt, 20);
        expect(resolved, 'a boosted grace period ended while the reader was inside').toBe(false);
        expect(left()).toBe(false);
        Atomics.store(I32, (flag + 8) >> 2, 1); // release the reader
        await sync;
        expect(left()).toBe(true);
        expect((await held).retval).toBe(0);
        // with the reader gone, grace periods end while CPU 1 keeps running
        for (let i = 0; i < 10; i++) await rt.synchronizeRcu({ expedited: i % 2 === 1 });
      } finally {
        rt.stopWorkloads();
      }
      const w = await load;
      expect(w.perCpu[0]!.ok).toBeGreaterThan(0);
      kfree(flag);
      expectNoSplats(rt);
    } finally {
      await rt.stop();
    }
  });
});
