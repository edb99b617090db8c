/*
 * seed004_graph.ts — scenarios from seed 004 (bpf_spin_lock bound to rbtree/list roots by
 * location, allocated objects, the "abort" that unwinds what a program holds; docs/GRAPH.md).
 *
 *   graph-lock-check    a map value { bpf_spin_lock; bpf_rb_root of rbnode }: program A adds,
 *                       walks and removes under the lock and works; program B adds a node
 *                       without the lock and is aborted: one prog_abort splat naming the rule
 *                       and B, -1, B disabled (EPERM), its node dropped, the tree untouched,
 *                       the lock word 0. Invariants: object accounting exact (live back, live ==
 *                       allocs - frees), the tree's nodes freed by the map's teardown.
 *   graph-abort-unwind  one program holding a bpf_res_spin_lock (irqsave), a bpf_spin_lock and
 *                       three objects (one a bag whose own lock guards a list holding a fourth)
 *                       calls bpf_throw in task, softirq, hardirq and NMI. Invariants per
 *                       context: retval = cookie, 2 locks and 3 objects unwound (the bag's drop
 *                       deferred to irq_work only in NMI), lock words and held-lock tables
 *                       empty, the CPU's context counters 0, objects and slab bytes back to the
 *                       baseline exactly, no splat (bpf_throw is not a rule violation).
 *   res-spin-lock-abba  two CPUs take bpf_res_spin_lock A then B, and B then A, in a loop until
 *                       at least one side got -EDEADLK, then both go on. Invariants: the
 *                       non-atomic counter equals the successful double-lock sections (mutual
 *                       exclusion), failures are return values only (-EDEADLK, -ETIMEDOUT: no
 *                       splat), both workloads complete, lock words and held tables empty.
 */
import { I32 } from '../mem/arena.js';
import { perCpuBlock } from '../mem/this_cpu.js';
import { memStats, memCheck } from '../mm/owners.js';
import {
  PC_PREEMPT_COUNT, PC_MIGRATE_DISABLE, PC_IRQS_OFF, PC_RCU_NESTING, PC_PROG_DEPTH, PC_HELD_COUNT,
} from '../mem/layout.js';
import { RES_PC_COUNT, resLockStats } from '../locks/res_spinlock.js';
import { graphObjStats, graphObjCheck } from '../graph/bpf_obj.js';
import { BpfError, errnoName, EPERM } from '../errno.js';
import { CONTEXT_NAMES, type ContextName } from '../cpu/context.js';
import type { Program, Runtime } from '../runtime/runtime.js';
import { programUrl, verdictOf, waitFor, type Scenario } from './scenario.js';
import {
  GLOB_LOCK, GLOB_ROOT, GLOB_VALUE_SIZE, RBN_NODE, LOCK_VALUE_SIZE, RL_LOCK, RL_COUNTER, RL_VALUE_SIZE,
} from './programs/graph_types.js';

const errStr = (r: number): string => (r < 0 ? `-${errnoName(-r)}` : String(r));
const hex = (p: number): string => `0x${(p >>> 0).toString(16)}`;
/** A word of kernel memory, read from the main thread. */
const word = (p: number): number => Atomics.load(I32, p >> 2);

async function retval(p: Program, cpu: number, args: unknown, context: ContextName = 'task'): Promise<number> {
  return (await p.testRun({ cpu, context, args })).retval;
}

/** The CPU's context counters (and held-lock tables), read from the main thread. */
function cpuCounters(cpu: number): Record<string, number> {
  const b = perCpuBlock(cpu);
  return {
    preempt: word(b + PC_PREEMPT_COUNT), migrate: word(b + PC_MIGRATE_DISABLE), irqsOff: word(b + PC_IRQS_OFF),
    rcu: word(b + PC_RCU_NESTING), progDepth: word(b + PC_PROG_DEPTH), heldLocks: word(b + PC_HELD_COUNT), resHeld: word(b + RES_PC_COUNT),
  };
}
const allZero = (c: Record<string, number>): boolean => Object.values(c).every((v) => v === 0);
const fmtCounters = (c: Record<string, number>): string => Object.entries(c).map(([k, v]) => `${k} ${v}`).join(', ');

/** The code of the BpfError a call rejects with, or 'no error'. */
async function rejection(f: () => Promise<unknown>): Promise<string> {
  try { await f(); return 'no error'; } catch (e: unknown) { return e instanceof BpfError ? e.code : String(e); }
}

// ---------------------------------------------------------------------------------------------

const graphLockCheck: Scenario = {
  name: 'graph-lock-check',
  seed: '004',
  title: 'An rbtree touched without its bpf_spin_lock aborts the program and unwinds it; with the lock it works',
  summary: 'Map value { bpf_spin_lock; bpf_rb_root of rbnode }. Program A adds 3 nodes under the lock and removes the first (returns its key), '
    + 'walks the tree under the lock. Program B allocates a node and calls bpf_rbtree_add without the lock: one prog_abort splat ("must be held", B), '
    + '-1, B disabled (EPERM), its node dropped, A\'s tree intact, the lock word 0; closing the map tears the tree down.',
  runtime: { cpus: 2, memoryBytes: 32 << 20 },
  async play(rt: Runtime, log) {
    const main = rt.cpus;
    const checks: [string, boolean][] = [];
    const glob = rt.createMap({
      type: 'array', name: 'glob', keySize: 4, valueSize: GLOB_VALUE_SIZE, maxEntries: 1,
      fields: [{ type: 'bpf_spin_lock', offset: GLOB_LOCK }, { type: 'bpf_rb_root', offset: GLOB_ROOT, contains: { type: 'rbnode', field: RBN_NODE } }],
    });
    const A = await rt.loadProgram(programUrl('graph_rb_lock'), { maps: { glob } });
    const B = await rt.loadProgram(programUrl('graph_rb_nolock'), { maps: { glob } });
    const value = await retval(A, 0, { op: 'addr' });
    const lockWord = (): number => word(value + GLOB_LOCK);
    const g0 = graphObjStats();

    // A: the correct program
    const key = await retval(A, 0, { op: 'add3', keys: [5, 1, 3] });
    const n1 = await retval(A, 0, { op: 'walk' });
    const f1 = await retval(A, 1, { op: 'first' });
    const g1 = graphObjStats();
    log({ cpu: 0, context: 'task', what: `A: bpf_obj_new x3 (keys 5, 1, 3); bpf_spin_lock; bpf_rbtree_add x3; bpf_rbtree_first + bpf_rbtree_remove; bpf_spin_unlock; bpf_obj_drop -> ${errStr(key)}` });
    log({ cpu: 0, context: 'task', what: `A: in-order walk under the lock: ${errStr(n1)} node(s); CPU 1: bpf_rbtree_first key ${errStr(f1)}; objects live ${g1.live - g0.live}` });
    checks.push(['A returns the smallest key (1) and leaves 2 nodes, first 3', key === 1 && n1 === 2 && f1 === 3 && g1.live - g0.live === 2]);

    // B: bpf_rbtree_add without the lock
    const sp0 = rt.splatCount();
    const rB = await retval(B, 1, undefined);
    const g2 = graphObjStats();
    const stB = B.stats();
    const spB = rt.splats().slice(sp0);
    const abortSplat = spB.find((s) => s.kind === 'prog_abort');
    log({ cpu: 1, context: 'task', what: `B: bpf_obj_new (key 2) -> owning reference; bpf_rbtree_add without bpf_spin_lock -> aborted, run returned ${rB}` });
    if (abortSplat !== undefined) log({ cpu: abortSplat.cpu, context: abortSplat.context, what: `splat ${abortSplat.kind}: ${abortSplat.message}` });
    log({ cpu: main, context: 'task', what: `B stats: aborted ${stB.aborted}, violations ${stB.violations}, unwound locks ${stB.unwound.locks} objects ${stB.unwound.objects}; objects allocated ${g2.allocs - g1.allocs}, freed ${g2.frees - g1.frees}, live ${g2.live - g0.live}` });
    checks.push(['B returned -1', rB === -1]);
    checks.push(['exactly one splat, a prog_abort naming "must be held" and graph_rb_nolock',
      spB.length === 1 && abortSplat !== undefined && /must be held/.test(abortSplat.message) && abortSplat.message.includes('graph_rb_nolock')]);
    checks.push(['B disabled, one violation, its one object dropped by the unwinding (no lock held)',
      stB.aborted && stB.violations === 1 && stB.exceptions === 0 && stB.unwound.objects === 1 && stB.unwound.locks === 0 && stB.unwound.deferred === 0]);
    checks.push(['B\'s node freed: objects live back to before B (+1 alloc, +1 free)', g2.live === g1.live && g2.allocs === g1.allocs + 1 && g2.frees === g1.frees + 1]);

    const again = await rejection(() => B.testRun({ cpu: 0 }));
    log({ cpu: main, context: 'task', what: `B run again -> ${again}` });
    checks.push(['a second run of B is refused with EPERM', again === errnoName(EPERM)]);

    // the tree, the lock
    const n2 = await retval(A, 1, { op: 'walk' });
    const f2 = await retval(A, 0, { op: 'first' });
    const lw = lockWord();
    log({ cpu: main, context: 'task', what: `after B: A walks ${errStr(n2)} node(s), first key ${errStr(f2)}; lock word at ${hex(value + GLOB_LOCK)} = ${lw}` });
    checks.push(['the tree is intact (2 nodes, in order, first 3) and the lock word is 0', n2 === 2 && f2 === 3 && lw === 0]);
    checks.push(['no splat besides B\'s', rt.splatCount() === sp0 + 1]);

    // teardown: the map's free drops the tree's two nodes
    await A.unload();
    await B.unload();
    await glob.close();
    await rt.idle();
    const g3 = graphObjStats();
    const problems = graphObjCheck();
    log({ cpu: main, context: 'task', what: `map closed: teardown dropped ${g3.teardownNodes - g2.teardownNodes} node(s); objects allocated ${g3.allocs - g0.allocs}, freed ${g3.frees - g0.frees}, live ${g3.live}` });
    checks.push(['map teardown frees the 2 remaining nodes; live == allocs - frees', g3.live === g0.live && g3.teardownNodes - g2.teardownNodes === 2 && problems.length === 0]);
    return verdictOf(
      'A works under the lock (key 1, 2 nodes left); B is aborted (-1, one prog_abort "must be held", disabled: EPERM), its node dropped; tree intact; lock word 0; accounting exact',
      checks,
      `A -> ${errStr(key)}; B -> ${rB}, ${spB.length} splat(s), rerun ${again}; tree ${errStr(n2)} node(s), first ${errStr(f2)}; lock word ${lw}; objects live ${g3.live}${problems.length ? `; ${problems.join('; ')}` : ''}`,
    );
  },
};

// ---------------------------------------------------------------------------------------------

const ABORT_CPU = 1;
const COOKIE_BASE = 0x4000;

const graphAbortUnwind: Scenario = {
  name: 'graph-abort-unwind',
  seed: '004',
  title: 'bpf_throw with two locks and three objects held, in task, softirq, hardirq and NMI: everything released, counters zero, slab exact',
  summary: 'A program allocates items A, B, D and a bag C (its own bpf_spin_lock guarding a list), pushes D into C, takes bpf_res_spin_lock_irqsave and bpf_spin_lock, '
    + 'and calls bpf_throw(cookie) in each context on one CPU. The abort releases both locks and drops A, B and C (C\'s teardown drops D; deferred to irq_work in NMI). '
    + 'Per context: cookie returned, lock words 0, 2 locks + 3 objects unwound, objects and slab bytes back to the baseline, context counters 0, no splat.',
  runtime: { cpus: 2, memoryBytes: 32 << 20 },
  async play(rt: Runtime, log) {
    const main = rt.cpus;
    const checks: [string, boolean][] = [];
    const lockMap = (name: string, type: 'bpf_res_spin_lock' | 'bpf_spin_lock') => rt.createMap({
      type: 'array', name, keySize: 4, valueSize: LOCK_VALUE_SIZE, maxEntries: 1, fields: [{ type, offset: 0 }],
    });
    const rlk = lockMap('rlk', 'bpf_res_spin_lock');
    const slk = lockMap('slk', 'bpf_spin_lock');
    // 'continue': one program object runs four times (the default 'disable' would refuse the second)
    const prog = await rt.loadProgram(programUrl('graph_abort'), { maps: { rlk, slk }, abortPolicy: 'continue' });
    const resLock = await retval(prog, ABORT_CPU, { op: 'addr', which: 'res' });
    const spinLock = await retval(prog, ABORT_CPU, { op: 'addr', which: 'spin' });

    // Warm-up, before the baseline: the first bpf_obj_new on a CPU finds bpf_global_ma's per-CPU
    // cache of that size class empty and refills it with a batch from the slab (and in NMI an
    // empty cache gives NULL). That batch stays in the cache for the CPU's life, so it is part of
    // the baseline, not a leak: one clean run (same four allocations, released by the program
    // itself) fills the cache the aborted runs then take from and give back to.
    const warm = await retval(prog, ABORT_CPU, { op: 'clean' });
    await rt.idle();
    const memBase = memStats();
    const gBase = graphObjStats();
    const splatBase = rt.splatCount();
    log({ cpu: ABORT_CPU, context: 'task', what: `warm-up run (allocate A, B, C, D; push D into C; lock, unlock, drop) -> ${errStr(warm)}; baseline: slab ${memBase.bytesInUse} B in use, ${gBase.live} object(s) live` });
    checks.push(['the warm-up run succeeds', warm === 0]);

    const summary: string[] = [];
    for (const [i, context] of CONTEXT_NAMES.entries()) {
      const cookie = COOKIE_BASE + i;
      const st0 = prog.stats();
      const g0 = graphObjStats();
      const r = await retval(prog, ABORT_CPU, { op: 'throw', cookie }, context);
      const st1 = prog.stats();
      const g1 = graphObjStats();
      const pendingRight = g1.live - gBase.live;
      const locks = st1.unwound.locks - st0.unwound.locks;
      const objs = st1.unwound.objects - st0.unwound.objects;
      const deferred = st1.unwound.deferred - st0.unwound.deferred;
      const exc = st1.exceptions - st0.exceptions;
      const viol = st1.violations - st0.violations;
      log({ cpu: ABORT_CPU, context, what: `held at bpf_throw(${hex(cookie)}): bpf_res_spin_lock_irqsave ${hex(resLock)}, bpf_spin_lock ${hex(spinLock)}, owning item A, item B, bag C (its list holds item D)` });
      log({ cpu: ABORT_CPU, context, what: `abort: returned ${hex(r)}; released ${locks} lock(s) (newest first), dropped ${objs} object reference(s)${deferred > 0 ? `, ${deferred} drop(s) deferred to irq_work` : ''}; objects still live right after the run: ${pendingRight}` });

      await rt.idle();
      const settled = await waitFor(() => graphObjStats().live === gBase.live, 3000);
      const countersZero = await waitFor(() => allZero(cpuCounters(ABORT_CPU)), 3000);
      const counters = cpuCounters(ABORT_CPU);
      const g2 = graphObjStats();
      const mem = memStats();
      const lw = [word(resLock), word(spinLock)];
      const objCheck = graphObjCheck();
      log({ cpu: main, context: 'task', what: `${context}: after idle: objects live ${g2.live} (freed ${g2.frees - g0.frees} of ${g2.allocs - g0.allocs} allocated, ${g2.deferred - g0.deferred} deferred drop(s), ${g2.teardownNodes - g0.teardownNodes} teardown node(s)); `
        + `lock words ${lw.join(', ')}; slab ${mem.bytesInUse} B (baseline ${memBase.bytesInUse}); cpu ${ABORT_CPU}: ${fmtCounters(counters)}` });
      const nmi = context === 'nmi';
      checks.push([`${context}: returned the cookie`, r === cookie]);
      checks.push([`${context}: counted as an exception, not a violation`, exc === 1 && viol === 0]);
      checks.push([`${context}: unwound 2 locks and 3 objects, ${nmi ? '1 drop deferred to irq_work' : 'none deferred'}`, locks === 2 && objs === 3 && deferred === (nmi ? 1 : 0) && g2.deferred - g0.deferred === (nmi ? 1 : 0)]);
      checks.push([`${context}: lock words 0`, lw[0] === 0 && lw[1] === 0]);
      checks.push([`${context}: the 4 objects freed (D by C's teardown); live back to the baseline; live == allocs - frees`,
        settled && g2.allocs - g0.allocs === 4 && g2.frees - g0.frees === 4 && g2.teardownNodes - g0.teardownNodes === 1 && objCheck.length === 0]);
      checks.push([`${context}: context counters, held-lock tables back to 0`, countersZero]);
      checks.push([`${context}: slab bytes and owners exactly the baseline`, mem.bytesInUse === memBase.bytesInUse && mem.ownersInUse === memBase.ownersInUse]);
      summary.push(`${context} ${hex(r)} ${locks}L/${objs}O/${deferred}D`);
    }
    const mc = memCheck();
    const splats = rt.splats().slice(splatBase);
    checks.push(['allocator consistent (memCheck)', mc.length === 0]);
    checks.push(['no splat (bpf_throw is not a rule violation)', splats.length === 0]);
    return verdictOf(
      'per context: retval = cookie; 2 locks and 3 objects unwound (1 deferred in NMI only); lock words 0; objects and slab back to the baseline; context counters 0; no splat',
      checks,
      `${summary.join('; ')}; ${splats.length} splat(s)${mc.length ? `; ${mc.join('; ')}` : ''}`,
    );
  },
};

// ---------------------------------------------------------------------------------------------

const ABBA_ITER = 300;
const ABBA_MAX_MS = 6000;

const resSpinLockAbba: Scenario = {
  name: 'res-spin-lock-abba',
  seed: '004',
  title: 'AB against BA with bpf_res_spin_lock on two CPUs: -EDEADLK instead of a hang, then both go on; mutual exclusion holds',
  summary: 'CPU 0 loops lock A, lock B, counter++ (non-atomic), unlock B, unlock A; CPU 1 the same in the order B, A; the first lock is held 20 us before the second is asked for. '
    + 'Rounds run until a side got -EDEADLK, then one more round: the counter equals the successful sections, failures are return values only, no splat.',
  runtime: { cpus: 2, memoryBytes: 32 << 20 },
  async play(rt: Runtime, log) {
    const main = rt.cpus;
    const checks: [string, boolean][] = [];
    const rl = rt.createMap({ type: 'array', name: 'rl', keySize: 4, valueSize: RL_VALUE_SIZE, maxEntries: 2, fields: [{ type: 'bpf_res_spin_lock', offset: RL_LOCK }] });
    const prog = await rt.loadProgram(programUrl('graph_res_abba'), { maps: { rl } });
    const va = await retval(prog, 0, { op: 'addr', key: 0 });
    const vb = await retval(prog, 0, { op: 'addr', key: 1 });
    const rs0 = resLockStats();
    const splatBase = rt.splatCount();
    const args = { op: 'abba', holdUs: 20, csUs: 2 };

    let ok = 0, deadlocks = 0, timeouts = 0, rounds = 0;
    const other: Record<string, number> = {};
    let allComplete = true;
    let after: { ok: number[]; errors: Record<string, number> } | undefined;
    const t0 = performance.now();
    for (;;) {
      const w = await rt.runWorkload({ cpus: 'all', program: prog, iterations: ABBA_ITER, args });
      rounds++;
      const first = deadlocks === 0 && (w.errors['EDEADLK'] ?? 0) > 0;
      for (const r of w.perCpu) {
        ok += r.ok;
        if (r.iterations !== ABBA_ITER || r.stopped || r.disabled) allComplete = false;
      }
      for (const [k, v] of Object.entries(w.errors)) {
        if (k === 'EDEADLK') deadlocks += v;
        else if (k === 'ETIMEDOUT') timeouts += v;
        else other[k] = (other[k] ?? 0) + v;
      }
      const perCpu = w.perCpu.map((r) => `cpu${r.cpu} ${r.ok} ok ${JSON.stringify(r.errors)}`).join(', ');
      if (after === undefined && deadlocks > 0 && !first) {
        after = { ok: w.perCpu.map((r) => r.ok), errors: w.errors };
        log({ cpu: main, context: 'task', what: `round ${rounds} (after the first -EDEADLK): ${perCpu}` });
        break;
      }
      log({ cpu: main, context: 'task', what: `round ${rounds}: ${perCpu}${first ? ' <- first -EDEADLK' : ''}` });
      if (deadlocks === 0 && performance.now() - t0 > ABBA_MAX_MS) break;
    }
    const counter = word(va + RL_COUNTER);
    const lw = [word(va + RL_LOCK), word(vb + RL_LOCK)];
    const rs1 = resLockStats();
    const held = [0, 1].map((c) => word(perCpuBlock(c) + RES_PC_COUNT));
    const st = prog.stats();
    const splats = rt.splats().slice(splatBase);
    const abba = rs1.deadlocksABBA - rs0.deadlocksABBA, aa = rs1.deadlocksAA - rs0.deadlocksAA, tmo = rs1.timeouts - rs0.timeouts;
    log({ cpu: main, context: 'task', what: `${rounds} round(s) x ${ABBA_ITER} per CPU: ${ok} double-lock sections, ${deadlocks} -EDEADLK, ${timeouts} -ETIMEDOUT; counter ${counter}; `
      + `rqspinlock stats: AB-BA ${abba}, AA ${aa}, timeouts ${tmo}, acquired ${rs1.acquired - rs0.acquired}` });
    log({ cpu: main, context: 'task', what: `lock words A ${hex(lw[0]!)} B ${hex(lw[1]!)}; held res locks cpu0 ${held[0]} cpu1 ${held[1]}; ${splats.length} splat(s)` });
    checks.push(['at least one -EDEADLK (AB-BA detected), counted by rqspinlock as AB-BA', deadlocks > 0 && abba === deadlocks && aa === 0]);
    checks.push(['failures are -EDEADLK or -ETIMEDOUT return values only', Object.keys(other).length === 0 && tmo === timeouts]);
    checks.push(['both go on after it: a full round later, each CPU completed double-lock sections', after !== undefined && after.ok.every((n) => n > 0)]);
    checks.push(['every workload ran all its iterations (nothing hung, nothing disabled)', allComplete && !st.aborted && st.violations === 0]);
    checks.push(['mutual exclusion: the non-atomic counter equals the successful sections', counter === ok]);
    checks.push(['lock words 0, no res lock held on either CPU', lw[0] === 0 && lw[1] === 0 && held[0] === 0 && held[1] === 0]);
    checks.push(['no splat', splats.length === 0]);
    return verdictOf(
      '-EDEADLK seen (AB-BA), both CPUs continue; counter == successful sections; only -EDEADLK/-ETIMEDOUT as failures; lock words 0; no splat',
      checks,
      `${rounds} round(s): ${ok} sections, counter ${counter}, ${deadlocks} -EDEADLK, ${timeouts} -ETIMEDOUT${Object.keys(other).length ? `, other ${JSON.stringify(other)}` : ''}; lock words ${lw.join(', ')}; ${splats.length} splat(s)`,
    );
  },
};

export const SEED004_SCENARIOS: readonly Scenario[] = [graphLockCheck, graphAbortUnwind, resSpinLockAbba];
