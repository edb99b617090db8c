// The checker finds bugs (issue "Histories…" §5, without replay yet): three map-semantics faults
// (FAULT_LOST_UPDATE: a replace returns 0 and changes nothing; FAULT_PHANTOM_DELETE: a delete
// returns 0 and leaves the element; FAULT_NOEXIST_OVERWRITE: BPF_NOEXIST on an existing key
// replaces it), each firing on every 8th eligible operation, are switched on one at a time; a
// recorded history of random operations is then illegal for the checker (the kernel properties
// allowed explain none of them), and the same
// run with the fault off is linearizable. Two program CPUs, so the histories overlap in time.
import { describe, it, expect, afterEach } from 'vitest';
import { Runtime } from '../../src/runtime/runtime.js';
import { checkHistory, type MapInfo } from '../../src/check/index.js';
import { FAULT_LOST_UPDATE, FAULT_PHANTOM_DELETE, FAULT_NOEXIST_OVERWRITE } from '../../src/mem/layout.js';
import { fixture } from '../helpers.js';

let rt: Runtime | undefined;
afterEach(async () => { await rt?.stop(); rt = undefined; });

async function run(faults: number): Promise<{ result: string; illegal: number; ops: number }> {
  rt = await Runtime.start({ cpus: 2, memoryBytes: 32 << 20, record: true, seed: 5, faults });
  const m = rt.createMap({ type: 'hash', name: 'h', keySize: 4, valueSize: 4, maxEntries: 16 });
  const p = await rt.loadProgram(fixture('chk_ops.mjs'), { maps: { m }, args: { keys: 6 } });
  await rt.runWorkload({ cpus: 'all', program: p, iterations: 1500 });
  const h = rt.history();
  const maps: Record<number, MapInfo> = {};
  for (const [id, info] of Object.entries(rt.historyMaps())) maps[Number(id)] = { type: info.type as MapInfo['type'] };
  // the kernel properties stay allowed (a lookup of an element reused under it is one): none of
  // them explains a fault's effect
  const r = await checkHistory(h, { maps, syscallCpu: rt.cpus, timeoutMs: 30_000 });
  await rt.stop();
  rt = undefined;
  return { result: r.result, illegal: r.illegal.length, ops: r.opsChecked };
}

describe('faults the checker must find', () => {
  it('control: the same workload without a fault is linearizable', async () => {
    const r = await run(0);
    expect(r.ops).toBe(3000);
    expect(r).toMatchObject({ result: 'ok', illegal: 0 });
  });
  for (const [name, bit] of [['lost_update', FAULT_LOST_UPDATE], ['phantom_delete', FAULT_PHANTOM_DELETE], ['noexist_overwrite', FAULT_NOEXIST_OVERWRITE]] as const) {
    it(`${name}: the recorded history is illegal (at least one illegal partition)`, async () => {
      const r = await run(bit);
      expect(r.result).toBe('illegal');
      expect(r.illegal).toBeGreaterThan(0);
    });
  }
});
