/*
 * map_value.ts — copying map values and keys in kernel memory (include/linux/bpf.h
 * copy_map_value / copy_map_value_locked / check_and_init_map_value / zero_map_value).
 *
 * A value may contain one special field, a 4-byte bpf_spin_lock at `lockOff` (-1: none). Copies
 * never overwrite it in the element and never carry it out (the syscall copy has it zeroed).
 *
 * Small copies are the hot case (4-byte keys, 8-byte values): when both pointers and the length
 * are word multiples they are copied as I32 words in a loop, which is several times cheaper than
 * a typed-array copyWithin call for a few words. Element values are 8-byte aligned, so programs
 * may use 64-bit atomics on them.
 */
import { I32, U8 } from '../mem/arena.js';
import { rawSpinLockIrqsave, rawSpinUnlockIrqrestore } from '../locks/raw_spinlock.js';
import { LC_BPF_SPIN_LOCK } from '../locks/lock_classes.js';

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

/** copy_map_value(): all bytes except the spin lock word. */
export function copyMapValue(dst: number, src: number, size: number, lockOff: number): void {
  if (lockOff < 0) { kcopy(dst, src, size); return; }
  if (lockOff > 0) kcopy(dst, src, lockOff);
  const rest = lockOff + 4;
  if (rest < size) kcopy(dst + rest, src + rest, size - rest);
}

/** check_and_init_map_value(): zero the special fields of a copy handed to user space. */
export function checkAndInitMapValue(dst: number, lockOff: number): void {
  if (lockOff >= 0) I32[(dst + lockOff) >> 2] = 0;
}

/** zero_map_value(): zero everything but the special fields. */
export function zeroMapValue(dst: number, size: number, lockOff: number): void {
  if (lockOff < 0) { kzero(dst, size); return; }
  if (lockOff > 0) kzero(dst, lockOff);
  const rest = lockOff + 4;
  if (rest < size) kzero(dst + rest, size - rest);
}

/**
 * copy_map_value_locked(): copy under the value's bpf_spin_lock. `lockSrc` true: the lock is in
 * `src` (lookup: element → user copy); false: in `dst` (update in place). Returns 0 or the lock
 * error (-EDEADLK / -ETIMEDOUT; the kernel's bpf_spin_lock cannot fail, the simulation's can).
 */
export function copyMapValueLocked(dst: number, src: number, size: number, lockOff: number, lockSrc: boolean): number {
  const lock = (lockSrc ? src : dst) + lockOff;
  const err = rawSpinLockIrqsave(lock, LC_BPF_SPIN_LOCK);
  if (err !== 0) return err;
  copyMapValue(dst, src, size, lockOff);
  rawSpinUnlockIrqrestore(lock);
  return 0;
}
