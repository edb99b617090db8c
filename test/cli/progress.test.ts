// The live display: plain lines at most every interval without a TTY; a redrawn panel on a TTY.
import { describe, expect, it } from 'vitest';
import { createProgress, plainLine, panel } from '../../src/cli/progress.js';
import type { LiveStats } from '../../src/cli/engine_api.js';
import { Capture } from './helpers.js';

const S: LiveStats = {
  phase: 'hash/bpf_mem_alloc', elapsedMs: 4000, totalMs: 10_000, ops: 4_900_000, opsPerSec: 1_234_000,
  errors: { EBUSY: 12, ENOMEM: 3, EINVAL: 40, E2BIG: 0 }, splats: 0, gracePeriods: 42, memoryBytes: 12.3 * 1048576,
  interrupts: { nmi: 1200, hardirq: 800, softirq: 0, irqWork: 300 },
};

describe('plain mode', () => {
  it('one line per interval, with every figure', () => {
    let t = 0;
    const out = new Capture(false);
    const p = createProgress({ stream: out, title: 't', intervalMs: 2000, now: () => t });
    expect(p.live).toBe(false);
    for (t = 0; t <= 10_000; t += 250) p.update(S);
    const got = out.text.trim().split('\n');
    expect(got).toHaveLength(5); // at 2, 4, 6, 8, 10 s
    expect(got[0]).toBe(plainLine(S));
    expect(got[0]).toBe('[  4.0s/10.0s] hash/bpf_mem_alloc  1.23 M/s  ops 4.9M  EBUSY 12  ENOMEM 3  errors EINVAL 40  splats 0  GPs 42  mem 12.3 MiB');
    p.log('kept');
    p.stop();
    expect(out.text.endsWith('kept\n')).toBe(true);
  });
});

describe('live mode (TTY)', () => {
  it('draws a panel in place with ops/s, errors by errno, EBUSY/ENOMEM, splats, GPs, memory', () => {
    let t = 0;
    const out = new Capture(true);
    const p = createProgress({ stream: out, title: 'bpfsim stress (seed 1)', now: () => t, redrawMs: 100 });
    expect(p.live).toBe(true);
    p.update(S);
    t = 50; p.update({ ...S, ops: 5e6 });            // within redrawMs: held back
    t = 200; p.update({ ...S, splats: 2 });
    p.stop();
    const txt = out.text;
    expect(txt).toContain('bpfsim stress (seed 1)');
    for (const s of ['ops/s', '1.23 M/s', 'EBUSY / ENOMEM', '12 / 3', 'EINVAL 40', 'grace periods', '12.3 MiB', 'NMI 1200', 'kernel BUG/WARN reported']) expect(txt).toContain(s);
    expect(txt).toContain('\u001b['); // redrawn with cursor movement
    expect(panel('x', S).split('\n')[0]).toBe('x');
  });
});
