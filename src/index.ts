/*
 * index.ts — the public entry of `bpfsim` (main thread). Programs import `bpfsim/program` instead.
 */
export { Runtime, Program, CpuOfflineError } from './runtime/runtime.js';
export type {
  RuntimeOptions, ResolvedRuntimeOptions, RuntimeStats, InjectPrecise, InjectRandom, Injection,
  WorkloadOptions, WorkloadResult, ProgramStats, Link, CpuSelector, IrqFigures, IrqStats, CpuOfflineCode,
  ScheduleOptions, ScheduleReport, CpuState,
} from './runtime/runtime.js';
export type { ScheduleConfig, ScheduleStats } from './cpu/sched.js';
export { ArgTypeError, ArgRangeError } from './runtime/validate.js';
export type { ArgErrorCode } from './runtime/validate.js';
export type { TestRunResult, WorkloadCpuResult, ProgramInfo, ContextArg } from './ipc/protocol.js';
export type { IrqKind } from './runtime/inject.js';
export { BpfMap, BpfBatchError } from './maps/bpf_map.js';
export type { MapInMapHandle } from './maps/bpf_map.js';
export {
  BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK, BPF_F_NO_PREALLOC, BPF_F_NO_COMMON_LRU,
  BPF_F_NUMA_NODE, BPF_F_RDONLY, BPF_F_WRONLY, BPF_F_ZERO_SEED, BPF_F_RDONLY_PROG, BPF_F_WRONLY_PROG,
  MAP_TYPES,
} from './maps/map_ops.js';
export type { MapSpec, MapType, BpfMapInfo, BpfMapStats, InnerMapTemplate } from './maps/map_ops.js';
export type { MapField, MapFieldType } from './maps/btf_record.js';
export { BPF_F_TIMER_ABS, BPF_F_TIMER_CPU_PIN, CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME } from './timers/bpf_timer.js';
export type { BpfTimerStats } from './timers/bpf_timer.js';
export type { GraphObjStats } from './graph/bpf_obj.js';
export type { ResLockStats } from './locks/res_spinlock.js';
export type { AbortPolicy } from './prog/prog_run.js';
export * from './errno.js';
export { SPLAT_KINDS, formatSplat } from './debug/splat.js';
export type { Splat, SplatKind } from './debug/splat.js';
export { validateResults, RESULTS_SCHEMA } from './cli/results.js';
export type { Results, Validation as ResultsValidation } from './cli/results.js';
export { listScenarios, runScenario, findScenario } from './scenarios/index.js';
export type { Scenario, ScenarioOutcome, ScenarioEvent, ScenarioVerdict } from './scenarios/index.js';
