// The bpf_timer helpers one by one (reference §6.2): return values and errno, where and in which
// context callbacks run, program references, map ownership (uref release), the NMI answer of the
// modelled era, the verifier's refusals, bpf_timer_cancel_async (timer_async_cancel) and the real
// clock. Virtual clock unless stated; a leak check after every test.
import { describe, it, expect, beforeAll, afterAll, beforeEach, afterEach } from 'vitest';
import { Runtime, type Program } from '../../src/runtime/runtime.js';
import type { BpfMap, MapInMapHandle } from '../../src/maps/bpf_map.js';
import { BPF_F_NO_PREALLOC, type MapSpec } from '../../src/maps/map_ops.js';
import { EBUSY, EINVAL, EPERM, EDEADLK, EOPNOTSUPP } from '../../src/errno.js';
import { BPF_F_TIMER_ABS, BPF_F_TIMER_CPU_PIN } from '../../src/timers/bpf_timer.js';
import { fixture } from '../helpers.js';
import { u32, rdU32, rdI32, rdU64, warmBaseline, expectNoLeak, newSplats, waitFor, errCode, type MemBaseline } from './timer_helpers.js';

const V = { count: 0, timer: 8, cpu: 24, ctx: 28, key: 32, arg: 36, ret: 40, done: 44 } as const;
const SOFTIRQ_MASK = 0b11; // task + softirq levels active
const arraySpec: MapSpec = { type: 'array', name: 'tarr', keySize: 4, valueSize: 48, maxEntries: 4, fields: [{ type: 'bpf_timer', offset: 8 }] };
const hashSpec = (flags = 0): MapSpec => ({ type: 'hash', name: 'thash', keySize: 4, valueSize: 48, maxEntries: 16, flags, fields: [{ type: 'bpf_timer', offset: 8 }] });

let rt: Runtime;
let base: MemBaseline;
const maps: BpfMap[] = [];
const progs: Program[] = [];

beforeAll(async () => { rt = await Runtime.start({ cpus: 2, clock: 'virtual', memoryBytes: 64 << 20 }); });
afterAll(async () => { await rt.stop(); });
beforeEach(async () => { base = await warmBaseline(rt); });
afterEach(async () => {
  for (const p of progs.splice(0)) await p.unload();
  for (const m of maps.splice(0)) if (!m.closed) await m.close();
  expect(newSplats(rt, base)).toEqual([]);
  await expectNoLeak(rt, base);
});

// the overloads of rt.createMap: an outer map's update and delete return promises
function mk(spec: MapSpec & { readonly type: 'hash_of_maps' | 'array_of_maps' }): MapInMapHandle;
function mk(spec: MapSpec): BpfMap;
function mk(spec: MapSpec): BpfMap { const m = rt.createMap(spec); maps.push(m); return m; }
async function ops(m: BpfMap): Promise<(cpu: number, args: Record<string, unknown>) => Promise<number>> {
  const p = await rt.loadProgram(fixture('timer_ops.mjs'), { maps: { m } });
  progs.push(p);
  return async (cpu, args) => (await p.testRun({ cpu, args })).retval;
}

describe('bpf_timer helpers: return values', () => {
  for (const [label, spec] of [['array', arraySpec], ['hash', hashSpec()], ['hash NO_PREALLOC', hashSpec(BPF_F_NO_PREALLOC)]] as const) {
    it(`${label}: init / set_callback / start / cancel errno`, async () => {
      const m = mk(spec);
      const run = await ops(m);
      if (spec.type === 'hash') expect(await run(0, { op: 'cancel', key: 1 })).toBe(-2); // no element
      expect(await run(0, { op: 'init', key: 1, flags: 3 })).toBe(-EINVAL);       // bad clock id
      expect(await run(0, { op: 'init', key: 1, flags: 16 })).toBe(-EINVAL);      // flags >= MAX_CLOCKS
      expect(await run(0, { op: 'cancel', key: 1 })).toBe(-EINVAL);               // not initialised
      expect(await run(0, { op: 'set_cb', key: 1 })).toBe(-EINVAL);
      expect(await run(0, { op: 'start', key: 1 })).toBe(-EINVAL);
      expect(await run(0, { op: 'init', key: 1 })).toBe(0);
      expect(await run(0, { op: 'init', key: 1 })).toBe(-EBUSY);                  // already initialised
      expect(await run(0, { op: 'start', key: 1, ns: 1000 })).toBe(-EINVAL);      // no callback yet
      expect(await run(0, { op: 'set_cb', key: 1 })).toBe(0);
      expect(await run(0, { op: 'start', key: 1, ns: 1000, flags: 4 })).toBe(-EINVAL); // unknown flag
      expect(await run(0, { op: 'start', key: 1, ns: 1000 })).toBe(0);
      expect(await run(0, { op: 'cancel', key: 1 })).toBe(1);                     // was queued
      expect(await run(0, { op: 'cancel', key: 1 })).toBe(0);                     // was not
      expect(await run(0, { op: 'start', key: 1, ns: 1000 })).toBe(-EINVAL);      // cancel dropped the callback
      await rt.clock.advance(10_000);
      expect(rdU64(m.lookup(u32(1)), V.count)).toBe(0);
    });
  }

  it('the callback runs once, in softirq on the arming CPU, with (map, key, value)', async () => {
    const a = mk(arraySpec);
    const h = mk(hashSpec());
    const runA = await ops(a);
    const runH = await ops(h);
    expect(await runA(1, { op: 'arm', key: 2, ns: 5000 })).toBe(0);
    expect(await runH(0, { op: 'arm', key: 7, ns: 5000 })).toBe(0);
    await rt.clock.advance(4999);
    expect(rdU64(a.lookup(u32(2)), V.count)).toBe(0);
    await rt.clock.advance(1);
    for (const [m, k, cpu] of [[a, 2, 1], [h, 7, 0]] as const) {
      const v = m.lookup(u32(k));
      expect(rdU64(v, V.count)).toBe(1);
      expect(rdU32(v, V.cpu)).toBe(cpu);
      expect(rdU32(v, V.ctx)).toBe(SOFTIRQ_MASK);
      expect(rdU32(v, V.key)).toBe(k);   // array: the computed index; hash: the element's key
    }
    await rt.clock.advance(1_000_000);
    expect(rdU64(a.lookup(u32(2)), V.count)).toBe(1); // NORESTART
  });

  it('timer_crash: user copies never carry the timer; a syscall update of 0xdeadcaf3 over an armed array timer frees it', async () => {
    const a = mk(arraySpec);
    const run = await ops(a);
    expect(await run(0, { op: 'arm', key: 0, ns: 1000 })).toBe(0);
    const v = a.lookup(u32(0))!;
    expect(v.subarray(V.timer, V.timer + 16).every((b) => b === 0)).toBe(true); // the copy hides the pointer
    const fired = (): number => rt.stats().timers.fired.reduce((x, y) => x + y, 0);
    const before = fired();
    const junk = new Uint8Array(48);
    for (let o = 0; o < 48; o += 4) new DataView(junk.buffer).setUint32(o, 0xdeadcaf3, true);
    a.update(u32(0), junk);
    expect(await run(0, { op: 'start', key: 0, ns: 1000 })).toBe(-EINVAL); // freed: "not initialised"
    expect(await run(0, { op: 'init', key: 0 })).toBe(0);                   // and usable again
    await rt.clock.advance(10_000);
    expect(fired()).toBe(before);                                            // the armed timer never fired
    const after = a.lookup(u32(0))!;
    expect(rdU32(after, V.cpu)).toBe(0xdeadcaf3);                            // plain data was written
    expect(after.subarray(V.timer, V.timer + 16).every((b) => b === 0)).toBe(true);
  });

  it('BPF_F_TIMER_ABS fires at the absolute time; BPF_F_TIMER_CPU_PIN on the arming CPU', async () => {
    const a = mk(arraySpec);
    const run = await ops(a);
    const now = rt.clock.now();
    expect(await run(1, { op: 'arm', key: 0, ns: now + 3000, startFlags: BPF_F_TIMER_ABS })).toBe(0);
    expect(await run(1, { op: 'arm', key: 1, ns: 3000, startFlags: BPF_F_TIMER_CPU_PIN })).toBe(0);
    await rt.clock.advance(2999);
    expect(rdU64(a.lookup(u32(0)), V.count)).toBe(0);
    await rt.clock.advance(1);
    expect(rdU64(a.lookup(u32(0)), V.count)).toBe(1);
    expect(rdU32(a.lookup(u32(1)), V.cpu)).toBe(1);
  });

  it('self cancel from the callback is -EDEADLK; cancel_async on itself is -1 (running); self delete then start is -EINVAL', async () => {
    const h = mk(hashSpec());
    const run = await ops(h);
    expect(await run(0, { op: 'arm', key: 1, cb: 'self_cancel', ns: 100 })).toBe(0);
    expect(await run(0, { op: 'arm', key: 2, cb: 'self_cancel_async', ns: 100 })).toBe(0);
    expect(await run(1, { op: 'arm', key: 3, cb: 'self_delete', ns: 100 })).toBe(0);
    const v3 = h.lookup(u32(3));
    expect(v3).toBeDefined();
    await rt.clock.advance(100);
    expect(rdI32(h.lookup(u32(1)), V.ret)).toBe(-EDEADLK);
    expect(rdI32(h.lookup(u32(2)), V.ret)).toBe(-1);
    expect(h.lookup(u32(3))).toBeUndefined(); // deleted itself, no deadlock
    expect(rt.stats().timers.deferred).toBeGreaterThan(0); // its free waited for the callback to end
  });

  for (const [label, spec] of [['hash', hashSpec()], ['hash NO_PREALLOC', hashSpec(BPF_F_NO_PREALLOC)], ['lru_hash', { ...hashSpec(), type: 'lru_hash' } as MapSpec]] as const) {
    it(`${label}: bpf_timer_init on an element deleted after the lookup is -EINVAL (nothing published into freed memory)`, async () => {
      const m = mk(spec);
      const run = await ops(m);
      const live0 = rt.stats().timers.allocated;
      for (let k = 0; k < 8; k++) {
        expect(await run(k & 1, { op: 'init', key: k })).toBe(0);
        expect(await run(k & 1, { op: 'stale_init', key: k })).toBe(-EINVAL);
      }
      // the keys come back (elements reused): their timers can be set up again
      for (let k = 0; k < 8; k++) expect(await run(0, { op: 'arm', key: k, ns: 1000 })).toBe(0);
      await rt.clock.advance(1000);
      expect(rt.stats().timers.allocated - live0).toBe(16);
    });
  }

  it('timer_async_cancel: cancel_async right after start: 1, and the callback never runs', async () => {
    const a = mk(arraySpec);
    const run = await ops(a);
    expect(await run(0, { op: 'arm', key: 0, ns: 100_000 })).toBe(0);
    expect(await run(0, { op: 'cancel_async', key: 0 })).toBe(1);
    expect(await run(0, { op: 'cancel_async', key: 0 })).toBe(0);
    await rt.clock.advance(500_000);
    expect(rdU64(a.lookup(u32(0)), V.count)).toBe(0);
    expect(await run(0, { op: 'start', key: 0, ns: 1000 })).toBe(0); // the callback is still set
    await rt.clock.advance(1000);
    expect(rdU64(a.lookup(u32(0)), V.count)).toBe(1);
  });

  it('a timer re-armed by its callback fires once per advance (no loop at "now")', async () => {
    const a = mk(arraySpec);
    const run = await ops(a);
    expect(await run(0, { op: 'arm', key: 0, ns: 1000, arg: 5 })).toBe(0);
    for (let i = 1; i <= 8; i++) {
      await rt.clock.advance(1000);
      expect(rdU64(a.lookup(u32(0)), V.count)).toBe(Math.min(i, 6));
    }
  });
});

describe('ownership: the map owns its timers', () => {
  it('m.close() (last user reference) cancels and frees every timer and drops the program references', async () => {
    const h = mk(hashSpec());
    const a = mk(arraySpec);
    const runH = await ops(h);
    const runA = await ops(a);
    const [pH, pA] = progs;
    const fired = (): number => rt.stats().timers.fired.reduce((x, y) => x + y, 0);
    const fired0 = fired();
    for (let k = 0; k < 8; k++) expect(await runH(k & 1, { op: 'arm', key: k, ns: 10_000 })).toBe(0);
    for (let k = 0; k < 4; k++) expect(await runA(k & 1, { op: 'arm', key: k, ns: 10_000 })).toBe(0);
    expect(pH!.refcnt()).toBe(1 + 8); // the user + one per timer whose callback is this program's
    expect(rt.stats().timers.queued.reduce((x, y) => x + y, 0)).toBe(12);
    await h.close();
    expect(pH!.refcnt()).toBe(1);
    expect(rt.stats().timers.queued.reduce((x, y) => x + y, 0)).toBe(4);
    // the program still holds the closed map: its timers can no longer be set up
    expect(await runH(0, { op: 'init', key: 20 })).toBe(-EPERM);
    expect(await runH(0, { op: 'set_cb', key: 1 })).toBe(-EINVAL); // freed at release
    await a.close();
    expect(pA!.refcnt()).toBe(1);
    await rt.clock.advance(20_000);
    expect(fired()).toBe(fired0); // none of the released timers fired
  });

  it('a program kept only by its timers is freed when the map releases them (no cycle keeps it)', async () => {
    const a = mk(arraySpec);
    const run = await ops(a);
    const p = progs.pop()!;
    expect(await run(0, { op: 'arm', key: 0, ns: 1_000_000 })).toBe(0);
    await p.unload();
    expect(p.refcnt()).toBe(1);   // the timer's reference
    await rt.clock.advance(1_000_000);
    expect(rdU64(a.lookup(u32(0)), V.count)).toBe(1); // the callback still runs: its program is alive
    await a.close();
    expect(p.refcnt()).toBe(0);
    expect(await waitFor(() => p.released)).toBe(true);
  });
});

describe('contexts the modelled era refuses', () => {
  it('NMI: every helper returns -EOPNOTSUPP', async () => {
    const a = mk(arraySpec);
    const p = await rt.loadProgram(fixture('timer_ops.mjs'), { maps: { m: a } });
    progs.push(p);
    expect((await p.testRun({ cpu: 0, context: 'nmi', args: { op: 'all_eopnotsupp', key: 0 } })).retval).toBe(5);
    expect((await p.testRun({ cpu: 0, context: 'hardirq', args: { op: 'init', key: 0 } })).retval).toBe(0);
    expect(EOPNOTSUPP).toBe(95);
  });

  it('timer_mim_reject: bpf_timer_init with another inner map than the timer\'s is refused (the program aborts)', async () => {
    const spec: MapSpec = { type: 'hash', name: 'inner', keySize: 4, valueSize: 24, maxEntries: 8, fields: [{ type: 'bpf_timer', offset: 8 }] };
    const in0 = mk(spec);
    const in1 = mk(spec);
    const outer = mk({ type: 'array_of_maps', name: 'outer', keySize: 4, valueSize: 4, maxEntries: 2, innerMap: in0 });
    await outer.update(u32(0), in0);
    await outer.update(u32(1), in1);
    const ok = await rt.loadProgram(fixture('timer_mim_reject.mjs'), { maps: { outer } });
    progs.push(ok);
    expect((await ok.testRun({ cpu: 0, args: { wrong: false } })).retval).toBe(0);
    const bad = await rt.loadProgram(fixture('timer_mim_reject.mjs'), { maps: { outer } });
    progs.push(bad);
    await bad.testRun({ cpu: 0, args: { wrong: true } });
    expect(bad.stats().aborted).toBe(true);
    const s = newSplats(rt, base);
    expect(s).toHaveLength(1);
    expect(s[0]).toMatch(/PROG_ABORT.*map_uid doesn't match/);
    base = { ...base, splats: rt.splatCount() }; // the splat this test provoked
    await outer.delete(u32(0));
    await outer.delete(u32(1));
  });

  it('tracing programs may not use maps with timers (classic verifier); maps without are fine', async () => {
    const a = mk(arraySpec);
    const err = await rt.loadProgram(fixture('timer_tracing.mjs'), { maps: { m: a } }).then(() => null, (e: unknown) => e);
    expect(String(err)).toMatch(/EINVAL.*tracing progs cannot use bpf_timer yet/);
    const plain = mk({ type: 'array', keySize: 4, valueSize: 48, maxEntries: 1 });
    const p = await rt.loadProgram(fixture('timer_tracing.mjs'), { maps: { m: plain } });
    progs.push(p);
  });

  it('map specs: bpf_timer placement and map types (EINVAL / E2BIG for a second lock or timer, as btf_get_field_type / EOPNOTSUPP, naming the field)', () => {
    const bad: [MapSpec, string, RegExp][] = [
      [{ type: 'array', keySize: 4, valueSize: 16, maxEntries: 1, fields: [{ type: 'bpf_timer', offset: 4 }] }, 'EINVAL', /fields\[0\] \(bpf_timer\).*8-byte aligned/],
      [{ type: 'array', keySize: 4, valueSize: 16, maxEntries: 1, fields: [{ type: 'bpf_timer', offset: 8 }] }, 'EINVAL', /does not fit/],
      [{ type: 'array', keySize: 4, valueSize: 32, maxEntries: 1, fields: [{ type: 'bpf_timer', offset: 0 }, { type: 'bpf_timer', offset: 16 }] }, 'E2BIG', /at most one bpf_timer/],
      [{ type: 'hash', keySize: 4, valueSize: 32, maxEntries: 1, fields: [{ type: 'bpf_timer', offset: 8 }, { type: 'bpf_spin_lock', offset: 12 }] }, 'EINVAL', /overlaps/],
      [{ type: 'hash', keySize: 4, valueSize: 32, maxEntries: 1, fields: [{ type: 'bpf_spin_lock', offset: 0 }], spinLockOffset: 4 }, 'E2BIG', /at most one bpf_spin_lock/],
      [{ type: 'hash', keySize: 4, valueSize: 32, maxEntries: 1, fields: [{ type: 'kptr' as 'bpf_timer', offset: 0 }] }, 'EINVAL', /fields\[0\]\.type/],
      [{ type: 'percpu_hash', keySize: 4, valueSize: 16, maxEntries: 1, fields: [{ type: 'bpf_timer', offset: 0 }] }, 'EOPNOTSUPP', /bpf_timer/],
      [{ type: 'percpu_array', keySize: 4, valueSize: 16, maxEntries: 1, fields: [{ type: 'bpf_timer', offset: 0 }] }, 'EOPNOTSUPP', /bpf_timer/],
      [{ type: 'lru_percpu_hash', keySize: 4, valueSize: 16, maxEntries: 4, fields: [{ type: 'bpf_timer', offset: 0 }] }, 'EOPNOTSUPP', /bpf_timer/],
      [{ type: 'lru_hash', keySize: 4, valueSize: 16, maxEntries: 4, fields: [{ type: 'bpf_spin_lock', offset: 0 }] }, 'EOPNOTSUPP', /bpf_spin_lock/],
      [{ type: 'array', keySize: 4, valueSize: 16, maxEntries: 1, flags: 1 << 10, fields: [{ type: 'bpf_timer', offset: 0 }] }, 'EINVAL', /MMAPABLE/],
    ];
    for (const [spec, code, re] of bad) {
      let msg = '';
      expect(errCode(() => { try { rt.createMap(spec); } catch (e) { msg = String(e); throw e; } }), JSON.stringify(spec)).toBe(code);
      expect(msg).toMatch(re);
    }
    // accepted: timer and lock together, in hash, lru_hash, array
    for (const type of ['hash', 'array'] as const) {
      mk({ type, keySize: 4, valueSize: 32, maxEntries: 2, fields: [{ type: 'bpf_spin_lock', offset: 0 }, { type: 'bpf_timer', offset: 8 }] });
    }
    mk({ type: 'lru_hash', keySize: 4, valueSize: 16, maxEntries: 4, fields: [{ type: 'bpf_timer', offset: 0 }] });
  });
});

describe('real clock', () => {
  it('a timer armed 1 ms ahead fires on its CPU within a bounded wait', async () => {
    // the virtual runtime cannot test this: boot a small real-clock one
    await rt.stop();
    rt = await Runtime.start({ cpus: 2, memoryBytes: 64 << 20 });
    base = await warmBaseline(rt);
    const a = mk(arraySpec);
    const run = await ops(a);
    expect(await run(1, { op: 'arm', key: 3, ns: 1_000_000, arg: 2 })).toBe(0); // fires 3 times, 1 ms then 1 us apart
    expect(await waitFor(() => rdU64(a.lookup(u32(3)), V.count) === 3)).toBe(true);
    expect(rdU32(a.lookup(u32(3)), V.cpu)).toBe(1);
    expect(rdU32(a.lookup(u32(3)), V.ctx)).toBe(SOFTIRQ_MASK);
  });
});
