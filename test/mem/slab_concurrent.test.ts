// The torture test: 4 CPU threads allocate and free random sizes concurrently for 2 s
// (and at least MIN_ALLOCS allocations each, however slow the machine),
// every live block tagged and checked; at the end accounting and free pages are back to the
// start, the allocator is consistent, and a deliberate double free is exactly one splat per CPU.
// Plain worker_threads over the compiled build (test/fixtures/slab_worker.mjs).
import { describe, it, expect, beforeAll } from 'vitest';
import { Worker } from 'node:worker_threads';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { bootArena } from './boot_arena.js';
import { allocOwner, ownerBytes, memStats, memCheck, OWNER_KERNEL } from '../../src/mm/owners.js';
import { slabDrainDeferred, kzalloc, kfree } from '../../src/mm/slab.js';
import { readSplats, formatSplat } from '../../src/debug/splat.js';

const FIXTURE = new URL('../fixtures/slab_worker.mjs', import.meta.url);

interface WorkerResult {
  cpu: number; ops: number; allocs: number; frees: number; fails: number; nmiOps: number;
  nmiFails: number; corrupt: number; badOwner: number; checks: number; firstError: string;
}

beforeAll(() => {
  for (const m of ['slab', 'page_alloc', 'owners']) {
    const js = fileURLToPath(new URL(`../../dist/src/mm/${m}.js`, import.meta.url));
    const ts = fileURLToPath(new URL(`../../src/mm/${m}.ts`, import.meta.url));
    if (!existsSync(js)) throw new Error(`${js} missing: run \`npx tsc -p .\` before this test`);
    if (statSync(js).mtimeMs < statSync(ts).mtimeMs) throw new Error(`${js} is older than its source: run \`npx tsc -p .\``);
  }
});

const MIN_ALLOCS = 20_000;

function run(sab: SharedArrayBuffer, cpu: number, ncpus: number, turn: number, owner: number, seed: number, durationMs: number, doubleFree: boolean): Promise<WorkerResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(FIXTURE, { workerData: { sab, cpu, ncpus, turn, owner, seed, durationMs, maxLive: 1500, doubleFree, minAllocs: MIN_ALLOCS } });
    let result: WorkerResult | undefined;
    w.once('message', (m: WorkerResult) => { result = m; });
    w.once('error', reject);
    w.once('exit', (code) => (result !== undefined && code === 0 ? resolve(result) : reject(new Error(`cpu ${cpu} worker exited with ${code}`))));
  });
}

describe('slab under 4 concurrent CPUs', () => {
  it('2 s (and at least 20k allocations per CPU) of random kmalloc/kfree: tags intact, accounting and pages back to the start, double free splats', async () => {
    const seed = Number(process.env.BPFSIM_SEED ?? 0x5eed);
    const ncpus = 4;
    const sab = bootArena({ ncpus, memoryBytes: 64 << 20, seed, lockTimeoutMs: 2000 });
    const owners = Array.from({ length: ncpus }, (_, c) => allocOwner(`cpu${c}`));
    // turn word: workers check in after the torture loop, then double-free one at a time, so no
    // other CPU can be handed the block between a worker's two kfree calls
    const start = memStats();
    const turn = kzalloc(8, OWNER_KERNEL);
    const results = await Promise.all(owners.map((o, c) => run(sab, c, ncpus, turn, o, seed, 2000, true)));
    kfree(turn);
    const info = `seed ${seed}: ${JSON.stringify(results)}`;
    for (const r of results) {
      expect(r.firstError, info).toBe('');
      expect(r.corrupt, info).toBe(0);
      expect(r.badOwner, info).toBe(0);
      expect(r.allocs, info).toBeGreaterThanOrEqual(MIN_ALLOCS); // each CPU runs 2 s and at least MIN_ALLOCS allocations
      expect(r.frees, info).toBe(r.allocs);
    }
    // NMI frees that found a lock busy were deferred; whatever is left is freed now
    slabDrainDeferred();
    const splats = readSplats();
    expect(splats.filter((s) => s.kind !== 'double_free').map(formatSplat), info).toEqual([]);
    expect(splats.map((s) => s.cpu).sort(), info).toEqual([0, 1, 2, 3]);
    for (const o of owners) expect(ownerBytes(o), info).toBe(0);
    const end = memStats();
    expect(end.bytesInUse, info).toBe(start.bytesInUse);
    expect(end.slabObjects, info).toBe(0);
    expect(end.pagesFree, info).toBe(start.pagesFree);
    expect(memCheck(), info).toEqual([]);
    const total = results.reduce((a, r) => a + r.ops, 0);
    console.log(`slab torture seed ${seed}: ${total} ops on ${ncpus} CPUs (2 s or more); ` +
      `nmi ops ${results.reduce((a, r) => a + r.nmiOps, 0)} (busy ${end.nmiLockBusy}, deferred frees ${end.deferredFrees})`);
  });
});
