/*
 * seed000_rt.ts — scenarios from seed 000 (BPF on PREEMPT_RT): interrupts landing inside a held
 * bucket lock, the map_locked / rqspinlock answers, bpf_prog_active keeping tracing programs out
 * of a syscall's critical section, sleeping locks and allocation in atomic context on RT, and the
 * verifier's rule that tracing programs use only preallocated maps when dynamic maps allocate
 * under a sleeping bucket lock.
 */
import { errnoName, EBUSY, EDEADLK } from '../errno.js';
import { BpfError } from '../errno.js';
import { BPF_F_NO_PREALLOC } from '../maps/map_ops.js';
import { programUrl, verdictOf, type Scenario } from './scenario.js';

const k4 = (n: number): Uint8Array => new Uint8Array(new Uint32Array([n]).buffer);
const errStr = (r: number): string => (r < 0 ? `-${errnoName(r)}` : String(r));

function nmiInBucketLock(rq: boolean): Scenario {
  return {
    name: rq ? 'nmi-in-bucket-lock-rqspinlock' : 'nmi-in-bucket-lock',
    seed: '000',
    title: `An NMI program updating a map whose bucket lock its own CPU holds gets ${rq ? '-EDEADLK (rqspinlock)' : '-EBUSY (map_locked)'}`,
    summary: 'CPU 0 runs map_update_elem; an NMI is injected at htab.update.locked (bucket lock held); the perf_event program in the NMI updates the same map.',
    runtime: { cpus: 2, bucketLock: rq ? 'rqspinlock' : 'map_locked', memoryBytes: 32 << 20 },
    async play(rt, log) {
      const m = rt.createMap({ type: 'hash', name: 'flows', keySize: 4, valueSize: 8, maxEntries: 64 });
      const task = await rt.loadProgram(programUrl('update_task'), { maps: { m } });
      const nmi = await rt.loadProgram(programUrl('update_nmi'), { maps: { m } });
      const inj = rt.inject({ cpu: 0, at: 'htab.update.locked', kind: 'nmi', times: 1, program: nmi });
      log({ cpu: 0, context: 'task', what: 'map_update_elem(flows, key 1): takes the bucket lock of key 1 (irqs off), reaches htab.update.locked' });
      const r = await task.testRun({ cpu: 0, context: 'task', args: { key: 1 } });
      const nr = nmi.lastRetval(0);
      log({ cpu: 0, context: 'nmi', what: `NMI taken inside the bucket lock; perf_event program: map_update_elem(flows, key 1) -> ${errStr(nr)}` });
      log({ cpu: 0, context: 'task', what: `update resumes, unlocks -> ${errStr(r.retval)}` });
      const after = await task.testRun({ cpu: 0, args: { key: 2 } });
      const deadlocks = rt.splats().filter((s) => s.kind === 'deadlock').length;
      log({ cpu: 0, context: 'task', what: `runtime goes on: map_update_elem(flows, key 2) -> ${errStr(after.retval)}` });
      const want = rq ? -EDEADLK : -EBUSY;
      return verdictOf(
        rq ? 'NMI update -> -EDEADLK with one deadlock splat; no hang; later updates succeed'
          : 'NMI update -> -EBUSY, no splat, no deadlock; later updates succeed',
        [
          ['injection fired once', inj.fired() === 1],
          [`NMI update returned ${errStr(want)}`, nr === want],
          ['interrupted update returned 0', r.retval === 0],
          ['later update returned 0', after.retval === 0],
          [rq ? 'exactly one deadlock splat' : 'no splat', rq ? deadlocks === 1 && rt.splats().length === 1 : rt.splats().length === 0],
          ['map invariants hold', m.check().length === 0],
          ['map holds keys 1 and 2', m.lookup(k4(1)) !== undefined && m.lookup(k4(2)) !== undefined],
        ],
        `NMI got ${errStr(nr)}, task got ${errStr(r.retval)}, ${rt.splats().length} splat(s)`,
      );
    },
  };
}

const kprobeInBucketLock: Scenario = {
  name: 'kprobe-in-bucket-lock',
  seed: '000',
  title: 'A kprobe program firing inside a held bucket lock and updating the same bucket gets -EBUSY',
  summary: 'A kprobe program is attached at htab.update.locked; a task-context update on CPU 1 passes it with the bucket lock held; the kprobe program updates the same key.',
  runtime: { cpus: 2, memoryBytes: 32 << 20 },
  async play(rt, log) {
    const m = rt.createMap({ type: 'hash', name: 'flows', keySize: 4, valueSize: 8, maxEntries: 64 });
    const task = await rt.loadProgram(programUrl('update_task'), { maps: { m } });
    const kp = await rt.loadProgram(programUrl('update_kprobe'), { maps: { m } });
    const link = await kp.attach({ kind: 'kprobe', site: 'htab.update.locked' });
    log({ cpu: 1, context: 'task', what: 'map_update_elem(flows, key 7) takes the bucket lock and passes htab.update.locked' });
    const r = await task.testRun({ cpu: 1, args: { key: 7 } });
    const kr = kp.lastRetval(1);
    log({ cpu: 1, context: 'task', what: `kprobe program (bpf_prog_active 0 -> 1) runs: map_update_elem(flows, key 7) -> ${errStr(kr)}` });
    log({ cpu: 1, context: 'task', what: `interrupted update completes -> ${errStr(r.retval)}` });
    const hits = link.hits();
    await link.detach();
    return verdictOf('kprobe update -> -EBUSY; no deadlock, no splat', [
      ['kprobe fired', hits >= 1],
      ['kprobe update returned -EBUSY', kr === -EBUSY],
      ['task update returned 0', r.retval === 0],
      ['no splat', rt.splats().length === 0],
      ['map invariants hold', m.check().length === 0],
    ], `kprobe got ${errStr(kr)} (${hits} hit(s)), task got ${errStr(r.retval)}`);
  },
};

const syscallBlocksTracing: Scenario = {
  name: 'syscall-blocks-tracing',
  seed: '000',
  title: 'A perf_event NMI inside a syscall-side update is skipped by bpf_prog_active, and the miss is counted',
  summary: 'A task workload on CPU 0 calls bpf(MAP_UPDATE_ELEM) in a loop (bpf_disable_instrumentation around each op); NMIs land inside its bucket lock; the perf_event program must not run there.',
  runtime: { cpus: 2, memoryBytes: 32 << 20 },
  async play(rt, log) {
    const m = rt.createMap({ type: 'hash', name: 'flows', keySize: 4, valueSize: 8, maxEntries: 64 });
    const task = await rt.loadProgram(programUrl('update_task'), { maps: { m } });
    const perf = await rt.loadProgram(programUrl('update_nmi'), { maps: { m } });
    const inj = rt.inject({ cpu: 0, at: 'htab.update.locked', kind: 'nmi', times: 5, program: perf });
    const w = await rt.runWorkload({ cpus: [0], program: task, iterations: 200, args: { key: 3, sys: true } });
    const st = perf.stats();
    log({ cpu: 0, context: 'task', what: `200 syscall-path updates (bpf_prog_active raised around each): ${w.perCpu[0]!.ok} ok` });
    log({ cpu: 0, context: 'nmi', what: `${inj.fired()} NMIs inside the bucket lock: perf_event program skipped each time (bpf_prog_active != 1), ${st.recursionMisses} miss(es), ${st.runCount} run(s)` });
    return verdictOf('every NMI skipped with a recursion miss; no run, no splat', [
      ['5 NMIs fired', inj.fired() === 5],
      ['5 recursion misses', st.recursionMisses === 5],
      ['program never ran', st.runCount === 0],
      ['all 200 updates succeeded', w.perCpu[0]!.ok === 200],
      ['no splat', rt.splats().length === 0],
    ], `misses ${st.recursionMisses}, runs ${st.runCount}`);
  },
};

const aaRawLockNmi: Scenario = {
  name: 'aa-raw-lock-nmi',
  seed: '000',
  title: 'An NMI taking a raw spinlock its own CPU holds: -EDEADLK and a splat instead of a hang',
  summary: 'CPU 0 holds a raw spinlock at scenario.lock.held; an NMI program takes the same lock.',
  runtime: { cpus: 2, memoryBytes: 16 << 20 },
  async play(rt, log) {
    const hold = await rt.loadProgram(programUrl('lock_hold'));
    const nmi = await rt.loadProgram(programUrl('lock_take_nmi'));
    rt.inject({ cpu: 0, at: 'scenario.lock.held', kind: 'nmi', program: nmi });
    log({ cpu: 0, context: 'task', what: 'raw_spin_lock(L) taken; window scenario.lock.held' });
    const r = await hold.testRun({ cpu: 0 });
    const nr = nmi.lastRetval(0);
    const s = rt.splats();
    log({ cpu: 0, context: 'nmi', what: `raw_spin_lock(L) -> ${errStr(nr)} (the owner is this CPU: AA)` });
    log({ cpu: 0, context: 'task', what: `raw_spin_unlock(L); program returns ${errStr(r.retval)}` });
    const again = await hold.testRun({ cpu: 0, repeat: 100 });
    return verdictOf('-EDEADLK, exactly one deadlock splat, the lock still works', [
      ['NMI got -EDEADLK', nr === -EDEADLK],
      ['one deadlock splat on cpu 0 in NMI', s.length === 1 && s[0]!.kind === 'deadlock' && s[0]!.context === 'nmi'],
      ['lock usable afterwards', again.retval === 0 && again.runs === 100],
    ], `${errStr(nr)}, splats: ${s.map((x) => x.kind).join(', ') || 'none'}`);
  },
};

function sleepingLockInNmi(rtMode: boolean): Scenario {
  return {
    name: rtMode ? 'rt-sleeping-lock-in-nmi' : 'nonrt-spinlock-in-nmi',
    seed: '000',
    title: rtMode ? 'PREEMPT_RT: a spinlock_t taken in NMI is "sleeping function called from invalid context"'
      : '!RT: the same spinlock_t in NMI is a raw spinlock and raises nothing',
    summary: 'A program takes and releases a spinlock_t in NMI context.',
    runtime: { cpus: 1, preemptRt: rtMode, memoryBytes: 16 << 20 },
    async play(rt, log) {
      const p = await rt.loadProgram(programUrl('sleeping_lock'));
      const r = await p.testRun({ cpu: 0, context: 'nmi' });
      const s = rt.splats();
      log({ cpu: 0, context: 'nmi', what: `spin_lock(spinlock_t) -> ${errStr(r.retval)}; splats: ${s.map((x) => x.kind).join(', ') || 'none'}` });
      return rtMode
        ? verdictOf('one sleeping_in_atomic splat', [['one sleeping_in_atomic splat in NMI', s.length === 1 && s[0]!.kind === 'sleeping_in_atomic' && s[0]!.context === 'nmi']], `${s.length} splat(s)`)
        : verdictOf('no splat', [['no splat', s.length === 0], ['lock taken', r.retval === 0]], `${s.length} splat(s)`);
    },
  };
}

const rtKmallocUnderRaw: Scenario = {
  name: 'rt-kmalloc-under-raw-lock',
  seed: '000',
  title: 'PREEMPT_RT: kmalloc under a raw spinlock is an allocation from truly atomic context',
  summary: 'A task program takes a raw spinlock and calls kmalloc inside it (what dynamic maps did under a raw bucket lock).',
  runtime: { cpus: 1, preemptRt: true, memoryBytes: 16 << 20 },
  async play(rt, log) {
    const p = await rt.loadProgram(programUrl('kmalloc_under_raw'));
    const r = await p.testRun({ cpu: 0 });
    const s = rt.splats();
    log({ cpu: 0, context: 'task', what: `raw_spin_lock; kmalloc(64) -> ${r.retval === 0 ? 'ok' : errStr(r.retval)}; splats: ${s.map((x) => x.kind).join(', ') || 'none'}` });
    return verdictOf('one sleeping_in_atomic splat naming kmalloc', [
      ['one sleeping_in_atomic splat', s.length === 1 && s[0]!.kind === 'sleeping_in_atomic'],
      ['it names kmalloc under a raw spinlock', (s[0]?.message ?? '').includes('kmalloc') && (s[0]?.message ?? '').includes('raw spinlock')],
    ], `${s.length} splat(s): ${s[0]?.message ?? ''}`);
  },
};

const rtLegacyTracingRefused: Scenario = {
  name: 'rt-legacy-tracing-refused',
  seed: '000',
  title: 'PREEMPT_RT with kmalloc-backed dynamic maps: a tracing program using a BPF_F_NO_PREALLOC map is refused at load',
  summary: 'On RT the legacy dynamic hash map allocates under its sleeping bucket lock, so the verifier of that era required preallocated maps for kprobe/tracepoint/perf_event programs.',
  runtime: { cpus: 1, preemptRt: true, dynAlloc: 'kmalloc', memoryBytes: 32 << 20 },
  async play(rt, log) {
    const dyn = rt.createMap({ type: 'hash', name: 'dyn', keySize: 4, valueSize: 8, maxEntries: 64, flags: BPF_F_NO_PREALLOC });
    const pre = rt.createMap({ type: 'hash', name: 'pre', keySize: 4, valueSize: 8, maxEntries: 64 });
    let refused = '';
    try {
      await rt.loadProgram(programUrl('update_kprobe'), { maps: { m: dyn } });
    } catch (e) {
      refused = e instanceof BpfError ? e.code : String(e);
    }
    log({ cpu: 1, context: 'task', what: `load kprobe program with map 'dyn' (NO_PREALLOC) -> ${refused || 'loaded'}` });
    const ok = await rt.loadProgram(programUrl('update_kprobe'), { maps: { m: pre } });
    log({ cpu: 1, context: 'task', what: `load kprobe program with map 'pre' (preallocated) -> loaded (${ok.name})` });
    const task = await rt.loadProgram(programUrl('update_task'), { maps: { m: dyn } });
    const r = await task.testRun({ cpu: 0 });
    log({ cpu: 0, context: 'task', what: `a non-tracing program may use 'dyn': update -> ${errStr(r.retval)}` });
    return verdictOf('EINVAL for the tracing program with the dynamic map; loads otherwise', [
      ['refused with EINVAL', refused === 'EINVAL'],
      ['non-tracing program updates the dynamic map', r.retval === 0],
      ['no splat', rt.splats().length === 0],
    ], `tracing+dynamic: ${refused || 'loaded'}`);
  },
};


const nmiInLruLock: Scenario = {
  name: 'nmi-in-lru-lock',
  seed: '000',
  title: 'An NMI updating an LRU map whose LRU lock its own CPU holds: the modelled kernel deadlocks (a splat here); the update fails',
  summary: 'CPU 0 updates an LRU hash and holds its LRU lock at bpf_lru.pop.locked; an NMI program updates the same map. LRU locks had no map_locked guard until the 2025 rqspinlock conversion, so the kernel of that era spun forever; here the AA is detected: one deadlock splat, the NMI gets no free node (-ENOMEM), the task update completes.',
  runtime: { cpus: 2, memoryBytes: 32 << 20 },
  async play(rt, log) {
    const m = rt.createMap({ type: 'lru_hash', name: 'lru', keySize: 4, valueSize: 8, maxEntries: 64 });
    const task = await rt.loadProgram(programUrl('update_task'), { maps: { m } });
    const nmi = await rt.loadProgram(programUrl('update_nmi'), { maps: { m } });
    const inj = rt.inject({ cpu: 0, at: 'bpf_lru.pop.locked', kind: 'nmi', times: 1, program: nmi });
    log({ cpu: 0, context: 'task', what: 'map_update_elem(lru, key 5): pops a free node under the LRU lock, reaches bpf_lru.pop.locked' });
    const r = await task.testRun({ cpu: 0, args: { key: 5 } });
    const nr = nmi.lastRetval(0);
    const s = rt.splats();
    log({ cpu: 0, context: 'nmi', what: `perf_event program: map_update_elem(lru, key 1) -> its node pop re-takes the LRU lock: ${s.map((x) => x.kind).join(', ') || 'no splat'}; update -> ${errStr(nr)}` });
    log({ cpu: 0, context: 'task', what: `interrupted update completes -> ${errStr(r.retval)}` });
    return verdictOf('one deadlock splat (the modelled kernel hangs here); the NMI update fails; the task update and the map are intact', [
      ['injection fired', inj.fired() === 1],
      ['exactly one deadlock splat, in NMI on cpu 0', s.length === 1 && s[0]!.kind === 'deadlock' && s[0]!.context === 'nmi' && s[0]!.cpu === 0],
      ['NMI update failed', nr < 0],
      ['task update returned 0', r.retval === 0],
      ['map invariants hold', m.check().length === 0],
    ], `NMI got ${errStr(nr)}; splats: ${s.map((x) => x.kind).join(', ') || 'none'}`);
  },
};

export const SEED000_SCENARIOS: readonly Scenario[] = [
  nmiInBucketLock(false), nmiInBucketLock(true), kprobeInBucketLock, nmiInLruLock, syscallBlocksTracing, aaRawLockNmi,
  sleepingLockInNmi(true), sleepingLockInNmi(false), rtKmallocUnderRaw, rtLegacyTracingRefused,
];
