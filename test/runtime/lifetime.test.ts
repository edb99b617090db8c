// Handles cannot outlive their runtime; one runtime per thread, also when two start at once;
// stop() releases kernel memory (issue "Nothing hangs, nothing lies" §2).
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Runtime } from '../../src/runtime/runtime.js';
import { fixture } from '../helpers.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const codeOf = async (f: () => unknown): Promise<string> => {
  try { await f(); return 'no error'; } catch (e) { return (e as { code?: string }).code ?? String(e); }
};

describe('handles belong to their runtime', () => {
  it('after stop(), a program, its link, an injection and the runtime itself answer EBADF; splats() and stats() keep what they were', async () => {
    const rt = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20 });
    const p = await rt.loadProgram(fixture('pass_site.mjs'));
    const link = await p.attach({ kind: 'kprobe', site: 'test.kprobe.self' });
    const inj = rt.inject({ cpu: 0, at: 'test.kprobe.self', kind: 'nmi', times: 1 });
    await p.testRun({ cpu: 0 });
    const before = rt.stats();
    await rt.stop();
    expect(await codeOf(() => p.testRun({ cpu: 0 }))).toBe('EBADF');
    expect(await codeOf(() => p.attach({ kind: 'perf_event' }))).toBe('EBADF');
    expect(await codeOf(() => p.stats())).toBe('EBADF');
    expect(await codeOf(() => p.lastRetval(0))).toBe('EBADF');
    expect(await codeOf(() => p.unload())).toBe('EBADF');
    expect(await codeOf(() => link.hits())).toBe('EBADF');
    expect(await codeOf(() => link.detach())).toBe('EBADF');
    expect(await codeOf(() => inj.fired())).toBe('EBADF');
    expect(await codeOf(() => rt.createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 }))).toBe('EBADF');
    expect(await codeOf(() => rt.loadProgram(fixture('pass_site.mjs')))).toBe('EBADF');
    expect(await codeOf(() => rt.synchronizeRcu())).toBe('EBADF');
    expect(await codeOf(() => rt.inject({ kind: 'nmi', cpus: 'all', ratePerSec: 10 }))).toBe('EBADF');
    expect(await codeOf(() => rt.sab)).toBe('EBADF');
    expect(rt.stats().cpus[0]!.nmi).toBe(before.cpus[0]!.nmi);
    expect(rt.splats()).toEqual([]);
  });

  it('a program handle of a stopped runtime does not reach the next runtime\'s program with the same id', async () => {
    const a = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20 });
    const old = await a.loadProgram(fixture('ret_arg.mjs'), { args: { ret: 1 } });
    await a.stop();
    const b = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20 });
    try {
      const fresh = await b.loadProgram(fixture('ret_arg.mjs'), { args: { ret: 2 } });
      expect(fresh.id).toBe(old.id);
      expect(await codeOf(() => old.testRun({ cpu: 0 }))).toBe('EBADF');
      expect(await codeOf(() => b.inject({ cpu: 0, at: 'test.args.window', kind: 'nmi', program: old }))).toBe('EBADF');
      expect(await codeOf(() => b.runWorkload({ cpus: [0], program: old, iterations: 1 }))).toBe('EBADF');
      expect(fresh.stats().runCount).toBe(0);
    } finally {
      await b.stop();
    }
  });

  it('two Runtime.start calls at once: exactly one succeeds, the other is refused', async () => {
    const results = await Promise.allSettled([
      Runtime.start({ cpus: 1, memoryBytes: 16 << 20 }),
      Runtime.start({ cpus: 1, memoryBytes: 16 << 20 }),
    ]);
    const ok = results.filter((r): r is PromiseFulfilledResult<Runtime> => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    try {
      expect(ok).toHaveLength(1);
      expect(refused).toHaveLength(1);
      expect(String(refused[0]!.reason)).toMatch(/another runtime is (starting|running)/);
      // the one that started works: its views were not taken over
      const m = ok[0]!.value.createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 2 });
      m.update(new Uint8Array(4), new Uint8Array([9, 0, 0, 0]));
      expect(m.lookup(new Uint8Array(4))).toEqual(new Uint8Array([9, 0, 0, 0]));
    } finally {
      await Promise.all(ok.map((r) => r.value.stop()));
    }
  });

  it('stop() releases kernel memory: the arena can be garbage-collected while the Runtime object is still held', () => {
    const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(fixture('rb_arena_release.mjs'))], { cwd: root, encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout.trim())).toEqual({ released: true, held: 'objectobject' });
  });
});

describe('a freed program', () => {
  it('stats() after unload are the figures at its free, not its freed (poisoned, reused) state memory; refcnt() 0; lastRetval EBADF', async () => {
    const rt = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20 });
    try {
      const p = await rt.loadProgram(fixture('pass_site.mjs'));
      for (let i = 0; i < 3; i++) await p.testRun({ cpu: 0 });
      const before = p.stats();
      expect(before.runCount).toBe(3);
      await p.unload();
      expect(p.released).toBe(true);
      // another program's state may now occupy the freed memory: run it, then read the first again
      const q = await rt.loadProgram(fixture('pass_site.mjs'));
      for (let i = 0; i < 5; i++) await q.testRun({ cpu: 0 });
      expect(p.stats()).toEqual(before);
      expect(p.refcnt()).toBe(0);
      expect(await codeOf(() => p.lastRetval(0))).toBe('EBADF');
      await q.unload();
    } finally {
      await rt.stop();
    }
  });
});
