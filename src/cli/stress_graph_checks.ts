/*
 * stress_graph_checks.ts — the graph cells' map and their invariants (docs/GRAPH.md): values
 * holding a bpf_spin_lock, a bpf_res_spin_lock, a bpf_rb_root and a bpf_list_head of
 * GRAPH_NODE_TYPE objects (src/cli/programs/stress_graph.ts), worked on by every CPU and by NMIs.
 *
 * Invariants checked once the CPUs are idle (checkGraphValues, graphAccountingCheck): each value's
 * tree (ordered by key) and list well formed; its lock words free; the counters its programs keep
 * under bpf_spin_lock equal to the collections' sizes, and the plain and atomic counts under
 * bpf_res_spin_lock equal (else two holders ran at once); every node a live object of the type,
 * in at most one tree and one list, its owner words 0 outside a collection and its refcount the
 * number of collections holding it; objects live beyond the cell's start = nodes in the
 * collections (and none once the map is freed). The rule breaks the NMI program makes on purpose
 * raise expected prog_abort splats (isExpectedSplat), counted by the cell, not reported.
 *
 * Callers: src/cli/stress.ts (runGraphCell) and test/cli/stress_graph.test.ts, on the main thread.
 */
import type { Runtime } from '../runtime/runtime.js';
import { BPF_F_NO_PREALLOC } from '../maps/map_ops.js';
import type { BpfMap } from '../maps/bpf_map.js';
import { OWNER_KERNEL } from '../mm/owners.js';
import { I32, U8 } from '../mem/arena.js';
import { kmalloc, kfree } from '../mm/slab.js';
import type { MapType, AllocMode } from './engine_api.js';
import {
  GRAPH_STRESS_VALUE_SIZE, GRAPH_VALUE_FIELDS, GV_LOCK, GV_RES, GV_ROOT, GV_HEAD, GV_TREE_N, GV_LIST_N, GV_RES_PLAIN, GV_RES_ATOMIC,
  GN_RB, GN_LIST, GN_REF, GN_KEY, GRAPH_NODE_TYPE,
} from './programs/stress_graph.js';
import { GRAPH_NMI_PROG_NAME } from './programs/stress_graph_nmi.js';
import { graphObjStats, graphObjCheck, objType } from '../graph/bpf_obj.js';
import { bpfListCheck, bpfListNodes } from '../graph/bpf_list.js';
import { bpfRbtreeCheck, bpfRbtreeNodes } from '../graph/bpf_rbtree.js';
import { LN_OWNER, RBN_OWNER } from '../graph/graph_layout.js';

/** Map types whose values may hold graph roots (map_check_btf): the graph cells. */
export const GRAPH_MAPS: readonly MapType[] = ['hash', 'lru_hash', 'array'];
/** Values every CPU works on (few: every lock is contended), and the tree size each drifts towards. */
export const GRAPH_STRESS_KEYS = 4;
export const GRAPH_STRESS_CAP = 32;
/** Rule breaks the NMI program may make per cell (each one expected 'prog_abort' splat: the ring holds 256). */
export const GRAPH_STRESS_MAX_ABORTS = 8;

/**
 * The prog_abort splats of the graph cells' NMI program breaking its rule on purpose: its name and
 * that rule (the rest of the wording is run_state.ts's: what was released, the abort policy).
 */
export function isExpectedSplat(s: { readonly kind: string; readonly message: string }): boolean {
  return s.kind === 'prog_abort' && s.message.startsWith(`program '${GRAPH_NMI_PROG_NAME}' aborted`)
    && s.message.includes(`bpf_list_push_back: bpf_spin_lock at off=${GV_LOCK} must be held for bpf_list_head`);
}

export function keyBytes(k: number): Uint8Array { return new Uint8Array(new Uint32Array([k]).buffer); }

/**
 * A graph cell's map: values of GRAPH_STRESS_VALUE_SIZE bytes (bpf_spin_lock, bpf_res_spin_lock,
 * bpf_rb_root and bpf_list_head of GRAPH_NODE_TYPE objects), keys 0..keys-1 all present (the
 * workload never adds or deletes elements: a value deleted under a program that still holds its
 * pointer would take nodes pushed after its teardown with it, as in the kernel).
 */
export function createGraphStressMap(rt: Runtime, map: MapType, alloc: AllocMode, name: string, keys = GRAPH_STRESS_KEYS): BpfMap {
  const m = rt.createMap({
    type: map, name, keySize: 4, valueSize: GRAPH_STRESS_VALUE_SIZE, maxEntries: map === 'array' ? keys : 4 * keys,
    flags: alloc === 'prealloc' ? 0 : BPF_F_NO_PREALLOC, fields: GRAPH_VALUE_FIELDS,
  });
  if (map !== 'array') {
    const zero = new Uint8Array(GRAPH_STRESS_VALUE_SIZE);
    try {
      for (let k = 0; k < keys; k++) m.update(keyBytes(k), zero);
    } catch (e) {
      void m.close();
      throw e;
    }
  }
  return m;
}

/** What checkGraphValues found in a graph cell's map (main thread, every CPU idle). */
export interface GraphValuesCheck {
  readonly values: number;
  /** distinct objects in the values' collections (one in a tree and a list counts once) */
  readonly nodes: number;
  /** of those, in a tree and a list */
  readonly inBoth: number;
  /** bpfRbtreeCheck (ordered by key) and bpfListCheck of every value */
  readonly structure: readonly string[];
  /** lock words free; GV_TREE_N / GV_LIST_N = the collections' sizes; res plain = res atomic */
  readonly counters: readonly string[];
  /** every node a live object of the type; owner words 0 outside a collection; refcount = collections holding it */
  readonly membership: readonly string[];
}

/**
 * The structure invariants of a graph cell's map: each value's tree and list well formed, the
 * lock-protected counters equal to what the collections hold (the locks excluded), and every node
 * a live object whose owner words and refcount agree with the collections it is in.
 */
export function checkGraphValues(m: BpfMap): GraphValuesCheck {
  const u32 = (p: number): number => I32[p >> 2]! >>> 0;
  const less = (a: number, b: number): boolean => u32(a - GN_RB + GN_KEY) < u32(b - GN_RB + GN_KEY);
  const hx = (p: number): string => `0x${(p >>> 0).toString(16)}`;
  const structure: string[] = [], counters: string[] = [], membership: string[] = [];
  /** object -> [trees holding it, lists holding it] */
  const held = new Map<number, [number, number]>();
  let values = 0;
  const keyPtr = kmalloc(8, OWNER_KERNEL);
  try {
    for (const k of m.keys()) {
      U8.set(k, keyPtr);
      const v = m.impl.lookup(keyPtr);
      if (v === 0) continue;
      values++;
      const key = new DataView(k.buffer, k.byteOffset).getUint32(0, true);
      const where = `value ${key} (${hx(v)})`;
      const bad = [...bpfRbtreeCheck(v + GV_ROOT, less), ...bpfListCheck(v + GV_HEAD)];
      structure.push(...bad.map((b) => `${where}: ${b}`));
      if (Atomics.load(I32, (v + GV_LOCK) >> 2) !== 0) counters.push(`${where}: bpf_spin_lock word ${hx(I32[(v + GV_LOCK) >> 2]!)} with every CPU idle`);
      if (Atomics.load(I32, (v + GV_RES) >> 2) !== 0) counters.push(`${where}: bpf_res_spin_lock word ${hx(I32[(v + GV_RES) >> 2]!)} with every CPU idle`);
      if (u32(v + GV_RES_PLAIN) !== u32(v + GV_RES_ATOMIC)) {
        counters.push(`${where}: ${u32(v + GV_RES_PLAIN)} plain increments under bpf_res_spin_lock, ${u32(v + GV_RES_ATOMIC)} atomic ones (an update was lost: two holders at once)`);
      }
      if (bad.length > 0) continue; // links not safe to walk
      const tree = bpfRbtreeNodes(v + GV_ROOT).map((n) => n - GN_RB);
      const list = bpfListNodes(v + GV_HEAD).map((n) => n - GN_LIST);
      if (tree.length !== u32(v + GV_TREE_N)) counters.push(`${where}: the tree holds ${tree.length} nodes, its counter under bpf_spin_lock says ${u32(v + GV_TREE_N)}`);
      if (list.length !== u32(v + GV_LIST_N)) counters.push(`${where}: the list holds ${list.length} nodes, its counter under bpf_spin_lock says ${u32(v + GV_LIST_N)}`);
      for (const o of tree) { const h = held.get(o) ?? [0, 0]; h[0]++; held.set(o, h); }
      for (const o of list) { const h = held.get(o) ?? [0, 0]; h[1]++; held.set(o, h); }
    }
  } finally {
    kfree(keyPtr);
  }
  let inBoth = 0;
  for (const [o, [trees, lists]] of held) {
    if (trees > 0 && lists > 0) inBoth++;
    const t = objType(o);
    if (t === undefined || t.name !== GRAPH_NODE_TYPE) { membership.push(`node ${hx(o)} is not a live ${GRAPH_NODE_TYPE} object (header ${hx(I32[(o - 8) >> 2]!)})`); continue; }
    if (trees > 1 || lists > 1) membership.push(`object ${hx(o)} is in ${trees} trees and ${lists} lists`);
    if (trees === 0 && I32[(o + GN_RB + RBN_OWNER) >> 2] !== 0) membership.push(`object ${hx(o)} is in no tree but its bpf_rb_node owner is ${hx(I32[(o + GN_RB + RBN_OWNER) >> 2]!)}`);
    if (lists === 0 && I32[(o + GN_LIST + LN_OWNER) >> 2] !== 0) membership.push(`object ${hx(o)} is in no list but its bpf_list_node owner is ${hx(I32[(o + GN_LIST + LN_OWNER) >> 2]!)}`);
    const rc = I32[(o + GN_REF) >> 2]!;
    if (rc !== trees + lists) membership.push(`object ${hx(o)}: refcount ${rc}, held by ${trees + lists} collection(s)`);
  }
  return { values, nodes: held.size, inBoth, structure, counters, membership };
}

/** The accounting invariant: objects live beyond `liveBase` = nodes in the collections; graphObjCheck() clean. */
export function graphAccountingCheck(nodes: number, liveBase: number): string[] {
  const st = graphObjStats();
  const out = [...graphObjCheck()];
  if (st.live - liveBase !== nodes) out.push(`${st.live - liveBase} objects live (${st.live}, ${liveBase} before the cell), ${nodes} in the collections`);
  return out;
}
