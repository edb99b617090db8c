/*
 * map_history.ts — opt-in recording of map operations (Runtime.start({ record: true })), the input
 * of the linearizability checker (bpfsim/check, docs/CHECK.md).
 *
 * Every lookup / update / delete / lookup_and_delete a program, a workload (ctx.sys.*) or the
 * syscall side (BpfMap on the main thread) performs is one entry: op, map id, key, value (updates)
 * or the value found (lookups), flags, result, CPU, context, and call / return stamps taken from
 * one shared counter (HDR_HIST_CLOCK, Atomics.add) just before and just after the operation. No
 * message per op: entries go to a per-CPU ring in kernel memory; the main thread drains the rings
 * (a coordinator service, and rt.history()).
 *
 * Ring (one per CPU id, main thread included; HIST_RING_HDR bytes of control, then entries):
 *   +0  head      next slot to reserve (owner only: plain read, Atomics.store)
 *   +64 tail      next slot the drainer reads (main thread only)
 *   +128 dropped  entries lost: ring full, or the history cap reached (Atomics.add)
 * A writer reserves its slot (head + 1) before filling it and publishes it by writing the slot's
 * seq word (ticket + 1) last; the drainer stops at the first slot not yet published. An interrupt
 * on the same CPU cannot land between the reservation and the publication: there is no window in
 * here (an NMI program's own operations are recorded before or after, in their own slots). Entry (HIST_ENTRY = 64 bytes):
 *   +0 seq  +4 op|ctx<<8  +8 map id  +12 flags  +16 call (u32)  +20 ret (u32)  +24 result
 *   +28 key length  +32 value length  +36 value digest or inline value (8 bytes)
 *   +44 key inline (<= 16 bytes) or its digest (8 bytes)  +60 found (lookups: 1 = a value)
 * Values longer than 8 bytes and keys longer than 16 are stored as a 64-bit FNV-1a digest: the
 * checker compares them for equality only. Special fields of a value (bpf_spin_lock, bpf_timer)
 * are zeroed first: user copies never see them (copy_map_value). Stamps are u32: recording stops (everything after
 * counted as dropped) before the counter wraps.
 *
 * Cost when off: none on the program path (maps are wrapped only when recording), one boolean
 * test per syscall-side op.
 */
import { I32, U8, U32, hdrFlags, nrCpuIds } from '../mem/arena.js';
import { pcpuI, thisCpu } from '../mem/this_cpu.js';
import { FLAG_RECORD, HDR_HIST_BASE, HDR_HIST_CLOCK, HDR_HIST_ENTRIES, HDR_HIST_OFF, PC_CTX_MASK } from '../mem/layout.js';
import { kzalloc } from '../mm/slab.js';
import { OWNER_KERNEL } from '../mm/owners.js';
import { MAP_LOCK_OFF, MAP_TIMER_OFF, MAP_GRAPH_REC, type BpfMapImpl } from './map_ops.js';
import { btfRecordFromWords, type BtfRecord } from './btf_record.js';
import { ringDoorbell } from '../cpu/doorbell.js';

export const HIST_ENTRY = 64;
export const HIST_RING_HDR = 192;
const OPS = ['lookup', 'update', 'delete', 'lookup_and_delete'] as const;
export type HistoryOpName = (typeof OPS)[number];
const OP_LOOKUP = 0, OP_UPDATE = 1, OP_DELETE = 2, OP_LOOKUP_AND_DELETE = 3;
const CTX_NAMES = ['task', 'softirq', 'hardirq', 'nmi'] as const;
const STAMP_LIMIT = 0xffff_0000;
const SIDE_SYSCALL = 1 << 16;
const TORN = 1 << 17;

/** One recorded operation (API.md "Checking and replay"). */
export interface HistoryOp {
  readonly cpu: number;
  readonly context: 'task' | 'softirq' | 'hardirq' | 'nmi';
  readonly op: HistoryOpName;
  readonly map: number;
  /** lowercase hex (a 16-hex-digit digest for keys over 16 bytes) */
  readonly key: string;
  /** updates: the value written (hex; a digest for values over 8 bytes) */
  readonly value?: string;
  readonly flags: number;
  /** updates and deletes: 0 or -errno; lookups: the value found (hex) or -2 (ENOENT) */
  readonly result: number | string;
  readonly call: number;
  readonly ret: number;
  /** 'syscall': a bpf() command (BpfMap, or ctx.sys.* in a workload); 'prog': a program helper */
  readonly side: 'prog' | 'syscall';
  /** lookups: the value changed while it was copied (its element was reused under the reader) */
  readonly torn?: true;
}

/** This thread records (FLAG_RECORD): set by historyThreadInit at boot. */
export let historyOn = false;
let ringBase = 0;
let ringEntries = 0;

export function historyThreadInit(): void {
  historyOn = (hdrFlags & FLAG_RECORD) !== 0 && I32[HDR_HIST_BASE >> 2] !== 0;
  ringBase = I32[HDR_HIST_BASE >> 2]!;
  ringEntries = I32[HDR_HIST_ENTRIES >> 2]!;
}

/**
 * Main thread, at boot: allocate one ring per CPU id, `entries` each (rounded to a power of two
 * is not needed). Returns false if memory is short.
 */
export function historyGlobalInit(entries: number): boolean {
  const bytes = HIST_RING_HDR + entries * HIST_ENTRY;
  const base = kzalloc(bytes * nrCpuIds, OWNER_KERNEL);
  if (base === 0) return false;
  I32[HDR_HIST_ENTRIES >> 2] = entries;
  Atomics.store(I32, HDR_HIST_BASE >> 2, base);
  return true;
}

function ringOf(cpu: number): number { return ringBase + cpu * (HIST_RING_HDR + ringEntries * HIST_ENTRY); }

function stamp(): number { return Atomics.add(U32, HDR_HIST_CLOCK >> 2, 1); }

/** The 64-bit digest of bytes [from, to) of `a`: the low word is returned, the high one left in fnvHigh. */
let fnvHigh = 0;
function fnvDigest(a: Uint8Array, from: number, to: number): number {
  let h1 = 0x811c9dc5, h2 = 0xcbf29ce4;
  for (let i = from; i < to; i++) {
    const b = a[i]!;
    h1 = Math.imul(h1 ^ b, 0x01000193);
    h2 = Math.imul(h2 ^ b ^ (h1 >>> 24), 0x01000193);
  }
  fnvHigh = h2 >>> 0;
  return h1 >>> 0;
}

/** The digest of bytes [from, to) of `a`, as two u32 written at kernel pointer `out`. */
function fnvBytes(a: Uint8Array, from: number, to: number, out: number): void {
  U32[out >> 2] = fnvDigest(a, from, to);
  U32[(out + 4) >> 2] = fnvHigh;
}

function fnv(p: number, n: number, out: number): void { fnvBytes(U8, p, p + n, out); }

/**
 * Write one entry. The return stamp is taken here, after the value was copied: the value recorded
 * is one the operation could have returned at or before `ret`. A lookup's value is copied twice;
 * if the two copies differ, the element changed under the reader (prealloc reuse) and the entry is
 * marked torn (the checker does not model it).
 */
let maskBuf = new Uint8Array(256);

/** The value at `vp` with the special-field ranges zeroed, as the history writes it, into `out`. */
// each map's record, read once from its struct bpf_map (per thread)
const records = new WeakMap<BpfMapImpl, BtfRecord>();
function recordOf(m: BpfMapImpl): BtfRecord {
  let r = records.get(m);
  if (r === undefined) {
    const g = (off: number): number => I32[(m.ptr + off) >> 2]!;
    r = btfRecordFromWords(g(MAP_LOCK_OFF), g(MAP_TIMER_OFF), g(MAP_GRAPH_REC));
    records.set(m, r);
  }
  return r;
}

function maskedValue(vp: number, vlen: number, rec: BtfRecord, out: number): void {
  if (maskBuf.length < vlen) maskBuf = new Uint8Array(vlen);
  maskBuf.set(U8.subarray(vp, vp + vlen));
  const r = rec.ranges;
  for (let i = 0; i < rec.cnt; i++) maskBuf.fill(0, r[2 * i]!, Math.min(vlen, r[2 * i + 1]!));
  if (vlen <= 8) { U32[out >> 2] = 0; U32[(out + 4) >> 2] = 0; U8.set(maskBuf.subarray(0, vlen), out); } else fnvBytes(maskBuf, 0, vlen, out);
}

function record(op: number, m: BpfMapImpl, kp: number, vp: number, vlen: number, flags: number, result: number, found: boolean, call: number, syscall: boolean): void {
  const ring = ringOf(thisCpu);
  const ri = ring >> 2;
  if (Atomics.load(I32, HDR_HIST_OFF >> 2) !== 0 || call >= STAMP_LIMIT) { Atomics.store(I32, HDR_HIST_OFF >> 2, 1); Atomics.add(I32, ri + 32, 1); return; }
  const head = I32[ri]!;
  const used = head - Atomics.load(I32, ri + 16);
  if (used >= ringEntries) { Atomics.add(I32, ri + 32, 1); return; }
  if (used === ringEntries >> 2) ringDoorbell(); // a quarter full: ask the coordinator to drain
  Atomics.store(I32, ri, head + 1);
  const e = ring + HIST_RING_HDR + (head % ringEntries) * HIST_ENTRY;
  const ei = e >> 2;
  Atomics.store(I32, ei, 0);
  let torn = false;
  if (vlen > 0) {
    const rec = recordOf(m);
    if (rec.cnt !== 0) {
      // special fields (locks, timers, graph roots) are not part of a value as user copies see it
      // (copy_map_value skips them): digest the value with them zeroed
      maskedValue(vp, vlen, rec, e + 36);
      if (found) {
        const a = U32[ei + 9]!, b = U32[ei + 10]!;
        maskedValue(vp, vlen, rec, e + 36);
        torn = U32[ei + 9] !== a || U32[ei + 10] !== b;
      }
    } else {
      if (vlen <= 8) { U32[ei + 9] = 0; U32[ei + 10] = 0; U8.copyWithin(e + 36, vp, vp + vlen); } else fnv(vp, vlen, e + 36);
      if (found) {
        if (vlen <= 8) { for (let i = 0; i < vlen; i++) if (U8[e + 36 + i] !== U8[vp + i]) torn = true; } else {
          const a = U32[ei + 9]!, b = U32[ei + 10]!;
          fnv(vp, vlen, e + 36);
          torn = U32[ei + 9] !== a || U32[ei + 10] !== b;
        }
      }
    }
  }
  const ret = stamp();
  const ctx = 31 - Math.clz32(I32[pcpuI + (PC_CTX_MASK >> 2)]! | 1);
  I32[ei + 1] = op | (ctx << 8) | (syscall ? SIDE_SYSCALL : 0) | (torn ? TORN : 0);
  I32[ei + 2] = m.id;
  I32[ei + 3] = flags;
  U32[ei + 4] = call;
  U32[ei + 5] = ret;
  I32[ei + 6] = result;
  const klen = m.keySize;
  I32[ei + 7] = klen;
  I32[ei + 8] = vlen;
  I32[ei + 15] = found ? 1 : 0;
  if (klen <= 16) U8.copyWithin(e + 44, kp, kp + klen); else fnv(kp, klen, e + 44);
  Atomics.store(I32, ei, head + 1);
}

// ---- the syscall path (BpfMap, main thread; ctx.sys.* through the recording wrapper) ----

export function recSysLookup(m: BpfMapImpl, kp: number, out: number, flags: number): number {
  const call = stamp();
  const r = m.sysLookup(kp, out, flags);
  record(OP_LOOKUP, m, kp, out, r === 0 ? m.sysValueSize : 0, flags, r, r === 0, call, true);
  return r;
}
export function recSysUpdate(m: BpfMapImpl, kp: number, vp: number, flags: number): number {
  const call = stamp();
  const r = m.sysUpdate(kp, vp, flags);
  record(OP_UPDATE, m, kp, vp, m.sysValueSize, flags, r, false, call, true);
  return r;
}
export function recSysDelete(m: BpfMapImpl, kp: number): number {
  const call = stamp();
  const r = m.sysDelete(kp);
  record(OP_DELETE, m, kp, 0, 0, 0, r, false, call, true);
  return r;
}
export function recSysLookupAndDelete(m: BpfMapImpl, kp: number, out: number, flags: number): number {
  const call = stamp();
  const r = m.sysLookupAndDelete(kp, out, flags);
  record(OP_LOOKUP_AND_DELETE, m, kp, out, r === 0 ? m.sysValueSize : 0, flags, r, r === 0, call, true);
  return r;
}

/**
 * The map a program sees while recording: every member forwards to `impl` (bound to it), except
 * the operations, which record. A Proxy: it costs, but only in recording runs.
 */
export function recordingMap(impl: BpfMapImpl): BpfMapImpl {
  const ops: Partial<Record<keyof BpfMapImpl, unknown>> = {
    lookup: (kp: number): number => {
      const call = stamp();
      const p = impl.lookup(kp);
      record(OP_LOOKUP, impl, kp, p, p !== 0 ? impl.valueSize : 0, 0, p !== 0 ? 0 : -2, p !== 0, call, false);
      return p;
    },
    update: (kp: number, vp: number, flags: number): number => {
      const call = stamp();
      const r = impl.update(kp, vp, flags);
      record(OP_UPDATE, impl, kp, vp, impl.valueSize, flags, r, false, call, false);
      return r;
    },
    delete: (kp: number): number => {
      const call = stamp();
      const r = impl.delete(kp);
      record(OP_DELETE, impl, kp, 0, 0, 0, r, false, call, false);
      return r;
    },
    sysLookup: (kp: number, out: number, flags: number): number => recSysLookup(impl, kp, out, flags),
    sysUpdate: (kp: number, vp: number, flags: number): number => recSysUpdate(impl, kp, vp, flags),
    sysDelete: (kp: number): number => recSysDelete(impl, kp),
    sysLookupAndDelete: (kp: number, out: number, flags: number): number => recSysLookupAndDelete(impl, kp, out, flags),
  };
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(impl, {
    get(target, p) {
      if (Object.prototype.hasOwnProperty.call(ops, p)) return ops[p as keyof BpfMapImpl];
      const v: unknown = Reflect.get(target, p, target);
      if (typeof v !== 'function') return v;
      let b = bound.get(p);
      if (b === undefined) { b = (v as (...a: unknown[]) => unknown).bind(target); bound.set(p, b); }
      return b;
    },
  });
}

// ---- main thread: draining ----

/** How the history writes a value of `bytes` (inline hex up to 8 bytes, else the digest). */
export function historyValueHex(bytes: Uint8Array): string {
  const toHex = (b: Uint8Array): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  if (bytes.length <= 8) return toHex(bytes);
  const lo = fnvDigest(bytes, 0, bytes.length);
  return toHex(new Uint8Array(new Uint32Array([lo, fnvHigh]).buffer));
}

const hex = (p: number, n: number): string => {
  let s = '';
  for (let i = 0; i < n; i++) s += U8[p + i]!.toString(16).padStart(2, '0');
  return s;
};

/** Move every published entry of every ring to `out` (main thread). Returns how many. */
export function historyDrain(out: HistoryOp[], maxOps: number): number {
  if (ringBase === 0) return 0;
  let n = 0;
  for (let cpu = 0; cpu < nrCpuIds; cpu++) {
    const ring = ringOf(cpu);
    const ri = ring >> 2;
    let tail = I32[ri + 16]!;
    const head = Atomics.load(I32, ri);
    for (; tail < head; tail++) {
      const e = ring + HIST_RING_HDR + (tail % ringEntries) * HIST_ENTRY;
      const ei = e >> 2;
      if (Atomics.load(I32, ei) !== tail + 1) break; // reserved, not yet published
      if (out.length >= maxOps) { Atomics.store(I32, HDR_HIST_OFF >> 2, 1); Atomics.add(I32, ri + 32, 1); continue; }
      const opc = I32[ei + 1]! & 0xff;
      const klen = I32[ei + 7]!;
      const vlen = I32[ei + 8]!;
      const result = I32[ei + 6]!;
      const vhex = vlen <= 8 ? hex(e + 36, vlen) : hex(e + 36, 8);
      const isLookup = opc === OP_LOOKUP || opc === OP_LOOKUP_AND_DELETE;
      out.push({
        cpu, context: CTX_NAMES[(I32[ei + 1]! >> 8) & 3]!, op: OPS[opc]!, map: I32[ei + 2]!,
        key: klen <= 16 ? hex(e + 44, klen) : hex(e + 44, 8),
        ...(opc === OP_UPDATE ? { value: vhex } : {}),
        flags: I32[ei + 3]!,
        result: isLookup ? (I32[ei + 15] === 1 ? vhex : result < 0 ? result : -2) : result,
        call: U32[ei + 4]!, ret: U32[ei + 5]!,
        side: (I32[ei + 1]! & SIDE_SYSCALL) !== 0 ? 'syscall' : 'prog',
        ...((I32[ei + 1]! & TORN) !== 0 ? { torn: true as const } : {}),
      });
      n++;
    }
    Atomics.store(I32, ri + 16, tail);
  }
  return n;
}

/** Entries lost (ring full or cap reached), over all CPUs (main thread). */
export function historyDropped(): number {
  if (ringBase === 0) return 0;
  let d = 0;
  for (let cpu = 0; cpu < nrCpuIds; cpu++) d += Atomics.load(I32, (ringOf(cpu) >> 2) + 32);
  return d;
}
