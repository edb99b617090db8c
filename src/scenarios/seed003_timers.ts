/*
 * seed003_timers.ts — scenarios from seed 003 (BPF timers v3, Jun 2021: timers owned by maps,
 * prog references tied to set_callback/cancel and dropped by map_release_uref; reference §6).
 *
 *   timer-races  on 2 CPUs, real clock: a callback running on CPU 1 while CPU 0 cancels it
 *                (bpf_timer_cancel waits), deletes its element (the free never waits: deferred
 *                past the callback), while the callback cancels itself (-EDEADLK), two callbacks
 *                cancelling each other (at least one -EDEADLK, no hang), and map teardown while a
 *                callback runs (uref release waits for it, then no timer is left)
 *   timer-uref   virtual clock: periodic timers keep an unloaded program alive; closing the map's
 *                last user reference cancels and frees them and frees the program; timers in an
 *                inner map die with that inner map (close + delete from the outer map), and a
 *                bpf_timer_init there afterwards is -EPERM
 */
import { nowMs } from '../mem/arena.js';
import { errnoName, EDEADLK, EPERM } from '../errno.js';
import type { BpfMap } from '../maps/bpf_map.js';
import { programUrl, verdictOf, sleep, waitFor, type Scenario } from './scenario.js';
import { TV_COUNT, TV_ERR, TV_CPU, TV_DONE, TIMER_SCENARIO_VALUE_SIZE } from './programs/timer_scenario.js';

const k4 = (n: number): Uint8Array => new Uint8Array(new Uint32Array([n]).buffer);
const errStr = (r: number): string => (r < 0 ? `-${errnoName(-r)}` : String(r));
const fmt = (ms: number): string => `${ms.toFixed(1)} ms`;

function field(m: BpfMap, key: number, off: number, signed = false): number {
  const b = m.lookup(k4(key));
  if (b === undefined) return Number.NaN;
  const dv = new DataView(b.buffer, b.byteOffset);
  return off === TV_COUNT ? Number(dv.getBigUint64(off, true)) : signed ? dv.getInt32(off, true) : dv.getUint32(off, true);
}


const timerSpec = (name: string, type: 'hash' | 'array' = 'hash') => ({
  type, name, keySize: 4, valueSize: TIMER_SCENARIO_VALUE_SIZE, maxEntries: 16,
  fields: [{ type: 'bpf_timer', offset: 8 }],
} as const);

const SPIN_US = 60_000;
const HOLD_MS = 30;
const ctlSpec = { type: 'array', name: 'ctl', keySize: 4, valueSize: 4, maxEntries: 16 } as const;

const timerRaces: Scenario = {
  name: 'timer-races',
  seed: '003',
  title: 'Timer callbacks racing cancel, delete, self-cancel, each other and map teardown on two CPUs: no hang, no wait under a bucket lock',
  summary: 'Timers armed on CPU 1 run a callback that holds its CPU until released; CPU 0 cancels one (waits), deletes the element of another (deferred free); '
    + 'a callback cancels its own timer; two callbacks on two CPUs cancel each other; the map is closed while a callback runs.',
  runtime: { cpus: 2, memoryBytes: 32 << 20 },
  async play(rt, log) {
    const main = rt.cpus;
    const m = rt.createMap(timerSpec('tmap'));
    const ctl = rt.createMap(ctlSpec);
    const prog = await rt.loadProgram(programUrl('timer_scenario'), { maps: { tmap: m, ctl } });
    const run = async (cpu: number, args: Record<string, unknown>): Promise<number> => (await prog.testRun({ cpu, args })).retval;
    const release = (k: number): void => { ctl.update(k4(k), k4(1)); };
    const checks: [string, boolean][] = [];
    const ARM_NS = 5_000_000; // 5 ms ahead: the arming test run has returned when it fires

    // 1. callback vs bpf_timer_cancel from another CPU
    await run(1, { op: 'arm', key: 1, cb: 'hold', ns: ARM_NS });
    log({ cpu: 1, context: 'task', what: 'program: bpf_timer_init/set_callback/start(key 1, 5 ms): the callback holds its CPU until released' });
    const running1 = await waitFor(() => field(m, 1, TV_COUNT) === 1, 5000);
    log({ cpu: 1, context: 'softirq', what: 'timer softirq: callback of key 1 starts' });
    const t0 = nowMs();
    let cancelled = false;
    const cancel = run(0, { op: 'cancel', key: 1 }).then((r) => { cancelled = true; return r; });
    await sleep(HOLD_MS);
    const waiting = !cancelled;
    release(1);
    const c1 = await cancel;
    const waited = nowMs() - t0;
    const done1 = field(m, 1, TV_DONE);
    log({ cpu: 0, context: 'task', what: `program: bpf_timer_cancel(key 1) -> ${errStr(c1)} after ${fmt(waited)} (still waiting when the callback was released ${fmt(HOLD_MS)} in: ${waiting ? 'yes' : 'no'}); callback finished: ${done1 === 1 ? 'yes' : 'no'}` });
    checks.push(['cancel waited for the running callback and returned 0', running1 && waiting && c1 === 0 && done1 === 1]);

    // 2. callback vs delete of its element (bucket lock): the free is deferred, nothing waits
    await run(1, { op: 'arm', key: 2, cb: 'hold', ns: ARM_NS });
    const running2 = await waitFor(() => field(m, 2, TV_COUNT) === 1, 5000);
    const pending0 = rt.stats().timers.deferredPending;
    const t1 = nowMs();
    const d2 = await run(0, { op: 'delete', key: 2 });
    const delMs = nowMs() - t1;
    const pending1 = rt.stats().timers.deferredPending;
    log({ cpu: 0, context: 'task', what: `program: map_delete_elem(key 2) while its callback runs -> ${errStr(d2)} after ${fmt(delMs)}; timer free deferred past the callback (${pending1 - pending0} pending)` });
    release(2);
    await rt.idle();
    log({ cpu: main, context: 'task', what: `delete_work: the callback ended, the timer was cancelled and freed (${rt.stats().timers.deferredPending} pending)` });
    checks.push(['delete did not wait for the callback (free deferred, then done)', running2 && d2 === 0 && pending1 === pending0 + 1 && rt.stats().timers.deferredPending === 0]);

    // 3. a callback cancelling its own timer
    await run(0, { op: 'arm', key: 3, cb: 'self_cancel', ns: ARM_NS });
    await waitFor(() => field(m, 3, TV_DONE) === 1, 5000);
    const e3 = field(m, 3, TV_ERR, true);
    log({ cpu: 0, context: 'softirq', what: `callback of key 3: bpf_timer_cancel(own timer) -> ${errStr(e3)}` });
    checks.push(['self cancel -> -EDEADLK', e3 === -EDEADLK]);

    // 4. two callbacks on two CPUs cancelling each other
    await Promise.all([
      run(0, { op: 'arm', key: 4, cb: 'cancel_peer', peer: 5, ns: ARM_NS }),
      run(1, { op: 'arm', key: 5, cb: 'cancel_peer', peer: 4, ns: ARM_NS }),
    ]);
    const both = await waitFor(() => field(m, 4, TV_DONE) === 1 && field(m, 5, TV_DONE) === 1, 5000);
    const e4 = field(m, 4, TV_ERR, true);
    const e5 = field(m, 5, TV_ERR, true);
    log({ cpu: field(m, 4, TV_CPU), context: 'softirq', what: `callback of key 4: bpf_timer_cancel(key 5, whose callback runs) -> ${errStr(e4)}` });
    log({ cpu: field(m, 5, TV_CPU), context: 'softirq', what: `callback of key 5: bpf_timer_cancel(key 4, whose callback runs) -> ${errStr(e5)}` });
    checks.push(['mutual cancel: both returned, at least one -EDEADLK (the cancelling counter)', both && (e4 === -EDEADLK || e5 === -EDEADLK) && [0, -EDEADLK].includes(e4) && [0, -EDEADLK].includes(e5)]);

    // 5. map teardown (last user reference) while a callback runs
    await run(1, { op: 'arm', key: 6, cb: 'spin', ns: ARM_NS, arg: SPIN_US });
    const running6 = await waitFor(() => field(m, 6, TV_COUNT) === 1, 5000);
    const t2 = nowMs();
    await m.close();
    const closeMs = nowMs() - t2;
    const st = rt.stats().timers;
    log({ cpu: main, context: 'task', what: `close(tmap): map_release_uref cancelled every timer, waiting ${fmt(closeMs)} for the running callback; timers queued ${st.queued.reduce((a, b) => a + b, 0)}` });
    await prog.unload();
    await ctl.close();
    await rt.idle();
    const st2 = rt.stats().timers;
    log({ cpu: main, context: 'task', what: `program unloaded; bpf_hrtimer objects allocated ${st2.allocated}, freed ${st2.freed}` });
    checks.push(['teardown: no timer left, every timer object freed', running6 && st.queued.every((q) => q === 0) && st2.live === 0]);
    const splats = rt.splats();
    checks.push(['no splat (no lockup, no deadlock report)', splats.length === 0]);
    return verdictOf(
      'cancel waits for a running callback; delete never waits (deferred free); self and mutual cancels give -EDEADLK; teardown leaves nothing; no splat',
      checks,
      `cancel waited ${fmt(waited)}; delete took ${fmt(delMs)}; self ${errStr(e3)}; mutual ${errStr(e4)} / ${errStr(e5)}; ${splats.length} splat(s)`,
    );
  },
};

const timerUref: Scenario = {
  name: 'timer-uref',
  seed: '003',
  title: 'Timers are owned by maps: closing the last user reference cancels them and frees the program they kept alive; inner-map timers die with their inner map',
  summary: 'Periodic timers (1 us) in a hash map keep firing after their program is unloaded (the timers hold it); close(map) cancels them and frees the program. '
    + 'A periodic timer in an inner hash map of an array_of_maps stops once the inner map is closed and deleted from the outer map.',
  runtime: { cpus: 2, memoryBytes: 32 << 20, clock: 'virtual' },
  async play(rt, log) {
    const main = rt.cpus;
    const checks: [string, boolean][] = [];
    const m = rt.createMap(timerSpec('owned'));
    const ctl = rt.createMap(ctlSpec);
    const prog = await rt.loadProgram(programUrl('timer_scenario'), { maps: { tmap: m, ctl } });
    for (let k = 0; k < 4; k++) await prog.testRun({ cpu: k & 1, args: { op: 'arm', key: k, cb: 'periodic', ns: 1000, arg: 1 } });
    log({ cpu: 0, context: 'task', what: 'program arms 4 periodic timers (1 us, re-armed by their callback) on CPUs 0 and 1' });
    for (let i = 0; i < 10; i++) await rt.clock.advance(1000);
    const runs = (): number => [0, 1, 2, 3].reduce((s, k) => s + field(m, k, TV_COUNT), 0);
    const r1 = runs();
    log({ cpu: main, context: 'task', what: `10 us of virtual time: ${r1} callback runs; program references: ${prog.refcnt()} (user + 4 timers)` });
    checks.push(['timers fire periodically', r1 === 40]);
    await prog.unload();
    const ref1 = prog.refcnt();
    for (let i = 0; i < 10; i++) await rt.clock.advance(1000);
    const r2 = runs();
    log({ cpu: main, context: 'task', what: `program unloaded by the user: references left ${ref1} (the timers'); 10 us later ${r2 - r1} more runs` });
    checks.push(['the unloaded program stays alive through its timers', ref1 === 4 && r2 - r1 === 40]);
    const keep = await rt.loadProgram(programUrl('timer_scenario'), { maps: { tmap: m, ctl } }); // keeps the map allocated after close
    await m.close();
    const ref2 = prog.refcnt();
    for (let i = 0; i < 10; i++) await rt.clock.advance(1000);
    const r3 = rt.stats().timers.queued.reduce((a, b) => a + b, 0);
    log({ cpu: main, context: 'task', what: `close(owned): map_release_uref cancelled and freed the timers; program references ${ref2}; timers queued ${r3}` });
    checks.push(['uref release cancels the timers and frees the program they held', ref2 === 0 && r3 === 0 && (await waitFor(() => prog.released, 5000))]);
    const r4 = await keep.testRun({ cpu: 0, args: { op: 'init', key: 9 } });
    log({ cpu: 0, context: 'task', what: `another program still holding the closed map: bpf_timer_init -> ${errStr(r4.retval)}` });
    checks.push(['no timer can be set up in a map without user references (-EPERM)', r4.retval === -EPERM]);
    await keep.unload();

    // inner maps
    const inner0 = rt.createMap(timerSpec('inner0'));
    const inner1 = rt.createMap(timerSpec('inner1'));
    const outer = rt.createMap({ type: 'array_of_maps', name: 'outer', keySize: 4, valueSize: 4, maxEntries: 2, innerMap: inner0 });
    await outer.update(k4(0), inner0);
    await outer.update(k4(1), inner1);
    const ip = await rt.loadProgram(programUrl('timer_scenario'), { maps: { tmap: inner1, ctl } });
    await ip.testRun({ cpu: 1, args: { op: 'arm', key: 0, cb: 'periodic', ns: 1000, arg: 1 } });
    for (let i = 0; i < 5; i++) await rt.clock.advance(1000);
    const i1 = field(inner1, 0, TV_COUNT);
    log({ cpu: 1, context: 'softirq', what: `periodic timer in inner1 (outer[1]): ${i1} runs in 5 us` });
    const fired = (): number => rt.stats().timers.fired.reduce((a, b) => a + b, 0);
    await ip.unload();
    await inner1.close();
    await outer.delete(k4(1));
    const f0 = fired();
    for (let i = 0; i < 5; i++) await rt.clock.advance(1000);
    const f1 = fired();
    log({ cpu: main, context: 'task', what: `close(inner1) + delete outer[1]: ${f1 - f0} callbacks in the next 5 us; timer objects live ${rt.stats().timers.live}` });
    checks.push(['the inner map\'s timer ran, then stopped with its inner map', i1 === 5 && f1 === f0]);
    outer.close();
    inner0.close();
    ctl.close();
    await rt.idle();
    const st = rt.stats().timers;
    log({ cpu: main, context: 'task', what: `teardown: bpf_hrtimer objects allocated ${st.allocated}, freed ${st.freed}` });
    checks.push(['every timer object freed', st.live === 0]);
    const splats = rt.splats();
    checks.push(['no splat', splats.length === 0]);
    return verdictOf(
      'the map owns its timers: uref release cancels them and drops their program references (no cycle keeps the program); inner-map timers die with the inner map',
      checks,
      `runs ${r1} / +${r2 - r1} after unload / 0 after close; program refs ${ref1} -> ${ref2}; inner ${i1} then ${f1 - f0}; ${splats.length} splat(s)`,
    );
  },
};

export const SEED003_SCENARIOS: readonly Scenario[] = [timerRaces, timerUref];
