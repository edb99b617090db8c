/*
 * program.ts — the `bpfsim/program` entry: what a program module imports inside a CPU worker.
 */
export { defineProgram, PROG_TYPES, TRACING_PROG_TYPES } from './prog/program.js';
export type { ProgramDefinition, DefinedProgram, ProgType, ProgramMaps, TimerCallback, LessCallback, ExceptionCallback, ProgramCallback } from './prog/program.js';
export type { ObjTypeDecl, ObjFieldDecl, GraphFieldName } from './graph/btf_types.js';
export { BPF_F_TIMER_ABS, BPF_F_TIMER_CPU_PIN, CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME } from './timers/bpf_timer.js';
export { ProgramContext } from './prog/helpers.js';
export type { SyscallHelpers } from './prog/helpers.js';
export type { ContextName } from './cpu/context.js';
export * from './errno.js';
export { BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK } from './maps/map_ops.js';
export type { BpfMapImpl } from './maps/map_ops.js';
export type { BpfMapInMap } from './maps/map_in_map.js';
export {
  LC_BPF_SPIN_LOCK, LC_TEST_A, LC_TEST_B, LC_TEST_SLEEPING,
} from './locks/lock_classes.js';
