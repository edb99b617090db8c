/*
 * program.ts — what a BPF program is in bpfsim: an ES module whose default export is the result
 * of defineProgram({ name, type, sleepable, maps, run }). The module is imported in every CPU
 * worker; `run(ctx, maps)` is called with this CPU's helper context and the program's maps (one
 * BpfMapImpl per map name, bound to this thread).
 *
 * The program type decides the recursion guard (reference §1.4): tracing types (kprobe,
 * tracepoint, perf_event) share the per-CPU bpf_prog_active counter; every other type has its
 * own per-program per-CPU `active` counter and counts recursion misses.
 *
 * `callbacks` are the program's async callbacks (bpf_timer callbacks): ctx.timerSetCallback(timer,
 * 'name') picks one by name; it runs later in softirq on the CPU that armed the timer as
 * `name(ctx, map, key, value, maps)` (map: the timer's map; key, value: pointers; maps: the
 * program's maps as run gets them) and must return 0 (the verifier's rule).
 */
import type { ProgramContext } from './helpers.js';
import type { BpfMapImpl } from '../maps/map_ops.js';
import type { ObjTypeDecl } from '../graph/btf_types.js';
import { PROG_TYPES, type ProgType } from './prog_types.js';

export { PROG_TYPES, TRACING_PROG_TYPES, SPIN_LOCK_REFUSED_TYPES } from './prog_types.js';
export type { ProgType } from './prog_types.js';

export type ProgramMaps = Readonly<Record<string, BpfMapImpl>>;

/** An async (timer) callback: (ctx, map, key pointer, value pointer, the program's maps) → 0. */
export type TimerCallback<M extends ProgramMaps = ProgramMaps> = (ctx: ProgramContext, map: BpfMapImpl, key: number, value: number, maps: M) => number;

/** Callbacks per program (the callback index must fit in 8 bits of the timer's callback word). */
export const MAX_PROG_CALLBACKS = 255;

export interface ProgramDefinition<M extends ProgramMaps = ProgramMaps> {
  readonly name: string;
  readonly type: ProgType;
  /** Sleepable programs run under RCU tasks-trace instead of RCU. */
  readonly sleepable?: boolean;
  /** Names of the maps the program uses; bound at load time with rt.loadProgram(url, { maps }). */
  readonly maps?: readonly string[];
  /**
   * Windows (sites) the program defines with ctx.window(name): they exist once the program is
   * loaded, so that rt.inject({ at }) and kprobes can name them (a module's functions exist once
   * it loads). A window the program passes without declaring it still works, but cannot be named
   * from the main thread.
   */
  readonly windows?: readonly string[];
  /** The program body. Returns the program's return value (a number; helpers return -errno). */
  run(ctx: ProgramContext, maps: M): number;
  /**
   * Callbacks by name: bpf_timer callbacks `(ctx, map, key, value, maps) => 0`, rbtree comparators
   * `less(ctx, a, b, maps) => boolean` (a, b: node field pointers) named by ctx.rbtreeAdd, and
   * `exception(ctx, cookie, maps) => number`, the program's exception callback (its return value
   * becomes the program's after ctx.throw). @defaultValue none
   */
  readonly callbacks?: Readonly<Record<string, ProgramCallback<M>>>;
  /**
   * Object types for ctx.objNew (the structs BTF describes): `{ node: { size: 48, fields: [{ type:
   * 'bpf_rb_node', offset: 0 }, { type: 'bpf_list_node', offset: 24 }, { type: 'bpf_refcount',
   * offset: 40 }] } }`. Fields: bpf_spin_lock, bpf_res_spin_lock, bpf_list_head / bpf_rb_root
   * (with `contains: { type, field }`), bpf_list_node, bpf_rb_node, bpf_refcount
   * (src/graph/btf_types.ts). @defaultValue none
   */
  readonly types?: Readonly<Record<string, ObjTypeDecl>>;
}

/**
 * Any of the program's callbacks. The three shapes (TimerCallback, LessCallback,
 * ExceptionCallback) differ by position, so the record takes a common signature; annotate a
 * callback with its own type where that helps.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ProgramCallback<M extends ProgramMaps = ProgramMaps> = (ctx: ProgramContext, a: any, b: any, c: any, maps: M) => number | boolean;

/** An rbtree comparator: is node `a` less than node `b`? (pointers to the bpf_rb_node fields) */
export type LessCallback<M extends ProgramMaps = ProgramMaps> = (ctx: ProgramContext, a: number, b: number, maps: M) => boolean;
/** The exception callback: the program's return value after ctx.throw(cookie). */
export type ExceptionCallback<M extends ProgramMaps = ProgramMaps> = (ctx: ProgramContext, cookie: number, maps: M) => number;

const BRAND = Symbol.for('bpfsim.program');

export interface DefinedProgram<M extends ProgramMaps = ProgramMaps> extends ProgramDefinition<M> {
  readonly [BRAND]: true;
}

/** Define a program; the module's default export must be this value. */
export function defineProgram<M extends ProgramMaps = ProgramMaps>(def: ProgramDefinition<M>): DefinedProgram<M> {
  if (typeof def !== 'object' || def === null) throw new TypeError('defineProgram: expected an object');
  if (typeof def.name !== 'string' || def.name === '') throw new TypeError('defineProgram: `name` must be a non-empty string');
  if (!(PROG_TYPES as readonly string[]).includes(def.type)) {
    throw new TypeError(`defineProgram(${def.name}): \`type\` must be one of ${PROG_TYPES.join(', ')}; got ${JSON.stringify(def.type)}`);
  }
  if (typeof def.run !== 'function') throw new TypeError(`defineProgram(${def.name}): \`run\` must be a function`);
  if (def.maps !== undefined && !Array.isArray(def.maps)) throw new TypeError(`defineProgram(${def.name}): \`maps\` must be an array of names`);
  if (def.windows !== undefined && (!Array.isArray(def.windows) || def.windows.some((w) => typeof w !== 'string' || w === ''))) {
    throw new TypeError(`defineProgram(${def.name}): \`windows\` must be an array of non-empty site names`);
  }
  if (def.callbacks !== undefined) {
    if (typeof def.callbacks !== 'object' || def.callbacks === null) throw new TypeError(`defineProgram(${def.name}): \`callbacks\` must be an object of functions`);
    const names = Object.keys(def.callbacks);
    if (names.length > MAX_PROG_CALLBACKS) throw new TypeError(`defineProgram(${def.name}): at most ${MAX_PROG_CALLBACKS} callbacks; got ${names.length}`);
    for (const n of names) {
      if (typeof def.callbacks[n] !== 'function') throw new TypeError(`defineProgram(${def.name}): callback '${n}' must be a function`);
    }
  }
  if (def.types !== undefined && (typeof def.types !== 'object' || def.types === null || Array.isArray(def.types))) {
    throw new TypeError(`defineProgram(${def.name}): \`types\` must be an object of { size, fields } (checked in full at load)`);
  }
  return Object.freeze({ ...def, [BRAND]: true as const });
}

export function isDefinedProgram(v: unknown): v is DefinedProgram {
  return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[BRAND] === true;
}
