/*
 * btf_types.ts — the types of allocated objects (what BTF tells the kernel about the structs a
 * program passes to bpf_obj_new), in one table in kernel memory that every thread reads.
 *
 * Programs declare their object types (defineProgram({ types: { node: { size, fields } } })); maps
 * name the type their roots contain (fields: [{ type: 'bpf_rb_root', offset, contains: { type:
 * 'node', field: 0 } }]), possibly before any program declared it. A name is *declared* by the
 * first map or program that mentions it and *defined* by the first program that gives its layout;
 * a later definition must be identical (the kernel's BTF dedup would make them one type). Ids are
 * table index + 1, stable for the runtime's life.
 *
 * Fields of an object: bpf_spin_lock (4, 4-aligned, at most one), bpf_res_spin_lock (4),
 * bpf_list_head / bpf_rb_root (16, 8-aligned; need exactly one bpf_spin_lock in the same object:
 * it guards them), bpf_list_node (16) / bpf_rb_node (24) (8-aligned), bpf_refcount (4, at most
 * one). `contains.field` is the byte offset of the node field inside the contained type, which
 * must be a bpf_list_node for a list head and a bpf_rb_node for an rb root (the kernel's
 * __contains(type, field), by offset here since fields have no names).
 * Errors (kernel btf.c): more than one lock -E2BIG; a root without a lock -EINVAL; a contained
 * type nobody defines -ENOENT; `contains.field` not a node of the right kind -EEXIST; a type
 * that (transitively) contains itself -ELOOP; other malformed declarations -EINVAL.
 *
 * Table (region at HDR_GRAPH_BASE, bpf_obj.ts owns the rest of the region):
 *   entry i (TYPE_ENTRY bytes at REGION_TYPES + i * TYPE_ENTRY):
 *     +0 state (0 free, 1 declared, 2 defined)  +4 size  +8 nfields  +12 lock offset + 1
 *     +16 refcount offset + 1  +20 roots  +24 name (32 bytes, NUL padded)
 *     +56 fields[8]: word0 = kind | offset << 8, word1 = contained type id | node offset << 16
 * Locking: the table's raw spinlock (REGION_LOCK) serialises declare/define; a defined entry is
 * never written again, so readers cache it per thread without the lock.
 */
import { I32, U8, arenaGeneration } from '../mem/arena.js';
import { rawSpinLockIrqsave, rawSpinUnlockIrqrestore } from '../locks/raw_spinlock.js';
import { LC_GRAPH_TYPES } from '../locks/lock_classes.js';
import { BpfError, E2BIG, EEXIST, EINVAL, ELOOP, ENOENT } from '../errno.js';
import { HDR_GRAPH_BASE } from '../mem/layout.js';
import {
  BPF_LIST_HEAD_SIZE, BPF_LIST_NODE_SIZE, BPF_RB_NODE_SIZE, BPF_RB_ROOT_SIZE, BPF_REFCOUNT_SIZE,
} from './graph_layout.js';

// field kinds (roots: the numbers btf_record.ts stores in a map's record)
export { FK_LIST_HEAD, FK_RB_ROOT } from '../maps/btf_record.js';
import { FK_LIST_HEAD, FK_RB_ROOT, type MapRoot } from '../maps/btf_record.js';
export const FK_SPIN_LOCK = 1;
export const FK_LIST_NODE = 3;
export const FK_RB_NODE = 5;
export const FK_REFCOUNT = 6;
export const FK_RES_SPIN_LOCK = 7;

export const GRAPH_FIELD_NAMES = ['bpf_spin_lock', 'bpf_res_spin_lock', 'bpf_list_head', 'bpf_list_node', 'bpf_rb_root', 'bpf_rb_node', 'bpf_refcount'] as const;
export type GraphFieldName = (typeof GRAPH_FIELD_NAMES)[number];
const KIND_OF: Readonly<Record<GraphFieldName, number>> = {
  bpf_spin_lock: FK_SPIN_LOCK, bpf_res_spin_lock: FK_RES_SPIN_LOCK, bpf_list_head: FK_LIST_HEAD,
  bpf_list_node: FK_LIST_NODE, bpf_rb_root: FK_RB_ROOT, bpf_rb_node: FK_RB_NODE, bpf_refcount: FK_REFCOUNT,
};
export const KIND_NAMES: readonly string[] = ['', 'bpf_spin_lock', 'bpf_list_head', 'bpf_list_node', 'bpf_rb_root', 'bpf_rb_node', 'bpf_refcount', 'bpf_res_spin_lock'];
const SIZE_OF: readonly number[] = [0, 4, BPF_LIST_HEAD_SIZE, BPF_LIST_NODE_SIZE, BPF_RB_ROOT_SIZE, BPF_RB_NODE_SIZE, BPF_REFCOUNT_SIZE, 4];
const ALIGN_OF: readonly number[] = [0, 4, 8, 8, 8, 8, 4, 4];

/** Size and alignment of a graph field kind. */
export function fieldSize(kind: number): number { return SIZE_OF[kind]!; }
export function fieldAlign(kind: number): number { return ALIGN_OF[kind]!; }
export function isRootKind(kind: number): boolean { return kind === FK_LIST_HEAD || kind === FK_RB_ROOT; }
/** The node kind a root of `kind` contains. */
export function nodeKindOf(rootKind: number): number { return rootKind === FK_LIST_HEAD ? FK_LIST_NODE : FK_RB_NODE; }

/** One declared field, as users write it. */
export interface ObjFieldDecl {
  readonly type: GraphFieldName;
  readonly offset: number;
  /** roots only: the contained type and the byte offset of its node field */
  readonly contains?: { readonly type: string; readonly field: number };
}
export interface ObjTypeDecl {
  readonly size: number;
  readonly fields?: readonly ObjFieldDecl[];
}

/** A root inside a map value or an object (kind, offset, contained type id, its node offset). */
export type RootDesc = MapRoot;

/** A defined type, as every thread caches it. */
export interface TypeInfo {
  readonly id: number;
  readonly name: string;
  readonly size: number;
  /** -1: none */
  readonly lockOff: number;
  readonly refOff: number;
  readonly roots: readonly RootDesc[];
  /** [kind, offset] pairs of every field */
  readonly fields: readonly (readonly [number, number])[];
}

export const MAX_OBJ_TYPES = 64;
export const MAX_TYPE_FIELDS = 8;
export const MAX_TYPE_NAME = 31;
/** bpf_global_ma serves objects up to this size (4096-byte class minus both headers). */
export const MAX_OBJ_SIZE = 4080;

// region layout (shared with bpf_obj.ts)
export const REGION_LOCK = 0;
export const REGION_TYPES = 1024;
export const TYPE_ENTRY = 128;
export const REGION_BYTES = REGION_TYPES + MAX_OBJ_TYPES * TYPE_ENTRY;
const TE_STATE = 0, TE_SIZE = 4, TE_NFIELDS = 8, TE_LOCK = 12, TE_REF = 16, TE_ROOTS = 20, TE_NAME = 24, TE_FIELDS = 56;
const ST_DECLARED = 1, ST_DEFINED = 2;

export function graphRegion(): number { return I32[HDR_GRAPH_BASE >> 2]!; }
function entry(id: number): number { return graphRegion() + REGION_TYPES + (id - 1) * TYPE_ENTRY; }

function fail(errno: number, msg: string): never { throw new BpfError(errno, msg); }

function readName(e: number): string {
  let s = '';
  for (let i = 0; i < 32; i++) { const c = U8[e + TE_NAME + i]!; if (c === 0) break; s += String.fromCharCode(c); }
  return s;
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Find a type by name; 0 when absent. Caller holds the table lock or reads defined entries only. */
function findLocked(name: string): number {
  for (let id = 1; id <= MAX_OBJ_TYPES; id++) {
    const e = entry(id);
    if (I32[(e + TE_STATE) >> 2] === 0) return 0; // entries fill in order
    if (readName(e) === name) return id;
  }
  return 0;
}

function allocLocked(name: string): number {
  for (let id = 1; id <= MAX_OBJ_TYPES; id++) {
    const e = entry(id);
    if (I32[(e + TE_STATE) >> 2] !== 0) continue;
    for (let i = 0; i < name.length; i++) U8[e + TE_NAME + i] = name.charCodeAt(i);
    Atomics.store(I32, (e + TE_STATE) >> 2, ST_DECLARED);
    return id;
  }
  fail(E2BIG, `object types: at most ${MAX_OBJ_TYPES} types per runtime`);
}

function checkName(name: unknown, what: string): string {
  if (typeof name !== 'string' || !NAME_RE.test(name) || name.length > MAX_TYPE_NAME) {
    fail(EINVAL, `${what}: a type name is an identifier of at most ${MAX_TYPE_NAME} characters; got ${JSON.stringify(name)}`);
  }
  return name;
}

function withLock<T>(fn: () => T): T {
  const lock = graphRegion() + REGION_LOCK;
  const err = rawSpinLockIrqsave(lock, LC_GRAPH_TYPES);
  if (err !== 0) fail(-err, 'object types: the type table lock could not be taken');
  try { return fn(); } finally { rawSpinUnlockIrqrestore(lock); }
}

/** Declare `name` (a map root's contained type): its id, defined or not. */
export function btfDeclareType(name: string): number {
  checkName(name, 'contains.type');
  return withLock(() => findLocked(name) || allocLocked(name));
}

/** A validated declaration: kinds and offsets, contained types by name. */
interface ParsedField { kind: number; off: number; containsName: string; nodeOff: number }

/**
 * Validate the fields of a map value or an object of `size` bytes (offsets, alignment, overlap,
 * one lock, roots need the lock). Returns them; contained types are resolved by the caller.
 * `allowNodes`: objects may hold nodes and a refcount, map values may not.
 */
export function parseGraphFields(fieldsV: readonly unknown[], size: number, what: string, allowNodes: boolean): ParsedField[] {
  const out: ParsedField[] = [];
  fieldsV.forEach((f, i) => {
    const name = `${what}.fields[${i}]`;
    if (typeof f !== 'object' || f === null) fail(EINVAL, `${name} must be an object { type, offset }`);
    const r = f as Record<string, unknown>;
    const t = r['type'];
    if (typeof t !== 'string' || !(t in KIND_OF)) fail(EINVAL, `${name}.type must be one of ${GRAPH_FIELD_NAMES.join(', ')}; got ${JSON.stringify(t)}`);
    const kind = KIND_OF[t as GraphFieldName];
    if (!allowNodes && (kind === FK_LIST_NODE || kind === FK_RB_NODE || kind === FK_REFCOUNT)) fail(EINVAL, `${name}: a ${t} belongs in an allocated object, not in a map value`);
    const off = r['offset'];
    if (typeof off !== 'number' || !Number.isInteger(off) || off < 0) fail(EINVAL, `${name} (${t}).offset must be a non-negative integer; got ${String(off)}`);
    if (off % ALIGN_OF[kind]! !== 0) fail(EINVAL, `${name} (${t}) at offset ${off} must be ${ALIGN_OF[kind]}-byte aligned`);
    if (off + SIZE_OF[kind]! > size) fail(EINVAL, `${name} (${t}) at offset ${off} does not fit in ${size} bytes`);
    let containsName = '';
    let nodeOff = -1;
    if (isRootKind(kind)) {
      const c = r['contains'];
      if (typeof c !== 'object' || c === null) fail(EINVAL, `${name} (${t}) needs contains: { type, field } (the kernel's __contains)`);
      const cr = c as Record<string, unknown>;
      containsName = checkName(cr['type'], `${name}.contains.type`);
      const fo = cr['field'];
      if (typeof fo !== 'number' || !Number.isInteger(fo) || fo < 0) fail(EINVAL, `${name}.contains.field must be the byte offset of the node field; got ${String(fo)}`);
      nodeOff = fo;
    } else if (r['contains'] !== undefined) {
      fail(EINVAL, `${name} (${t}): only bpf_list_head and bpf_rb_root take contains`);
    }
    out.push({ kind, off, containsName, nodeOff });
  });
  for (let i = 0; i < out.length; i++) {
    for (let j = i + 1; j < out.length; j++) {
      const a = out[i]!, b = out[j]!;
      if (a.off < b.off + SIZE_OF[b.kind]! && b.off < a.off + SIZE_OF[a.kind]!) fail(EINVAL, `${what}: ${KIND_NAMES[b.kind]} at offset ${b.off} overlaps ${KIND_NAMES[a.kind]} at offset ${a.off}`);
    }
  }
  const locks = out.filter((f) => f.kind === FK_SPIN_LOCK).length;
  if (locks > 1) fail(E2BIG, `${what}: at most one bpf_spin_lock (it guards every root of the allocation); got ${locks}`);
  if (out.filter((f) => f.kind === FK_REFCOUNT).length > 1) fail(E2BIG, `${what}: at most one bpf_refcount`);
  if (locks === 0 && out.some((f) => isRootKind(f.kind))) fail(EINVAL, `${what}: a bpf_list_head or bpf_rb_root needs a bpf_spin_lock in the same allocation to guard it`);
  return out;
}

function defineLocked(name: string, decl: ObjTypeDecl, fields: ParsedField[]): number {
  const id = findLocked(name) || allocLocked(name);
  const e = entry(id);
  const ei = e >> 2;
  const words: number[] = [];
  let lockOff = -1, refOff = -1, roots = 0;
  for (const f of fields) {
    let cid = 0;
    if (isRootKind(f.kind)) { cid = findLocked(f.containsName) || allocLocked(f.containsName); roots++; }
    if (f.kind === FK_SPIN_LOCK) lockOff = f.off;
    if (f.kind === FK_REFCOUNT) refOff = f.off;
    words.push(f.kind | (f.off << 8), cid | (Math.max(f.nodeOff, 0) << 16));
  }
  if (I32[ei + (TE_STATE >> 2)] === ST_DEFINED) {
    // a second definition must be the same type
    const same = I32[ei + (TE_SIZE >> 2)] === decl.size && I32[ei + (TE_NFIELDS >> 2)] === fields.length
      && words.every((w, k) => I32[ei + (TE_FIELDS >> 2) + k] === w);
    if (!same) fail(EINVAL, `object type '${name}' is already defined with another layout (size ${I32[ei + (TE_SIZE >> 2)]}, ${I32[ei + (TE_NFIELDS >> 2)]} fields)`);
    return id;
  }
  I32[ei + (TE_SIZE >> 2)] = decl.size;
  I32[ei + (TE_NFIELDS >> 2)] = fields.length;
  I32[ei + (TE_LOCK >> 2)] = lockOff + 1;
  I32[ei + (TE_REF >> 2)] = refOff + 1;
  I32[ei + (TE_ROOTS >> 2)] = roots;
  words.forEach((w, k) => { I32[ei + (TE_FIELDS >> 2) + k] = w; });
  Atomics.store(I32, ei + (TE_STATE >> 2), ST_DEFINED);
  return id;
}

/**
 * Define a program's object types (any thread, at program load): validates each declaration,
 * registers or matches it, then checks every contained type: defined (-ENOENT), its node field
 * of the right kind at the declared offset (-EEXIST), no ownership cycle (-ELOOP). Returns
 * name -> id.
 */
export function btfDefineTypes(typesV: unknown, what: string): Map<string, number> {
  const ids = new Map<string, number>();
  if (typesV === undefined) return ids;
  if (typeof typesV !== 'object' || typesV === null) fail(EINVAL, `${what}: types must be an object of { size, fields }`);
  const parsed: [string, ObjTypeDecl, ParsedField[]][] = [];
  for (const [name, d] of Object.entries(typesV as Record<string, unknown>)) {
    checkName(name, `${what}: types`);
    if (typeof d !== 'object' || d === null) fail(EINVAL, `${what}: types.${name} must be { size, fields }`);
    const dr = d as Record<string, unknown>;
    const size = dr['size'];
    if (typeof size !== 'number' || !Number.isInteger(size) || size <= 0 || size > MAX_OBJ_SIZE) fail(EINVAL, `${what}: types.${name}.size must be an integer in [1, ${MAX_OBJ_SIZE}]; got ${String(size)}`);
    const fl = dr['fields'] === undefined ? [] : dr['fields'];
    if (!Array.isArray(fl)) fail(EINVAL, `${what}: types.${name}.fields must be an array`);
    if (fl.length > MAX_TYPE_FIELDS) fail(E2BIG, `${what}: types.${name}: at most ${MAX_TYPE_FIELDS} special fields`);
    parsed.push([name, { size, fields: fl as ObjFieldDecl[] }, parseGraphFields(fl, size, `${what}: types.${name}`, true)]);
  }
  withLock(() => { for (const [name, decl, fields] of parsed) ids.set(name, defineLocked(name, decl, fields)); });
  for (const id of ids.values()) checkContains(typeInfo(id)!, `${what}: types.${typeInfo(id)!.name}`);
  for (const id of ids.values()) checkNoCycle(id, what);
  return ids;
}

/** A root's contained type is defined and has the node at the declared offset. */
export function checkRootTarget(root: RootDesc, what: string): void {
  const t = typeInfo(root.typeId);
  if (t === undefined) fail(ENOENT, `${what}: ${KIND_NAMES[root.kind]} at offset ${root.off} contains type '${typeName(root.typeId)}', which no program defines`);
  const want = nodeKindOf(root.kind);
  if (!t.fields.some(([k, o]) => k === want && o === root.nodeOff)) {
    fail(EEXIST, `${what}: ${KIND_NAMES[root.kind]} at offset ${root.off} contains '${t.name}' at field ${root.nodeOff}, which is not a ${KIND_NAMES[want]} of '${t.name}'`);
  }
}

function checkContains(t: TypeInfo, what: string): void {
  for (const r of t.roots) checkRootTarget(r, what);
}

function checkNoCycle(start: number, what: string): void {
  const seen = new Set<number>();
  const walk = (id: number, path: string[]): void => {
    const t = typeInfo(id);
    if (t === undefined) return;
    for (const r of t.roots) {
      if (r.typeId === start) fail(ELOOP, `${what}: ownership cycle: ${[...path, typeName(r.typeId)].join(' -> ')} (a type may not contain itself)`);
      if (seen.has(r.typeId)) continue;
      seen.add(r.typeId);
      walk(r.typeId, [...path, typeName(r.typeId)]);
    }
  };
  walk(start, [typeName(start)]);
}

// ---- per-thread cache of defined types (one runtime's table: keyed on the arena generation) ----
let cacheGen = -1;
let cache: (TypeInfo | undefined)[] = [];

export function typeName(id: number): string { return id >= 1 && id <= MAX_OBJ_TYPES && graphRegion() !== 0 ? readName(entry(id)) : `#${id}`; }

/** The defined type `id`, or undefined (declared only, or no such id). */
export function typeInfo(id: number): TypeInfo | undefined {
  if (cacheGen !== arenaGeneration) { cache = []; cacheGen = arenaGeneration; }
  const c = cache[id];
  if (c !== undefined) return c;
  if (!(id >= 1 && id <= MAX_OBJ_TYPES) || graphRegion() === 0) return undefined;
  const e = entry(id);
  const ei = e >> 2;
  if (Atomics.load(I32, ei + (TE_STATE >> 2)) !== ST_DEFINED) return undefined;
  const n = I32[ei + (TE_NFIELDS >> 2)]!;
  const fields: [number, number][] = [];
  const roots: RootDesc[] = [];
  for (let k = 0; k < n; k++) {
    const w0 = I32[ei + (TE_FIELDS >> 2) + 2 * k]!;
    const w1 = I32[ei + (TE_FIELDS >> 2) + 2 * k + 1]!;
    const kind = w0 & 0xff, off = w0 >>> 8;
    fields.push([kind, off]);
    if (isRootKind(kind)) roots.push({ kind, off, typeId: w1 & 0xffff, nodeOff: w1 >>> 16 });
  }
  const t: TypeInfo = Object.freeze({
    id, name: readName(e), size: I32[ei + (TE_SIZE >> 2)]!, lockOff: I32[ei + (TE_LOCK >> 2)]! - 1,
    refOff: I32[ei + (TE_REF >> 2)]! - 1, roots: Object.freeze(roots), fields: Object.freeze(fields),
  });
  cache[id] = t;
  return t;
}

/** Every type in the table (tools). */
export function btfTypeList(): { id: number; name: string; defined: boolean }[] {
  const out: { id: number; name: string; defined: boolean }[] = [];
  if (graphRegion() === 0) return out;
  for (let id = 1; id <= MAX_OBJ_TYPES; id++) {
    const st = I32[(entry(id) + TE_STATE) >> 2]!;
    if (st === 0) break;
    out.push({ id, name: readName(entry(id)), defined: st === ST_DEFINED });
  }
  return out;
}
