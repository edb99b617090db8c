// Shared test helpers: fixture URLs and the "no splat the test did not ask for" check.
import { expect } from 'vitest';
import type { Runtime } from '../src/runtime/runtime.js';
import { formatSplat } from '../src/debug/splat.js';

export function fixture(name: string): URL {
  return new URL(`./fixtures/${name}`, import.meta.url);
}

export function expectNoSplats(rt: Runtime): void {
  const s = rt.splats();
  expect(s.map(formatSplat)).toEqual([]);
}
