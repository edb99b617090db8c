#!/usr/bin/env node
/*
 * check-layers.mjs — imports only point down (DESIGN.md §2), and no two files import each other.
 *
 * Reads every `import … from`, `export … from`, `import '…'` and `import('…')` with a literal
 * relative path in ROOT/**\/*.ts (type-only imports included: they couple the files just as much),
 * maps each file to its layer and fails (exit 1, one line per problem) on:
 *   layer:      a file importing a file of a higher layer (same-layer imports are fine);
 *   cycle:      files that import each other, directly or through others (one line per cycle);
 *   outside:    an import that leaves ROOT (library code must not reach into bench/, test/, …);
 *   missing:    an import of a file that does not exist;
 *   unmapped:   a file no layer claims (a new directory needs its place in LAYERS);
 *   stale:      an ALLOW entry whose import is gone (delete it: the list only shrinks).
 * Package imports ('node:…', 'comlink', …) are not looked at.
 *
 * Usage: node scripts/check-layers.mjs [ROOT] [--config FILE.json]
 *   ROOT defaults to src/ next to this script; FILE.json is { "layers": [...], "allow": [...] }
 *   in the shape of LAYERS and ALLOW below (the defaults, for src/). Dependency-free on purpose.
 *
 * Layers, lowest first. A path ending in '/' claims a directory, anything else one file; the
 * longest matching path wins, so a file can sit below the directory it lives in.
 */
import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const LAYERS = [
  { name: 'base', paths: ['errno.ts', 'json_schema.ts', 'ipc/', 'cpu/sites.ts', 'locks/lock_classes.ts'],
    why: 'leaves anyone may use: errno, the JSON Schema validator, the main<->CPU messages, and the site and lock-class name tables (ids every thread agrees on; splats name them)' },
  { name: 'mem', paths: ['mem/'],
    why: 'the arena (the SharedArrayBuffer, its views and header layout) and this thread\'s CPU id: everything lives in it' },
  { name: 'debug', paths: ['debug/'],
    why: 'the splat ring: written from any context below or above, so it may only sit on the arena' },
  { name: 'cpu', paths: ['cpu/'],
    why: 'per-CPU state, contexts, windows, interrupt sources, the deterministic schedule; windows raise splats' },
  { name: 'locks', paths: ['locks/'],
    why: 'raw/sleeping/res spinlocks, llist, lock classes: take windows and read the CPU context' },
  { name: 'mm', paths: ['mm/'],
    why: 'page allocator, slab kmalloc, per-CPU areas, owners (DESIGN\'s mm): take locks and have windows' },
  { name: 'rcu', paths: ['rcu/'],
    why: 'read side, call_rcu, grace periods: kmalloc their callback records' },
  { name: 'alloc', paths: ['alloc/'],
    why: 'irq_work, percpu_freelist, bpf_mem_alloc: refill from the slab and free through RCU' },
  { name: 'maps', paths: ['maps/'],
    why: 'the bpf_map_ops table, one file per map type, special-field records: built on alloc and rcu' },
  { name: 'graph', paths: ['graph/'],
    why: 'bpf objects, lists, rbtrees in map values: register their field ops with the maps\' record' },
  { name: 'timers', paths: ['timers/'],
    why: 'bpf_timer and hrtimer bases in map values: register their field ops with the maps\' record' },
  { name: 'prog', paths: ['prog/', 'program.ts'],
    why: 'programs, helpers, kfuncs, aborts, and the bpfsim/program entry: call maps, graph and timers' },
  { name: 'runtime', paths: ['runtime/'],
    why: 'Runtime, coordinator, CPU workers and their boot: the one place that wires every layer together' },
  { name: 'scenarios', paths: ['scenarios/'],
    why: 'the seed scenarios: scripts over a Runtime and programs' },
  { name: 'check/bench', paths: ['check/', 'bench/', 'cli/engine_api.ts', 'cli/programs/'],
    why: 'the linearizability checker and the benchmark harness and cases: tools over histories and measurements; with them the engine\'s request/result types and the programs the bench cases run, which live in cli/' },
  { name: 'cli', paths: ['cli/'],
    why: 'the bpfsim command: drives runtimes, scenarios, the checker and the harness' },
  { name: 'api', paths: ['index.ts'],
    why: 'the public entry: re-exports from every layer, the CLI\'s results format included' },
];

/** Imports that break the rules and are kept for now: { from, to } relative to ROOT, and why. */
export const ALLOW = [];

// ---------------------------------------------------------------------------------------------

/** The source with comments blanked (strings kept), so commented-out imports do not count. */
function stripComments(s) {
  let out = '';
  let i = 0;
  const n = s.length;
  while (i < n) {
    const c = s[i];
    const d = s[i + 1];
    if (c === '/' && d === '/') {
      while (i < n && s[i] !== '\n') i++;
    } else if (c === '/' && d === '*') {
      const end = s.indexOf('*/', i + 2);
      const stop = end < 0 ? n : end + 2;
      out += s.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else if (c === '\'' || c === '"' || c === '`') {
      let j = i + 1;
      while (j < n && s[j] !== c && !(c !== '`' && s[j] === '\n')) j += s[j] === '\\' ? 2 : 1;
      out += s.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

const IMPORT_RE = new RegExp([
  String.raw`\b(?:import|export)\s[^;'"\`]*?\bfrom\s*(['"])([^'"\n]+)\1`, // import/export … from '…'
  String.raw`\bimport\s*(['"])([^'"\n]+)\3`, //                              import '…'
  String.raw`\bimport\s*\(\s*(['"\`])([^'"\`$\n]+)\5\s*\)`, //               import('…')
].join('|'), 'g');

/** Relative specifiers a file imports, in order. */
export function importsOf(source) {
  const specs = [];
  for (const m of stripComments(source).matchAll(IMPORT_RE)) {
    const spec = m[2] ?? m[4] ?? m[6];
    if (spec.startsWith('./') || spec.startsWith('../')) specs.push(spec);
  }
  return specs;
}

function listTs(dir, rel = '') {
  const files = [];
  for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel === '' ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) files.push(...listTs(dir, r));
    else if (e.name.endsWith('.ts')) files.push(r);
  }
  return files.sort();
}

/** The source file a specifier names (nodenext: './x.js' is x.ts), relative to root; or null. */
function resolveSpec(root, fromRel, spec) {
  const abs = path.resolve(root, path.dirname(fromRel), spec);
  const rel = path.relative(root, abs).split(path.sep).join('/');
  if (rel.startsWith('../') || path.isAbsolute(rel)) return { outside: true, rel };
  const candidates = [rel.replace(/\.js$/, '.ts'), rel.replace(/\.mjs$/, '.mts'), rel.replace(/\.js$/, '.d.ts'), rel];
  for (const c of candidates) if (existsSync(path.join(root, c)) && statSync(path.join(root, c)).isFile()) return { outside: false, rel: c };
  return { outside: false, rel: null };
}

function layerOf(layers, rel) {
  let best = -1;
  let bestLen = -1;
  layers.forEach((l, i) => {
    for (const p of l.paths) {
      const hit = p.endsWith('/') ? rel.startsWith(p) : rel === p;
      if (hit && p.length > bestLen) { best = i; bestLen = p.length; }
    }
  });
  return best;
}

/** Strongly connected components with more than one file (or a file importing itself). Tarjan. */
function cycles(graph) {
  let index = 0;
  const idx = new Map(), low = new Map(), on = new Set(), stack = [], out = [];
  const visit = (v) => {
    idx.set(v, index); low.set(v, index); index++;
    stack.push(v); on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v), low.get(w))); }
      else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const scc = [];
      let w;
      do { w = stack.pop(); on.delete(w); scc.push(w); } while (w !== v);
      if (scc.length > 1 || (graph.get(v)?.has(v) ?? false)) out.push(scc.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) visit(v);
  return out.map((scc) => shortestCycle(graph, scc));
}

/** One shortest cycle through the first file of a component (BFS inside it), closed. */
function shortestCycle(graph, scc) {
  const inside = new Set(scc);
  const start = scc[0];
  const prev = new Map();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift();
    for (const w of graph.get(v) ?? []) {
      if (!inside.has(w)) continue;
      if (w === start) {
        const cyc = [start];
        for (let x = v; x !== start; x = prev.get(x)) cyc.splice(1, 0, x);
        return { files: scc, path: [...cyc, start] };
      }
      if (!prev.has(w)) { prev.set(w, v); queue.push(w); }
    }
  }
  return { files: scc, path: [start, start] };
}

/** Every problem in the tree at `root`, as report lines (empty: the tree keeps the rules). */
export function checkLayers(root, { layers = LAYERS, allow = ALLOW } = {}) {
  const problems = [];
  const shown = (rel) => `${path.basename(root)}/${rel}`;
  const allowed = new Map(allow.map((a) => [`${a.from} -> ${a.to}`, { ...a, used: false }]));
  const graph = new Map();
  for (const rel of listTs(root)) {
    const from = layerOf(layers, rel);
    if (from < 0) problems.push(`unmapped: ${shown(rel)} is in no layer (give its directory a place in LAYERS)`);
    const edges = new Set();
    graph.set(rel, edges);
    for (const spec of importsOf(readFileSync(path.join(root, rel), 'utf8'))) {
      const t = resolveSpec(root, rel, spec);
      if (t.outside) { problems.push(`outside: ${shown(rel)} imports '${spec}', which is outside ${path.basename(root)}/`); continue; }
      if (t.rel === null) { problems.push(`missing: ${shown(rel)} imports '${spec}', which does not exist`); continue; }
      const a = allowed.get(`${rel} -> ${t.rel}`);
      if (a !== undefined) { a.used = true; continue; }
      edges.add(t.rel);
      const to = layerOf(layers, t.rel);
      if (from >= 0 && to > from) {
        problems.push(`layer: ${shown(rel)} imports '${spec}': ${layers[from].name} (${from}) may not import ${layers[to].name} (${to})`);
      }
    }
  }
  for (const c of cycles(graph)) {
    const more = c.files.length > c.path.length - 1 ? ` (${c.files.length} files import each other: ${c.files.map(shown).join(', ')})` : '';
    problems.push(`cycle: ${c.path.map(shown).join(' -> ')}${more}`);
  }
  for (const a of allowed.values()) {
    if (!a.used) problems.push(`stale: the allowed import ${a.from} -> ${a.to} is gone; delete its ALLOW entry`);
  }
  return problems;
}

function main(argv) {
  let root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src');
  let config = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--config') config = JSON.parse(readFileSync(argv[++i] ?? '', 'utf8'));
    else root = path.resolve(argv[i]);
  }
  const problems = checkLayers(root, config);
  for (const p of problems) console.error(p);
  if (problems.length > 0) {
    console.error(`check-layers: ${problems.length} problem(s) in ${root} (layers and allowlist: scripts/check-layers.mjs)`);
    return 1;
  }
  return 0;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
