// Ctrl-C: the first one stops the run early, checks and reports what ran as a partial run
// (verdict INTERRUPTED, "interrupted": true in results.json and the report) and exits 130 — never 0
// with PASS. A second one exits 130 at once. In-process with the fake engine for every command,
// then the real executable and library with a real SIGINT.
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, lines, ROOT, runCli, tmpDir } from './helpers.js';
import { createFakeEngine, FAKE_SCENARIOS } from './fake_engine.js';
import { validateResults, type Results } from '../../src/cli/results.js';
import type { Engine } from '../../src/cli/engine_api.js';
import { SHORT_ROUND_SECONDS } from '../../src/cli/cmd_bench.js';

function readResults(dir: string): Results {
  const v = validateResults(JSON.parse(readFileSync(path.join(dir, 'results.json'), 'utf8')));
  if (!v.ok) throw new Error(v.errors.join('\n'));
  return v.value;
}

const INTERRUPTED_VERDICT = { ok: false, exitCode: 130, interrupted: true };

describe('first Ctrl-C, in-process (fake engine)', () => {
  it('stress: exit 130, "INTERRUPTED — partial run" with what ran, results.json and report say so', async () => {
    const ac = new AbortController();
    const engine = createFakeEngine({ onTick: (i) => { if (i === 2) ac.abort(); } });
    const cwd = tmpDir();
    const r = await runCli(['stress', '--seconds', '6', '--cpus', '4', '--seed', '1'], { cwd, engine, signal: ac.signal });
    expect(r.code).toBe(130);
    expect(r.stdout).not.toContain('verdict: PASS');
    expect(r.stdout).toMatch(/^verdict: INTERRUPTED — partial run \(Ctrl-C\): measured 2\.0 s of 6 s; \d+ of 14 cells ran, \d+ not run; the checks cover only what ran$/m);
    expect(r.stdout).toMatch(/^seed 1 — rerun: /m); // still printed
    expect(lines(r.stderr)).toEqual([expect.stringMatching(/^bpfsim stress: INTERRUPTED \(seed 1\): partial run, measured 2\.0 s of 6 s/)]);
    const res = readResults(path.join(cwd, 'bpfsim-report'));
    expect(res.verdict).toEqual({ ...INTERRUPTED_VERDICT, failures: [] });
    expect(res.stress!.interrupted).toBe(true);
    expect(res.stress!.measuredMs).toBe(2000);
    expect(res.stress!.cells.some((c) => c.status === 'skipped' && c.skipReason === 'interrupted (Ctrl-C) before this cell ran')).toBe(true);
    const html = readFileSync(path.join(cwd, 'bpfsim-report', 'report.html'), 'utf8');
    expect(html).toContain('<title>bpfsim stress — INTERRUPTED</title>');
    expect(html).toContain('<span class="badge warn">INTERRUPTED</span>');
    expect(html).toMatch(/id="stress-interrupted">Interrupted \(Ctrl-C\): partial run — measured 2\.0 s of 6 s/);
  });

  it('stress --json: the document says interrupted; exit 130', async () => {
    const ac = new AbortController();
    const engine = createFakeEngine({ onTick: (i) => { if (i === 3) ac.abort(); } });
    const r = await runCli(['stress', '--seconds', '2', '--seed', '4', '--json', '--no-report'], { cwd: tmpDir(), engine, signal: ac.signal });
    expect(r.code).toBe(130);
    const doc = validateResults(JSON.parse(r.stdout) as unknown);
    expect(doc.ok).toBe(true);
    if (doc.ok) expect(doc.value.verdict).toMatchObject(INTERRUPTED_VERDICT);
  });

  it('stress: failures seen before the interrupt are still listed, and the exit is still 130', async () => {
    const ac = new AbortController();
    const engine = createFakeEngine({ onTick: (i) => { if (i === 1) ac.abort(); } });
    const cwd = tmpDir();
    const r = await runCli(['stress', '--seconds', '1', '--seed', '9', '--fault', 'drop_freelist_push'], { cwd, engine, signal: ac.signal });
    expect(r.code).toBe(130);
    expect(r.stdout).toMatch(/verdict: INTERRUPTED — partial run[^\n]*\n {2}- invariant 'freelist conservation' violated/);
    expect(readResults(path.join(cwd, 'bpfsim-report')).verdict).toMatchObject({ ...INTERRUPTED_VERDICT, failures: [expect.stringMatching(/freelist conservation/), expect.stringMatching(/leak check failed/)] });
  });

  it('demo: interrupted during stress → scenarios and benchmarks are skipped, exit 130', async () => {
    const ac = new AbortController();
    const engine = createFakeEngine({ onTick: (i) => { if (i === 2) ac.abort(); } });
    const cwd = tmpDir();
    const r = await runCli(['demo', '--seconds', '1'], { cwd, engine, signal: ac.signal });
    expect(r.code).toBe(130);
    expect(r.stdout).toMatch(/== 2\/3 seed scenarios\nskipped: interrupted \(Ctrl-C\)/);
    expect(r.stdout).toMatch(/== 3\/3 benchmarks[^\n]*\nskipped: interrupted \(Ctrl-C\)/);
    expect(r.stdout).toMatch(/^verdict: INTERRUPTED — partial run \(Ctrl-C\): stress partly \(measured 0\.3 s of 1 s; .*\); scenarios not run; benchmarks not run;/m);
    const res = readResults(path.join(cwd, 'bpfsim-report'));
    expect(res.verdict).toMatchObject(INTERRUPTED_VERDICT);
    expect(res.bench).toBeNull();
    expect(res.scenarios).toEqual([]);
  });

  it('bench: after Ctrl-C the cases not yet measured get one short measurement; exit 130, listed as shortened', async () => {
    const ac = new AbortController();
    const base = createFakeEngine();
    const asked: number[] = [];
    const engine: Engine = {
      ...base,
      benchSuite: async (req) => {
        const suite = await base.benchSuite(req);
        let runs = 0;
        return {
          ...suite,
          cases: suite.cases.map((c) => ({ ...c, run: (s: number) => { asked.push(s); if (++runs === 2) ac.abort(); return c.run(s); } })),
        };
      },
    };
    const cwd = tmpDir();
    const r = await runCli(['bench', 'map_perf', '--seconds', '1', '--rounds', '5'], { cwd, engine, signal: ac.signal });
    expect(r.code).toBe(130);
    // the warm-up runs (0.25 s) of the first two cases, then the interrupt: every case is then
    // measured once, short, so each figure keeps its same-run baseline
    expect(asked.slice(0, 2)).toEqual([0.25, 0.25]);
    expect(asked).toHaveLength(5);
    expect(asked.slice(2).every((s) => s <= SHORT_ROUND_SECONDS)).toBe(true);
    expect(r.stdout).toMatch(/^interrupted: 3 figure\(s\) rest on one 0\.05 s measurement taken after Ctrl-C: map_perf\/hash\/prealloc, /m);
    expect(r.stdout).toMatch(/^verdict: INTERRUPTED — partial run \(Ctrl-C\): 0 of 3 figures have all 5 round\(s\), 3 rest on one short measurement$/m);
    const res = readResults(path.join(cwd, 'bpfsim-report'));
    expect(res.verdict).toMatchObject(INTERRUPTED_VERDICT);
    expect(res.bench!.interrupted).toBe(true);
    expect(res.bench!.shortened).toHaveLength(3);
    for (const f of res.bench!.figures) expect(f.samples).toHaveLength(1);
  });

  it('scenario --all: the remaining scenarios are not run; exit 130', async () => {
    const ac = new AbortController();
    const base = createFakeEngine({ scenarios: FAKE_SCENARIOS.slice(0, 2) });
    const engine: Engine = { ...base, runScenario: async (name, o) => { ac.abort(); return base.runScenario(name, o); } };
    const cwd = tmpDir();
    const r = await runCli(['scenario', '--all'], { cwd, engine, signal: ac.signal });
    expect(r.code).toBe(130);
    expect(r.stdout).toContain('verdict: INTERRUPTED — partial run (Ctrl-C): 1 of 2 scenario(s) ran');
    expect(readResults(path.join(cwd, 'bpfsim-report')).verdict).toMatchObject(INTERRUPTED_VERDICT);
  });
});

// ---- the real executable, a real SIGINT ----

const BIN = path.join(ROOT, 'dist/src/cli/main.js');

interface Spawned { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; afterSigintMs: number }

/**
 * Spawn `bpfsim args`, send SIGINT `signals` times (100 ms apart) once stdout shows a progress line
 * of a running cell (the measured phase has started), and wait for the exit.
 */
function runAndInterrupt(args: readonly string[], signals: number, cwd: string): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, BPFSIM_DEBUG: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    let sentAt = -1;
    const guard = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`no exit within 150 s\n${stdout}\n${stderr}`)); }, 150_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      // a plain progress line of a cell: "[  1.3s/60.0s] hash/prealloc  …"
      if (sentAt < 0 && /^\[\s*[\d.]+s\/[\d.]+s\] [a-z_]+\/[a-z_]+ /m.test(stdout)) {
        sentAt = performance.now();
        for (let i = 0; i < signals; i++) setTimeout(() => child.kill('SIGINT'), i * 100);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stdout, stderr, afterSigintMs: sentAt < 0 ? -1 : performance.now() - sentAt });
    });
  });
}

describe('Ctrl-C on the real executable', () => {
  beforeAll(() => ensureBuilt(), 180_000);

  // --seconds 60: a run that completed would take over a minute, so an exit well inside that
  // (the bound is 45 s after the signal: boot of the second runtime is skipped, teardown and checks
  // take seconds even on a loaded 2-core machine) shows the workload stopped early
  it('first SIGINT during stress: the partial run is checked and reported, exit 130, results.json says interrupted', async () => {
    const cwd = tmpDir();
    const r = await runAndInterrupt(['stress', '--seconds', '60', '--cpus', '2', '--seed', '1', '--maps', 'hash,array', '--alloc', 'prealloc,bpf_mem_alloc,kmalloc'], 1, cwd);
    expect(r.afterSigintMs, r.stdout + r.stderr).toBeGreaterThan(0);
    expect(r.code, r.stdout + r.stderr).toBe(130);
    expect(r.afterSigintMs).toBeLessThan(45_000);
    expect(r.stderr).toContain('bpfsim: interrupted — stopping; checking and reporting what ran as a partial run');
    expect(r.stdout).not.toContain('verdict: PASS');
    expect(r.stdout).toMatch(/^verdict: INTERRUPTED — partial run \(Ctrl-C\): measured [\d.]+ s of 60 s; \d+ of 12 cells ran, \d+ not run/m);
    expect(r.stdout).toMatch(/^invariants: (\d+)\/\1 held$/m); // what ran was still checked
    expect(r.stdout).toMatch(/^leak check after teardown: ok/m);
    const res = readResults(path.join(cwd, 'bpfsim-report'));
    expect(res.verdict).toEqual({ ...INTERRUPTED_VERDICT, failures: [] });
    expect(res.stress!.interrupted).toBe(true);
    expect(res.stress!.measuredMs).toBeLessThan(60_000);
    // the kmalloc cell's runtime never booted: skipped, not run
    expect(res.stress!.cells.find((c) => c.map === 'hash' && c.alloc === 'kmalloc')).toMatchObject({ status: 'skipped', skipReason: 'interrupted (Ctrl-C) before this cell ran' });
    expect(readFileSync(path.join(cwd, 'bpfsim-report', 'report.html'), 'utf8')).toContain('INTERRUPTED');
  }, 180_000);

  it('a second SIGINT exits 130 at once', async () => {
    const r = await runAndInterrupt(['stress', '--seconds', '60', '--cpus', '2', '--seed', '2', '--maps', 'hash', '--alloc', 'prealloc', '--no-report'], 2, tmpDir());
    // 130 from the handler; or, when the partial run had already finished and the process was
    // exiting as the second signal came (its handlers gone), death by SIGINT — also 130 to a shell
    expect(r.code === 130 || (r.code === null && r.signal === 'SIGINT'), `code ${r.code} signal ${r.signal}\n${r.stdout}${r.stderr}`).toBe(true);
    expect(r.afterSigintMs).toBeLessThan(45_000);
    expect(r.stdout).not.toContain('verdict: PASS');
  }, 180_000);
});
