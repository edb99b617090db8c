/*
 * cmd_schedule.ts — the command-line side of deterministic schedules:
 *   bpfsim stress --schedule random|pct [--runs N] …   a seed sweep (schedule_sweep.ts)
 *   bpfsim replay TOKEN [--full]                        re-run a failure (schedule_run.ts)
 * Both load the library lazily, after the command line was validated (as the engine is).
 */
import type { Command, CommandContext } from './command.js';
import { UsageError, parseCommandLine, parseCpus, parseSeed } from './args.js';
import { EXIT_FAILED, EXIT_OK, MAX_CPUS } from './limits.js';
import type { ScheduledRunConfig, ScheduledRunResult, ScheduleMap } from './schedule_run.js';

const MAPS: readonly ScheduleMap[] = ['hash', 'lru_hash', 'percpu_hash', 'array'];
const FAULTS = ['lost_update', 'phantom_delete', 'noexist_overwrite', 'delete_unlocked', 'timer_mutual_cancel'] as const;
const FAULT_BITS: Readonly<Record<string, number>> = { lost_update: 1 << 1, phantom_delete: 1 << 2, noexist_overwrite: 1 << 3, delete_unlocked: 1 << 4, timer_mutual_cancel: 1 << 5 };

export const SCHEDULE_HELP = `
Deterministic schedules (docs/SCHEDULE.md):
  --schedule MODE   random | pct: one CPU runs at a time and the scheduler picks, from the seed,
                    which continues at every window; each run is checked (linearizability of its
                    history, splats, the map's check()); runs sweep seeds on a piscina pool and
                    stop at the first failure, which prints a replay token (bpfsim replay TOKEN)
  --runs N          seeds to sweep, from --seed (default 20)
  --depth D         PCT bug depth: D-1 priority change points (default 3)
  --iterations N    program runs per CPU in one run (default 200)
  --keys N          key range of the workload (default 6: contended)
  --cpus N          CPUs per run (default 3); --maps takes one of ${MAPS.join(', ')}
  --alloc A         prealloc | bpf_mem_alloc (default prealloc)
  --workload W      mix (stress_mix on the map, default) | timer_pair (timer_lockup.c on 2 CPUs:
                    each callback cancels the other's timer; the era switch timer_mutual_cancel
                    is the kernel before its 2024 fix, where the two wait for each other for ever)
  --fault NAME      TEST ONLY: ${FAULTS.join(', ')}
  --all             keep sweeping after a failure
`;

function num(v: unknown, dflt: number, opt: string, min: number, max: number): number {
  const s = typeof v === 'string' ? v : undefined;
  if (s === undefined) return dflt;
  if (!/^\s*\d+\s*$/.test(s)) throw new UsageError(`${opt} must be a whole number, got '${s}'`);
  const n = Number(s);
  if (n < min || n > max) throw new UsageError(`${opt} must be from ${min} to ${max}, got ${n}`);
  return n;
}

function describe(r: ScheduledRunResult): string {
  return `seed ${r.config.seed}: ${r.verdict.toUpperCase()} — ${r.ops} ops, ${r.steps} steps, ${r.switches} switches`;
}

/** `bpfsim stress --schedule …` (argv as given to stress). */
export async function runScheduleSweep(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const p = parseCommandLine('stress', argv, {
    schedule: { type: 'string' }, runs: { type: 'string' }, depth: { type: 'string' }, iterations: { type: 'string' },
    keys: { type: 'string' }, cpus: { type: 'string' }, maps: { type: 'string' }, alloc: { type: 'string' },
    fault: { type: 'string' }, seed: { type: 'string' }, rt: { type: 'boolean' }, all: { type: 'boolean' },
    workload: { type: 'string' },
  }, false);
  const v = p.values;
  const mode = v.schedule;
  if (mode !== 'random' && mode !== 'pct') throw new UsageError(`--schedule must be 'random' or 'pct', got '${String(mode)}'`);
  const map = (typeof v.maps === 'string' ? v.maps : 'hash') as ScheduleMap;
  if (!MAPS.includes(map)) throw new UsageError(`--maps with --schedule takes one of ${MAPS.join(', ')}, got '${map}'`);
  const alloc = typeof v.alloc === 'string' ? v.alloc : 'prealloc';
  if (alloc !== 'prealloc' && alloc !== 'bpf_mem_alloc') throw new UsageError(`--alloc with --schedule takes prealloc or bpf_mem_alloc, got '${alloc}'`);
  let faults = 0;
  for (const f of typeof v.fault === 'string' ? v.fault.split(',').filter((x) => x !== '') : []) {
    const bit = FAULT_BITS[f];
    if (bit === undefined) throw new UsageError(`--fault with --schedule takes ${FAULTS.join(', ')}, got '${f}'`);
    faults |= bit;
  }
  const workload = typeof v.workload === 'string' ? v.workload : 'mix';
  if (workload !== 'mix' && workload !== 'timer_pair') throw new UsageError(`--workload takes mix or timer_pair, got '${workload}'`);
  const cpus = workload === 'timer_pair' ? 2 : parseCpus(v.cpus, 3);
  if (cpus > MAX_CPUS) throw new UsageError(`--cpus at most ${MAX_CPUS}`);
  const seed = parseSeed(v.seed, ctx.randomSeed);
  const runs = num(v.runs, 20, '--runs', 1, 1_000_000);
  const iterations = num(v.iterations, 200, '--iterations', 1, 1_000_000);
  const base: Omit<ScheduledRunConfig, 'seed'> = {
    map, alloc: alloc === 'prealloc' ? 'prealloc' : 'dyn', cpus, iterations, keys: num(v.keys, 6, '--keys', 1, 1 << 20), maxEntries: 16,
    mode, depth: num(v.depth, 3, '--depth', 1, 16), steps: Math.max(1000, 6 * cpus * iterations), faults, preemptRt: v.rt === true,
    ...(workload === 'timer_pair' ? { workload, map: 'array' as const } : {}),
  };
  const out = ctx.stdout;
  out.write(`bpfsim stress --schedule ${mode}: ${runs} run(s) from seed ${seed} · ${cpus} CPUs × ${iterations} iterations · ${map} ${alloc}`
    + `${mode === 'pct' ? ` · depth ${base.depth}` : ''}${faults !== 0 ? ` · TEST FAULT ${String(v.fault)}` : ''}\n`);
  const { sweepSchedules } = await import('./schedule_sweep.js');
  const r = await sweepSchedules({
    base, firstSeed: seed, runs, all: v.all === true, ...(ctx.signal !== undefined ? { signal: ctx.signal } : {}),
    onRun: (x, n) => { if (x.verdict !== 'ok' || n % 10 === 0 || n === runs) out.write(`  [${n}/${runs}] ${describe(x)}\n`); },
  });
  out.write(`${r.runs} schedule(s) in ${(r.elapsedMs / 1000).toFixed(1)} s: ${r.schedulesPerSec.toFixed(2)} schedules/s, `
    + `${Math.round(r.opsCheckedPerSec)} ops checked/s, ${Math.round(r.stepsPerSec)} steps/s; verdicts ${JSON.stringify(r.verdicts)}\n`);
  if (r.first === null) {
    out.write(`no failure in ${r.runs} schedule(s)\n`);
    return EXIT_OK;
  }
  out.write(`FIRST FAILURE: ${describe(r.first)}\n${r.first.details.map((d) => `  ${d}`).join('\n')}\nreplay: bpfsim replay ${r.first.token}\n`);
  ctx.stderr.write(`bpfsim stress: FAIL (schedule ${mode}, seed ${r.first.config.seed}): ${r.first.verdict}\n`);
  return EXIT_FAILED;
}

const REPLAY_HELP = `Usage: bpfsim replay TOKEN [--full]

Re-runs the scheduled run a token names (printed by 'bpfsim stress --schedule' on a failure) and
stops where it failed — after the failing window's last operation, at the first splat, or at the
step a livelock was cut at — then prints where every CPU stood: its program, its last window,
the locks it held, and its place in the schedule. It says whether the replay reproduced the run
exactly (the same history up to the stop, the same splat).

Options:
  --full    run to the end instead, and compare the whole history with the token's
  --json    print the replay as one JSON object (config, halt step, CPUs, verdict, exact)
`;

export const replayCommand: Command = {
  name: 'replay',
  summary: 're-run a failing deterministic schedule from its token and stop where it failed',
  help: REPLAY_HELP,
  async run(argv, ctx) {
    const p = parseCommandLine('replay', argv, { full: { type: 'boolean' }, json: { type: 'boolean' } }, true);
    const token = p.positionals[0];
    if (token === undefined || p.positionals.length > 1) throw new UsageError('replay takes exactly one token');
    const { decodeToken, replayToken } = await import('./schedule_run.js');
    let t;
    try { t = decodeToken(token); } catch (e) { throw new UsageError((e as Error).message); }
    const c = t.config;
    const out = ctx.stdout;
    if (p.values.json === true) {
      const r = await replayToken(token, { full: p.values.full === true });
      out.write(`${JSON.stringify({ config: c, stop: t.stop ?? null, haltedAt: r.haltedAt, virtualNs: r.virtualNs, cpus: r.cpus, verdict: r.run.verdict, details: r.run.details, exact: r.exact })}\n`);
      return r.exact === false ? EXIT_FAILED : EXIT_OK;
    }
    out.write(`bpfsim replay: ${c.mode} schedule, seed ${c.seed}${c.mode === 'pct' ? `, depth ${c.depth}` : ''} · ${c.cpus} CPUs × ${c.iterations} · ${c.workload === 'timer_pair' ? 'timer_pair' : `${c.map} ${c.alloc}`}`
      + `${c.faults !== 0 ? ` · faults 0x${c.faults.toString(16)}` : ''} · stop: ${p.values.full === true ? 'none (--full)' : t.stop === undefined ? 'none' : t.stop.kind === 'stamp' ? `history stamp ${t.stop.stamp}` : t.stop.kind === 'step' ? `step ${t.stop.step}` : 'first splat'}\n`);
    const r = await replayToken(token, { full: p.values.full === true });
    out.write(r.haltedAt !== 0 ? `halted at step ${r.haltedAt} (virtual time ${(r.virtualNs / 1e6).toFixed(3)} ms)\n` : `ran to the end: ${r.run.steps} steps\n`);
    for (const cpu of r.cpus) {
      out.write(`  cpu ${cpu.cpu}: ${cpu.program ?? 'no program'} · last window ${cpu.site || '-'} · ${cpu.sched}`
        + ` · held locks: ${cpu.heldLocks.length === 0 ? 'none' : cpu.heldLocks.join(' > ')}${cpu.waitingFor !== null ? ` · waiting for ${cpu.waitingFor}` : ''}\n`);
    }
    out.write(`verdict of what ran: ${r.run.verdict.toUpperCase()}\n${r.run.details.map((d) => `  ${d}`).join('\n')}${r.run.details.length ? '\n' : ''}`);
    out.write(r.exact === null ? 'exact: unknown (the token carries no evidence)\n' : r.exact ? 'exact: yes — the same operations, results and stamps as the failing run\n' : 'exact: NO — the replay diverged from the token\n');
    return r.exact === false ? EXIT_FAILED : EXIT_OK;
  },
};
