/*
 * map_value.ts — raw copies of map values and keys in kernel memory (memcpy / memset / memcmp).
 *
 * The copies that know a value's special fields (copy_map_value and friends) live in
 * btf_record.ts; this file has the raw byte helpers they are built on.
 *
 * Small copies are the hot case (4-byte keys, 8-byte values): when both pointers and the length
 * are word multiples they are copied as I32 words in a loop, which is several times cheaper than
 * a typed-array copyWithin call for a few words. Element values are 8-byte aligned, so programs
 * may use 64-bit atomics on them.
 */
import { I32, U8 } from '../mem/arena.js';

/** memcpy for kernel memory, fast for small word-aligned copies. No overlap. */
export function kcopy(dst: number, src: number, n: number): void {
  if (((dst | src | n) & 3) === 0 && n <= 128) {
    const d = dst >> 2;
    const s = src >> 2;
    const w = n >> 2;
    for (let i = 0; i < w; i++) I32[d + i] = I32[s + i]!;
    return;
  }
  U8.copyWithin(dst, src, src + n);
}

export function kzero(dst: number, n: number): void {
  if (((dst | n) & 3) === 0 && n <= 128) {
    const d = dst >> 2;
    const w = n >> 2;
    for (let i = 0; i < w; i++) I32[d + i] = 0;
    return;
  }
  U8.fill(0, dst, dst + n);
}

/** Compare n bytes; words when everything is word aligned. */
export function kmemeq(a: number, b: number, n: number): boolean {
  if (((a | b | n) & 3) === 0) {
    const ai = a >> 2;
    const bi = b >> 2;
    const w = n >> 2;
    for (let i = 0; i < w; i++) if (I32[ai + i] !== I32[bi + i]) return false;
    return true;
  }
  for (let i = 0; i < n; i++) if (U8[a + i] !== U8[b + i]) return false;
  return true;
}
