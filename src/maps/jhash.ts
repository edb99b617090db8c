/*
 * jhash.ts — Bob Jenkins' lookup3 hash as the kernel has it (include/linux/jhash.h): jhash2()
 * over u32 words (hashtab uses it when key_size % 4 == 0, v6.4+) and jhash() over bytes.
 *
 * Inputs are byte pointers into kernel memory (the arena). All arithmetic is 32-bit (`| 0`,
 * `>>>`); results are returned as signed int32 so they can be stored in and compared with I32
 * words without conversion (the bucket index is `hash & (n_buckets - 1)` either way).
 *
 * jhash2Words(p, n, seed) needs `p` 4-byte aligned; jhashBytes works on any pointer (words are
 * read little-endian, as get_unaligned_cpu32 on x86). jhash1Word/jhash2Word are the inlined
 * forms used by the hashtab fast path for 4- and 8-byte keys; they equal jhash2 of 1 / 2 words.
 */
import { I32, U8 } from '../mem/arena.js';

export const JHASH_INITVAL = 0xdeadbeef | 0;

function rol32(w: number, s: number): number {
  return (w << s) | (w >>> (32 - s));
}

/** jhash2() of a single u32 word (no memory access). */
export function jhash1Word(w0: number, initval: number): number {
  let a = (JHASH_INITVAL + 4 + initval) | 0;
  let b = a;
  let c = a;
  a = (a + w0) | 0;
  // __jhash_final(a, b, c)
  c ^= b; c = (c - rol32(b, 14)) | 0;
  a ^= c; a = (a - rol32(c, 11)) | 0;
  b ^= a; b = (b - rol32(a, 25)) | 0;
  c ^= b; c = (c - rol32(b, 16)) | 0;
  a ^= c; a = (a - rol32(c, 4)) | 0;
  b ^= a; b = (b - rol32(a, 14)) | 0;
  c ^= b; c = (c - rol32(b, 24)) | 0;
  return c;
}

/** jhash2() of two u32 words. */
export function jhash2Word(w0: number, w1: number, initval: number): number {
  let a = (JHASH_INITVAL + 8 + initval) | 0;
  let b = a;
  let c = a;
  b = (b + w1) | 0;
  a = (a + w0) | 0;
  c ^= b; c = (c - rol32(b, 14)) | 0;
  a ^= c; a = (a - rol32(c, 11)) | 0;
  b ^= a; b = (b - rol32(a, 25)) | 0;
  c ^= b; c = (c - rol32(b, 16)) | 0;
  a ^= c; a = (a - rol32(c, 4)) | 0;
  b ^= a; b = (b - rol32(a, 14)) | 0;
  c ^= b; c = (c - rol32(b, 24)) | 0;
  return c;
}

/** jhash2(k, nwords, initval): `p` must be 4-byte aligned. */
export function jhash2Words(p: number, nwords: number, initval: number): number {
  let a = (JHASH_INITVAL + (nwords << 2) + initval) | 0;
  let b = a;
  let c = a;
  let i = p >> 2;
  let len = nwords;
  while (len > 3) {
    a = (a + I32[i]!) | 0;
    b = (b + I32[i + 1]!) | 0;
    c = (c + I32[i + 2]!) | 0;
    // __jhash_mix(a, b, c)
    a = (a - c) | 0; a ^= rol32(c, 4); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rol32(a, 6); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rol32(b, 8); b = (b + a) | 0;
    a = (a - c) | 0; a ^= rol32(c, 16); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rol32(a, 19); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rol32(b, 4); b = (b + a) | 0;
    len -= 3;
    i += 3;
  }
  if (len === 0) return c;
  if (len === 3) c = (c + I32[i + 2]!) | 0;
  if (len >= 2) b = (b + I32[i + 1]!) | 0;
  a = (a + I32[i]!) | 0;
  c ^= b; c = (c - rol32(b, 14)) | 0;
  a ^= c; a = (a - rol32(c, 11)) | 0;
  b ^= a; b = (b - rol32(a, 25)) | 0;
  c ^= b; c = (c - rol32(b, 16)) | 0;
  a ^= c; a = (a - rol32(c, 4)) | 0;
  b ^= a; b = (b - rol32(a, 14)) | 0;
  c ^= b; c = (c - rol32(b, 24)) | 0;
  return c;
}

function le32(p: number): number {
  return U8[p]! | (U8[p + 1]! << 8) | (U8[p + 2]! << 16) | (U8[p + 3]! << 24);
}

/** jhash(key, length, initval) over bytes at any alignment. */
export function jhashBytes(p: number, length: number, initval: number): number {
  let a = (JHASH_INITVAL + length + initval) | 0;
  let b = a;
  let c = a;
  let k = p;
  let len = length;
  while (len > 12) {
    a = (a + le32(k)) | 0;
    b = (b + le32(k + 4)) | 0;
    c = (c + le32(k + 8)) | 0;
    a = (a - c) | 0; a ^= rol32(c, 4); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rol32(a, 6); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rol32(b, 8); b = (b + a) | 0;
    a = (a - c) | 0; a ^= rol32(c, 16); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rol32(a, 19); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rol32(b, 4); b = (b + a) | 0;
    len -= 12;
    k += 12;
  }
  if (len === 0) return c;
  // the kernel's fall-through switch on the last 1..12 bytes
  if (len >= 12) c = (c + (U8[k + 11]! << 24)) | 0;
  if (len >= 11) c = (c + (U8[k + 10]! << 16)) | 0;
  if (len >= 10) c = (c + (U8[k + 9]! << 8)) | 0;
  if (len >= 9) c = (c + U8[k + 8]!) | 0;
  if (len >= 8) b = (b + (U8[k + 7]! << 24)) | 0;
  if (len >= 7) b = (b + (U8[k + 6]! << 16)) | 0;
  if (len >= 6) b = (b + (U8[k + 5]! << 8)) | 0;
  if (len >= 5) b = (b + U8[k + 4]!) | 0;
  if (len >= 4) a = (a + (U8[k + 3]! << 24)) | 0;
  if (len >= 3) a = (a + (U8[k + 2]! << 16)) | 0;
  if (len >= 2) a = (a + (U8[k + 1]! << 8)) | 0;
  a = (a + U8[k]!) | 0;
  c ^= b; c = (c - rol32(b, 14)) | 0;
  a ^= c; a = (a - rol32(c, 11)) | 0;
  b ^= a; b = (b - rol32(a, 25)) | 0;
  c ^= b; c = (c - rol32(b, 16)) | 0;
  a ^= c; a = (a - rol32(c, 4)) | 0;
  b ^= a; b = (b - rol32(a, 14)) | 0;
  c ^= b; c = (c - rol32(b, 24)) | 0;
  return c;
}

/**
 * htab_map_hash(): jhash2 over words when key_size % 4 == 0 (and the key is word aligned, which
 * gives the same result as reading the words unaligned), else jhash over bytes.
 */
export function htabMapHash(key: number, keySize: number, hashrnd: number): number {
  if ((keySize & 3) === 0) {
    if ((key & 3) === 0) {
      if (keySize === 4) return jhash1Word(I32[key >> 2]!, hashrnd);
      if (keySize === 8) return jhash2Word(I32[key >> 2]!, I32[(key >> 2) + 1]!, hashrnd);
      return jhash2Words(key, keySize >> 2, hashrnd);
    }
    return jhash2Unaligned(key, keySize >> 2, hashrnd);
  }
  return jhashBytes(key, keySize, hashrnd);
}

/** jhash2 over words read from an unaligned pointer (rare: syscall keys are copied aligned). */
function jhash2Unaligned(p: number, nwords: number, initval: number): number {
  if (nwords === 1) return jhash1Word(le32(p), initval);
  if (nwords === 2) return jhash2Word(le32(p), le32(p + 4), initval);
  let a = (JHASH_INITVAL + (nwords << 2) + initval) | 0;
  let b = a;
  let c = a;
  let k = p;
  let len = nwords;
  while (len > 3) {
    a = (a + le32(k)) | 0; b = (b + le32(k + 4)) | 0; c = (c + le32(k + 8)) | 0;
    a = (a - c) | 0; a ^= rol32(c, 4); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rol32(a, 6); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rol32(b, 8); b = (b + a) | 0;
    a = (a - c) | 0; a ^= rol32(c, 16); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rol32(a, 19); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rol32(b, 4); b = (b + a) | 0;
    len -= 3; k += 12;
  }
  if (len === 3) c = (c + le32(k + 8)) | 0;
  if (len >= 2) b = (b + le32(k + 4)) | 0;
  a = (a + le32(k)) | 0;
  c ^= b; c = (c - rol32(b, 14)) | 0;
  a ^= c; a = (a - rol32(c, 11)) | 0;
  b ^= a; b = (b - rol32(a, 25)) | 0;
  c ^= b; c = (c - rol32(b, 16)) | 0;
  a ^= c; a = (a - rol32(c, 4)) | 0;
  b ^= a; b = (b - rol32(a, 14)) | 0;
  c ^= b; c = (c - rol32(b, 24)) | 0;
  return c;
}
