// Recording map operations for the checker (issue 11 §1): every operation of programs, workloads
// and the syscall side is one entry with stamps from one counter; nothing recorded when off.
import { describe, it, expect, afterEach } from 'vitest';
import { Runtime } from '../../src/runtime/runtime.js';
import { fixture } from '../helpers.js';

let rt: Runtime | undefined;
afterEach(async () => { await rt?.stop(); rt = undefined; });
const k = (n: number): Uint8Array => new Uint8Array([n, 0, 0, 0]);

describe('history recording', () => {
  it('records every program and syscall operation once, with unique stamps, call < ret, in the documented shape', async () => {
    rt = await Runtime.start({ cpus: 2, memoryBytes: 32 << 20, record: true });
    const m = rt.createMap({ type: 'hash', name: 'h', keySize: 4, valueSize: 16, maxEntries: 64 });
    const p = await rt.loadProgram(fixture('map_mixed.mjs'), { maps: { m }, args: { keys: 8, lookupPct: 40, updatePct: 40 } });
    m.update(k(1), new Uint8Array(16).fill(7));
    expect(m.lookup(k(1))).toEqual(new Uint8Array(16).fill(7));
    expect(m.lookup(k(2))).toBeUndefined();
    const w = await rt.runWorkload({ cpus: 'all', program: p, iterations: 2000 });
    const h = rt.history();
    // map_mixed: one op per run, and a second lookup for every lookup that found the key
    const progOps = h.filter((o) => o.cpu < 2);
    expect(progOps.length).toBeGreaterThanOrEqual(w.ops);
    const sys = h.filter((o) => o.cpu === 2);
    expect(sys.map((o) => [o.op, o.key, o.result])).toEqual([
      ['update', '01000000', 0], ['lookup', '01000000', expect.stringMatching(/^[0-9a-f]{16}$/)], ['lookup', '02000000', -2],
    ]);
    const stamps = new Set<number>();
    for (const o of h) {
      expect(o.call).toBeLessThan(o.ret);
      stamps.add(o.call); stamps.add(o.ret);
      expect(o.map).toBe(m.id);
      expect(o.key).toMatch(/^[0-9a-f]{8}$/);
      expect(['lookup', 'update', 'delete', 'lookup_and_delete']).toContain(o.op);
      if (o.op === 'update') expect(o.value).toMatch(/^[0-9a-f]{16}$/); // a digest: values over 8 bytes
    }
    expect(stamps.size).toBe(2 * h.length);
    expect(rt.historyStats()).toEqual({ recorded: h.length, dropped: 0 });
    expect(rt.historyMaps()[m.id]).toMatchObject({ type: 'hash', keySize: 4, valueSize: 16, maxEntries: 64 });
    // clear: hand over and keep none; the next call returns only newer operations
    expect(rt.history({ clear: true })).toHaveLength(h.length);
    expect(rt.history()).toEqual([]);
    m.delete(k(1));
    const after = rt.history();
    expect(after.map((o) => [o.op, o.key, o.result, o.side])).toEqual([['delete', '01000000', 0, 'syscall']]);
    expect(after[0]!.call).toBeGreaterThan(h[h.length - 1]!.ret);
    expect(rt.historyStats().recorded).toBe(h.length + 1);
  });

  it('a cap on recorded operations: the rest is counted as dropped, never silently lost', async () => {
    rt = await Runtime.start({ cpus: 1, memoryBytes: 32 << 20, record: 100 });
    const m = rt.createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 4 });
    const p = await rt.loadProgram(fixture('map_update_key.mjs'), { maps: { m }, args: { key: 1, value: 2, off: 0 } });
    await rt.runWorkload({ cpus: [0], program: p, iterations: 500 });
    const st = rt.historyStats();
    expect(st.recorded).toBe(100);
    expect(st.recorded + st.dropped).toBe(500);
  });

  it('without record: true, rt.history() refuses (nothing is recorded)', async () => {
    rt = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20 });
    expect(() => rt!.history()).toThrow(/record: true/);
  });
});
