// The package as a user gets it: `npm pack` ships what the README links to (LICENSE, README.md,
// docs/, schema/) and no source map whose sources are missing; a strict user project (lib ES2022,
// strict, skipLibCheck false, NodeNext) that imports 'bpfsim', 'bpfsim/program' and
// 'bpfsim/check' compiles with the repository's tsc; and the shipped validators run from the
// installed tarball.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { packAndInstall, TSC, type Packed } from './pack.js';

let p: Packed;
beforeAll(() => { p = packAndInstall(); }, 180_000); // a build first when dist/ is stale

const USER_CODE = `
import { Runtime, BpfError, BPF_ANY, BPF_F_NO_PREALLOC, validateResults, type RuntimeOptions, type MapSpec, type Splat, type RuntimeStats, type Results, type BpfMap, type MapInMapHandle } from 'bpfsim';
import { defineProgram, BPF_NOEXIST, EEXIST, type BpfMapImpl, type ProgramContext } from 'bpfsim/program';
import { checkHistory, validateHistoryOp, type HistoryOp, type CheckResult, type SchemaValidation } from 'bpfsim/check';

export function seedOf(json: unknown): number | undefined {
  const v = validateResults(json);
  const r: Results | undefined = v.ok ? v.value : undefined;
  const errors: readonly string[] = v.errors;
  return errors.length === 0 ? r?.seed : undefined;
}
export const opOk = (op: unknown): boolean => { const v: SchemaValidation = validateHistoryOp(op); return v.ok; };

const opts: RuntimeOptions = { cpus: 2, seed: 1 };
const spec: MapSpec = { type: 'hash', name: 'flows', keySize: 4, valueSize: 8, maxEntries: 16, flags: BPF_F_NO_PREALLOC };

export const prog = defineProgram({
  name: 'count', type: 'perf_event', maps: ['counts'],
  run(ctx: ProgramContext, maps: Record<string, BpfMapImpl>): number {
    const counts = maps['counts']!;
    const key = ctx.scratchU32(0, ctx.cpu);
    const v = counts.lookup(key);
    if (v === 0) {
      const r = counts.update(key, ctx.zeroValue(counts), BPF_NOEXIST);
      return r === -EEXIST ? 0 : r;
    }
    ctx.atomicAddU64(v, 1n);
    return 0;
  },
});

// map handles: update / delete return one thing (void for plain maps, Promise<void> for maps of maps)
type IsExactly<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export async function handles(rt: Runtime, k: Uint8Array, v: Uint8Array): Promise<void> {
  const plain: BpfMap = rt.createMap({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 4 });
  const u = plain.update(k, v);
  const d = plain.delete(k);
  const outer: MapInMapHandle = rt.createMap({ type: 'hash_of_maps', keySize: 4, valueSize: 4, maxEntries: 4, innerMap: plain });
  const ou = outer.update(k, plain);
  const oi = outer.update(k, v);
  const od = outer.delete(k);
  const checks: [IsExactly<typeof u, void>, IsExactly<typeof d, void>, IsExactly<typeof ou, Promise<void>>, IsExactly<typeof oi, Promise<void>>, IsExactly<typeof od, Promise<void>>] = [true, true, true, true, true];
  const asBpfMap: BpfMap = outer; // a map-in-map handle is a BpfMap
  void checks; void asBpfMap;
  await ou; await oi; await od;
}

export async function main(): Promise<number> {
  const rt = await Runtime.start(opts);
  try {
    const m = rt.createMap(spec);
    m.update(new Uint8Array(4), new Uint8Array(8), BPF_ANY);
    const v: Uint8Array | undefined = m.lookup(new Uint8Array(4));
    const splats: readonly Splat[] = rt.splats();
    const stats: RuntimeStats = rt.stats();
    const ops: HistoryOp[] = rt.history();
    const r: CheckResult = await checkHistory(ops, { maps: rt.historyMaps() });
    return (v?.length ?? 0) + splats.length + stats.cpus.length + (r.result === 'ok' ? 1 : 0);
  } catch (e: unknown) {
    if (e instanceof BpfError) return -e.errno;
    throw e;
  } finally {
    await rt.stop();
  }
}
`;

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022', lib: ['ES2022'], module: 'NodeNext', moduleResolution: 'NodeNext',
    strict: true, skipLibCheck: false, types: ['node'], noEmit: true,
  },
  files: ['index.ts'],
};

describe('npm pack', () => {
  it('ships LICENSE, README.md, the docs the README links to and no source map without its sources', () => {
    for (const f of ['LICENSE', 'README.md', 'docs/CHECK.md', 'docs/RESULTS.md', 'docs/MAP_HELPERS.md', 'bench/README.md', 'package.json', 'schema/results.schema.json', 'schema/history-op.schema.json']) {
      expect(p.files, f).toContain(f);
    }
    expect(readFileSync(path.join(p.pkgDir, 'LICENSE'), 'utf8')).toMatch(/MIT License[\s\S]*Copyright \(c\) 2026 the bpfsim authors/);
    // every relative link of README.md and docs/*.md resolves inside the package
    for (const doc of p.files.filter((f) => f === 'README.md' || /^docs\/[^/]+\.md$/.test(f))) {
      const text = readFileSync(path.join(p.pkgDir, doc), 'utf8');
      for (const [, link] of text.matchAll(/\]\(([^)#:\s]+)(?:#[^)]*)?\)/g)) {
        expect(existsSync(path.join(p.pkgDir, path.dirname(doc), link!)), `${doc} links ${link}`).toBe(true);
      }
    }
    const missing: string[] = [];
    for (const f of p.files.filter((x) => x.endsWith('.map'))) {
      const map = JSON.parse(readFileSync(path.join(p.pkgDir, f), 'utf8')) as { sources: string[]; sourceRoot?: string };
      for (const s of map.sources) {
        const src = path.resolve(path.dirname(path.join(p.pkgDir, f)), map.sourceRoot ?? '', s);
        if (!existsSync(src)) missing.push(`${f} → ${path.relative(p.pkgDir, src)}`);
      }
    }
    expect(missing, 'source maps whose sources are not in the package').toEqual([]);
    // every entry of "exports" and "bin" is in the package
    const pkg = JSON.parse(readFileSync(path.join(p.pkgDir, 'package.json'), 'utf8')) as { exports: Record<string, Record<string, string>>; bin: Record<string, string> };
    for (const e of Object.values(pkg.exports)) for (const t of Object.values(e)) expect(p.files, t).toContain(path.normalize(t));
    for (const t of Object.values(pkg.bin)) expect(p.files).toContain(path.normalize(t));
  });
});

describe('a strict user project', () => {
  it('compiles against the installed tarball (lib ES2022, strict, skipLibCheck false, NodeNext)', () => {
    writeFileSync(path.join(p.app, 'package.json'), JSON.stringify({ name: 'user', private: true, type: 'module' }));
    writeFileSync(path.join(p.app, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2));
    writeFileSync(path.join(p.app, 'index.ts'), USER_CODE);
    const r = spawnSync(process.execPath, [TSC, '-p', path.join(p.app, 'tsconfig.json')], { cwd: p.app, encoding: 'utf8', timeout: 110_000 });
    if (r.status !== 0) console.error(`tsc diagnostics:\n${r.stdout}${r.stderr}`);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, 120_000);

  it('the installed bin runs a short stress round, and the installed validators accept its results and history', () => {
    const bin = path.join(p.pkgDir, 'dist/src/cli/main.js');
    const rec = path.join(p.app, 'history.jsonl');
    const r = spawnSync(process.execPath, [bin, 'stress', '--seconds', '0.5', '--cpus', '1', '--maps', 'hash', '--alloc', 'prealloc', '--seed', '3', '--record', rec, '--no-report', '--json'],
      { cwd: p.app, encoding: 'utf8', timeout: 100_000, env: { ...process.env, BPFSIM_DEBUG: '' } });
    // 0 or 1 (a failed verdict): either way the document is complete; 3 would be a broken package
    expect([0, 1], `exit ${String(r.status)}: ${r.stderr.slice(-2000)}`).toContain(r.status);
    writeFileSync(path.join(p.app, 'results.json'), r.stdout);
    // plain node in the user project: the schema files are found inside the installed package
    writeFileSync(path.join(p.app, 'validate.mjs'), `
      import { readFileSync } from 'node:fs';
      import { validateResults } from 'bpfsim';
      import { validateHistoryOp, validateHistoryHeader } from 'bpfsim/check';
      const doc = JSON.parse(readFileSync('results.json', 'utf8'));
      const bad = { ...doc, seed: 'one' };
      const lines = readFileSync('history.jsonl', 'utf8').trim().split('\\n').map((l) => JSON.parse(l));
      const hist = lines.map((l) => (l.bpfsim !== undefined ? validateHistoryHeader(l) : validateHistoryOp(l)));
      console.log(JSON.stringify({ ok: validateResults(doc).errors, bad: validateResults(bad).errors, lines: lines.length, histErrors: hist.flatMap((v) => v.errors) }));
    `);
    const out = JSON.parse(execFileSync(process.execPath, ['validate.mjs'], { cwd: p.app, encoding: 'utf8', timeout: 60_000 })) as { ok: string[]; bad: string[]; lines: number; histErrors: string[] };
    expect(out).toEqual({ ok: [], bad: ['.seed: expected an integer, got "one"'], lines: out.lines, histErrors: [] });
    expect(out.lines).toBeGreaterThan(10);
  }, 120_000);
});
