// A deterministic Engine for the CLI tests: no runtime, no workers — just data of the right shape,
// so parsing, progress, verdicts, exit codes, results.json and the report are tested on their own.
import type {
  Engine, StressOptions, StressResult, LiveStats, StressCell, BenchRequest, BenchSuite, ScenarioInfo,
  ScenarioResult, CacheSeries, TimelineSample, InvariantCheck, Interrupts, IrqFlow,
} from '../../src/cli/engine_api.js';
import { EngineUsageError, unsupportedReason } from '../../src/cli/engine_api.js';
import type { BenchCase } from '../../src/bench/harness.js';

/** xorshift32: fixture numbers that look measured but never change. */
function rng(seed: number): () => number {
  let x = (seed >>> 0) || 0x9e3779b9;
  return () => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 0x1_0000_0000; };
}

export const FAKE_SCENARIOS: readonly ScenarioInfo[] = [
  { name: 'nmi-in-bucket-lock', seed: '000', title: 'An NMI program updating a map whose bucket lock its own CPU holds gets -EBUSY', summary: 'CPU 0 holds the bucket lock; an NMI updates the same map.' },
  { name: 'empty-cache-in-nmi', seed: '001', title: 'bpf_mem_alloc: an NMI finds the cache empty and gets NULL', summary: 'Drain the per-CPU cache, then allocate from NMI.' },
  { name: 'always-fails', seed: '002', title: 'A scenario whose verdict fails (tests only)', summary: 'For exit-code tests.' },
];

export interface FakeEngineOptions {
  /** Scenarios offered by listScenarios (default: all but 'always-fails'). */
  readonly scenarios?: readonly ScenarioInfo[];
  /** Delay between progress callbacks, ms. */
  readonly tickMs?: number;
  /** Called after each progress callback of runStress (tick 1..6): tests abort from here. */
  readonly onTick?: (tick: number) => void;
}

export function fakeStressResult(o: StressOptions, ticks = 8): StressResult {
  const r = rng(o.seed + 1);
  const cells: StressCell[] = [];
  for (const map of o.maps) {
    for (const alloc of o.alloc) {
      const why = unsupportedReason(map, alloc);
      if (why !== null) { cells.push({ map, alloc, status: 'skipped', skipReason: why, ops: 0, opsPerSec: 0, errors: {}, recursionMisses: 0, measuredMs: 0 }); continue; }
      const rate = (alloc === 'kmalloc' ? 3e5 : 2e6) * (0.8 + 0.4 * r());
      const ms = (o.seconds * 1000) / (o.maps.length * o.alloc.length);
      const ops = Math.round((rate * ms) / 1000);
      const errors: Record<string, number> = { EBUSY: Math.round(ops * 1e-4), ENOENT: 0 };
      if (alloc !== 'prealloc') errors.ENOMEM = Math.round(ops * 2e-5);
      if (map === 'array' || map === 'percpu_array') errors.E2BIG = Math.round(ops * 0.01);
      cells.push({ map, alloc, status: 'ran', ops, opsPerSec: rate, errors, recursionMisses: Math.round(r() * 20), measuredMs: ms });
    }
  }
  const tEnd = o.seconds * 1000;
  const timeline: TimelineSample[] = [];
  for (let i = 1; i <= Math.max(ticks, 4); i++) {
    const t = (tEnd * i) / Math.max(ticks, 4);
    timeline.push({ tMs: t, opsPerSec: 1.5e6 + 5e5 * r(), memoryBytes: Math.round(8e6 + 4e6 * Math.sin(i / 3) + 1e6 * r()), gracePeriods: i * 7 });
  }
  const caches: CacheSeries[] = [];
  if (o.alloc.includes('bpf_mem_alloc')) {
    for (let cpu = 0; cpu < Math.min(o.cpus, 4); cpu++) {
      const points: [number, number][] = [];
      let lvl = 48;
      for (let i = 0; i <= 40; i++) {
        lvl += Math.round((r() - 0.55) * 14);
        if (lvl < 32) lvl += 48; // irq_work refill of one batch
        if (lvl > 96) lvl = 64;  // trim to the middle
        points.push([(tEnd * i) / 40, lvl]);
      }
      caches.push({ cache: 'hash/bpf_mem_alloc', cpu, unitSize: 48, low: 32, high: 96, points });
    }
  }
  const invariants: InvariantCheck[] = cells.filter((c) => c.status === 'ran').map((c) => ({ name: 'map check()', scope: `${c.map}/${c.alloc}`, ok: true, details: [] }));
  invariants.push({ name: 'allocator accounting', scope: 'global', ok: true, details: [] });
  invariants.push({ name: 'lock words free', scope: 'global', ok: true, details: [] });
  invariants.push({ name: 'recursion counters zero', scope: 'global', ok: true, details: [] });
  if (o.faults.includes('drop_freelist_push')) {
    invariants.push({ name: 'freelist conservation', scope: 'hash/prealloc', ok: false, details: ['free 4000 + live 90 + extra 4 = 4094 elements, capacity 4100 (6 elements lost)'] });
  }
  const leakOk = !o.faults.includes('drop_freelist_push');
  return {
    seed: o.seed,
    elapsedMs: tEnd + 2500,
    measuredMs: tEnd,
    phasesMs: { boot: 1800, setup: 300, measured: tEnd, sampling: 50, checks: 250, teardown: 100 },
    interrupted: false,
    cells,
    interrupts: fakeInterrupts(o),
    gracePeriods: 7 * ticks,
    splats: [],
    invariants,
    leak: { ok: leakOk, startBytes: 1 << 20, endBytes: (1 << 20) + (leakOk ? 0 : 384), details: leakOk ? [] : ['owner st_0 (#3): +384 bytes'] },
    timeline,
    caches,
    gpLatencyMs: Array.from({ length: 300 }, () => 0.2 + 3 * r() * r()),
  };
}

/** Interrupt figures as the runtime reports them: requested = delivered + coalesced. */
export function fakeInterrupts(o: Pick<StressOptions, 'nmiRate' | 'irqRate' | 'seconds' | 'cpus'>, frac = 1): Interrupts {
  const flow = (requested: number, delivered: number): IrqFlow => ({ requested, delivered, coalesced: requested - delivered });
  const nmi = Math.round(o.nmiRate * o.seconds * o.cpus * frac);
  const hardirq = Math.round(o.irqRate * o.seconds * o.cpus * frac);
  return { nmi: flow(nmi, Math.round(nmi * 0.75)), hardirq: flow(hardirq, Math.round(hardirq * 0.9)), softirq: flow(0, 0), irqWork: Math.round(321 * frac) };
}

export function fakeBenchCases(req: BenchRequest): BenchCase[] {
  const cases: BenchCase[] = [];
  const r = rng(req.seed);
  const mk = (c: Omit<BenchCase, 'run'>, rate: number): BenchCase => ({
    ...c,
    run: async (seconds) => ({ ops: Math.round(rate * seconds * (0.97 + 0.06 * r())), elapsedNs: seconds * 1e9 }),
  });
  for (const name of req.names) {
    if (name === 'map_perf') {
      for (const alloc of req.alloc) {
        cases.push(mk({ id: `map_perf/hash/${alloc}`, bench: 'map_perf', label: `hash ${alloc}`, tags: { map: 'hash', alloc, cpus: req.cpus, workload: 'helper' },
          ...(alloc !== 'prealloc' ? { baseline: 'map_perf/hash/prealloc' } : {}), ...(alloc === 'bpf_mem_alloc' ? { target: 0.9 } : {}) },
        alloc === 'prealloc' ? 1e6 : alloc === 'bpf_mem_alloc' ? 9.5e5 : 1.1e5));
      }
    } else if (name === 'lookup') {
      cases.push(mk({ id: 'lookup/js_map_get', bench: 'lookup', label: 'JS Map.get', tags: { op: 'lookup', cpus: 1 } }, 3e7));
      cases.push(mk({ id: 'lookup/hash/1', bench: 'lookup', label: 'hash lookup, 1 CPU', tags: { map: 'hash', cpus: 1 }, baseline: 'lookup/js_map_get', target: 0.5 }, 1.6e7));
    } else if (name === 'htab_mem') {
      for (const alloc of req.alloc) {
        cases.push({
          id: `htab_mem/overwrite/${alloc}`, bench: 'htab_mem', label: `overwrite ${alloc}`, tags: { map: 'hash', alloc },
          ...(alloc !== 'prealloc' ? { baseline: 'htab_mem/overwrite/prealloc' } : {}),
          run: async (s) => ({ ops: Math.round((alloc === 'kmalloc' ? 1e5 : 1e6) * s), elapsedNs: s * 1e9, memory: { avgBytes: 2e6, peakBytes: 3e6 } }),
        });
      }
    } else if (name === 'baselines') {
      for (const op of ['lookup', 'update'] as const) {
        cases.push(mk({ id: `baselines/sharedmap/${op}/1`, bench: 'baselines', label: `sharedmap ${op} ×1`, tags: { map: 'sharedmap', alloc: 'js', cpus: 1, op } }, 1.5e5));
        cases.push(mk({ id: `baselines/js_map/${op}/1`, bench: 'baselines', label: `JS Map ${op} ×1`, tags: { map: 'js_map', alloc: 'js', cpus: 1, op }, baseline: `baselines/sharedmap/${op}/1` }, 1.2e7));
        cases.push(mk({ id: `baselines/hash/${op}/1`, bench: 'baselines', label: `hash prealloc ${op} ×1 CPU`, tags: { map: 'hash', alloc: 'prealloc', cpus: 1, op }, baseline: `baselines/sharedmap/${op}/1`, target: 20 }, op === 'lookup' ? 4e6 : 1.5e5));
      }
    } else if (name === 'boot') {
      const ms = (c: Omit<BenchCase, 'run'>, base: number): BenchCase => ({ ...c, unit: 'ms', run: async () => ({ ops: 1, elapsedNs: base * 1e6 * (0.95 + 0.1 * r()) }) });
      cases.push(ms({ id: 'boot/bare_workers/8', bench: 'boot', label: '8 bare worker threads', tags: { cpus: 8, op: 'boot' } }, 120));
      cases.push(ms({ id: 'boot/cpu_module_workers/8', bench: 'boot', label: '8 workers importing the CPU module', tags: { cpus: 8, op: 'boot' }, baseline: 'boot/bare_workers/8' }, 600));
      cases.push(ms({ id: 'boot/arena', bench: 'boot', label: 'arena alone', tags: { op: 'boot' } }, 0.2));
      cases.push(ms({ id: 'boot/runtime/8', bench: 'boot', label: 'Runtime.start({ cpus: 8 })', tags: { cpus: 8, op: 'boot' }, baseline: 'boot/bare_workers/8' }, 900));
    } else if (name === 'oversub') {
      cases.push(mk({ id: 'oversub/hash/mix/2', bench: 'oversub', label: 'mix ×2 CPUs', tags: { map: 'hash', alloc: 'prealloc', cpus: 2, op: 'mix' } }, 1e6));
      cases.push(mk({ id: 'oversub/hash/mix/8', bench: 'oversub', label: 'mix ×8 CPUs', tags: { map: 'hash', alloc: 'prealloc', cpus: 8, op: 'mix' }, baseline: 'oversub/hash/mix/2', target: 0.9 }, 1e6));
    } else {
      for (const map of req.maps) {
        for (const alloc of req.alloc) {
          if (unsupportedReason(map, alloc) !== null) continue;
          for (const cpus of [1, 2, 4].filter((c) => c <= req.cpus)) {
            cases.push(mk({ id: `scaling/${map}/${alloc}/${cpus}`, bench: 'scaling', label: `${map} ${alloc} ×${cpus}`, tags: { map, alloc, cpus },
              ...(cpus > 1 ? { baseline: `scaling/${map}/${alloc}/1` } : {}) }, (alloc === 'kmalloc' ? 2e5 : 1e6) * cpus * (0.9 - 0.05 * cpus)));
          }
        }
      }
    }
  }
  return cases;
}

export function fakeScenarioResult(info: ScenarioInfo): ScenarioResult {
  const fails = info.name === 'always-fails';
  return {
    name: info.name, seed: info.seed, title: info.title,
    events: [
      { cpu: 0, context: 'task', what: 'map_update_elem(key 1): takes bucket lock of bucket 3 (htab_bucket)' },
      { cpu: 0, context: 'nmi', what: 'NMI at htab.update.locked: perf_event program runs' },
      { cpu: 0, context: 'nmi', what: 'map_update_elem(key 1) -> -EBUSY (map_locked slot busy)' },
      { cpu: 0, context: 'task', what: 'map_update_elem(key 1) -> 0; bucket lock released' },
    ],
    verdict: fails
      ? { ok: false, expected: 'the NMI update gets -EBUSY', observed: 'the NMI update got 0' }
      : { ok: true, expected: 'the NMI update gets -EBUSY and no splat', observed: 'the NMI update got -EBUSY; no splat' },
    splats: [],
    elapsedMs: 12.5,
  };
}

export function createFakeEngine(o: FakeEngineOptions = {}): Engine & { stressCalls: StressOptions[] } {
  const scenarios = o.scenarios ?? FAKE_SCENARIOS.filter((s) => s.name !== 'always-fails');
  const tick = o.tickMs ?? 2;
  const stressCalls: StressOptions[] = [];
  return {
    stressCalls,
    async runStress(opts: StressOptions, onProgress: (s: LiveStats) => void): Promise<StressResult> {
      stressCalls.push(opts);
      const res = fakeStressResult(opts);
      const n = 6;
      for (let i = 1; i <= n; i++) {
        await new Promise((r) => setTimeout(r, tick));
        onProgress({
          phase: 'hash/prealloc', elapsedMs: (opts.seconds * 1000 * i) / n, totalMs: opts.seconds * 1000, wallMs: 1000 + (opts.seconds * 1000 * i) / n,
          ops: 1e5 * i, opsPerSec: 1.5e6, errors: { EBUSY: i, ENOMEM: 2 * i, E2BIG: 10 * i }, splats: 0, gracePeriods: 3 * i, memoryBytes: 8e6,
          interrupts: fakeInterrupts(opts, i / n),
        });
        o.onTick?.(i);
        if (opts.signal?.aborted === true) {
          // as the engine does: the running cell ran partly, later cells were not run
          const ran = res.cells.filter((c) => c.status === 'ran');
          const cut = Math.max(1, Math.floor((ran.length * i) / n));
          const frac = i / n;
          return {
            ...res, interrupted: true, measuredMs: res.measuredMs * frac, phasesMs: { ...res.phasesMs, measured: res.measuredMs * frac },
            interrupts: fakeInterrupts(opts, frac),
            cells: res.cells.map((c) => (c.status !== 'ran' || ran.indexOf(c) < cut ? c
              : { ...c, status: 'skipped', skipReason: 'interrupted (Ctrl-C) before this cell ran', ops: 0, opsPerSec: 0, errors: {}, recursionMisses: 0, measuredMs: 0 })),
          };
        }
      }
      return res;
    },
    async benchSuite(req: BenchRequest): Promise<BenchSuite> {
      return { cases: fakeBenchCases(req), skipped: [], close: async () => {} };
    },
    async listScenarios() { return scenarios; },
    async runScenario(name) {
      const s = scenarios.find((x) => x.name === name);
      if (s === undefined) throw new EngineUsageError(`unknown scenario '${name}'`);
      return fakeScenarioResult(s);
    },
  };
}
