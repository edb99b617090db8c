/*
 * validate.ts — argument checks of the public main-thread API (Runtime.start, inject, attach,
 * runWorkload, testRun, loadProgram), with Node-style errors: a TypeError or RangeError whose
 * `code` is ERR_INVALID_ARG_TYPE (wrong type), ERR_OUT_OF_RANGE (a number outside its range) or
 * ERR_INVALID_ARG_VALUE (a value that is not one of the allowed ones, an unknown option), and
 * whose message names the function, the argument and what was expected. A refused call changes
 * nothing.
 */

export type ArgErrorCode = 'ERR_INVALID_ARG_TYPE' | 'ERR_OUT_OF_RANGE' | 'ERR_INVALID_ARG_VALUE';

export class ArgTypeError extends TypeError {
  readonly code: ArgErrorCode;
  constructor(code: ArgErrorCode, message: string) { super(message); this.code = code; }
}
export class ArgRangeError extends RangeError {
  readonly code: ArgErrorCode;
  constructor(code: ArgErrorCode, message: string) { super(message); this.code = code; }
}

/** Short description of a received value for messages ("received type string ('x')"). */
export function received(v: unknown): string {
  if (v === null) return 'received null';
  if (v === undefined) return 'received undefined';
  if (typeof v === 'function') return `received function ${v.name || '<anonymous>'}`;
  if (typeof v === 'object') {
    const ctor = (v as { constructor?: { name?: string } }).constructor?.name;
    return ctor !== undefined && ctor !== 'Object' ? `received an instance of ${ctor}` : 'received an object';
  }
  let shown: string;
  // what is left: number, bigint, boolean or symbol
  try { shown = typeof v === 'string' ? JSON.stringify(v) : String(v as number | bigint | boolean | symbol); } catch { shown = '?'; }
  if (shown.length > 40) shown = `${shown.slice(0, 37)}...`;
  return `received type ${typeof v} (${shown})`;
}

export function typeError(what: string, expected: string, v: unknown): ArgTypeError {
  return new ArgTypeError('ERR_INVALID_ARG_TYPE', `${what} must be ${expected}; ${received(v)}`);
}

export function rangeError(what: string, expected: string, v: unknown): ArgRangeError {
  return new ArgRangeError('ERR_OUT_OF_RANGE', `${what} must be ${expected}; ${received(v)}`);
}

export function valueError(what: string, expected: string, v: unknown): ArgTypeError {
  return new ArgTypeError('ERR_INVALID_ARG_VALUE', `${what} must be ${expected}; ${received(v)}`);
}

/** A plain options object (or undefined when `optional`). */
export function checkObject(what: string, v: unknown, optional: boolean): Record<string, unknown> {
  if (v === undefined && optional) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw typeError(what, 'an object', v);
  return v as Record<string, unknown>;
}

/** Refuse keys not in `known` (a typo such as { cpu: 8 } for { cpus: 8 }). */
export function checkKnownKeys(what: string, o: Record<string, unknown>, known: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (known.includes(k)) continue;
    const near = known.find((n) => n.startsWith(k) || k.startsWith(n) || editDistance(n, k) <= 2);
    throw new ArgTypeError('ERR_INVALID_ARG_VALUE',
      `${what}: unknown option '${k}'${near !== undefined ? ` (did you mean '${near}'?)` : ''}; known options: ${known.join(', ')}`);
  }
}

function editDistance(a: string, b: string): number {
  const d: number[] = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length]!;
}

export function checkInt(what: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number') throw typeError(what, 'a number', v);
  if (!Number.isInteger(v) || v < min || v > max) throw rangeError(what, `an integer in [${min}, ${max}]`, v);
  return v;
}

/** A finite number > 0 (or >= 0 when `zeroOk`), at most `max`. */
export function checkPositive(what: string, v: unknown, max: number, zeroOk = false): number {
  if (typeof v !== 'number') throw typeError(what, 'a number', v);
  if (!Number.isFinite(v) || (zeroOk ? v < 0 : v <= 0) || v > max) {
    throw rangeError(what, `a finite number ${zeroOk ? '>=' : '>'} 0 and at most ${max}`, v);
  }
  return v;
}

export function checkBool(what: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw typeError(what, 'a boolean', v);
  return v;
}

export function checkString(what: string, v: unknown): string {
  if (typeof v !== 'string' || v === '') throw typeError(what, 'a non-empty string', v);
  return v;
}

export function checkOneOf<T extends string>(what: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string') throw typeError(what, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, v);
  if (!allowed.includes(v as T)) throw new ArgRangeError('ERR_INVALID_ARG_VALUE', `${what} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}; ${received(v)}`);
  return v as T;
}
