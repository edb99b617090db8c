/*
 * progress.ts — what a long run shows while it runs.
 *
 * On a TTY: a live panel redrawn in place (log-update) holding a table (cli-table3) with ops/s,
 * errors by errno, EBUSY/ENOMEM counts, splats, grace periods, memory and interrupts (requested /
 * delivered / coalesced per kind); redrawn at most every `redrawMs`. Its clock is the measured
 * phase (what --seconds bounds); wall time, boot and checks included, is shown beside it. Lines logged meanwhile (log()) scroll above the panel.
 * Not a TTY (CI logs, pipes): one plain line every `intervalMs` (default 2 s) and nothing else,
 * so logs stay short and greppable.
 *
 * The display never decides anything; it only renders LiveStats snapshots from the engine.
 */
import Table from 'cli-table3';
import type { LiveStats } from './engine_api.js';
import { formatBytes, formatCount, formatErrors, formatIrqFlow, formatRate } from './format.js';
import { IRQ_KINDS_SHOWN, IRQ_LABEL } from './irq_stats.js';

export interface OutStream {
  write(s: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export interface ProgressOptions {
  readonly stream: OutStream;
  /** Force live (true) or plain (false) mode; default: stream.isTTY. */
  readonly tty?: boolean;
  /** Plain mode: at most one line per interval. @defaultValue 2000 */
  readonly intervalMs?: number;
  /** Live mode: at most one redraw per interval. @defaultValue 100 */
  readonly redrawMs?: number;
  /** Shown in the panel's first line, e.g. "bpfsim stress (seed 1)". */
  readonly title: string;
  readonly now?: () => number;
}

export interface Progress {
  readonly live: boolean;
  /** A new snapshot of a running workload. */
  update(s: LiveStats): void;
  /** A one-line status (bench rounds, scenario names); rate-limited like update(). */
  status(text: string): void;
  /** A line that stays (scrolls above the live panel). */
  log(line: string): void;
  /** End: the live panel keeps its last frame; plain mode prints nothing more. */
  stop(): void;
}

const SOFT = ['EBUSY', 'ENOMEM'];

/** The plain one-line form of a snapshot. */
export function plainLine(s: LiveStats): string {
  const t = `[${(s.elapsedMs / 1000).toFixed(1).padStart(5)}s/${(s.totalMs / 1000).toFixed(1)}s]`;
  const other = formatErrors(s.errors, SOFT);
  return `${t} ${s.phase}  ${formatRate(s.opsPerSec)}  ops ${formatCount(s.ops)}  EBUSY ${formatCount(s.errors.EBUSY ?? 0)}`
    + `  ENOMEM ${formatCount(s.errors.ENOMEM ?? 0)}  errors ${other}  splats ${s.splats}  GPs ${formatCount(s.gracePeriods)}`
    + `  mem ${formatBytes(s.memoryBytes)}`;
}

function bar(frac: number, width = 20): string {
  const f = Math.max(0, Math.min(1, frac));
  const n = Math.round(f * width);
  return '█'.repeat(n) + '░'.repeat(width - n);
}

/** The live panel for a snapshot: a title line and a table. */
export function panel(title: string, s: LiveStats): string {
  const t = new Table({ style: { head: [], border: [], compact: true }, colWidths: [16, 52], wordWrap: true }); // compact: fits a 24-line terminal
  const i = s.interrupts;
  t.push(
    ['phase', s.phase],
    ['measured', `${bar(s.totalMs > 0 ? s.elapsedMs / s.totalMs : 0)} ${(s.elapsedMs / 1000).toFixed(1)} / ${(s.totalMs / 1000).toFixed(1)} s`],
    ['wall', `${(s.wallMs / 1000).toFixed(1)} s (boot, setup, checks included)`],
    ['ops/s', formatRate(s.opsPerSec)],
    ['ops', formatCount(s.ops)],
    ['EBUSY / ENOMEM', `${formatCount(s.errors.EBUSY ?? 0)} / ${formatCount(s.errors.ENOMEM ?? 0)}`],
    ['other errors', formatErrors(s.errors, SOFT)],
    ['splats', s.splats === 0 ? '0' : `${s.splats}  << kernel BUG/WARN reported`],
    ['grace periods', formatCount(s.gracePeriods)],
    ['memory', formatBytes(s.memoryBytes)],
    ['interrupts', 'requested / delivered / coalesced'],
    ...IRQ_KINDS_SHOWN.map((k) => [`  ${IRQ_LABEL[k]}`, formatIrqFlow(i[k])]),
    ['  irq_work', `${formatCount(i.irqWork)} run`],
  );
  return `${title}\n${t.toString()}`;
}

let logUpdate: typeof import('log-update') | null = null;

/**
 * Load the live panel's terminal code. log-update and its dependencies cost ~0.25 s of imports at
 * start-up, so they load only when a live panel will be drawn (progressFor awaits this on a TTY).
 */
export async function loadLiveDisplay(): Promise<void> {
  logUpdate ??= await import('log-update');
}

/** Whether this stream gets the live panel (a TTY, unless forced). */
export function wantsLive(o: Pick<ProgressOptions, 'tty' | 'stream'>): boolean {
  return o.tty ?? o.stream.isTTY === true;
}

/** Live mode needs loadLiveDisplay() first; without it the display falls back to plain lines. */
export function createProgress(o: ProgressOptions): Progress {
  const live = wantsLive(o) && logUpdate !== null;
  const now = o.now ?? (() => performance.now());
  const intervalMs = o.intervalMs ?? 2000;
  const redrawMs = o.redrawMs ?? 100;
  if (!live) {
    let last = now();
    const due = (): boolean => { const t = now(); if (t - last < intervalMs) return false; last = t; return true; };
    return {
      live,
      update(s) { if (due()) o.stream.write(`${plainLine(s)}\n`); },
      status(text) { if (due()) o.stream.write(`${text}\n`); },
      log(line) { o.stream.write(`${line}\n`); },
      stop() { /* plain mode: the command prints its own summary */ },
    };
  }
  const lu = logUpdate!.createLogUpdate(o.stream as NodeJS.WriteStream, { showCursor: false, defaultWidth: 100 });
  let frame = '';
  let lastDraw = -Infinity;
  let pending: string | null = null;
  const draw = (text: string, force: boolean): void => {
    const t = now();
    if (!force && t - lastDraw < redrawMs) { pending = text; return; }
    lastDraw = t; pending = null; frame = text;
    lu(text);
  };
  return {
    live,
    update(s) { draw(panel(o.title, s), false); },
    status(text) { draw(`${o.title}\n${text}`, false); },
    log(line) { lu.persist(line); if (frame !== '') lu(frame); },
    stop() {
      if (pending !== null) draw(pending, true);
      lu.done();
    },
  };
}
