// The report: one self-contained HTML file. Static checks (no network references, escaping), then
// the real thing: it opens in headless Chromium (Debian's package, driven by playwright-core) with
// every chart drawn and no console error; a screenshot goes to test-output/ (gitignored).
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type BrowserContext } from 'playwright-core';
import { renderReport, escapeScript, jsonForScript } from '../../src/cli/report/html.js';
import { buildCharts, isChartSpec, histogram } from '../../src/cli/report/charts.js';
import { makeResults } from '../../src/cli/output.js';
import type { Results } from '../../src/cli/results.js';
import { fixtureResults, ROOT, TEST_OUTPUT } from './helpers.js';
import { formatCount } from '../../src/cli/format.js';

const CHROMIUM = process.env.BPFSIM_CHROMIUM ?? '/usr/bin/chromium';
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

let fixture: Results;
beforeAll(async () => { fixture = await fixtureResults(); });

describe('report HTML (static)', () => {
  it('is self-contained: Chart.js inline, a CSP forbidding fetches, no external references', () => {
    const html = renderReport(fixture);
    expect(html).toMatch(/<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'/);
    expect(html).toContain('Chart.js v4');
    expect(html).not.toMatch(/<script[^>]+src=/i);
    expect(html).not.toMatch(/<link[^>]+href=/i);
    expect(html).not.toMatch(/url\(\s*['"]?https?:/i);
    expect(html).not.toMatch(/(src|href)=["']?(https?:)?\/\//i);
  });

  it('has a canvas for every chart with data, and notes where a run has none', () => {
    const html = renderReport(fixture);
    const specs = buildCharts(fixture).filter(isChartSpec);
    expect(specs.map((c) => c.id)).toEqual(['chart-throughput', 'chart-cache-0', 'chart-gp', 'chart-memory', 'chart-bench-ratio']);
    for (const c of specs) expect(html).toContain(`<canvas id="${c.id}"`);
    const onlyScenarios = makeResults({ ...baseOf(fixture), failures: [], scenarios: fixture.scenarios! });
    const html2 = renderReport(onlyScenarios);
    expect(html2).not.toContain('<canvas');
    expect(html2).toContain('No scaling figures in this run');
    expect(html2).toContain('No grace periods were measured');
  });

  it('escapes text from the results and script end tags in inlined code', () => {
    const html = renderReport(fixture);
    expect(html).toContain('test &lt;/script&gt;&lt;script&gt;window.__pwned=1&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;');
    expect(escapeScript('a</script>b</SCRIPT>c<!--d')).toBe('a<\\/script>b<\\/SCRIPT>c<\\!--d');
    expect(jsonForScript({ s: '</script>' })).toBe('{"s":"\\u003c/script>"}');
  });

  it('has an interrupts table: requested / delivered / coalesced per kind, "not counted" where unknown', () => {
    const html = renderReport(fixture);
    const t = /<h3 id="stress-interrupts">Interrupts<\/h3>\s*<table>([\s\S]*?)<\/table>/.exec(html)?.[1] ?? '';
    expect(t).toContain('<th>kind</th><th>requested</th><th>delivered</th><th>coalesced</th>');
    const i = fixture.stress!.totals.interrupts;
    expect(t).toContain(`<tr><td>NMI</td><td class="num">${formatCount(i.nmi.requested!)}</td><td class="num">${formatCount(i.nmi.delivered)}</td><td class="num">${formatCount(i.nmi.coalesced!)}</td></tr>`);
    const s = fixture.stress!;
    const unknown: Results = { ...fixture, stress: { ...s, totals: { ...s.totals, interrupts: { ...s.totals.interrupts, hardirq: { requested: null, delivered: 5, coalesced: null } } } } };
    expect(renderReport(unknown)).toContain('<tr><td>hardirq</td><td class="num"><span class="nodata">not counted</span></td><td class="num">5</td><td class="num"><span class="nodata">not counted</span></td></tr>');
    expect(html).not.toContain('INTERRUPTED');
  });

  it('bins latencies up to p99 with an overflow bin', () => {
    const h = histogram([0.1, 0.2, 0.3, 5, 100], 5, 100);
    expect(h.counts.reduce((a, b) => a + b, 0)).toBe(5);
    expect(h.labels[h.labels.length - 1]).toBe('> 5.00');
  });
});

function baseOf(r: Results): Omit<Parameters<typeof makeResults>[0], 'failures'> {
  return { command: 'scenario', argv: [], startedAt: new Date(r.startedAt), durationMs: 1, seed: 1, cpus: 0, preemptRt: false };
}

// ---- the browser ----

let context: BrowserContext | null = null;
let userDataDir = '';
let unavailable: string | null = null;

function ensureChromium(): string | null {
  if (existsSync(CHROMIUM)) return null;
  try {
    execFileSync('bash', [path.join(ROOT, '.ci/install-chromium.sh')], { stdio: 'pipe', timeout: 600_000 });
  } catch (e: unknown) {
    const err = e as { stderr?: Buffer; message?: string };
    return `${CHROMIUM} is missing and .ci/install-chromium.sh could not install it: ${err.stderr?.toString().trim() || err.message}`;
  }
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} is still missing after .ci/install-chromium.sh`;
}

function loudSkip(reason: string): void {
  const bar = '!'.repeat(100);
  console.warn(`\n${bar}\n!! SKIPPED: the report was NOT checked in a browser.\n!! ${reason}\n!! Install Debian's chromium (bash .ci/install-chromium.sh) or set BPFSIM_CHROMIUM.\n${bar}\n`);
}

describe('report in headless Chromium', () => {
  beforeAll(async () => {
    unavailable = ensureChromium();
    if (unavailable !== null) return;
    userDataDir = mkdtempSync(path.join(os.tmpdir(), 'bpfsim-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1400, height: 1000 },
    });
  }, 600_000);

  afterAll(async () => {
    await context?.close();
    if (userDataDir !== '') rmSync(userDataDir, { recursive: true, force: true });
  });

  async function open(r: Results, name: string): Promise<{ page: import('playwright-core').Page; consoleErrors: string[]; pageErrors: string[]; requests: string[] }> {
    const dir = path.join(TEST_OUTPUT, name);
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'report.html');
    writeFileSync(file, renderReport(r));
    writeFileSync(path.join(dir, 'results.json'), JSON.stringify(r, null, 2));
    const page = await context!.newPage();
    const consoleErrors: string[] = [];
    const pageErrors: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') consoleErrors.push(`${m.type()}: ${m.text()}`); });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('request', (q) => requests.push(q.url()));
    const url = pathToFileURL(file).href;
    await page.goto(url);
    await page.waitForFunction(() => document.body.dataset.chartsReady !== undefined, null, { timeout: 30_000 });
    expect(requests).toEqual([url]); // nothing fetched but the file itself
    return { page, consoleErrors, pageErrors, requests };
  }

  it('draws every chart with data, without console errors, and saves a screenshot', async (ctx) => {
    if (unavailable !== null) { loudSkip(unavailable); ctx.skip(); return; }
    const { page, consoleErrors, pageErrors } = await open(fixture, 'report-fixture');
    const ids = buildCharts(fixture).filter(isChartSpec).map((c) => c.id);
    expect(await page.evaluate(() => document.body.dataset.chartsReady)).toBe(String(ids.length));
    const charts = await page.evaluate((list) => list.map((id) => {
      const canvas = document.getElementById(id) as HTMLCanvasElement | null;
      const C = (window as unknown as { Chart: { getChart(c: HTMLCanvasElement): { config: { type: string }; data: { datasets: { data: unknown[] }[] } } | undefined } }).Chart;
      const chart = canvas === null ? undefined : C.getChart(canvas);
      let painted = 0;
      if (canvas !== null && canvas.width > 0 && canvas.height > 0) {
        const px = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) painted++;
      }
      return {
        id, type: chart?.config.type ?? null, width: canvas?.width ?? 0, height: canvas?.height ?? 0,
        datasets: chart?.data.datasets.length ?? 0, points: chart?.data.datasets.reduce((a, d) => a + d.data.length, 0) ?? 0, painted,
      };
    }), ids);
    for (const c of charts) {
      expect(c.type, c.id).not.toBeNull();
      expect(c.width, c.id).toBeGreaterThan(300);
      expect(c.height, c.id).toBeGreaterThan(150);
      expect(c.datasets, c.id).toBeGreaterThan(0);
      expect(c.points, c.id).toBeGreaterThan(1);
      expect(c.painted, `${c.id}: pixels drawn`).toBeGreaterThan(2000);
    }
    expect(charts.find((c) => c.id === 'chart-throughput')!.datasets).toBeGreaterThanOrEqual(6); // map × alloc lines
    expect(charts.find((c) => c.id === 'chart-cache-0')!.datasets).toBe(4 + 2); // 4 CPUs + low/high watermarks
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await page.locator('h1').textContent()).toContain('FAIL');
    await page.screenshot({ path: path.join(TEST_OUTPUT, 'report-fixture', 'report.png'), fullPage: true });
    expect(existsSync(path.join(TEST_OUTPUT, 'report-fixture', 'report.png'))).toBe(true);
    expect(consoleErrors).toEqual([]);
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it('a run without chart data still opens cleanly (notes instead of charts)', async (ctx) => {
    if (unavailable !== null) { loudSkip(unavailable); ctx.skip(); return; }
    const r = makeResults({ ...baseOf(fixture), failures: [], scenarios: fixture.scenarios!.filter((s) => s.verdict.ok) });
    const { page, consoleErrors, pageErrors } = await open(r, 'report-empty');
    expect(await page.evaluate(() => document.body.dataset.chartsReady)).toBe('0');
    expect(await page.locator('.nodata').count()).toBe(buildCharts(r).length);
    await page.screenshot({ path: path.join(TEST_OUTPUT, 'report-empty', 'report.png'), fullPage: true });
    expect(consoleErrors).toEqual([]);
    expect(pageErrors).toEqual([]);
    await page.close();
  });
});
