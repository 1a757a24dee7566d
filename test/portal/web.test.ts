import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import type { AddressInfo } from 'node:net';
import ts from 'typescript';
import { build } from 'vite';
import type { Page } from 'playwright-core';
import { ERROR_CODES, SimcredError, isSimcredError } from '../../src/errors/index.js';
import { parse } from '../../src/http/routes.js';
import { portalRoutes, signUp } from '../../src/protocol/portal.js';
import {
  cspViolations,
  focusedOutline,
  launchBrowser,
  recordConsole,
  repoRoot,
  saveScreenshot,
  scrollsSideways,
  unlabelledControls,
  type InPage,
  type TestBrowser,
} from './browser.js';

/*
 * The portal's front end on its own, before the portal server exists: built with Vite, served from a
 * throwaway static server with the portal's Content-Security-Policy, opened in Debian's Chromium.
 * The only API it answers: no session (401), and sign-up refused with the contract's own schema
 * errors, formatted as the real server formats them (src/http/routes.ts parse).
 */

const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'";
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

const webRoot = join(repoRoot(), 'web');
let outDir: string;
let server: Server;
let base: string;
let browser: TestBrowser;

function refuse(res: import('node:http').ServerResponse, err: SimcredError) {
  res.writeHead(err.status, { 'content-type': 'application/json', 'content-security-policy': CSP });
  res.end(JSON.stringify({ code: err.code, message: err.message }));
}

before(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'simcred-web-'));
  await build({ root: webRoot, logLevel: 'warn', build: { outDir, emptyOutDir: true, sourcemap: false } });
  server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname.startsWith('/api/')) {
      if (req.method === 'POST' && url.pathname === signUp.path) {
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk.toString()));
        req.on('end', () => {
          try {
            parse(signUp.body!, JSON.parse(body), 'body');
            refuse(
              res,
              new SimcredError('SIMCRED_ACCOUNT_EXISTS', 'an account with this e-mail address exists'),
            );
          } catch (err) {
            refuse(
              res,
              isSimcredError(err) ? err : new SimcredError('SIMCRED_BAD_REQUEST', 'body is not valid JSON'),
            );
          }
        });
        return;
      }
      refuse(res, new SimcredError('SIMCRED_UNAUTHENTICATED', ERROR_CODES.SIMCRED_UNAUTHENTICATED.meaning));
      return;
    }
    // Files by name; any other path is a page of the app (history routing), as the portal serves it.
    const file = extname(url.pathname) ? normalize(url.pathname).replace(/^(\.\.[/\\])+/, '') : '/index.html';
    readFile(join(outDir, file)).then(
      (data) => {
        res.writeHead(200, {
          'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
          'content-security-policy': CSP,
        });
        res.end(data);
      },
      () => {
        res.writeHead(404, { 'content-type': 'text/plain', 'content-security-policy': CSP });
        res.end('not found');
      },
    );
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await new Promise((ok) => server?.close(ok));
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

/** Opens a page and waits for its form; returns the console lines recorded meanwhile. */
async function open(
  path: string,
  width: number,
  heading: RegExp,
): Promise<{ page: Page; console: string[] }> {
  const page = await browser.newPage(width);
  const lines = recordConsole(page);
  await page.goto(base + path);
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
  return { page, console: lines };
}

/** Tabs from the top of the page until `until` has focus; the focused elements on the way, with their outline. */
async function tabThrough(page: Page, count: number) {
  const seen: Awaited<ReturnType<typeof focusedOutline>>[] = [];
  for (let i = 0; i < count; i++) {
    await page.keyboard.press('Tab');
    seen.push(await focusedOutline(page));
  }
  return seen;
}

async function checkPage(page: Page, consoleLines: string[], fields: string[]) {
  assert.deepEqual(await cspViolations(page, consoleLines), [], 'no CSP violation');
  assert.deepEqual(
    consoleLines.filter((l) => l.startsWith('pageerror')),
    [],
    'no uncaught error',
  );
  assert.deepEqual(await unlabelledControls(page), [], 'every control has an accessible name');
  for (const id of fields) {
    const labels = await page.locator(`label[for="${id}"]`).count();
    assert.equal(labels, 1, `#${id} has its own <label>`);
  }
  const focused = await tabThrough(page, fields.length + 6);
  for (const id of fields) {
    const stop = focused.find((f) => f.id === id);
    assert.ok(stop, `Tab reaches #${id} (reached ${focused.map((f) => f.id || f.tag).join(', ')})`);
    assert.notEqual(stop.outlineStyle, 'none', `#${id} shows its focus`);
    assert.ok(stop.outlineWidth >= 2, `#${id} focus outline is at least 2px`);
  }
  const submit = focused.find((f) => f.tag === 'button' && f.type === 'submit');
  assert.ok(submit, 'Tab reaches the submit button');
  assert.ok(submit.outlineWidth >= 2 && submit.outlineStyle !== 'none', 'the submit button shows its focus');
}

test('every route the front end calls is declared in src/protocol/portal.ts with the same method and path', async () => {
  const source = await readFile(join(webRoot, 'src', 'routes.ts'), 'utf8');
  // routes.ts has type-only imports, so its JavaScript stands alone.
  const js = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  });
  const { ROUTES } = (await import(
    `data:text/javascript;base64,${Buffer.from(js.outputText).toString('base64')}`
  )) as {
    ROUTES: Record<string, { method: string; path: string }>;
  };
  const declared = new Map(portalRoutes.map((r) => [r.id, r]));
  assert.ok(Object.keys(ROUTES).length > 0);
  for (const [name, route] of Object.entries(ROUTES)) {
    const spec = declared.get(`portal.${name}`);
    assert.ok(spec, `${name} is a portal route`);
    assert.deepEqual(route, { method: spec.method, path: spec.path }, name);
  }
});

test('the log-in page: no CSP violation, labelled fields, keyboard focus visible (1280 px)', async () => {
  const { page, console } = await open('/login', 1280, /^Log in$/);
  await checkPage(page, console, ['login-email', 'login-password']);
  await page.locator('body').click({ position: { x: 5, y: 5 } }); // drop the focus ring for the picture
  await saveScreenshot(page, 'login');
  await page.close();
});

test('the sign-up page at 1280 px and at 360 px, and the server errors beside their fields', async () => {
  const fields = ['signup-name', 'signup-email', 'signup-password'];
  {
    const { page, console } = await open('/signup', 1280, /owner account/);
    await checkPage(page, console, fields);
    await page.locator('body').click({ position: { x: 5, y: 5 } });
    await saveScreenshot(page, 'signup');
    await page.close();
  }
  const { page, console } = await open('/signup', 360, /owner account/);
  await checkPage(page, console, fields);
  assert.equal(await scrollsSideways(page), false, 'nothing scrolls sideways at 360 px');
  await page.locator('body').click({ position: { x: 5, y: 5 } });
  await saveScreenshot(page, 'signup-360');

  // The contract's own messages come back "body.email: …" and land next to their field, announced.
  await page.getByLabel('Your name or company').fill('Acme Fleet');
  await page.getByLabel('E-mail address').fill('not-an-address');
  await page.getByLabel('Password', { exact: true }).fill('short');
  await page.getByRole('button', { name: 'Create account' }).click();
  const emailError = page.locator('#signup-email-error');
  await emailError.filter({ hasText: /e-mail address/ }).waitFor();
  assert.match((await page.locator('#signup-password-error').textContent()) ?? '', /at least 12 characters/);
  assert.equal(await page.locator('#signup-email').getAttribute('aria-invalid'), 'true');
  assert.equal(await emailError.getAttribute('aria-live'), 'polite');
  assert.match((await page.getByRole('alert').first().textContent()) ?? '', /Please correct the 2 fields/);
  assert.equal(
    await page.evaluate(() => (globalThis as unknown as InPage).document.activeElement?.id),
    'signup-email',
    'focus moves to the first bad field',
  );
  assert.equal(await scrollsSideways(page), false, 'errors do not widen the page');
  await saveScreenshot(page, 'signup-errors-360');

  // A code that names a field (an existing account) is shown next to that field in plain words.
  await page.getByLabel('E-mail address').fill('owner@example.com');
  await page.getByLabel('Password', { exact: true }).fill('a long enough passphrase');
  await page.getByRole('button', { name: 'Create account' }).click();
  await emailError.filter({ hasText: /already an account/ }).waitFor();
  assert.deepEqual(await cspViolations(page, console), []);
  await page.close();
});
