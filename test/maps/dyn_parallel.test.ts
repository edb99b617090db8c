// BPF_F_NO_PREALLOC hash maps under real parallelism (the Runtime's CPU workers), for both
// dynAlloc modes (bpf_mem_alloc, legacy kmalloc + call_rcu):
//  - test_map_parallel (test_maps.c): 4 CPUs, 32768 entries, NOEXIST then EXIST, exactly 32768
//    keys iterated, every value == key, parallel delete-all empties the map;
//  - mixed random lookup/update/delete with checksummed values on 4 and 8 CPUs (8: oversubscribed
//    on 2 cores), hash and per-CPU hash: no torn read, no use-after-free splat, check() clean;
//  - no leak: churn on 4 CPUs, unload, close, rcu_barrier: slab accounting (memStats().bytesInUse
//    and the owners) exactly back where it started;
//  - random NMIs running a perf_event program on the same bpf_mem_alloc map during mixed ops, with
//    the exact set of return codes the NMI program saw (a histogram map: nmi_hist.ts);
//  - PREEMPT_RT: a tracing program using a legacy dynamic map is refused at load (EINVAL), a
//    non-tracing one updates it from task context without a splat (sleeping bucket lock, kmalloc
//    under it); with bpf_mem_alloc tracing programs may use dynamic maps.
// Worker-side programs are test/fixtures/{dyn,map}_*.mjs (compiled build: `npx tsc -p .` first).
import { describe, it, expect, afterEach } from 'vitest';
import { Runtime } from '../../src/runtime/runtime.js';
import { BPF_NOEXIST, BPF_F_NO_PREALLOC } from '../../src/maps/map_ops.js';
import { BpfError } from '../../src/errno.js';
import type { BpfMap } from '../../src/maps/bpf_map.js';
import type { BpfHtab } from '../../src/maps/hashtab.js';
import { memStats, ownerBytes, OWNER_KERNEL } from '../../src/mm/owners.js';
import { formatSplat } from '../../src/debug/splat.js';
import { fixture, expectNoSplats } from '../helpers.js';
import { u32, readU32 } from './boot.js';
import { DYN_MODES, ownersOf } from './dyn_util.js';
import { createNmiHist, expectNmiReturns } from './nmi_hist.js';

let rt: Runtime | undefined;
afterEach(async () => { await rt?.stop(); rt = undefined; });

/** The dynamic-map invariants: count == elements in buckets, check() clean. */
function dynCheck(m: BpfMap): void {
  const st = m.stats();
  expect(st.freeElements).toBe(-1);
  expect((m.impl as BpfHtab).alloc!.count()).toBe(st.elements);
  expect(m.check()).toEqual([]);
}

describe('test_map_parallel with BPF_F_NO_PREALLOC', () => {
  for (const mode of DYN_MODES) {
    it(`${mode}: 4 CPUs, 32768 entries: NOEXIST, EXIST, exact iteration, parallel delete-all`, async () => {
      const CPUS = 4;
      const MAP_SIZE = 32768;
      rt = await Runtime.start({ cpus: CPUS, memoryBytes: 128 << 20, seed: 7, dynAlloc: mode });
      const m = rt.createMap({ type: 'hash', name: 'par', keySize: 4, valueSize: 4, maxEntries: MAP_SIZE, flags: BPF_F_NO_PREALLOC });
      const prog = await rt.loadProgram(fixture('map_par_ops.mjs'), { maps: { m } });
      const per = MAP_SIZE / CPUS;
      for (let round = 0; round < 2; round++) {
        const ins = await rt.runWorkload({ cpus: 'all', program: prog, iterations: per, args: { op: 'noexist', ncpus: CPUS } });
        expect(ins.errors).toEqual({});
        expect(ins.ops).toBe(MAP_SIZE);
        const upd = await rt.runWorkload({ cpus: 'all', program: prog, iterations: per, args: { op: 'exist', ncpus: CPUS } });
        expect(upd.errors).toEqual({});
        let code = '';
        try { m.update(u32(0), u32(0), BPF_NOEXIST); } catch (e: unknown) { code = (e as BpfError).code; }
        expect(code).toBe('EEXIST');
        try { m.update(u32(MAP_SIZE), u32(0), BPF_NOEXIST); code = 'no error'; } catch (e: unknown) { code = (e as BpfError).code; }
        expect(code).toBe('E2BIG');
        let n = 0;
        for (const [k, v] of m.entries()) { expect(readU32(v)).toBe(readU32(k)); n++; }
        expect(n).toBe(MAP_SIZE);
        dynCheck(m);
        const del = await rt.runWorkload({ cpus: 'all', program: prog, iterations: per, args: { op: 'delete', ncpus: CPUS } });
        expect(del.errors).toEqual({});
        expect(m.getNextKey(null)).toBeUndefined();
        expect(m.stats().elements).toBe(0);
        dynCheck(m);
      }
      expectNoSplats(rt);
    }, 180_000);
  }
});

describe('mixed random ops with checksummed values, BPF_F_NO_PREALLOC', () => {
  const cases: { cpus: number; mode: (typeof DYN_MODES)[number]; type: 'hash' | 'percpu_hash'; bucketLock: 'map_locked' | 'rqspinlock' }[] = [];
  for (const mode of DYN_MODES) {
    for (const cpus of [4, 8]) cases.push({ cpus, mode, type: 'hash', bucketLock: 'map_locked' });
    cases.push({ cpus: 4, mode, type: 'percpu_hash', bucketLock: 'map_locked' });
    cases.push({ cpus: 4, mode, type: 'hash', bucketLock: 'rqspinlock' });
  }
  for (const c of cases) {
    it(`${c.mode}, ${c.type}, ${c.cpus} CPUs, ${c.bucketLock}: no torn read, no use-after-free, check() clean`, async () => {
      const seed = 11 + c.cpus;
      rt = await Runtime.start({ cpus: c.cpus, memoryBytes: 128 << 20, seed, dynAlloc: c.mode, bucketLock: c.bucketLock });
      const MAX = 512;
      const m = rt.createMap({ type: c.type, name: 'mixed', keySize: 4, valueSize: 16, maxEntries: MAX, flags: BPF_F_NO_PREALLOC });
      const prog = await rt.loadProgram(fixture('map_mixed.mjs'), { maps: { m } });
      const r = await rt.runWorkload({ cpus: 'all', program: prog, seconds: 1.5, args: { keys: 3 * MAX, lookupPct: 50, updatePct: 35, percpu: c.type === 'percpu_hash' } });
      const { E2BIG: full = 0, ENOENT: missing = 0, ...other } = r.errors;
      expect(other, `seed ${seed}`).toEqual({}); // EFAULT would be a torn read, ENOMEM a refill that did not keep up
      // every CPU took part (how many ops fit in the time depends on the machine's load)
      for (const c of r.perCpu) expect(c.iterations, `CPU ${c.cpu}`).toBeGreaterThan(0);
      expect(full + missing).toBeGreaterThan(0);
      dynCheck(m);
      if (c.type === 'hash') for (const [k, v] of m.entries()) expect(readU32(v)).toBe(readU32(k));
      expectNoSplats(rt);
    }, 120_000);
  }
});

describe('no leak: churn on 4 CPUs, close, rcu_barrier', () => {
  for (const mode of DYN_MODES) {
    it(`${mode}: slab accounting (bytes in use, every owner) returns exactly to where it started`, async () => {
      rt = await Runtime.start({ cpus: 4, memoryBytes: 128 << 20, seed: 5, dynAlloc: mode });
      const start = memStats().bytesInUse;
      const kernelStart = ownerBytes(OWNER_KERNEL);
      const maps = [
        rt.createMap({ type: 'hash', name: 'churn_h', keySize: 4, valueSize: 16, maxEntries: 512, flags: BPF_F_NO_PREALLOC }),
        rt.createMap({ type: 'percpu_hash', name: 'churn_p', keySize: 4, valueSize: 16, maxEntries: 512, flags: BPF_F_NO_PREALLOC }),
        // large enough for the percpu_counter
        rt.createMap({ type: 'hash', name: 'churn_big', keySize: 4, valueSize: 16, maxEntries: 4096, flags: BPF_F_NO_PREALLOC }),
      ];
      const owners = maps.map((m) => ownersOf(m.impl));
      for (const m of maps) {
        const percpu = m.info().type === 'percpu_hash';
        const prog = await rt.loadProgram(fixture('map_mixed.mjs'), { maps: { m } });
        const keys = 3 * m.info().maxEntries;
        const r = await rt.runWorkload({ cpus: 'all', program: prog, seconds: 0.6, args: { keys, lookupPct: 30, updatePct: 45, percpu } });
        const { E2BIG: _full = 0, ENOENT: _missing = 0, ...other } = r.errors;
        expect(other).toEqual({});
        expect(m.stats().elements).toBeGreaterThan(0);
        dynCheck(m);
        await prog.unload();
      }
      expect(owners.every((o) => ownerBytes(o.elems) > 0)).toBe(true);
      if (mode === 'kmalloc') {
        // the plain form: elements still waiting for their grace period are freed by the barrier
        for (const m of maps) void m.close();
        await rt.rcuBarrier();
      } else {
        // bpf_mem_alloc_destroy defers to its own rcu_barrier: await the close
        await Promise.all(maps.map((m) => m.close()));
        await rt.rcuBarrier();
      }
      expect(memStats().bytesInUse).toBe(start);
      expect(ownerBytes(OWNER_KERNEL)).toBe(kernelStart);
      for (const o of owners) { expect(ownerBytes(o.map)).toBe(0); expect(ownerBytes(o.elems)).toBe(0); }
      expectNoSplats(rt);
    }, 120_000);
  }
});

describe('NMIs on a bpf_mem_alloc map', () => {
  it('random NMIs running a perf_event program on the same map during mixed ops: the NMI program gets only 0, -EBUSY, -ENOMEM, -E2BIG (map full) or -ENOENT (another NMI deleted the key); no deadlock, no use-after-free', async () => {
    rt = await Runtime.start({ cpus: 4, memoryBytes: 128 << 20, seed: 33 });
    const m = rt.createMap({ type: 'hash', name: 'nmi', keySize: 4, valueSize: 16, maxEntries: 512, flags: BPF_F_NO_PREALLOC });
    const hist = createNmiHist(rt);
    const prog = await rt.loadProgram(fixture('map_mixed.mjs'), { maps: { m } });
    const nmi = await rt.loadProgram(fixture('map_nmi_hist.mjs'), { maps: { m, hist } });
    const inj = rt.inject({ kind: 'nmi', cpus: 'all', ratePerSec: 20000, program: nmi });
    const r = await rt.runWorkload({ cpus: 'all', program: prog, seconds: 1, args: { keys: 1536, lookupPct: 50, updatePct: 35, percpu: false } });
    inj.cancel();
    const { E2BIG: _full = 0, ENOENT: _missing = 0, ...other } = r.errors;
    expect(other).toEqual({});
    expect(inj.fired()).toBeGreaterThan(0);
    // Every return code of the NMI program, counted by the program itself. No -EDEADLK here: a
    // bpf_mem_alloc map takes no freelist head lock, so the AB-BA of the preallocated map
    // (parallel.test.ts) cannot happen.
    const h = await expectNmiReturns(hist, nmi, {
      update: ['ok', 'EBUSY', 'ENOMEM', 'E2BIG'],
      delete: ['ok', 'EBUSY', 'ENOENT'],
    });
    console.log(`NMI program return codes (bpf_mem_alloc hash): ${JSON.stringify(h)}`);
    await rt.synchronizeRcu();
    for (const k of m.keys()) if (readU32(k) >= 0x40000000) m.delete(k);
    dynCheck(m);
    expect(rt.splats().map(formatSplat)).toEqual([]); // no deadlock, no use_after_free, nothing else
  }, 120_000);
});

describe('PREEMPT_RT and dynamic maps (seed 000)', () => {
  it('kmalloc: a tracing program using a legacy dynamic map is refused (EINVAL); task-context updates raise no splat', async () => {
    rt = await Runtime.start({ cpus: 2, preemptRt: true, dynAlloc: 'kmalloc', memoryBytes: 64 << 20, seed: 3 });
    // room for every key of the workload: the syscall-side update below must find space
    const dyn = rt.createMap({ type: 'hash', name: 'dyn', keySize: 4, valueSize: 16, maxEntries: 1024, flags: BPF_F_NO_PREALLOC });
    const pre = rt.createMap({ type: 'hash', name: 'pre', keySize: 4, valueSize: 16, maxEntries: 256 });
    expect(dyn.usesSleepingBucketLock()).toBe(true);
    expect(pre.usesSleepingBucketLock()).toBe(false);
    for (const f of ['map_kprobe_update.mjs', 'map_perf_event_update.mjs']) {
      let code = '';
      try { await rt.loadProgram(fixture(f), { maps: { m: dyn } }); code = 'loaded'; } catch (e: unknown) { code = e instanceof BpfError ? e.code : String(e); }
      expect(code, f).toBe('EINVAL');
      const ok = await rt.loadProgram(fixture(f), { maps: { m: pre } });
      await ok.unload();
    }
    // a non-tracing program in task context: sleeping bucket lock, kmalloc under it, no splat
    const upd = await rt.loadProgram(fixture('map_update_key.mjs'), { maps: { m: dyn } });
    // keys outside the mixed workload's key space (its lookups judge every value's checksum)
    for (let cpu = 0; cpu < 2; cpu++) expect((await upd.testRun({ cpu, context: 'task', args: { key: 100_000 + cpu, value: 7, off: 0 } })).retval).toBe(0);
    const mix = await rt.loadProgram(fixture('map_mixed.mjs'), { maps: { m: dyn } });
    const r = await rt.runWorkload({ cpus: 'all', program: mix, seconds: 0.5, args: { keys: 768, lookupPct: 40, updatePct: 40, percpu: false } });
    const { E2BIG: _full = 0, ENOENT: _missing = 0, ...other } = r.errors;
    expect(other).toEqual({});
    dyn.update(u32(5), new Uint8Array(16)); // the syscall side on the housekeeping CPU
    dynCheck(dyn);
    expectNoSplats(rt);
  }, 60_000);

  it('bpf_mem_alloc: raw buckets; a tracing program may use the dynamic map; -ENOMEM possible, no splat', async () => {
    rt = await Runtime.start({ cpus: 2, preemptRt: true, memoryBytes: 64 << 20, seed: 4 });
    const dyn = rt.createMap({ type: 'hash', name: 'dyn', keySize: 4, valueSize: 16, maxEntries: 256, flags: BPF_F_NO_PREALLOC });
    expect(dyn.usesSleepingBucketLock()).toBe(false);
    const kp = await rt.loadProgram(fixture('map_kprobe_update.mjs'), { maps: { m: dyn } });
    // and uses it, even in NMI: an allocation from the per-CPU cache, or -ENOMEM when it is empty
    const nmiRet = (await kp.testRun({ cpu: 0, context: 'nmi' })).retval;
    expect([0, -12]).toContain(nmiRet);
    if (nmiRet === 0) {
      expect(readU32(dyn.lookup(u32(1))!)).toBe(2);
      dyn.delete(u32(1)); // key 1 is in the mixed workload's key space, whose lookups judge checksums
    }
    await kp.unload();
    const mix = await rt.loadProgram(fixture('map_mixed.mjs'), { maps: { m: dyn } });
    const r = await rt.runWorkload({ cpus: 'all', program: mix, seconds: 0.5, args: { keys: 768, lookupPct: 40, updatePct: 40, percpu: false } });
    const { E2BIG: _full = 0, ENOENT: _missing = 0, ENOMEM: _nomem = 0, ...other } = r.errors;
    expect(other).toEqual({});
    dynCheck(dyn);
    expectNoSplats(rt);
  }, 60_000);
});
