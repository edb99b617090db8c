// The executable against the real library (not the fake engine): a short stress run passes and
// prints its seed; the test-only fault switch makes it fail naming the violated invariant; the
// bench JSON carries every ratio.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT, tmpDir } from './helpers.js';
import { validateResults } from '../../src/cli/results.js';

const BIN = path.join(ROOT, 'dist/src/cli/main.js');

function bpfsim(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  // the timeout only keeps a child that never exits from hanging the suite (generous, for a
  // loaded machine); a child killed by it has a null status, which every test rejects
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmpDir(), encoding: 'utf8', timeout: 120_000, env: { ...process.env, BPFSIM_DEBUG: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => ensureBuilt(), 180_000);

describe('bpfsim against the real library', () => {
  it('stress --seconds 3 --cpus 4 --seed 1: exit 0, no splat, every invariant, leak check ok, seed printed', () => {
    const r = bpfsim('stress', '--seconds', '3', '--cpus', '4', '--seed', '1', '--no-report');
    expect(r.stderr, r.stdout).toBe('');
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/^splats: 0$/m);
    expect(r.stdout).toMatch(/^invariants: (\d+)\/\1 held$/m);
    expect(r.stdout).toMatch(/^leak check after teardown: ok/m);
    expect(r.stdout).toMatch(/^seed 1 — rerun: bpfsim stress .*--seed 1$/m);
  }, 120_000);

  it('bench --json: the documented schema, every figure with its ratio to a same-run baseline, nothing skipped', () => {
    const r = bpfsim('bench', 'map_perf', 'lookup', '--json', '--seconds', '0.2', '--rounds', '1', '--cpus', '2', '--no-report');
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { bench: { figures: { id: string; ratio: unknown; baselineMedian?: unknown; median: number }[]; skipped: unknown[] } };
    const v = validateResults(doc);
    expect(v.ok, JSON.stringify(v)).toBe(true);
    expect(doc.bench.skipped).toEqual([]);
    expect(doc.bench.figures.length).toBeGreaterThan(6);
    for (const f of doc.bench.figures) {
      expect(typeof f.ratio, f.id).toBe('number');
      expect(f.median, f.id).toBeGreaterThan(0);
    }
    expect(doc.bench.figures.map((f) => f.id).join(' ')).toMatch(/bpf_mem_alloc/);
  }, 180_000);

  it('the drop_freelist_push fault makes it exit 1 naming the violated invariant', () => {
    const r = bpfsim('stress', '--seconds', '1', '--cpus', '2', '--seed', '7', '--maps', 'hash', '--alloc', 'prealloc', '--fault', 'drop_freelist_push', '--no-report');
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout + r.stderr).toMatch(/invariant 'map check\(\)' violated \[hash\/prealloc\]: conservation/);
    expect(r.stdout).toMatch(/seed 7/);
  }, 120_000);
});
