// Shared setup of the test/graph runtime tests: little-endian buffer helpers, one Runtime per
// file (started in beforeAll, stopped in afterAll), and the per-test tracking of the maps and
// programs a test created with the leak check run after it (programs unloaded, maps closed,
// rt.idle() resolved, then: no splat the test did not ask for, graph objects back where they
// started, graphObjCheck() empty).
import { expect, beforeAll, afterAll, beforeEach, afterEach } from 'vitest';
import { Runtime, type Program, type RuntimeOptions } from '../../src/runtime/runtime.js';
import type { BpfMap } from '../../src/maps/bpf_map.js';
import type { MapSpec } from '../../src/maps/map_ops.js';
import type { AbortPolicy } from '../../src/prog/prog_run.js';
import { graphObjStats, graphObjCheck } from '../../src/graph/bpf_obj.js';
import { formatSplat, type Splat } from '../../src/debug/splat.js';
import { fixture } from '../helpers.js';

export { u32 } from '../timers/timer_helpers.js';
// NaN (not timer_helpers' -1) for a missing value: a missing slot never equals a number.
export const rdU32 = (b: Uint8Array | undefined, off = 0): number => (b === undefined ? NaN : new DataView(b.buffer, b.byteOffset).getUint32(off, true));
/** Deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const rdI32 = (b: Uint8Array | undefined, off = 0): number => (b === undefined ? NaN : new DataView(b.buffer, b.byteOffset).getInt32(off, true));

/** One Runtime for the whole file: started in beforeAll, stopped in afterAll. */
export function runtimeSuite(options: RuntimeOptions): { readonly rt: Runtime } {
  let rt: Runtime | undefined;
  beforeAll(async () => { rt = await Runtime.start(options); });
  afterAll(async () => { await rt?.stop(); });
  return {
    get rt(): Runtime {
      if (rt === undefined) throw new Error('the Runtime is started in beforeAll');
      return rt;
    },
  };
}

export interface GraphSuiteOptions {
  /** Runtime.start's options for this file. */
  readonly runtime: RuntimeOptions;
  /** More checks after every test, run after the live-object check and before graphObjCheck(). */
  readonly afterEachChecks?: () => void;
}

export interface LoadOptions {
  readonly maps?: Readonly<Record<string, BpfMap>>;
  readonly args?: unknown;
  readonly abortPolicy?: AbortPolicy;
}

export interface GraphSuite {
  readonly rt: Runtime;
  /** graphObjStats().live when the test started (or at the last rebase()). */
  readonly live0: number;
  /** rt.splatCount() when the test started (or at the last consumeSplats()/rebase()). */
  readonly splats0: number;
  /** The maps and programs the test created; the afterEach closes and unloads what is left. */
  readonly maps: BpfMap[];
  readonly progs: Program[];
  /** rt.createMap, tracked (a function property: `const { mk } = g` is safe, it uses no `this`). */
  readonly mk: (spec: MapSpec) => BpfMap;
  /** rt.loadProgram of test/fixtures/`name`, tracked. */
  load(name: string, o?: LoadOptions): Promise<Program>;
  /** The splats since splats0. */
  newSplats(): Splat[];
  /** The test has checked the splats so far: the afterEach only looks at later ones. */
  consumeSplats(): void;
  /** Unload every tracked program and close every tracked map still open. */
  release(): Promise<void>;
  /** Take the current live objects and splat count as the baseline of the afterEach checks. */
  rebase(): void;
}

/**
 * Registers the hooks of a graph test file (see the opening comment) and returns what its tests
 * use. Read rt, live0 and splats0 inside tests and hooks only (they are set by the hooks).
 */
export function graphSuite(options: GraphSuiteOptions): GraphSuite {
  const r = runtimeSuite(options.runtime);
  let live0 = 0;
  let splats0 = 0;
  const maps: BpfMap[] = [];
  const progs: Program[] = [];
  const g: GraphSuite = {
    get rt() { return r.rt; },
    get live0() { return live0; },
    get splats0() { return splats0; },
    maps,
    progs,
    mk(spec) { const m = r.rt.createMap(spec); maps.push(m); return m; },
    async load(name, o = {}) {
      const p = await r.rt.loadProgram(fixture(name), o);
      progs.push(p);
      return p;
    },
    newSplats: () => r.rt.splats().slice(splats0),
    consumeSplats() { splats0 = r.rt.splatCount(); },
    async release() {
      for (const p of progs.splice(0)) await p.unload();
      for (const m of maps.splice(0)) if (!m.closed) await m.close();
    },
    rebase() { live0 = graphObjStats().live; splats0 = r.rt.splatCount(); },
  };
  beforeEach(() => { g.rebase(); });
  afterEach(async () => {
    await g.release();
    await g.rt.idle();
    // a test that provokes splats takes its own out of the count (consumeSplats)
    expect(g.newSplats().map(formatSplat)).toEqual([]);
    expect(graphObjStats().live).toBe(live0);
    options.afterEachChecks?.();
    expect(graphObjCheck()).toEqual([]);
  });
  return g;
}
