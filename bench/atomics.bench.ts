/*
 * atomics.bench.ts — what one JavaScript `Atomics` operation costs on this Node, next to a plain
 * typed-array access and to WebAssembly's inline atomics on the same shared memory (issue 12:
 * the floor under the update path). On Node 20 (V8 11.3) `Atomics.load/store/compareExchange/
 * exchange` are builtin calls that TurboFan does not inline; WebAssembly's `i32.atomic.*` compile
 * to one instruction (a plain `mov` for a load on x86), so even behind a JS→wasm call they cost
 * less. The memory-ordering contract (docs/INTERNALS.md) puts five `Atomics` writes on every
 * overwrite update (bucket lock CAS, publish E_NEXT and the head, unlink, unlock exchange) and one
 * `Atomics.load` on every lookup: this file says what that floor is on the machine it runs on.
 *
 * Cases (ns per operation, 1,024 words in a 1 MiB shared memory, indices cycled so the words
 * stay in cache): load, store, compareExchange, exchange, each as a plain access (load/store
 * only), as `Atomics.*`, and as a call into a 4-function wasm module built here byte by byte
 * (imports the shared memory: `new WebAssembly.Memory({ shared: true })`, whose buffer is a
 * SharedArrayBuffer). Cases interleave; `--reps` rounds (default 9) of `--ops` (default 2^22);
 * median and min–max of the rounds; ratios per round, Atomics over wasm and over plain.
 *
 *   npm run build && node dist/bench/atomics.bench.js [--reps N] [--ops N] [--json]
 */
import os from 'node:os';

// ---- a minimal wasm module: ld(i) st(i, v) cas(i, expect, repl) xchg(i, v) on word i ----
const leb = (n: number): number[] => { const o: number[] = []; do { let b = n & 0x7f; n >>>= 7; if (n !== 0) b |= 0x80; o.push(b); } while (n !== 0); return o; };
const str = (t: string): number[] => [...leb(t.length), ...Buffer.from(t)];
const section = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body];
const vec = (items: number[][]): number[] => [...leb(items.length), ...items.flat()];
const I32T = 0x7f;
const ADDR = [0x20, 0, 0x41, 2, 0x74]; // local.get 0; i32.const 2; i32.shl  (word index → byte address)
const fnBody = (code: number[]): number[] => { const b = [0, ...code, 0x0b]; return [...leb(b.length), ...b]; };
const WASM = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
  ...section(1, vec([[0x60, 1, I32T, 1, I32T], [0x60, 2, I32T, I32T, 0], [0x60, 3, I32T, I32T, I32T, 1, I32T], [0x60, 2, I32T, I32T, 1, I32T]])),
  ...section(2, vec([[...str('env'), ...str('mem'), 0x02, 0x03, 0x01, ...leb(65536)]])), // shared memory, min 1 page
  ...section(3, vec([[0], [1], [2], [3]])),
  ...section(7, vec([[...str('ld'), 0, 0], [...str('st'), 0, 1], [...str('cas'), 0, 2], [...str('xchg'), 0, 3]])),
  ...section(10, vec([
    fnBody([...ADDR, 0xfe, 0x10, 2, 0]),                       // i32.atomic.load
    fnBody([...ADDR, 0x20, 1, 0xfe, 0x17, 2, 0]),              // i32.atomic.store
    fnBody([...ADDR, 0x20, 1, 0x20, 2, 0xfe, 0x48, 2, 0]),     // i32.atomic.rmw.cmpxchg
    fnBody([...ADDR, 0x20, 1, 0xfe, 0x41, 2, 0]),              // i32.atomic.rmw.xchg
  ])),
]);

/** The slice of the WebAssembly API used here (the build's lib has no DOM/WebAssembly types). */
interface WasmApi {
  Memory: new (d: { initial: number; maximum: number; shared: boolean }) => { readonly buffer: SharedArrayBuffer };
  instantiate(bytes: Uint8Array, imports: object): Promise<{ instance: { exports: unknown } }>;
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

interface WasmAtomics { ld(i: number): number; st(i: number, v: number): void; cas(i: number, e: number, r: number): number; xchg(i: number, v: number): number }

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opt = (name: string): string | undefined => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  const reps = Number(opt('--reps') ?? 9);
  const ops = Number(opt('--ops') ?? 1 << 22);
  const mem = new WA.Memory({ initial: 16, maximum: 16, shared: true });
  const { instance } = await WA.instantiate(WASM, { env: { mem } });
  const w = instance.exports as unknown as WasmAtomics;
  const I = new Int32Array(mem.buffer);
  // the module and the typed array see the same words
  I[5] = 7; w.st(6, 9);
  if (w.ld(5) !== 7 || I[6] !== 9 || w.cas(6, 9, 11) !== 9 || Atomics.load(I, 6) !== 11 || w.xchg(6, 0) !== 11) throw new Error('wasm atomics module: self-check failed');

  const M = 1023 << 4; // word indices 0, 16, 32, …: one word per cache line, 1,024 lines
  let sink = 0;
  const cases: Record<string, (n: number) => void> = {
    'load plain': (n) => { let s = 0; for (let i = 0; i < n; i++) s += I[(i << 4) & M]!; sink += s; },
    'load Atomics': (n) => { let s = 0; for (let i = 0; i < n; i++) s += Atomics.load(I, (i << 4) & M); sink += s; },
    'load wasm': (n) => { let s = 0; for (let i = 0; i < n; i++) s += w.ld((i << 4) & M); sink += s; },
    'store plain': (n) => { for (let i = 0; i < n; i++) I[(i << 4) & M] = i; },
    'store Atomics': (n) => { for (let i = 0; i < n; i++) Atomics.store(I, (i << 4) & M, i); },
    'store wasm': (n) => { for (let i = 0; i < n; i++) w.st((i << 4) & M, i); },
    'compareExchange Atomics': (n) => { for (let i = 0; i < n; i++) Atomics.compareExchange(I, (i << 4) & M, 0, 0); },
    'compareExchange wasm': (n) => { for (let i = 0; i < n; i++) w.cas((i << 4) & M, 0, 0); },
    'exchange Atomics': (n) => { for (let i = 0; i < n; i++) Atomics.exchange(I, (i << 4) & M, 0); },
    'exchange wasm': (n) => { for (let i = 0; i < n; i++) w.xchg((i << 4) & M, 0); },
  };
  const names = Object.keys(cases);
  for (const n of names) cases[n]!(1 << 16); // warm up: optimised code before the first timed round
  const ns: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < reps; r++) {
    for (const n of names) {
      const t0 = process.hrtime.bigint();
      cases[n]!(ops);
      ns[n]!.push(Number(process.hrtime.bigint() - t0) / ops);
    }
  }
  const med = (a: readonly number[]): number => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]!; };
  const ratio = (a: string, b: string): number[] => ns[a]!.map((x, i) => x / ns[b]![i]!);
  const rows = names.map((n) => ({ name: n, median: med(ns[n]!), min: Math.min(...ns[n]!), max: Math.max(...ns[n]!) }));
  const ratios = [
    ['load', 'load Atomics', 'load wasm'], ['load', 'load Atomics', 'load plain'],
    ['store', 'store Atomics', 'store wasm'], ['store', 'store Atomics', 'store plain'],
    ['compareExchange', 'compareExchange Atomics', 'compareExchange wasm'], ['exchange', 'exchange Atomics', 'exchange wasm'],
  ].map(([op, a, b]) => { const r = ratio(a!, b!); return { op: op!, of: a!, over: b!, median: med(r), min: Math.min(...r), max: Math.max(...r) }; });
  if (argv.includes('--json')) {
    console.log(JSON.stringify({ node: process.version, v8: process.versions.v8, cores: os.cpus().length, reps, ops, rows, ratios }, null, 2));
  } else {
    console.log(`bpfsim atomics bench — node ${process.version} (V8 ${process.versions.v8}), ${os.cpus().length} cores, ${reps} rounds × ${ops} ops, ns/op median (min–max)`);
    for (const r of rows) console.log(`${r.name.padEnd(26)}${r.median.toFixed(2).padStart(8)}  (${r.min.toFixed(2)}–${r.max.toFixed(2)})`);
    for (const r of ratios) console.log(`${r.of} / ${r.over}`.padEnd(52) + `${r.median.toFixed(2)}× (${r.min.toFixed(2)}–${r.max.toFixed(2)})`);
  }
  if (sink === 0.5) console.log('');
}

await main();
