/*
 * json_schema.ts — the package's JSON Schemas (schema/*.schema.json, draft 2020-12) compiled with
 * ajv, and their errors as one line each, "path: expected X, got Y" (`.bench.figures[1].ratio:
 * expected a number >= 0, got null`, `.seed: missing`, `.extra: unknown key`).
 *
 * The schema files are read at run time from the package root: `schema/` is ../schema from this
 * module in the sources (src/json_schema.ts, tests) and ../../schema from the build
 * (dist/src/json_schema.js, the packed tarball ships schema/). The build compiles them ahead
 * (scripts/gen-validators.mjs -> dist/src/schema_validators.cjs, ajv's standalone code: a run-time
 * compile cost a CLI run 0.5-1 s); without that file (the sources, under vitest) each validator is
 * compiled once, on first use: ajv is not even loaded before.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Ajv2020 as Ajv2020Class, ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';

/** Where schema/ is: the first of ../schema, ../../schema above this module that holds `file`. */
export function schemaPath(file: string): string {
  for (const up of ['../schema/', '../../schema/']) {
    const p = fileURLToPath(new URL(up + file, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error(`bpfsim: schema file ${file} not found next to the package (expected schema/${file})`);
}

let ajv: Ajv2020Class | undefined;

function getAjv(): Ajv2020Class {
  if (ajv !== undefined) return ajv;
  // ajv is CommonJS: load it through require so that the ESM/CJS default-export interop plays no part
  const { Ajv2020 } = createRequire(import.meta.url)('ajv/dist/2020.js') as typeof import('ajv/dist/2020.js');
  // validateSchema off: compiling the draft 2020-12 meta-schema first cost most of the ~1 s a
  // first validation took (every CLI run pays it); test/package checks the schemas themselves
  // the same options and format as scripts/gen-validators.mjs (keep them in step)
  ajv = new Ajv2020({ allErrors: true, verbose: true, strict: true, strictTypes: false, allowUnionTypes: true });
  // JSON Schema leaves `format` to the validator: an ISO 8601 date-time (toISOString's form, or an offset)
  ajv.addFormat('date-time', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/);
  return ajv;
}

const compiled = new Map<string, ValidateFunction>();

/** The build's precompiled validators (dist/src/schema_validators.cjs), null when absent. */
let prebuilt: Record<string, ValidateFunction> | null | undefined;
function prebuiltValidator(file: string, ref: string): ValidateFunction | undefined {
  if (prebuilt === undefined) {
    const p = fileURLToPath(new URL('./schema_validators.cjs', import.meta.url));
    prebuilt = existsSync(p) ? createRequire(import.meta.url)(p) as Record<string, ValidateFunction> : null;
  }
  // export names as scripts/gen-validators.mjs writes them: every character not a letter or digit becomes '_'
  return prebuilt?.[`${file}${ref}`.replace(/[^A-Za-z0-9]/g, '_')] ?? undefined;
}

/**
 * A validator for schema `file` (or its sub-schema `ref`, e.g. '#/$defs/header'): returns the
 * errors, none when `v` matches.
 */
export function schemaValidator(file: string, ref = ''): (v: unknown) => string[] {
  return (v: unknown): string[] => {
    const key = `${file}${ref}`;
    let f = compiled.get(key) ?? prebuiltValidator(file, ref);
    if (f === undefined) {
      const a = getAjv();
      const schema = JSON.parse(readFileSync(schemaPath(file), 'utf8')) as { $id: string };
      if (a.getSchema(schema.$id) === undefined) a.addSchema(schema);
      f = a.getSchema(schema.$id + ref);
      if (f === undefined) throw new Error(`bpfsim: no schema ${schema.$id}${ref}`);
      compiled.set(key, f);
    }
    return f(v) ? [] : formatErrors(f.errors ?? [], v);
  };
}

type Json = Record<string, unknown>;

function shown(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'number') return String(v);
  return typeof v;
}

const HEX_PATTERN = '^([0-9a-fA-F]{2})+$';

/** What a schema node accepts, in words ("a number >= 0", "one of \"a\", \"b\"", "an object or null"). */
function describe(s: unknown): string {
  if (typeof s !== 'object' || s === null) return 'a valid value';
  const n = s as Json;
  if ('const' in n) return `one of ${JSON.stringify(n['const'])}`;
  if (Array.isArray(n['enum'])) return `one of ${n['enum'].map((x) => JSON.stringify(x)).join(', ')}`;
  if (Array.isArray(n['anyOf'])) return n['anyOf'].map(describe).join(' or ');
  const types = Array.isArray(n['type']) ? n['type'] as string[] : typeof n['type'] === 'string' ? [n['type']] : [];
  if (types.length === 0) return 'a valid value';
  const one = (t: string): string => {
    const min = typeof n['minimum'] === 'number' ? n['minimum'] : undefined;
    const max = typeof n['maximum'] === 'number' ? n['maximum'] : undefined;
    const range = `${min !== undefined ? ` >= ${min}` : ''}${max !== undefined ? `${min !== undefined ? ' and' : ''} <= ${max}` : ''}`;
    switch (t) {
      case 'number': return range !== '' ? `a number${range}` : 'a finite number';
      case 'integer': return `an integer${range}`;
      case 'string':
        if (n['format'] === 'date-time') return 'an ISO 8601 date';
        if (n['pattern'] === HEX_PATTERN) return 'a non-empty hex string of whole bytes';
        return typeof n['pattern'] === 'string' ? `a string matching ${n['pattern']}` : 'a string';
      case 'boolean': return 'a boolean';
      case 'object': return 'an object';
      case 'array':
        return Array.isArray(n['prefixItems'])
          ? `a [${(n['prefixItems'] as Json[]).map((x) => (x['type'] === 'integer' ? 'integer' : 'number')).join(', ')}] pair`
          : 'an array';
      default: return t;
    }
  };
  return types.filter((t) => t !== 'null').map(one).join(' or ') + (types.includes('null') ? ' or null' : '');
}

/** A JSON pointer into `data` as the validator's path: `.stress.cells[0].map`. */
function pathOf(pointer: string, data: unknown): string {
  let out = '';
  let cur: unknown = data;
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += Array.isArray(cur) ? `[${seg}]` : `.${seg}`;
    cur = typeof cur === 'object' && cur !== null ? (cur as Json)[seg] : undefined;
  }
  return out;
}

/** ajv's errors as "path: expected X, got Y" lines, in order, without repeats. */
function formatErrors(errors: readonly ErrorObject[], data: unknown): string[] {
  // an anyOf that failed: report it once, not each branch's complaint
  const anyOfs = errors.filter((e) => e.keyword === 'anyOf').map((e) => e.schemaPath + '/');
  const out: string[] = [];
  for (const e of errors) {
    if (e.keyword === 'if' || e.keyword === 'propertyNames') continue; // the errors under it say what is wrong
    if (anyOfs.some((p) => e.schemaPath.startsWith(p))) continue;
    const p = pathOf(e.instancePath, data);
    const params = e.params as Json;
    let line: string;
    if (e.propertyName !== undefined) line = `${p}: key ${JSON.stringify(e.propertyName)}: expected ${describe(e.parentSchema)}`;
    else if (e.keyword === 'required') line = `${p}.${String(params['missingProperty'])}: missing`;
    else if (e.keyword === 'additionalProperties') line = `${p}.${String(params['additionalProperty'])}: unknown key`;
    else if (e.keyword === 'maxItems' && !Array.isArray((e.parentSchema as Json | undefined)?.['prefixItems'])) {
      line = `${p}: at most ${String(params['limit'])} items, got ${Array.isArray(e.data) ? e.data.length : '?'}`;
    } else line = `${p || '(root)'}: expected ${describe(e.parentSchema)}, got ${shown(e.data)}`;
    if (!out.includes(line)) out.push(line);
  }
  return out;
}
