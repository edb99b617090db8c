// RCU on one thread: grace periods wait for read sections that existed at the call, idle CPUs
// never hold them up, forced and expedited reports, callbacks (records and embedded heads),
// rcu_barrier, stalls, the housekeeping CPU, tasks-trace, statistics.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { bootRcu, onCpu, pump, pollFor, coordinatorPoll, useManualClock, type ManualClock } from './rcu_boot.js';
import { I32 } from '../../src/mem/arena.js';
import { perCpuBlock } from '../../src/mem/this_cpu.js';
import { PC_PENDING, PEND_RCU_EXP, PC_RCU_QS_SEQ } from '../../src/mem/layout.js';
import { kmalloc, kfree } from '../../src/mm/slab.js';
import { memStats, OWNER_KERNEL } from '../../src/mm/owners.js';
import { processPending } from '../../src/cpu/window.js';
import { readSplats, formatSplat } from '../../src/debug/splat.js';
import {
  rcuReadLock, rcuReadUnlock, rcuReadLockTrace, rcuReadUnlockTrace, rcuQuiescentState, rcuIdleEnter,
  rcuIdleExit, rcuReadLockHeld, callRcu, callRcuHead, callRcuTasksTrace, defineRcuKind,
  registerRcuCallback, synchronizeRcu, synchronizeRcuTasksTrace, rcuBarrier, rcuStats,
  rcuGpLatencySamples, rcuPoll, synchronizeRcuWait, RCU_FQS_MS, rcuService,
} from '../../src/rcu/rcu.js';

const KIND_LOG = defineRcuKind('test.rcu.log');
const KIND_HEAD = defineRcuKind('test.rcu.head');
const ran: number[] = [];
registerRcuCallback(KIND_LOG, (ptr) => { ran.push(ptr); });
registerRcuCallback(KIND_HEAD, (head) => { ran.push(head); kfree(head - 8); });

function expectNoSplats(): void { expect(readSplats().map(formatSplat)).toEqual([]); }
function pending(cpu: number): number { return Atomics.load(I32, (perCpuBlock(cpu) + PC_PENDING) >> 2); }
function busy(cpu: number): void { onCpu(cpu, () => { rcuIdleExit(); }); }
/** A busy CPU caught inside a program (read section) every time the coordinator looks. */
function running(cpu: number): void { onCpu(cpu, () => { rcuIdleExit(); rcuReadLock(); }); }

let hk = 0;
// Grace-period ages (forced reports after RCU_FQS_MS = 1 ms, stalls) follow a manual clock that
// moves only in pollFor(): "not forced yet" and "stalled now" never depend on the machine's load.
let clock: ManualClock | undefined;
beforeEach(() => {
  clock = useManualClock();
  hk = bootRcu({ ncpus: 4 });
  ran.length = 0;
});
afterEach(() => { clock?.restore(); clock = undefined; });

describe('grace periods', () => {
  it('completes at once when every program CPU is idle', async () => {
    expect(await pump(synchronizeRcu(), 2)).toBe(true);
    expect(rcuStats().gpsCompleted).toBe(1);
    expectNoSplats();
  });

  it('waits for a read section that existed at the call, and only for that', async () => {
    busy(0);
    onCpu(0, () => { rcuReadLock(); });
    let done = false;
    const p = synchronizeRcu().then(() => { done = true; });
    busy(1); // busy but outside read sections: observed quiescent, never holds the GP
    await pump(p, 10);
    expect(done).toBe(false);
    // CPU 0 leaves its section: the coordinator sees nesting 0, a quiescent state
    onCpu(0, () => { rcuReadUnlock(); });
    expect(await pump(p, 3)).toBe(true);
    expectNoSplats();
  });

  it('a report from inside a read section does not count', async () => {
    busy(1);
    onCpu(1, () => { rcuReadLock(); });
    const p = synchronizeRcu();
    onCpu(1, () => { rcuQuiescentState(); }); // inside the section: ignored
    expect(await pump(p, 5)).toBe(false);
    onCpu(1, () => { rcuReadUnlock(); rcuQuiescentState(); });
    expect(await pump(p, 3)).toBe(true);
  });

  it('idle CPUs never hold a grace period; going idle is a quiescent state', async () => {
    running(2);
    running(3);
    const p = synchronizeRcu();
    expect(await pump(p, 3)).toBe(false);
    onCpu(2, () => { rcuReadUnlock(); rcuIdleEnter(); });
    onCpu(3, () => { rcuReadUnlock(); rcuReadLock(); }); // CPU 3 ends a section and starts the next unseen
    expect(await pump(p, 1)).toBe(false);
    onCpu(3, () => { rcuReadUnlock(); rcuIdleEnter(); });
    expect(await pump(p, 3)).toBe(true);
    expectNoSplats();
  });

  it('forces a report from a CPU always seen inside read sections and never calling rcuQuiescentState', async () => {
    running(0);
    const p = synchronizeRcu();
    coordinatorPoll();
    expect(pending(0) & PEND_RCU_EXP).toBe(0); // not before RCU_FQS_MS
    onCpu(0, () => { rcuReadUnlock(); rcuReadLock(); }); // between two programs, unseen
    await pollFor(RCU_FQS_MS + 2);
    expect(pending(0) & PEND_RCU_EXP).not.toBe(0);
    onCpu(0, () => { processPending(); }); // the CPU's next window, inside a section: report owed
    expect(pending(0) & PEND_RCU_EXP).toBe(0);
    expect(await pump(p, 2)).toBe(false);
    onCpu(0, () => { rcuReadUnlock(); }); // the outermost unlock pays it
    expect(await pump(p, 3)).toBe(true);
    expect(rcuStats().forcedReports).toBeGreaterThanOrEqual(1);
  });

  it('sections started after the GP began delay it only until they end', async () => {
    running(0);
    const p = synchronizeRcu();
    onCpu(0, () => { rcuReadUnlock(); rcuReadLock(); rcuReadLock(); }); // old section ends unseen, a new one nests
    await pollFor(RCU_FQS_MS + 2);
    onCpu(0, () => { processPending(); rcuReadUnlock(); }); // forced report owed, nesting 1
    expect(await pump(p, 3)).toBe(false);
    onCpu(0, () => { rcuReadUnlock(); }); // outermost unlock pays it
    expect(await pump(p, 3)).toBe(true);
  });
});

describe('expedited', () => {
  it('asks every busy CPU at once and completes when each has reported', async () => {
    running(0); running(1);
    let done = false;
    const p = synchronizeRcu({ expedited: true }).then(() => { done = true; });
    expect(pending(0) & PEND_RCU_EXP).not.toBe(0);
    expect(pending(1) & PEND_RCU_EXP).not.toBe(0);
    expect(pending(2) & PEND_RCU_EXP).toBe(0); // idle: nothing to ask
    onCpu(0, () => { rcuReadUnlock(); processPending(); rcuReadLock(); }); // window between programs
    coordinatorPoll();
    await Promise.resolve();
    expect(done).toBe(false);
    onCpu(1, () => { rcuReadUnlock(); processPending(); rcuReadLock(); });
    expect(await pump(p, 2)).toBe(true);
    expect(rcuStats().expeditedGps).toBe(1);
    expectNoSplats();
  });

  it('a CPU inside a read section reports at its outermost rcuReadUnlock', async () => {
    busy(0);
    onCpu(0, () => { rcuReadLock(); rcuReadLock(); });
    const p = synchronizeRcu({ expedited: true });
    onCpu(0, () => { processPending(); });
    expect(pending(0) & PEND_RCU_EXP).toBe(0); // taken, but the report is owed
    expect(await pump(p, 3)).toBe(false);
    onCpu(0, () => { rcuReadUnlock(); });
    expect(await pump(p, 3)).toBe(false);
    const qs = I32[(perCpuBlock(0) + PC_RCU_QS_SEQ) >> 2]!;
    onCpu(0, () => { rcuReadUnlock(); });
    expect(I32[(perCpuBlock(0) + PC_RCU_QS_SEQ) >> 2]).toBe(qs + 1);
    expect(await pump(p, 2)).toBe(true);
  });

  it('hurries a normal GP already in progress and still needs a fresh one', async () => {
    busy(0);
    onCpu(0, () => { rcuReadLock(); });
    const normal = synchronizeRcu();
    coordinatorPoll();
    const exp = synchronizeRcu({ expedited: true });
    expect(pending(0) & PEND_RCU_EXP).not.toBe(0);
    onCpu(0, () => { processPending(); rcuReadUnlock(); rcuReadLock(); }); // next program starts at once
    expect(await pump(normal, 2)).toBe(true);
    // the expedited one needs the GP after that one: CPU 0 is asked again
    expect(pending(0) & PEND_RCU_EXP).not.toBe(0);
    expect(await pump(exp, 1)).toBe(false);
    onCpu(0, () => { processPending(); rcuReadUnlock(); });
    expect(await pump(exp, 2)).toBe(true);
    expect(rcuStats().gpsCompleted).toBe(2);
  });
});

describe('callbacks', () => {
  it('run after the grace period, records freed, embedded heads handed back', async () => {
    const before = memStats().bytesInUse;
    busy(0);
    onCpu(0, () => { rcuReadLock(); });
    const obj = kmalloc(32, OWNER_KERNEL);
    onCpu(1, () => {
      expect(callRcu(KIND_LOG, 1234)).toBe(0);
      expect(callRcuHead(obj + 8, KIND_HEAD)).toBe(0);
    });
    for (let i = 0; i < 5; i++) coordinatorPoll();
    expect(ran).toEqual([]);
    expect(rcuStats().callbacksPending).toBe(2);
    onCpu(0, () => { rcuReadUnlock(); rcuQuiescentState(); });
    coordinatorPoll();
    expect(ran).toEqual([1234, obj + 8]);
    expect(rcuStats().callbacksRun).toBe(2);
    expect(memStats().bytesInUse).toBe(before);
    expectNoSplats();
  });

  it('a callback queued during a grace period waits for the next one', async () => {
    running(0);
    onCpu(1, () => { callRcu(KIND_LOG, 1); });
    coordinatorPoll(); // GP 1 starts, waits for CPU 0
    onCpu(1, () => { callRcu(KIND_LOG, 2); });
    onCpu(0, () => { rcuReadUnlock(); rcuQuiescentState(); rcuReadLock(); });
    coordinatorPoll(); // GP 1 ends (runs 1), GP 2 starts and waits for CPU 0 again
    expect(ran).toEqual([1]);
    onCpu(0, () => { rcuReadUnlock(); });
    coordinatorPoll();
    expect(ran).toEqual([1, 2]);
  });

  it('rcu_barrier resolves after every callback queued before it ran', async () => {
    busy(0);
    onCpu(0, () => { rcuReadLock(); });
    onCpu(1, () => { callRcu(KIND_LOG, 11); });
    onCpu(2, () => { callRcu(KIND_LOG, 12); callRcuTasksTrace(KIND_LOG, 13); });
    onCpu(hk, () => { callRcu(KIND_LOG, 14); });
    let done = false;
    const b = rcuBarrier().then(() => { done = true; });
    expect(await pump(b, 5)).toBe(false);
    expect(ran).toEqual([]);
    onCpu(0, () => { rcuReadUnlock(); rcuQuiescentState(); });
    expect(await pump(b, 5)).toBe(true);
    expect(done).toBe(true);
    expect([...ran].sort((a, c) => a - c)).toEqual([11, 12, 13, 14]);
    expect(await pump(rcuBarrier(), 1)).toBe(true); // nothing queued: at once
  });

  it('rcu_barrier is not starved by callbacks queued after it', async () => {
    busy(0);
    onCpu(1, () => { callRcu(KIND_LOG, 100); });
    const b = rcuBarrier();
    let done = false;
    void b.then(() => { done = true; });
    for (let i = 0; i < 10 && !done; i++) {
      onCpu(1, () => { callRcu(KIND_LOG, 200 + i); });
      onCpu(0, () => { rcuQuiescentState(); });
      coordinatorPoll();
      await Promise.resolve();
    }
    expect(done).toBe(true);
    expect(ran[0]).toBe(100);
  });

  it('the housekeeping CPU (syscall side) holds a grace period while in a read section', async () => {
    onCpu(hk, () => { rcuReadLock(); });
    onCpu(1, () => { callRcu(KIND_LOG, 7); });
    for (let i = 0; i < 3; i++) coordinatorPoll();
    expect(ran).toEqual([]);
    onCpu(hk, () => { rcuReadUnlock(); });
    coordinatorPoll();
    expect(ran).toEqual([7]);
  });
});

describe('stalls', () => {
  it('one rcu_stall splat per stall, and the GP completes once the CPU leaves', async () => {
    hk = bootRcu({ ncpus: 2, rcuStallMs: 40 });
    busy(0);
    onCpu(0, () => { rcuReadLock(); });
    const p = synchronizeRcu();
    await pollFor(120);
    let s = readSplats();
    expect(s.map((x) => x.kind)).toEqual(['rcu_stall']);
    expect(s[0]!.cpu).toBe(0);
    expect(s[0]!.message).toMatch(/stall on CPU 0/);
    expect(s[0]!.message).toMatch(/read-side critical section/);
    await pollFor(60);
    expect(readSplats()).toHaveLength(1); // still the same stall
    onCpu(0, () => { rcuReadUnlock(); rcuQuiescentState(); });
    expect(await pump(p, 3)).toBe(true);
    expect(rcuStats().stalls).toBe(1);
    // a later, separate stall is reported again
    onCpu(0, () => { rcuReadLock(); });
    const q = synchronizeRcu();
    await pollFor(80);
    s = readSplats();
    expect(s.map((x) => x.kind)).toEqual(['rcu_stall', 'rcu_stall']);
    onCpu(0, () => { rcuReadUnlock(); rcuQuiescentState(); });
    expect(await pump(q, 3)).toBe(true);
  });
});

describe('tasks-trace flavour', () => {
  it('waits for sleepable readers even while their CPU idles; normal GPs do not', async () => {
    busy(0);
    onCpu(0, () => { rcuReadLockTrace(); rcuIdleEnter(); }); // a sleeping sleepable program
    const tt = synchronizeRcuTasksTrace();
    expect(await pump(synchronizeRcu(), 3)).toBe(true);
    expect(await pump(tt, 5)).toBe(false);
    onCpu(0, () => { rcuReadUnlockTrace(); });
    expect(await pump(tt, 3)).toBe(true);
    expect(rcuStats().tasksTrace.gpsCompleted).toBeGreaterThanOrEqual(1);
    expectNoSplats();
  });

  it('also waits for normal readers (a tasks-trace GP implies an RCU GP)', async () => {
    busy(1);
    onCpu(1, () => { rcuReadLock(); });
    const tt = synchronizeRcuTasksTrace();
    expect(await pump(tt, 5)).toBe(false);
    onCpu(1, () => { rcuReadUnlock(); rcuQuiescentState(); });
    expect(await pump(tt, 3)).toBe(true);
  });
});

describe('API edges and statistics', () => {
  it('nesting, unbalanced unlock, worker-only synchronizeRcuWait', () => {
    onCpu(0, () => {
      expect(rcuReadLockHeld()).toBe(false);
      rcuReadLock();
      expect(rcuReadLockHeld()).toBe(true);
      rcuReadUnlock();
      rcuReadUnlock();
    });
    expect(readSplats().map((s) => s.kind)).toEqual(['warn']);
    expect(() => synchronizeRcuWait()).toThrow(/main thread/);
  });

  it('GP latency samples and the coordinator service', async () => {
    for (let i = 0; i < 5; i++) expect(await pump(synchronizeRcu(), 2)).toBe(true);
    const st = rcuStats();
    expect(st.gpsCompleted).toBe(5);
    expect(st.gpLatency.count).toBe(5);
    expect(rcuGpLatencySamples()).toHaveLength(5);
    expect(rcuService.name).toBe('rcu');
    expect(rcuService.poll(0)).toBe(-1); // nothing waits
    running(0);
    void synchronizeRcu();
    const d = rcuPoll();
    expect(d).toBeGreaterThan(0);
    expect(d).toBeLessThanOrEqual(RCU_FQS_MS);
  });
});
