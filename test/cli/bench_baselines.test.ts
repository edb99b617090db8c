// `bpfsim bench baselines boot oversub` against the real library, with a tiny budget: structure, not
// speed. The baselines have sharedmap and JS Map series next to bpfsim's hash map; boot figures are
// times; every ratio carries the min–max of its per-round ratios and a "no difference" flag that
// agrees with it; the run says whether the machine was busy. No figure is compared with a number
// of milliseconds or ops/s: this must pass on a loaded 2-core machine.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT, tmpDir } from './helpers.js';
import { validateResults } from '../../src/cli/results.js';

const BIN = path.join(ROOT, 'dist/src/cli/main.js');

beforeAll(() => ensureBuilt(), 180_000);

describe('bench baselines, boot and oversub (real library)', () => {
  it('--json: sharedmap and JS Map series beside bpfsim, boot in ms, a spread for every ratio', () => {
    // the timeout only keeps a child that never exits from hanging the suite (generous, for a loaded machine)
    const r = spawnSync(process.execPath, [BIN, 'bench', 'baselines', 'boot', 'oversub', '--json', '--seconds', '0.05', '--rounds', '2', '--no-report'],
      { cwd: tmpDir(), encoding: 'utf8', timeout: 240_000, env: { ...process.env, BPFSIM_DEBUG: '' } });
    expect(r.status, r.stderr).toBe(0);
    const v = validateResults(JSON.parse(r.stdout) as unknown);
    if (!v.ok) throw new Error(v.errors.join('\n'));
    const b = v.value.bench!;
    expect(b.names).toEqual(['baselines', 'boot', 'oversub']);
    expect(b.skipped).toEqual([]); // sharedmap is a devDependency: installed here
    const ids = b.figures.map((f) => f.id);
    for (const op of ['lookup', 'update']) {
      for (const n of [1, 2]) {
        expect(ids).toContain(`baselines/sharedmap/${op}/${n}`);
        expect(ids).toContain(`baselines/js_map/${op}/${n}`);
        const hash = b.figures.find((f) => f.id === `baselines/hash/${op}/${n}`)!;
        expect(hash.baseline).toBe(`baselines/sharedmap/${op}/${n}`);
        expect(hash.target).toBe(20);
        expect(hash.tags).toMatchObject({ map: 'hash', alloc: 'prealloc', cpus: n, op });
      }
    }
    expect(b.figures.filter((f) => f.tags.map === 'sharedmap').every((f) => f.baseline === f.id)).toBe(true);
    for (const f of b.figures) {
      expect(f.median, f.id).toBeGreaterThan(0);
      expect(f.ratioSamples, f.id).toHaveLength(2);
      expect(f.ratioMin, f.id).toBe(Math.min(...f.ratioSamples));
      expect(f.ratioMax, f.id).toBe(Math.max(...f.ratioSamples));
      if (f.baseline === f.id) expect(f.noDifference, f.id).toBeNull();
      else expect(f.noDifference, f.id).toBe(f.ratioMin <= 1 && f.ratioMax >= 1);
      expect(f.unit, f.id).toBe(f.bench === 'boot' ? 'ms' : 'ops/s');
    }
    expect(b.figures.find((f) => f.id === 'boot/runtime/8')!.baseline).toBe('boot/bare_workers/8');
    expect(b.figures.find((f) => f.id === 'boot/cpu_module_workers/8')!.baseline).toBe('boot/bare_workers/8');
    expect(ids).toContain('boot/arena');
    expect(b.figures.find((f) => f.id === 'oversub/hash/mix/8')).toMatchObject({ baseline: 'oversub/hash/mix/2', target: 0.9 });
    expect(b.machine.busy).toBe(b.machine.warnings.length > 0);
    expect(b.machine.calibrationStartMs).toBeGreaterThan(0);
  }, 300_000);
});
