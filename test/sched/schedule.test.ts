// Deterministic schedules (src/cpu/sched.ts, src/cli/schedule_run.ts): one CPU runs at a time and
// the seed picks which continues at every window. What must hold: the same seed gives the same
// interleaving (the same history, stamps included, the same steps and switches) in a fresh
// runtime; injected bugs are found by a small seed sweep and their tokens replay them exactly,
// halting where they failed; the same seeds pass with the fault off; sound maps check clean.
import { describe, expect, it } from 'vitest';
import { Runtime, BpfError } from '../../src/index.js';
import { runScheduled, replayToken, decodeToken, type ScheduledRunConfig } from '../../src/cli/schedule_run.js';
import { FAULT_LOST_UPDATE, FAULT_PHANTOM_DELETE, FAULT_DELETE_UNLOCKED, FAULT_TIMER_MUTUAL_CANCEL } from '../../src/mem/layout.js';
import { runCli } from '../cli/helpers.js';

const BASE: ScheduledRunConfig = {
  map: 'hash', alloc: 'prealloc', cpus: 3, iterations: 150, keys: 6, maxEntries: 16,
  mode: 'random', seed: 1, depth: 3, steps: 3000, faults: 0, preemptRt: false,
};

describe('deterministic schedules', () => {
  it('the same seed gives the same interleaving, byte for byte; another seed another one (random and pct, dynamic alloc, RT)', async () => {
    for (const mode of ['random', 'pct'] as const) {
      const c: ScheduledRunConfig = { ...BASE, mode, alloc: 'dyn', preemptRt: true, seed: 7 };
      const a = await runScheduled(c);
      const b = await runScheduled(c);
      expect(a.verdict, a.details.join('\n')).toBe('ok');
      expect(b.historyHash).toBe(a.historyHash);
      expect([b.steps, b.switches, b.ops]).toEqual([a.steps, a.switches, a.ops]);
      expect(a.ops).toBe(3 * 150);
      const other = await runScheduled({ ...c, seed: 8 });
      expect(other.historyHash).not.toBe(a.historyHash);
    }
    // PCT keeps a CPU running until a change point: far fewer switches than random
    const r = await runScheduled({ ...BASE, seed: 3 });
    const p = await runScheduled({ ...BASE, seed: 3, mode: 'pct' });
    expect(p.switches).toBeLessThan(r.switches / 4);
  }, 120_000);

  const FAULTS = [
    ['lost_update', FAULT_LOST_UPDATE],
    ['phantom_delete', FAULT_PHANTOM_DELETE],
    ['delete_unlocked (a race: only an interleaving shows it)', FAULT_DELETE_UNLOCKED],
  ] as const;
  for (const [name, bit] of FAULTS) {
    it(`fault ${name}: found within 4 random schedules, replayed exactly from its token; the same seeds pass without it`, async () => {
      let found = null;
      const seeds: number[] = [];
      for (let seed = 1; seed <= 4 && found === null; seed++) {
        seeds.push(seed);
        const r = await runScheduled({ ...BASE, seed, faults: bit });
        if (r.verdict !== 'ok') found = r;
      }
      expect(found, `no failure in seeds ${seeds.join(',')}`).not.toBeNull();
      expect(found!.token).toMatch(/^bpfsim1:/);
      expect(decodeToken(found!.token).config.seed).toBe(seeds.at(-1));
      // halting replay: the same operations up to the failure, and every CPU's state at the halt
      const rp = await replayToken(found!.token);
      expect(rp.exact).toBe(true);
      expect(rp.haltedAt).toBeGreaterThan(0);
      expect(rp.cpus.map((c) => c.cpu)).toEqual([0, 1, 2]);
      expect(rp.cpus.every((c) => typeof c.sched === 'string' && Array.isArray(c.heldLocks))).toBe(true);
      // full replay: the whole history again, the same verdict
      const full = await replayToken(found!.token, { full: true });
      expect(full.exact).toBe(true);
      expect(full.run.verdict).toBe(found!.verdict);
      // the switch off: the same seeds are clean
      for (const seed of seeds) expect((await runScheduled({ ...BASE, seed })).verdict).toBe('ok');
    }, 120_000);
  }

  it('timer era switch (timer_lockup before the 2024 fix): the sweep finds the mutual wait (lockup splats) and replays it; with the switch off the same seeds pass (no splat, no livelock)', async () => {
    const TP: ScheduledRunConfig = { ...BASE, map: 'array', cpus: 2, iterations: 40, keys: 2, maxEntries: 2, workload: 'timer_pair' };
    let found = null;
    const seeds: number[] = [];
    for (let seed = 1; seed <= 4 && found === null; seed++) {
      seeds.push(seed);
      const r = await runScheduled({ ...TP, seed, faults: FAULT_TIMER_MUTUAL_CANCEL });
      if (r.verdict !== 'ok') found = r;
    }
    expect(found, `no failure in seeds ${seeds.join(',')}`).not.toBeNull();
    expect(found!.verdict).toBe('splat');
    expect(found!.details.join('\n')).toMatch(/lockup: hrtimer_cancel/);
    const rp = await replayToken(found!.token);
    expect(rp.exact).toBe(true);
    expect(rp.cpus.some((c) => c.site === 'hrtimer.run.callback')).toBe(true);
    for (const seed of seeds) expect((await runScheduled({ ...TP, seed })).verdict).toBe('ok');
  }, 120_000);

  it('sound maps check clean under schedules (lru_hash, percpu_hash, array, dynamic hash)', async () => {
    for (const [map, alloc] of [['lru_hash', 'prealloc'], ['percpu_hash', 'prealloc'], ['array', 'prealloc'], ['hash', 'dyn']] as const) {
      const r = await runScheduled({ ...BASE, map, alloc, seed: 11, iterations: 100 });
      expect(r.verdict, `${map}: ${r.details.join('\n')}`).toBe('ok');
      expect(r.opsChecked).toBeGreaterThan(0);
    }
  }, 120_000);

  it('workloads begun in one tick form one run; a CPU twice in one run is EBUSY; a run halted at a step says where it stopped', async () => {
    const rt = await Runtime.start({ cpus: 2, record: true, memoryBytes: 32 << 20, schedule: { mode: 'random', seed: 5, stopAt: 40 } });
    try {
      const m = rt.createMap({ type: 'hash', name: 'h', keySize: 4, valueSize: 8, maxEntries: 8 });
      const prog = await rt.loadProgram(new URL('../../dist/src/cli/programs/stress_mix.js', import.meta.url), { maps: { m } });
      const args = { updateBelow: 30000, deleteBelow: 45000, keys: 4, kind: 'hash' };
      const a = rt.runWorkload({ program: prog, cpus: [0], iterations: 100, args });
      const dup = rt.runWorkload({ program: prog, cpus: [0], iterations: 1, args });
      await expect(dup).rejects.toBeInstanceOf(BpfError);
      const b = rt.runWorkload({ program: prog, cpus: [1], iterations: 100, args });
      for (let i = 0; i < 2000 && rt.schedule()!.halted === 0; i++) await new Promise((r) => setTimeout(r, 5));
      const s = rt.schedule()!;
      expect(s.halted).toBe(40);
      expect(s.haltReason).toBe('the step asked for');
      expect(s.cpus).toHaveLength(2);
      void a.catch(() => {}); void b.catch(() => {});
    } finally {
      await rt.stop();
    }
  }, 60_000);

  it('bpfsim stress --schedule sweeps seeds on the pool and prints a replay token; bpfsim replay reruns it', async () => {
    const sweep = await runCli(['stress', '--schedule', 'random', '--runs', '3', '--seed', '1', '--fault', 'lost_update', '--iterations', '120']);
    expect(sweep.code, sweep.stderr).toBe(1);
    expect(sweep.stdout).toMatch(/schedules\/s/);
    const token = /bpfsim1:[A-Za-z0-9_-]+/.exec(sweep.stdout)?.[0];
    expect(token).toBeDefined();
    const replay = await runCli(['replay', token!]);
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toMatch(/halted at step \d+/);
    expect(replay.stdout).toMatch(/exact: yes/);
    expect(replay.stdout).toMatch(/cpu 2: /);
    const bad = await runCli(['replay', 'bpfsim1:xx']);
    expect(bad.code).toBe(2);
  }, 120_000);
});
