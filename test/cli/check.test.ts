// stress --check and --record (issue 11 §3): every mix cell's recorded history is checked for
// linearizability; sound configurations have no illegal partition; the recorded file is the
// checker's format and checks the same way. The real executable and library.
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT, tmpDir } from './helpers.js';
import { validateResults } from '../../src/cli/results.js';
import { checkHistory } from '../../src/check/index.js';

const BIN = path.join(ROOT, 'dist/src/cli/main.js');

beforeAll(() => ensureBuilt(), 180_000);

describe('stress --check', () => {
  it('checks each mix cell (hash, lru_hash, percpu_hash, array; prealloc and bpf_mem_alloc): no illegal partition, the record file checks too', async () => {
    const cwd = tmpDir();
    const file = path.join(cwd, 'history.jsonl');
    // the spawn timeout only keeps a broken build from hanging the suite
    const r = spawnSync(process.execPath, [BIN, 'stress', '--check', '--record', file, '--seconds', '2', '--cpus', '2', '--seed', '5',
      '--maps', 'hash,lru_hash,percpu_hash,array', '--alloc', 'prealloc,bpf_mem_alloc'], { cwd, encoding: 'utf8', timeout: 300_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^linearizability \(bpfsim\/check/m);
    const res = JSON.parse(readFileSync(path.join(cwd, 'bpfsim-report', 'results.json'), 'utf8')) as unknown;
    expect(validateResults(res)).toMatchObject({ ok: true });
    const cells = (res as { stress: { cells: { map: string; alloc: string; workload: string; status: string; check?: { result: string; ops: number; illegal: number; partitions: number } }[] } }).stress.cells;
    const mix = cells.filter((c) => c.workload === 'mix' && c.status === 'ran');
    expect(mix.map((c) => `${c.map}/${c.alloc}`).sort()).toEqual(['array/prealloc', 'hash/bpf_mem_alloc', 'hash/prealloc', 'lru_hash/prealloc', 'percpu_hash/bpf_mem_alloc', 'percpu_hash/prealloc']);
    for (const c of mix) {
      expect(c.check, `${c.map}/${c.alloc}`).toBeDefined();
      expect(c.check!.ops).toBeGreaterThan(0);
      // 'incomplete': the recorder dropped operations (a loaded machine starved the drain), and
      // the cell is then not judged — never 'illegal' in a sound configuration
      expect(['ok', 'unknown', 'incomplete']).toContain(c.check!.result);
      if (c.check!.result !== 'incomplete') expect(c.check!.illegal, `${c.map}/${c.alloc}`).toBe(0);
    }
    // the record file: the operations of a runtime, then its header line, in the checker's format
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const head = lines.find((l) => l.bpfsim === 'history/1')!;
    expect(head).toMatchObject({ bpfsim: 'history/1', syscallCpu: 2 });
    const all = lines.filter((l) => l.bpfsim === undefined);
    expect(all.length).toBe(head.recorded);
    if ((head.dropped as number) > 0) return; // incomplete: nothing to judge (reported as such above)
    // the mix cells' maps (st_*): the other maps are written through value pointers by programs
    // (the errno counters, the timer cells' values), which no history of map operations shows
    const maps = head.maps as Record<string, { name: string }>;
    const ops = all.filter((op) => maps[String(op.map)]!.name.startsWith('st_'));
    const checked = await checkHistory(ops as never, { maps: head.maps as never, syscallCpu: head.syscallCpu as number, timeoutMs: 120_000 });
    expect(checked.illegal).toEqual([]);
    expect(checked.opsChecked).toBeGreaterThan(0);
  }, 320_000);
});
