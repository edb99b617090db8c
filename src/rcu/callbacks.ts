/*
 * callbacks.ts — call_rcu(): callbacks as data (kernel/rcu/tree.c __call_rcu_common, with the
 * function pointer replaced by a registered kind, because a pointer to a JS function cannot live
 * in shared memory).
 *
 * Layout: an rcu_head is 8 bytes in kernel memory, 4-byte aligned:
 *   +0  RH_NEXT  llist link
 *   +4  RH_WORD  kind (bits 0..29) | RH_RECORD | RH_TRACE
 * Either embedded in the object it frees (callRcuHead(head, kind): the callback receives the head
 * pointer and finds its container, as container_of does), or a 16-byte record kmalloc'd by
 * callRcu(kind, ptr) (+8 RH_PTR: the callback receives ptr; the record is kfree'd after it ran).
 *
 * A queued head is pushed on this CPU's PC_LL_RCU_CB llist (lock-free, any context, NMI
 * included); the first push onto an empty list rings the coordinator's doorbell. The coordinator
 * (gp.ts) drains every CPU's list at each poll and runs the callback after a grace period of the
 * head's flavour (RH_TRACE: tasks-trace, which here implies a normal grace period too).
 *
 * Kinds: defineRcuKind(name) gives every thread the same id (a hash of the name, as sites do);
 * registerRcuCallback(kind, fn) binds the function on the main thread, where callbacks run (in
 * the housekeeping CPU's task context). Registering on other threads is harmless.
 *
 * Contexts: callRcuHead / callRcuTasksTraceHead from any context. callRcu / callRcuTasksTrace
 * allocate, so they are for contexts where kmalloc is allowed (they return -ENOMEM when it fails,
 * e.g. in NMI with the slab lock busy; on PREEMPT_RT from atomic context kmalloc splats).
 *
 * Invariant: a head is on at most one list; the owner of an embedded head must not reuse it
 * before its callback ran (bpf_mem_alloc keeps one in flight per cache for that reason).
 */
import { I32 } from '../mem/arena.js';
import { pcpu } from '../mem/this_cpu.js';
import { PC_LL_RCU_CB } from '../mem/layout.js';
import { kmalloc, kfree } from '../mm/slab.js';
import { OWNER_KERNEL } from '../mm/owners.js';
import { llistAdd } from '../cpu/llist.js';
import { splat } from '../debug/splat.js';
import { ENOMEM, EINVAL } from '../errno.js';
import { ringDoorbell } from '../cpu/doorbell.js';

export const RCU_HEAD_SIZE = 8;
export const RH_NEXT = 0;
export const RH_WORD = 4;
export const RH_PTR = 8;
export const RCU_RECORD_SIZE = 16;
export const RH_KIND_MASK = 0x3fffffff;
export const RH_RECORD = 1 << 30;
export const RH_TRACE = 1 << 31;

export type RcuCallbackFn = (ptr: number) => void;

const fns = new Map<number, RcuCallbackFn>();
const kindNames = new Map<number, string>();

/** Stable id for a callback kind, the same on every thread. */
export function defineRcuKind(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  const id = (h >>> 2) || 1;
  const prev = kindNames.get(id);
  if (prev !== undefined && prev !== name) throw new Error(`rcu callback kind collision: ${name} vs ${prev}`);
  kindNames.set(id, name);
  return id;
}

/** Bind callback `fn` to `kind` (main thread; module load time is fine). */
export function registerRcuCallback(kind: number, fn: RcuCallbackFn): void {
  if (!Number.isInteger(kind) || kind <= 0 || kind > RH_KIND_MASK) throw new RangeError(`registerRcuCallback: kind must be an integer in [1, ${RH_KIND_MASK}]; got ${kind}`);
  fns.set(kind, fn);
}

export function rcuKindName(kind: number): string {
  return kindNames.get(kind) ?? `kind#${kind}`;
}

function push(head: number): void {
  if (llistAdd(pcpu + PC_LL_RCU_CB, head, RH_NEXT)) ringDoorbell();
}

function queueHead(head: number, word: number): number {
  if (head === 0 || (head & 3) !== 0) {
    splat('warn', `call_rcu with a bad rcu_head 0x${head.toString(16)}`);
    return -EINVAL;
  }
  I32[(head + RH_WORD) >> 2] = word;
  push(head);
  return 0;
}

function queueRecord(ptr: number, word: number): number {
  const rec = kmalloc(RCU_RECORD_SIZE, OWNER_KERNEL);
  if (rec === 0) return -ENOMEM;
  I32[(rec + RH_WORD) >> 2] = word | RH_RECORD;
  I32[(rec + RH_PTR) >> 2] = ptr;
  push(rec);
  return 0;
}

/** call_rcu() with an embedded rcu_head: `fn(head)` runs after a grace period. Any context. */
export function callRcuHead(head: number, kind: number): number {
  return queueHead(head, kind & RH_KIND_MASK);
}

/** call_rcu_tasks_trace() with an embedded rcu_head (the GP also implies a normal one). */
export function callRcuTasksTraceHead(head: number, kind: number): number {
  return queueHead(head, (kind & RH_KIND_MASK) | RH_TRACE);
}

/** call_rcu(kind, ptr): `fn(ptr)` runs after a grace period. Allocates a record: 0 | -ENOMEM. */
export function callRcu(kind: number, ptr: number): number {
  return queueRecord(ptr, kind & RH_KIND_MASK);
}

/** call_rcu_tasks_trace(kind, ptr). */
export function callRcuTasksTrace(kind: number, ptr: number): number {
  return queueRecord(ptr, (kind & RH_KIND_MASK) | RH_TRACE);
}

/** Run one drained callback (coordinator, main thread). Returns false if its kind is unknown. */
export function invokeRcuCallback(head: number): boolean {
  const w = I32[(head + RH_WORD) >> 2]!;
  const kind = w & RH_KIND_MASK;
  const isRecord = (w & RH_RECORD) !== 0;
  const arg = isRecord ? I32[(head + RH_PTR) >> 2]! : head;
  const fn = fns.get(kind);
  let ok = true;
  if (fn === undefined) {
    splat('warn', `rcu callback of unregistered kind ${rcuKindName(kind)} (arg 0x${arg.toString(16)}) dropped`);
    ok = false;
  } else {
    try {
      fn(arg);
    } catch (e: unknown) {
      splat('invariant', `rcu callback ${rcuKindName(kind)}(0x${arg.toString(16)}) threw: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (isRecord) kfree(head);
  return ok;
}

/** True if the head asks for the tasks-trace flavour. */
export function isTraceHead(head: number): boolean {
  return (I32[(head + RH_WORD) >> 2]! & RH_TRACE) !== 0;
}
