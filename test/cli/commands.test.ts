// The subcommands end to end with a fake engine: verdicts and exit codes, the seed printed,
// results.json written and valid, `bench --json` with every ratio filled, scenario output.
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, tmpDir, lines } from './helpers.js';
import { createFakeEngine, FAKE_SCENARIOS } from './fake_engine.js';
import { validateResults, type Results } from '../../src/cli/results.js';

function readResults(dir: string): Results {
  const v = validateResults(JSON.parse(readFileSync(path.join(dir, 'bpfsim-report', 'results.json'), 'utf8')));
  if (!v.ok) throw new Error(v.errors.join('\n'));
  return v.value;
}

describe('stress', () => {
  it('a clean run exits 0, prints its seed, writes a valid results.json and the report', async () => {
    const cwd = tmpDir();
    const engine = createFakeEngine();
    const r = await runCli(['stress', '--seconds', '3', '--cpus', '4', '--seed', '1'], { cwd, engine });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^bpfsim stress: seed 1 · 4 CPUs · 3 s/);
    expect(r.stdout).toMatch(/seed 1 — rerun: bpfsim stress --cpus 4 --seconds 3 .* --seed 1\n/);
    expect(r.stdout).toContain('verdict: PASS');
    expect(r.stdout).toContain('splats: 0');
    expect(r.stdout).toMatch(/results: bpfsim-report[/\\]results\.json/);
    const res = readResults(cwd);
    expect(res.command).toBe('stress');
    expect(res.verdict).toEqual({ ok: true, exitCode: 0, interrupted: false, failures: [] });
    expect(res.stress?.interrupted).toBe(false);
    expect(res.seed).toBe(1);
    expect(res.stress?.options.mix).toEqual({ update: 40, delete: 20, lookup: 40 });
    expect(res.stress?.cells.some((c) => c.status === 'skipped' && c.map === 'array' && c.alloc === 'kmalloc')).toBe(true);
    expect(existsSync(path.join(cwd, 'bpfsim-report', 'report.html'))).toBe(true);
    // interrupt figures per kind, as the engine reported them
    expect(res.stress?.totals.interrupts).toEqual({
      nmi: { requested: 12_000, delivered: 9000, coalesced: 3000 }, hardirq: { requested: 12_000, delivered: 10_800, coalesced: 1200 },
      softirq: { requested: 0, delivered: 0, coalesced: 0 }, irqWork: 321,
    });
    expect(r.stdout).toContain('interrupts (requested / delivered / coalesced): NMI 12.0k / 9000 / 3000 · hardirq 12.0k / 10.8k / 1200 · softirq 0 / 0 / 0 · irq_work 321\n');
    // ops/s over the measured phase, not over boot and checks too
    expect(res.stress?.totals.opsPerSec).toBeCloseTo((res.stress!.totals.ops * 1000) / res.stress!.measuredMs, 6);
    // options reached the engine as parsed
    expect(engine.stressCalls[0]).toMatchObject({ cpus: 4, seconds: 3, seed: 1, nmiRate: 1000, irqRate: 1000, faults: [] });
  });

  it('the test-only fault makes it exit 1 naming the violated invariant, with the seed', async () => {
    const cwd = tmpDir();
    const r = await runCli(['stress', '--seconds', '1', '--cpus', '2', '--seed', '9', '--fault', 'drop_freelist_push'], { cwd });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("invariant 'freelist conservation' violated [hash/prealloc]: free 4000 + live 90 + extra 4 = 4094 elements");
    expect(r.stdout).toContain('leak check failed: 384 bytes still allocated after teardown');
    expect(r.stdout).toContain('verdict: FAIL');
    expect(r.stdout).toContain('--fault drop_freelist_push --seed 9');
    expect(lines(r.stderr)).toEqual([expect.stringMatching(/^bpfsim stress: FAIL \(seed 9\): invariant 'freelist conservation' violated .* \(\+1 more\)$/)]);
    const res = readResults(cwd);
    expect(res.verdict.ok).toBe(false);
    expect(res.verdict.exitCode).toBe(1);
    expect(res.verdict.failures[0]).toMatch(/freelist conservation/);
  });

  it('a random seed is chosen, printed and recorded when --seed is absent', async () => {
    const cwd = tmpDir();
    const r = await runCli(['stress', '--seconds', '1', '--cpus', '1', '--maps', 'hash', '--alloc', 'prealloc'], { cwd });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('seed 424242');
    expect(readResults(cwd).seed).toBe(424242);
  });

  it('without a TTY prints plain progress lines; --json keeps stdout for the document', async () => {
    const cwd = tmpDir();
    const plain = await runCli(['stress', '--seconds', '1', '--cpus', '2', '--seed', '3'], { cwd, progressIntervalMs: 0 });
    const progress = plain.stdout.split('\n').filter((l) => l.startsWith('['));
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect(progress[0]).toMatch(/^\[\s+0\.\ds\/1\.0s\] hash\/prealloc  1\.50 M\/s  ops 100k  EBUSY 1  ENOMEM 2  errors E2BIG 10  splats 0  GPs 3  mem 7\.6 MiB$/);
    const json = await runCli(['stress', '--seconds', '1', '--cpus', '2', '--seed', '3', '--json'], { cwd: tmpDir(), progressIntervalMs: 0 });
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.stdout) as unknown;
    expect(validateResults(doc).ok).toBe(true);
    expect(json.stderr).toContain('seed 3');
  });

  it('on a TTY the live panel shows requested / delivered / coalesced per interrupt kind and the measured clock', async () => {
    const r = await runCli(['stress', '--seconds', '3', '--cpus', '4', '--seed', '1', '--no-report'], { cwd: tmpDir(), tty: true });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/│ interrupts +│ requested \/ delivered \/ coalesced +│/);
    // the fake engine's last snapshot: 12 000 NMIs asked for, 9000 taken, 3000 merged
    expect(r.stdout).toMatch(/│ {3}NMI +│ 12\.0k \/ 9000 \/ 3000 +│/);
    expect(r.stdout).toMatch(/│ {3}hardirq +│ 12\.0k \/ 10\.8k \/ 1200 +│/);
    expect(r.stdout).toMatch(/│ measured +│ [█░]{20} 3\.0 \/ 3\.0 s +│/);
  });

  it('--out and --no-report', async () => {
    const cwd = tmpDir();
    const r = await runCli(['stress', '--seconds', '1', '--seed', '1', '--out', 'elsewhere', '--no-report'], { cwd });
    expect(r.code).toBe(0);
    expect(existsSync(path.join(cwd, 'elsewhere', 'results.json'))).toBe(true);
    expect(existsSync(path.join(cwd, 'elsewhere', 'report.html'))).toBe(false);
  });
});

describe('bench', () => {
  it('--json emits the documented schema with every ratio filled', async () => {
    const r = await runCli(['bench', '--json', '--seconds', '1', '--rounds', '3', '--cpus', '4'], { cwd: tmpDir() });
    expect(r.code).toBe(0);
    const v = validateResults(JSON.parse(r.stdout) as unknown);
    if (!v.ok) throw new Error(v.errors.join('\n'));
    const b = v.value.bench!;
    expect(b.names).toEqual(['map_perf', 'htab_mem', 'lookup', 'scaling', 'baselines', 'boot', 'oversub']);
    expect(b.figures.length).toBeGreaterThan(10);
    for (const f of b.figures) {
      expect(f.samples).toHaveLength(3);
      expect(Number.isFinite(f.ratio)).toBe(true);
      expect(f.ratio).toBeGreaterThan(0);
      // every ratio carries its spread: the per-round ratios, their min–max, and the flag
      expect(f.ratioSamples, f.id).toHaveLength(3);
      expect(f.ratioMin).toBe(Math.min(...f.ratioSamples));
      expect(f.ratioMax).toBe(Math.max(...f.ratioSamples));
      if (f.baseline === f.id) {
        expect(f.ratio).toBe(1);
        expect(f.noDifference).toBeNull();
      } else {
        expect(f.ratio).toBeCloseTo(f.median / f.baselineMedian, 10);
        expect(f.noDifference, f.id).toBe(f.ratioMin <= 1 && f.ratioMax >= 1);
      }
    }
    expect(b.figures.filter((f) => f.bench === 'boot').every((f) => f.unit === 'ms')).toBe(true);
    expect(b.figures.find((f) => f.id === 'baselines/hash/lookup/1')!.baseline).toBe('baselines/sharedmap/lookup/1');
    expect(b.machine.cores).toBeGreaterThan(0);
    expect(b.machine.busy).toBe(b.machine.warnings.length > 0);
    const dyn = b.figures.find((f) => f.id === 'map_perf/hash/kmalloc')!;
    expect(dyn.baseline).toBe('map_perf/hash/prealloc');
    expect(dyn.ratio).toBeLessThan(0.2);
    expect(b.figures.find((f) => f.id === 'lookup/hash/1')!.baseline).toBe('lookup/js_map_get');
    expect(v.value.environment.node).toBe(process.version);
  });

  it('prints a table with the Node version and core count', async () => {
    const r = await runCli(['bench', 'map_perf', '--seconds', '0.1', '--rounds', '2'], { cwd: tmpDir() });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Node ${process.version}`);
    expect(r.stdout).toMatch(/\d+ cores/);
    expect(r.stdout).toMatch(/hash kmalloc .*hash prealloc .*0\.1\d× \(0\.\d+–0\.\d+\)/);
    expect(r.stdout).toContain('(baseline)');
    expect(r.stdout).toMatch(/^machine: load average [\d.]+ at the start, [\d.]+ at the end/m);
  });

  it('flags a ratio whose rounds span 1.0× as "no difference", and prints the baselines, boot and oversub summaries', async () => {
    // the fake prealloc case runs at 1 M/s ± 3 % per round; this one alternates 10 % above and below
    // it, so its per-round ratios always include 1.0×
    const base = createFakeEngine();
    let calls = 0;
    const engine = { ...base, benchSuite: async (req: Parameters<typeof base.benchSuite>[0]) => {
      const s = await base.benchSuite(req);
      const same = {
        id: 'map_perf/hash/same', bench: 'map_perf', label: 'hash same', baseline: 'map_perf/hash/prealloc',
        run: async (sec: number) => ({ ops: 1e6 * sec * (++calls % 2 === 0 ? 1.1 : 0.9), elapsedNs: sec * 1e9 }),
      };
      return { ...s, cases: [...s.cases, same] };
    } };
    const cwd = tmpDir();
    const r = await runCli(['bench', 'map_perf', 'baselines', 'boot', 'oversub', '--seconds', '0.1', '--rounds', '3'], { cwd, engine });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/hash same .* no difference/);
    expect(r.stdout).toMatch(/^baselines: bpfsim hash lookup, 1 CPU vs 1 thread: .* = [\d.]+× \([\d.]+–[\d.]+\) of sharedmap \(target ≥ 20× met\), [\d.]+× \([\d.]+–[\d.]+\) of a JS Map per worker$/m);
    expect(r.stdout).toMatch(/^boot: Runtime\.start of 8 CPUs → ready .* of 8 bare worker threads/m);
    expect(r.stdout).toMatch(/\+ loading the CPU module in each worker/);
    expect(r.stdout).toMatch(/^oversub: 8 CPUs on \d+ cores .* of 2 CPUs \(target ≥ 0\.9× (met|MISSED)\)$/m);
    const same = readResults(cwd).bench!.figures.find((f) => f.id === 'map_perf/hash/same')!;
    expect(same.noDifference).toBe(true);
  });
});

describe('scenario', () => {
  it('lists with no name or --list', async () => {
    for (const argv of [['scenario'], ['scenario', '--list']]) {
      const r = await runCli(argv, { cwd: tmpDir() });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('nmi-in-bucket-lock');
      expect(r.stdout).toContain('empty-cache-in-nmi');
    }
  });

  it('runs one by name: events and verdict; exit 0', async () => {
    const cwd = tmpDir();
    const r = await runCli(['scenario', 'nmi-in-bucket-lock'], { cwd });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('scenario nmi-in-bucket-lock (seed 000)');
    expect(r.stdout).toMatch(/3\. CPU0 nmi\s+map_update_elem\(key 1\) -> -EBUSY/);
    expect(r.stdout).toContain('verdict: PASS');
    expect(readResults(cwd).scenarios).toHaveLength(1);
  });

  it('a scenario that throws is a failed verdict naming the error; the others still run', async () => {
    const base = createFakeEngine();
    const engine = { ...base, runScenario: async (name: string, o: { seed: number }) => {
      if (name === 'empty-cache-in-nmi') throw new RangeError('EINVAL: BPF_F_NO_PREALLOC is not implemented yet');
      return base.runScenario(name, o);
    } };
    const cwd = tmpDir();
    const r = await runCli(['scenario', '--all'], { cwd, engine });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain("scenario 'empty-cache-in-nmi' failed: expected the scenario to run to its verdict; observed it threw RangeError: EINVAL: BPF_F_NO_PREALLOC is not implemented yet");
    expect(readResults(cwd).scenarios!.map((s) => s.verdict.ok)).toEqual([true, false]);
  });

  it('a failed verdict exits 1 and names the scenario', async () => {
    const engine = createFakeEngine({ scenarios: FAKE_SCENARIOS });
    const r = await runCli(['scenario', '--all'], { cwd: tmpDir(), engine });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("scenario 'always-fails' failed: expected the NMI update gets -EBUSY; observed the NMI update got 0");
  });
});

describe('demo', () => {
  it('runs stress, scenarios and benchmarks and writes one results.json with all three', async () => {
    const cwd = tmpDir();
    const r = await runCli(['demo', '--seconds', '1'], { cwd });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const s of ['== 1/3 stress', '== 2/3 seed scenarios', '== 3/3 benchmarks', '== summary', 'verdict: PASS']) expect(r.stdout).toContain(s);
    expect(r.stdout).toMatch(/map_perf: hash bpf_mem_alloc .* of hash prealloc/);
    const res = readResults(cwd);
    expect(res.command).toBe('demo');
    expect(res.cpus).toBe(4);
    expect(res.stress).not.toBeNull();
    expect(res.scenarios).toHaveLength(2);
    expect(res.bench?.figures.some((f) => f.bench === 'scaling')).toBe(true);
  });
});
