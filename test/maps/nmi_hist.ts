// The return-code histogram of test/fixtures/map_nmi_hist.mjs (a perf_event program run by random
// NMIs on a map a workload is hammering): an array map of u64 counters, index op * 128 + errno
// (op 0 = update, 1 = the delete after a successful update; errno 0 = success, 127 = a positive
// return). Tests read it after the run and assert the exact set of return codes the interrupt
// program saw, and that every run was recorded.
import { expect } from 'vitest';
import type { Runtime, Program } from '../../src/runtime/runtime.js';
import type { BpfMap } from '../../src/maps/bpf_map.js';
import { errnoName } from '../../src/errno.js';
import { u32, readU64 } from './boot.js';

const SLOTS = 128;

export function createNmiHist(rt: Runtime): BpfMap {
  return rt.createMap({ type: 'array', name: 'nmi_hist', keySize: 4, valueSize: 8, maxEntries: 2 * SLOTS });
}

export interface NmiHist {
  /** return code name ('ok', 'EBUSY', …) → count, of the program's update */
  readonly update: Record<string, number>;
  /** the same for its delete (made only after the update returned 0) */
  readonly delete: Record<string, number>;
}

function codeName(e: number): string {
  return e === 0 ? 'ok' : e === SLOTS - 1 ? 'positive' : errnoName(e);
}

export function readNmiHist(hist: BpfMap): NmiHist {
  const out: NmiHist = { update: {}, delete: {} };
  for (let i = 0; i < 2 * SLOTS; i++) {
    const n = Number(readU64(hist.lookup(u32(i))!));
    if (n !== 0) (i < SLOTS ? out.update : out.delete)[codeName(i % SLOTS)] = n;
  }
  return out;
}

const sum = (h: Record<string, number>): number => Object.values(h).reduce((a, b) => a + b, 0);

/**
 * Every NMI run recorded exactly one update (and a delete exactly when the update succeeded), and
 * every return code is in the allowed set. Returns the histogram (for messages and further checks).
 * An NMI raised just before the injection was cancelled may still be running on its CPU: the
 * histogram and the program's run count are read until they agree (a bounded wait that exists
 * only so that a lost record fails instead of hanging; when nothing is lost they agree at once).
 */
export async function expectNmiReturns(
  hist: BpfMap, prog: Program, allowed: { update: readonly string[]; delete: readonly string[] },
): Promise<NmiHist> {
  let h = readNmiHist(hist);
  let runs = prog.stats().runCount;
  for (const end = Date.now() + 10_000; sum(h.update) !== runs && Date.now() < end;) {
    await new Promise((r) => setTimeout(r, 10));
    h = readNmiHist(hist);
    runs = prog.stats().runCount;
  }
  const msg = `NMI program return codes: ${JSON.stringify(h)} over ${runs} runs`;
  expect(runs, msg).toBeGreaterThan(0);
  expect(sum(h.update), msg).toBe(runs);
  expect(sum(h.delete), msg).toBe(h.update.ok ?? 0);
  expect(Object.keys(h.update).filter((k) => !allowed.update.includes(k)), msg).toEqual([]);
  expect(Object.keys(h.delete).filter((k) => !allowed.delete.includes(k)), msg).toEqual([]);
  return h;
}
