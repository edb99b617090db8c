// bpf_res_spin_lock (src/locks/res_spinlock.ts): AA, held-table overflow ending in -ETIMEDOUT,
// AB-BA across real worker threads, LIFO unlock, the abort path's unwind, mutual exclusion.
import { describe, it, expect, afterEach } from 'vitest';
import { Runtime } from '../../src/runtime/runtime.js';
import type { BpfMap } from '../../src/maps/bpf_map.js';
import { I32, detachArena, lockTimeoutMs } from '../../src/mem/arena.js';
import { setThisCpu, pcpuI } from '../../src/mem/this_cpu.js';
import { PC_IRQS_OFF } from '../../src/mem/layout.js';
import { kzalloc } from '../../src/mm/slab.js';
import { OWNER_KERNEL } from '../../src/mm/owners.js';
import {
  RES_NR_HELD, RES_WAITERS, resSpinLock, resSpinLockIrqsave, resSpinUnlock, resSpinUnlockIrqrestore,
  resHeldCount, resUnwindHeld, resLockStats,
} from '../../src/locks/res_spinlock.js';
import { bootArena } from '../boot_arena.js';
import { fixture, expectNoSplats } from '../helpers.js';

const EDEADLK = -35, ETIMEDOUT = -110, EINVAL = -22;

let rt: Runtime | undefined;
afterEach(async () => { await rt?.stop(); rt = undefined; });

const key0 = new Uint8Array(4);
/** u32 slot i of value 0 of `m`, as a signed i32 (returns are negative errnos). */
function slot(m: BpfMap, i: number): number {
  const v = m.lookup(key0)!;
  return new DataView(v.buffer, v.byteOffset, v.byteLength).getInt32(4 * i, true);
}

async function boot(cpus: number, lockTimeout = 250): Promise<{ rt: Runtime; locks: BpfMap }> {
  rt = await Runtime.start({ cpus, memoryBytes: 16 << 20, lockTimeoutMs: lockTimeout });
  const locks = rt.createMap({ type: 'array', name: 'locks', keySize: 4, valueSize: 4 * 64, maxEntries: 1 });
  return { rt, locks };
}

describe('bpf_res_spin_lock in programs', () => {
  it('AA: the same lock twice -> -EDEADLK at once; the first stays held and is then released normally', async () => {
    const { rt, locks } = await boot(2);
    const p = await rt.loadProgram(fixture('rqs_aa.mjs'), { maps: { locks } });
    expect((await p.testRun({ cpu: 1 })).retval).toBe(0);
    expect(slot(locks, 32 + 0)).toBe(0);          // first acquisition
    expect(slot(locks, 32 + 1)).toBe(EDEADLK);    // second: AA
    expect(slot(locks, 32 + 2) & 0xff).toBe(2);   // word still owned by cpu 1 (cpu + 1)
    expect(slot(locks, 32 + 3)).toBe(1);          // the failed attempt's entry was removed
    expect(slot(locks, 32 + 5)).toBe(0);          // released: word free
    expect(slot(locks, 32 + 6)).toBe(0);          // held table empty
    expect(slot(locks, 0)).toBe(0);
    const st = resLockStats();
    expect(st.deadlocksAA).toBe(1);
    expect(st.acquired).toBe(1);
    expect(st.timeouts + st.deadlocksABBA).toBe(0);
    expectNoSplats(rt);                           // -EDEADLK is a result, not a kernel bug
  });

  it('AA with _irqsave: irqs stay off while the first lock is held, and are on again after _irqrestore', async () => {
    const { rt, locks } = await boot(1);
    const p = await rt.loadProgram(fixture('rqs_aa.mjs'), { maps: { locks } });
    expect((await p.testRun({ cpu: 0, args: { irqsave: true } })).retval).toBe(0);
    expect(slot(locks, 32 + 1)).toBe(EDEADLK);
    expect(slot(locks, 32 + 4)).toBe(1);          // failed _irqsave restored "off" (the first lock's state)
    expect(slot(locks, 32 + 7)).toBe(0);          // _irqrestore of the first: irqs on, as at entry
    expect(slot(locks, 32 + 5)).toBe(0);
    expectNoSplats(rt);
  });

  it('an NMI taking the res lock its interrupted task holds gets -EDEADLK (the held table is per CPU), no splat', async () => {
    const { rt, locks } = await boot(1);
    const holder = await rt.loadProgram(fixture('rqs_hold.mjs'), { maps: { locks } });
    const nmi = await rt.loadProgram(fixture('rqs_nmi_taker.mjs'), { maps: { locks } });
    const inj = rt.inject({ cpu: 0, at: 'test.rqs.held', kind: 'nmi', times: 1, program: nmi });
    expect((await holder.testRun({ cpu: 0 })).retval).toBe(0);
    expect(inj.fired()).toBe(1);
    expect(nmi.lastRetval(0)).toBe(EDEADLK);
    expect(slot(locks, 0)).toBe(0);
    expectNoSplats(rt);
  });

  it('a holder off its core (sleeping inside the lock) past the timeout: the waiter gets -ETIMEDOUT, no splat — not relaxed as raw locks are', async () => {
    const { rt, locks } = await boot(2, 100);
    const p = await rt.loadProgram(fixture('rqs_hold.mjs'), { maps: { locks } });
    const holder = p.testRun({ cpu: 0, args: { sleepMs: 600 } });
    for (let n = 0; n < 3000 && slot(locks, 0) === 0; n++) await new Promise((r) => setTimeout(r, 5));
    expect(slot(locks, 0) & 0xff).toBe(1);
    expect((await p.testRun({ cpu: 1 })).retval).toBe(ETIMEDOUT);
    expect((await holder).retval).toBe(0);
    expect(slot(locks, 0)).toBe(0);
    expect(resLockStats()).toMatchObject({ timeouts: 1, acquired: 1 });
    expectNoSplats(rt);
  });

  it('an NMI landing in the wait loop (site res_spin_lock.wait) runs there; taking the lock its CPU waits for is -EDEADLK; the waiter then gets the lock', async () => {
    const { rt, locks } = await boot(2, 2000);
    const hold = await rt.loadProgram(fixture('rqs_hold.mjs'), { maps: { locks } });
    const nmi = await rt.loadProgram(fixture('rqs_nmi_taker.mjs'), { maps: { locks } });
    const holder = hold.testRun({ cpu: 0, args: { sleepMs: 500 } });
    for (let n = 0; n < 3000 && slot(locks, 0) === 0; n++) await new Promise((r) => setTimeout(r, 5));
    const inj = rt.inject({ cpu: 1, at: 'res_spin_lock.wait', kind: 'nmi', times: 1, program: nmi });
    expect((await hold.testRun({ cpu: 1 })).retval).toBe(0);
    expect((await holder).retval).toBe(0);
    expect(inj.fired()).toBe(1);
    // the waiter's entry is in its CPU's table: the NMI would queue behind the context it interrupted
    expect(nmi.lastRetval(1)).toBe(EDEADLK);
    expect(slot(locks, 0)).toBe(0);
    expect(resLockStats()).toMatchObject({ acquired: 2, deadlocksAA: 1, timeouts: 0 });
    expectNoSplats(rt);
  });

  it(`held table overflow: with 34 locks held, re-taking a recorded one is AA, re-taking one past RES_NR_HELD (${RES_NR_HELD}) waits out the timeout; all 34 are then released`, async () => {
    const { rt, locks } = await boot(1);
    const p = await rt.loadProgram(fixture('rqs_held_max.mjs'), { maps: { locks } });
    // slot 30 is the 31st lock, the last recorded entry: AA detection still sees it
    expect((await p.testRun({ cpu: 0, args: { retake: 30 } })).retval).toBe(0);
    expect(slot(locks, 48 + 2)).toBe(34);
    expect(slot(locks, 48 + 3)).toBe(34);        // count goes past RES_NR_HELD
    expect(slot(locks, 48 + 0)).toBe(EDEADLK);
    expect(slot(locks, 48 + 4)).toBe(34);        // the failed attempt is not counted
    expect(slot(locks, 48 + 5)).toBe(0);
    for (const retake of [31, 33]) {
      expect((await p.testRun({ cpu: 0, args: { retake } })).retval).toBe(0);
      expect(slot(locks, 48 + 0)).toBe(ETIMEDOUT);
      expect(slot(locks, 48 + 1) / 1000).toBeGreaterThanOrEqual(lockTimeoutMs); // lower bound only
      expect(slot(locks, 48 + 4)).toBe(34);
      expect(slot(locks, 48 + 5)).toBe(0);
    }
    expect(lockTimeoutMs).toBe(250);               // the kernel's RES_DEF_TIMEOUT
    for (let i = 0; i < 34; i++) expect(slot(locks, i)).toBe(0);
    const st = resLockStats();
    expect(st).toMatchObject({ deadlocksAA: 1, timeouts: 2, deadlocksABBA: 0, acquired: 3 * 34 });
    expectNoSplats(rt);
  });

  for (const cpus of [2, 4]) {
    it(`AB-BA on ${cpus} CPUs: a side sees -EDEADLK, both sides then proceed, the doubly-locked counter is exact, every word ends at 0`, async () => {
      const { rt, locks } = await boot(cpus);
      const p = await rt.loadProgram(fixture('rqs_abba.mjs'), { maps: { locks } });
      const iterations = 150;
      let ok = 0, runs = 0, deadlocks = 0, timeouts = 0;
      // rounds until an AB-BA was seen (bounded in rounds and time: a loaded machine may
      // serialise a round, and undetected AB-BAs would each cost a lock timeout)
      const giveUp = performance.now() + 5000;
      for (let round = 0; round < 20 && deadlocks === 0 && performance.now() < giveUp; round++) {
        const r = await rt.runWorkload({ cpus: 'all', program: p, iterations, seconds: 1, args: { holdUs: 50 } });
        expect(r.disabled).toBe(false);
        expect(Object.keys(r.errors).filter((k) => k !== 'EDEADLK' && k !== 'ETIMEDOUT')).toEqual([]);
        runs += r.ops;
        deadlocks += r.errors.EDEADLK ?? 0;
        timeouts += r.errors.ETIMEDOUT ?? 0;
        ok += r.ops - (r.errors.EDEADLK ?? 0) - (r.errors.ETIMEDOUT ?? 0);
      }
      expect(runs).toBeGreaterThan(0);
      expect(deadlocks).toBeGreaterThan(0);
      const okAB = slot(locks, 3), okBA = slot(locks, 4);
      expect(okAB).toBeGreaterThan(0);
      expect(okBA).toBeGreaterThan(0);
      expect(okAB + okBA).toBe(ok);
      expect(slot(locks, 2)).toBe(ok);                       // mutual exclusion under both locks
      expect(slot(locks, 5) + slot(locks, 6)).toBe(deadlocks); // every -EDEADLK came from the second lock
      const st = resLockStats();
      expect(st.deadlocksABBA).toBe(deadlocks);
      expect(st.deadlocksAA).toBe(0);
      expect(st.timeouts).toBe(timeouts);
      expect(slot(locks, 0)).toBe(0);
      expect(slot(locks, 1)).toBe(0);
      expectNoSplats(rt);
    });
  }

  it('mutual exclusion: 4 CPUs x 5000 lock / non-atomic increment / unlock (odd CPUs _irqsave) -> exact total, irqs restored', async () => {
    const { rt, locks } = await boot(4);
    const p = await rt.loadProgram(fixture('rqs_torture.mjs'), { maps: { locks } });
    const iterations = 5000;
    const r = await rt.runWorkload({ cpus: 'all', program: p, iterations, args: {} });
    expect(r.errors).toEqual({});                 // no -EDEADLK with one lock; -ETIMEDOUT is retried
    expect(r.ops).toBe(4 * iterations);
    expect(slot(locks, 1)).toBe(4 * iterations);
    expect(slot(locks, 3)).toBe(0);
    expect(slot(locks, 0)).toBe(0);
    const st = resLockStats();
    expect(st.acquired).toBe(4 * iterations);
    expect(st.timeouts).toBe(slot(locks, 2));     // counted, never asserted zero (2-core machine)
    expect(st.deadlocksAA + st.deadlocksABBA).toBe(0);
    expectNoSplats(rt);
  });
});

describe('bpf_res_spin_lock on a booted arena (one thread acting as a CPU)', () => {
  afterEach(() => { detachArena(); });

  function arena(): { lock: (i: number) => number; irqs: () => number; setIrqs: (v: number) => void } {
    bootArena({ ncpus: 2, lockTimeoutMs: 250 });
    setThisCpu(0);
    const base = kzalloc(4 * 64, OWNER_KERNEL);
    return {
      lock: (i) => base + 4 * i,
      irqs: () => I32[pcpuI + (PC_IRQS_OFF >> 2)]!,
      setIrqs: (v) => { I32[pcpuI + (PC_IRQS_OFF >> 2)] = v; },
    };
  }
  const word = (p: number): number => Atomics.load(I32, p >> 2);

  it('unlock out of LIFO order (or of a lock not held, or with the other variant) is -EINVAL and releases nothing', () => {
    const { lock } = arena();
    const A = lock(0), B = lock(1), C = lock(2);
    expect(resSpinLock(A)).toBe(0);
    expect(resSpinLock(B)).toBe(0);
    expect(resSpinUnlock(A)).toBe(EINVAL);          // A is not the newest
    expect(resSpinUnlock(C)).toBe(EINVAL);          // C is not held at all
    expect(resSpinUnlockIrqrestore(B)).toBe(EINVAL); // B was not taken with _irqsave
    expect(resHeldCount()).toBe(2);
    expect(word(A) & 0xff).toBe(1);
    expect(word(B) & 0xff).toBe(1);
    expect(resSpinUnlock(B)).toBe(0);
    expect(word(B)).toBe(0);
    expect(word(A) & 0xff).toBe(1);
    expect(resSpinUnlock(A)).toBe(0);
    expect(resSpinUnlock(A)).toBe(EINVAL);          // twice
    expect(word(A)).toBe(0);
    expect(resHeldCount()).toBe(0);
  });

  it('a lock held by another CPU is not this CPU\'s to unlock, whatever its table says', () => {
    const { lock } = arena();
    const A = lock(0);
    setThisCpu(1);
    expect(resSpinLock(A)).toBe(0);
    setThisCpu(0);
    expect(resSpinUnlock(A)).toBe(EINVAL);
    expect(word(A) & 0xff).toBe(2);
    setThisCpu(1);
    expect(resSpinUnlock(A)).toBe(0);
  });

  it('resUnwindHeld releases newest first and restores each saved irq flag', () => {
    const { lock, irqs } = arena();
    const [A, B, C, D] = [lock(0), lock(1), lock(2), lock(3)];
    expect(irqs()).toBe(0);
    expect(resSpinLock(A)).toBe(0);
    expect(resSpinLockIrqsave(B)).toBe(0);        // saves "on"
    expect(irqs()).toBe(1);
    expect(resSpinLockIrqsave(C)).toBe(0);        // saves "off"
    expect(resSpinLock(D)).toBe(0);
    expect(resHeldCount()).toBe(4);
    expect(resUnwindHeld(3)).toBe(1);             // D only
    expect(word(D)).toBe(0);
    expect(word(C)).not.toBe(0);
    expect(irqs()).toBe(1);
    expect(resUnwindHeld(1)).toBe(2);             // C (restores off), then B (restores on)
    expect(irqs()).toBe(0);                       // oldest-first would have ended with C's "off"
    expect([word(B), word(C)]).toEqual([0, 0]);
    expect(word(A) & 0xff).toBe(1);
    expect(resHeldCount()).toBe(1);
    expect(resUnwindHeld(5)).toBe(0);             // nothing above 5
    expect(resUnwindHeld(0)).toBe(1);
    expect(word(A)).toBe(0);
    expect(resHeldCount()).toBe(0);
    expect(resLockStats().acquired).toBe(4);
  });

  it('resUnwindHeld also releases locks past RES_NR_HELD, and their saved irq flags', () => {
    const { lock, irqs } = arena();
    for (let i = 0; i < 35; i++) expect(resSpinLock(lock(i))).toBe(0);
    expect(resSpinLockIrqsave(lock(35))).toBe(0); // depth 35: not recorded, still tracked
    expect(irqs()).toBe(1);
    for (let i = 36; i < 40; i++) expect(resSpinLock(lock(i))).toBe(0);
    expect(resHeldCount()).toBe(40);
    expect(resUnwindHeld(0)).toBe(40);
    expect(irqs()).toBe(0);
    for (let i = 0; i < 40; i++) expect(word(lock(i))).toBe(0);
    expect(resHeldCount()).toBe(0);
  });

  it('AA fails at once with the entry removed; a failed _irqsave restores irqs; an unowned word needs no wait', () => {
    const { lock, irqs, setIrqs } = arena();
    const A = lock(0);
    expect(resSpinLock(A)).toBe(0);
    expect(resSpinLock(A)).toBe(EDEADLK);
    expect(resHeldCount()).toBe(1);
    setIrqs(0);
    expect(resSpinLockIrqsave(A)).toBe(EDEADLK);
    expect(irqs()).toBe(0);
    expect(resSpinUnlock(A)).toBe(0);
    expect(resSpinLockIrqsave(A)).toBe(0);
    expect(resSpinUnlockIrqrestore(A)).toBe(0);
    expect(word(A)).toBe(0);
    expect(resLockStats()).toMatchObject({ acquired: 2, deadlocksAA: 2, deadlocksABBA: 0, timeouts: 0 });
  });

  it('a lock owned by another CPU whose owner never releases it: -ETIMEDOUT after the timeout, the waiters bit left for the owner to notify', () => {
    bootArena({ ncpus: 2, lockTimeoutMs: 50 });
    const A = kzalloc(8, OWNER_KERNEL);
    setThisCpu(1);
    expect(resSpinLock(A)).toBe(0);
    setThisCpu(0);
    const t0 = performance.now();
    expect(resSpinLock(A)).toBe(ETIMEDOUT);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(50);
    expect(resHeldCount()).toBe(0);
    expect(word(A) & RES_WAITERS).toBe(RES_WAITERS);
    setThisCpu(1);
    expect(resSpinUnlock(A)).toBe(0);
    expect(word(A)).toBe(0);
    expect(resLockStats().timeouts).toBe(1);
  });

  it('bad lock pointers are refused (the verifier would reject the program)', () => {
    arena();
    expect(() => resSpinLock(0)).toThrow(TypeError);
    expect(() => resSpinLock(4098)).toThrow(TypeError);
    expect(() => resSpinLock(-8)).toThrow(TypeError);
    expect(resHeldCount()).toBe(0);
  });
});
