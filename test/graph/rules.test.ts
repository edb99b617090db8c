// Every rule of docs/GRAPH.md broken once, each in its own program (gr_rules.mjs?v=<rule>, named
// gr_rule_<rule>). For each: retval -1; exactly one new splat, a 'prog_abort' naming the rule and
// the program; what the run held unwound (stats().unwound) and every lock word involved 0; the
// objects the run owned freed (live = baseline + the nodes left in collections, and back to the
// baseline once the maps are freed); under the default policy the program is disabled (a second
// testRun rejects EPERM), under abortPolicy 'continue' it runs (and aborts) again. Also: a
// tracing program using bpf_spin_lock is refused at load (or, reaching it unseen, at run time),
// and bad type declarations are refused with the kernel's BTF errors. A long rule text does not
// push "what was released" out of the 204-byte splat message.
import { describe, it, expect } from 'vitest';
import type { Program } from '../../src/runtime/runtime.js';
import type { MapSpec } from '../../src/maps/map_ops.js';
import type { MapField } from '../../src/maps/btf_record.js';
import type { AbortPolicy } from '../../src/prog/prog_run.js';
import { graphObjStats } from '../../src/graph/bpf_obj.js';
import { I32 } from '../../src/mem/arena.js';
import { BpfError } from '../../src/errno.js';
import { formatSplat, type Splat } from '../../src/debug/splat.js';
import { fixture } from '../helpers.js';
import { graphSuite, u32, rdU32 } from './graph_harness.js';

// the tests take their own splats out of the count (g.consumeSplats())
const g = graphSuite({ runtime: { cpus: 2, memoryBytes: 64 << 20 } });
const { mk } = g;
const newSplats = (): Splat[] => g.newSplats();
const word = (p: number): number => Atomics.load(I32, p >> 2);

/** The error code a promise rejects with ('no error' if it resolves). */
async function rejectCode(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (e: unknown) { if (e instanceof BpfError) return e.code; throw e; }
  return 'no error';
}
function throwCode(fn: () => unknown): string {
  try { fn(); } catch (e: unknown) { if (e instanceof BpfError) return e.code; throw e; }
  return 'no error';
}

const VAL_FIELDS: readonly MapField[] = [
  { type: 'bpf_spin_lock', offset: 0 }, { type: 'bpf_res_spin_lock', offset: 4 },
  { type: 'bpf_list_head', offset: 8, contains: { type: 'gr_rnode', field: 24 } },
  { type: 'bpf_rb_root', offset: 24, contains: { type: 'gr_rnode', field: 0 } },
];

/** The maps of gr_rules.mjs and one rule's program. */
async function loadRule(v: string, abortPolicy: AbortPolicy): Promise<{ p: Program; lockWords: () => number[] }> {
  const val = mk({ type: 'array', name: 'val', keySize: 4, valueSize: 40, maxEntries: 2, fields: VAL_FIELDS });
  const tmap = mk({ type: 'array', name: 'tmap', keySize: 4, valueSize: 24, maxEntries: 1, fields: [{ type: 'bpf_spin_lock', offset: 0 }, { type: 'bpf_timer', offset: 8 }] });
  const res = mk({ type: 'array', name: 'res', keySize: 4, valueSize: 32, maxEntries: 1 });
  const p = await g.load(`gr_rules.mjs?v=${v}`, { maps: { val, tmap, res }, abortPolicy });
  const lockWords = (): number[] => {
    const b = res.lookup(u32(0));
    const ptrs = Array.from({ length: 6 }, (_, i) => rdU32(b, 4 * i));
    expect(ptrs.every((x) => x > 0)).toBe(true); // the program recorded them
    return ptrs.map(word);
  };
  return { p, lockWords };
}

interface Rule {
  /** gr_rules.mjs?v= */
  readonly v: string;
  /** what the program does */
  readonly does: string;
  /** the rule as the splat names it */
  readonly text: string | RegExp;
  /** stats().unwound after one run */
  readonly locks: number;
  readonly objects: number;
  /** objects left in collections (live until the maps are freed) */
  readonly left: number;
}

const MUST_HOLD_LIST = 'bpf_spin_lock at off=0 must be held for bpf_list_head';
const MUST_HOLD_RB = 'bpf_spin_lock at off=0 must be held for bpf_rb_root';
const UNDER_LOCK = (h: string): string => `${h}: function calls are not allowed while holding a lock`;

const RULES: readonly Rule[] = [
  { v: 'no_lock', does: 'listPushBack without the lock', text: MUST_HOLD_LIST, locks: 0, objects: 1, left: 0 },
  { v: 'pop_no_lock', does: 'listPopFront without the lock', text: MUST_HOLD_LIST, locks: 0, objects: 0, left: 0 },
  { v: 'front_no_lock', does: 'listFront without the lock', text: MUST_HOLD_LIST, locks: 0, objects: 0, left: 0 },
  { v: 'add_no_lock', does: 'rbtreeAdd without the lock', text: MUST_HOLD_RB, locks: 0, objects: 1, left: 0 },
  { v: 'first_no_lock', does: 'rbtreeFirst without the lock', text: MUST_HOLD_RB, locks: 0, objects: 0, left: 0 },
  { v: 'remove_no_lock', does: 'rbtreeRemove without the lock', text: MUST_HOLD_RB, locks: 0, objects: 0, left: 1 },
  { v: 'other_value', does: "listPushBack on val[0] holding val[1]'s lock", text: 'held lock and object are not in the same allocation', locks: 1, objects: 1, left: 0 },
  { v: 'two_locks', does: 'a second bpf_spin_lock', text: 'Locking two bpf_spin_locks are not allowed', locks: 1, objects: 0, left: 0 },
  { v: 'unlock_other', does: 'bpf_spin_unlock of a lock not held', text: 'bpf_spin_unlock of different lock', locks: 1, objects: 0, left: 0 },
  { v: 'unlock_unlocked', does: 'bpf_spin_unlock holding nothing', text: 'bpf_spin_unlock without taking a lock', locks: 0, objects: 0, left: 0 },
  { v: 'exit_locked', does: 'return holding the bpf_spin_lock', text: 'bpf_spin_lock held at program exit', locks: 1, objects: 0, left: 0 },
  { v: 'exit_res_locked', does: 'return holding a bpf_res_spin_lock', text: 'bpf_res_spin_lock held at program exit', locks: 1, objects: 0, left: 0 },
  { v: 'exit_owning', does: 'return holding an owning reference', text: 'unreleased reference', locks: 0, objects: 1, left: 0 },
  { v: 'new_locked', does: 'objNew under the lock', text: UNDER_LOCK('bpf_obj_new'), locks: 1, objects: 0, left: 0 },
  { v: 'drop_locked', does: 'objDrop under the lock', text: UNDER_LOCK('bpf_obj_drop'), locks: 1, objects: 1, left: 0 },
  { v: 'drop_nonowning', does: 'objDrop of a node the list owns', text: /bpf_obj_drop: 0x[0-9a-f]+ is not an owning reference/, locks: 0, objects: 0, left: 1 },
  { v: 'acquire_stale', does: 'refcountAcquire of a node pushed before the unlock', text: /bpf_refcount_acquire: 0x[0-9a-f]+ is neither an owning nor a valid non-owning reference/, locks: 0, objects: 0, left: 1 },
  { v: 'acquire_norefcount', does: 'refcountAcquire of a type without bpf_refcount', text: "bpf_refcount_acquire: type 'gr_rnode' has no bpf_refcount", locks: 0, objects: 1, left: 0 },
  { v: 'push_nonowning', does: 'listPushBack of a node already pushed (non-owning)', text: /bpf_list_push_back node input: 0x[0-9a-f]+ is not an owning reference/, locks: 1, objects: 0, left: 1 },
  { v: 'add_nonowning', does: 'rbtreeAdd of a node already added (non-owning)', text: /bpf_rbtree_add node input: 0x[0-9a-f]+ is not an owning reference/, locks: 1, objects: 0, left: 1 },
  { v: 'add_bad_less', does: 'rbtreeAdd naming no callback', text: "bpf_rbtree_add: the program has no callback 'no_such_callback'", locks: 1, objects: 1, left: 0 },
  { v: 'remove_owning', does: 'rbtreeRemove with an owning reference', text: 'rbtree_remove node input must be non-owning ref', locks: 1, objects: 1, left: 0 },
  { v: 'left_owning', does: 'rbtreeLeft with an owning reference', text: 'bpf_rbtree_left node input must be non-owning ref', locks: 1, objects: 1, left: 0 },
  { v: 'escape', does: 'rbtreeRemove in a second critical section with the first one\'s non-owning reference (rbtree_api_add_release_unlock_escape)', text: 'rbtree_remove node input must be non-owning ref', locks: 1, objects: 0, left: 1 },
  { v: 'lookup_locked', does: 'map lookup holding the bpf_spin_lock', text: UNDER_LOCK('bpf_map_lookup_elem'), locks: 1, objects: 0, left: 0 },
  { v: 'lookup_res_locked', does: 'map lookup holding a bpf_res_spin_lock', text: UNDER_LOCK('bpf_map_lookup_elem'), locks: 1, objects: 0, left: 0 },
  { v: 'timer_locked', does: 'bpf_timer_init holding the bpf_spin_lock', text: UNDER_LOCK('bpf_timer_init'), locks: 1, objects: 0, left: 0 },
  { v: 'lock_in_less', does: 'bpf_spin_lock inside less', text: "can't spin_lock not allowed in rbtree cb", locks: 1, objects: 1, left: 1 },
  { v: 'unlock_in_less', does: 'bpf_spin_unlock inside less', text: "can't spin_unlock not allowed in rbtree cb", locks: 1, objects: 1, left: 1 },
  { v: 'res_lock_in_less', does: 'bpf_res_spin_lock inside less', text: "can't res_spin_lock not allowed in rbtree cb", locks: 1, objects: 1, left: 1 },
  { v: 'drop_in_less', does: 'objDrop inside less', text: 'bpf_obj_drop not allowed in rbtree cb', locks: 1, objects: 2, left: 1 },
  { v: 'add_in_less', does: 'rbtreeAdd inside less', text: 'bpf_rbtree_add not allowed in rbtree cb', locks: 1, objects: 2, left: 1 },
  { v: 'remove_in_less', does: 'rbtreeRemove inside less', text: 'rbtree_remove not allowed in rbtree cb', locks: 1, objects: 1, left: 1 },
  { v: 'res_lifo', does: 'bpf_res_spin_unlock of the older of two res locks', text: 'bpf_res_spin_unlock cannot be out of order', locks: 2, objects: 0, left: 0 },
  { v: 'caught_two_locks', does: 'a second bpf_spin_lock inside try/catch, then unlock and return 0', text: 'Locking two bpf_spin_locks are not allowed', locks: 0, objects: 0, left: 0 },
  { v: 'caught_in_less', does: 'bpf_spin_lock inside less caught by less, then unlock and return 0', text: "can't spin_lock not allowed in rbtree cb", locks: 0, objects: 0, left: 2 },
  { v: 'caught_no_lock', does: 'listPushBack without the lock caught, the node dropped, return 0', text: MUST_HOLD_LIST, locks: 0, objects: 0, left: 0 },
];

function expectAbortSplat(s: Splat, rule: Rule): void {
  expect(s.kind).toBe('prog_abort');
  expect(s.message).toContain(`'gr_rule_${rule.v}'`);
  if (typeof rule.text === 'string') expect(s.message).toContain(rule.text);
  else expect(s.message).toMatch(rule.text);
}

describe('each rule broken once (default policy: disable)', () => {
  for (const rule of RULES) {
    it(`${rule.v} (${rule.does}): retval -1, one prog_abort splat naming "${String(rule.text)}" and the program, unwound { locks: ${rule.locks}, objects: ${rule.objects} }, lock words 0, ${rule.left} object(s) left live, then disabled (EPERM)`, async () => {
      const { p, lockWords } = await loadRule(rule.v, 'disable');
      expect((await p.testRun({ cpu: 0 })).retval).toBe(-1);
      const s = newSplats();
      expect(s.map(formatSplat)).toHaveLength(1);
      expectAbortSplat(s[0]!, rule);
      // what was released
      expect(s[0]!.message).toContain(`released ${rule.locks} lock(s)`);
      expect(s[0]!.message).toContain(`released ${rule.locks} lock(s), dropped ${rule.objects} object reference(s)`);
      expect(lockWords()).toEqual([0, 0, 0, 0, 0, 0]);
      const st = p.stats();
      expect(st.violations).toBe(1);
      expect(st.exceptions).toBe(0);
      expect(st.unwound).toEqual({ locks: rule.locks, objects: rule.objects, deferred: 0 });
      expect(st.aborted).toBe(true);
      expect(graphObjStats().live).toBe(g.live0 + rule.left);
      // disabled: refused at once, on every CPU, without another splat
      for (const cpu of [0, 1]) expect(await rejectCode(p.testRun({ cpu }))).toBe('EPERM');
      expect(newSplats()).toHaveLength(1);
      g.consumeSplats();
    });
  }
});

describe('the prog_abort splat names what was released', () => {
  // Regression: the unwinding summary came after the rule text and a long rule pushed it past the
  // 204-byte splat message; the summary now comes first (src/prog/run_state.ts reportAbort).
  it("other_value: the splat says 'released 1 lock(s), dropped 1 object reference(s)' in full", async () => {
    const rule = RULES.find((r) => r.v === 'other_value')!;
    const { p } = await loadRule(rule.v, 'disable');
    try {
      expect((await p.testRun({ cpu: 1 })).retval).toBe(-1);
      const s = newSplats();
      expect(s).toHaveLength(1);
      expectAbortSplat(s[0]!, rule);
      expect(s[0]!.message).toContain('released 1 lock(s), dropped 1 object reference(s)');
    } finally {
      g.consumeSplats();
    }
  });
});

describe("each rule broken once (abortPolicy 'continue')", () => {
  for (const rule of RULES) {
    it(`${rule.v}: two runs (CPU 0, CPU 1) both return -1 with one prog_abort splat each, the program is never disabled, unwound doubles, lock words 0`, async () => {
      const { p, lockWords } = await loadRule(rule.v, 'continue');
      expect((await p.testRun({ cpu: 0 })).retval).toBe(-1);
      expect(p.stats().aborted).toBe(false);
      expect((await p.testRun({ cpu: 1 })).retval).toBe(-1);
      const s = newSplats();
      expect(s.map(formatSplat)).toHaveLength(2);
      for (const x of s) expectAbortSplat(x, rule);
      expect(s.map((x) => x.cpu)).toEqual([0, 1]);
      expect(lockWords()).toEqual([0, 0, 0, 0, 0, 0]);
      const st = p.stats();
      expect(st.aborted).toBe(false);
      expect(st.violations).toBe(2);
      expect(st.unwound).toEqual({ locks: 2 * rule.locks, objects: 2 * rule.objects, deferred: 0 });
      expect(graphObjStats().live).toBe(g.live0 + 2 * rule.left);
      g.consumeSplats();
    });
  }
});

describe('bpf_spin_lock in tracing programs', () => {
  // the map below declares no lock (a map holding one is refused to tracing programs on its own:
  // test/graph/load_rules.test.ts), so what refuses these is the call itself
  it("a kprobe program whose source calls ctx.bpfSpinLock is refused at loadProgram: BpfError EINVAL 'tracing progs cannot use bpf_spin_lock yet'", async () => {
    const val = mk({ type: 'array', name: 'val', keySize: 4, valueSize: 40, maxEntries: 2 });
    let err: unknown;
    try { await g.load('gr_kprobe_lock.mjs', { maps: { val } }); } catch (e: unknown) { err = e; }
    expect(err).toBeInstanceOf(BpfError);
    expect((err as BpfError).code).toBe('EINVAL');
    expect((err as BpfError).message).toContain('tracing progs cannot use bpf_spin_lock yet');
  });

  it('a kprobe program reaching bpf_spin_lock through a computed name loads, but its run aborts: retval -1, one prog_abort splat naming the rule and the program, lock word 0, disabled', async () => {
    const val = mk({ type: 'array', name: 'val', keySize: 4, valueSize: 40, maxEntries: 2 });
    const p = await g.load('gr_kprobe_lock.mjs?hidden=1', { maps: { val } });
    expect((await p.testRun({ cpu: 1 })).retval).toBe(-1);
    const s = newSplats();
    expect(s.map(formatSplat)).toHaveLength(1);
    expect(s[0]!.kind).toBe('prog_abort');
    expect(s[0]!.message).toContain("'gr_kprobe_hidden_lock'");
    expect(s[0]!.message).toContain('tracing progs cannot use bpf_spin_lock yet');
    expect(p.stats().unwound).toEqual({ locks: 0, objects: 0, deferred: 0 });
    expect(rdU32(val.lookup(u32(0)), 0)).toBe(0);
    expect(await rejectCode(p.testRun({ cpu: 0 }))).toBe('EPERM');
    g.consumeSplats();
  });
});

describe('bad type declarations (the kernel\'s BTF checks)', () => {
  const root = (type: 'bpf_list_head' | 'bpf_rb_root', offset: number, t: string, field: number): MapField => ({ type, offset, contains: { type: t, field } });
  const spec = (fields: readonly MapField[]): MapSpec => ({ type: 'array', name: 'm', keySize: 4, valueSize: 48, maxEntries: 1, fields });

  it('createMap: two bpf_spin_locks in a value -> E2BIG; a bpf_list_head without a bpf_spin_lock -> EINVAL; a bpf_rb_root without one -> EINVAL', () => {
    expect(throwCode(() => mk(spec([{ type: 'bpf_spin_lock', offset: 0 }, { type: 'bpf_spin_lock', offset: 4 }])))).toBe('E2BIG');
    expect(throwCode(() => mk(spec([root('bpf_list_head', 8, 'gr_bt_mitem', 24)])))).toBe('EINVAL');
    expect(throwCode(() => mk(spec([root('bpf_rb_root', 8, 'gr_bt_mitem', 0)])))).toBe('EINVAL');
  });

  for (const [v, code, what] of [
    ['two_locks', 'E2BIG', 'an object type with two bpf_spin_locks'],
    ['root_no_lock', 'EINVAL', 'an object type with a bpf_list_head and no bpf_spin_lock'],
    ['missing', 'ENOENT', 'an object type whose list contains a type nobody defines'],
    ['not_a_node', 'EEXIST', "an object type whose list's contains.field is the item's bpf_rb_node"],
    ['self', 'ELOOP', 'an object type whose list contains itself'],
    ['cycle', 'ELOOP', 'two object types containing each other'],
  ] as const) {
    it(`loadProgram: ${what} -> ${code}`, async () => {
      expect(await rejectCode(g.rt.loadProgram(fixture(`gr_badtype.mjs?v=${v}`)))).toBe(code);
    });
  }

  it('loadProgram with a map whose root contains a type nobody defines -> ENOENT (createMap itself accepts it: the type may come later)', async () => {
    const m = mk(spec([{ type: 'bpf_spin_lock', offset: 0 }, root('bpf_list_head', 8, 'gr_bt_ghost_m', 0)]));
    expect(await rejectCode(g.rt.loadProgram(fixture('gr_badtype.mjs?v=uses_map'), { maps: { m } }))).toBe('ENOENT');
  });

  for (const [kind, field, what] of [
    ['bpf_list_head', 0, "the item's bpf_rb_node"],
    ['bpf_rb_root', 24, "the item's bpf_list_node"],
    ['bpf_list_head', 8, 'no field at all'],
  ] as const) {
    it(`loadProgram with a map whose ${kind} contains gr_bt_mitem at field ${field} (${what}) -> EEXIST`, async () => {
      const m = mk(spec([{ type: 'bpf_spin_lock', offset: 0 }, root(kind, 8, 'gr_bt_mitem', field)]));
      expect(await rejectCode(g.rt.loadProgram(fixture('gr_badtype.mjs?v=uses_map'), { maps: { m } }))).toBe('EEXIST');
    });
  }

  it('control: the same map with the right node offsets (list @24, rb @0) loads', async () => {
    const m = mk(spec([{ type: 'bpf_spin_lock', offset: 0 }, root('bpf_list_head', 8, 'gr_bt_mitem', 24), root('bpf_rb_root', 24, 'gr_bt_mitem', 0)]));
    const p = await g.load('gr_badtype.mjs?v=uses_map', { maps: { m } });
    expect((await p.testRun({ cpu: 0 })).retval).toBe(0);
  });
});
