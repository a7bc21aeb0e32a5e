// The API documentation pages in a real browser: Debian's chromium, headless, driven by
// playwright-core (installed into web/node_modules by scripts/bootstrap.sh).
//
//   node tests/browser/docs_ui.mjs http://127.0.0.1:8000 [screenshot-dir]
//
// Checks: /docs (Swagger UI) loads, lists the predict route, and "Try it out" + "Execute" on
// churn's predict answers 200 with a label; /redoc (ReDoc) renders the same document.
// Prints "N passed, M failed" and exits non-zero when a check failed.
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(new URL('../../web/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const base = process.argv[2];
const shots = process.argv[3];
if (!base) {
  console.error('usage: node tests/browser/docs_ui.mjs BASE_URL [screenshot-dir]');
  process.exit(2);
}

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${err && err.message ? err.message.split('\n')[0] : err}`);
  }
}

// A fresh profile each run; no sandbox (root in a container), no network beyond the server.
const profile = mkdtempSync(join(tmpdir(), 'inferd-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
});
// Requests that left for another host and got an answer. The pages' Content-Security-Policy
// makes the browser refuse them (ReDoc's footer logo is one), which counts as not leaving.
const offsite = [];
const isOffsite = (url) => !url.startsWith(base) && !url.startsWith('data:') && !url.startsWith('blob:');
context.on('requestfinished', (req) => { if (isOffsite(req.url())) offsite.push(req.url()); });
context.on('requestfailed', (req) => {
  const why = (req.failure() && req.failure().errorText) || '';
  if (isOffsite(req.url()) && !/csp|blocked/i.test(why)) offsite.push(`${req.url()} (${why})`);
});

try {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));

  await check('/docs loads Swagger UI with the operations', async () => {
    const resp = await page.goto(`${base}/docs`, { waitUntil: 'load', timeout: 30000 });
    if (!resp || resp.status() !== 200) throw new Error(`status ${resp && resp.status()}`);
    await page.waitForSelector('.opblock', { timeout: 30000 });
    const title = await page.textContent('.info .title');
    if (!title || !title.includes('inferd')) throw new Error(`title is ${title}`);
  });

  const churn = page.locator('.opblock-post', { has: page.locator('[data-path="/v1/models/churn/predict"]') });
  await check('/docs lists the predict routes', async () => {
    for (const path of ['/v1/models/{model}/predict', '/v1/models/churn/predict', '/v1/models/{model}:predict', '/invocations']) {
      const n = await page.locator(`.opblock-summary-path[data-path="${path}"]`).count();
      if (n < 1) throw new Error(`${path} is not listed`);
    }
  });

  await check('"Try it out" on churn predict answers 200', async () => {
    await churn.locator('.opblock-summary').first().click();
    await churn.locator('button.try-out__btn').click();
    await churn.locator('button.execute').click();
    const status = churn.locator('.live-responses-table .response .response-col_status').first();
    await status.waitFor({ timeout: 30000 });
    const code = (await status.textContent()).trim();
    if (!code.startsWith('200')) throw new Error(`status ${code}`);
    const body = await churn.locator('.live-responses-table .response-col_description pre').first().textContent();
    if (!body.includes('"label"') || !body.includes('"churn"')) throw new Error(`body ${body.slice(0, 200)}`);
  });
  if (shots) await page.screenshot({ path: join(shots, 'docs.png'), fullPage: false });

  await check('/redoc renders the document', async () => {
    const resp = await page.goto(`${base}/redoc`, { waitUntil: 'load', timeout: 30000 });
    if (!resp || resp.status() !== 200) throw new Error(`status ${resp && resp.status()}`);
    await page.locator('h2', { hasText: 'Predict with churn' }).first().waitFor({ timeout: 30000 });
    const h1 = await page.locator('h1').first().textContent();
    if (!h1.includes('inferd')) throw new Error(`heading is ${h1}`);
  });
  if (shots) await page.screenshot({ path: join(shots, 'redoc.png'), fullPage: false });

  await check('no page errors and nothing fetched from elsewhere', async () => {
    if (errors.length) throw new Error(`page errors: ${errors.join('; ').slice(0, 300)}`);
    if (offsite.length) throw new Error(`requests off the server: ${offsite.slice(0, 5).join(', ')}`);
  });
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
