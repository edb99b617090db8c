// map_lock.c at the selftest's own sizes, all in parallel: 4 CPUs x 10,000 program runs each write
// one random number into all 16 ints of the value under its bpf_spin_lock while 2 more CPUs make
// 10,000 syscall-side lookup(k, BPF_F_LOCK) copies each; every copy has the lock word 0 and 16
// equal ints. A control without BPF_F_LOCK (args.flags 0) shows the readers do see torn copies.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Runtime } from '../../src/runtime/runtime.js';
import { BPF_F_LOCK } from '../../src/maps/map_ops.js';
import { fixture } from '../helpers.js';

let rt: Runtime;
beforeAll(async () => { rt = await Runtime.start({ cpus: 6, memoryBytes: 32 << 20 }); });
afterAll(async () => { await rt.stop(); });

const u32 = (n: number): Uint8Array => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n >>> 0, true); return b; };

describe('map_lock: 4 writer CPUs x 10,000 runs, 2 reader CPUs x 10,000 BPF_F_LOCK copies, at once', () => {
  for (const type of ['hash', 'array'] as const) {
    it(`${type}: every writer run returns 0; every reader copy has lock word 0 and 16 equal ints (no run returned -EFAULT); the value ends holding one writer's number 16 times`, async () => {
      const lk = rt.createMap({ type, name: 'lk', keySize: 4, valueSize: 68, maxEntries: 1, fields: [{ type: 'bpf_spin_lock', offset: 0 }] });
      lk.update(u32(0), new Uint8Array(68), BPF_F_LOCK);
      const writer = await rt.loadProgram(fixture('gr_map_lock.mjs'), { maps: { lk } });
      const reader = await rt.loadProgram(fixture('gr_map_lock_reader.mjs'), { maps: { lk } });
      try {
        const [w, r] = await Promise.all([
          rt.runWorkload({ cpus: [0, 1, 2, 3], program: writer, iterations: 10_000 }),
          rt.runWorkload({ cpus: [4, 5], program: reader, iterations: 10_000 }),
        ]);
        expect(w.errors).toEqual({});
        expect(w.perCpu.every((c) => c.ok === 10_000)).toBe(true);
        // a torn copy is -EFAULT (counted in errors)
        expect(r.errors).toEqual({});
        expect(r.perCpu.map((c) => c.ok)).toEqual([10_000, 10_000]);
        const b = lk.lookup(u32(0), BPF_F_LOCK)!;
        const dv = new DataView(b.buffer, b.byteOffset);
        const first = dv.getUint32(4, true);
        expect(first).not.toBe(0);
        for (let i = 1; i < 16; i++) expect(dv.getUint32(4 + 4 * i, true)).toBe(first);
      } finally {
        await writer.unload();
        await reader.unload();
        await lk.close();
      }
    });
  }

  it('control: the same readers without BPF_F_LOCK see torn copies (some run returns -EFAULT)', async () => {
    const lk = rt.createMap({ type: 'array', name: 'lk', keySize: 4, valueSize: 68, maxEntries: 1, fields: [{ type: 'bpf_spin_lock', offset: 0 }] });
    const writer = await rt.loadProgram(fixture('gr_map_lock.mjs'), { maps: { lk }, args: { spin: 64 } });
    const reader = await rt.loadProgram(fixture('gr_map_lock_reader.mjs'), { maps: { lk }, args: { flags: 0 } });
    try {
      let torn = 0;
      for (let round = 0; round < 10 && torn === 0; round++) {
        const [, r] = await Promise.all([
          rt.runWorkload({ cpus: [0, 1, 2, 3], program: writer, iterations: 2_000 }),
          rt.runWorkload({ cpus: [4, 5], program: reader, iterations: 5_000 }),
        ]);
        torn += r.errors['EFAULT'] ?? 0;
      }
      expect(torn).toBeGreaterThan(0);
    } finally {
      await writer.unload();
      await reader.unload();
      await lk.close();
    }
  });
});
