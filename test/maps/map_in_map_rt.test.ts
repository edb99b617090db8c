// hash_of_maps on PREEMPT_RT with kmalloc-backed dynamic storage: the storage's bucket lock is the
// sleeping spinlock_t, so the outer map's writer lock must be one too (no "sleeping in atomic").
import { describe, it, expect, afterEach } from 'vitest';
import { Runtime } from '../../src/runtime/runtime.js';
import { BPF_F_NO_PREALLOC } from '../../src/maps/map_ops.js';
import { expectNoSplats } from '../helpers.js';

let rt: Runtime | undefined;
afterEach(async () => { await rt?.stop(); rt = undefined; });

describe('hash_of_maps on RT with legacy dynamic storage', () => {
  it('update and delete raise no splat', async () => {
    rt = await Runtime.start({ cpus: 1, preemptRt: true, dynAlloc: 'kmalloc', memoryBytes: 32 << 20 });
    const tmpl = rt.createMap({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 4 });
    const outer = rt.createMap({ type: 'hash_of_maps', keySize: 4, valueSize: 4, maxEntries: 16, flags: BPF_F_NO_PREALLOC, innerMap: tmpl });
    expect(outer.usesSleepingBucketLock()).toBe(true);
    const inner = rt.createMap({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 4 });
    const key = new Uint8Array([1, 0, 0, 0]);
    await outer.update(key, inner);
    expect(outer.lookup(key)).toBeDefined();
    await outer.delete(key);
    expect(outer.lookup(key)).toBeUndefined();
    expectNoSplats(rt);
  });
});
