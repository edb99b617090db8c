// Scratch bounds: each program run has its own 512-byte scratch frame (one per nesting depth on a
// CPU). An access of ctx.scratchU32 / scratchU64 / scratchBytes that does not fit the frame (or a
// u32 / u64 offset that is not 4- / 8-aligned, which would write elsewhere than the pointer
// returned) aborts the program with a prog_abort splat naming the scratch bounds, instead of
// writing into the next frame; a nested program (a kprobe inside another run) writing the same
// offsets leaves the interrupted run's frame alone.
import { describe, it, expect, afterAll, beforeAll } from 'vitest';
import { Runtime, type Program } from '../../src/runtime/runtime.js';

const fixture = (name: string): URL => new URL(`./fixtures/${name}`, import.meta.url);
let rt: Runtime;
let outer: Program;

beforeAll(async () => {
  rt = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20 });
  outer = await rt.loadProgram(fixture('scratch_outer.mjs'), { abortPolicy: 'continue', args: { op: 'nest' } });
}, 30_000);
afterAll(async () => { await rt?.stop(); });

const aborts = (): string[] => rt.splats().filter((s) => s.kind === 'prog_abort').map((s) => s.message);

async function access(op: string, off: number, len = 0): Promise<{ retval: number; abort: string | undefined }> {
  const before = aborts().length;
  const r = await outer.testRun({ cpu: 0, args: { op, off, len } });
  return { retval: r.retval, abort: aborts().slice(before)[0] };
}

describe('scratch bounds', () => {
  it('a u64 at offset 510 aborts the program, naming the scratch bounds', async () => {
    const r = await access('u64', 510);
    expect(r.retval).toBe(-1);
    expect(r.abort).toMatch(/program 'scratch_outer' aborted .*: scratch bounds: ctx\.scratchU64\(510\) .*512-byte scratch frame/);
  });

  it.each([
    ['u32', 508, 0, true], ['u32', 509, 0, false], ['u32', 512, 0, false], ['u32', -4, 0, false], ['u32', 2, 0, false], ['u32', 1.5, 0, false],
    ['u64', 504, 0, true], ['u64', 508, 0, false], ['u64', 4, 0, false], ['u64', 512, 0, false],
    ['bytes', 500, 12, true], ['bytes', 0, 512, true], ['bytes', 501, 12, false], ['bytes', 0, 513, false], ['bytes', -1, 1, false], ['bytes', 3, 9, true],
  ] as const)('%s at offset %d (%d bytes): in bounds = %s', async (op, off, len, ok) => {
    const r = await access(op, off, len);
    if (ok) expect(r).toEqual({ retval: 0, abort: undefined });
    else {
      expect(r.retval).toBe(-1);
      expect(r.abort).toMatch(/scratch bounds/);
    }
  });

  it('a nested run (a kprobe inside the program) has its own frame: the same offsets leave the interrupted run\'s keys alone', async () => {
    const inner = await rt.loadProgram(fixture('scratch_inner.mjs'));
    const link = await inner.attach({ kind: 'kprobe', site: 'test.scratch.nested' });
    const before = aborts().length;
    const r = await outer.testRun({ cpu: 0, args: { op: 'nest' }, repeat: 5 });
    await link.detach();
    expect(r.retval).toBe(0);
    expect(inner.stats().runCount).toBe(5);
    expect(aborts().slice(before)).toEqual([]);
  });
});
