/*
 * index.ts — `bpfsim/check`: the linearizability checker for histories of BPF map operations
 * (docs/CHECK.md). Every export is named here.
 */
export { checkHistory, createCheckPool, checkWorkerPath } from './check.js';
export type {
  CheckOptions, CheckResult, CheckModel, CheckPool, CheckPoolOptions, PartitionInfo, IllegalPartition, UnknownPartition,
  UnknownReason, HistoryWindow, KernelPropertyReport, KernelPropertyKind,
} from './check.js';
export { MAP_TYPE_NAMES } from './history.js';
export type { HistoryOp, MapTypeName } from './history.js';
export { validateHistoryOp, validateHistoryHeader } from './history_schema.js';
export type { SchemaValidation } from './history_schema.js';
export type { MapInfo } from './partition.js';
export { MODEL_NAMES, OP_NAMES } from './models.js';
export type { ModelName, OpName } from './models.js';
export { generateHistory, corruptHistory } from './generate.js';
export type { GenerateOptions, GeneratedHistory, Corruption } from './generate.js';
