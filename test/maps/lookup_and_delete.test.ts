// BPF_MAP_LOOKUP_AND_DELETE_ELEM's flags, as kernel/bpf/syscall.c map_lookup_and_delete_elem
// checks them before any map op runs: anything but BPF_F_LOCK is -EINVAL, and BPF_F_LOCK is
// -EINVAL on a map whose value has no bpf_spin_lock. Only then does the type matter: the hash
// types do the op, every other type is -ENOTSUPP. A refused call changes nothing. Every map type.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { boot, u32, Scratch, splatsOf } from './boot.js';
import { createMap } from '../../src/maps/registry.js';
import { BpfMap } from '../../src/maps/bpf_map.js';
import { BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK, MAP_TYPES, type MapType } from '../../src/maps/map_ops.js';
import { BpfError } from '../../src/errno.js';

function errCode(fn: () => unknown): string {
  try { fn(); } catch (e: unknown) { if (e instanceof BpfError) return e.code; throw e; }
  return 'no error';
}

const HASH_TYPES: readonly MapType[] = ['hash', 'percpu_hash', 'lru_hash', 'lru_percpu_hash'];
const BAD_FLAGS = [BPF_NOEXIST, BPF_EXIST, 8, 0x10, 0x40000000, 0x80000000, BPF_F_LOCK | BPF_NOEXIST, BPF_F_LOCK | 8, -1];

/** A map of `type` holding key 1 (map-in-map: an inner array map), with its value as read back. */
function mapWithKey1(type: MapType, spinLockOffset?: number): { m: BpfMap; v: Uint8Array; extra: BpfMap[] } {
  if (type === 'hash_of_maps' || type === 'array_of_maps') {
    const t = new BpfMap(createMap({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 4 }));
    const inner = new BpfMap(createMap({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 4 }));
    const m = new BpfMap(createMap({ type, keySize: 4, valueSize: 4, maxEntries: 4, innerMap: t }));
    m.updateBatch([u32(1)], [u32(inner.id)]); // no grace-period wait: nothing is replaced
    return { m, v: u32(inner.id), extra: [t, inner] };
  }
  const m = new BpfMap(createMap({ type, keySize: 4, valueSize: 8, maxEntries: 4, ...(spinLockOffset !== undefined ? { spinLockOffset } : {}) }));
  const v = new Uint8Array(m.sysValueSize);
  for (let i = 0; i < v.length; i++) v[i] = (i * 7 + 1) & 0xff;
  if (spinLockOffset !== undefined) v.fill(0, spinLockOffset, spinLockOffset + 4); // user copies read the lock as 0
  m.update(u32(1), v);
  return { m, v, extra: [] };
}

describe('lookupAndDelete flags (map_lookup_and_delete_elem)', () => {
  beforeEach(() => { boot({ cpus: 2 }); });
  afterEach(() => { expect(splatsOf()).toEqual([]); });

  for (const type of MAP_TYPES) {
    it(`${type}: every flag but BPF_F_LOCK, and BPF_F_LOCK without a spin lock, is EINVAL and changes nothing`, () => {
      const { m, v, extra } = mapWithKey1(type);
      const elements = m.stats().elements;
      for (const f of [...BAD_FLAGS, BPF_F_LOCK]) {
        expect(errCode(() => m.lookupAndDelete(u32(1), f)), `flags 0x${(f >>> 0).toString(16)}`).toBe('EINVAL');
        expect(m.lookup(u32(1)), `flags 0x${(f >>> 0).toString(16)}`).toEqual(v);
        expect(m.stats().elements).toBe(elements);
      }
      if (HASH_TYPES.includes(type)) {
        expect(m.lookupAndDelete(u32(1), 0)).toEqual(v);
        expect(m.lookup(u32(1))).toBeUndefined();
        expect(m.lookupAndDelete(u32(1), 0)).toBeUndefined();
      } else {
        expect(errCode(() => m.lookupAndDelete(u32(1), 0))).toBe('ENOTSUPP');
        expect(m.lookup(u32(1))).toEqual(v);
      }
      expect(m.check()).toEqual([]);
      for (const x of [m, ...extra]) void x.close();
    });
  }

  it('the map op refuses the same flags (ctx.sys and any other caller of sysLookupAndDelete)', () => {
    const sc = new Scratch();
    for (const type of MAP_TYPES) {
      const { m, v, extra } = mapWithKey1(type);
      for (const f of [...BAD_FLAGS, BPF_F_LOCK]) {
        expect(m.impl.sysLookupAndDelete(sc.u32(0, 1), sc.ptr + 64, f), `${type} flags 0x${(f >>> 0).toString(16)}`).toBe(-22);
      }
      expect(m.lookup(u32(1))).toEqual(v);
      for (const x of [m, ...extra]) void x.close();
    }
    sc.free();
  });

  for (const type of ['hash', 'array'] as const) {
    it(`${type} with a bpf_spin_lock: BPF_F_LOCK passes the flag check; other bits are still EINVAL`, () => {
      const { m, v } = mapWithKey1(type, 0);
      for (const f of BAD_FLAGS) expect(errCode(() => m.lookupAndDelete(u32(1), f))).toBe('EINVAL');
      expect(m.lookup(u32(1))).toEqual(v);
      if (type === 'hash') {
        expect(m.lookupAndDelete(u32(1), BPF_F_LOCK)).toEqual(v); // copied under the element's lock
        expect(m.lookup(u32(1))).toBeUndefined();
      } else {
        expect(errCode(() => m.lookupAndDelete(u32(1), BPF_F_LOCK))).toBe('ENOTSUPP');
      }
      expect(m.check()).toEqual([]);
      void m.close();
    });
  }
});
