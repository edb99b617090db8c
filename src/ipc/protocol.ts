/*
 * protocol.ts — every control message between the main thread and a CPU worker, as the typed
 * interface the worker exposes through comlink. Control only: boot, load/unload a program, test
 * runs, workloads, shutdown. Data never travels here; it lives in kernel memory.
 */

export interface CpuBootRequest {
  readonly sab: SharedArrayBuffer;
  readonly cpu: number;
  readonly seed: number;
}

export interface LoadProgramRequest {
  readonly id: number;
  readonly url: string;
  /** map name -> struct bpf_map pointer */
  readonly maps: Readonly<Record<string, number>>;
  readonly statePtr: number;
  readonly seed: number;
  /** ctx.args for runs that bring none (interrupts, kprobes, and testRun/runWorkload without args) */
  readonly args?: unknown;
  /** after an abort: refuse later runs ('disable', the default) or not ('continue') */
  readonly abortPolicy?: 'disable' | 'continue';
}

export interface ProgramInfo {
  readonly name: string;
  readonly type: string;
  readonly sleepable: boolean;
  readonly maps: readonly string[];
  /** windows (site names) the program declares */
  readonly windows: readonly string[];
  /** names of its async (timer) callbacks */
  readonly callbacks: readonly string[];
  /** names of the object types it declares (defineProgram({ types })) */
  readonly types: readonly string[];
}

export type ContextArg = 'task' | 'softirq' | 'hardirq' | 'nmi';

export interface TestRunRequest {
  readonly id: number;
  readonly context: ContextArg;
  readonly repeat: number;
  readonly args?: unknown;
}

export interface TestRunResult {
  readonly retval: number;
  readonly runs: number;
  readonly durationNs: number;
  readonly recursionMisses: number;
}

export interface WorkloadRequest {
  readonly id: number;
  readonly context: ContextArg;
  readonly iterations: number;
  /** 0: no time bound */
  readonly durationMs: number;
  readonly args?: unknown;
}

export interface WorkloadCpuResult {
  readonly cpu: number;
  /** iterations attempted (runs + skipped) */
  readonly iterations: number;
  /** runs that returned >= 0 */
  readonly ok: number;
  /** runs that returned a negative errno, by name */
  readonly errors: Readonly<Record<string, number>>;
  readonly skipped: number;
  readonly durationNs: number;
  /** true when the loop ended early (stop requested, time bound, or the program was disabled) */
  readonly stopped: boolean;
  /** true when the loop ended because the program is disabled (it aborted during this workload) */
  readonly disabled: boolean;
}

export interface CpuControl {
  boot(req: CpuBootRequest): Promise<{ readonly bootMs: number }>;
  loadProgram(req: LoadProgramRequest): Promise<ProgramInfo>;
  unloadProgram(id: number): void;
  testRun(req: TestRunRequest): TestRunResult;
  runWorkload(req: WorkloadRequest): WorkloadCpuResult;
  shutdown(): void;
}
