// progs/timer.c and prog_tests/timer.c (serial_test_timer) through bpfsim: array, prealloc and
// NO_PREALLOC hash, LRU (eviction of the running timer's own element), BPF_F_TIMER_ABS and
// BPF_F_TIMER_CPU_PIN, on the virtual clock so every count is exact; then teardown through
// map_release_uref with a leak check.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Runtime } from '../../src/runtime/runtime.js';
import type { BpfMap } from '../../src/maps/bpf_map.js';
import { BPF_F_NO_PREALLOC, type MapSpec } from '../../src/maps/map_ops.js';
import { fixture } from '../helpers.js';
import { u32, u64, rdU64, warmBaseline, expectNoLeak, newSplats, type MemBaseline } from './timer_helpers.js';

let rt: Runtime;
beforeAll(async () => { rt = await Runtime.start({ cpus: 2, clock: 'virtual', memoryBytes: 64 << 20 }); });
afterAll(async () => { await rt.stop(); });

const G = { bss_data: 0, err: 1, ok: 2, callback_check: 3, callback2_check: 4, abs_data: 5, pinned_callback_check: 6, pinned_cpu: 7 } as const;

function timerMaps(): Record<string, BpfMap> {
  const hv = (name: string, flags = 0): MapSpec => ({
    type: 'hash', name, keySize: 4, valueSize: 32, maxEntries: 1000, flags,
    fields: [{ type: 'bpf_timer', offset: 8 }, { type: 'bpf_spin_lock', offset: 24 }],
  });
  const arr = (name: string, maxEntries: number): MapSpec => ({ type: 'array', name, keySize: 4, valueSize: 16, maxEntries, fields: [{ type: 'bpf_timer', offset: 0 }] });
  return {
    bss: rt.createMap({ type: 'array', name: 'bss', keySize: 4, valueSize: 8, maxEntries: 16 }),
    hmap: rt.createMap(hv('hmap')),
    hmap_malloc: rt.createMap(hv('hmap_malloc', BPF_F_NO_PREALLOC)),
    array: rt.createMap(arr('array', 2)),
    lru: rt.createMap({ type: 'lru_hash', name: 'lru', keySize: 4, valueSize: 16, maxEntries: 4, fields: [{ type: 'bpf_timer', offset: 0 }] }),
    abs_timer: rt.createMap(arr('abs_timer', 1)),
    soft_timer_pinned: rt.createMap(arr('soft_pinned', 1)),
    abs_timer_pinned: rt.createMap(arr('abs_pinned', 1)),
  };
}

describe('timer (progs/timer.c)', () => {
  let base: MemBaseline;
  beforeAll(async () => { base = await warmBaseline(rt); });

  it('counts and err bits of serial_test_timer; teardown frees every timer', async () => {
    const maps = timerMaps();
    const g = (slot: number): number => rdU64(maps.bss!.lookup(u32(slot)));
    maps.bss!.update(u32(G.callback_check), u64(52));
    maps.bss!.update(u32(G.callback2_check), u64(52));
    const prog = await rt.loadProgram(fixture('timer_selftest.mjs'), { maps });
    expect(g(G.callback_check)).toBe(52);
    expect(g(G.pinned_callback_check)).toBe(0);
    for (const test of [1, 2, 3]) expect((await prog.testRun({ cpu: 0, args: { test } })).retval).toBe(0);
    for (const test of [4, 5]) expect((await prog.testRun({ cpu: 1, args: { test } })).retval).toBe(0);
    // 50 us of virtual time in 1 us steps: timer_cb2 re-arms every 1 us, 10 times per map
    for (let i = 0; i < 50; i++) await rt.clock.advance(1000);
    expect(g(G.callback_check)).toBe(42);
    expect(g(G.callback2_check)).toBe(42);
    expect(g(G.bss_data)).toBe(10);
    expect(g(G.abs_data)).toBe(12);
    expect(g(G.pinned_callback_check)).toBe(2);
    expect(g(G.pinned_cpu)).toBe(1);
    expect(g(G.err)).toBe(0);
    expect(g(G.ok)).toBe(1 | 2 | 4);
    // still armed ~35 s ahead: the array timer (its callback dropped by timer_cb2's cancel) and abs_timer
    const st = rt.stats().timers;
    expect(st.live).toBeGreaterThan(0);
    // the program is held by the timers that still have its callback (abs_timer, pinned timers)
    await prog.unload();
    expect(prog.refcnt()).toBeGreaterThan(0);
    for (const m of Object.values(maps)) await m.close();
    expect(prog.refcnt()).toBe(0);
    expect(newSplats(rt, base)).toEqual([]);
    await expectNoLeak(rt, base);
  });
});
