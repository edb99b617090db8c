/*
 * history_schema.ts — validators of the history JSON-lines format against its JSON Schema
 * (schema/history-op.schema.json, docs/CHECK.md §1 and §6): one operation as rt.history() returns
 * it and `bpfsim stress --record FILE` writes it, and the header lines of such a file.
 *
 * checkHistory() keeps its own, faster validation (src/check/history.ts), which also checks what
 * the schema cannot: call < ret, and stamps given as bigints.
 */
import { schemaValidator } from '../json_schema.js';

/** A validator's answer: `errors` ("path: expected X, got Y") is empty exactly when `ok`. */
export interface SchemaValidation {
  readonly ok: boolean;
  readonly errors: string[];
}

const opSchema = schemaValidator('history-op.schema.json');
const headerSchema = schemaValidator('history-op.schema.json', '#/$defs/header');

function answer(errors: string[]): SchemaValidation { return { ok: errors.length === 0, errors }; }

/** Check one history operation (a parsed line of a --record file, or an element of rt.history()). */
export function validateHistoryOp(v: unknown): SchemaValidation { return answer(opSchema(v)); }

/** Check a header line of a --record file: { "bpfsim": "history/1", dynAlloc, cpus, syscallCpu, recorded, dropped, maps }. */
export function validateHistoryHeader(v: unknown): SchemaValidation { return answer(headerSchema(v)); }
