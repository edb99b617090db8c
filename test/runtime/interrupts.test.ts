// Interrupts delivered as asked, and counted (issue "Nothing hangs, nothing lies" §3). Rates are
// checked against the same run's own clock: requested against rate × the busy time the CPU was on
// its core; delivered against requested, with a generous bound (the exact figures are in
// bench/interrupts.bench.ts).
import { describe, it, expect, afterEach } from 'vitest';
import { Runtime, type IrqFigures } from '../../src/runtime/runtime.js';
import { perCpuBlock } from '../../src/mem/this_cpu.js';
import { I32 } from '../../src/mem/arena.js';
import { PC_PENDING, PEND_NMI, PEND_HARDIRQ } from '../../src/mem/layout.js';
import { fixture } from '../helpers.js';

let rt: Runtime | undefined;
afterEach(async () => { await rt?.stop(); rt = undefined; });

function pending(cpu: number, bit: number): number {
  return (Atomics.load(I32, (perCpuBlock(cpu) + PC_PENDING) >> 2) & bit) !== 0 ? 1 : 0;
}

function expectConserved(f: IrqFigures, pend: number): void {
  expect(f.requested).toBe(f.delivered + f.coalesced + pend);
}

describe('interrupt sources', () => {
  for (const hz of [20_000, 100_000]) {
    it(`perf_event at ${hz / 1000} k/s per CPU: requested = rate × on-core busy time (±10 %), requested = delivered + coalesced + pending, most delivered, one program run per NMI`, async () => {
      rt = await Runtime.start({ cpus: 2, memoryBytes: 16 << 20 });
      const busy = await rt.loadProgram(fixture('rb_busy.mjs'), { args: { windows: 20 } });
      const nmi = await rt.loadProgram(fixture('rb_count.mjs'));
      const link = await nmi.attach({ kind: 'perf_event', cpus: 'all', frequencyHz: hz });
      const w = await rt.runWorkload({ cpus: 'all', program: busy, seconds: 0.5 });
      await link.detach();
      const st = rt.stats();
      let delivered = 0;
      for (const c of st.cpus) {
        const f = c.interrupts.nmi;
        expectConserved(f, pending(c.cpu, PEND_NMI));
        const onCoreS = w.perCpu[c.cpu]!.durationNs / 1e9 - c.offCoreMs / 1000;
        expect(onCoreS).toBeGreaterThan(0);
        expect(f.requested / (hz * onCoreS)).toBeGreaterThan(0.9);
        expect(f.requested / (hz * onCoreS)).toBeLessThan(1.1);
        expect(f.delivered).toBeGreaterThanOrEqual(0.75 * f.requested);
        delivered += f.delivered;
      }
      // Every delivered NMI ran the attached perf_event program once (not nested: busy is not tracing).
      expect(nmi.stats().runCount + nmi.stats().recursionMisses).toBe(delivered);
      expect(st.interrupts.nmi.delivered).toBe(delivered);
    });
  }

  it('random hardirq injection: requested follows the rate, the accounting is conserved, and cancel stops it', async () => {
    rt = await Runtime.start({ cpus: 2, memoryBytes: 16 << 20, seed: 5 });
    const busy = await rt.loadProgram(fixture('rb_busy.mjs'), { args: { windows: 20 } });
    const inj = rt.inject({ kind: 'hardirq', cpus: 'all', ratePerSec: 50_000 });
    const w = await rt.runWorkload({ cpus: 'all', program: busy, seconds: 0.4 });
    inj.cancel();
    const st = rt.stats();
    let requested = 0;
    for (const c of st.cpus) {
      const f = c.interrupts.hardirq;
      expectConserved(f, pending(c.cpu, PEND_HARDIRQ));
      const onCoreS = w.perCpu[c.cpu]!.durationNs / 1e9 - c.offCoreMs / 1000;
      // Poisson arrivals: 50 k/s over a fraction of a second is thousands of events (σ ≈ 2 %).
      expect(f.requested / (50_000 * onCoreS)).toBeGreaterThan(0.85);
      expect(f.requested / (50_000 * onCoreS)).toBeLessThan(1.15);
      requested += f.requested;
    }
    expect(inj.fired()).toBe(requested);
    await rt.runWorkload({ cpus: 'all', program: busy, seconds: 0.1 });
    expect(rt.stats().interrupts.hardirq.requested).toBe(requested);
  });

  it('an idle CPU takes no source interrupts (a cycles counter stops in idle)', async () => {
    rt = await Runtime.start({ cpus: 2, memoryBytes: 16 << 20 });
    const busy = await rt.loadProgram(fixture('rb_busy.mjs'));
    const inj = rt.inject({ kind: 'nmi', cpus: 'all', ratePerSec: 20_000 });
    await rt.runWorkload({ cpus: [0], program: busy, seconds: 0.2 });
    inj.cancel();
    const st = rt.stats();
    expect(st.cpus[0]!.interrupts.nmi.requested).toBeGreaterThan(0);
    expect(st.cpus[1]!.interrupts.nmi.requested).toBe(0);
  });
});
