// The real executable (dist/src/cli/main.js, the package's "bin"): --help for every subcommand,
// and bad arguments → exit code 2 with one line on stderr, no stack trace — as a user sees it.
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, lines, ROOT, tmpDir } from './helpers.js';

const BIN = path.join(ROOT, 'dist/src/cli/main.js');

function bpfsim(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  // the timeout only keeps a child that never exits from hanging the suite (generous, for a
  // loaded machine); a child killed by it has a null status, which every test rejects
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmpDir(), encoding: 'utf8', timeout: 60_000, env: { ...process.env, BPFSIM_DEBUG: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => ensureBuilt(), 180_000);

describe('bpfsim executable', () => {
  it('starts with a node shebang (source and build)', () => {
    expect(readFileSync(path.join(ROOT, 'src/cli/main.ts'), 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
    expect(readFileSync(BIN, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    expect(path.resolve(ROOT, pkg.bin.bpfsim!)).toBe(BIN);
  });

  it.each(['demo', 'stress', 'bench', 'scenario'])('%s --help exits 0 with its usage', (cmd) => {
    const r = bpfsim(cmd, '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: bpfsim ${cmd}`);
    expect(r.stderr).toBe('');
  });

  it('--help lists the commands', () => {
    const r = bpfsim('--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/demo[\s\S]*stress[\s\S]*bench[\s\S]*scenario/);
  });

  it.each([
    [['stress', '--maps', 'hash,btree'], /unknown map type 'btree'/],
    [['stress', '--seconds', '-3'], /--seconds must be a positive number of seconds, got -3/],
    [['stress', '--cpus', '65'], /the arena holds at most 64 CPUs/],
    [['stress', '--alloc', 'slab'], /unknown alloc mode 'slab'/],
    [['stress', '--mix', 'update=40,delete=x'], /--mix: weight of 'delete'/],
    [['bench', 'fastest'], /unknown benchmark 'fastest'/],
    [['nope'], /unknown command 'nope'/],
    [[], /missing command/],
  ])('%j → exit 2, one line, no stack trace', (argv, re) => {
    const r = bpfsim(...argv);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(re);
    expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
    expect(r.stdout).toBe('');
  });
});
