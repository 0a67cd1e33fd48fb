// Headless Chromium against a real `strand serve` for the trace views:
// critical-path overlay, span table, trace compare. Same setup as
// browser.test.mjs (Debian's chromium, STRAND_BIN).
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, requireChromium } from './chromium.mjs';
import { startStrand, ingest, poll, getJSON } from './strand.mjs';
import { criticalPathTrace, comparePair } from './fixtures.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.resolve(ROOT, process.env.STRAND_BIN || 'target/debug/strand');
const ARTIFACTS = path.join(ROOT, 'target/ui-artifacts');

let server, chrome, page;
const pageErrors = [];
const consoleErrors = [];

async function ingested(fx) {
  await ingest(server, fx.body);
  await poll(`trace ${fx.traceId} to be readable`, async () => {
    const r = await getJSON(server, `/api/traces/${fx.traceId}`);
    return r.data && r.data[0] && r.data[0].spans.length === fx.spanCount;
  }, 30_000);
}

before(async () => {
  requireChromium();
  server = await startStrand(BIN);
  chrome = await launch({ width: 1280, height: 800 });
  ({ page } = chrome);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  if (chrome) await chrome.close();
  if (server) await server.stop();
});

const exact = (op) => new RegExp(`^${op}$`);
const tableRow = (op) => page.locator('#span-table tbody tr').filter({ has: page.locator('td.op', { hasText: exact(op) }) });
const rowOf = (op) => page.locator('#tl-rows .row').filter({ has: page.locator('.op', { hasText: new RegExp(`^${op}$`) }) });

test('critical path overlay sits on the spans the trace waited for', async () => {
  const fx = criticalPathTrace();
  await ingested(fx);
  await page.goto(`${server.queryUrl}/trace/${fx.traceId}`);
  await page.waitForSelector(`#tl-rows[data-total="${fx.spanCount}"] .row`);
  assert.equal(await page.locator('[data-act="cp"]').getAttribute('aria-pressed'), 'true', 'on by default');
  const onPath = await page.locator('#tl-rows .row.on-cp .op').allInnerTexts();
  assert.deepEqual(onPath.sort(), ['GET /shop', 'GetCart', 'GetRecommendedProducts', 'HGET', 'Recommend']);
  for (const op of ['ListProducts', 'warm cache']) assert.equal(await rowOf(op).locator('.cp-seg').count(), 0, `${op} is off the path`);

  // The root owns 0–5, 25–30 and 80–100 ms of a 100 ms trace.
  const segs = await rowOf('GET /shop').locator('.cp-seg').evaluateAll((els) => els.map((e) => [parseFloat(e.style.left), parseFloat(e.style.width)]));
  assert.equal(segs.length, 3);
  const want = [[0, 5], [25, 5], [80, 20]];
  segs.forEach(([l, w], k) => {
    assert.ok(Math.abs(l - want[k][0]) < 0.5 && Math.abs(w - want[k][1]) < 0.5, `root segment ${k}: ${l}% +${w}%`);
  });
  const [rl, rw] = await rowOf('Recommend').locator('.cp-seg').evaluateAll((els) => [els.length, els.map((e) => parseFloat(e.style.width)).reduce((a, b) => a + b, 0)]);
  assert.equal(rl, 2, 'Recommend: before and after its child');
  assert.ok(Math.abs(rw - 20) < 0.5, `Recommend's own time on the path is 20 ms (${rw}%)`);
  await page.screenshot({ path: path.join(ARTIFACTS, 'critical-path.png') });

  await page.click('[data-act="cp"]');
  assert.equal(await page.locator('#tl-rows .cp-seg').count(), 0, 'toggled off');
  await page.click('[data-act="cp"]');
  assert.equal(await page.locator('#tl-rows .row.on-cp').count(), 5, 'toggled back on');
});

test('span table sorts by duration and opens a span in the panel', async () => {
  const fx = criticalPathTrace();
  await ingested(fx);
  await page.goto(`${server.queryUrl}/trace/${fx.traceId}`);
  await page.waitForSelector('#tl-rows .row');
  await page.click('[data-view="table"]');
  const body = page.locator('#span-table tbody tr');
  await body.first().waitFor();
  assert.equal(await body.count(), fx.spanCount);
  assert.equal(await page.locator('.timeline').isVisible(), false, 'the timeline is replaced');
  const ops = () => page.locator('#span-table tbody td.op').allInnerTexts();
  const durs = () => page.locator('#span-table tbody td[data-us]').evaluateAll((els) => els.map((e) => Number(e.dataset.us)));
  const byStart = await ops();
  assert.deepEqual(byStart.slice(0, 3), ['GET /shop', 'GetCart', 'HGET'], 'default order is by start');

  await page.click('#span-table th[data-sort="duration"] button');
  const desc = await durs();
  assert.deepEqual(desc, desc.slice().sort((a, b) => b - a), 'longest first');
  assert.deepEqual((await ops()).slice(0, 2), ['GET /shop', 'ListProducts']);
  assert.notDeepEqual(await ops(), byStart);
  await page.click('#span-table th[data-sort="duration"] button');
  const asc = await durs();
  assert.deepEqual(asc, desc.slice().reverse(), 'second click reverses');
  assert.equal((await ops())[0], 'HGET');

  // Self time: 100 ms minus the union of its children (5–80 ms).
  const rootRow = tableRow('GET /shop');
  assert.match(await rootRow.locator('td').nth(3).innerText(), /^25ms$/);

  await tableRow('Recommend').click();
  await page.locator('#span-detail h3', { hasText: 'Recommend' }).waitFor();
  assert.match(await page.locator('#span-detail').innerText(), /fixture\.key\s+string\s+rec/);
  assert.equal(await page.locator('#span-table tbody tr.selected td.op').innerText(), 'Recommend');

  await page.fill('#st-filter', 'product-catalog');
  await page.waitForFunction(() => document.querySelectorAll('#span-table tbody tr').length === 3);
  await page.screenshot({ path: path.join(ARTIFACTS, 'span-table.png') });
  await page.click('[data-view="timeline"]');
  await page.locator('#tl-rows .row.selected', { hasText: 'Recommend' }).waitFor();
});

test('compare: pick two traces in the search results, the diff marks what differs', async () => {
  const { a, b } = comparePair();
  await ingested(a);
  await ingested(b);
  await page.goto(`${server.queryUrl}/search?service=frontend&operation=${encodeURIComponent('POST /checkout')}&run=1`);
  await page.locator(`input[data-pick="${a.traceId}"]`).check();
  assert.equal(await page.locator('#compare').isDisabled(), true, 'needs two');
  await page.locator(`input[data-pick="${b.traceId}"]`).check();
  await page.click('#compare');
  await page.waitForURL(`**/compare/${a.traceId}/${b.traceId}`);
  await page.locator('#diff-table tbody tr').first().waitFor();

  const rows = await page.locator('#diff-table tbody tr').evaluateAll((els) => els.map((e) =>
    [e.dataset.service, e.dataset.operation, e.dataset.state]));
  assert.deepEqual(rows, [
    ['frontend', 'POST /checkout', 'same'],
    ['checkout', 'PlaceOrder', 'same'],
    ['product-catalog', 'GetProduct', 'changed'],
    ['payment', 'Charge', 'same'],
    ['email', 'SendConfirmation', 'added'],
  ]);
  const changed = page.locator('#diff-table tr[data-state="changed"] td.num');
  assert.deepEqual((await changed.allInnerTexts()).slice(0, 3), ['1', '2', '+1']);
  assert.match(await page.locator('#cmp-legend').innerText(), /only in B: 1/);
  assert.match(await page.locator('.cmp-side[data-side="A"]').innerText(), /4 spans/);
  assert.match(await page.locator('.cmp-side[data-side="B"]').innerText(), /6 spans/);
  await page.screenshot({ path: path.join(ARTIFACTS, 'compare.png') });

  assert.deepEqual(consoleErrors, [], 'no console errors');

  // Swapped by URL: the extra span is now only in A.
  await page.goto(`${server.queryUrl}/compare/${b.traceId}/${a.traceId}`);
  await page.locator('#diff-table tr[data-operation="SendConfirmation"]').waitFor();
  assert.equal(await page.locator('#diff-table tr[data-operation="SendConfirmation"]').getAttribute('data-state'), 'removed');
  await page.goto(`${server.queryUrl}/compare/${a.traceId}/ffffffffffffffffffffffffffffffff`);
  await page.locator('#cmp-body .notice.error').waitFor();
  assert.match(await page.locator('#cmp-body').innerText(), /not found/);
  assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
});
