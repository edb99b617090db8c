/*
 * seed001_mem_alloc.ts — scenarios from seed 001 (bpf_mem_alloc): what a program gets from a
 * dynamic hash map when the per-CPU element cache runs dry, by context. The seed's table (and
 * reference §4.7): NMI -> NULL once depleted (refill runs after the NMI); hardirq on !RT -> NULL
 * until the irq_work runs after the handler; task/softirq on !RT -> the self-IPI refills at once,
 * so no -ENOMEM while memory lasts; RT -> refilled asynchronously by the irq_work thread (the
 * coordinator), -ENOMEM possible, then recovered.
 */
import { errnoName } from '../errno.js';
import { BPF_F_NO_PREALLOC } from '../maps/map_ops.js';
import { htabMemAllocLevels } from '../maps/hashtab.js';
import type { BpfMap } from '../maps/bpf_map.js';
import type { ContextArg } from '../ipc/protocol.js';
import type { Program, Runtime } from '../runtime/runtime.js';
import { programUrl, verdictOf, type Scenario, type ScenarioEvent } from './scenario.js';

const BURST = 300; // more than any cache holds (high watermark 96 for small units)

interface Burst { ok: number; enomem: number; levelBefore: number }

function level(m: BpfMap, cpu: number): number {
  return htabMemAllocLevels(m.impl)?.perCpu[cpu] ?? -1;
}

async function burst(p: Program, m: BpfMap, cpu: number, context: ContextArg, base: number, count: number): Promise<Burst> {
  const levelBefore = level(m, cpu);
  const r = await p.testRun({ cpu, context, args: { base, count } });
  if (r.retval < 0) throw new Error(`mem_fill in ${context}: ${errnoName(r.retval)}`);
  return { ok: r.retval & 0xffff, enomem: r.retval >>> 16, levelBefore };
}

function describe(ctx: string, b: Burst): string {
  return `${BURST} inserts in one ${ctx} run (cache held ${b.levelBefore}): ${b.ok} ok, ${b.enomem} x -ENOMEM`;
}

async function setup(rt: Runtime): Promise<{ m: BpfMap; p: Program }> {
  const m = rt.createMap({ type: 'hash', name: 'dyn', keySize: 4, valueSize: 8, maxEntries: 8192, flags: BPF_F_NO_PREALLOC });
  const p = await rt.loadProgram(programUrl('mem_fill'), { maps: { m } });
  return { m, p };
}

const emptyCacheNonRt: Scenario = {
  name: 'mem-alloc-empty-cache',
  seed: '001',
  title: '!RT: an empty bpf_mem_alloc cache gives NMI and hardirq -ENOMEM, while task and softirq are refilled at once',
  summary: `Bursts of ${BURST} new keys into a BPF_F_NO_PREALLOC hash map on CPU 0, one burst per context.`,
  runtime: { cpus: 2, memoryBytes: 64 << 20 },
  async play(rt, log) {
    const { m, p } = await setup(rt);
    const ev = (context: ScenarioEvent['context'], what: string): void => log({ cpu: 0, context, what });
    const nmi = await burst(p, m, 0, 'nmi', 0, BURST);
    ev('nmi', describe('NMI', nmi));
    const afterNmi = level(m, 0);
    ev('task', `irq_work ran at the first window after the NMI: cache now ${afterNmi}`);
    const hard = await burst(p, m, 0, 'hardirq', 10_000, BURST);
    ev('hardirq', describe('hardirq', hard));
    const soft = await burst(p, m, 0, 'softirq', 20_000, BURST);
    ev('softirq', describe('softirq', soft));
    const task = await burst(p, m, 0, 'task', 30_000, BURST);
    ev('task', describe('task', task));
    const lv = htabMemAllocLevels(m.impl);
    return verdictOf('NMI and hardirq hit -ENOMEM once the cache is empty; task and softirq never do; irq_work refills after the NMI', [
      ['NMI got -ENOMEM', nmi.enomem > 0],
      ['NMI succeeded only from what the cache held', nmi.ok <= Math.max(nmi.levelBefore, 0)],
      ['refilled after the NMI', lv !== null && afterNmi >= lv.low],
      ['hardirq got -ENOMEM', hard.enomem > 0],
      ['softirq never got -ENOMEM', soft.enomem === 0 && soft.ok === BURST],
      ['task never got -ENOMEM', task.enomem === 0 && task.ok === BURST],
      ['no splat', rt.splats().length === 0],
      ['map invariants hold', m.check().length === 0],
    ], `NMI ${nmi.ok}/${nmi.enomem}, hardirq ${hard.ok}/${hard.enomem}, softirq ${soft.ok}/${soft.enomem}, task ${task.ok}/${task.enomem} (ok/-ENOMEM)`);
  },
};

const emptyCacheRt: Scenario = {
  name: 'mem-alloc-empty-cache-rt',
  seed: '001',
  title: 'PREEMPT_RT: the refill is asynchronous (irq_work thread), so -ENOMEM is possible in any context, and the cache recovers',
  summary: `Bursts of ${BURST} new keys on CPU 0 in NMI and task context with preemptRt; then a short burst after the irq_work thread caught up.`,
  runtime: { cpus: 2, preemptRt: true, memoryBytes: 64 << 20 },
  async play(rt, log) {
    const { m, p } = await setup(rt);
    const nmi = await burst(p, m, 0, 'nmi', 0, BURST);
    log({ cpu: 0, context: 'nmi', what: describe('NMI', nmi) });
    const task = await burst(p, m, 0, 'task', 10_000, BURST);
    log({ cpu: 0, context: 'task', what: describe('task', task) });
    // let the coordinator (the irq_work thread) hand the batches back; the idle CPU splices them
    let lv = level(m, 0);
    for (let i = 0; i < 100 && lv < 32; i++) { await new Promise((r) => setTimeout(r, 5)); lv = level(m, 0); }
    log({ cpu: 0, context: 'task', what: `irq_work thread refilled the cache asynchronously: ${lv} free` });
    const after = await burst(p, m, 0, 'task', 20_000, 16);
    log({ cpu: 0, context: 'task', what: `16 inserts after recovery: ${after.ok} ok, ${after.enomem} x -ENOMEM` });
    return verdictOf('-ENOMEM possible (NMI certainly), then recovered; no splat (nothing allocates from atomic context)', [
      ['NMI got -ENOMEM', nmi.enomem > 0],
      ['the cache recovered', lv >= 16],
      ['inserts after recovery all succeed', after.ok === 16],
      ['no splat', rt.splats().length === 0],
      ['map invariants hold', m.check().length === 0],
    ], `NMI ${nmi.ok}/${nmi.enomem}, task ${task.ok}/${task.enomem}, after recovery ${after.ok}/${after.enomem} (ok/-ENOMEM)`);
  },
};

export const SEED001_SCENARIOS: readonly Scenario[] = [emptyCacheNonRt, emptyCacheRt];
