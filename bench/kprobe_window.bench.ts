/*
 * kprobe_window.bench.ts — what an attached kprobe costs the windows of other sites. A 1-CPU
 * map workload (test/fixtures/map_mixed.mjs: 50 % lookups, 40 % updates, 2,048 keys of a hash map)
 * runs in interleaved rounds with no kprobe and with a kprobe attached at an unrelated site
 * (test.kprobe.self); the figure is the op rate with the kprobe over the op rate without, in the
 * same round, median and spread (max − min) over the rounds. Every window the workload passes is at
 * another site, so the ideal is 1.0×.
 *
 *   npm run build && node dist/bench/kprobe_window.bench.js [--rounds 8] [--seconds 0.4] [--json]
 */
import { Runtime } from '../src/runtime/runtime.js';

const args = process.argv.slice(2);
const opt = (name: string, def: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const json = args.includes('--json');
const ROUNDS = opt('rounds', 8);
const SECONDS = opt('seconds', 0.4);
const fixtures = new URL('../../test/fixtures/', import.meta.url);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

const rt = await Runtime.start({ cpus: 1, memoryBytes: 64 << 20, seed: 7 });
try {
  const m = rt.createMap({ type: 'hash', name: 'm', keySize: 4, valueSize: 16, maxEntries: 4096 });
  const work = await rt.loadProgram(new URL('map_mixed.mjs', fixtures), { maps: { m }, args: { keys: 2048, lookupPct: 50, updatePct: 40, percpu: false } });
  const probe = await rt.loadProgram(new URL('pass_site.mjs', fixtures));
  const none: number[] = [], kprobe: number[] = [], ratio: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const rates: Record<string, number> = {};
    // alternate the order so that neither mode always runs first in a round
    for (const mode of r % 2 === 0 ? ['none', 'kprobe'] : ['kprobe', 'none']) {
      const link = mode === 'kprobe' ? await probe.attach({ kind: 'kprobe', site: 'test.kprobe.self' }) : null;
      const w = await rt.runWorkload({ cpus: [0], program: work, seconds: SECONDS });
      rates[mode] = w.ops / SECONDS;
      if (link !== null) await link.detach();
    }
    none.push(rates['none']!);
    kprobe.push(rates['kprobe']!);
    ratio.push(rates['kprobe']! / rates['none']!);
  }
  const out = {
    bench: 'kprobe_window', rounds: ROUNDS, seconds: SECONDS,
    noKprobeOpsPerSec: median(none), kprobeElsewhereOpsPerSec: median(kprobe),
    ratio: median(ratio), ratioMin: Math.min(...ratio), ratioMax: Math.max(...ratio),
  };
  if (json) process.stdout.write(`${JSON.stringify(out)}\n`);
  else {
    process.stdout.write(`map ops/s, 1 CPU, ${ROUNDS} rounds × ${SECONDS} s: no kprobe ${(out.noKprobeOpsPerSec / 1e6).toFixed(2)} M/s, `
      + `kprobe at another site ${(out.kprobeElsewhereOpsPerSec / 1e6).toFixed(2)} M/s\n`);
    process.stdout.write(`ratio (same round) median ${out.ratio.toFixed(2)}×, rounds ${out.ratioMin.toFixed(2)}–${out.ratioMax.toFixed(2)}×${out.ratioMin <= 1 && out.ratioMax >= 1 ? ' (the spread includes 1.0×: no difference shown)' : ''}\n`);
  }
} finally {
  await rt.stop();
}
