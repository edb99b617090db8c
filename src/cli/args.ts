/*
 * args.ts — argument parsing for every subcommand: node:util parseArgs in strict mode, then one
 * validator per option kind. Every mistake becomes a UsageError whose message is one line naming
 * the option and the value received; cli.ts prints it on stderr and exits with code 2.
 *
 * parseArgs quirk handled here: in `--seconds -3` the value starts with a dash, so parseArgs would
 * call it ambiguous; a negative number right after an option that takes a value is rewritten to
 * `--seconds=-3` so the user gets "must be positive" instead.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { MAX_CPUS } from './limits.js';
import {
  MAP_TYPES, ALLOC_MODES, MIX_OPS, BENCH_NAMES, ALL_BENCH_NAMES, FAULT_NAMES, type MapType, type AllocMode, type Mix,
  type MixOp, type BenchName, type FaultName,
} from './engine_api.js';

/** A mistake in the command line: one line, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(message: string) {
    super(message.replace(/\s*\n\s*/g, ' '));
  }
}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  readonly values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  readonly positionals: string[];
}

/** True when the command line asks for help (before `--`). */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

/** parseArgs in strict mode, with its errors turned into one-line UsageErrors. */
export function parseCommandLine(cmd: string, argv: readonly string[], options: OptionSpec, allowPositionals: boolean): Parsed {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    if (a.startsWith('--') && !a.includes('=') && next !== undefined && /^-\d/.test(next)) {
      const spec = options[a.slice(2)];
      if (spec !== undefined && spec.type === 'string') { args.push(`${a}=${next}`); i++; continue; }
    }
    args.push(a);
  }
  try {
    const r = parseArgs({ args, options, strict: true, allowPositionals });
    return { values: r.values as Parsed['values'], positionals: r.positionals };
  } catch (e: unknown) {
    throw new UsageError(describeParseError(cmd, e));
  }
}

function describeParseError(cmd: string, e: unknown): string {
  const err = e as { code?: unknown; message?: unknown };
  const msg = typeof err.message === 'string' ? err.message : String(e);
  const quoted = /'([^']+)'/.exec(msg)?.[1];
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option '${quoted ?? msg}' for 'bpfsim ${cmd}'`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument '${quoted ?? msg}' for 'bpfsim ${cmd}'`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const opt = /Option '([^']+)'/.exec(msg)?.[1]?.split(' ')[0];
      if (msg.includes('argument missing')) return `option '${opt ?? '?'}' needs a value`;
      if (msg.includes('does not take an argument')) return `option '${opt ?? '?'}' does not take a value`;
      return msg.split('\n')[0]!;
    }
    default:
      return msg.split('\n')[0]!;
  }
}

// ---- single values ----

function str(v: unknown): string | undefined {
  if (Array.isArray(v)) return str(v[v.length - 1]);
  return typeof v === 'string' ? v : undefined;
}

/** --cpus: a whole number in [1, MAX_CPUS]. */
export function parseCpus(v: unknown, dflt: number, opt = '--cpus'): number {
  const s = str(v);
  if (s === undefined) return dflt;
  if (!/^\s*-?\d+\s*$/.test(s)) throw new UsageError(`${opt} must be a whole number of CPUs (1..${MAX_CPUS}), got '${s}'`);
  const n = Number(s);
  if (n < 1) throw new UsageError(`${opt} must be at least 1, got ${n}`);
  if (n > MAX_CPUS) throw new UsageError(`${opt} ${n}: the arena holds at most ${MAX_CPUS} CPUs (MAX_CPUS in src/mem/layout.ts)`);
  return n;
}

const MAX_SECONDS = 7 * 24 * 3600;

/** --seconds: a positive number (fractions allowed). */
export function parseSeconds(v: unknown, dflt: number, opt = '--seconds'): number {
  const s = str(v);
  if (s === undefined) return dflt;
  const n = Number(s.trim());
  if (s.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${opt} must be a number of seconds, got '${s}'`);
  if (n <= 0) throw new UsageError(`${opt} must be a positive number of seconds, got ${s}`);
  if (n > MAX_SECONDS) throw new UsageError(`${opt} ${s} is more than a week; pick at most ${MAX_SECONDS}`);
  return n;
}

/** A non-negative rate (interrupts per second per CPU). */
export function parseRate(v: unknown, dflt: number, opt: string): number {
  const s = str(v);
  if (s === undefined) return dflt;
  const n = Number(s.trim());
  if (s.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${opt} must be a number per second, got '${s}'`);
  if (n < 0) throw new UsageError(`${opt} must be 0 or more per second, got ${s}`);
  if (n > 1e6) throw new UsageError(`${opt} ${s} is above 1000000 per second per CPU`);
  return n;
}

/** A positive whole number (e.g. --rounds). */
export function parsePositiveInt(v: unknown, dflt: number, opt: string, max = 1000): number {
  const s = str(v);
  if (s === undefined) return dflt;
  if (!/^\s*-?\d+\s*$/.test(s)) throw new UsageError(`${opt} must be a whole number, got '${s}'`);
  const n = Number(s);
  if (n < 1 || n > max) throw new UsageError(`${opt} must be between 1 and ${max}, got ${n}`);
  return n;
}

/** --seed: a u32 in decimal or 0x-hex; absent → a random one (always printed). */
export function parseSeed(v: unknown, random: () => number): number {
  const s = str(v);
  if (s === undefined) return random() >>> 0;
  const t = s.trim();
  const n = /^0x[0-9a-f]+$/i.test(t) ? Number.parseInt(t.slice(2), 16) : /^\d+$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(n) || n > 0xffff_ffff) throw new UsageError(`--seed must be a whole number from 0 to 4294967295 (or 0x hex), got '${s}'`);
  return n;
}

// ---- lists ----

function splitList(s: string): string[] {
  return s.split(',').map((x) => x.trim()).filter((x) => x !== '');
}

function parseNameList<T extends string>(v: unknown, known: readonly T[], dflt: readonly T[], opt: string, what: string): T[] {
  const s = str(v);
  if (s === undefined) return [...dflt];
  const items = splitList(s);
  if (items.length === 0) throw new UsageError(`${opt} needs at least one ${what} (known: ${known.join(', ')})`);
  const out: T[] = [];
  for (const it of items) {
    if (it === 'all') { for (const k of known) if (!out.includes(k)) out.push(k); continue; }
    if (!(known as readonly string[]).includes(it)) throw new UsageError(`unknown ${what} '${it}' in ${opt} (known: ${known.join(', ')}, or all)`);
    if (!out.includes(it as T)) out.push(it as T);
  }
  return out;
}

export function parseMaps(v: unknown, dflt: readonly MapType[] = MAP_TYPES): MapType[] {
  return parseNameList(v, MAP_TYPES, dflt, '--maps', 'map type');
}

export function parseAlloc(v: unknown, dflt: readonly AllocMode[] = ALLOC_MODES): AllocMode[] {
  return parseNameList(v, ALLOC_MODES, dflt, '--alloc', 'alloc mode');
}

export function parseFaults(v: unknown): FaultName[] {
  const s = str(v);
  if (s === undefined) return [];
  return parseNameList(s, FAULT_NAMES, [], '--fault', 'fault');
}

export const DEFAULT_MIX: Mix = Object.freeze({ update: 40, delete: 20, lookup: 40 });

/** --mix update=40,delete=20,lookup=40: weights (any scale), ops not named get 0. */
export function parseMix(v: unknown): Mix {
  const s = str(v);
  if (s === undefined) return DEFAULT_MIX;
  const items = splitList(s);
  if (items.length === 0) throw new UsageError(`--mix needs op=weight pairs, e.g. update=40,delete=20,lookup=40`);
  const mix: Record<MixOp, number> = { update: 0, delete: 0, lookup: 0 };
  const seen = new Set<string>();
  for (const it of items) {
    const m = /^([a-z_]+)\s*=\s*(.*)$/i.exec(it);
    if (m === null) throw new UsageError(`--mix: '${it}' is not op=weight (e.g. update=40)`);
    const op = m[1]!.toLowerCase();
    const w = m[2]!.trim();
    if (!(MIX_OPS as readonly string[]).includes(op)) throw new UsageError(`--mix: unknown operation '${op}' (known: ${MIX_OPS.join(', ')})`);
    if (seen.has(op)) throw new UsageError(`--mix: '${op}' is given twice`);
    seen.add(op);
    const n = Number(w);
    if (w === '' || !Number.isFinite(n) || n < 0) throw new UsageError(`--mix: weight of '${op}' must be a number >= 0, got '${w}'`);
    mix[op as MixOp] = n;
  }
  if (mix.update + mix.delete + mix.lookup <= 0) throw new UsageError(`--mix: the weights add up to 0; give at least one operation a positive weight`);
  return Object.freeze(mix);
}

/** Positional bench names; none → every default bench; "all" allowed; 'timers' only by name. */
export function parseBenchNames(pos: readonly string[]): BenchName[] {
  if (pos.length === 0) return [...BENCH_NAMES];
  const out: BenchName[] = [];
  for (const p of pos.flatMap(splitList)) {
    if (p === 'all') { for (const b of BENCH_NAMES) if (!out.includes(b)) out.push(b); continue; }
    if (!(ALL_BENCH_NAMES as readonly string[]).includes(p)) throw new UsageError(`unknown benchmark '${p}' (known: ${ALL_BENCH_NAMES.join(', ')}, all)`);
    if (!out.includes(p as BenchName)) out.push(p as BenchName);
  }
  return out;
}

/** --out DIR: a non-empty path. */
export function parseOutDir(v: unknown, dflt: string): string {
  const s = str(v);
  if (s === undefined) return dflt;
  if (s.trim() === '') throw new UsageError(`--out needs a directory path`);
  return s;
}

export function flag(v: unknown): boolean {
  return v === true || (Array.isArray(v) && v.includes(true));
}
