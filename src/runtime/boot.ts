/*
 * boot.ts — what every thread of a runtime does to become a CPU: attach kernel memory, take its
 * CPU id, initialise its context state, and plug the upper layers' handlers into the interrupt
 * windows (the timer softirq and the map record's timer free included). The main thread does the
 * same as the housekeeping CPU (id = nrCpus) after formatting the arena (global inits happen only
 * there).
 */
import { attachArena } from '../mem/arena.js';
import { setThisCpu } from '../mem/this_cpu.js';
import { contextInit } from '../cpu/context.js';
import { setIrqHooks } from '../cpu/window.js';
import { defineSite } from '../cpu/sites.js';
import { bpfProgRun, bpfProgIncNotZero, bpfProgPut, runTimerCallback } from '../prog/prog_run.js';
import { bpfTimerThreadInit, registerBpfTimerProgOps } from '../timers/bpf_timer.js';
import { rcuThreadInit } from '../rcu/rcu.js';
import { irqWorkThreadInit } from '../cpu/irq_work.js';
import { historyThreadInit } from '../maps/map_history.js';

/** Windows of the CPU loop (defined here so the main thread knows them too). */
export const SITE_WORKLOAD_LOOP = defineSite('cpu.workload.loop');
export const SITE_TESTRUN_LOOP = defineSite('cpu.test_run.loop');

export function bootThread(sab: SharedArrayBuffer, cpu: number): void {
  attachArena(sab);
  setThisCpu(cpu);
  contextInit();
  setIrqHooks({ runProg: (id: number) => { bpfProgRun(id); } });
  rcuThreadInit();
  irqWorkThreadInit();
  historyThreadInit();
  bpfTimerThreadInit();
  registerBpfTimerProgOps({ incNotZero: bpfProgIncNotZero, put: (s) => { bpfProgPut(s); }, run: runTimerCallback });
}
