/*
 * errors.ts — how an error thrown inside a CPU worker crosses to the main thread.
 *
 * comlink's own 'throw' handler keeps only message, name and stack: every error arrives as a plain
 * Error, so a BpfError loses `code` and `errno`, a RangeError becomes Error and a missing program
 * file loses ERR_MODULE_NOT_FOUND. This handler (installed on both sides: the worker serializes,
 * the main thread deserializes) carries the class (Error, TypeError, RangeError, SyntaxError,
 * BpfError and its subclasses by name), `code`, `errno`, `cpu`, message and stack, and rebuilds an
 * error of the same class on the main thread. A thrown non-Error value is passed through when it
 * can be cloned and described otherwise (a Symbol cannot cross a MessagePort).
 */
import * as Comlink from 'comlink';
import { BpfError } from '../errno.js';

interface WireError {
  readonly cls: string;
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
  readonly code?: string;
  readonly errno?: number;
  readonly cpu?: number;
}

type Wire = { readonly isError: true; readonly value: WireError } | { readonly isError: false; readonly value: unknown };

const BUILTIN: Readonly<Record<string, new (message: string) => Error>> = {
  Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError,
};

function toWire(value: unknown): Wire {
  if (value instanceof Error) {
    const v = value as Error & { code?: unknown; errno?: unknown; cpu?: unknown };
    const cls = value instanceof BpfError ? 'BpfError' : Object.keys(BUILTIN).find((k) => value.constructor === BUILTIN[k]) ?? 'Error';
    return {
      isError: true,
      value: {
        cls, name: value.name, message: value.message,
        ...(typeof value.stack === 'string' ? { stack: value.stack } : {}),
        ...(typeof v.code === 'string' ? { code: v.code } : {}),
        ...(typeof v.errno === 'number' ? { errno: v.errno } : {}),
        ...(typeof v.cpu === 'number' ? { cpu: v.cpu } : {}),
      },
    };
  }
  try {
    structuredClone(value);
    return { isError: false, value };
  } catch {
    let text = '<uncloneable value>';
    try { text = typeof value === 'symbol' ? value.toString() : Object.prototype.toString.call(value); } catch { /* keep the placeholder */ }
    return { isError: true, value: { cls: 'Error', name: 'Error', message: `a worker threw a value that cannot cross threads: ${text}` } };
  }
}

/** Rebuild the error on the receiving side, with its class, code and errno. */
export function fromWire(w: WireError): Error {
  let e: Error;
  if (w.cls === 'BpfError' && typeof w.errno === 'number') {
    e = new BpfError(w.errno);
    e.message = w.message;
  } else {
    e = new (BUILTIN[w.cls] ?? Error)(w.message);
  }
  if (w.name !== e.name) e.name = w.name;
  if (w.stack !== undefined) e.stack = w.stack;
  const ex = e as Error & { code?: string; errno?: number; cpu?: number };
  if (w.code !== undefined && ex.code === undefined) Object.defineProperty(e, 'code', { value: w.code, enumerable: true, configurable: true, writable: true });
  if (w.errno !== undefined && ex.errno === undefined) ex.errno = w.errno;
  if (w.cpu !== undefined) ex.cpu = w.cpu;
  return e;
}

let installed = false;

/** Replace comlink's 'throw' transfer handler with one that keeps class, code and errno. */
export function installErrorTransfer(): void {
  if (installed) return;
  const original = Comlink.transferHandlers.get('throw');
  if (original === undefined) throw new Error("comlink has no 'throw' transfer handler to extend");
  installed = true;
  Comlink.transferHandlers.set('throw', {
    canHandle: (v: unknown): v is unknown => original.canHandle(v),
    serialize: (thrown: unknown) => [toWire((thrown as { value: unknown }).value), []],
    deserialize: (w: unknown) => {
      const wire = w as Wire;
      if (wire.isError) throw fromWire(wire.value);
      throw wire.value;
    },
  } as Comlink.TransferHandler<unknown, unknown>);
}
