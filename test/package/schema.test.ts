/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access -- these tests corrupt untyped JSON documents at arbitrary paths on purpose */
// The JSON Schemas shipped in schema/: a results.json written by a real (short) stress run, and
// the history it recorded (--record: operation lines and header lines), validate; so does every
// operation rt.history() returns from a recording runtime. Corrupted documents and operations
// (a wrong type, a missing required field) are rejected with the path of the problem. The
// schemas' enumerations are the code's.
import { mkdtempSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureDist, ROOT } from './pack.js';
import { validateResults, RESULTS_SCHEMA, COMMANDS, type Results } from '../../src/cli/results.js';
import { MAP_TYPES, ALLOC_MODES, ALL_BENCH_NAMES } from '../../src/cli/engine_api.js';
import { validateHistoryOp, validateHistoryHeader, MAP_TYPE_NAMES, OP_NAMES, checkHistory } from '../../src/check/index.js';
import { Runtime } from '../../src/runtime/runtime.js';
import { BPF_NOEXIST } from '../../src/index.js';

const BIN = path.join(ROOT, 'dist/src/cli/main.js');
const schema = (f: string): Record<string, any> => JSON.parse(readFileSync(path.join(ROOT, 'schema', f), 'utf8')) as Record<string, any>;

let doc: Results;
let lines: unknown[];

beforeAll(() => {
  ensureDist();
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'bpfsim-schema-'));
  const rec = path.join(cwd, 'history.jsonl');
  const r = spawnSync(process.execPath, [BIN, 'stress', '--seconds', '1', '--cpus', '2', '--seed', '1', '--maps', 'hash,array', '--alloc', 'prealloc', '--check', '--record', rec, '--no-report'],
    { cwd, encoding: 'utf8', timeout: 100_000, env: { ...process.env, BPFSIM_DEBUG: '' } });
  // exit 1 (a failed verdict) still writes a complete results.json: its shape is what counts here
  if (r.status !== 0 && r.status !== 1) throw new Error(`stress exited ${r.status}: ${r.stdout}${r.stderr}`);
  doc = JSON.parse(readFileSync(path.join(cwd, 'bpfsim-report', 'results.json'), 'utf8')) as Results;
  lines = readFileSync(rec, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as unknown);
}, 120_000);

function corrupt(v: unknown, f: (x: Record<string, any>) => void): unknown {
  const c = JSON.parse(JSON.stringify(v)) as Record<string, any>;
  f(c);
  return c;
}

describe('schema/results.schema.json', () => {
  it('is draft 2020-12 and its enumerations are the code\'s', () => {
    const s = schema('results.schema.json');
    expect(s['$schema']).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(s['properties'].schema.enum).toEqual([RESULTS_SCHEMA]);
    expect(s['properties'].command.enum).toEqual([...COMMANDS]);
    expect(s['$defs'].mapType.enum).toEqual([...MAP_TYPES]);
    expect(s['$defs'].allocMode.enum).toEqual([...ALLOC_MODES]);
    expect(s['$defs'].bench.properties.names.items.enum).toEqual([...ALL_BENCH_NAMES]);
  });

  it('a real stress run\'s results.json validates (with --check cells)', () => {
    expect(doc.stress?.cells.some((c) => c.check !== undefined)).toBe(true);
    expect(validateResults(doc)).toMatchObject({ ok: true, errors: [] });
  });

  it('a corrupted one is rejected, naming the path', () => {
    expect(validateResults(corrupt(doc, (x) => { x.durationMs = 'long'; })).errors).toEqual(['.durationMs: expected a number >= 0, got "long"']);
    expect(validateResults(corrupt(doc, (x) => { delete x.verdict.failures; })).errors).toEqual(['.verdict.failures: missing']);
    const c = doc.stress!.cells.findIndex((x) => x.check !== undefined);
    expect(validateResults(corrupt(doc, (x) => { x.stress.cells[c].check.ops = true; })).errors).toEqual([`.stress.cells[${c}].check.ops: expected a number >= 0, got boolean`]);
    expect(validateResults(corrupt(doc, (x) => { x.stress.splats = [{ kind: 'deadlock' }]; })).errors).toContain('.stress.splats[0].cpu: missing');
    expect(validateResults(corrupt(doc, (x) => { x.environment.cores = 1.5; })).errors).toEqual(['.environment.cores: expected an integer, got 1.5']);
    expect(validateResults(corrupt(doc, (x) => { x.bench = 'none'; })).errors).toEqual(['.bench: expected an object or null, got "none"']);
    // the rules across fields stay in code: the schema cannot say them
    expect(validateResults(corrupt(doc, (x) => { x.verdict.ok = !x.verdict.ok; })).errors).toEqual(['.verdict: ok must be true exactly when failures is empty and the run was not interrupted']);
  });
});

describe('schema/history-op.schema.json', () => {
  let rt: Runtime | undefined;
  afterEach(async () => { await rt?.stop(); rt = undefined; });

  it('is draft 2020-12 and its enumerations are the code\'s', () => {
    const s = schema('history-op.schema.json');
    expect(s['$schema']).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(s['properties'].op.enum).toEqual([...OP_NAMES]);
    expect(s['properties'].mapType.enum).toEqual([...MAP_TYPE_NAMES]);
    expect(s['$defs'].header.properties.maps.additionalProperties.properties.type.enum).toEqual([...MAP_TYPE_NAMES]);
  });

  it('every line of a stress --record file validates: operations, then a header', () => {
    const heads = lines.filter((l) => (l as Record<string, unknown>)['bpfsim'] !== undefined);
    const ops = lines.filter((l) => (l as Record<string, unknown>)['bpfsim'] === undefined);
    expect(heads.length).toBeGreaterThan(0);
    expect(ops.length).toBeGreaterThan(100);
    expect((lines.at(-1) as Record<string, unknown>)['bpfsim']).toBe('history/1');
    for (const h of heads) expect(validateHistoryHeader(h)).toEqual({ ok: true, errors: [] });
    const bad = ops.map((o, i) => [i, validateHistoryOp(o).errors] as const).filter(([, e]) => e.length > 0);
    expect(bad).toEqual([]);
  });

  it('rt.history() of a recording runtime validates op by op; corrupted ops are rejected naming the field', async () => {
    rt = await Runtime.start({ cpus: 1, memoryBytes: 32 << 20, record: true, seed: 5 });
    const m = rt.createMap({ type: 'hash', name: 'h', keySize: 4, valueSize: 16, maxEntries: 4 });
    const k = (n: number): Uint8Array => new Uint8Array([n, 0, 0, 0]);
    m.update(k(1), new Uint8Array(16).fill(7));
    expect(() => m.update(k(1), new Uint8Array(16), BPF_NOEXIST)).toThrow(); // -EEXIST, recorded
    m.lookup(k(1));
    m.lookup(k(2)); // missing: -2
    m.delete(k(1));
    const ops = rt.history();
    expect(ops.map((o) => o.op)).toEqual(['update', 'update', 'lookup', 'lookup', 'delete']);
    for (const op of ops) expect(validateHistoryOp(op), JSON.stringify(op)).toEqual({ ok: true, errors: [] });
    // (and the checker agrees that they are a history)
    expect((await checkHistory(ops, { maps: rt.historyMaps(), syscallCpu: rt.cpus })).result).toBe('ok');

    const upd = ops[0]!;
    expect(validateHistoryOp(corrupt(upd, (x) => { x.cpu = 'zero'; })).errors).toEqual(['.cpu: expected an integer >= 0 and <= 2147483647, got "zero"']);
    expect(validateHistoryOp(corrupt(upd, (x) => { delete x.key; })).errors).toEqual(['.key: missing']);
    expect(validateHistoryOp(corrupt(upd, (x) => { delete x.value; })).errors).toEqual(['.value: missing']);
    expect(validateHistoryOp(corrupt(upd, (x) => { x.key = 'abc'; })).errors).toEqual(['.key: expected a non-empty hex string of whole bytes, got "abc"']);
    expect(validateHistoryOp(corrupt(upd, (x) => { x.op = 'insert'; })).errors[0]).toMatch(/^\.op: expected one of "lookup", "update"/);
    expect(validateHistoryOp(corrupt(upd, (x) => { x.extra = 1; })).errors).toEqual(['.extra: unknown key']);
    expect(validateHistoryOp(corrupt(ops[3]!, (x) => { x.result = 0; })).errors).toEqual(['.result: expected a string or an integer <= -1, got 0']);
    expect(validateHistoryOp('op').errors).toEqual(['(root): expected an object, got "op"']);
    expect(validateHistoryHeader(corrupt({ bpfsim: 'history/1', dynAlloc: 'bpf_mem_alloc', cpus: 1, syscallCpu: 1, recorded: 5, dropped: 0, maps: rt.historyMaps() }, (x) => { x.dropped = -1; })).errors)
      .toEqual(['.dropped: expected an integer >= 0, got -1']);
  }, 60_000);
});
