// The races of reference §6.4 on real parallel CPUs: timer_stress (8 CPUs x 10,000 runs of
// update -> init -> set_callback -> start -> cancel / cancel_async, with perf_event NMIs landing
// everywhere), timer_lockup (two callbacks cancelling each other), free_timer (overwrites freeing
// running timers), uref release racing bpf_timer_init, a replace under the bucket lock never
// waiting for a running callback while bpf_timer_cancel does wait, and timer_mim (timers in an
// inner map die with it). Every wait is bounded; a leak check follows every test.
import { describe, it, expect, beforeAll, afterAll, beforeEach, afterEach } from 'vitest';
import { Runtime, type Program } from '../../src/runtime/runtime.js';
import type { BpfMap, MapInMapHandle } from '../../src/maps/bpf_map.js';
import type { MapSpec } from '../../src/maps/map_ops.js';
import { EDEADLK, EINVAL, EPERM } from '../../src/errno.js';
import { fixture } from '../helpers.js';
import { u32, rdU32, rdI32, rdU64, warmBaseline, expectNoLeak, newSplats, waitFor, type MemBaseline } from './timer_helpers.js';

let rt: Runtime;
let base: MemBaseline;
const maps: BpfMap[] = [];
const progs: Program[] = [];
// the overloads of rt.createMap: an outer map's update and delete return promises
function mk(spec: MapSpec & { readonly type: 'hash_of_maps' | 'array_of_maps' }): MapInMapHandle;
function mk(spec: MapSpec): BpfMap;
function mk(spec: MapSpec): BpfMap { const m = rt.createMap(spec); maps.push(m); return m; }
async function load(name: string, m: Record<string, BpfMap>): Promise<Program> {
  const p = await rt.loadProgram(fixture(name), { maps: m });
  progs.push(p);
  return p;
}
async function cleanup(): Promise<void> {
  for (const p of progs.splice(0)) await p.unload();
  for (const m of maps.splice(0)) if (!m.closed) await m.close();
  expect(newSplats(rt, base)).toEqual([]);
  await expectNoLeak(rt, base);
}

describe('timer_stress: 8 CPUs x 10,000 races, NMIs landing everywhere', () => {
  // 8 simulated CPUs on a 2-core machine: a CPU thread can lose its core for a long time while it
  // holds the one timer's lock every CPU hammers (the lock word is not fair, the kernel's qspinlock
  // is), so the lock timeout is raised from 250 ms; a real deadlock still ends in a splat.
  beforeAll(async () => { rt = await Runtime.start({ cpus: 8, memoryBytes: 64 << 20, seed: 3, lockTimeoutMs: 10_000 }); });
  afterAll(async () => { await rt.stop(); });
  beforeEach(async () => { base = await warmBaseline(rt); });
  afterEach(cleanup);

  for (const async of [false, true]) {
    it(`update -> init -> set_callback -> start -> ${async ? 'cancel_async' : 'cancel'}: all 0 (or tolerated -EBUSY)`, async () => {
      const race = mk({ type: 'array', name: 'race_array', keySize: 4, valueSize: 16, maxEntries: 1, fields: [{ type: 'bpf_timer', offset: 0 }] });
      const counts = mk({ type: 'array', name: 'counts', keySize: 4, valueSize: 8, maxEntries: 8 });
      const p = await load('timer_race.mjs', { race_array: race });
      const nmi = await load('timer_nmi_update.mjs', { counts });
      const link = await nmi.attach({ kind: 'perf_event', cpus: 'all', frequencyHz: 2000 });
      const r = await rt.runWorkload({ cpus: 'all', program: p, iterations: 10_000, args: { async } });
      await link.detach();
      expect(r.errors).toEqual({});
      expect(r.ops).toBe(80_000);
      expect(r.perCpu.every((c) => c.ok === 10_000)).toBe(true);
      const st = rt.stats();
      expect(st.timers.allocated).toBeGreaterThan(0);
      expect(st.cpus.reduce((n, c) => n + c.nmi, 0)).toBeGreaterThan(0); // NMIs did land
    });
  }
});

describe('races on 2 CPUs (real clock)', () => {
  beforeAll(async () => { rt = await Runtime.start({ cpus: 2, memoryBytes: 64 << 20 }); });
  afterAll(async () => { await rt.stop(); });
  beforeEach(async () => { base = await warmBaseline(rt); });
  afterEach(cleanup);

  it('timer_lockup: two callbacks cancelling each other: 0 or -EDEADLK, never a hang; overlapping ones: at least one -EDEADLK', async () => {
    const pair = mk({ type: 'array', name: 'pair', keySize: 4, valueSize: 32, maxEntries: 2, fields: [{ type: 'bpf_timer', offset: 0 }] });
    const p = await load('timer_pair.mjs', { pair });
    const seen = new Set<number>();
    const rd = (k: number, off: number): number => rdI32(pair.lookup(u32(k)), off);
    for (let round = 0; round < 20; round++) {
      // the previous round's callbacks and deferred frees are over before the values are reset
      await rt.idle();
      // a user update resets both values (and frees both timers): each round starts afresh
      pair.update(u32(0), new Uint8Array(32));
      pair.update(u32(1), new Uint8Array(32));
      const meet = round % 2 === 0;
      const [r0, r1] = await Promise.all([p.testRun({ cpu: 0, args: { key: 0, meet } }), p.testRun({ cpu: 1, args: { key: 1, meet } })]);
      const rets = [r0.retval, r1.retval];
      // without the rendezvous the first callback (armed 1 ns ahead) may cancel the other timer
      // between the other run's set_callback and its start: bpf_timer_cancel drops the callback
      // (drop_prog_refcnt), so that start is -EINVAL, as the kernel's is
      for (const k of [0, 1]) if (rets[k] !== 0) { expect(meet).toBe(false); expect(rets[k]).toBe(-EINVAL); }
      const done = (): number => rd(0, 28) + rd(1, 28);
      // overlapping callbacks both finish (the rendezvous waits at most 3 s); otherwise the
      // first may cancel the second before it runs
      expect(await waitFor(() => done() >= (meet ? 2 : 1), 5000)).toBe(true);
      if (!meet) await waitFor(() => done() >= 2, 20);
      for (const k of [0, 1]) {
        // a timer whose start was refused never fired; the callback that cancelled it did
        if (rets[k] === -EINVAL) expect([rd(k, 28), rd(1 - k, 28)]).toEqual([0, 1]);
      }
      for (const k of [0, 1]) {
        if (rd(k, 28) === 0) continue;
        const e = rd(k, 20);
        expect([0, 1, -EDEADLK]).toContain(e);
        seen.add(e);
      }
      if (meet) expect(rd(0, 20) === -EDEADLK || rd(1, 20) === -EDEADLK).toBe(true);
    }
    expect(seen.has(-EDEADLK)).toBe(true);
  });

  it('free_timer: 10 rounds of overwrites on CPU0 freeing timers that run on CPU1', async () => {
    const map = mk({ type: 'hash', name: 'map', keySize: 4, valueSize: 16, maxEntries: 8, fields: [{ type: 'bpf_timer', offset: 0 }] });
    for (let k = 0; k < 8; k++) map.update(u32(k), new Uint8Array(16));
    const p = await load('timer_free.mjs', { map });
    const deferred0 = rt.stats().timers.deferred;
    for (let round = 0; round < 10; round++) {
      const [starts, overwrites] = await Promise.all([
        rt.runWorkload({ cpus: [1], program: p, iterations: 20, args: { op: 'start' } }),
        rt.runWorkload({ cpus: [0], program: p, iterations: 400, args: { op: 'overwrite' } }),
      ]);
      expect(starts.errors).toEqual({});
      expect(overwrites.errors).toEqual({});
      await rt.idle();
    }
    // some overwrite met its timer's callback running on the other CPU: the free was deferred
    expect(rt.stats().timers.deferred).toBeGreaterThan(deferred0);
    expect(map.check()).toEqual([]);
  });

  it('uref release racing bpf_timer_init: every init is 0, -EBUSY, -EINVAL (element replaced) or -EPERM, and no timer survives the release', async () => {
    const h = mk({ type: 'hash', name: 'h', keySize: 4, valueSize: 48, maxEntries: 4, fields: [{ type: 'bpf_timer', offset: 8 }] });
    const p = await load('timer_ops.mjs', { m: h });
    const work = rt.runWorkload({ cpus: 'all', program: p, seconds: 0.3, args: { op: 'reinit', key: 1 } });
    await new Promise((r) => setTimeout(r, 50));
    await h.close(); // map_release_uref while both CPUs init
    const r = await work;
    // -EBUSY: the other CPU initialised the timer between this CPU's update and init; -EINVAL:
    // the other CPU's update replaced the element this CPU had just looked up (its field retired)
    expect(Object.keys(r.errors).filter((e) => e !== 'EPERM' && e !== 'EBUSY' && e !== 'EINVAL')).toEqual([]);
    expect(r.errors['EPERM'] ?? 0).toBeGreaterThan(0);
    await rt.idle();
    expect(rt.stats().timers.live).toBe(0);
    expect(EPERM).toBe(1);
  });

  it('a replace under the bucket lock never waits for the running callback; bpf_timer_cancel does', async () => {
    const h = mk({ type: 'hash', name: 'h', keySize: 4, valueSize: 32, maxEntries: 4, fields: [{ type: 'bpf_timer', offset: 8 }] });
    const ctl = mk({ type: 'array', name: 'ctl', keySize: 4, valueSize: 4, maxEntries: 4 });
    const p = await load('timer_hold.mjs', { m: h, ctl });
    const run = (cpu: number, args: Record<string, unknown>): Promise<number> => p.testRun({ cpu, args }).then((r) => r.retval);
    const release = (k: number): void => { ctl.update(u32(k), u32(1)); };
    // a callback on CPU1 that holds its CPU until released (armed 5 ms ahead: the arming run returns first)
    expect(await run(1, { op: 'arm', key: 1, ns: 5_000_000 })).toBe(0);
    expect(await waitFor(() => rdU64(h.lookup(u32(1)), 0) === 1)).toBe(true); // it runs
    const pending0 = rt.stats().timers.deferredPending;
    expect(await run(0, { op: 'update', key: 1 })).toBe(0);   // prealloc replace: frees the timer under the bucket lock
    expect(rt.stats().timers.deferredPending).toBe(pending0 + 1); // returned while the callback still runs: deferred
    release(1);
    await rt.idle();                                             // the delete work finished the free
    expect(rt.stats().timers.deferredPending).toBe(0);
    // bpf_timer_cancel from another CPU waits for the running callback
    expect(await run(1, { op: 'arm', key: 2, ns: 5_000_000 })).toBe(0);
    expect(await waitFor(() => rdU64(h.lookup(u32(2)), 0) === 1)).toBe(true);
    let returned = false;
    const cancel = run(0, { op: 'cancel', key: 2 }).then((r) => { returned = true; return r; });
    await new Promise((r) => setTimeout(r, 30));
    expect(returned).toBe(false);                                // still waiting for the callback
    expect(rdU32(h.lookup(u32(2)), 24)).toBe(0);
    release(2);
    expect(await cancel).toBe(0);
    expect(rdU32(h.lookup(u32(2)), 24)).toBe(1);                 // the callback had finished when cancel returned
  });

  it('timer_mim: callbacks in an inner hash keep re-arming; closing the inner map and deleting it from the outer map stops them', async () => {
    const innerSpec: MapSpec = { type: 'hash', name: 'inner', keySize: 4, valueSize: 24, maxEntries: 1024, fields: [{ type: 'bpf_timer', offset: 8 }] };
    const in0 = rt.createMap(innerSpec);
    const in1 = rt.createMap(innerSpec);
    const outer = mk({ type: 'array_of_maps', name: 'outer_arr', keySize: 4, valueSize: 4, maxEntries: 2, innerMap: in0 });
    const bss = mk({ type: 'array', name: 'bss', keySize: 4, valueSize: 8, maxEntries: 4 });
    await outer.update(u32(0), in0);
    await outer.update(u32(1), in1);
    maps.push(in0);
    const p = await load('timer_mim.mjs', { outer_arr: outer, bss });
    expect((await p.testRun({ cpu: 0 })).retval).toBe(0);
    const cnt = (): number => rdU64(bss.lookup(u32(2)));
    expect(await waitFor(() => cnt() > 20)).toBe(true);
    const c1 = cnt();
    expect(await waitFor(() => cnt() > c1)).toBe(true); // still growing
    await in1.close();          // the inner map's last user reference: its timers are cancelled
    await outer.delete(u32(1));
    const c2 = cnt();
    await new Promise((r) => setTimeout(r, 20));
    expect(cnt()).toBe(c2);     // stopped
    expect(rdU64(bss.lookup(u32(0)))).toBe(0);     // err
    expect(rdU64(bss.lookup(u32(1)))).toBe(1 | 2); // ok
  });
});
