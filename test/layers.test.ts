// scripts/check-layers.mjs (npm test's pretest) on small fixture trees: a clean tree passes; an
// import from a lower layer into a higher one, a cycle, an allowlisted import gone stale each
// fail with one line naming the files; a commented-out import does not count, import() does. And
// src/ itself keeps its layers.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SCRIPT = path.join(ROOT, 'scripts/check-layers.mjs');

const LAYERS = [
  { name: 'low', paths: ['low/'], why: 'imports nothing above it' },
  { name: 'high', paths: ['high/'], why: 'may import low' },
];

interface Allow { from: string; to: string; why: string }

/** Write `files` (path -> source) under a fresh src/ and run the script on it. */
function check(files: Record<string, string>, allow: Allow[] = []): { status: number | null; lines: string[] } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bpfsim-layers-'));
  const src = path.join(dir, 'src');
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(src, f)), { recursive: true });
    writeFileSync(path.join(src, f), text);
  }
  const config = path.join(dir, 'layers.json');
  writeFileSync(config, JSON.stringify({ layers: LAYERS, allow }));
  const r = spawnSync(process.execPath, [SCRIPT, src, '--config', config], { encoding: 'utf8', timeout: 30_000 });
  const lines = (r.stdout + r.stderr).split('\n').filter((l) => l !== '' && !l.startsWith('check-layers:'));
  return { status: r.status, lines };
}

const CLEAN = {
  'low/a.ts': 'export const A = 1;\n',
  'low/b.ts': "import { A } from './a.js';\nexport const B = A + 1;\n",
  'high/c.ts': "import { B } from '../low/b.js';\nexport type { A } from '../low/a.js';\nexport const C = B;\n",
};

describe('scripts/check-layers.mjs', () => {
  it('passes a tree whose imports point down and do not go round', () => {
    expect(check(CLEAN)).toEqual({ status: 0, lines: [] });
  });

  it('fails on a lower layer importing a higher one, naming the file, the import and both layers', () => {
    const r = check({ ...CLEAN, 'low/a.ts': "import type { C } from '../high/c.js';\nexport const A = 1;\n", 'high/c.ts': 'export const C = 3;\n' });
    expect(r.status).toBe(1);
    expect(r.lines).toEqual(["layer: src/low/a.ts imports '../high/c.js': low (0) may not import high (1)"]);
  });

  it('fails on a cycle and shows it, dynamic import() included', () => {
    const r = check({ ...CLEAN, 'low/a.ts': "export const A = 1;\nexport const later = () => import('./b.js');\n" });
    expect(r.status).toBe(1);
    expect(r.lines).toEqual(['cycle: src/low/a.ts -> src/low/b.ts -> src/low/a.ts']);
  });

  it('ignores imports in comments and imports of packages', () => {
    const r = check({ ...CLEAN, 'low/a.ts': "// import { C } from '../high/c.js';\n/* import './b.js'; */\nimport os from 'node:os';\nexport const A = os.EOL.length;\n" });
    expect(r).toEqual({ status: 0, lines: [] });
  });

  it('lets an allowlisted import through, and fails once the import is gone', () => {
    const up = { ...CLEAN, 'low/a.ts': "import '../high/c.js';\nexport const A = 1;\n", 'high/c.ts': 'export const C = 3;\n' };
    const allow = [{ from: 'low/a.ts', to: 'high/c.ts', why: 'test' }];
    expect(check(up, allow)).toEqual({ status: 0, lines: [] });
    const r = check(CLEAN, allow);
    expect(r.status).toBe(1);
    expect(r.lines).toEqual(['stale: the allowed import low/a.ts -> high/c.ts is gone; delete its ALLOW entry']);
  });

  it('fails on a file no layer claims', () => {
    const r = check({ ...CLEAN, 'other/d.ts': 'export const D = 4;\n' });
    expect(r.status).toBe(1);
    expect(r.lines).toEqual(['unmapped: src/other/d.ts is in no layer (give its directory a place in LAYERS)']);
  });

  it('src/ keeps its layers (LAYERS and ALLOW in the script)', () => {
    const r = spawnSync(process.execPath, [SCRIPT], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
