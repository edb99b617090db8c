/*
 * map_lookup.bench.ts — one question: how fast is a preallocated hash map on one CPU through the
 * program helper path, next to a JS Map in the same run? (DESIGN.md §5, issue 3)
 *
 *   lookup:    4-byte key, 8-byte value, 100k entries, random present keys   vs Map.get
 *   overwrite: update(BPF_ANY) of existing keys (extra_elems replace path)   vs Map.set
 *
 * Runs in-process on the main thread acting as CPU 0 (the program path needs no workers): the
 * arena is booted, an RCU read section is entered once (programs run inside one), and each task
 * iteration performs BATCH operations on a precomputed random key sequence, so tinybench's
 * per-iteration overhead is amortised. Both sides read the same keys in the same order.
 *
 * One definition with `bpfsim bench lookup`: its "64 per program run" rows are this helper on a
 * worker CPU (the run's entry and exit spread over 64 calls); its "1 per program run" rows add a
 * whole program run to every operation. The output says so.
 *
 * Run:  npx tsc -p . && node dist/bench/map_lookup.bench.js [seconds-per-task]
 */
import os from 'node:os';
import { Bench } from 'tinybench';
import { createArena, attachArena, I32 } from '../src/mem/arena.js';
import { computeLayout } from '../src/mem/layout.js';
import { setThisCpu } from '../src/mem/this_cpu.js';
import { contextInit } from '../src/cpu/context.js';
import { memInit, kzalloc } from '../src/mm/slab.js';
import { OWNER_KERNEL } from '../src/mm/owners.js';
import { rcuThreadInit, rcuReadLock, rcuReadUnlock } from '../src/rcu/rcu.js';
import { createMap } from '../src/maps/registry.js';
import { BPF_ANY, BPF_NOEXIST } from '../src/maps/map_ops.js';

const ENTRIES = 100_000;
const BATCH = 4096;
const SEQ = 1 << 16;
const CPUS = 1;
const seconds = Number(process.argv[2] ?? '2');

// ---- boot: main thread = CPU 0 for the program path ----
const sab = createArena({ layout: computeLayout(CPUS, 64 << 20), flags: 0, seed: 1, lockTimeoutMs: 250, rcuStallMs: 1000 });
attachArena(sab);
for (let c = 0; c <= CPUS; c++) { setThisCpu(c); contextInit(); }
setThisCpu(CPUS); // the housekeeping CPU creates the map (main-thread-only allocator calls)
memInit();
const map = createMap({ type: 'hash', name: 'bench', keySize: 4, valueSize: 8, maxEntries: ENTRIES });
const scratch = kzalloc(64, OWNER_KERNEL);
setThisCpu(0); // then act as program CPU 0
rcuThreadInit();
const kp = scratch;       // key pointer (4-byte aligned)
const vp = scratch + 8;   // value pointer
const ki = kp >> 2;

// keys: ENTRIES distinct random u32s; the lookup sequence: random picks among them
let seed = 0x9e3779b9;
function rnd(): number { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return seed >>> 0; }
const keys = new Int32Array(ENTRIES);
const jsMap = new Map<number, number>();
for (let i = 0; i < ENTRIES;) {
  const k = rnd() | 0;
  if (jsMap.has(k)) continue;
  keys[i] = k;
  jsMap.set(k, i);
  I32[ki] = k;
  I32[vp >> 2] = i;
  rcuReadLock();
  if (map.update(kp, vp, BPF_NOEXIST) !== 0) throw new Error('fill failed');
  rcuReadUnlock();
  i++;
}
const seq = new Int32Array(SEQ);
for (let i = 0; i < SEQ; i++) seq[i] = keys[rnd() % ENTRIES]!;

let pos = 0;
let sink = 0;

rcuReadLock(); // programs run inside an RCU read section
const bench = new Bench({ time: seconds * 1000, warmupTime: 300 });
bench
  .add('Map.get (baseline)', () => {
    let p = pos; let s = 0;
    for (let i = 0; i < BATCH; i++) { s += jsMap.get(seq[p]!)!; p = (p + 1) & (SEQ - 1); }
    pos = p; sink += s;
  })
  .add('hash lookup (program path)', () => {
    let p = pos; let s = 0;
    for (let i = 0; i < BATCH; i++) { I32[ki] = seq[p]!; s += map.lookup(kp); p = (p + 1) & (SEQ - 1); }
    pos = p; sink += s;
  })
  .add('Map.set overwrite (baseline)', () => {
    let p = pos;
    for (let i = 0; i < BATCH; i++) { jsMap.set(seq[p]!, i); p = (p + 1) & (SEQ - 1); }
    pos = p;
  })
  .add('hash update BPF_ANY overwrite (program path)', () => {
    let p = pos; let s = 0;
    for (let i = 0; i < BATCH; i++) { I32[ki] = seq[p]!; I32[vp >> 2] = i; s |= map.update(kp, vp, BPF_ANY); p = (p + 1) & (SEQ - 1); }
    pos = p; sink += s;
  });

await bench.run();
rcuReadUnlock();

const rate = (name: string): number => {
  const t = bench.tasks.find((x) => x.name === name);
  const r = t?.result;
  if (r === undefined || !('throughput' in r)) return NaN;
  return (r.throughput.p50 ?? r.throughput.mean) * BATCH;
};
const rows = [
  ['lookup', 'Map.get (baseline)', 'hash lookup (program path)', 1.0],
  ['overwrite update', 'Map.set overwrite (baseline)', 'hash update BPF_ANY overwrite (program path)', 0.5],
] as const;
console.log(`bpfsim map_lookup bench — node ${process.version}, ${os.cpus().length} cores, ${ENTRIES} entries, 4-byte key, 8-byte value, 1 CPU`);
console.log('what this measures: the map helper alone, called in a loop on the main thread acting as CPU 0 inside one RCU read');
console.log('section, random present keys. `bpfsim bench lookup` reports the same helper on a worker CPU in its "64 per program run"');
console.log('rows (a stride walk, the run amortised) and a whole program run per operation in its "1 per program run" rows.');
console.log('what'.padEnd(18) + 'baseline M/s'.padStart(14) + 'bpfsim M/s'.padStart(12) + 'ratio'.padStart(8) + 'target'.padStart(8));
for (const [what, base, ours, target] of rows) {
  const b = rate(base) / 1e6;
  const o = rate(ours) / 1e6;
  const ratio = o / b;
  console.log(what.padEnd(18) + b.toFixed(1).padStart(14) + o.toFixed(1).padStart(12) + ratio.toFixed(2).padStart(8) + `≥${target.toFixed(1)}`.padStart(8) + (ratio >= target ? '  ok' : '  BELOW TARGET'));
}
const errs = map.check();
if (errs.length !== 0) { console.error('check() after the run:', errs.slice(0, 5)); process.exitCode = 1; }
if (sink === 0.5) console.log(''); // keep `sink` alive
