/*
 * interrupts.bench.ts — interrupts delivered as asked: perf_event sampling (periodic NMIs) and
 * random hardirq injection at 1 k … 200 k per second per CPU, on 1 and 2 CPUs running a workload
 * that passes windows. For each case, per CPU, the figures of one run:
 *   requested  events that fell due (the sources count them)
 *   delivered  interrupts the CPU handled
 *   coalesced  events merged into one already pending
 *   on-core    busy time minus the time the thread was off its core (sources skip that time)
 * and the ratios delivered / (rate × on-core time) — the rate the CPU saw while it ran — and
 * delivered / (rate × busy wall time). The baseline is the requested rate itself, over the same
 * run's own clock; a second baseline is the workload's op rate with no source armed, measured in
 * the same round, so the cost of sampling shows too.
 *
 *   npm run build && node dist/bench/interrupts.bench.js [--rounds 3] [--seconds 1] [--json]
 */
import { Runtime } from '../src/runtime/runtime.js';

const args = process.argv.slice(2);
const opt = (name: string, def: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const json = args.includes('--json');
const ROUNDS = opt('rounds', 3);
const SECONDS = opt('seconds', 1);
const RATES = [1_000, 10_000, 100_000, 200_000];
const CPUS = [1, 2];
const fixtures = new URL('../../test/fixtures/', import.meta.url);
const log = (s: string): void => { (json ? process.stderr : process.stdout).write(`${s}\n`); };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}
function spread(xs: number[]): number { return xs.length ? Math.max(...xs) - Math.min(...xs) : 0; }

interface Sample { onCore: number; wall: number; coalescedShare: number; offCoreShare: number; opsRatio: number }

async function once(kind: 'perf_event' | 'hardirq', cpus: number, hz: number): Promise<Sample> {
  const rt = await Runtime.start({ cpus, memoryBytes: 16 << 20, seed: 7 });
  try {
    const busy = await rt.loadProgram(new URL('rb_busy.mjs', fixtures), { args: { windows: 20 } });
    const counter = await rt.loadProgram(new URL('rb_count.mjs', fixtures));
    await rt.runWorkload({ cpus: 'all', program: busy, iterations: 20_000 }); // warm up
    const base = await rt.runWorkload({ cpus: 'all', program: busy, seconds: SECONDS / 2 });
    const baseRate = base.ops / (base.wallNs / 1e9);
    const stop = kind === 'perf_event'
      ? await counter.attach({ kind: 'perf_event', cpus: 'all', frequencyHz: hz }).then((l) => () => l.detach())
      : ((i) => async () => { i.cancel(); })(rt.inject({ kind: 'hardirq', cpus: 'all', ratePerSec: hz, program: counter }));
    const before = rt.stats();
    const w = await rt.runWorkload({ cpus: 'all', program: busy, seconds: SECONDS });
    await stop();
    const after = rt.stats();
    let delivered = 0, requested = 0, coalesced = 0, onCore = 0, wall = 0, off = 0;
    for (let c = 0; c < cpus; c++) {
      const k = kind === 'perf_event' ? 'nmi' : 'hardirq';
      const a = after.cpus[c]!, b = before.cpus[c]!;
      delivered += a.interrupts[k].delivered - b.interrupts[k].delivered;
      requested += a.interrupts[k].requested - b.interrupts[k].requested;
      coalesced += a.interrupts[k].coalesced - b.interrupts[k].coalesced;
      const busyS = w.perCpu[c]!.durationNs / 1e9;
      const offS = (a.offCoreMs - b.offCoreMs) / 1000;
      onCore += hz * (busyS - offS);
      wall += hz * busyS;
      off += offS / busyS;
    }
    const opsRate = w.ops / (w.wallNs / 1e9);
    return {
      onCore: delivered / onCore, wall: delivered / wall, coalescedShare: requested ? coalesced / requested : 0,
      offCoreShare: off / cpus, opsRatio: opsRate / baseRate,
    };
  } finally {
    await rt.stop();
  }
}

const rows: Record<string, unknown>[] = [];
log(`# interrupts delivered vs requested — node ${process.version}, ${ROUNDS} rounds × ${SECONDS} s (median, spread = max − min)`);
log('| source | CPUs | rate/CPU | delivered / (rate × on-core) | delivered / (rate × wall) | coalesced | off-core | workload ops vs no source |');
log('|---|---|---|---|---|---|---|---|');
for (const kind of ['perf_event', 'hardirq'] as const) {
  for (const cpus of CPUS) {
    for (const hz of RATES) {
      const s: Sample[] = [];
      for (let r = 0; r < ROUNDS; r++) s.push(await once(kind, cpus, hz));
      const m = (f: (x: Sample) => number): number => median(s.map(f));
      const sp = (f: (x: Sample) => number): number => spread(s.map(f));
      const row = {
        source: kind === 'perf_event' ? 'perf_event (NMI, periodic)' : 'inject hardirq (random)', cpus, ratePerCpu: hz,
        deliveredOnCore: m((x) => x.onCore), deliveredOnCoreSpread: sp((x) => x.onCore),
        deliveredWall: m((x) => x.wall), deliveredWallSpread: sp((x) => x.wall),
        coalescedShare: m((x) => x.coalescedShare), offCoreShare: m((x) => x.offCoreShare), opsRatio: m((x) => x.opsRatio),
      };
      rows.push(row);
      log(`| ${row.source} | ${cpus} | ${hz / 1000} k/s | ${row.deliveredOnCore.toFixed(3)} ± ${row.deliveredOnCoreSpread.toFixed(3)} | ${row.deliveredWall.toFixed(3)} ± ${row.deliveredWallSpread.toFixed(3)} | ${(100 * row.coalescedShare).toFixed(1)} % | ${(100 * row.offCoreShare).toFixed(1)} % | ${row.opsRatio.toFixed(2)}× |`);
    }
  }
}
if (json) process.stdout.write(`${JSON.stringify({ schema: 'bpfsim-bench/1', bench: 'interrupts', node: process.version, rounds: ROUNDS, seconds: SECONDS, rows }, null, 2)}\n`);
