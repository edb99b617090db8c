/*
 * seed002_synchronize.ts — scenarios from seed 002 (the BPF_SYNCHRONIZE thread, 2018): user space
 * swaps the inner map of a map-in-map, waits until no program can still be using the old one, and
 * drains it. The kernel's answer (commit 1ae80cf31938, reference §5.3) made the wait part of the
 * syscall: an update/delete of a hash_of_maps / array_of_maps returns only after synchronize_rcu(),
 * here `await outer.update(k, inner)`. rt.synchronizeRcu() is the proposed BPF_SYNCHRONIZE itself.
 *
 *   swap-and-drain            4 CPUs read through outer[0] in a loop; the main thread swaps the
 *                             inner map, drains the old one and frees it: no reader meets freed
 *                             memory, the drained count is final, every lookup is counted once
 *   swap-and-drain-expedited  the same with rt.synchronizeRcu({ expedited: true }) after the swap
 *   synchronize-waits-for-running-program
 *                             rt.synchronizeRcu() (normal and expedited) called while a program sits
 *                             in a long read section resolves only after that program ended
 */
import { nowMs } from '../mem/arena.js';
import { errnoName } from '../errno.js';
import { mapById } from '../maps/registry.js';
import type { BpfMap } from '../maps/bpf_map.js';
import { programUrl, verdictOf, sleep, waitFor, type Scenario } from './scenario.js';

const k4 = (n: number): Uint8Array => new Uint8Array(new Uint32Array([n]).buffer);
const u64 = (n: number): Uint8Array => new Uint8Array(new BigUint64Array([BigInt(n)]).buffer);

/** The u64 at index `i` of an array map (syscall lookup). */
function word(m: BpfMap, i: number): number {
  const b = m.lookup(k4(i));
  return b === undefined ? -1 : Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
}


const fmt = (ms: number): string => `${ms.toFixed(2)} ms`;

function swapAndDrain(expedited: boolean): Scenario {
  return {
    name: expedited ? 'swap-and-drain-expedited' : 'swap-and-drain',
    seed: '002',
    title: expedited
      ? 'Swap an inner map, BPF_SYNCHRONIZE (expedited), drain and free the old one while 4 CPUs read through the outer map'
      : 'Swap an inner map, wait for a grace period, drain and free the old one while 4 CPUs read through the outer map',
    summary: 'Programs on 4 CPUs look up outer[0] (hash_of_maps) and count in the inner map; the main thread replaces the inner map '
      + '(the update resolves after a grace period), calls rt.synchronizeRcu(' + (expedited ? '{ expedited: true }' : '') + '), '
      + 'drains the old inner map, closes it (freed and poisoned) and lets the readers go on.',
    runtime: { cpus: 4, memoryBytes: 64 << 20 },
    async play(rt, log) {
      const main = rt.cpus;
      const spec = { type: 'array', keySize: 4, valueSize: 8, maxEntries: 2 } as const;
      const oldM = rt.createMap({ ...spec, name: 'inner_old' });
      const newM = rt.createMap({ ...spec, name: 'inner_new' });
      oldM.update(k4(1), u64(1));
      newM.update(k4(1), u64(2));
      const outer = rt.createMap({ type: 'hash_of_maps', name: 'outer', keySize: 4, valueSize: 4, maxEntries: 4, innerMap: oldM });
      const stats = rt.createMap({ type: 'array', name: 'stats', keySize: 4, valueSize: 8, maxEntries: 4 });
      await outer.update(k4(0), oldM);
      const oldId = oldM.id;
      const prog = await rt.loadProgram(programUrl('mim_swap_reader'), { maps: { outer, stats }, args: { spin: 16 } });
      const work = rt.runWorkload({ cpus: 'all', program: prog, seconds: 1.5 });
      let workDone = false;
      void work.then(() => { workDone = true; }, () => { workDone = true; });
      log({ cpu: main, context: 'task', what: `outer[0] = inner_old (id ${oldId}); ${rt.cpus} CPUs loop: inner = outer.lookupInner(0), count in inner and in stats[generation]` });

      const readersOnOld = await waitFor(() => word(stats, 1) >= 2000, 5000);
      const t0 = nowMs();
      await outer.update(k4(0), newM);
      const updMs = nowMs() - t0;
      const oldAtSwap = word(stats, 1);
      log({ cpu: main, context: 'task', what: `bpf(MAP_UPDATE_ELEM, outer[0] = inner_new) returned after ${fmt(updMs)} (includes synchronize_rcu); ${oldAtSwap} lookups went through inner_old` });
      const t1 = nowMs();
      await rt.synchronizeRcu({ expedited });
      const syncMs = nowMs() - t1;
      log({ cpu: main, context: 'task', what: `BPF_SYNCHRONIZE: rt.synchronizeRcu(${expedited ? '{ expedited: true }' : ''}) took ${fmt(syncMs)}` });

      const drain1 = word(oldM, 0);
      await sleep(30);
      const drain2 = word(oldM, 0);
      log({ cpu: main, context: 'task', what: `drain inner_old: counter ${drain1}, again 30 ms later ${drain2} (no program touches it any more)` });
      oldM.close();
      await rt.rcuBarrier();
      const freed = mapById(oldId) === undefined;
      log({ cpu: main, context: 'task', what: `close(inner_old): ${freed ? 'freed (memory poisoned)' : 'still live'}` });

      const newAtFree = word(stats, 2);
      await waitFor(() => workDone || word(stats, 2) >= newAtFree + 2000, 5000);
      const w = await work;
      const old = word(stats, 1);
      const neu = word(stats, 2);
      const postFree = neu - newAtFree;
      const newCount = word(newM, 0);
      const errs = Object.entries(w.errors).map(([k, v]) => `${k} x${v}`).join(', ');
      log({ cpu: main, context: 'task', what: `workload: ${w.ops} runs (${w.perCpu.map((c) => c.ok).join(' / ')} per CPU${errs !== '' ? `, errors: ${errs}` : ''}); lookups through inner_old ${old}, through inner_new ${neu} (${postFree} after inner_old was freed)` });
      const outerNow = outer.lookup(k4(0));
      const outerId = outerNow === undefined ? -1 : new DataView(outerNow.buffer, outerNow.byteOffset).getUint32(0, true);
      const rcu = rt.stats().rcu;
      const splats = rt.splats();
      const checks: [string, boolean][] = [
        ['readers ran through inner_old before the swap', readersOnOld],
        ['no splat (no reader met freed memory)', splats.length === 0],
        ['every run succeeded', Object.keys(w.errors).length === 0 && w.skipped === 0],
        ['every lookup counted once: old + new = runs', old + neu === w.ops],
        ['lookups went through both maps', old > 0 && neu > 0],
        ['the drained count is final: inner_old counter = lookups through it', drain1 === old && drain2 === old],
        ['inner_old freed after close + rcu_barrier', freed],
        ['readers went on after the free', postFree > 0],
        ['inner_new counter = lookups through it', newCount === neu],
        ['outer[0] is inner_new', outerId === newM.id],
        ['outer map invariants hold', outer.check().length === 0],
      ];
      await prog.unload();
      outer.close();
      newM.close();
      stats.close();
      return verdictOf(
        'no splat; the old map is quiescent once the update resolved; old + new lookups = runs; the freed map is never read',
        checks,
        `update+GP ${fmt(updMs)}, ${expedited ? 'expedited ' : ''}synchronize ${fmt(syncMs)} (GP p50 ${fmt(rcu.gpLatency.p50Ms)}, ${rcu.expeditedGps} expedited GPs); lookups old ${old} / new ${neu}; ${splats.length} splat(s)`,
      );
    },
  };
}

const HOLD_MS = 120;

const synchronizeWaits: Scenario = {
  name: 'synchronize-waits-for-running-program',
  seed: '002',
  title: 'rt.synchronizeRcu() (BPF_SYNCHRONIZE) called while a program sits in a long read section resolves only after the program ended',
  summary: `A program on CPU 1 stays ${HOLD_MS} ms in one RCU read section (a loop with interrupt windows); the main thread calls rt.synchronizeRcu(), then rt.synchronizeRcu({ expedited: true }) during a second run.`,
  runtime: { cpus: 2, memoryBytes: 32 << 20 },
  async play(rt, log) {
    const main = rt.cpus;
    const times = rt.createMap({ type: 'array', name: 'times', keySize: 4, valueSize: 8, maxEntries: 4 });
    const prog = await rt.loadProgram(programUrl('sync_long_reader'), { maps: { times } });
    const b0 = nowMs();
    await rt.synchronizeRcu();
    const idleMs = nowMs() - b0;
    log({ cpu: main, context: 'task', what: `synchronize_rcu with no program running: ${fmt(idleMs)}` });
    const checks: [string, boolean][] = [];
    const seen: string[] = [];
    for (const [i, expedited] of [[0, false], [1, true]] as const) {
      const slot = 2 * i;
      const run = prog.testRun({ cpu: 1, args: { holdMs: HOLD_MS, slot } });
      const started = await waitFor(() => word(times, slot) > 0, 5000);
      const startMs = word(times, slot) / 1e6;
      const tCall = nowMs();
      await rt.synchronizeRcu({ expedited });
      const tDone = nowMs();
      const r = await run;
      const endMs = word(times, slot + 1) / 1e6;
      const kind = expedited ? 'expedited' : 'normal';
      log({ cpu: 1, context: 'task', what: `program: read section from ${fmt(startMs)} to ${fmt(endMs)} -> ${r.retval < 0 ? `-${errnoName(r.retval)}` : r.retval}` });
      log({ cpu: main, context: 'task', what: `${kind} synchronize_rcu called at ${fmt(tCall)}, resolved at ${fmt(tDone)}: waited ${fmt(tDone - tCall)}, ${fmt(tDone - endMs)} after the program ended` });
      checks.push(
        [`${kind}: the program was running at the call`, started && startMs <= tCall && tCall < endMs],
        [`${kind}: resolved only after the program ended`, tDone >= endMs],
        [`${kind}: the program ran to its end`, r.retval === 0 && r.runs === 1],
      );
      seen.push(`${kind} waited ${fmt(tDone - tCall)} (program ended ${fmt(endMs - tCall)} after the call)`);
    }
    const splats = rt.splats();
    checks.push(['no splat (no RCU stall at this length)', splats.length === 0]);
    await prog.unload();
    times.close();
    return verdictOf('both waits end after the running program left its read section; no splat', checks,
      `idle GP ${fmt(idleMs)}; ${seen.join('; ')}; ${splats.length} splat(s)`);
  },
};

export const SEED002_SCENARIOS: readonly Scenario[] = [swapAndDrain(false), swapAndDrain(true), synchronizeWaits];
