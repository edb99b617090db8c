/*
 * cpu_fleet.ts — the main thread's hold on the CPU workers: every control call goes through
 * here, and so does the watchdog that keeps the promise "nothing hangs".
 *
 * Calls: each control call on a CPU is tracked until it settles. A CPU that goes offline rejects
 * every call pending on it, and every later one at once, with a CpuOfflineError naming the CPU
 * and why (stuck, died, or the runtime stopped).
 *
 * Watchdog (a coordinator service, main thread): every CPU bumps its PC_PROGRESS word at each
 * idle-loop turn and after each program run of a workload or test run. A CPU whose word stands
 * still for `watchdogMs` while it is not waiting for a lock (PC_WAIT_LOCK: the lock layer judges
 * those waits, and blames the holder) is stuck — an endless loop in a program, a permanent
 * Atomics.wait, a module whose top level never returns. It is reported once as a 'cpu_stuck'
 * splat (what it ran, where, which locks it held), taken offline and its thread terminated. A
 * worker thread that exits by itself (process.exit, an uncaught error) is reported as 'cpu_died'
 * when its 'exit' event arrives (at once). The hot path pays nothing: the watchdog reads words
 * the CPUs write anyway, from the main thread.
 *
 * Offline: PC_OFFLINE is set (lock waiters then time out on locks the dead CPU held instead of
 * waiting forever), its RCU state is marked idle (grace periods no longer wait for it: it will
 * never read again), its interrupt sources are cleared.
 */
import type { Worker } from 'node:worker_threads';
import type * as Comlink from 'comlink';
import { I32 } from '../mem/arena.js';
import { perCpuBlock } from '../mem/this_cpu.js';
import {
  PC_PROGRESS, PC_WAIT_LOCK, PC_OFFLINE, PC_RCU_IDLE, PC_RCU_TRACE_NESTING, PC_PENDING, PC_SRC_BASE,
  IRQ_SOURCES, IRQ_SOURCE, CPU_OFFLINE_STUCK, CPU_OFFLINE_DIED,
} from '../mem/layout.js';
import { splatOnCpu } from '../debug/splat.js';
import { ringDoorbell } from '../cpu/doorbell.js';
import type { CpuControl } from '../ipc/protocol.js';
import type { CoordinatorService } from './coordinator.js';
import { schedActive, schedTurn } from '../cpu/sched.js';

export type CpuOfflineCode = 'ERR_BPFSIM_CPU_STUCK' | 'ERR_BPFSIM_CPU_DIED' | 'ERR_BPFSIM_STOPPED';

/** A control call on a CPU that cannot complete: the CPU is stuck, died, or the runtime stopped. */
export class CpuOfflineError extends Error {
  readonly code: CpuOfflineCode;
  readonly cpu: number;
  constructor(code: CpuOfflineCode, cpu: number, message: string) {
    super(message);
    this.name = 'CpuOfflineError';
    this.code = code;
    this.cpu = cpu;
  }
}

interface Pending { readonly what: string; readonly reject: (e: Error) => void }

interface CpuSlot {
  readonly cpu: number;
  readonly worker: Worker;
  readonly control: Comlink.Remote<CpuControl>;
  readonly pending: Set<Pending>;
  offline: CpuOfflineError | null;
  lastProgress: number;
  lastChangeMs: number;
}

/** @internal the runtime's CPU workers: tracked control calls and the watchdog (not public; stripped from the .d.ts) */
export class CpuFleet implements CoordinatorService {
  readonly name = 'watchdog';
  /** It watches threads, not kernel state: polled on the wall clock during scheduled runs too. */
  readonly realTime = true;
  readonly #slots: CpuSlot[];
  readonly #watchdogMs: number;
  /** Describes what a CPU was running, for reports (the runtime knows program names). */
  readonly #describe: (cpu: number) => string;
  #stopping = false;

  constructor(workers: readonly Worker[], controls: readonly Comlink.Remote<CpuControl>[], watchdogMs: number, describe: (cpu: number) => string) {
    this.#watchdogMs = watchdogMs;
    this.#describe = describe;
    const now = performance.now();
    this.#slots = workers.map((worker, cpu) => ({
      cpu, worker, control: controls[cpu]!, pending: new Set<Pending>(), offline: null,
      lastProgress: Atomics.load(I32, (perCpuBlock(cpu) + PC_PROGRESS) >> 2), lastChangeMs: now,
    }));
    for (const s of this.#slots) {
      s.worker.on('exit', (code) => {
        if (this.#stopping || s.offline !== null) return;
        splatOnCpu(s.cpu, 'cpu_died', `cpu ${s.cpu}: its thread exited with code ${code} while ${this.#describe(s.cpu)}; the CPU is offline`);
        this.#takeOffline(s, new CpuOfflineError('ERR_BPFSIM_CPU_DIED', s.cpu, `cpu ${s.cpu} died: its thread exited with code ${code}`), CPU_OFFLINE_DIED);
      });
    }
  }

  /** Why `cpu` is offline, or null. */
  offline(cpu: number): CpuOfflineError | null { return this.#slots[cpu]!.offline; }

  /** Run one control call on `cpu`, tracked so that it settles whatever happens to the CPU. */
  call<T>(cpu: number, what: string, f: (c: Comlink.Remote<CpuControl>) => Promise<T>): Promise<T> {
    const s = this.#slots[cpu]!;
    if (s.offline !== null) return Promise.reject(s.offline);
    return new Promise<T>((resolve, reject) => {
      const p: Pending = { what, reject };
      s.pending.add(p);
      f(s.control).then(
        (v) => { if (s.pending.delete(p)) resolve(v); },
        (e: unknown) => { if (s.pending.delete(p)) reject(e); },
      );
    });
  }

  /** Watchdog poll (coordinator). */
  poll(now: number): number {
    for (const s of this.#slots) {
      if (s.offline !== null) continue;
      const b = perCpuBlock(s.cpu);
      const prog = Atomics.load(I32, (b + PC_PROGRESS) >> 2);
      // under a schedule a CPU waiting for its turn is not stuck: only the holder of the turn runs
      const waitsTurn = schedActive() && schedTurn() !== s.cpu;
      if (prog !== s.lastProgress || waitsTurn || Atomics.load(I32, (b + PC_WAIT_LOCK) >> 2) !== 0) {
        s.lastProgress = prog;
        s.lastChangeMs = now;
        continue;
      }
      const still = now - s.lastChangeMs;
      if (still >= this.#watchdogMs) this.#stuck(s, still);
    }
    return Math.max(10, Math.min(250, this.#watchdogMs / 8));
  }

  #stuck(s: CpuSlot, stillMs: number): void {
    const what = this.#describe(s.cpu);
    const pending = [...s.pending].map((p) => p.what);
    splatOnCpu(s.cpu, 'cpu_stuck', `cpu ${s.cpu} made no progress for ${stillMs.toFixed(0)} ms while ${what}${pending.length ? ` (pending: ${pending.join(', ')})` : ''}; the CPU is taken offline and its thread terminated`);
    this.#takeOffline(s, new CpuOfflineError('ERR_BPFSIM_CPU_STUCK', s.cpu, `cpu ${s.cpu} is stuck: no progress for ${stillMs.toFixed(0)} ms while ${what}`), CPU_OFFLINE_STUCK);
    void s.worker.terminate().catch(() => { /* already gone */ });
  }

  #takeOffline(s: CpuSlot, err: CpuOfflineError, how: number): void {
    s.offline = err;
    const b = perCpuBlock(s.cpu);
    Atomics.store(I32, (b + PC_OFFLINE) >> 2, how);
    // It will never read again: grace periods stop waiting for it.
    Atomics.store(I32, (b + PC_RCU_IDLE) >> 2, 1);
    Atomics.store(I32, (b + PC_RCU_TRACE_NESTING) >> 2, 0);
    for (let i = 0; i < IRQ_SOURCES; i++) Atomics.store(I32, (b + PC_SRC_BASE + i * IRQ_SOURCE) >> 2, 0);
    Atomics.store(I32, (b + PC_PENDING) >> 2, 0);
    ringDoorbell();
    for (const p of s.pending) p.reject(err);
    s.pending.clear();
  }

  /**
   * Stop every CPU within a bound: ask each online one to shut down (up to `graceMs`), reject
   * whatever is still pending with ERR_BPFSIM_STOPPED, and terminate every thread (bounded too).
   */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    const timer = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());
    await Promise.all(this.#slots.map(async (s) => {
      if (s.offline !== null) return;
      try { await Promise.race([s.control.shutdown(), timer(graceMs)]); } catch { /* worker gone */ }
    }));
    for (const s of this.#slots) {
      const err = new CpuOfflineError('ERR_BPFSIM_STOPPED', s.cpu, `cpu ${s.cpu}: the runtime was stopped`);
      for (const p of s.pending) p.reject(err);
      s.pending.clear();
      if (s.offline === null) s.offline = err;
    }
    await Promise.race([
      Promise.all(this.#slots.map((s) => s.worker.terminate().catch(() => 0))),
      timer(graceMs * 2),
    ]);
  }
}
