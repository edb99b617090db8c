/*
 * errno.ts — the kernel's error numbers and BpfError, the one exception type of the syscall side.
 *
 * Hot paths (lookup, update, delete, alloc, free, lock) return 0 or a negative errno and never
 * throw. The syscall-side API (Runtime, map handles) turns a negative errno into a thrown
 * BpfError carrying both the symbolic `code` Node users expect and the positive Linux `errno`.
 */

export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const E2BIG = 7;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const EINVAL = 22;
export const ENOSPC = 28;
export const EDEADLK = 35;
export const ELOOP = 40;
export const EOPNOTSUPP = 95;
export const ETIMEDOUT = 110;
export const ECANCELED = 125;
/** Kernel-internal ENOTSUPP (not in uapi), returned by htab_map_alloc_check for LRU + NO_PREALLOC. */
export const ENOTSUPP = 524;

const NAMES: Readonly<Record<number, string>> = Object.freeze({
  [EPERM]: 'EPERM', [ENOENT]: 'ENOENT', [EINTR]: 'EINTR', [E2BIG]: 'E2BIG', [EBADF]: 'EBADF', [EAGAIN]: 'EAGAIN',
  [ENOMEM]: 'ENOMEM', [EFAULT]: 'EFAULT', [EBUSY]: 'EBUSY', [EEXIST]: 'EEXIST', [EINVAL]: 'EINVAL',
  [ENOSPC]: 'ENOSPC', [EDEADLK]: 'EDEADLK', [ELOOP]: 'ELOOP', [EOPNOTSUPP]: 'EOPNOTSUPP', [ETIMEDOUT]: 'ETIMEDOUT',
  [ECANCELED]: 'ECANCELED', [ENOTSUPP]: 'ENOTSUPP',
});

/** Symbolic name of a (positive or negative) errno, e.g. errnoName(-16) === 'EBUSY'. */
export function errnoName(err: number): string {
  const n = Math.abs(err);
  return NAMES[n] ?? `E${n}`;
}

export type BpfErrorCode =
  | 'EPERM' | 'ENOENT' | 'EINTR' | 'E2BIG' | 'EBADF' | 'EAGAIN' | 'ENOMEM' | 'EFAULT' | 'EBUSY' | 'EEXIST'
  | 'EINVAL' | 'ENOSPC' | 'EDEADLK' | 'ELOOP' | 'EOPNOTSUPP' | 'ETIMEDOUT' | 'ECANCELED' | 'ENOTSUPP';

/** The error thrown by every syscall-side operation. `errno` is positive, as in user space. */
export class BpfError extends Error {
  readonly code: BpfErrorCode;
  readonly errno: number;
  constructor(errno: number, message?: string) {
    const n = Math.abs(errno);
    const code = errnoName(n) as BpfErrorCode;
    super(message === undefined ? code : `${code}: ${message}`);
    this.name = 'BpfError';
    this.code = code;
    this.errno = n;
  }
}

/** Throw a BpfError if `ret` is a negative errno; return it otherwise. */
export function check(ret: number, what?: string): number {
  if (ret < 0) throw new BpfError(-ret, what);
  return ret;
}
