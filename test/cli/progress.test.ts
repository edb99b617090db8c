// The live display: plain lines at most every interval without a TTY; a redrawn panel on a TTY.
import { beforeAll, describe, expect, it } from 'vitest';
import { createProgress, loadLiveDisplay, plainLine, panel } from '../../src/cli/progress.js';
import type { LiveStats } from '../../src/cli/engine_api.js';
import { Capture } from './helpers.js';

const S: LiveStats = {
  phase: 'hash/bpf_mem_alloc', elapsedMs: 4000, totalMs: 10_000, wallMs: 6300, ops: 4_900_000, opsPerSec: 1_234_000,
  errors: { EBUSY: 12, ENOMEM: 3, EINVAL: 40, E2BIG: 0 }, splats: 0, gracePeriods: 42, memoryBytes: 12.3 * 1048576,
  interrupts: {
    nmi: { requested: 40_000, delivered: 1200, coalesced: 38_799 },
    hardirq: { requested: 900, delivered: 800, coalesced: 100 },
    softirq: { requested: null, delivered: 7, coalesced: null },
    irqWork: 300,
  },
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

describe('live mode, not loaded', () => {
  it('before its terminal code is loaded (progressFor loads it only for a TTY: ~0.25 s of imports), a TTY gets plain lines', () => {
    const out = new Capture(true);
    const p = createProgress({ stream: out, title: 't', intervalMs: 0, now: () => 0 });
    expect(p.live).toBe(false);
    p.update(S);
    expect(out.text).toBe(`${plainLine(S)}\n`);
  });
});

describe('live mode (TTY)', () => {
  beforeAll(() => loadLiveDisplay());

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
    for (const s of ['ops/s', '1.23 M/s', 'EBUSY / ENOMEM', '12 / 3', 'EINVAL 40', 'grace periods', '12.3 MiB', 'kernel BUG/WARN reported']) expect(txt).toContain(s);
    expect(txt).toContain('\u001b['); // redrawn with cursor movement
    expect(panel('x', S).split('\n')[0]).toBe('x');
  });

  it('shows requested / delivered / coalesced per interrupt kind, "?" where the runtime does not count it', () => {
    const rows = panel('x', S).split('\n');
    const row = (label: string): string => rows.find((r) => new RegExp(`^│ +${label} +│`).test(r)) ?? `(no row '${label}')`;
    expect(row('interrupts')).toContain('requested / delivered / coalesced');
    expect(row('NMI')).toMatch(/│ 40\.0k \/ 1200 \/ 38\.8k +│$/);
    expect(row('hardirq')).toMatch(/│ 900 \/ 800 \/ 100 +│$/);
    expect(row('softirq')).toMatch(/│ \? \/ 7 \/ \? +│$/);
    expect(row('irq_work')).toMatch(/│ 300 run +│$/);
  });

  it('its clock is the measured phase against --seconds, with the wall time beside it', () => {
    const p = panel('x', S);
    expect(p).toMatch(/│ measured +│ [█░]{20} 4\.0 \/ 10\.0 s +│/);
    expect(p).toMatch(/│ wall +│ 6\.3 s \(boot, setup, checks included\) +│/);
  });
});
