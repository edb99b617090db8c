// Every bad input refused with a typed, clear error, and nothing changed (issue §5); errors from
// workers keep their class, code and errno.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Runtime, type Program } from '../../src/runtime/runtime.js';
import { BpfMap } from '../../src/maps/bpf_map.js';
import { fixture } from '../helpers.js';

interface Caught { cls: string; code: unknown; message: string }
async function caught(f: () => unknown): Promise<Caught | null> {
  try { await f(); return null; } catch (e) {
    const err = e as Error & { code?: unknown };
    return { cls: err.constructor.name, code: err.code, message: err.message };
  }
}

describe('Runtime.start options', () => {
  const cases: [string, unknown, string, string, RegExp][] = [
    ['a typo ({ cpu: 8 })', { cpu: 8 }, 'ArgTypeError', 'ERR_INVALID_ARG_VALUE', /unknown option 'cpu' \(did you mean 'cpus'\?\)/],
    ["lockdep: 'no'", { lockdep: 'no' }, 'ArgTypeError', 'ERR_INVALID_ARG_TYPE', /'lockdep' must be a boolean/],
    ["preemptRt: 1", { preemptRt: 1 }, 'ArgTypeError', 'ERR_INVALID_ARG_TYPE', /'preemptRt' must be a boolean/],
    ['faults: -1', { faults: -1 }, 'ArgRangeError', 'ERR_OUT_OF_RANGE', /'faults'/],
    ['faults: an unknown bit', { faults: 1 << 20 }, 'ArgRangeError', 'ERR_OUT_OF_RANGE', /'faults'/],
    ["cpus: '4'", { cpus: '4' }, 'ArgTypeError', 'ERR_INVALID_ARG_TYPE', /'cpus' must be a number/],
    ['cpus: 0', { cpus: 0 }, 'ArgRangeError', 'ERR_OUT_OF_RANGE', /'cpus'/],
    ["clock: 'fast'", { clock: 'fast' }, 'ArgRangeError', 'ERR_INVALID_ARG_VALUE', /'clock' must be one of 'real', 'virtual'/],
    ['seed: 1.5', { seed: 1.5 }, 'ArgRangeError', 'ERR_OUT_OF_RANGE', /'seed'/],
    ["start('x')", 'x', 'ArgTypeError', 'ERR_INVALID_ARG_TYPE', /options must be an object/],
    ['start(42)', 42, 'ArgTypeError', 'ERR_INVALID_ARG_TYPE', /options must be an object/],
  ];
  for (const [title, opts, cls, code, msg] of cases) {
    it(`refuses ${title}`, async () => {
      const c = await caught(() => Runtime.start(opts as never));
      expect(c).toMatchObject({ cls, code });
      expect(c!.message).toMatch(msg);
    });
  }
  it('refused options start nothing: a valid start right after works', async () => {
    await caught(() => Runtime.start({ cpu: 8 } as never));
    const rt = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20 });
    await rt.stop();
  });
});

describe('runtime calls', () => {
  let rt: Runtime;
  let pass: Program;
  let m: BpfMap;
  beforeAll(async () => {
    rt = await Runtime.start({ cpus: 2, memoryBytes: 16 << 20 });
    pass = await rt.loadProgram(fixture('pass_site.mjs'));
    m = rt.createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 2 });
  });
  afterAll(async () => { await rt.stop(); });

  it('inject at an unknown site is refused and defines no site', async () => {
    const before = rt.sites();
    expect(await caught(() => rt.inject({ cpu: 0, at: 'no.such.site', kind: 'nmi' }))).toMatchObject({ cls: 'ArgTypeError', code: 'ERR_INVALID_ARG_VALUE' });
    expect(await caught(() => rt.inject({ cpu: 0, at: 5 as never, kind: 'nmi' }))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    expect(rt.sites()).toEqual(before);
  });

  it('inject: bad kind, rate, times, cpus, program', async () => {
    expect(await caught(() => rt.inject({ kind: 'nmi', cpus: 'all', ratePerSec: Infinity }))).toMatchObject({ cls: 'ArgRangeError', code: 'ERR_OUT_OF_RANGE' });
    expect(await caught(() => rt.inject({ kind: 'nmi', cpus: 'all', ratePerSec: -5 }))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(await caught(() => rt.inject({ kind: 'uprobe' as never, cpus: 'all', ratePerSec: 5 }))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect(await caught(() => rt.inject({ kind: 'nmi', cpus: [0, 7], ratePerSec: 5 }))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(await caught(() => rt.inject({ cpu: 0, at: 'cpu.workload.loop', kind: 'nmi', times: 1.5 }))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    const c = await caught(() => rt.inject({ cpu: 0, at: 'cpu.workload.loop', kind: 'nmi', program: {} as never }));
    expect(c).toMatchObject({ cls: 'ArgTypeError', code: 'ERR_INVALID_ARG_TYPE' });
    expect(c!.message).toMatch(/'program' must be a Program/);
    // nothing was armed: the stats show no interrupt requested
    expect(rt.stats().interrupts.nmi.requested).toBe(0);
  });

  it('attach: unknown kprobe site refused (allowed explicitly with allowUnknownSite), unknown kind refused', async () => {
    expect(await caught(() => pass.attach({ kind: 'kprobe', site: 'no.such.site' }))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect(await caught(() => pass.attach({ kind: 'uprobe' } as never))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect(await caught(() => pass.attach({ kind: 'perf_event', frequencyHz: Infinity }))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    const link = await pass.attach({ kind: 'kprobe', site: 'module.later.site', allowUnknownSite: true });
    expect(rt.sites()).toContain('module.later.site');
    await link.detach();
  });

  it('runWorkload and testRun: iterations, repeat, cpu, context must be what they say', async () => {
    expect(await caught(() => rt.runWorkload({ cpus: [0], program: pass, iterations: 1.5 }))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(await caught(() => rt.runWorkload({ cpus: [0], program: pass, iterations: '10' as never }))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    expect(await caught(() => rt.runWorkload({ cpus: [0], program: pass }))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect(await caught(() => rt.runWorkload({ cpus: [0], program: 'pass' as never, iterations: 1 }))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    const noArg = await caught(() => (pass.testRun as () => unknown)());
    expect(noArg).toMatchObject({ cls: 'ArgTypeError', code: 'ERR_INVALID_ARG_TYPE' });
    expect(noArg!.message).toMatch(/testRun: options must be an object/);
    expect(await caught(() => pass.testRun({ cpu: 0, repeat: 0 }))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(await caught(() => pass.testRun({ cpu: 0, context: 'irq' as never }))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect(await caught(() => pass.testRun({ cpu: 2 }))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    expect(pass.stats().runCount).toBe(0);
  });

  it('loadProgram: maps must be BpfMaps; the message names the argument', async () => {
    const c = await caught(() => rt.loadProgram(fixture('map_update_key.mjs'), { maps: { m: {} as never } }));
    expect(c).toMatchObject({ cls: 'ArgTypeError', code: 'ERR_INVALID_ARG_TYPE' });
    expect(c!.message).toMatch(/loadProgram: maps\.m must be a BpfMap/);
    expect(await caught(() => rt.loadProgram(fixture('map_update_key.mjs'), { mapz: { m } } as never))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect(await caught(() => rt.loadProgram(42 as never))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
  });
});

describe('errors from a worker keep class, code and errno', () => {
  let rt: Runtime;
  beforeAll(async () => { rt = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20 }); });
  afterAll(async () => { await rt.stop(); });

  it('a missing program file: ERR_MODULE_NOT_FOUND', async () => {
    const c = await caught(() => rt.loadProgram(fixture('no_such_program.mjs')));
    expect(c).toMatchObject({ cls: 'Error', code: 'ERR_MODULE_NOT_FOUND' });
  });
  it('a module whose top level throws a RangeError arrives as a RangeError', async () => {
    const c = await caught(() => rt.loadProgram(fixture('rb_bad_module.mjs')));
    expect(c).toMatchObject({ cls: 'RangeError', message: 'rb_bad_module: refusing to load' });
  });
  it('a default export that is not a program arrives as a TypeError', async () => {
    expect(await caught(() => rt.loadProgram(fixture('rb_not_program.mjs')))).toMatchObject({ cls: 'TypeError' });
  });
  it('a BpfError thrown inside a worker arrives as a BpfError with code and errno', async () => {
    const p = await rt.loadProgram(fixture('rb_throw.mjs'), { args: { what: 'error' } });
    await p.testRun({ cpu: 0 }); // aborts: disabled
    // Straight to the worker, past the main-thread check: the worker refuses with BpfError EPERM.
    const c = await caught(() => rt.callCpu(0, 'test', (ctl) => ctl.testRun({ id: p.id, context: 'task', repeat: 1 })));
    expect(c).toMatchObject({ cls: 'BpfError', code: 'EPERM' });
    const e = await rt.callCpu(0, 'test', (ctl) => ctl.testRun({ id: p.id, context: 'task', repeat: 1 })).catch((x: unknown) => x);
    expect(e).toMatchObject({ errno: 1 });
  });
});
