/*
 * htab_mem.bench.ts — the kernel's `htab-mem` benchmark (selftests/bpf/benchs/bench_htab_mem.c,
 * Hou Tao 2023) on bpfsim: scenarios overwrite, batch_add_batch_del and add_del_on_diff_cpu with
 * one producer per CPU, key 4 B, value 8 B, max_entries = max(8192, 64 × CPUs), 64 keys per
 * invocation. Figures: ops/s per producer (an op = one invocation; batch_add_batch_del counts 2,
 * as the kernel's op_cnt) and the map's memory, average and peak, from slab accounting (the
 * bytes charged to the map's memory owner, sampled every 10 ms during each run — the kernel reads
 * the benchmark cgroup's memory.current and memory.peak). Modes prealloc (the baseline, measured
 * in the same run), bpf_mem_alloc and legacy kmalloc.
 *
 * After the suite: the memory of an idle map at 10 % fill, dynamic against preallocated (issue
 * target: a dynamic map at 10 % fill uses ≤ 0.2× the memory of the preallocated one).
 *
 * Same cases as `bpfsim bench htab_mem --cpus <N>` (definitions in src/bench/cases.ts).
 *
 *   npm run build && node dist/bench/htab_mem.bench.js [--cpus 2] [--rounds 5] [--seconds 1] [--json]
 */
import os from 'node:os';
import { runSuiteMain, textTable } from './bench_main.js';
import { formatRatio, type BenchFigure } from '../src/bench/harness.js';
import { Runtime, BPF_F_NO_PREALLOC, type BpfMap } from '../src/index.js';
import { mapMemoryBytes } from '../src/bench/cases.js';

const SCENARIOS = ['overwrite', 'batch_add_batch_del', 'add_del_on_diff_cpu'];
const ALLOCS = ['prealloc', 'bpf_mem_alloc', 'kmalloc'];
const KERNEL_KOPS: Readonly<Record<string, readonly [number, number, number]>> = {
  // Hou Tao v9 cover, 8-CPU KVM, -p8: k-ops/s per producer for kmalloc (v6.0) / prealloc / bpf_mem_alloc
  overwrite: [11.24, 191.42, 126.59],
  batch_add_batch_del: [18.45, 221.83, 83.37],
  add_del_on_diff_cpu: [14.50, 39.66, 21.25],
};

function parts(id: string): { scenario: string; alloc: string } {
  const [, scenario = '', alloc = ''] = id.split('/');
  return { scenario, alloc };
}

function order(a: BenchFigure, b: BenchFigure): number {
  const x = parts(a.id), y = parts(b.id);
  return SCENARIOS.indexOf(x.scenario) - SCENARIOS.indexOf(y.scenario) || ALLOCS.indexOf(x.alloc) - ALLOCS.indexOf(y.alloc);
}

const mib = (b: number): string => (b / 1048576).toFixed(2);
const kops = (v: number): string => (v / 1000).toFixed(1);

function summaryRows(figures: readonly BenchFigure[]): { scenario: string; alloc: string; kopsPerProducer: number; ratio: number; memAvgMiB: number; memPeakMiB: number; kernelRatio: number | null }[] {
  return figures.map((f) => {
    const p = parts(f.id);
    const k = KERNEL_KOPS[p.scenario];
    const kernelRatio = k === undefined || p.alloc === 'prealloc' ? null : (p.alloc === 'kmalloc' ? k[0] : k[2]) / k[1];
    return {
      scenario: p.scenario, alloc: p.alloc, kopsPerProducer: f.median / 1000, ratio: f.ratio,
      memAvgMiB: (f.memory?.avgBytes ?? 0) / 1048576, memPeakMiB: (f.memory?.peakBytes ?? 0) / 1048576, kernelRatio,
    };
  });
}

function summary(figures: readonly BenchFigure[]): string {
  const rows = summaryRows(figures).map((r) => [
    r.scenario, r.alloc, kops(r.kopsPerProducer * 1000), r.alloc === 'prealloc' ? '1×' : formatRatio(r.ratio),
    r.kernelRatio === null ? (r.alloc === 'prealloc' ? '1×' : '–') : formatRatio(r.kernelRatio), `${r.memAvgMiB.toFixed(2)} / ${r.memPeakMiB.toFixed(2)}`,
  ]);
  return `\nsummary (medians; k-ops/s per producer; memory = bytes charged to the map, avg / peak MiB)\n`
    + textTable(['scenario', 'mode', 'k-ops/s', 'vs prealloc', 'kernel (8 CPUs)', 'memory MiB'], rows);
}

/** Memory of an idle map, empty and at 10 % fill, per mode; dynamic modes against preallocated. */
async function fillMemory(cpus: number, preemptRt: boolean, seed: number): Promise<{ text: string; json: unknown }> {
  const maxEntries = Math.max(8192, 64 * cpus);
  const fill = Math.round(maxEntries / 10);
  const out: { alloc: string; emptyBytes: number | null; tenPctBytes: number | null; skipped: string | null }[] = [];
  for (const [dynAlloc, allocs] of [['bpf_mem_alloc', ['prealloc', 'bpf_mem_alloc']], ['kmalloc', ['kmalloc']]] as const) {
    const rt = await Runtime.start({ cpus, dynAlloc, preemptRt, seed, memoryBytes: 256 << 20 });
    try {
      for (const alloc of allocs) {
        let m: BpfMap;
        try {
          m = rt.createMap({ type: 'hash', name: `mem_${out.length}`, keySize: 4, valueSize: 8, maxEntries, flags: alloc === 'prealloc' ? 0 : BPF_F_NO_PREALLOC });
        } catch (e: unknown) {
          out.push({ alloc, emptyBytes: null, tenPctBytes: null, skipped: `map_create failed: ${e instanceof Error ? e.message : String(e)}` });
          continue;
        }
        const empty = mapMemoryBytes(m);
        const key = new Uint8Array(4), kv = new DataView(key.buffer), value = new Uint8Array(8);
        for (let k = 0; k < fill; k++) { kv.setUint32(0, k, true); m.update(key, value); }
        await rt.synchronizeRcu();
        out.push({ alloc, emptyBytes: empty, tenPctBytes: mapMemoryBytes(m), skipped: null });
        m.close();
      }
    } finally {
      await rt.stop();
    }
  }
  const pre = out.find((r) => r.alloc === 'prealloc')?.tenPctBytes ?? null;
  const rows = out.map((r) => r.skipped !== null ? [r.alloc, '–', '–', '–', 'skipped'] : [
    r.alloc, mib(r.emptyBytes!), mib(r.tenPctBytes!),
    r.alloc === 'prealloc' || pre === null ? '1×' : formatRatio(r.tenPctBytes! / pre),
    r.alloc === 'bpf_mem_alloc' && pre !== null ? (r.tenPctBytes! / pre <= 0.2 ? '≤ 0.2× ok' : '≤ 0.2× MISSED') : '',
  ]);
  const skips = out.filter((r) => r.skipped !== null).map((r) => `skipped ${r.alloc}: ${r.skipped}`);
  return {
    text: `\nmemory of an idle hash map, ${maxEntries} entries, key 4 B, value 8 B, ${cpus} CPUs: empty and with ${fill} keys (10 %); MiB charged to the map\n`
      + textTable(['mode', 'empty', '10 % fill', 'vs prealloc', 'target'], rows) + skips.map((x) => `\n${x}`).join(''),
    json: { maxEntries, fill, cpus, modes: out },
  };
}

const cpusDefault = Math.max(2, Math.min(os.availableParallelism(), 64));
await runSuiteMain({
  name: 'htab_mem',
  title: 'bpfsim htab_mem (selftests bench htab-mem)',
  cpus: cpusDefault,
  maps: ['hash'],
  rounds: 5,
  seconds: 1,
  order,
  summary,
  summaryJson: summaryRows,
  after: async ({ req }) => fillMemory(req.cpus, req.preemptRt, req.seed),
});
