// Malformed histories and options are refused up front with a TypeError (RangeError for a stamp
// beyond 2^53) that names the op by index, or the option.
import { describe, it, expect } from 'vitest';
import { checkHistory, type HistoryOp } from '../../src/check/index.js';
import { upd, look, K_A, V1 } from './helpers.js';

const good = [upd(K_A, V1, 0, 1, 2), look(K_A, V1, 3, 4)];
const withBad = (patch: Record<string, unknown>): HistoryOp[] => [good[0]!, good[1]!, { ...good[1]!, ...patch } as unknown as HistoryOp];

describe('history validation', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['an unknown op', { op: 'peek' }, /ops\[2\]\.op: expected one of 'lookup'/],
    ['a missing key', { key: undefined }, /ops\[2\]\.key: expected a non-empty hex string/],
    ['a key that is not hex', { key: 'xyz0' }, /ops\[2\]\.key/],
    ['a key of half a byte', { key: '123' }, /ops\[2\]\.key/],
    ['a negative CPU', { cpu: -1 }, /ops\[2\]\.cpu: expected an integer >= 0/],
    ['a map id that is a string', { map: '1' }, /ops\[2\]\.map/],
    ['ret before call', { call: 9, ret: 9 }, /ops\[2\]\.ret: expected a stamp greater than call \(9\)/],
    ['a stamp that is not a number', { call: '1' }, /ops\[2\]\.call/],
    ['a lookup result of 0', { result: 0 }, /ops\[2\]\.result: expected the value found \(hex\) or a negative errno/],
    ['a positive errno', { result: 2 }, /ops\[2\]\.result/],
    ['flags that are negative', { flags: -1 }, /ops\[2\]\.flags/],
    ['an unknown mapType', { mapType: 'queue' }, /ops\[2\]\.mapType: expected one of hash/],
    ['a side that is neither', { side: 'kernel' }, /ops\[2\]\.side/],
    ['a context that is not a string', { context: 3 }, /ops\[2\]\.context/],
  ];
  for (const [name, patch, msg] of cases) {
    it(`refuses ${name}`, async () => {
      await expect(checkHistory(withBad(patch))).rejects.toThrow(TypeError);
      await expect(checkHistory(withBad(patch))).rejects.toThrow(msg);
    });
  }
  it('refuses an update without a value, and an update whose result is a value', async () => {
    await expect(checkHistory([good[0]!, { ...good[0]!, value: undefined }])).rejects.toThrow(/ops\[1\]\.value/);
    await expect(checkHistory([{ ...good[0]!, result: V1 }])).rejects.toThrow(/ops\[0\]\.result: expected 0 or a negative errno for 'update'/);
  });
  it('refuses something that is not an array, and a null op', async () => {
    await expect(checkHistory({} as unknown as HistoryOp[])).rejects.toThrow(/ops: expected an array/);
    await expect(checkHistory([null as unknown as HistoryOp])).rejects.toThrow(/ops\[0\]/);
  });
  it('refuses a bigint stamp past 2^53 with a RangeError', async () => {
    await expect(checkHistory([{ ...good[0]!, call: 1n, ret: 2n ** 60n }])).rejects.toThrow(RangeError);
  });
});

describe('option validation', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['an unknown option', { timeout: 5 }, /unknown option "timeout"/],
    ['an unknown model', { model: 'queue' }, /options\.model must be one of/],
    ['a negative timeout', { timeoutMs: -1 }, /options\.timeoutMs must be a number >= 0/],
    ['a fractional thread count', { threads: 1.5 }, /options\.threads must be an integer/],
    ['maps with a bad type', { maps: { 1: { type: 'ring' } } }, /options\.maps\[1\]\.type/],
    ['maps with a bad initial value', { maps: { 1: { type: 'array', initialValue: 'zz' } } }, /options\.maps\[1\]\.initialValue/],
    ['maps with a bad id', { maps: { x: { type: 'hash' } } }, /options\.maps: "x" is not a map id/],
    ['a pool that is not a pool', { pool: {} }, /options\.pool must be a Piscina pool/],
    ['minimize that is not a boolean', { minimize: 1 }, /options\.minimize/],
  ];
  for (const [name, opts, msg] of cases) {
    it(`refuses ${name}`, async () => {
      await expect(checkHistory(good, opts as never)).rejects.toThrow(TypeError);
      await expect(checkHistory(good, opts as never)).rejects.toThrow(msg);
    });
  }
  it('accepts maps as a Map', async () => {
    expect((await checkHistory(good, { maps: new Map([[1, { type: 'hash' as const }]]) })).result).toBe('ok');
  });
});
