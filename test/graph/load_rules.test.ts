// The verifier's check_map_prog_compatibility() for locks, at load: a tracing program (here
// perf_event) may not use a map whose values hold a bpf_spin_lock or a bpf_res_spin_lock (it may
// run in NMI inside that very lock) — BpfError EINVAL naming the map; the same program loads with
// a lock-free map of the same shape, and a non-tracing program loads with the locked one.
import { describe, it, expect } from 'vitest';
import type { MapSpec } from '../../src/maps/map_ops.js';
import { BpfError } from '../../src/errno.js';
import { fixture } from '../helpers.js';
import { runtimeSuite } from './graph_harness.js';

const g = runtimeSuite({ cpus: 1, memoryBytes: 16 << 20 });

async function loadCode(file: string, spec: MapSpec): Promise<string> {
  const m = g.rt.createMap(spec);
  try {
    const p = await g.rt.loadProgram(fixture(file), { maps: { m } });
    await p.unload();
    return 'loaded';
  } catch (e: unknown) {
    if (e instanceof BpfError) { expect(e.message).toMatch(/tracing progs cannot use bpf_spin_lock yet \(map 'm'/); return e.code; }
    throw e;
  } finally {
    await m.close();
  }
}

const base = { type: 'hash', name: 'm', keySize: 4, valueSize: 16, maxEntries: 4 } as const;

describe('tracing programs and maps holding locks', () => {
  it('perf_event + a map with a bpf_spin_lock: EINVAL; + a bpf_res_spin_lock: EINVAL; + a lock-free map: loads', async () => {
    expect(await loadCode('map_perf_event_update.mjs', { ...base, fields: [{ type: 'bpf_spin_lock', offset: 8 }] })).toBe('EINVAL');
    expect(await loadCode('map_perf_event_update.mjs', { ...base, fields: [{ type: 'bpf_res_spin_lock', offset: 8 }] })).toBe('EINVAL');
    expect(await loadCode('map_perf_event_update.mjs', base)).toBe('loaded');
  });
  it('an xdp program with the same locked map loads', async () => {
    expect(await loadCode('kp_lookup.mjs', { ...base, fields: [{ type: 'bpf_spin_lock', offset: 8 }] })).toBe('loaded');
  });
});
