// Interrupt figures read from rt.stats(): the runtime's { requested, delivered, coalesced } per kind
// when it has them; otherwise what each CPU delivered, with requested and coalesced unknown (null),
// never invented. Summing two runtimes keeps an unknown figure unknown.
import { describe, expect, it } from 'vitest';
import { readInterrupts, addInterrupts, ZERO_INTERRUPTS } from '../../src/cli/irq_stats.js';

const cpu = (c: number, nmi: number, hardirq: number, softirq: number, irqWork: number): Record<string, number> =>
  ({ cpu: c, nmi, hardirq, softirq, irqWork, slowWindows: 0, kprobeWindows: 0 });

describe('readInterrupts', () => {
  it('takes the runtime totals when stats() has them', () => {
    const stats = {
      cpus: [cpu(0, 5, 4, 1, 2), cpu(1, 6, 3, 0, 1)],
      interrupts: {
        nmi: { requested: 20, delivered: 11, coalesced: 9 },
        hardirq: { requested: 8, delivered: 7, coalesced: 1 },
        softirq: { requested: 1, delivered: 1, coalesced: 0 },
      },
    };
    expect(readInterrupts(stats)).toEqual({
      nmi: { requested: 20, delivered: 11, coalesced: 9 },
      hardirq: { requested: 8, delivered: 7, coalesced: 1 },
      softirq: { requested: 1, delivered: 1, coalesced: 0 },
      irqWork: 3,
    });
  });

  it('falls back to what the CPUs delivered, requested and coalesced unknown, for a runtime without the field', () => {
    const stats = { cpus: [{ ...cpu(0, 5, 4, 1, 2), nmiCoalesced: 3 }, cpu(1, 6, 3, 0, 1)] };
    expect(readInterrupts(stats)).toEqual({
      nmi: { requested: null, delivered: 11, coalesced: null },
      hardirq: { requested: null, delivered: 7, coalesced: null },
      softirq: { requested: null, delivered: 1, coalesced: null },
      irqWork: 3,
    });
  });

  it('falls back per kind when the field is partial or malformed, and survives garbage', () => {
    const stats = { cpus: [cpu(0, 5, 4, 1, 0)], interrupts: { nmi: { requested: 9, delivered: 5, coalesced: 4 }, hardirq: 'x', softirq: { requested: 1 } } };
    const r = readInterrupts(stats);
    expect(r.nmi).toEqual({ requested: 9, delivered: 5, coalesced: 4 });
    expect(r.hardirq).toEqual({ requested: null, delivered: 4, coalesced: null });
    expect(r.softirq).toEqual({ requested: null, delivered: 1, coalesced: null });
    expect(readInterrupts(undefined)).toEqual({ nmi: { requested: null, delivered: 0, coalesced: null }, hardirq: { requested: null, delivered: 0, coalesced: null }, softirq: { requested: null, delivered: 0, coalesced: null }, irqWork: 0 });
  });

  it('sums runtimes; unknown stays unknown', () => {
    const known = readInterrupts({ cpus: [], interrupts: { nmi: { requested: 3, delivered: 2, coalesced: 1 }, hardirq: { requested: 0, delivered: 0, coalesced: 0 }, softirq: { requested: 0, delivered: 0, coalesced: 0 } } });
    expect(addInterrupts(ZERO_INTERRUPTS, known)).toEqual(known);
    const unknown = readInterrupts({ cpus: [cpu(0, 4, 0, 0, 1)] });
    expect(addInterrupts(known, unknown).nmi).toEqual({ requested: null, delivered: 6, coalesced: null });
  });
});
