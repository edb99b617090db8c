/*
 * bench_htab_mem.ts — the programs of the kernel's `htab-mem` benchmark
 * (tools/testing/selftests/bpf/progs/htab_mem_bench.c), one 'syscall' program driven by args.
 * One run = one invocation of the kernel program (one getpgid()/getppid() of a producer):
 *
 *   overwrite            64 × update(BPF_ANY) of keys cpu, cpu + n, cpu + 2n, …   op += 1
 *   batch_add_batch_del  the same 64 updates, then 64 deletes of those keys          op += 2
 *   add_del_on_diff_cpu  CPUs 2i (adder) and 2i+1 (deleter) share keys i, i + n/2, …;
 *                        the adder inserts 64 with BPF_NOEXIST, the deleter deletes them,
 *                        taking turns (the kernel's pthread barrier ping-pong)          op += 1
 * (n = producers; key 4 B, value 8 B of zeroes, as the kernel's.)
 *
 * Shared "user" memory: `user` is a SharedArrayBuffer outside kernel memory (the benchmark's
 * user space): an f64 op counter per CPU, 128 bytes apart (the kernel's op_cnt is one atomic;
 * per-CPU slots keep the counter out of the measurement), then one i32 turn word per pair
 * (0: the adder's turn, 1: the deleter's).
 *
 * Waiting for the partner: a producer whose turn it is not waits on the turn word for at most
 * WAIT_MS (Atomics.wait, so it gives its core to the partner — the machine is oversubscribed
 * at 4 CPUs on 2 cores) and, if still not its turn, returns without an op. The kernel's barrier
 * waits in user space, outside any RCU read section; a program run is one, so the wait is kept
 * short and the read section ends at the end of the run (grace periods are not held up longer).
 */
import { defineProgram, BPF_ANY, BPF_NOEXIST, type BpfMapImpl, type ProgramContext } from '../../program.js';

export const HTAB_MEM_SCENARIOS = ['overwrite', 'batch_add_batch_del', 'add_del_on_diff_cpu'] as const;
export type HtabMemScenario = (typeof HTAB_MEM_SCENARIOS)[number];
export const OP_BATCH = 64;

export interface HtabMemArgs {
  readonly scenario: HtabMemScenario;
  /** Producers (the kernel's nr_thread): CPUs 0..producers-1 run the program. */
  readonly producers: number;
  /** The runtime's CPUs (sizes the counter area of `user`). */
  readonly cpus: number;
  /** User memory: htabMemUserBytes(cpus) bytes, zeroed by the caller. */
  readonly user: SharedArrayBuffer;
}

/** Stride of the per-CPU op counters, in f64 slots (128 bytes). */
export const OPS_STRIDE = 16;
const WAIT_MS = 0.05;

/** Bytes of user memory for `cpus` CPUs: counters, then one turn word per pair. */
export function htabMemUserBytes(cpus: number): number {
  return cpus * OPS_STRIDE * 8 + 128 * Math.ceil(cpus / 2);
}

/** Ops counted so far on CPUs 0..producers-1 (main thread, after the workload returned). */
export function htabMemOps(user: SharedArrayBuffer, producers: number): number {
  const f = new Float64Array(user);
  let n = 0;
  for (let c = 0; c < producers; c++) n += f[c * OPS_STRIDE]!;
  return n;
}

let lastArgs: unknown = null;
let scenario = 0, step = 1;
let ops: Float64Array = new Float64Array(0);
let turns: Int32Array = new Int32Array(0);
let turnBase = 0;

function decode(a: unknown): void {
  lastArgs = a;
  const s = a as HtabMemArgs;
  scenario = HTAB_MEM_SCENARIOS.indexOf(s.scenario);
  if (scenario < 0) throw new RangeError(`bench_htab_mem: unknown scenario ${JSON.stringify(s.scenario)}`);
  const n = Math.max(1, s.producers | 0);
  step = scenario === 2 ? Math.max(1, n >> 1) : n;
  ops = new Float64Array(s.user);
  turns = new Int32Array(s.user);
  turnBase = s.cpus * OPS_STRIDE * 2; // i32 index of the first turn word, after the counters
}

function write(ctx: ProgramContext, m: BpfMapImpl, from: number, flags: number): number {
  const s = ctx.scratch;
  const key = s, val = ctx.zeroValue(m);
  let err = 0;
  for (let i = 0; i < OP_BATCH; i++) {
    ctx.setU32(key, from);
    const e = m.update(key, val, flags);
    if (e < 0) err = e;
    from += step;
  }
  return err;
}

function del(ctx: ProgramContext, m: BpfMapImpl, from: number): number {
  const key = ctx.scratch;
  let err = 0;
  for (let i = 0; i < OP_BATCH; i++) {
    ctx.setU32(key, from);
    const e = m.delete(key);
    if (e < 0) err = e;
    from += step;
  }
  return err;
}

function run(ctx: ProgramContext, m: BpfMapImpl): number {
  if (ctx.args !== lastArgs) decode(ctx.args);
  const cpu = ctx.cpu;
  const oi = cpu * OPS_STRIDE;
  if (scenario === 0) {
    const e = write(ctx, m, cpu, BPF_ANY);
    ops[oi] = ops[oi]! + 1;
    return e;
  }
  if (scenario === 1) {
    const e1 = write(ctx, m, cpu, BPF_ANY);
    const e2 = del(ctx, m, cpu);
    ops[oi] = ops[oi]! + 2;
    return e2 < 0 ? e2 : e1;
  }
  const role = cpu & 1;
  const ti = turnBase + (cpu >> 1) * 32; // turn words 128 bytes apart
  if (Atomics.load(turns, ti) !== role) {
    Atomics.wait(turns, ti, role ^ 1, WAIT_MS);
    if (Atomics.load(turns, ti) !== role) return 0;
  }
  // The errors of a ping-pong are expected only at a start after an interrupted round: the adder
  // may find keys the deleter had not removed yet (-EEXIST), and the other way round (-ENOENT).
  const e = role === 0 ? write(ctx, m, cpu >> 1, BPF_NOEXIST) : del(ctx, m, cpu >> 1);
  ops[oi] = ops[oi]! + 1;
  Atomics.store(turns, ti, role ^ 1);
  Atomics.notify(turns, ti);
  return e;
}

export default defineProgram({
  name: 'bench_htab_mem',
  type: 'syscall',
  maps: ['m'],
  run: (ctx, maps) => run(ctx, maps['m']!),
});
