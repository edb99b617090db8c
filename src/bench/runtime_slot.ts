/*
 * runtime_slot.ts — the one runtime a bench suite holds, and the fixtures (a map and the program
 * that works on it) its cases share.
 *
 * Invariants: at most one runtime is running (one per thread): get() with another allocator or
 * CPU count stops the running one first, and a runtime switch drops every fixture, since they
 * lived in it. A fixture is made and set up once per runtime (key -> fixture); `fresh` tells the
 * case it was just made, so the case runs its untimed warm-up (cases.ts, WARM_S) before its first
 * measured run. Runtimes boot and stop outside every measured window. close() stops the runtime;
 * the suite calls it once, at its end (createBenchSuite).
 */
import { Runtime, type Program } from '../runtime/runtime.js';
import type { BpfMap } from '../maps/bpf_map.js';
import type { BenchRequest } from '../cli/engine_api.js';
import { MEMORY_BYTES } from './runtime_helpers.js';

export interface RtConfig {
  readonly dynAlloc: 'bpf_mem_alloc' | 'kmalloc';
  /** CPUs of the runtime. @defaultValue the request's CPU count */
  readonly cpus?: number;
}

export interface Fixture { readonly m: BpfMap; readonly prog: Program; readonly user: SharedArrayBuffer | null }

/**
 * Holds at most one runtime; cases ask for the configuration they need. A fixture made in a new
 * runtime runs in workers whose JIT has not seen the program yet: the map_perf, htab_mem and
 * scaling cases run WARM_S untimed first (`fresh`), so a runtime switch does not bias the round.
 */
export class RuntimeSlot {
  readonly req: BenchRequest;
  #rt: Runtime | null = null;
  #cfg: RtConfig | null = null;
  #cache = new Map<string, Fixture>();
  constructor(req: BenchRequest) { this.req = req; }

  async get(cfg: RtConfig): Promise<Runtime> {
    const cpus = cfg.cpus ?? this.req.cpus;
    if (this.#rt !== null && this.#cfg?.dynAlloc === cfg.dynAlloc && this.#rt.cpus === cpus) return this.#rt;
    await this.close();
    this.#rt = await Runtime.start({ cpus, preemptRt: this.req.preemptRt, dynAlloc: cfg.dynAlloc, seed: this.req.seed, memoryBytes: MEMORY_BYTES });
    this.#cfg = cfg;
    return this.#rt;
  }

  /** A map + program for `key`, created and set up once per runtime. */
  async fixture(key: string, cfg: RtConfig, o: {
    make: (rt: Runtime) => BpfMap; prog: URL; userBytes?: number; setup?: (rt: Runtime, f: Fixture) => Promise<void>;
  }): Promise<{ rt: Runtime; fresh: boolean } & Fixture> {
    const rt = await this.get(cfg);
    let f = this.#cache.get(key);
    const fresh = f === undefined;
    if (f === undefined) {
      const m = o.make(rt);
      const prog = await rt.loadProgram(o.prog, { maps: { m } });
      f = { m, prog, user: o.userBytes !== undefined ? new SharedArrayBuffer(o.userBytes) : null };
      if (o.setup !== undefined) await o.setup(rt, f);
      this.#cache.set(key, f);
    }
    return { rt, fresh, ...f };
  }

  async close(): Promise<void> {
    this.#cache.clear();
    const rt = this.#rt;
    this.#rt = null; this.#cfg = null;
    if (rt !== null) await rt.stop();
  }
}
