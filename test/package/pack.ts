// Shared by the package tests: build dist/ when stale, `npm pack` the repository once into a temp
// dir and install the tarball into a temp user project (extracted to node_modules/bpfsim, the
// package's dependencies and @types/node symlinked from this repository: no network).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc');

function newestMtime(p: string): number {
  const st = statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  let t = 0;
  for (const e of readdirSync(p)) t = Math.max(t, newestMtime(path.join(p, e)));
  return t;
}

/** Rebuild dist/ (tsc -p tsconfig.json) unless it is newer than every source it is built from. */
export function ensureDist(): void {
  const marker = path.join(ROOT, 'dist/src/index.d.ts');
  const inputs = ['src', 'workers', 'bench', 'tsconfig.json'].map((p) => path.join(ROOT, p)).filter((p) => existsSync(p));
  if (existsSync(marker) && statSync(marker).mtimeMs >= Math.max(...inputs.map(newestMtime))) return;
  try {
    execFileSync(process.execPath, [TSC, '-p', path.join(ROOT, 'tsconfig.json')], { cwd: ROOT, stdio: 'pipe' });
  } catch (e: unknown) {
    // tsc emits even when some other part of the tree does not type-check
    if (!existsSync(marker)) throw new Error(`build failed: ${String((e as { stdout?: unknown }).stdout ?? e)}`);
  }
}

export interface Packed {
  /** the temp user project (package.json type module); the package is at app/node_modules/bpfsim */
  readonly app: string;
  readonly pkgDir: string;
  /** paths in the tarball, relative to the package root */
  readonly files: readonly string[];
}

let packed: Packed | undefined;

/** npm pack (once per test file) and install the tarball into a fresh user project. */
export function packAndInstall(): Packed {
  if (packed !== undefined) return packed;
  ensureDist();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'bpfsim-pack-'));
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const info = (JSON.parse(out) as { filename: string; files: { path: string }[] }[])[0]!;
  const app = path.join(tmp, 'app');
  const nm = path.join(app, 'node_modules');
  const pkgDir = path.join(nm, 'bpfsim');
  mkdirSync(pkgDir, { recursive: true });
  execFileSync('tar', ['-xzf', path.join(tmp, info.filename), '-C', pkgDir, '--strip-components=1']);
  // what `npm install bpfsim` would put next to it: its dependencies (from this repository's
  // node_modules; their own dependencies resolve there through the symlink's real path)
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  for (const dep of [...Object.keys(pkg.dependencies ?? {}), '@types/node']) {
    const dst = path.join(nm, dep);
    mkdirSync(path.dirname(dst), { recursive: true });
    symlinkSync(path.join(ROOT, 'node_modules', dep), dst, 'dir');
  }
  packed = { app, pkgDir, files: info.files.map((f) => f.path) };
  return packed;
}
