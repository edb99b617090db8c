// The report's picture of an illegal partition (issue "Histories…" §3): illegalTimeline turns the
// checker's shortest window into one bar per operation (the longest legal order numbered, the
// operation that cannot follow marked), and renderTimeline draws it as Porcupine does: one row
// per CPU, bars from call to return, hover text with the op and the model state after it.
import { describe, it, expect } from 'vitest';
import { checkHistory } from '../../src/check/index.js';
import { illegalTimeline } from '../../src/cli/stress_history.js';
import { renderTimeline } from '../../src/cli/report/history_view.js';
import { upd, look, K_A, V1, V2, V3 } from '../check/helpers.js';

describe('an illegal window in the report', () => {
  it('a lookup returning a value never written: the window holds the write and the lookup, the write linearized first with its state, the lookup marked; the SVG has a row per CPU and one stuck bar', async () => {
    const ops = [upd(K_A, V1, 0, 1, 2), upd(K_A, V2, 0, 3, 6, 0, { cpu: 1 }), look(K_A, V3, 7, 8)];
    const r = await checkHistory(ops, { inProcessMaxOps: Infinity });
    expect(r.result).toBe('illegal');
    const tl = illegalTimeline(ops, r.illegal[0]!);
    const stuck = tl.ops.filter((o) => o.stuck);
    expect(stuck).toHaveLength(1);
    expect(stuck[0]!.label).toBe(`lookup(${K_A}) = ${V3}`);
    const linearized = tl.ops.filter((o) => o.order >= 0).sort((a, b) => a.order - b.order);
    expect(linearized.length).toBeGreaterThan(0);
    expect(linearized.every((o) => o.state !== null)).toBe(true);
    expect(linearized.at(-1)!.state).toBe(V2); // the last write is the state the lookup met
    const svg = renderTimeline(tl);
    expect(svg.startsWith('<svg')).toBe(true);
    const cpus = new Set(tl.ops.map((o) => o.cpu));
    for (const c of cpus) expect(svg).toContain(`>cpu ${c}</text>`);
    expect(svg.match(/<g class="op stuck">/g)).toHaveLength(1);
    expect(svg.match(/<g class="op/g)).toHaveLength(tl.ops.length);
    expect(svg).toContain(`state after: ${V2}`);
    expect(svg).toContain('cannot be linearized here: ILLEGAL');
  });

  it('an operation still running at the window end is hatched, and markup in labels is escaped', () => {
    const svg = renderTimeline({
      title: 'map 1 key <k>', fromAnyState: true,
      ops: [
        { cpu: 0, label: 'update(<k>, 01) = 0', call: 1, ret: 4, order: 0, state: '01', stuck: false, pending: false },
        { cpu: 1, label: 'lookup(<k>) = 02', call: 2, ret: 5, order: -1, state: null, stuck: true, pending: false },
        { cpu: 2, label: 'delete(<k>) = 0', call: 3, ret: 9, order: -1, state: null, stuck: false, pending: true },
      ],
    });
    expect(svg).toContain('fill="url(#pending)"');
    expect(svg).not.toContain('<k>');
    expect(svg).toContain('&lt;k&gt;');
    expect(svg).toContain('starts from any state of the key');
  });
});
