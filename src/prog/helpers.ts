/*
 * helpers.ts — the helper surface a program sees inside run(ctx, maps): the BPF helpers that are
 * not map operations (map operations are methods of the maps themselves, see docs/MAP_HELPERS.md).
 *
 * One ProgramContext exists per program per CPU thread and is reused for every run: no helper
 * allocates on the hot path. Pointers are byte offsets into kernel memory; helpers return the
 * kernel's values (a pointer or 0; 0 or -errno).
 *
 * Contexts: every helper may be called from any context the program runs in; the lock helpers
 * follow the lock rules (AA -> -EDEADLK with a splat, RT sleeping lock from atomic -> splat).
 *
 * Timer helpers (src/timers/bpf_timer.ts has the semantics and the era modelled): `timer` is the
 * pointer to the bpf_timer field inside a map value (value + its offset), `map` the map that
 * holds it. timerSetCallback names one of the program's `callbacks`; an unknown name is what the
 * verifier would refuse: it throws (the program aborts).
 */
import { I32, U32, U8, I64, ktimeGetNs } from '../mem/arena.js';
import { thisCpu, pcpu, pcpuI } from '../mem/this_cpu.js';
import {
  CONTEXT_NAMES, currentContext, ctxMask, bpfDisableInstrumentation, bpfEnableInstrumentation,
  localIrqSave, localIrqRestore, type ContextName,
} from '../cpu/context.js';
import { PC_SCRATCH, PC_SCRATCH_SIZE, PC_SCRATCH_FRAMES, PC_SHARED, PC_PROG_DEPTH } from '../mem/layout.js';
import { raiseIrq, KIND_SOFTIRQ } from '../cpu/irq_source.js';
import { window as cpuWindow } from '../cpu/window.js';
import { defineSite } from '../cpu/sites.js';
import {
  rawSpinLock, rawSpinUnlock, spinLockIrqsave,
  spinUnlockIrqrestore, rawSpinTrylock,
} from '../locks/raw_spinlock.js';
import { LC_BPF_SPIN_LOCK, LC_TEST_SLEEPING } from '../locks/lock_classes.js';
import {
  kSpinLock, kSpinUnlock, kResLock, kResUnlock, kObjNew, kObjDrop, kRefcountAcquire, kListPush, kListPop,
  kListPeek, kRbtreeAdd, kRbtreeRemove, kRbtreePeek, kRbtreeChild, kHelper,
} from './graph_kfuncs.js';
import { bpfThrow, ruleViolation } from './run_state.js';
import { kmalloc, kzalloc, kfree } from '../mm/slab.js';
import { OWNER_KERNEL } from '../mm/owners.js';
import { rcuReadLock, rcuReadUnlock } from '../rcu/rcu.js';
import { MAP_TIMER_OFF, type BpfMapImpl } from '../maps/map_ops.js';
import {
  bpfTimerInit, bpfTimerSetCallback, bpfTimerStart, bpfTimerCancel, bpfTimerCancelAsync,
} from '../timers/bpf_timer.js';

/** Syscall-path map operations, for task-context workloads (simulated processes calling bpf()). */
export interface SyscallHelpers {
  /** flags: 0 or BPF_F_LOCK (copy under the value's bpf_spin_lock) */
  lookup(map: BpfMapImpl, key: number, out: number, flags?: number): number;
  update(map: BpfMapImpl, key: number, value: number, flags: number): number;
  delete(map: BpfMapImpl, key: number): number;
  lookupAndDelete(map: BpfMapImpl, key: number, out: number): number;
}

const sysHelpers: SyscallHelpers = {
  lookup: (m, k, o, f = 0) => { kHelper('bpf_sys_bpf'); bpfDisableInstrumentation(); rcuReadLock(); const r = m.sysLookup(k, o, f); rcuReadUnlock(); bpfEnableInstrumentation(); return r; },
  update: (m, k, v, f) => { kHelper('bpf_sys_bpf'); bpfDisableInstrumentation(); rcuReadLock(); const r = m.sysUpdate(k, v, f); rcuReadUnlock(); bpfEnableInstrumentation(); return r; },
  delete: (m, k) => { kHelper('bpf_sys_bpf'); bpfDisableInstrumentation(); rcuReadLock(); const r = m.sysDelete(k); rcuReadUnlock(); bpfEnableInstrumentation(); return r; },
  lookupAndDelete: (m, k, o) => { kHelper('bpf_sys_bpf'); bpfDisableInstrumentation(); rcuReadLock(); const r = m.sysLookupAndDelete(k, o, 0); rcuReadUnlock(); bpfEnableInstrumentation(); return r; },
};

let zeroBuf = 0;
let zeroBufSize = 0;

// The offsets scratchU32 / scratchU64 accept, as masks: every 4- (8-) aligned offset that leaves
// room for the value in one PC_SCRATCH_SIZE frame (a power of two) is `off & mask === off`.
const SCRATCH_U32_OFFS = (PC_SCRATCH_SIZE - 1) & ~3;
const SCRATCH_U64_OFFS = (PC_SCRATCH_SIZE - 1) & ~7;

/**
 * A scratch access outside this run's frame: abort the program (a broken rule, as the verifier
 * would refuse an out-of-bounds stack access) rather than write into the next nesting level's frame.
 */
function scratchOutOfBounds(fn: string, off: number, len: number, align: number): never {
  const need = align > 1 ? `${align}-aligned, off + ${len} <= ${PC_SCRATCH_SIZE}` : `off >= 0, off + ${len} <= ${PC_SCRATCH_SIZE}`;
  return ruleViolation(`scratch bounds: ctx.${fn}(${String(off)}) is outside this run's ${PC_SCRATCH_SIZE}-byte scratch frame (${need})`);
}
const siteCache = new Map<string, number>();

export class ProgramContext {
  /** This CPU's id. */
  readonly cpu: number;
  /** Byte pointer of this CPU's 1 KiB area shared by all its contexts (cross-context handoff). */
  readonly cpuScratch: number;
  /** Bytes of ctx.scratch. */
  readonly scratchSize = PC_SCRATCH_SIZE;
  /** Iteration index inside rt.runWorkload (0 otherwise). */
  iter = 0;
  /** The `args` value given to runWorkload / testRun (structured-cloned once per call). */
  args: unknown = undefined;
  /** Syscall-path map ops (bpf_disable_instrumentation + RCU around the op). */
  readonly sys: SyscallHelpers = sysHelpers;
  #rand: number;
  /** the program's state pointer (its reference count lives there) */
  readonly #progState: number;
  /** (program id + 1) << 8: the callback word without the index */
  readonly #cbBase: number;
  readonly #cbIndex: ReadonlyMap<string, number>;

  constructor(seed: number, progId = -1, progState = 0, callbackNames: readonly string[] = []) {
    this.cpu = thisCpu;
    this.cpuScratch = pcpu + PC_SHARED;
    this.#rand = (seed * 2654435761 + thisCpu * 40503 + 1) >>> 0 || 1;
    this.#progState = progState;
    this.#cbBase = (progId + 1) << 8;
    this.#cbIndex = new Map(callbackNames.map((n, i) => [n, i]));
  }

  /**
   * This run's 512-byte scratch frame (its "stack"): every nested program run on a CPU (an NMI or
   * kprobe program inside another program's map update) gets its own frame, so it never
   * overwrites the key of the operation it interrupted. PC_SCRATCH_FRAMES (8) frames per CPU:
   * a run nested deeper than that shares the last one. The scratch accessors check their bounds;
   * raw pointers (ctx.setU32(ctx.scratch + off)) are not checked.
   */
  get scratch(): number {
    const d = Math.min(Math.max(I32[pcpuI + (PC_PROG_DEPTH >> 2)]!, 1), PC_SCRATCH_FRAMES);
    return pcpu + PC_SCRATCH + (d - 1) * PC_SCRATCH_SIZE;
  }

  /** The current execution context. */
  get context(): ContextName { return CONTEXT_NAMES[currentContext()]!; }
  /** Bit mask of the active context levels (bit 0 task, 1 softirq, 2 hardirq, 3 NMI). */
  get nesting(): number { return ctxMask(); }
  timeNs(): number { return ktimeGetNs(); }
  /** local_irq_save(): returns the flag to hand back to localIrqRestore. */
  localIrqSave(): number { return localIrqSave(); }
  localIrqRestore(flags: number): void { localIrqRestore(flags); }
  /** raise_softirq(): runs on irq exit, or at the next window in task context with irqs on. */
  raiseSoftirq(): void { raiseIrq(pcpuI, KIND_SOFTIRQ); }

  /** xorshift32, seeded from the runtime seed and the CPU id. */
  rand(): number {
    let x = this.#rand;
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    this.#rand = x >>> 0;
    return this.#rand;
  }
  randBelow(n: number): number { return this.rand() % n; }

  // ---- kernel memory access ----
  u8(p: number): number { return U8[p]!; }
  u32(p: number): number { return U32[p >> 2]!; }
  setU32(p: number, v: number): void { U32[p >> 2] = v; }
  u64(p: number): bigint { return I64[p >> 3]!; }
  setU64(p: number, v: bigint): void { I64[p >> 3] = v; }
  atomicAddU32(p: number, v: number): number { return Atomics.add(I32, p >> 2, v); }
  atomicAddU64(p: number, v: bigint): bigint { return Atomics.add(I64, p >> 3, v); }
  atomicCasU32(p: number, expect: number, v: number): number { return Atomics.compareExchange(I32, p >> 2, expect, v); }
  /**
   * Write a u32 into this run's scratch frame at `off` and return its pointer (a key for map
   * helpers). `off` must be 4-aligned and off + 4 <= 512: anything else aborts the program
   * (scratch bounds). One compare: `off & SCRATCH_U32_OFFS` equals `off` exactly for those.
   */
  scratchU32(off: number, v: number): number {
    if ((off & SCRATCH_U32_OFFS) !== off) scratchOutOfBounds('scratchU32', off, 4, 4);
    const p = this.scratch + off; U32[p >> 2] = v; return p;
  }
  /** Write a u64 at `off` (8-aligned, off + 8 <= 512; else the program aborts) and return its pointer. */
  scratchU64(off: number, v: bigint): number {
    if ((off & SCRATCH_U64_OFFS) !== off) scratchOutOfBounds('scratchU64', off, 8, 8);
    const p = this.scratch + off; I64[p >> 3] = v; return p;
  }
  /** Copy `bytes` to `off` (an integer, off + bytes.length <= 512; else the program aborts) and return its pointer. */
  scratchBytes(off: number, bytes: Uint8Array): number {
    if (!((off >>> 0) === off && off + bytes.length <= PC_SCRATCH_SIZE)) scratchOutOfBounds('scratchBytes', off, bytes.length, 1);
    const p = this.scratch + off; U8.set(bytes, p); return p;
  }
  /** A pointer to valueSize zero bytes (read-only: never write through it). */
  zeroValue(map: { readonly valueSize: number }): number {
    const need = Math.max(map.valueSize, 8);
    if (need > zeroBufSize) {
      if (zeroBuf !== 0) kfree(zeroBuf);
      zeroBuf = kzalloc(need, OWNER_KERNEL);
      zeroBufSize = zeroBuf === 0 ? 0 : need;
    }
    return zeroBuf;
  }

  // ---- locks ----
  /** raw_spin_lock (no irq change): 0 | -EDEADLK | -ETIMEDOUT. */
  rawSpinLock(p: number, cls = LC_BPF_SPIN_LOCK): number { return rawSpinLock(p, cls); }
  rawSpinTrylock(p: number, cls = LC_BPF_SPIN_LOCK): boolean { return rawSpinTrylock(p, cls); }
  rawSpinUnlock(p: number): void { rawSpinUnlock(p); }
  /**
   * bpf_spin_lock(): irqs off, then the lock. One at a time; not in tracing programs; no helper
   * calls until bpf_spin_unlock except the graph and lock kfuncs; released before the program
   * returns (each rule broken aborts the program: src/prog/run_state.ts).
   */
  bpfSpinLock(p: number): number { return kSpinLock(p); }
  bpfSpinUnlock(p: number): void { kSpinUnlock(p); }
  /** bpf_res_spin_lock(): 0 | -EDEADLK (AA, AB-BA) | -ETIMEDOUT; several may be held, released LIFO. */
  resSpinLock(p: number): number { return kResLock(p, false); }
  resSpinUnlock(p: number): void { kResUnlock(p, false); }
  /** bpf_res_spin_lock_irqsave(): irqs off, then the lock; 0 | -EDEADLK | -ETIMEDOUT. */
  resSpinLockIrqsave(p: number): number { return kResLock(p, true); }
  resSpinUnlockIrqrestore(p: number): void { kResUnlock(p, true); }

  // ---- allocated objects, lists, rbtrees (src/prog/graph_kfuncs.ts) ----
  /** bpf_obj_new(type): an owning pointer to a zeroed object of the program's type `name`, or 0. */
  objNew(name: string): number { return kObjNew(name); }
  /** bpf_obj_drop(p): p must be an owning reference; not inside a critical section. */
  objDrop(p: number): void { kObjDrop(p); }
  /** bpf_refcount_acquire(p): a new owning reference to a refcounted object, or 0 (its count reached 0). */
  refcountAcquire(p: number): number { return kRefcountAcquire(p); }
  /** bpf_list_push_front(head, &obj->node): 0 | -EINVAL (already in a collection: the reference is dropped). */
  listPushFront(head: number, node: number): number { return kListPush(head, node, false); }
  listPushBack(head: number, node: number): number { return kListPush(head, node, true); }
  /** bpf_list_pop_front(head): the node (owning) or 0. */
  listPopFront(head: number): number { return kListPop(head, false); }
  listPopBack(head: number): number { return kListPop(head, true); }
  /** bpf_list_front(head): the first node (non-owning) or 0. */
  listFront(head: number): number { return kListPeek(head, false); }
  listBack(head: number): number { return kListPeek(head, true); }
  /** bpf_rbtree_add(root, &obj->node, less): 0 | -EINVAL; `less` names one of the program's callbacks. */
  rbtreeAdd(root: number, node: number, less: string): number { return kRbtreeAdd(root, node, less); }
  /** bpf_rbtree_remove(root, node): node must be non-owning; the node (owning) or 0 (not in this tree). */
  rbtreeRemove(root: number, node: number): number { return kRbtreeRemove(root, node); }
  /** bpf_rbtree_first(root): the leftmost node (non-owning) or 0. */
  rbtreeFirst(root: number): number { return kRbtreePeek(root, 'first'); }
  rbtreeRoot(root: number): number { return kRbtreePeek(root, 'root'); }
  rbtreeLeft(root: number, node: number): number { return kRbtreeChild(root, node, false); }
  rbtreeRight(root: number, node: number): number { return kRbtreeChild(root, node, true); }
  /** bpf_throw(cookie): ends the program; what it holds is unwound; its return value is the cookie. */
  throw(cookie: number): never { return bpfThrow(cookie); }

  /** spinlock_t: raw on !RT, sleeping on RT (might_sleep checks apply). */
  spinLock(p: number, cls = LC_TEST_SLEEPING): number { return spinLockIrqsave(p, cls); }
  spinUnlock(p: number): void { spinUnlockIrqrestore(p); }

  // ---- timers (bpf_timer_*) ----
  /** bpf_timer_init(timer, map, flags = CLOCK_MONOTONIC): 0 | -EBUSY | -EPERM | -EINVAL | -ENOMEM | -EOPNOTSUPP. */
  timerInit(timer: number, map: BpfMapImpl, flags = 1): number {
    kHelper('bpf_timer_init');
    // the verifier's map_uid check (timer_mim_reject): the timer must be in a value of `map`
    const toff = I32[(map.ptr + MAP_TIMER_OFF) >> 2]! - 1;
    if (toff >= 0 && map.ownsValue(timer - toff) === false) {
      ruleViolation(`bpf_timer_init: timer pointer map_uid doesn't match map pointer (the timer at 0x${timer.toString(16)} is not in a value of map '${map.name}')`);
    }
    return bpfTimerInit(timer, map.ptr, flags);
  }
  /** bpf_timer_set_callback(timer, callbacks[name]): 0 | -EINVAL | -EPERM | -EOPNOTSUPP. */
  timerSetCallback(timer: number, name: string): number {
    kHelper('bpf_timer_set_callback');
    const i = this.#cbIndex.get(name);
    if (i === undefined) ruleViolation(`bpf_timer_set_callback: the program has no callback '${name}' (defineProgram({ callbacks }))`);
    return bpfTimerSetCallback(timer, this.#progState, this.#cbBase | i);
  }
  /** bpf_timer_start(timer, nsecs, flags: BPF_F_TIMER_ABS | BPF_F_TIMER_CPU_PIN): 0 | -EINVAL | -EOPNOTSUPP. */
  timerStart(timer: number, nsecs: number | bigint, flags = 0): number { kHelper('bpf_timer_start'); return bpfTimerStart(timer, Number(nsecs), flags); }
  /** bpf_timer_cancel(timer): 1 | 0 | -EINVAL | -EDEADLK | -EOPNOTSUPP (waits for a running callback). */
  timerCancel(timer: number): number { kHelper('bpf_timer_cancel'); return bpfTimerCancel(timer); }
  /** bpf_timer_cancel_async(timer): 1 | 0 | -1 (callback running) | -EINVAL | -EOPNOTSUPP; never waits. */
  timerCancelAsync(timer: number): number { kHelper('bpf_timer_cancel_async'); return bpfTimerCancelAsync(timer); }

  // ---- memory ----
  kmalloc(size: number): number { return kmalloc(size, OWNER_KERNEL); }
  kfree(p: number): void { kfree(p); }

  /** An interrupt window named by the program (scenarios inject at it; kprobes attach to it). */
  window(name: string): void {
    let id = siteCache.get(name);
    if (id === undefined) { id = defineSite(name); siteCache.set(name, id); }
    cpuWindow(id);
  }
}
