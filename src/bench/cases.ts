/*
 * cases.ts — the benchmark cases: what `bpfsim bench` runs (Engine.benchSuite) and what the files
 * in bench/ run (createBenchSuite), one definition of every workload, unit and baseline (the list
 * below). A case only measures (BenchCase.run); rounds, medians and ratios are harness.ts's.
 *
 * Invariants: a case's map is probed before the run, and a case whose map the library refuses, or
 * whose baseline cannot run, is skipped with its reason, never measured (probeCases); every case
 * with a baseline is measured against it in the same run; boot time and warm-up runs (WARM_S)
 * stay outside the measured windows. The suite holds one runtime at a time (runtime_slot.ts).
 * The programs the CPUs run are src/cli/programs/bench_*.ts (and bench/programs/baselines_ops.ts).
 */
import { Runtime, type Program } from '../runtime/runtime.js';
import { BPF_F_NO_PREALLOC, BPF_F_NO_COMMON_LRU } from '../maps/map_ops.js';
import type { BpfMap } from '../maps/bpf_map.js';
import { memStats, ownerBytes } from '../mm/owners.js';
import { errnoName } from '../errno.js';
import {
  runWorkers, runSharedMap, createFilledSharedMap, loadSharedMap, spawnUntilReady, allocateArena, importingWorkerSource,
  BARE_WORKER_SOURCE, type BenchCase, type Measurement,
} from './harness.js';
import { unsupportedReason, type MapType, type AllocMode, type BenchRequest, type BenchSuite } from '../cli/engine_api.js';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BenchArgs, BenchOp } from '../cli/programs/bench_ops.js';
import { eventsPerRun, type MapPerfArgs } from '../cli/programs/bench_map_perf.js';
import { HTAB_MEM_SCENARIOS, htabMemUserBytes, htabMemOps, type HtabMemArgs } from '../cli/programs/bench_htab_mem.js';
import { ARM_CANCEL_PAIRS, BENCH_TIMER_VALUE_SIZE, type BenchTimerArgs } from '../cli/programs/bench_timers.js';
import {
  BENCH_GRAPH_VALUE_SIZE, BENCH_GRAPH_FIELDS, BENCH_GRAPH_INNER, BENCH_GRAPH_TREE_SIZE, type BenchGraphArgs,
} from '../cli/programs/bench_graph.js';
import { runGraphJs } from '../cli/programs/bench_graph_js.js';
import { MEMORY_BYTES, dynAllocOf, mergeErrors, cpuRange } from './runtime_helpers.js';
import { RuntimeSlot, type RtConfig } from './runtime_slot.js';
import { measureTimerLatency } from './timer_latency.js';

const PROG = {
  bench: new URL('../cli/programs/bench_ops.js', import.meta.url),
  mapPerf: new URL('../cli/programs/bench_map_perf.js', import.meta.url),
  htabMem: new URL('../cli/programs/bench_htab_mem.js', import.meta.url),
  timers: new URL('../cli/programs/bench_timers.js', import.meta.url),
  benchGraph: new URL('../cli/programs/bench_graph.js', import.meta.url),
};

// ---------------------------------------------------------------------------------------------
// Bench — the case definitions, shared by `bpfsim bench` (engine.benchSuite) and by the files in
// bench/ (createBenchSuite): one definition of every workload, unit and baseline. The files in
// bench/ only choose the request (which benchmarks, maps, alloc modes, how many CPUs).
//
//   map_perf  samples/bpf/map_perf_test: per-CPU events/s at each CPU count of cpuSteps(cpus)
//             (1, 2, 4, …), each CPU on its own key. Hash-type maps: an event = update(BPF_ANY)
//             → lookup → delete, ten per program run (the kernel's loop since Sep 2022; its
//             printed "events per sec" counts syscalls, i.e. our events / 10). Arrays: an event
//             = one lookup of key 1, 64 per run (stress_array_map_lookup). lru_hash runs twice:
//             common LRU and BPF_F_NO_COMMON_LRU. Two paths: 'helper' (map helpers in a program)
//             and 'syscall' (the bpf(2) commands a task-context workload makes, ctx.sys.*).
//             Baseline: the preallocated map of the same type, path and CPU count.
//             max_entries as the kernel's maps: 1000, LRU 10 000.
//   htab_mem  selftests bench htab-mem: overwrite, batch_add_batch_del, add_del_on_diff_cpu with
//             `cpus` producers (add_del: an even number), key 4 B, value 8 B, max_entries =
//             max(8192, 64 × cpus), 64 keys per invocation; ops/s per producer and the map's
//             memory (mapMemoryBytes: slab bytes charged to the map and to its elements' owner,
//             sampled every 10 ms: the kernel's memcg figure). Baseline: preallocated.
//   lookup    1 CPU, 100k entries, hash lookup / overwrite vs JS Map.get / Map.set (bench_ops).
//   scaling   lookups (64 per run, a stride walk over 100k shared keys) on 1, 2, 4, … CPUs
//             (preallocated maps of each requested type), and a JS Map per worker doing the same
//             walk on as many threads; each against its own 1-CPU figure (target 2 CPUs ≥ 1.8×).
//   graph     rbtree add + remove-first and list push + pop pairs under bpf_spin_lock
//             (bench_graph.ts), on 1, 2, 4, … CPUs, each CPU on its own value or all on one;
//             against the same work in as many worker threads behind an Atomics lock
//             (bench_graph_js.ts: a JS sorted array / array, per thread or in one SharedArrayBuffer).
//   baselines what a Node user would pick instead, same keys and workload: BASELINE_KEYS u32 keys,
//             8-byte values, lookups or overwrite updates walking the keys with a fixed stride
//             (bench/programs/baselines_ops.ts, 64 per run), on 1 and 2 CPUs / threads: bpfsim's
//             hash map (prealloc), the `sharedmap` npm package (one map in a SharedArrayBuffer;
//             the baseline, target bpfsim ≥ 20×) and a JS Map per worker (harness.ts). Without
//             sharedmap installed, its cases are skipped and the JS Map is the baseline.
//   boot      Runtime.start({ cpus: 8 }) to ready (then stop), against 8 bare worker threads that
//             import nothing; the breakdown: 8 workers that import the CPU worker's module, and
//             the arena's SharedArrayBuffer alone (harness.ts boot probes). Unit: ms. The suite's
//             runtime is stopped first (one runtime per thread).
//   oversub   the lock-heavy mix (baselines_ops 'mix': 50 % update, 25 % delete, 25 % lookup of
//             OVERSUB_KEYS keys shared by every CPU) on 8 CPUs against 2, in one 8-CPU runtime;
//             total ops/s (target 8 CPUs ≥ 0.9× of 2 on a 2-core machine).
//
// Runtimes: one per thread, and the dynamic allocator is a runtime option, so a suite keeps one
// runtime and switches when a case needs the other allocator. Within each benchmark the cases
// that need the kmalloc runtime come last, so interleaved rounds switch twice per round at most.

/**
 * Slab bytes charged to a map: its own memory owner plus, for BPF_F_NO_PREALLOC hash maps, the
 * owner its elements, value areas and bpf_mem_alloc caches are charged to (impl.alloc.owner) —
 * together what the kernel charges to the map's memcg. All slab bytes when the map has no owner.
 */
export function mapMemoryBytes(m: BpfMap): number {
  const impl = m.impl as unknown as { owner?: unknown; alloc?: { owner?: unknown } | null };
  if (typeof impl.owner !== 'number') return memStats().bytesInUse;
  const elems = impl.alloc?.owner;
  return ownerBytes(impl.owner) + (typeof elems === 'number' && elems !== impl.owner ? ownerBytes(elems) : 0);
}

async function measure(rt: Runtime, prog: Program, cpus: number, seconds: number, args: BenchArgs, opsPerIter = 1): Promise<Measurement> {
  const r = await rt.runWorkload({ cpus: cpuRange(cpus), context: 'task', program: prog, seconds, args });
  const elapsedNs = Math.max(...r.perCpu.map((c) => c.durationNs), 1);
  return { ops: r.ops * opsPerIter, elapsedNs };
}

async function prefill(rt: Runtime, prog: Program, keys: number): Promise<void> {
  await rt.runWorkload({ cpus: [0], context: 'task', program: prog, iterations: keys, args: { op: 'fill', keys, perCpu: false, canDelete: true } satisfies BenchArgs });
}

/**
 * Run `args` on CPUs 0..cpus-1 for `seconds`. perCpu: ops = mean events per CPU (per-CPU
 * events/s, as map_perf_test prints); else the sum over CPUs (throughput).
 */
async function runEvents(rt: Runtime, prog: Program, cpus: number, seconds: number, args: MapPerfArgs, perCpu: boolean, errors: Record<string, number>): Promise<Measurement> {
  const r = await rt.runWorkload({ cpus: cpuRange(cpus), context: 'task', program: prog, seconds, args });
  mergeErrors(errors, r.errors);
  const events = r.ops * eventsPerRun(args.op);
  const durs = r.perCpu.map((c) => c.durationNs);
  return perCpu
    ? { ops: events / cpus, elapsedNs: Math.max(durs.reduce((a, b) => a + b, 0) / durs.length, 1) }
    : { ops: events, elapsedNs: Math.max(...durs, 1) };
}

function cpuSteps(max: number): number[] {
  const out: number[] = [];
  for (let c = 1; c < max; c *= 2) out.push(c);
  out.push(max);
  return [...new Set(out)];
}

interface PlannedCase {
  readonly c: BenchCase;
  /** The map the case creates (probed before the run: a refused map skips the case). */
  readonly needs?: { readonly map: MapType; readonly alloc: AllocMode; readonly flags: number };
}

/** A map_perf map: a type, with flags (LRU: common or per-CPU lists), and its event. */
interface MapPerfVariant {
  readonly key: string;
  readonly map: MapType;
  readonly flags: number;
  readonly name: string;
  readonly op: 'triple' | 'lookup';
  readonly maxEntries: number;
}

function mapPerfVariants(maps: readonly MapType[]): MapPerfVariant[] {
  const out: MapPerfVariant[] = [];
  for (const map of maps) {
    if (map === 'hash' || map === 'percpu_hash') out.push({ key: map, map, flags: 0, name: map, op: 'triple', maxEntries: 1000 });
    else if (map === 'lru_hash' || map === 'lru_percpu_hash') {
      out.push({ key: map, map, flags: 0, name: map, op: 'triple', maxEntries: 10_000 });
      out.push({ key: `${map}_nocommon`, map, flags: BPF_F_NO_COMMON_LRU, name: `${map} (no common LRU)`, op: 'triple', maxEntries: 10_000 });
    } else if (map === 'array' || map === 'percpu_array') out.push({ key: map, map, flags: 0, name: `${map} lookup`, op: 'lookup', maxEntries: 1000 });
    // hash_of_maps / array_of_maps: map_perf has no workload for them (its INNER_LRU test aside)
  }
  return out;
}

const SCALING_KEYS = 100_000;
/** Untimed run of a fresh fixture (new runtime or new map), seconds. */
const WARM_S = 0.1;

/** The build's root seen from here: dist/src/bench/ in the build; from the sources (tests), the compiled files. */
const DIST_ROOT = import.meta.url.includes('/dist/') ? '../../' : '../../dist/';
/** The bench programs that live with the benchmarks (dist/bench/programs/). */
const BENCH_PROG = { baselines: new URL(`${DIST_ROOT}bench/programs/baselines_ops.js`, import.meta.url) };
/** The CPU worker's entry module (what every CPU of a runtime loads). */
const CPU_WORKER_ENTRY = new URL(`${DIST_ROOT}workers/cpu.js`, import.meta.url);
/** Operations per run of baselines_ops (lookup, update, mix). */
const BASELINE_OPS_PER_RUN = 64;
const BASELINE_KEYS = 100_000;
/** The issue's target for bpfsim's hash map against sharedmap. */
const BASELINE_SHAREDMAP_TARGET = 20;
const BOOT_CPUS = 8;
const OVERSUB_CPUS = 8;
const OVERSUB_BASE_CPUS = 2;
const OVERSUB_KEYS = 64;

/** What a suite found before planning: optional pieces that may be missing from an install. */
interface BenchEnv {
  /** the `sharedmap` package (a devDependency) can be loaded */
  readonly sharedMap: boolean;
  /** dist/bench/programs/baselines_ops.js exists */
  readonly baselinesProg: boolean;
}

async function probeBenchEnv(req: BenchRequest): Promise<BenchEnv> {
  const wants = req.names.includes('baselines');
  return {
    sharedMap: wants && (await loadSharedMap()) !== null,
    baselinesProg: existsSync(fileURLToPath(BENCH_PROG.baselines)),
  };
}

/** Args of bench/programs/baselines_ops.ts (kept in step with its BaselineArgs). */
interface BaselineOpsArgs { readonly op: 'lookup' | 'update' | 'mix' | 'fill'; readonly keys: number; readonly perRun: number }

function isPercpu(map: MapType): boolean { return map === 'percpu_hash' || map === 'lru_percpu_hash' || map === 'percpu_array'; }

function benchCases(req: BenchRequest, slot: RuntimeSlot, errorsOf: (id: string) => Record<string, number>, skip: (id: string, reason: string) => void, env: BenchEnv): PlannedCase[] {
  const cases: PlannedCase[] = [];
  const allocs = req.alloc;
  const flagsOf = (alloc: AllocMode, extra: number): number => (alloc === 'prealloc' ? 0 : BPF_F_NO_PREALLOC) | extra;
  /** Cases in the bpf_mem_alloc runtime first, kmalloc ones last (fewer runtime switches). */
  const pushGrouped = (list: PlannedCase[]): void => {
    cases.push(...list.filter((p) => p.needs === undefined || p.needs.alloc !== 'kmalloc'));
    cases.push(...list.filter((p) => p.needs !== undefined && p.needs.alloc === 'kmalloc'));
  };
  // the CLI's `lookup` cases (bench_ops: one operation per program run)
  const opsCase = (o: {
    id: string; label: string; tags: Record<string, string | number>; baseline?: string; target?: number;
    maxEntries: number; op: BenchOp; keys: number; cpus: number; fill: number;
  }): PlannedCase => ({ needs: { map: 'hash', alloc: 'prealloc', flags: 0 }, c: {
    id: o.id, bench: 'lookup', label: o.label, tags: o.tags,
    ...(o.baseline !== undefined ? { baseline: o.baseline } : {}), ...(o.target !== undefined ? { target: o.target } : {}),
    run: async (seconds) => {
      const { rt, prog } = await slot.fixture(`ops/hash/${o.maxEntries}/${o.fill}`, { dynAlloc: 'bpf_mem_alloc' }, {
        make: (r) => r.createMap({ type: 'hash', name: 'bench', keySize: 4, valueSize: 8, maxEntries: o.maxEntries }),
        prog: PROG.bench,
        setup: async (r, f) => { if (o.fill > 0) await prefill(r, f.prog, o.fill); },
      });
      return measure(rt, prog, o.cpus, seconds, { op: o.op, keys: o.keys, perCpu: false, canDelete: true });
    },
  } });

  for (const name of req.names) {
    if (name === 'map_perf') {
      const list: PlannedCase[] = [];
      for (const v of mapPerfVariants(req.maps)) {
        for (const alloc of allocs) {
          if (unsupportedReason(v.map, alloc) !== null) continue;
          for (const path of ['helper', 'syscall'] as const) {
            for (const cpus of cpuSteps(req.cpus)) {
              const id = `map_perf/${v.key}/${alloc}/${path}/${cpus}`;
              const base = `map_perf/${v.key}/prealloc/${path}/${cpus}`;
              list.push({ needs: { map: v.map, alloc, flags: flagsOf(alloc, v.flags) }, c: {
                id, bench: 'map_perf', label: `${v.name} ${alloc} · ${path} · ${cpus} CPU${cpus > 1 ? 's' : ''}`,
                tags: { map: v.map, alloc, cpus, op: v.op === 'triple' ? 'map_perf' : 'lookup', workload: path, ...(v.flags !== 0 ? { flags: 'BPF_F_NO_COMMON_LRU' } : {}) },
                ...(alloc !== 'prealloc' && allocs.includes('prealloc') ? { baseline: base } : {}),
                ...(alloc === 'bpf_mem_alloc' ? { target: 0.9 } : {}),
                run: async (seconds) => {
                  const { rt, prog, fresh } = await slot.fixture(`map_perf/${v.key}/${alloc}`, { dynAlloc: dynAllocOf(alloc) }, {
                    make: (r) => r.createMap({ type: v.map, name: 'map_perf', keySize: 4, valueSize: 8, maxEntries: v.maxEntries, flags: flagsOf(alloc, v.flags) }),
                    prog: PROG.mapPerf,
                  });
                  const args: MapPerfArgs = { op: v.op, path, keys: 1, sysValueBytes: isPercpu(v.map) ? rt.cpus * 8 : 8 };
                  if (fresh) { // both paths, every CPU: later cases share this fixture
                    for (const q of ['helper', 'syscall'] as const) await runEvents(rt, prog, rt.cpus, WARM_S / 2, { ...args, path: q }, true, {});
                  }
                  return runEvents(rt, prog, cpus, seconds, args, true, errorsOf(id));
                },
              } });
            }
          }
        }
      }
      pushGrouped(list);
    } else if (name === 'htab_mem') {
      const list: PlannedCase[] = [];
      const maxEntries = Math.max(8192, 64 * req.cpus);
      for (const scenario of HTAB_MEM_SCENARIOS) {
        const producers = scenario === 'add_del_on_diff_cpu' ? req.cpus - (req.cpus % 2) : req.cpus;
        for (const alloc of allocs) {
          const id = `htab_mem/${scenario}/${alloc}`;
          if (producers < 1) { skip(id, `${scenario} needs CPU pairs (an adder and a deleter): run with --cpus 2 or more`); continue; }
          list.push({ needs: { map: 'hash', alloc, flags: flagsOf(alloc, 0) }, c: {
            id, bench: 'htab_mem', label: `${scenario} ${alloc}`, tags: { map: 'hash', alloc, cpus: producers, workload: scenario },
            ...(alloc !== 'prealloc' && allocs.includes('prealloc') ? { baseline: `htab_mem/${scenario}/prealloc` } : {}),
            ...(alloc === 'bpf_mem_alloc' ? { target: 0.9 } : {}),
            run: async (seconds) => {
              const { rt, m, prog, user, fresh } = await slot.fixture(`htab_mem/${scenario}/${alloc}`, { dynAlloc: dynAllocOf(alloc) }, {
                make: (r) => r.createMap({ type: 'hash', name: 'htab_mem', keySize: 4, valueSize: 8, maxEntries, flags: flagsOf(alloc, 0) }),
                prog: PROG.htabMem, userBytes: htabMemUserBytes(req.cpus),
              });
              const args: HtabMemArgs = { scenario, producers, cpus: rt.cpus, user: user! };
              if (fresh) await rt.runWorkload({ cpus: cpuRange(producers), context: 'task', program: prog, seconds: WARM_S, args });
              const before = htabMemOps(user!, producers);
              let memSum = 0, memN = 0, memPeak = 0;
              const sample = (): void => { const b = mapMemoryBytes(m); memSum += b; memN++; if (b > memPeak) memPeak = b; };
              sample();
              const timer = setInterval(sample, 10);
              let r: Awaited<ReturnType<Runtime['runWorkload']>>;
              try {
                r = await rt.runWorkload({ cpus: cpuRange(producers), context: 'task', program: prog, seconds, args });
              } finally {
                clearInterval(timer);
              }
              sample();
              mergeErrors(errorsOf(id), r.errors);
              const ops = htabMemOps(user!, producers) - before;
              const durs = r.perCpu.map((c) => c.durationNs);
              return {
                ops: ops / producers, elapsedNs: Math.max(durs.reduce((a, b) => a + b, 0) / durs.length, 1),
                memory: { avgBytes: memSum / memN, peakBytes: memPeak },
              };
            },
          } });
        }
      }
      pushGrouped(list);
    } else if (name === 'lookup') {
      const n = 100_000;
      cases.push({ c: { id: 'lookup/js_map_get', bench: 'lookup', label: 'JS Map.get', tags: { op: 'lookup', cpus: 1 }, run: (s) => runWorkers({ threads: 1, seconds: s, kernel: 'js_map_get', entries: n }) } });
      cases.push({ c: { id: 'lookup/js_map_set', bench: 'lookup', label: 'JS Map.set', tags: { op: 'update', cpus: 1 }, run: (s) => runWorkers({ threads: 1, seconds: s, kernel: 'js_map_set', entries: n }) } });
      // two definitions, both named in the label: one helper call per program run (what a program
      // doing one lookup costs, the run's entry and exit included), and 64 per run (the helper
      // itself, the run amortised: what bench/map_lookup.bench.ts measures in-process)
      cases.push(opsCase({ id: 'lookup/hash/1', label: 'hash lookup, 1 per program run, 1 CPU', tags: { map: 'hash', alloc: 'prealloc', cpus: 1, op: 'lookup', perRun: 1 }, baseline: 'lookup/js_map_get', target: 0.5, maxEntries: n, op: 'lookup', keys: n, cpus: 1, fill: n }));
      cases.push(opsCase({ id: 'lookup/hash_update/1', label: 'hash update, 1 per program run, 1 CPU', tags: { map: 'hash', alloc: 'prealloc', cpus: 1, op: 'update', perRun: 1 }, baseline: 'lookup/js_map_set', target: 0.3, maxEntries: n, op: 'update', keys: n, cpus: 1, fill: n }));
      if (req.cpus >= 2) {
        cases.push(opsCase({ id: 'lookup/hash/2', label: 'hash lookup, 1 per program run, 2 CPUs', tags: { map: 'hash', alloc: 'prealloc', cpus: 2, op: 'lookup', perRun: 1 }, baseline: 'lookup/hash/1', target: 1.8, maxEntries: n, op: 'lookup', keys: n, cpus: 2, fill: n }));
      }
      if (env.baselinesProg) {
        for (const op of ['lookup', 'update'] as const) {
          const id = `lookup/hash_${op}_${BASELINE_OPS_PER_RUN}/1`;
          cases.push({ needs: { map: 'hash', alloc: 'prealloc', flags: 0 }, c: {
            id, bench: 'lookup', label: `hash ${op === 'lookup' ? 'lookup' : 'update'}, ${BASELINE_OPS_PER_RUN} per program run (the helper alone), 1 CPU`,
            tags: { map: 'hash', alloc: 'prealloc', cpus: 1, op, perRun: BASELINE_OPS_PER_RUN },
            baseline: op === 'lookup' ? 'lookup/js_map_get' : 'lookup/js_map_set', target: op === 'lookup' ? 1.0 : 0.5,
            run: async (seconds) => {
              const { rt, prog } = await slot.fixture(`lookup/hash_per_run/${n}`, { dynAlloc: 'bpf_mem_alloc' }, {
                make: (r) => r.createMap({ type: 'hash', name: 'bench', keySize: 4, valueSize: 8, maxEntries: n }),
                prog: BENCH_PROG.baselines,
                setup: async (r, f) => {
                  const fill: BaselineOpsArgs = { op: 'fill', keys: n, perRun: 1 };
                  const res = await r.runWorkload({ cpus: [0], context: 'task', program: f.prog, iterations: n, args: fill });
                  mergeErrors(errorsOf(id), res.errors);
                },
              });
              const args: BaselineOpsArgs = { op, keys: n, perRun: BASELINE_OPS_PER_RUN };
              const r = await rt.runWorkload({ cpus: [0], context: 'task', program: prog, seconds, args });
              mergeErrors(errorsOf(id), r.errors);
              return { ops: r.ops * BASELINE_OPS_PER_RUN, elapsedNs: Math.max(r.perCpu[0]?.durationNs ?? 0, 1) };
            },
          } });
        }
      } else {
        skip(`lookup/hash_lookup_${BASELINE_OPS_PER_RUN}/1`, 'dist/bench/programs/baselines_ops.js is missing from this install');
      }
    } else if (name === 'timers') {
      cases.push({ c: {
        id: 'timers/js_timeout_pair', bench: 'timers', label: 'JS setTimeout + clearTimeout pair (main thread)', tags: { op: 'arm_cancel', cpus: 1, workload: 'js' },
        run: async (seconds) => {
          const noop = (): void => {};
          const t0 = performance.now();
          const end = t0 + seconds * 1000;
          let ops = 0;
          while (performance.now() < end) {
            for (let i = 0; i < 256; i++) clearTimeout(setTimeout(noop, 1000));
            ops += 256;
          }
          return { ops, elapsedNs: (performance.now() - t0) * 1e6 };
        },
      } });
      for (const cpus of cpuSteps(req.cpus)) {
        const id = `timers/arm_cancel/${cpus}`;
        cases.push({ needs: { map: 'array', alloc: 'prealloc', flags: 0 }, c: {
          id, bench: 'timers', label: `bpf_timer start + cancel_async pair, per CPU ×${cpus}`, tags: { map: 'array', alloc: 'prealloc', cpus, op: 'arm_cancel' },
          baseline: cpus === 1 ? 'timers/js_timeout_pair' : 'timers/arm_cancel/1',
          run: async (seconds) => {
            const { rt, prog, fresh } = await slot.fixture('timers', { dynAlloc: 'bpf_mem_alloc' }, {
              make: (r) => r.createMap({ type: 'array', name: 'bench_timers', keySize: 4, valueSize: BENCH_TIMER_VALUE_SIZE, maxEntries: 64, fields: [{ type: 'bpf_timer', offset: 8 }] }),
              prog: PROG.timers,
              setup: async () => {},
            });
            const args: BenchTimerArgs = { op: 'arm_cancel' };
            if (fresh) await rt.runWorkload({ cpus: cpuRange(rt.cpus), context: 'task', program: prog, seconds: WARM_S, args });
            const r = await rt.runWorkload({ cpus: cpuRange(cpus), context: 'task', program: prog, seconds, args });
            mergeErrors(errorsOf(id), r.errors);
            const durs = r.perCpu.map((c) => c.durationNs);
            return { ops: (r.ops * ARM_CANCEL_PAIRS) / cpus, elapsedNs: Math.max(durs.reduce((a, b) => a + b, 0) / durs.length, 1) };
          },
        } });
      }
    } else if (name === 'graph') {
      // every CPU on its own value (own lock) or all on value 0 (shared lock); the JS baselines the
      // same way (bench_graph_js.ts); 1 CPU: own only (shared is the same thing there)
      const labels = { rbtree: ['rbtree add + remove first', 'JS sorted array insert + shift'], list: ['list push + pop', 'JS array push + pop'] } as const;
      for (const op of ['rbtree', 'list'] as const) {
        for (const cpus of cpuSteps(req.cpus)) {
          for (const mode of cpus === 1 ? ['own'] as const : ['own', 'shared'] as const) {
            const shared = mode === 'shared';
            const where = `${mode} lock${cpus > 1 ? `, ${cpus} CPUs` : ', 1 CPU'}`;
            const js = `graph/js_${op}/${mode}/${cpus}`;
            const tags = { map: 'array', alloc: 'prealloc', cpus, op, workload: `${mode}_lock` };
            cases.push({ c: {
              id: js, bench: 'graph', label: `${labels[op][1]} (Atomics lock, ${where.replace('CPU', 'thread')})`, tags: { ...tags, map: 'js', alloc: 'js' },
              run: (seconds) => runGraphJs({ threads: cpus, seconds, op, shared }),
            } });
            const id = `graph/${op}/${mode}/${cpus}`;
            cases.push({ c: {
              id, bench: 'graph', label: `${labels[op][0]} under bpf_spin_lock (${where})`, tags, baseline: js,
              run: async (seconds) => {
                const { rt, prog, fresh } = await slot.fixture('graph', { dynAlloc: 'bpf_mem_alloc' }, {
                  make: (r) => r.createMap({ type: 'array', name: 'bench_graph', keySize: 4, valueSize: BENCH_GRAPH_VALUE_SIZE, maxEntries: r.cpus, fields: BENCH_GRAPH_FIELDS }),
                  prog: PROG.benchGraph,
                  setup: async (r, f) => { // every value's tree at its size
                    for (let k = 0; k < r.cpus; k++) {
                      const res = await f.prog.testRun({ cpu: 0, args: { op: 'fill', key: k, size: BENCH_GRAPH_TREE_SIZE } satisfies BenchGraphArgs });
                      if (res.retval !== 0) throw new Error(`bench graph: filling value ${k} returned ${errnoName(-res.retval)}`);
                    }
                  },
                });
                const args: BenchGraphArgs = { op, shared };
                if (fresh) for (const o of ['rbtree', 'list'] as const) await rt.runWorkload({ cpus: cpuRange(rt.cpus), context: 'task', program: prog, seconds: WARM_S / 2, args: { op: o, shared } });
                const r = await rt.runWorkload({ cpus: cpuRange(cpus), context: 'task', program: prog, seconds, args });
                mergeErrors(errorsOf(id), r.errors);
                return { ops: r.ops * BENCH_GRAPH_INNER, elapsedNs: Math.max(...r.perCpu.map((c) => c.durationNs), 1) };
              },
            } });
          }
        }
      }
    } else if (name === 'baselines') {
      const cfg: RtConfig = { dynAlloc: 'bpf_mem_alloc', cpus: Math.max(2, req.cpus) };
      let filled: Promise<unknown> | null = null;
      const sharedMap = (): Promise<unknown> => (filled ??= createFilledSharedMap(BASELINE_KEYS));
      const noProg = 'dist/bench/programs/baselines_ops.js is missing from this install';
      const words = { lookup: ['sharedmap.get', 'JS Map.get', 'lookup'], update: ['sharedmap.set', 'JS Map.set', 'update (overwrite)'] } as const;
      for (const op of ['lookup', 'update'] as const) {
        for (const n of [1, 2]) {
          const sm = `baselines/sharedmap/${op}/${n}`;
          const js = `baselines/js_map/${op}/${n}`;
          const hash = `baselines/hash/${op}/${n}`;
          const base = env.sharedMap ? sm : js;
          if (env.sharedMap) {
            cases.push({ c: {
              id: sm, bench: 'baselines', label: `${words[op][0]} (one shared map) ×${n}`,
              tags: { map: 'sharedmap', alloc: 'js', cpus: n, op },
              run: async (seconds) => runSharedMap({ threads: n, seconds, op, map: await sharedMap(), keys: BASELINE_KEYS }),
            } });
          } else {
            skip(sm, 'the sharedmap package is not installed (a devDependency: npm install --save-dev sharedmap); JS Map is the baseline');
          }
          cases.push({ c: {
            id: js, bench: 'baselines', label: `${words[op][1]} (a Map per worker) ×${n}`,
            tags: { map: 'js_map', alloc: 'js', cpus: n, op }, ...(base !== js ? { baseline: base } : {}),
            run: (seconds) => runWorkers({ threads: n, seconds, kernel: op === 'lookup' ? 'js_map_get' : 'js_map_set', entries: BASELINE_KEYS }),
          } });
          if (!env.baselinesProg) { skip(hash, noProg); continue; }
          cases.push({ needs: { map: 'hash', alloc: 'prealloc', flags: 0 }, c: {
            id: hash, bench: 'baselines', label: `hash prealloc ${words[op][2]} ×${n} CPU${n > 1 ? 's' : ''}`,
            tags: { map: 'hash', alloc: 'prealloc', cpus: n, op }, baseline: base,
            ...(env.sharedMap ? { target: BASELINE_SHAREDMAP_TARGET } : {}),
            run: async (seconds) => {
              const { rt, prog, fresh } = await slot.fixture('baselines/hash', cfg, {
                make: (r) => r.createMap({ type: 'hash', name: 'baselines', keySize: 4, valueSize: 8, maxEntries: BASELINE_KEYS }),
                prog: BENCH_PROG.baselines,
                setup: async (r, f) => {
                  const fill: BaselineOpsArgs = { op: 'fill', keys: BASELINE_KEYS, perRun: 1 };
                  const res = await r.runWorkload({ cpus: [0], context: 'task', program: f.prog, iterations: BASELINE_KEYS, args: fill });
                  mergeErrors(errorsOf('baselines/hash/fill'), res.errors);
                },
              });
              const args: BaselineOpsArgs = { op, keys: BASELINE_KEYS, perRun: BASELINE_OPS_PER_RUN };
              if (fresh) {
                for (const o of ['lookup', 'update'] as const) {
                  await rt.runWorkload({ cpus: cpuRange(2), context: 'task', program: prog, seconds: WARM_S / 2, args: { ...args, op: o } });
                }
              }
              const r = await rt.runWorkload({ cpus: cpuRange(n), context: 'task', program: prog, seconds, args });
              mergeErrors(errorsOf(hash), r.errors);
              return { ops: r.ops * BASELINE_OPS_PER_RUN, elapsedNs: Math.max(...r.perCpu.map((c) => c.durationNs), 1) };
            },
          } });
        }
      }
    } else if (name === 'boot') {
      const n = BOOT_CPUS;
      const bare = `boot/bare_workers/${n}`;
      const ms = (ns: number): Measurement => ({ ops: 1, elapsedNs: ns });
      const tags = { cpus: n, op: 'boot' };
      cases.push({ c: {
        id: bare, bench: 'boot', label: `${n} bare worker threads (import nothing): start → ready`, unit: 'ms', tags,
        run: async () => { await slot.close(); return ms(await spawnUntilReady(n, BARE_WORKER_SOURCE)); },
      } });
      cases.push({ c: {
        id: `boot/cpu_module_workers/${n}`, bench: 'boot', label: `${n} worker threads importing the CPU module: start → ready`,
        unit: 'ms', tags, baseline: bare,
        run: async () => { await slot.close(); return ms(await spawnUntilReady(n, importingWorkerSource(CPU_WORKER_ENTRY))); },
      } });
      cases.push({ c: {
        id: 'boot/arena', bench: 'boot', label: `arena alone: one ${MEMORY_BYTES / 1048576} MiB SharedArrayBuffer`, unit: 'ms',
        tags: { op: 'boot' },
        run: async () => { await slot.close(); return ms(allocateArena(MEMORY_BYTES)); },
      } });
      cases.push({ c: {
        id: `boot/runtime/${n}`, bench: 'boot', label: `Runtime.start({ cpus: ${n} }) → ready`, unit: 'ms', tags, baseline: bare,
        run: async () => {
          await slot.close();
          const t0 = process.hrtime.bigint();
          const rt = await Runtime.start({ cpus: n, preemptRt: req.preemptRt, seed: req.seed, memoryBytes: MEMORY_BYTES });
          const ns = Number(process.hrtime.bigint() - t0);
          await rt.stop();
          return ms(ns);
        },
      } });
    } else if (name === 'oversub') {
      const base = `oversub/hash/mix/${OVERSUB_BASE_CPUS}`;
      const cfg: RtConfig = { dynAlloc: 'bpf_mem_alloc', cpus: OVERSUB_CPUS };
      for (const cpus of [OVERSUB_BASE_CPUS, OVERSUB_CPUS]) {
        const id = `oversub/hash/mix/${cpus}`;
        if (!env.baselinesProg) { skip(id, 'dist/bench/programs/baselines_ops.js is missing from this install'); continue; }
        cases.push({ needs: { map: 'hash', alloc: 'prealloc', flags: 0 }, c: {
          id, bench: 'oversub', label: `hash prealloc update/delete/lookup mix, ${OVERSUB_KEYS} keys ×${cpus} CPUs`,
          tags: { map: 'hash', alloc: 'prealloc', cpus, op: 'mix', workload: 'lock-heavy' },
          ...(cpus !== OVERSUB_BASE_CPUS ? { baseline: base, target: 0.9 } : {}),
          run: async (seconds) => {
            const { rt, prog, fresh } = await slot.fixture('oversub', cfg, {
              make: (r) => r.createMap({ type: 'hash', name: 'oversub', keySize: 4, valueSize: 8, maxEntries: OVERSUB_KEYS }),
              prog: BENCH_PROG.baselines,
            });
            const args: BaselineOpsArgs = { op: 'mix', keys: OVERSUB_KEYS, perRun: BASELINE_OPS_PER_RUN };
            if (fresh) await rt.runWorkload({ cpus: cpuRange(rt.cpus), context: 'task', program: prog, seconds: WARM_S, args });
            const r = await rt.runWorkload({ cpus: cpuRange(cpus), context: 'task', program: prog, seconds, args });
            mergeErrors(errorsOf(id), r.errors);
            return { ops: r.ops * BASELINE_OPS_PER_RUN, elapsedNs: Math.max(...r.perCpu.map((c) => c.durationNs), 1) };
          },
        } });
      }
    } else {
      const steps = cpuSteps(req.cpus);
      for (const cpus of steps) {
        cases.push({ c: {
          id: `scaling/js_map/${cpus}`, bench: 'scaling', label: `JS Map.get (a Map per worker) ×${cpus}`,
          tags: { map: 'js_map', alloc: 'js', cpus, op: 'lookup' }, ...(cpus > 1 ? { baseline: 'scaling/js_map/1' } : {}),
          ...(cpus === 2 ? { target: 1.8 } : {}),
          run: (s) => runWorkers({ threads: cpus, seconds: s, kernel: 'js_map_get', entries: SCALING_KEYS }),
        } });
      }
      for (const map of req.maps) {
        if (map === 'hash_of_maps' || map === 'array_of_maps') continue;
        const array = map === 'array' || map === 'percpu_array';
        const lru = map === 'lru_hash' || map === 'lru_percpu_hash';
        // an LRU map may evict before it is full (per-CPU free-list caching): give it room
        const maxEntries = lru ? Math.ceil(SCALING_KEYS * 1.25) : SCALING_KEYS;
        for (const cpus of steps) {
          const id = `scaling/${map}/prealloc/${cpus}`;
          cases.push({ needs: { map, alloc: 'prealloc', flags: 0 }, c: {
            id, bench: 'scaling', label: `${map} lookup ×${cpus} CPU${cpus > 1 ? 's' : ''}`,
            tags: { map, alloc: 'prealloc', cpus, op: 'lookup' }, ...(cpus > 1 ? { baseline: `scaling/${map}/prealloc/1` } : {}),
            ...(cpus === 2 ? { target: 1.8 } : {}),
            run: async (seconds) => {
              const { rt, prog, fresh } = await slot.fixture(`scaling/${map}`, { dynAlloc: 'bpf_mem_alloc' }, {
                make: (r) => r.createMap({ type: map, name: 'scaling', keySize: 4, valueSize: 8, maxEntries }),
                prog: PROG.mapPerf,
                setup: async (r, f) => {
                  if (array) return; // every index exists
                  const fill: MapPerfArgs = { op: 'fill', path: 'helper', keys: SCALING_KEYS, sysValueBytes: 8 };
                  const res = await r.runWorkload({ cpus: [0], context: 'task', program: f.prog, iterations: SCALING_KEYS, args: fill });
                  mergeErrors(errorsOf(`scaling/${map}/fill`), res.errors);
                },
              });
              const args: MapPerfArgs = { op: 'walk', path: 'helper', keys: SCALING_KEYS, sysValueBytes: 8 };
              if (fresh) await runEvents(rt, prog, rt.cpus, WARM_S, args, false, {});
              return runEvents(rt, prog, cpus, seconds, args, false, errorsOf(id));
            },
          } });
        }
      }
    }
  }
  return cases;
}

/**
 * Drop the cases whose map the library refuses to create (e.g. a mode not implemented yet), and
 * the cases measured against a dropped baseline; each with its reason. Probes group by allocator
 * so each runtime boots once.
 */
async function probeCases(planned: readonly PlannedCase[], slot: RuntimeSlot): Promise<{ cases: BenchCase[]; skipped: { id: string; reason: string }[] }> {
  const refused = new Map<string, string>();
  const keyOf = (n: NonNullable<PlannedCase['needs']>): string => `${n.map}/${n.alloc}/${n.flags}`;
  const pairs = new Map<string, NonNullable<PlannedCase['needs']>>();
  for (const p of planned) if (p.needs !== undefined) pairs.set(keyOf(p.needs), p.needs);
  const ordered = [...pairs.entries()].sort((a, b) => dynAllocOf(a[1].alloc).localeCompare(dynAllocOf(b[1].alloc)));
  for (const [key, { map, alloc, flags }] of ordered) {
    const rt = await slot.get({ dynAlloc: dynAllocOf(alloc) });
    try {
      rt.createMap({ type: map, name: 'probe', keySize: 4, valueSize: 8, maxEntries: 64, flags }).close();
    } catch (e: unknown) {
      refused.set(key, `map_create failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const skipped: { id: string; reason: string }[] = [];
  const dropped = new Set<string>();
  for (const p of planned) {
    const why = p.needs === undefined ? undefined : refused.get(keyOf(p.needs));
    if (why !== undefined) { dropped.add(p.c.id); skipped.push({ id: p.c.id, reason: why }); }
  }
  for (let changed = true; changed;) {
    changed = false;
    for (const p of planned) {
      if (dropped.has(p.c.id) || p.c.baseline === undefined || !dropped.has(p.c.baseline)) continue;
      dropped.add(p.c.id); skipped.push({ id: p.c.id, reason: `its baseline ${p.c.baseline} cannot run` }); changed = true;
    }
  }
  return { cases: planned.filter((p) => !dropped.has(p.c.id)).map((p) => p.c), skipped };
}

/** A bench suite with the errors its operations returned (for the bench/ files' notes). */
export interface BenchSuiteDetail extends BenchSuite {
  /** Errors returned by the measured operations, by case id and errno name (all runs so far). */
  errors(): Readonly<Record<string, Readonly<Record<string, number>>>>;
}

/**
 * The bench cases for `req`: what `bpfsim bench` runs, and what bench/*.bench.ts run. Cases whose
 * map cannot be created here are in `skipped` with the reason. close() stops the runtime.
 */
export async function createBenchSuite(req: BenchRequest): Promise<BenchSuiteDetail> {
  const slot = new RuntimeSlot(req);
  const errors: Record<string, Record<string, number>> = {};
  const errorsOf = (id: string): Record<string, number> => (errors[id] ??= {});
  const notPlanned: { id: string; reason: string }[] = [];
  try {
    const env = await probeBenchEnv(req);
    const planned = benchCases(req, slot, errorsOf, (id, reason) => notPlanned.push({ id, reason }), env);
    const { cases, skipped } = await probeCases(planned, slot);
    return {
      cases, skipped: [...notPlanned, ...skipped], close: () => slot.close(),
      ...(req.names.includes('timers') ? { timerLatency: () => measureTimerLatency(req.cpus, req.seed) } : {}),
      errors: () => Object.fromEntries(Object.entries(errors).filter(([, v]) => Object.keys(v).length > 0)),
    };
  } catch (e) {
    await slot.close();
    throw e;
  }
}
