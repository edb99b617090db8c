// The timer figures in results.json and the report: bench.timerLatency is optional (absent unless
// the timers benchmark ran), validated when present, and drawn as the timer-latency chart; stress
// cells carry their workload ('mix' | 'timers').
import { describe, it, expect } from 'vitest';
import { validateResults, timerLatencyRecord, type Results } from '../../src/cli/results.js';
import { buildCharts, isChartSpec } from '../../src/cli/report/charts.js';
import { fixtureResults } from '../cli/helpers.js';

describe('timer figures in results.json and the report', () => {
  it('without timer latency: valid, and the chart is a note naming the command', async () => {
    const r = await fixtureResults();
    expect(validateResults(JSON.parse(JSON.stringify(r)) as unknown).ok).toBe(true);
    const c = buildCharts(r).find((x) => x.id === 'chart-timer-latency')!;
    expect(isChartSpec(c)).toBe(false);
    expect('note' in c ? c.note : '').toMatch(/bpfsim bench timers/);
    expect(r.stress!.cells.every((cell) => cell.workload === 'mix')).toBe(true);
  });

  it('with timer latency: valid, percentiles right, one bar series per measured series', async () => {
    const base = await fixtureResults();
    const samples = [...Array(100).keys()].map((i) => (i + 1) / 1000); // 1 us .. 100 us in ms
    const lat = [timerLatencyRecord('bpf_timer callback', samples), timerLatencyRecord('setTimeout', samples.map((x) => x * 2))];
    expect(lat[0]!.count).toBe(100);
    expect(lat[0]!.p50Ms).toBeGreaterThanOrEqual(0.05);
    expect(lat[0]!.p50Ms).toBeLessThanOrEqual(0.051);
    expect(lat[0]!.maxMs).toBeCloseTo(0.1, 6);
    const r: Results = { ...base, bench: { ...base.bench!, names: [...base.bench!.names, 'timers'], timerLatency: lat } };
    const v = validateResults(JSON.parse(JSON.stringify(r)) as unknown);
    expect(v.ok, v.ok ? '' : v.errors.join('\n')).toBe(true);
    const c = buildCharts(r).find((x) => x.id === 'chart-timer-latency')!;
    expect(isChartSpec(c)).toBe(true);
    if (isChartSpec(c)) expect(c.config.data.datasets.map((d) => d.label)).toEqual(['bpf_timer callback', 'setTimeout']);
    const bad = JSON.parse(JSON.stringify(r)) as { bench: { timerLatency: { p50Ms: unknown }[] } };
    bad.bench.timerLatency[0]!.p50Ms = -1;
    expect(validateResults(bad as unknown).ok).toBe(false);
  });
});
