/*
 * coordinator.ts — the main thread's service loop: irq_work (RT), RCU grace periods and
 * callbacks, random interrupt injection, and later timers, all driven from one place.
 *
 * The loop sleeps on the doorbell word (RT_DOORBELL) with Atomics.waitAsync, so the main thread's
 * event loop stays free. A CPU that hands work to the coordinator (pushes to an llist) rings the
 * doorbell; ringing costs a notify, so callers ring only when the list was empty before their push
 * (a wake costs ~80 us round trip here: coalesce). Every wake polls every service; each service
 * answers how long it can wait before its next poll (or -1: only when the doorbell rings).
 *
 * Under a deterministic schedule (src/cpu/sched.ts), while a scheduled run is on, the services run
 * only in the coordinator's turns, with the virtual time, one poll per turn: the coordinator is one
 * more participant of the schedule, and its effects (grace periods ending, callbacks, timer
 * expiry, irq_work on RT) land on the same step of every replay. Services marked `realTime` (the
 * watchdog) keep polling on the wall clock between turns: they watch the threads, not the kernel.
 *
 * Contexts: main thread only. Services must not block for long: they run between the main
 * thread's other work (syscall-side calls, test code).
 */
import { I32, nrCpus } from '../mem/arena.js';
import { RT_DOORBELL, RT_DOORBELL_SLEEPING } from '../mem/layout.js';
import { schedActive, schedTurn, schedCoordTurn, schedCoordGo } from '../cpu/sched.js';

export interface CoordinatorService {
  readonly name: string;
  /** Do pending work; return the ms until the next poll is wanted, or -1 for "doorbell only". */
  poll(nowMs: number): number;
  /** Watches threads on the wall clock (not kernel state): polled between schedule turns too. */
  readonly realTime?: boolean;
}

/** How often the real-time services poll while a scheduled run is on. */
const SCHED_REALTIME_POLL_MS = 100;

const IDLE_POLL_MS = 250;

/** Wake the coordinator (any thread). Defined low (cpu/doorbell.ts) so every layer can ring it. */
export { ringDoorbell } from '../cpu/doorbell.js';
import { ringDoorbell } from '../cpu/doorbell.js';

export class Coordinator {
  readonly #services: CoordinatorService[] = [];
  #running = false;
  #done: Promise<void> = Promise.resolve();
  #wakes = 0;
  #polls = 0;

  add(s: CoordinatorService): void { this.#services.push(s); }
  remove(s: CoordinatorService): void {
    const i = this.#services.indexOf(s);
    if (i >= 0) this.#services.splice(i, 1);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#done = this.#loop();
  }

  async stop(): Promise<void> {
    this.#running = false;
    ringDoorbell();
    await this.#done;
  }

  /** Poll every service now (main thread), e.g. before resolving a synchronous wait. */
  pollNow(): number {
    // in a scheduled run the kernel's services move only in the coordinator's turns
    if (schedActive()) return this.#pollServices(performance.now(), true);
    this.#polls++;
    return this.#pollServices(performance.now(), false);
  }

  #pollServices(now: number, realTimeOnly: boolean): number {
    let next = -1;
    for (const s of this.#services) {
      if (realTimeOnly && s.realTime !== true) continue;
      const d = s.poll(now);
      if (d >= 0 && (next < 0 || d < next)) next = d;
    }
    return next;
  }

  /** The coordinator's part of a scheduled run: a poll per turn, the real-time services between. */
  async #schedTurns(): Promise<void> {
    let turns = 0;
    while (this.#running && schedActive()) {
      if (schedTurn() === nrCpus) {
        this.#polls++;
        schedCoordTurn((virtualMs) => this.#pollServices(virtualMs, false));
        // the turn may come straight back: let the event loop breathe now and then
        if ((++turns & 63) === 0) await new Promise<void>((r) => setImmediate(r));
        continue;
      }
      const go = schedCoordGo();
      if (schedTurn() === nrCpus) continue;
      const r = Atomics.waitAsync(I32, go.index, go.value, SCHED_REALTIME_POLL_MS);
      const res = r.async ? await r.value : r.value;
      this.#wakes++;
      if (res === 'timed-out') this.#pollServices(performance.now(), true);
    }
  }

  stats(): { wakes: number; polls: number } { return { wakes: this.#wakes, polls: this.#polls }; }

  async #loop(): Promise<void> {
    const idx = RT_DOORBELL >> 2;
    const sleepI = RT_DOORBELL_SLEEPING >> 2;
    while (this.#running) {
      if (schedActive()) { await this.#schedTurns(); continue; }
      const seen = Atomics.load(I32, idx);
      const next = this.pollNow();
      if (!this.#running) break;
      const timeout = next < 0 ? IDLE_POLL_MS : Math.min(next, IDLE_POLL_MS);
      if (timeout <= 0) { await new Promise<void>((r) => setImmediate(r)); continue; }
      // ringers notify only while this flag is set (src/rcu/state.ts ringDoorbell)
      Atomics.store(I32, sleepI, 1);
      const r = Atomics.waitAsync(I32, idx, seen, timeout);
      if (r.async) await r.value;
      Atomics.store(I32, sleepI, 0);
      this.#wakes++;
    }
  }
}
