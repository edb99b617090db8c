/*
 * prog_types.ts — the program types (include/uapi/linux/bpf.h BPF_PROG_TYPE_*) and the sets of
 * them the verifier and the recursion guard treat apart. Constants only: program.ts, the helpers
 * and the kfuncs read them without importing each other.
 */
export const PROG_TYPES = [
  'kprobe', 'tracepoint', 'perf_event', 'raw_tracepoint', 'fentry', 'fexit', 'lsm', 'xdp', 'tc',
  'socket_filter', 'syscall', 'struct_ops',
] as const;
export type ProgType = (typeof PROG_TYPES)[number];

/** Types guarded by the shared bpf_prog_active counter (trace_call_bpf, perf overflow). */
export const TRACING_PROG_TYPES: ReadonlySet<ProgType> = new Set<ProgType>(['kprobe', 'tracepoint', 'perf_event']);

/**
 * Types the verifier refuses bpf_spin_lock to ("tracing progs cannot use bpf_spin_lock yet",
 * is_tracing_prog_type): they may run in NMI, inside the very lock. Refused at load when they use
 * a map holding a lock or call ctx.bpfSpinLock, and at run time when they call it anyway. fentry /
 * fexit (BPF_PROG_TYPE_TRACING) are not among them: the kernel's own timer.c selftest runs fentry
 * programs on a map whose values hold a bpf_spin_lock.
 */
export const SPIN_LOCK_REFUSED_TYPES: ReadonlySet<ProgType> = new Set<ProgType>(['kprobe', 'tracepoint', 'perf_event', 'raw_tracepoint']);
