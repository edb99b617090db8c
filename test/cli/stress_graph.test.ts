// `bpfsim stress` graph cells (docs/GRAPH.md): CPUs grow and shrink the rbtrees and lists of a
// map's values under their bpf_spin_lock while NMIs take the values' bpf_res_spin_lock, allocate
// and drop objects, throw and break a rule on purpose (aborts that unwind, expected prog_abort
// splats). The real executable passes with every graph invariant held; the checks themselves
// catch a corrupted tree, list, counter, refcount and a wrong object count.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT, tmpDir } from './helpers.js';
import { validateResults, type Results } from '../../src/cli/results.js';
import { Runtime } from '../../src/runtime/runtime.js';
import type { BpfMap } from '../../src/maps/bpf_map.js';
import { I32 } from '../../src/mem/arena.js';
import { kmalloc, kfree } from '../../src/mm/slab.js';
import { OWNER_KERNEL } from '../../src/mm/owners.js';
import { LN_OWNER } from '../../src/graph/graph_layout.js';
import { bpfRbtreeFirst, bpfRbtreeNodes } from '../../src/graph/bpf_rbtree.js';
import { bpfListFront } from '../../src/graph/bpf_list.js';
import { graphObjStats } from '../../src/graph/bpf_obj.js';
import { checkGraphValues, createGraphStressMap, graphAccountingCheck } from '../../src/cli/stress_graph_checks.js';
import { GV_ROOT, GV_HEAD, GV_TREE_N, GN_RB, GN_KEY, GN_LIST, GN_REF, type GraphStressArgs } from '../../src/cli/programs/stress_graph.js';

const BIN = path.join(ROOT, 'dist/src/cli/main.js');
/** Programs run in the CPU workers, which load the compiled library. */
const STRESS_GRAPH = new URL('../../dist/src/cli/programs/stress_graph.js', import.meta.url);

const GRAPH_INVARIANTS = [
  'graph structures well formed', 'graph counters under their locks', 'graph owners and refcounts match membership',
  'graph objects accounted for', 'NMI aborts unwind (expected prog_abort splats)', 'map check()', 'map free drops every graph object',
];

beforeAll(() => ensureBuilt(), 180_000);

/** The value of `key` (a kernel pointer), looked up on the main thread. */
function valuePtr(m: BpfMap, key: number): number {
  const p = kmalloc(8, OWNER_KERNEL);
  try {
    I32[p >> 2] = key;
    return m.impl.lookup(p);
  } finally {
    kfree(p);
  }
}

let rt: Runtime | undefined;
afterEach(async () => { await rt?.stop(); rt = undefined; });

describe('stress graph cells', () => {
  it('stress --maps array,hash: graph cells run beside mix and timer cells, every graph invariant holds, the expected aborts are no splats', () => {
    // NMIs at 5000/s per CPU: enough NMI runs that the program makes its bounded rule breaks
    const r = spawnSync(process.execPath, [BIN, 'stress', '--seconds', '1.5', '--cpus', '2', '--seed', '11', '--maps', 'array,hash',
      '--alloc', 'prealloc', '--nmi-rate', '5000', '--json', '--no-report'], { cwd: tmpDir(), encoding: 'utf8', timeout: 120_000, env: { ...process.env, BPFSIM_DEBUG: '' } });
    expect(r.status, r.stdout.slice(-2000) + r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as Results;
    expect(validateResults(doc)).toMatchObject({ ok: true });
    const s = doc.stress!;
    const graph = s.cells.filter((c) => c.workload === 'graph');
    expect(graph.map((c) => `${c.map}/${c.alloc}/${c.status}`).sort()).toEqual(['array/prealloc/ran', 'hash/prealloc/ran']);
    for (const c of graph) {
      expect(c.ops, c.map).toBeGreaterThan(0);
      for (const name of GRAPH_INVARIANTS) {
        const inv = s.invariants.find((i) => i.scope === `${c.map}+graph/${c.alloc}` && i.name === name);
        expect(inv, `${c.map}: ${name}`).toMatchObject({ ok: true, details: [] });
      }
    }
    // the NMI program's rule breaks happened (an aborted run returns -1: EPERM) and none of their
    // prog_abort splats is a failure; nothing else splatted
    expect(graph.reduce((a, c) => a + (c.errors.EPERM ?? 0), 0)).toBeGreaterThan(0);
    expect(s.splats).toEqual([]);
    expect(doc.verdict).toMatchObject({ ok: true, failures: [] });
  }, 120_000);

  it('the graph checks catch a tree out of order, a list node with a foreign owner, a counter, a refcount and an object count that are wrong', async () => {
    rt = await Runtime.start({ cpus: 2, memoryBytes: 32 << 20, seed: 5 });
    const liveBase = graphObjStats().live;
    const m = createGraphStressMap(rt, 'array', 'prealloc', 'g', 2);
    const prog = await rt.loadProgram(STRESS_GRAPH, { maps: { m } });
    const args: GraphStressArgs = { keys: 2, cap: 16 };
    // until the values hold a few nodes, one of them in a tree and a list (bounded: a broken
    // runtime must not hang the test)
    for (let i = 0; i < 50 && !(checkGraphValues(m).nodes >= 8 && checkGraphValues(m).inBoth > 0); i++) {
      await rt.runWorkload({ cpus: 'all', context: 'task', program: prog, iterations: 200, args });
    }
    const ok = checkGraphValues(m);
    expect(ok).toMatchObject({ values: 2, structure: [], counters: [], membership: [] });
    expect(ok.nodes).toBeGreaterThanOrEqual(4);
    expect(graphAccountingCheck(ok.nodes, liveBase)).toEqual([]);
    // a count that is wrong by one
    expect(graphAccountingCheck(ok.nodes - 1, liveBase)).toEqual([expect.stringMatching(/objects live .* in the collections/)]);

    // the value with the larger tree
    const values = [0, 1].map((k) => valuePtr(m, k));
    const value = values.reduce((a, b) => (bpfRbtreeNodes(b + GV_ROOT).length > bpfRbtreeNodes(a + GV_ROOT).length ? b : a));
    const root = value + GV_ROOT, head = value + GV_HEAD;
    const tree = bpfRbtreeNodes(root);
    expect(tree.length).toBeGreaterThanOrEqual(2);
    const corrupt = (addr: number, val: number, what: RegExp, field: 'structure' | 'counters' | 'membership'): void => {
      const old = I32[addr >> 2]!;
      I32[addr >> 2] = val;
      try {
        expect(checkGraphValues(m)[field].join('\n')).toMatch(what);
      } finally {
        I32[addr >> 2] = old;
      }
    };
    // the first node's key made the largest: the in-order walk is no longer sorted
    corrupt(bpfRbtreeFirst(root) - GN_RB + GN_KEY, -1, /out of order/, 'structure');
    // the counter kept under the bpf_spin_lock disagrees with the tree
    corrupt(value + GV_TREE_N, tree.length + 1, /the tree holds \d+ nodes, its counter .* says/, 'counters');
    // a refcount one too high
    corrupt(tree[0]! - GN_RB + GN_REF, I32[(tree[0]! - GN_RB + GN_REF) >> 2]! + 1, /refcount \d+, held by \d+ collection/, 'membership');
    // a list node owned by another head
    const front = bpfListFront(head);
    if (front !== 0) corrupt(front + LN_OWNER, head + 64, /has owner .*expected/, 'structure');
    else corrupt(tree[0]! - GN_RB + GN_LIST + LN_OWNER, head, /in no list but its bpf_list_node owner/, 'membership');
    // restored: clean again, and the map's free drops every object
    expect(checkGraphValues(m)).toMatchObject({ structure: [], counters: [], membership: [] });
    await prog.unload();
    await m.close();
    await rt.idle();
    expect(graphAccountingCheck(0, liveBase)).toEqual([]);
    expect(rt.splats()).toEqual([]);
  }, 60_000);
});
