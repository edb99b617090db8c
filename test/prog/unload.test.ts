// Program lifetime: a loaded program holds a reference on each of its maps; a map the user closes
// lives on until the last program using it is unloaded; unload also detaches its links.
import { describe, it, expect, afterEach } from 'vitest';
import { Runtime } from '../../src/runtime/runtime.js';
import { memStats } from '../../src/mm/owners.js';
import { mapById } from '../../src/maps/registry.js';
import { fixture, expectNoSplats } from '../helpers.js';

let rt: Runtime | undefined;
afterEach(async () => { await rt?.stop(); rt = undefined; });

describe('program unload', () => {
  it('a closed map stays usable by a loaded program and is freed at unload; memory returns to the start', async () => {
    rt = await Runtime.start({ cpus: 2, memoryBytes: 32 << 20 });
    const before = memStats().bytesInUse;
    const m = rt.createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 128 });
    const id = m.info().id;
    const p = await rt.loadProgram(fixture('map_update_key.mjs'), { maps: { m } });
    const link = await p.attach({ kind: 'perf_event', cpus: [0] });
    m.close();
    expect(mapById(id)).toBeDefined();
    expect((await p.testRun({ cpu: 1, args: { key: 5 } })).retval).toBe(0);
    await p.unload();
    expect(p.unloaded).toBe(true);
    expect(mapById(id)).toBeUndefined();
    expect(link.hits()).toBe(0);
    await expect(p.testRun({ cpu: 0 })).rejects.toThrow(/unloaded/);
    expect(memStats().bytesInUse).toBe(before);
    expectNoSplats(rt);
  });
});
