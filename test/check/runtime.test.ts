// End to end: a history recorded by the runtime (Runtime.start({ record: true })) checks against
// the models with no relaxation: the recorder's format and the checker's agree, and so do the
// simulator's map semantics (errnos included: E2BIG on a full map, EINVAL for array deletes) and
// the models'. One program CPU, then the syscall side: sequential, so nothing but the semantics
// can fail. (Concurrent runs are the stress command's job: a lookup there may record a value from
// an element reused under it, which no model explains; see docs/CHECK.md §4.)
import { describe, it, expect, afterEach } from 'vitest';
import { Runtime } from '../../src/runtime/runtime.js';
import { checkHistory, type MapInfo } from '../../src/check/index.js';

let rt: Runtime | undefined;
afterEach(async () => { await rt?.stop(); rt = undefined; });
const k = (n: number): Uint8Array => new Uint8Array([n, 0, 0, 0]);
const fixture = (name: string): URL => new URL(`../fixtures/${name}`, import.meta.url);

describe('a recorded runtime history', () => {
  for (const type of ['hash', 'lru_hash', 'percpu_hash', 'array'] as const) {
    it(`${type}: a program, then the syscall side, checks ok strictly`, async () => {
      rt = await Runtime.start({ cpus: 1, memoryBytes: 32 << 20, record: true, seed: 3 });
      const m = rt.createMap({ type, name: 'h', keySize: 4, valueSize: 16, maxEntries: 8 });
      const p = await rt.loadProgram(fixture('map_mixed.mjs'), { maps: { m }, args: { keys: 12, lookupPct: 40, updatePct: 40, percpu: type === 'percpu_hash' } });
      await rt.runWorkload({ cpus: 'all', program: p, iterations: 2000 });
      const value = new Uint8Array(type === 'percpu_hash' ? 16 * rt.cpus : 16);
      for (let i = 0; i < 40; i++) {
        // a BpfError (E2BIG on a full map, ENOENT) is recorded all the same
        m.lookup(k(i % 8));
        if (i % 3 === 0) try { m.update(k(i % 8), value.fill(i)); } catch { /* recorded */ }
        if (i % 7 === 0 && type !== 'array') try { m.delete(k(i % 8)); } catch { /* recorded */ }
      }
      const h = rt.history();
      const maps: Record<number, MapInfo> = {};
      for (const [id, info] of Object.entries(rt.historyMaps())) {
        maps[Number(id)] = { type: info.type as MapInfo['type'], ...(type === 'array' ? { initialValue: 'any', maxEntries: 8 } : {}) };
      }
      const r = await checkHistory(h, { maps, syscallCpu: rt.cpus, kernelProperties: false, timeoutMs: 30_000 });
      expect(r.illegal).toEqual([]);
      expect(r.result).toBe('ok');
      expect(r.opsChecked + r.opsNotModelled).toBe(h.length);
      expect(r.opsNotModelled).toBe(type === 'percpu_hash' ? h.filter((o) => o.cpu === rt!.cpus).length : 0);
      if (type === 'hash') expect(h.some((o) => o.op === 'update' && o.result === -7)).toBe(true); // E2BIG seen and judged
    });
  }
});
