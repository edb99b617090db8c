/*
 * ordering.bench.ts — what the memory-ordering contract (docs/INTERNALS.md) costs on the hot
 * paths: ns per operation on one CPU, in-process (the main thread acts as CPU 0, as in
 * map_lookup.bench.ts), so that two builds can be compared by running this file from each.
 *
 *   rcu pair        rcuReadLock() + rcuReadUnlock() (the outermost pair every program run pays)
 *   lookup          hash lookup, 4-byte key, inside one long read section (chain walk loads)
 *   lookup+section  rcuReadLock, lookup, rcuReadUnlock per key (a one-lookup program run)
 *   lookup miss     lookup of absent keys in a full 4096-entry map (walks whole chains)
 *   update          update(BPF_ANY) of present keys (link + unlink stores)
 *   delete+insert   delete then update(BPF_NOEXIST) of the same key
 *
 * Each case runs `--reps` times (default 9) of `--ops` operations (default 2^18), interleaved
 * across cases; the figure is the median ns/op (process CPU time; `--wall` for wall time), with
 * min and max.
 *
 * `--against DIR` loads a second build (DIR = another checkout's dist/, e.g. a copy of dist made
 * before a change) into the same process, with its own arena, and runs each of its cases right
 * before or after (alternating) the same case of this build; the ratio this / other is taken per
 * pair, so the load of a shared machine falls on both sides of each ratio.
 *
 * Run:  npx tsc -p . && node dist/bench/ordering.bench.js [--reps N] [--ops N] [--against DIR] [--wall] [--json]
 */
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createArena, attachArena, I32 } from '../src/mem/arena.js';
import { computeLayout } from '../src/mem/layout.js';
import { setThisCpu } from '../src/mem/this_cpu.js';
import { contextInit } from '../src/cpu/context.js';
import { memInit, kzalloc } from '../src/mm/slab.js';
import { OWNER_KERNEL } from '../src/mm/owners.js';
import { rcuThreadInit, rcuReadLock, rcuReadUnlock } from '../src/rcu/rcu.js';
import { createMap } from '../src/maps/registry.js';
import { BPF_ANY, BPF_NOEXIST } from '../src/maps/map_ops.js';

export interface OrderingCase { readonly name: string; readonly run: () => void }

const ENTRIES = 65_536;
const SEQ = 1 << 16;
const CPUS = 1;
let sink = 0;

/** Boot an arena in this module graph (main thread = CPU 0), fill the maps, return the cases. */
export function setupOrdering(ops: number): { cases: OrderingCase[]; check: () => string[] } {
  const sab = createArena({ layout: computeLayout(CPUS, 64 << 20), flags: 0, seed: 1, lockTimeoutMs: 250, rcuStallMs: 1000 });
  attachArena(sab);
  for (let c = 0; c <= CPUS; c++) { setThisCpu(c); contextInit(); }
  setThisCpu(CPUS);
  memInit();
  const map = createMap({ type: 'hash', name: 'ord', keySize: 4, valueSize: 8, maxEntries: ENTRIES });
  // a second map filled to max_entries (load factor 1): a miss walks its whole chain
  const dense = createMap({ type: 'hash', name: 'ord_dense', keySize: 4, valueSize: 8, maxEntries: 4096 });
  const scratch = kzalloc(64, OWNER_KERNEL);
  setThisCpu(0);
  rcuThreadInit();
  const kp = scratch;
  const vp = scratch + 8;
  const ki = kp >> 2;

  let seed = 0x9e3779b9;
  const rnd = (): number => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return seed >>> 0; };
  const keys = new Int32Array(ENTRIES);
  const have = new Set<number>();
  rcuReadLock();
  for (let i = 0; i < ENTRIES;) {
    const k = rnd() | 0;
    if (have.has(k)) continue;
    have.add(k); keys[i] = k; I32[ki] = k; I32[vp >> 2] = i;
    if (map.update(kp, vp, BPF_NOEXIST) !== 0) throw new Error('fill failed');
    i++;
  }
  for (let i = 0; i < 4096; i++) { I32[ki] = keys[i]!; if (dense.update(kp, vp, BPF_NOEXIST) !== 0) throw new Error('fill failed'); }
  rcuReadUnlock();
  const seq = new Int32Array(SEQ);
  for (let i = 0; i < SEQ; i++) seq[i] = keys[rnd() % ENTRIES]!;
  const miss = new Int32Array(SEQ);
  for (let i = 0; i < SEQ; i++) { let k; do k = rnd() | 0; while (have.has(k)); miss[i] = k; }
  const M = SEQ - 1;

  const cases: OrderingCase[] = [
    { name: 'rcu pair', run: () => {
      for (let i = 0; i < ops; i++) { rcuReadLock(); rcuReadUnlock(); }
    } },
    { name: 'lookup', run: () => {
      let s = 0;
      rcuReadLock();
      for (let i = 0; i < ops; i++) { I32[ki] = seq[i & M]!; s += map.lookup(kp); }
      rcuReadUnlock();
      sink += s;
    } },
    { name: 'lookup+section', run: () => {
      let s = 0;
      for (let i = 0; i < ops; i++) { I32[ki] = seq[i & M]!; rcuReadLock(); s += map.lookup(kp); rcuReadUnlock(); }
      sink += s;
    } },
    { name: 'lookup miss', run: () => {
      let s = 0;
      rcuReadLock();
      for (let i = 0; i < ops; i++) { I32[ki] = miss[i & M]!; s += dense.lookup(kp); }
      rcuReadUnlock();
      sink += s;
    } },
    { name: 'update', run: () => {
      let s = 0;
      rcuReadLock();
      for (let i = 0; i < ops; i++) { I32[ki] = seq[i & M]!; I32[vp >> 2] = i; s |= map.update(kp, vp, BPF_ANY); }
      rcuReadUnlock();
      sink += s;
    } },
    { name: 'delete+insert', run: () => {
      let s = 0;
      rcuReadLock();
      for (let i = 0; i < ops; i++) { I32[ki] = seq[i & M]!; s |= map.delete(kp); s |= map.update(kp, vp, BPF_NOEXIST); }
      rcuReadUnlock();
      sink += s;
    } },
  ];
  return { cases, check: () => [...map.check(), ...dense.check()] };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opt = (name: string): string | undefined => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  const reps = Number(opt('--reps') ?? 9);
  const ops = Number(opt('--ops') ?? 1 << 18);
  const against = opt('--against');
  const own = setupOrdering(ops);
  let other: ReturnType<typeof setupOrdering> | null = null;
  if (against !== undefined) {
    const url = pathToFileURL(path.resolve(against, 'bench/ordering.bench.js')).href;
    const mod = await import(url) as { setupOrdering: typeof setupOrdering };
    other = mod.setupOrdering(ops);
  }
  const n = own.cases.length;
  // process CPU time (user + system), not wall time: on a loaded machine a descheduled slice
  // would otherwise land on whichever case was running; --wall uses performance.now()
  const wall = argv.includes('--wall');
  const time = (c: OrderingCase): number => {
    if (wall) { const t0 = performance.now(); c.run(); return ((performance.now() - t0) * 1e6) / ops; }
    const t0 = process.cpuUsage(); c.run(); const d = process.cpuUsage(t0);
    return ((d.user + d.system) * 1e3) / ops;
  };
  for (const c of own.cases) c.run(); // warm-up
  if (other !== null) for (const c of other.cases) c.run();
  const ownNs: number[][] = own.cases.map(() => []);
  const otherNs: number[][] = own.cases.map(() => []);
  const ratio: number[][] = own.cases.map(() => []);
  for (let r = 0; r < reps; r++) {
    for (let j = 0; j < n; j++) {
      const c = (r + j) % n;
      if (other === null) { ownNs[c]!.push(time(own.cases[c]!)); continue; }
      let a: number, b: number;
      if ((r + j) % 2 === 0) { a = time(own.cases[c]!); b = time(other.cases[c]!); } else { b = time(other.cases[c]!); a = time(own.cases[c]!); }
      ownNs[c]!.push(a); otherNs[c]!.push(b); ratio[c]!.push(a / b);
    }
  }
  const med = (a: number[]): number => { const s = [...a].sort((x, y) => x - y); return s.length === 0 ? NaN : s[s.length >> 1]!; };
  const span = (a: number[]): { median: number; min: number; max: number } => ({ median: med(a), min: Math.min(...a), max: Math.max(...a) });
  const rows = own.cases.map((c, i) => ({ name: c.name, ns: span(ownNs[i]!), ...(other !== null ? { otherNs: span(otherNs[i]!), ratio: span(ratio[i]!) } : {}) }));
  if (argv.includes('--json')) {
    console.log(JSON.stringify({ node: process.version, cores: os.cpus().length, reps, ops, against: against ?? null, rows }));
  } else {
    const f = (s: { median: number; min: number; max: number }, d = 1): string => `${s.median.toFixed(d)} (${s.min.toFixed(d)}–${s.max.toFixed(d)})`;
    console.log(`bpfsim ordering bench — node ${process.version}, ${os.cpus().length} cores, ${reps} reps × ${ops} ops, ns/op (${wall ? 'wall' : 'CPU'} time) median (min–max)`);
    for (const r of rows) {
      console.log(r.name.padEnd(16) + f(r.ns).padStart(22) + (r.otherNs !== undefined ? `   other ${f(r.otherNs)}   ratio ${f(r.ratio!, 3)}` : ''));
    }
  }
  const errs = [...own.check(), ...(other?.check() ?? [])];
  if (errs.length !== 0) { console.error('check():', errs.slice(0, 5)); process.exitCode = 1; }
  if (sink === 0.5) console.log('');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) await main();
