// Map handles belong to their runtime (API.md "Maps"): once the handle is closed, or its runtime
// stopped, every call on it throws BpfError EBADF (the kernel's answer for a closed fd) before it
// touches kernel memory. The sharpest case: a second runtime in the same thread gets a fresh arena
// in which a map of the same name and shape sits at the same address with the same id, so a stale
// handle that still worked would read and write the new runtime's map.
import { describe, it, expect, afterEach } from 'vitest';
import { Runtime, BpfError, BPF_ANY, type BpfMap, type MapSpec } from '../../src/index.js';
import { memStats } from '../../src/mm/owners.js';
import { detachArena } from '../../src/mem/arena.js';
import { createMap } from '../../src/maps/registry.js';
import { BpfMap as BpfMapClass } from '../../src/maps/bpf_map.js';
import { boot, u32, readU32 } from './boot.js';
import { fixture, expectNoSplats } from '../helpers.js';

function errCode(fn: () => unknown): string {
  try { fn(); } catch (e: unknown) { if (e instanceof BpfError) return e.code; throw e; }
  return 'no error';
}
async function rejCode(p: () => unknown): Promise<string> {
  try { await p(); } catch (e: unknown) { if (e instanceof BpfError) return e.code; throw e; }
  return 'no error';
}

/** Every syscall-side call of a (non map-in-map) handle, with well-formed arguments. */
function everyCall(m: BpfMap, k: Uint8Array, v: Uint8Array): [string, () => unknown][] {
  return [
    ['lookup', () => m.lookup(k)],
    ['lookup with a bad key (EBADF first)', () => m.lookup(new Uint8Array(1))],
    ['update', () => m.update(k, v, BPF_ANY)],
    ['delete', () => m.delete(k)],
    ['lookupAndDelete', () => m.lookupAndDelete(k)],
    ['getNextKey(null)', () => m.getNextKey(null)],
    ['getNextKey(key)', () => m.getNextKey(k)],
    ['lookupBatch', () => m.lookupBatch(null, 8)],
    ['lookupAndDeleteBatch', () => m.lookupAndDeleteBatch(null, 8)],
    ['updateBatch', () => m.updateBatch([k], [v])],
    ['deleteBatch', () => m.deleteBatch([k])],
    ['keys', () => m.keys()],
    ['entries', () => m.entries()],
    ['info', () => m.info()],
    ['stats', () => m.stats()],
    ['check', () => m.check()],
    ['usesSleepingBucketLock', () => m.usesSleepingBucketLock()],
    ['close', () => m.close()],
  ];
}

const SPECS: readonly MapSpec[] = [
  { type: 'hash', name: 'flows', keySize: 4, valueSize: 8, maxEntries: 16 },
  { type: 'percpu_hash', name: 'pc', keySize: 4, valueSize: 8, maxEntries: 16 },
  { type: 'lru_hash', name: 'lru', keySize: 4, valueSize: 8, maxEntries: 16 },
  { type: 'array', name: 'arr', keySize: 4, valueSize: 8, maxEntries: 16 },
];

function valueOf(m: BpfMap, n: number): Uint8Array {
  const v = new Uint8Array(m.sysValueSize);
  for (let off = 0; off < v.length; off += 8) new DataView(v.buffer).setUint32(off, n, true);
  return v;
}

/** Everything a map holds, as comparable data. */
function contents(m: BpfMap): string[] {
  const out: string[] = [];
  for (const [k, v] of m.entries()) out.push(`${readU32(k)}=${Buffer.from(v).toString('hex')}`);
  return out.sort();
}

let rt: Runtime | undefined;
afterEach(async () => { await rt?.stop(); rt = undefined; });

describe('a handle outlives neither its runtime nor its close()', () => {
  it('a stopped runtime\'s handles: EBADF for every call; the next runtime\'s same-shaped maps are untouched', async () => {
    const rt1 = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20, seed: 5 });
    rt = rt1;
    const old = SPECS.map((s) => rt1.createMap(s));
    const oldTmpl = rt1.createMap({ type: 'array', name: 'tmpl', keySize: 4, valueSize: 8, maxEntries: 4 });
    const oldOuter = rt1.createMap({ type: 'hash_of_maps', name: 'outer', keySize: 4, valueSize: 4, maxEntries: 4, innerMap: oldTmpl });
    for (const m of old) m.update(u32(1), valueOf(m, 111));
    await rt1.stop();

    const rt2 = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20, seed: 5 });
    rt = rt2;
    const fresh = SPECS.map((s) => rt2.createMap(s));
    const tmpl = rt2.createMap({ type: 'array', name: 'tmpl', keySize: 4, valueSize: 8, maxEntries: 4 });
    const outer = rt2.createMap({ type: 'hash_of_maps', name: 'outer', keySize: 4, valueSize: 4, maxEntries: 4, innerMap: tmpl });
    const inner = rt2.createMap({ type: 'array', name: 'inner', keySize: 4, valueSize: 8, maxEntries: 4 });
    await outer.update(u32(0), inner);
    for (const [i, m] of fresh.entries()) {
      // same name and shape, and (fresh arena, same creation order) the same id
      expect(m.id).toBe(old[i]!.id);
      for (let k = 0; k < 5; k++) m.update(u32(k), valueOf(m, 1000 + k));
    }
    const before = fresh.map(contents);
    const outerBefore = contents(outer);
    const mem = memStats().bytesInUse;

    for (const [i, m] of old.entries()) {
      for (const [what, call] of everyCall(m, u32(1), valueOf(m, 222))) {
        expect(errCode(call), `${SPECS[i]!.type}: ${what}`).toBe('EBADF');
      }
      expect(errCode(() => m.impl), `${SPECS[i]!.type}: impl`).toBe('EBADF');
    }
    // map-in-map writes answer through their promise, as their other errors do
    expect(await rejCode(() => oldOuter.update(u32(0), u32(inner.id)))).toBe('EBADF');
    expect(await rejCode(() => oldOuter.delete(u32(0)))).toBe('EBADF');
    expect(errCode(() => oldOuter.lookup(u32(0)))).toBe('EBADF');
    // a stale handle is no fd for the new runtime either: as a value, a template, a program's map
    expect(await rejCode(() => outer.update(u32(1), old[3]!))).toBe('EBADF');
    expect(errCode(() => rt2.createMap({ type: 'array_of_maps', keySize: 4, valueSize: 4, maxEntries: 2, innerMap: oldTmpl }))).toBe('EBADF');
    expect(await rejCode(() => rt2.loadProgram(fixture('map_update_key.mjs'), { maps: { m: old[0]! } }))).toBe('EBADF');

    expect(fresh.map(contents)).toEqual(before);
    expect(contents(outer)).toEqual(outerBefore);
    expect(memStats().bytesInUse).toBe(mem);
    for (const m of [...fresh, tmpl, outer, inner]) expect(m.check()).toEqual([]);
    expectNoSplats(rt2);
  }, 60_000);

  it('right after rt.stop(): every call of its handles is EBADF', async () => {
    const rt1 = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20 });
    rt = rt1;
    const maps = SPECS.map((s) => rt1.createMap(s));
    await rt1.stop();
    for (const [i, m] of maps.entries()) {
      for (const [what, call] of everyCall(m, u32(1), valueOf(m, 1))) {
        expect(errCode(call), `${SPECS[i]!.type}: ${what}`).toBe('EBADF');
      }
    }
  }, 60_000);
});

describe('closed handles and detached arenas (one thread, no workers)', () => {
  it('after close(): every call is EBADF, close() again included; the map and the memory are gone once', () => {
    boot({ cpus: 2 });
    const base = memStats().bytesInUse;
    for (const s of SPECS) {
      const m = new BpfMapClass(createMap(s));
      m.update(u32(1), valueOf(m, 7));
      const other = new BpfMapClass(createMap({ ...s, name: 'other' }));
      other.update(u32(1), valueOf(other, 9));
      void m.close();
      expect(m.closed).toBe(true);
      const afterClose = memStats().bytesInUse;
      for (const [what, call] of everyCall(m, u32(1), valueOf(m, 8))) {
        expect(errCode(call), `${s.type}: ${what}`).toBe('EBADF');
      }
      // the double close freed nothing twice: no splat, memory as after the first close
      expect(memStats().bytesInUse).toBe(afterClose);
      expect(other.lookup(u32(1))).toEqual(valueOf(other, 9)); // another map of the same shape: untouched
      expect(other.check()).toEqual([]);
      void other.close();
    }
    expect(memStats().bytesInUse).toBe(base);
  });

  it('a closed handle as an inner-map template or value is EBADF (a closed fd), not EINVAL', () => {
    boot({ cpus: 2 });
    const t = new BpfMapClass(createMap({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 4 }));
    void t.close();
    expect(errCode(() => createMap({ type: 'hash_of_maps', keySize: 4, valueSize: 4, maxEntries: 4, innerMap: t }))).toBe('EBADF');
  });

  it('detaching the arena (what rt.stop() does) turns every handle of it into EBADF', () => {
    boot({ cpus: 2 });
    const m = new BpfMapClass(createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 8 }));
    m.update(u32(1), valueOf(m, 3));
    detachArena();
    for (const [what, call] of everyCall(m, u32(1), valueOf(m, 4))) expect(errCode(call), what).toBe('EBADF');
    boot({ cpus: 2 }); // a new arena: the handle stays dead
    expect(errCode(() => m.lookup(u32(1)))).toBe('EBADF');
  });
});
