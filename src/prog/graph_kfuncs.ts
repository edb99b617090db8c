/*
 * graph_kfuncs.ts — the program side of bpf_spin_lock, bpf_res_spin_lock, allocated objects,
 * lists and rbtrees (kernel/bpf/helpers.c kfuncs), with the verifier's rules as run-time checks
 * (run_state.ts records what the run holds; a broken rule aborts and unwinds it).
 *
 * Pointers: objects are object pointers (bpf_obj_new's result); list and rbtree kfuncs take and
 * return pointers to the node *field* (&n->node, as in C: subtract the node's offset to get the
 * object); roots are pointers to the bpf_list_head / bpf_rb_root field inside a map value or an
 * object.
 *
 * The lock binding (seed 004): a root's guard is the one bpf_spin_lock of the allocation that
 * holds it. For a root pointer R, the program's *domains* (each map of the program whose values
 * hold roots, each object type it declares with roots) are searched for a root field at offset
 * `off` such that R - off is a value of that map (or a live object of that type); the run must
 * hold exactly that allocation's lock (R - off + lockOff). Otherwise: "bpf_spin_lock at off=N
 * must be held for bpf_rb_root" (no lock, or another lock of the same kind of allocation) or
 * "held lock and object are not in the same allocation".
 */
import { I32 } from '../mem/arena.js';
import { pcpuI } from '../mem/this_cpu.js';
import { PROG_LOCKED_I } from '../cpu/prog_locked.js';
import { rawSpinLockIrqsave, rawSpinUnlockIrqrestore } from '../locks/raw_spinlock.js';
import { LC_BPF_SPIN_LOCK } from '../locks/lock_classes.js';
import { resSpinLock, resSpinLockIrqsave, resSpinUnlock, resSpinUnlockIrqrestore } from '../locks/res_spinlock.js';
import { EINVAL } from '../errno.js';
import { MAP_LOCK_OFF, MAP_TIMER_OFF, MAP_GRAPH_REC, MAP_STATE, MAP_STATE_LIVE, MAP_SERIAL, type BpfMapImpl } from '../maps/map_ops.js';
import { btfRecordFromWords } from '../maps/btf_record.js';
import { mapById } from '../maps/registry.js';
import { MAP_TABLE_ENTRIES } from '../mem/layout.js';
import { FK_LIST_HEAD, FK_RB_ROOT, KIND_NAMES, typeInfo, type RootDesc, type TypeInfo } from '../graph/btf_types.js';
import { bpfObjNew, bpfObjDrop, bpfRefcountAcquire, objType } from '../graph/bpf_obj.js';
import { bpfListPush, bpfListPop, bpfListFront, bpfListBack } from '../graph/bpf_list.js';
import {
  bpfRbtreeAdd, bpfRbtreeRemove, bpfRbtreeFirst, bpfRbtreeRoot, bpfRbtreeLeft, bpfRbtreeRight,
} from '../graph/bpf_rbtree.js';
import { SPIN_LOCK_REFUSED_TYPES, type ProgType } from './prog_types.js';
import {
  curFrame, ruleViolation, syncLocked, removeOne, LK_SPIN, LK_RES, LK_RES_IRQ, type RunFrame, type RunProgram,
} from './run_state.js';

/** Where roots live for one program: a map whose values hold roots, or an object type. */
interface Domain {
  readonly map: BpfMapImpl | null;
  readonly type: TypeInfo | null;
  readonly lockOff: number;
  readonly roots: readonly RootDesc[];
  /** a map reached at run time, not one of the program's: checked still live before use */
  readonly other?: boolean;
}

/** What the kfuncs need of a loaded program (prog_run.ts LoadedProgram). */
export interface GraphProgram extends RunProgram {
  readonly tracing: boolean;
  readonly maps: Readonly<Record<string, BpfMapImpl>>;
  /** the program's object types: name -> id */
  readonly typeIds: ReadonlyMap<string, number>;
  /** `less` callbacks by name, already bound to the program's ctx and maps */
  readonly lessFns: ReadonlyMap<string, (a: number, b: number) => unknown>;
  /** built on first use */
  domains: Domain[] | undefined;
}

function domainsOf(p: GraphProgram): Domain[] {
  if (p.domains !== undefined) return p.domains;
  const out: Domain[] = [];
  for (const m of Object.values(p.maps)) {
    const g = (off: number): number => I32[(m.ptr + off) >> 2]!;
    const rec = btfRecordFromWords(g(MAP_LOCK_OFF), g(MAP_TIMER_OFF), g(MAP_GRAPH_REC));
    if (rec.roots.length > 0) out.push({ map: m, type: null, lockOff: rec.spinLockOff, roots: rec.roots });
  }
  const seen = new Set<number>();
  const addType = (id: number): void => {
    if (seen.has(id)) return;
    seen.add(id);
    const t = typeInfo(id);
    if (t === undefined) return;
    if (t.roots.length > 0) out.push({ map: null, type: t, lockOff: t.lockOff, roots: t.roots });
    for (const r of t.roots) addType(r.typeId);
  };
  for (const id of p.typeIds.values()) addType(id);
  for (const d of [...out]) for (const r of d.roots) addType(r.typeId);
  p.domains = out;
  return out;
}

function prog(f: RunFrame): GraphProgram { return f.prog as GraphProgram; }

function hex(p: number): string { return `0x${(p >>> 0).toString(16)}`; }

/** The root at `rootPtr` (of `kind`), checked against the lock this run holds. */
function resolveRoot(f: RunFrame, rootPtr: number, kind: number, fn: string): RootDesc {
  const p = prog(f);
  let r = searchRoot(f, domainsOf(p), rootPtr, kind, fn);
  // not in the program's own maps or objects: a value of another map, such as an inner map of
  // one of its map-in-maps (the kernel's inner_map linked_list cases)
  if (r === null && addOtherMapDomain(p, rootPtr, kind)) r = searchRoot(f, domainsOf(p), rootPtr, kind, fn);
  if (r !== null) return r;
  return ruleViolation(`${fn}: ${hex(rootPtr)} is not a ${KIND_NAMES[kind]!} in a value of this program's maps or in one of its objects`);
}

function searchRoot(f: RunFrame, domains: readonly Domain[], rootPtr: number, kind: number, fn: string): RootDesc | null {
  let unlockedMatch: Domain | null = null;
  for (const d of domains) {
    for (const r of d.roots) {
      if (r.kind !== kind) continue;
      const base = rootPtr - r.off;
      if (d.map !== null) {
        if (d.map.ownsValue(base) === false) continue;
        if (d.other === true && !mapStillLive(d.map)) continue;
      } else if (objType(base) !== d.type) continue;
      if (f.spin === base + d.lockOff) return r;
      unlockedMatch ??= d;
    }
  }
  if (unlockedMatch !== null) {
    const kname = KIND_NAMES[kind]!;
    if (f.spin === 0) ruleViolation(`${fn}: bpf_spin_lock at off=${unlockedMatch.lockOff} must be held for ${kname}`);
    ruleViolation(`${fn}: held lock and object are not in the same allocation (${kname} at ${hex(rootPtr)}, lock held at ${hex(f.spin)})`);
  }
  return null;
}

/** The map behind a handle is the same live map (not freed, its memory not reused by another). */
function mapStillLive(m: BpfMapImpl): boolean {
  return Atomics.load(I32, (m.ptr + MAP_STATE) >> 2) === MAP_STATE_LIVE && I32[(m.ptr + MAP_SERIAL) >> 2] === m.serial;
}

/** At most this many maps beyond its own a program's domains grow by (inner maps it reached). */
const MAX_OTHER_DOMAINS = 32;

/**
 * Cold path: find a live map (not yet a domain) whose values hold a root of `kind` at an offset
 * that makes `rootPtr - off` one of its values, and add it to the program's domains. The lock
 * check then runs as for the program's own maps.
 */
function addOtherMapDomain(p: GraphProgram, rootPtr: number, kind: number): boolean {
  const domains = domainsOf(p);
  for (let i = domains.length - 1; i >= 0; i--) if (domains[i]!.other === true && !mapStillLive(domains[i]!.map!)) domains.splice(i, 1);
  if (domains.length >= p.typeIds.size + Object.keys(p.maps).length + MAX_OTHER_DOMAINS) return false;
  for (let id = 1; id < MAP_TABLE_ENTRIES; id++) {
    const m = mapById(id);
    if (m === undefined || I32[(m.ptr + MAP_GRAPH_REC) >> 2] === 0 || domains.some((d) => d.map === m)) continue;
    const g = (off: number): number => I32[(m.ptr + off) >> 2]!;
    const rec = btfRecordFromWords(g(MAP_LOCK_OFF), g(MAP_TIMER_OFF), g(MAP_GRAPH_REC));
    // only a map that can say the pointer is one of its values (dynamic hash elements cannot)
    if (rec.roots.some((r) => r.kind === kind && m.ownsValue(rootPtr - r.off) === true)) {
      domains.push({ map: m, type: null, lockOff: rec.spinLockOff, roots: rec.roots, other: true });
      return true;
    }
  }
  return false;
}

function noLess(f: RunFrame, what: string): void {
  if (f.inLess > 0) ruleViolation(`${what} not allowed in rbtree cb`);
}

function noLock(what: string): void {
  if (I32[pcpuI + PROG_LOCKED_I] !== 0) ruleViolation(`${what}: function calls are not allowed while holding a lock`);
}

function ownedType(f: RunFrame, o: number, fn: string): TypeInfo {
  const t = objType(o);
  if (t === undefined || !f.owned.includes(o)) ruleViolation(`${fn}: ${hex(o)} is not an owning reference of this program run`);
  return t;
}

// ---- bpf_spin_lock ----

export function kSpinLock(lock: number): number {
  const f = curFrame();
  if (SPIN_LOCK_REFUSED_TYPES.has(prog(f).def.type as ProgType)) ruleViolation('tracing progs cannot use bpf_spin_lock yet');
  noLess(f, "can't spin_lock");
  if (f.spin !== 0) ruleViolation('Locking two bpf_spin_locks are not allowed');
  const err = rawSpinLockIrqsave(lock, LC_BPF_SPIN_LOCK);
  if (err !== 0) return err;
  f.spin = lock;
  f.locks.push(lock);
  f.lockKinds.push(LK_SPIN);
  syncLocked(f);
  return 0;
}

export function kSpinUnlock(lock: number): void {
  const f = curFrame();
  noLess(f, "can't spin_unlock");
  if (f.spin === 0) ruleViolation('bpf_spin_unlock without taking a lock');
  if (f.spin !== lock) ruleViolation(`bpf_spin_unlock of different lock (held ${hex(f.spin)}, unlocking ${hex(lock)})`);
  rawSpinUnlockIrqrestore(lock);
  const i = f.locks.lastIndexOf(lock);
  f.locks.splice(i, 1);
  f.lockKinds.splice(i, 1);
  f.spin = 0;
  f.nonOwning.length = 0; // non-owning references end with the critical section
  syncLocked(f);
}

// ---- bpf_res_spin_lock ----

export function kResLock(lock: number, irqsave: boolean): number {
  const f = curFrame();
  noLess(f, "can't res_spin_lock");
  const err = irqsave ? resSpinLockIrqsave(lock) : resSpinLock(lock);
  if (err !== 0) return err;
  f.locks.push(lock);
  f.lockKinds.push(irqsave ? LK_RES_IRQ : LK_RES);
  syncLocked(f);
  return 0;
}

export function kResUnlock(lock: number, irqrestore: boolean): void {
  const f = curFrame();
  noLess(f, "can't res_spin_unlock");
  let top = -1;
  for (let i = f.locks.length - 1; i >= 0; i--) if (f.lockKinds[i] !== LK_SPIN) { top = i; break; }
  if (top < 0 || f.locks[top] !== lock) ruleViolation(`bpf_res_spin_unlock cannot be out of order (unlocking ${hex(lock)}, newest held ${top < 0 ? 'none' : hex(f.locks[top]!)})`);
  if ((f.lockKinds[top] === LK_RES_IRQ) !== irqrestore) ruleViolation(`bpf_res_spin_unlock${irqrestore ? '_irqrestore' : ''} of a lock taken with bpf_res_spin_lock${irqrestore ? '' : '_irqsave'}`);
  if (irqrestore) resSpinUnlockIrqrestore(lock); else resSpinUnlock(lock);
  f.locks.splice(top, 1);
  f.lockKinds.splice(top, 1);
  syncLocked(f);
}

// ---- objects ----

export function kObjNew(typeName: string): number {
  const f = curFrame();
  noLess(f, 'bpf_obj_new');
  noLock('bpf_obj_new');
  const id = prog(f).typeIds.get(typeName);
  const t = id === undefined ? undefined : typeInfo(id);
  if (t === undefined) ruleViolation(`bpf_obj_new: the program declares no type '${typeName}' (defineProgram({ types }))`);
  const o = bpfObjNew(t);
  if (o !== 0) f.owned.push(o);
  return o;
}

export function kObjDrop(o: number): void {
  const f = curFrame();
  noLess(f, 'bpf_obj_drop');
  noLock('bpf_obj_drop');
  const t = ownedType(f, o, 'bpf_obj_drop');
  removeOne(f.owned, o);
  bpfObjDrop(o, t);
}

export function kRefcountAcquire(o: number): number {
  const f = curFrame();
  const t = objType(o);
  if (t === undefined || (!f.owned.includes(o) && !f.nonOwning.includes(o))) ruleViolation(`bpf_refcount_acquire: ${hex(o)} is neither an owning nor a valid non-owning reference`);
  if (t.refOff < 0) ruleViolation(`bpf_refcount_acquire: type '${t.name}' has no bpf_refcount`);
  if (!bpfRefcountAcquire(o, t)) return 0;
  f.owned.push(o);
  return o;
}

// ---- lists ----

function nodeObject(f: RunFrame, r: RootDesc, node: number, fn: string): [number, TypeInfo] {
  const o = node - r.nodeOff;
  const t = ownedType(f, o, `${fn} node input`);
  if (t.id !== r.typeId) ruleViolation(`${fn}: the node is a '${t.name}', the root contains '${typeInfo(r.typeId)?.name ?? r.typeId}'`);
  return [o, t];
}

export function kListPush(head: number, node: number, tail: boolean): number {
  const f = curFrame();
  const fn = tail ? 'bpf_list_push_back' : 'bpf_list_push_front';
  noLess(f, fn);
  const r = resolveRoot(f, head, FK_LIST_HEAD, fn);
  const [o, t] = nodeObject(f, r, node, fn);
  removeOne(f.owned, o);
  if (!bpfListPush(head, node, tail)) {
    // already in a collection (a refcounted node): the passed reference is dropped
    bpfObjDrop(o, t);
    return -EINVAL;
  }
  f.nonOwning.push(o);
  return 0;
}

export function kListPop(head: number, tail: boolean): number {
  const f = curFrame();
  const fn = tail ? 'bpf_list_pop_back' : 'bpf_list_pop_front';
  noLess(f, fn);
  const r = resolveRoot(f, head, FK_LIST_HEAD, fn);
  const n = bpfListPop(head, tail);
  if (n !== 0) f.owned.push(n - r.nodeOff);
  return n;
}

export function kListPeek(head: number, tail: boolean): number {
  const f = curFrame();
  const r = resolveRoot(f, head, FK_LIST_HEAD, tail ? 'bpf_list_back' : 'bpf_list_front');
  const n = tail ? bpfListBack(head) : bpfListFront(head);
  if (n !== 0) f.nonOwning.push(n - r.nodeOff);
  return n;
}

// ---- rbtrees ----

export function kRbtreeAdd(root: number, node: number, lessName: string): number {
  const f = curFrame();
  noLess(f, 'bpf_rbtree_add');
  const r = resolveRoot(f, root, FK_RB_ROOT, 'bpf_rbtree_add');
  const p = prog(f);
  const less = p.lessFns.get(lessName);
  if (less === undefined) ruleViolation(`bpf_rbtree_add: the program has no callback '${lessName}' (defineProgram({ callbacks }))`);
  const [o, t] = nodeObject(f, r, node, 'bpf_rbtree_add');
  // an NMI's program may add to a tree while this walk is in `less`: save and restore (LIFO)
  const outerFrame = lessFrame, outerFn = lessFn;
  lessFrame = f;
  lessFn = less;
  f.adding = node;
  let ok: boolean;
  try {
    ok = bpfRbtreeAdd(root, node, callLess);
  } finally {
    lessFrame = outerFrame;
    lessFn = outerFn;
  }
  f.adding = 0;
  removeOne(f.owned, o);
  if (!ok) { bpfObjDrop(o, t); return -EINVAL; }
  f.nonOwning.push(o);
  return 0;
}

let lessFrame: RunFrame | undefined;
let lessFn: ((a: number, b: number) => unknown) | undefined;
function callLess(a: number, b: number): boolean {
  const f = lessFrame!;
  const fn = lessFn!;
  // a nested add (NMI) restores these before returning, so they are this walk's again here
  f.inLess++;
  try { return fn(a, b) === true; } finally { f.inLess--; }
}

export function kRbtreeRemove(root: number, node: number): number {
  const f = curFrame();
  noLess(f, 'rbtree_remove');
  const r = resolveRoot(f, root, FK_RB_ROOT, 'bpf_rbtree_remove');
  const o = node - r.nodeOff;
  if (!f.nonOwning.includes(o)) ruleViolation('rbtree_remove node input must be non-owning ref');
  if (!bpfRbtreeRemove(root, node)) return 0;
  f.owned.push(o);
  return node;
}

export function kRbtreePeek(root: number, which: 'first' | 'root'): number {
  const f = curFrame();
  const r = resolveRoot(f, root, FK_RB_ROOT, which === 'first' ? 'bpf_rbtree_first' : 'bpf_rbtree_root');
  const n = which === 'first' ? bpfRbtreeFirst(root) : bpfRbtreeRoot(root);
  if (n !== 0) f.nonOwning.push(n - r.nodeOff);
  return n;
}

export function kRbtreeChild(root: number, node: number, right: boolean): number {
  const f = curFrame();
  const fn = right ? 'bpf_rbtree_right' : 'bpf_rbtree_left';
  const r = resolveRoot(f, root, FK_RB_ROOT, fn);
  if (!f.nonOwning.includes(node - r.nodeOff)) ruleViolation(`${fn} node input must be non-owning ref`);
  const n = right ? bpfRbtreeRight(root, node) : bpfRbtreeLeft(root, node);
  if (n !== 0) f.nonOwning.push(n - r.nodeOff);
  return n;
}

/** A helper that is not a graph or lock kfunc: refused inside a critical section. */
export function kHelper(name: string): void { noLock(name); }
