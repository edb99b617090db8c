// jhash / jhash2 against lookup3's published vectors (jhash is hashlittle on a little-endian
// machine), and jhash2 over words == jhash over the same bytes (true for little-endian keys).
import { describe, it, expect, beforeAll } from 'vitest';
import { boot, Scratch } from './boot.js';
import { jhashBytes, jhash2Words, jhash1Word, jhash2Word, htabMapHash } from '../../src/maps/jhash.js';
import { U8, I32 } from '../../src/mem/arena.js';

describe('jhash', () => {
  let sc: Scratch;
  beforeAll(() => { boot({ cpus: 1 }); sc = new Scratch(); });

  const put = (s: string, off = 0): number => { const b = new TextEncoder().encode(s); U8.set(b, sc.ptr + off); return sc.ptr + off; };

  it('matches lookup3 hashlittle vectors', () => {
    expect(jhashBytes(sc.ptr, 0, 0) >>> 0).toBe(0xdeadbeef);
    expect(jhashBytes(sc.ptr, 0, 0xdeadbeef | 0) >>> 0).toBe(0xbd5b7dde);
    const p = put('Four score and seven years ago');
    expect(jhashBytes(p, 30, 0) >>> 0).toBe(0x17770551);
    expect(jhashBytes(p, 30, 1) >>> 0).toBe(0xcd628161);
    expect(jhashBytes(p + 1, 29, 0) >>> 0).toBe(jhashBytes(put('our score and seven years ago', 64), 29, 0) >>> 0);
  });

  it('jhash2 over words equals jhash over the same bytes; 1- and 2-word forms agree', () => {
    for (let n = 1; n <= 13; n++) {
      for (let i = 0; i < n; i++) I32[(sc.ptr >> 2) + i] = Math.imul(i + 1, 0x9e3779b9) ^ n;
      for (const seed of [0, 1, -7, 0x12345678]) {
        expect(jhash2Words(sc.ptr, n, seed)).toBe(jhashBytes(sc.ptr, 4 * n, seed));
        expect(htabMapHash(sc.ptr, 4 * n, seed)).toBe(jhashBytes(sc.ptr, 4 * n, seed));
        // unaligned keys hash the same
        U8.copyWithin(sc.ptr + 201, sc.ptr, sc.ptr + 4 * n);
        expect(htabMapHash(sc.ptr + 201, 4 * n, seed)).toBe(jhashBytes(sc.ptr, 4 * n, seed));
      }
    }
    I32[sc.ptr >> 2] = 42; I32[(sc.ptr >> 2) + 1] = -5;
    expect(jhash1Word(42, 3)).toBe(jhash2Words(sc.ptr, 1, 3));
    expect(jhash2Word(42, -5, 3)).toBe(jhash2Words(sc.ptr, 2, 3));
  });
});
