/*
 * cpu_main.ts — the life of one CPU worker: boot, idle, and the control calls the main thread
 * makes through comlink (load a program, test runs, workloads, shutdown).
 *
 * Idle: between control calls the CPU is idle (an RCU extended quiescent state). It waits with
 * Atomics.waitAsync on its PC_WAKE word, so its event loop keeps serving control messages, and
 * takes pending interrupts whenever it is woken (the coordinator bumps PC_WAKE after raising one).
 *
 * Workloads: a tight loop on this thread, no messages: each iteration runs the program in the
 * requested context, then passes the loop window (interrupts, kprobes, injections are delivered
 * there) and reports an RCU quiescent state. The loop ends after `iterations`, at its time bound,
 * or at the first window after PEND_STOP is raised (rt.stop()), or when the program is disabled by
 * an abort (its later runs are refused: the loop ends at the first refusal).
 *
 * Progress (the main thread's watchdog reads it): PC_PROGRESS is bumped once per idle-loop turn
 * (the event loop is alive) and once per workload / test-run iteration (a program run ended). A
 * CPU whose word stands still for the watchdog period while it is not waiting for a lock is stuck.
 */
import { I32 } from '../mem/arena.js';
import { pcpuI, thisCpu } from '../mem/this_cpu.js';
import { PC_WAKE, PC_PENDING, PEND_STOP, PEND_SRC, PC_PROGRESS } from '../mem/layout.js';
import { srcResume, srcPause } from '../cpu/irq_source.js';
import { contextFromName, enterContext, exitContext, CTX_TASK } from '../cpu/context.js';
import { window, processPending } from '../cpu/window.js';
import { schedJoin, schedLeave, schedActive, schedEnabled } from '../cpu/sched.js';
import { nowMs } from '../mem/arena.js';
import { defineSite } from '../cpu/sites.js';
import { errnoName, BpfError, EPERM, EINVAL } from '../errno.js';
import { openMap } from '../maps/registry.js';
import { historyOn, recordingMap } from '../maps/map_history.js';
import { rcuQuiescentState, rcuIdleEnter, rcuIdleExit } from '../rcu/rcu.js';
import { isDefinedProgram, SPIN_LOCK_REFUSED_TYPES, type DefinedProgram } from '../prog/program.js';
import { btfDefineTypes, checkRootTarget } from '../graph/btf_types.js';
import { btfRecordFromWords } from '../maps/btf_record.js';
import { MAP_LOCK_OFF, MAP_TIMER_OFF, MAP_GRAPH_REC } from '../maps/map_ops.js';

/**
 * The verifier's "tracing progs cannot use bpf_spin_lock yet", at load: does the program's code
 * (run and its callbacks) call ctx.bpfSpinLock? Reading the source is what a verifier does with
 * the instructions; a call made some other way is still refused at run time.
 */
function usesBpfSpinLock(def: DefinedProgram): boolean {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- only its source text is read; it is never called
  const fns: unknown[] = [def.run, ...Object.values(def.callbacks ?? {})];
  return fns.some((fn) => typeof fn === 'function' && /\.bpfSpinLock\s*\(/.test(Function.prototype.toString.call(fn)));
}
import {
  registerProgram, unregisterProgram, getProgram, bpfProgRunLoaded, lastRunSkipped, lastRunRefused,
  addRunTime, progDisabled, describeThrown, PS_MISSES, type LoadedProgram,
} from '../prog/prog_run.js';
import { bootThread, SITE_WORKLOAD_LOOP, SITE_TESTRUN_LOOP } from './boot.js';
import type {
  CpuControl, CpuBootRequest, LoadProgramRequest, ProgramInfo, TestRunRequest, TestRunResult,
  WorkloadRequest, WorkloadCpuResult,
} from '../ipc/protocol.js';
import type { BpfMapImpl } from '../maps/map_ops.js';


let stopped = false;
let nrCpuIdsSeen = 0;

function busyEnter(): void { rcuIdleExit(); srcResume(); }
function busyExit(): void { srcPause(); rcuQuiescentState(); rcuIdleEnter(); }

async function idleLoop(): Promise<void> {
  const wakeI = pcpuI + (PC_WAKE >> 2);
  const progI = pcpuI + (PC_PROGRESS >> 2);
  while (!stopped) {
    I32[progI] = I32[progI]! + 1;
    const seen = Atomics.load(I32, wakeI);
    // during a scheduled run an idle CPU takes no interrupts: only the run's CPUs move the kernel
    if ((Atomics.load(I32, pcpuI + (PC_PENDING >> 2)) & ~(PEND_STOP | PEND_SRC)) && !schedActive()) {
      rcuIdleExit();
      processPending();
      rcuQuiescentState();
      rcuIdleEnter();
    }
    if (schedEnabled()) {
      // Under a schedule the idle loop polls instead: with thousands of synchronous Atomics.wait
      // hand-offs on this thread, a pending Atomics.waitAsync was seen (Node 20) to stall the
      // worker's event loop for seconds — control messages undelivered, about one run in three;
      // never with a timer. A 2 ms poll costs an idle CPU nothing that matters here.
      await new Promise<void>((res) => setTimeout(res, 2));
      continue;
    }
    const r = Atomics.waitAsync(I32, wakeI, seen, 50);
    if (r.async) await r.value;
  }
}

function runOnce(p: LoadedProgram, ctx: number): number {
  if (ctx === CTX_TASK) return bpfProgRunLoaded(p);
  const saved = enterContext(ctx);
  const ret = bpfProgRunLoaded(p);
  exitContext(ctx, saved);
  return ret;
}

function mustProgram(id: number): LoadedProgram {
  const p = getProgram(id);
  if (p === undefined) throw new Error(`cpu ${thisCpu}: program ${id} is not loaded`);
  if (progDisabled(p)) throw new BpfError(EPERM, `program '${p.def.name}' is disabled: it aborted earlier (see its prog_abort splat)`);
  return p;
}

export const cpuControl: CpuControl = {
  async boot(req: CpuBootRequest) {
    const t0 = performance.now();
    bootThread(req.sab, req.cpu);
    nrCpuIdsSeen = I32[2]!; // HDR_NR_CPU_IDS
    rcuIdleEnter();
    srcPause();
    void idleLoop();
    return { bootMs: performance.now() - t0 };
  },

  async loadProgram(req: LoadProgramRequest): Promise<ProgramInfo> {
    let mod: unknown;
    try {
      mod = await import(req.url);
    } catch (e) {
      if (e instanceof Error) throw e;
      throw new Error(`${req.url}: importing the program module threw ${describeThrown(e)}`);
    }
    const def = (mod as { default?: unknown }).default;
    if (!isDefinedProgram(def)) throw new TypeError(`${req.url}: the default export is not a defineProgram(...) value`);
    const maps: Record<string, BpfMapImpl> = {};
    for (const name of def.maps ?? []) {
      const ptr = req.maps[name];
      if (ptr === undefined) throw new TypeError(`program '${def.name}' uses map '${name}', which was not given to loadProgram`);
      maps[name] = historyOn ? recordingMap(openMap(ptr)) : openMap(ptr);
    }
    if (SPIN_LOCK_REFUSED_TYPES.has(def.type) && usesBpfSpinLock(def)) {
      throw new BpfError(EINVAL, `program '${def.name}' (${def.type}): tracing progs cannot use bpf_spin_lock yet`);
    }
    const typeIds = btfDefineTypes(def.types, `program '${def.name}'`);
    for (const [name, m] of Object.entries(maps)) {
      // a root of one of its maps contains a type: it must be defined by now, with the node there
      const g = (off: number): number => I32[(m.ptr + off) >> 2]!;
      for (const r of btfRecordFromWords(g(MAP_LOCK_OFF), g(MAP_TIMER_OFF), g(MAP_GRAPH_REC)).roots) checkRootTarget(r, `program '${def.name}': map '${name}'`);
    }
    registerProgram(req.id, def, Object.freeze(maps), req.statePtr, nrCpuIdsSeen, req.seed, req.args, { abortPolicy: req.abortPolicy ?? 'disable', typeIds });
    for (const w of def.windows ?? []) defineSite(w);
    return {
      name: def.name, type: def.type, sleepable: def.sleepable === true, maps: [...(def.maps ?? [])],
      windows: [...(def.windows ?? [])], callbacks: Object.keys(def.callbacks ?? {}), types: Object.keys(def.types ?? {}),
    };
  },

  unloadProgram(id: number): void { unregisterProgram(id); },

  testRun(req: TestRunRequest): TestRunResult {
    const p = mustProgram(req.id);
    const ctx = contextFromName(req.context);
    busyEnter();
    p.ctx.args = req.args ?? p.defaultArgs;
    const missesBefore = I32[p.lineI + (PS_MISSES >> 2)]!;
    let runs = 0;
    let retval = 0;
    const progI = pcpuI + (PC_PROGRESS >> 2);
    const t0 = performance.now();
    for (let i = 0; i < req.repeat; i++) {
      p.ctx.iter = i;
      const r = runOnce(p, ctx);
      if (!lastRunSkipped) { runs++; retval = r; } else if (lastRunRefused) break;
      window(SITE_TESTRUN_LOOP);
      rcuQuiescentState();
      I32[progI] = I32[progI]! + 1;
    }
    const ns = (performance.now() - t0) * 1e6;
    addRunTime(p, ns);
    p.ctx.args = p.defaultArgs;
    busyExit();
    return { retval, runs, durationNs: ns, recursionMisses: I32[p.lineI + (PS_MISSES >> 2)]! - missesBefore };
  },

  runWorkload(req: WorkloadRequest): WorkloadCpuResult {
    // Under a schedule, arrive first (a CPU whose workload fails below still arrives, and leaves
    // in the finally), so the run's first pick waits for every participant.
    schedJoin();
    try {
      return runWorkloadLoop(req);
    } finally {
      schedLeave();
    }
  },

  shutdown(): void {
    stopped = true;
    Atomics.add(I32, pcpuI + (PC_WAKE >> 2), 1);
    Atomics.notify(I32, pcpuI + (PC_WAKE >> 2));
  },
};

function runWorkloadLoop(req: WorkloadRequest): WorkloadCpuResult {
  const p = mustProgram(req.id);
  const ctx = contextFromName(req.context);
  busyEnter();
  const pendI = pcpuI + (PC_PENDING >> 2);
  Atomics.and(I32, pendI, ~PEND_STOP);
  p.ctx.args = req.args ?? p.defaultArgs;
  const errs = new Float64Array(1024);
  let ok = 0, skipped = 0, i = 0, stoppedEarly = false, disabled = false;
  const progI = pcpuI + (PC_PROGRESS >> 2);
  const t0 = performance.now();
  // a 'seconds' bound is virtual time under a schedule (the same iteration ends it in a replay)
  const clock = schedEnabled() ? nowMs : (): number => performance.now();
  const deadline = req.durationMs > 0 ? clock() + req.durationMs : Infinity;
  for (; i < req.iterations; i++) {
    const pend = I32[pendI]!; // a hint (memory-ordering rule 6): window() and the stop bit act on it; a stale 0 costs one more run
    if (pend !== 0) {
      if ((pend & PEND_STOP) !== 0) { stoppedEarly = true; break; }
      window(SITE_WORKLOAD_LOOP);
    }
    if ((i & 127) === 0 && clock() >= deadline) { stoppedEarly = true; break; }
    p.ctx.iter = i;
    const r = runOnce(p, ctx);
    if (lastRunSkipped) {
      if (lastRunRefused) { disabled = true; stoppedEarly = true; break; }
      skipped++;
    } else if (r < 0) errs[(-r) & 1023]!++;
    else ok++;
    rcuQuiescentState();
    I32[progI] = I32[progI]! + 1;
  }
  const ns = (performance.now() - t0) * 1e6;
  addRunTime(p, ns);
  p.ctx.args = p.defaultArgs;
  busyExit();
  const errors: Record<string, number> = {};
  for (let e = 0; e < 1024; e++) if (errs[e]! > 0) errors[errnoName(e)] = errs[e]!;
  return { cpu: thisCpu, iterations: i, ok, errors, skipped, durationNs: ns, stopped: stoppedEarly, disabled };
}
