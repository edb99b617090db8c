// percpu_freelist under real parallelism: 4 (and 8, oversubscribed) worker threads as CPUs pop
// and push on one freelist; every node is held by at most one CPU at a time, and at the end every
// node is on exactly one list with every lock word 0. Workers: test/fixtures/freelist_worker.mjs.
import { describe, it, expect } from 'vitest';
import { Worker } from 'node:worker_threads';
import { boot, splatsOf } from '../maps/boot.js';
import { pcpuFreelistInit, pcpuFreelistPopulate, pcpuFreelistWalk } from '../../src/alloc/percpu_freelist.js';
import { kzalloc } from '../../src/mm/slab.js';
import { OWNER_KERNEL } from '../../src/mm/owners.js';
import { I32 } from '../../src/mem/arena.js';
import { fixture } from '../helpers.js';

describe('percpu_freelist parallel', () => {
  for (const cpus of [4, 8]) {
    it(`${cpus} CPUs pop/push: no node held twice, conservation, locks released`, async () => {
      const sab = boot({ cpus, memoryBytes: 16 << 20 });
      const N = 256;
      const s = pcpuFreelistInit(OWNER_KERNEL);
      const buf = kzalloc(N * 16, OWNER_KERNEL);
      pcpuFreelistPopulate(s, buf, 16, N);
      const go = kzalloc(8, OWNER_KERNEL);
      const workers = [...Array(cpus).keys()].map((cpu) => new Worker(fixture('freelist_worker.mjs'), {
        workerData: { sab, cpu, s, iterations: 200_000, hold: Math.floor(N / cpus) + 8, go },
      }));
      const done = workers.map((w) => new Promise<{ pops: number; empty: number; doubles: number }>((res, rej) => {
        w.once('message', res); w.once('error', rej);
      }));
      while (Atomics.load(I32, go >> 2) < cpus) await new Promise((r) => setTimeout(r, 5));
      Atomics.store(I32, (go + 4) >> 2, 1);
      const res = await Promise.all(done);
      await Promise.all(workers.map((w) => w.terminate()));
      expect(res.reduce((a, r) => a + r.doubles, 0)).toBe(0);
      expect(res.reduce((a, r) => a + r.pops, 0)).toBeGreaterThan(cpus * 1000);
      expect(res.some((r) => r.empty > 0)).toBe(true); // the holders drained it: stealing and "empty" both happened
      const out: string[] = [];
      const seen = new Set<number>();
      const total = pcpuFreelistWalk(s, N + 1, (node) => {
        if (seen.has(node)) out.push(`node 0x${node.toString(16)} twice`);
        if ((node - buf) % 16 !== 0 || node < buf || node >= buf + N * 16) out.push(`bad node 0x${node.toString(16)}`);
        seen.add(node);
      }, out);
      expect(out).toEqual([]);
      expect(total).toBe(N);
      expect(splatsOf()).toEqual([]);
    }, 120_000);
  }
});
