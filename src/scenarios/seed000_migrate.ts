/*
 * seed000_migrate.ts — the seed-000 claim that PREEMPT_RT needs migrate_disable, not
 * preempt_disable, around a BPF program (reference §1.2): on RT a program is preemptible (here:
 * it sleeps on a contended spinlock_t, a sleeping lock on RT) yet finishes on the CPU it started
 * on, so a per-CPU read-modify-write stays intact.
 *
 *   rt-migrate-disable  2 CPUs, PREEMPT_RT: both CPUs run a program that reads its CPU's slot of a
 *                       percpu_array, takes a shared spinlock_t (they contend: one sleeps), and
 *                       writes the slot + 1. With migrate_disable (the modelled kernel): no
 *                       preempt_count, migrate-disabled, same CPU at the end, every slot equals
 *                       its CPU's run count. Then the counterfactual, emulated (a task that slept
 *                       resumes on the other CPU): the per-CPU counts break.
 */
import type { BpfMap } from '../maps/bpf_map.js';
import { programUrl, verdictOf, type Scenario } from './scenario.js';

const k4 = (n: number): Uint8Array => new Uint8Array(new Uint32Array([n]).buffer);

function u64At(b: Uint8Array | undefined, off: number): number {
  return b === undefined ? -1 : Number(new DataView(b.buffer, b.byteOffset).getBigUint64(off, true));
}

const ITER = 2000;

const rtMigrateDisable: Scenario = {
  name: 'rt-migrate-disable',
  seed: '000',
  title: 'On PREEMPT_RT a program is preemptible (it sleeps on a spinlock_t) yet finishes on the CPU it started on: per-CPU data stays intact',
  summary: `2 CPUs x ${ITER} runs: read this CPU's percpu_array slot, take a shared spinlock_t (sleeping on RT, contended), write the slot + 1. `
    + 'Then the same with the migration a task without migrate_disable may suffer while asleep (emulated).',
  runtime: { cpus: 2, preemptRt: true, memoryBytes: 32 << 20 },
  async play(rt, log) {
    const main = rt.cpus;
    const checks: [string, boolean][] = [];
    const results: string[] = [];
    for (const mode of ['migrate_disable', 'no_migrate_disable'] as const) {
      const pcpu = rt.createMap({ type: 'percpu_array', name: 'pcpu', keySize: 4, valueSize: 8, maxEntries: 1 });
      const lock = rt.createMap({ type: 'array', name: 'lock', keySize: 4, valueSize: 8, maxEntries: 1 });
      const stats = rt.createMap({ type: 'array', name: 'stats', keySize: 4, valueSize: 8, maxEntries: 4 });
      const prog = await rt.loadProgram(programUrl('rt_pcpu'), { maps: { pcpu, lock, stats } });
      const s = (i: number): number => u64At(stats.lookup(k4(i)), 0);
      // until the two CPUs did contend at least once (a loaded host may run them one after the other)
      const per = [0, 0];
      let errors = 0;
      for (let attempt = 0; attempt < 5 && (attempt === 0 || s(1) === 0); attempt++) {
        const w = await rt.runWorkload({ cpus: 'all', program: prog, iterations: ITER, args: { mode, holdUs: 20 } });
        w.perCpu.forEach((c, i) => { per[i] = per[i]! + c.ok; });
        errors += Object.values(w.errors).reduce((a, b) => a + b, 0);
      }
      const slots = pcpu.lookup(k4(0));
      const vals = [0, 1].map((c) => u64At(slots, c * 8));
      const intact = vals[0] === per[0] && vals[1] === per[1];
      const cpuLabel = mode === 'migrate_disable' ? 'migrate_disable (the kernel since 2020)' : 'without migrate_disable (emulated migration while asleep)';
      for (const c of [0, 1]) {
        log({ cpu: c, context: 'task', what: `${cpuLabel}: ${per[c]} runs; this CPU's slot = ${vals[c]}` });
      }
      log({ cpu: main, context: 'task', what: `${mode}: ${s(1)} runs slept on the spinlock_t (preempted); ${s(0)} ended on another CPU; preempt_count != 0 in ${s(2)}; not migrate-disabled in ${s(3)}` });
      if (mode === 'migrate_disable') {
        checks.push(
          ['programs were preempted (slept on the contended spinlock_t)', s(1) > 0],
          ['preemptible: preempt_count 0 during every run', s(2) === 0],
          ['migrate-disabled during every run', s(3) === 0],
          ['every run finished on the CPU it started on', s(0) === 0],
          ['per-CPU slots intact: each equals its CPU\'s run count', intact && errors === 0],
        );
      } else {
        checks.push(['counterfactual: per-CPU slots broken once tasks migrate while asleep', s(0) > 0 && !intact]);
      }
      results.push(`${mode}: slots ${vals.join('/')} vs runs ${per.join('/')}, slept ${s(1)}, migrated ${s(0)}`);
      await prog.unload();
      for (const m of [pcpu, lock, stats] as BpfMap[]) await m.close();
    }
    const splats = rt.splats();
    checks.push(['no splat (sleeping on a spinlock_t is allowed in a preemptible program)', splats.length === 0]);
    return verdictOf('with migrate_disable: preemptible, never migrated, per-CPU data exact; without: broken', checks,
      `${results.join('; ')}; ${splats.length} splat(s)`);
  },
};

export const SEED000_MIGRATE_SCENARIOS: readonly Scenario[] = [rtMigrateDisable];
