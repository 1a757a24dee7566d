import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { runFleet } from '../../src/device/fleet.js';
import { HssStore } from '../../src/hss/store.js';
import { roleDatabase } from '../../src/system/start.js';
import {
  addDevices,
  cancelDevice,
  getContract,
  listDevices,
  logIn,
  retryPayment,
} from '../../src/protocol/portal.js';
import type { RouteSpec } from '../../src/protocol/route.js';
import { expectRefusal } from '../helpers/assert.js';
import { tempDir } from '../helpers/cli.js';
import { startTestSystem, type TestSystem } from '../flow/harness.js';
import {
  cspViolations,
  launchBrowser,
  recordConsole,
  saveScreenshot,
  scrollsSideways,
  type TestBrowser,
} from './browser.js';
import { PortalBrowser } from './api-client.js';

/*
 * The portal end to end (issue 13, "What it must show"): every role and the portal on loopback, an
 * owner in Debian's Chromium, the simulated fleet, the operator console.
 */

/** The operator's console login: configured, as an operator's staff accounts are (docs/portal.md). */
const OPERATOR = { email: 'ops@operator.example', password: 'operator console password' };

// --- The scenario --------------------------------------------------------------------------------

const OWNER = {
  name: 'Acme Fleet Ltd',
  email: 'fleet@acme.example',
  password: 'correct horse battery staple',
};
const OTHER = { name: 'Other Owner', email: 'other@owner.example', password: 'another long passphrase' };
const TYPED = 3;
const IN_FILE = 500;

/** A route's path from the contract, its :params filled in. */
function at(route: RouteSpec, params: Record<string, string>): string {
  return route.path.replace(/:(\w+)/g, (_, key: string) => encodeURIComponent(params[key] ?? ''));
}

/** A signed-in API caller with JSON bodies (the session cookie and CSRF token: test/portal/api-client.ts). */
class PortalCaller {
  private readonly browser: PortalBrowser;
  constructor(base: string, operatorRoot: string) {
    this.browser = new PortalBrowser(base, operatorRoot);
  }

  send(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, options: { csrf?: boolean } = {}) {
    const json = body === undefined ? undefined : JSON.stringify(body);
    return this.browser.send(method, path, json, json && 'application/json', options.csrf !== false);
  }

  async logIn(account: { email: string; password: string }) {
    const answer = await this.browser.signIn('/api/v1/session', {
      email: account.email,
      password: account.password,
    });
    assert.equal(answer.statusCode, 200, answer.text);
  }

  async signUp(account: typeof OWNER) {
    const answer = await this.browser.signIn('/api/v1/accounts', account);
    assert.equal(answer.statusCode, 200, answer.text);
  }

  close() {
    return this.browser.close();
  }
}

describe('the portal end to end', { concurrency: false }, () => {
  let t: TestSystem;
  let browser: TestBrowser;
  let base: string;
  let operatorRoot: string;
  let work: { path: string; cleanup(): void };
  let typed: string[];
  let filed: string[];
  let contractId: string;

  before(async () => {
    work = tempDir('simcred-portal-e2e-');
    const passwordFile = join(work.path, 'operator-password');
    await writeFile(passwordFile, `${OPERATOR.password}\n`);
    t = await startTestSystem({ portal: { operators: [{ email: OPERATOR.email, passwordFile }] } });
    base = t.system.urls.portal;
    operatorRoot = t.system.pki.operator.root.pem;
    const dsimIds = await t.manufacture(TYPED + IN_FILE - 2);
    typed = dsimIds.slice(0, TYPED);
    filed = dsimIds.slice(TYPED);
    // The portal's certificate chains to the operator CA, which this throwaway profile does not trust.
    browser = await launchBrowser({ ignoreHttpsErrors: true });
  });

  after(async () => {
    await browser?.close();
    await t?.close();
    work?.cleanup();
  });

  /** A page with its console recorded; the test asserts no CSP violation on every page it opens. */
  async function open(
    width = 1280,
    options: { signedIn?: boolean } = {},
  ): Promise<{ page: Page; console: string[] }> {
    // Each test signs in as its own account: a session left by the previous one would skip the log-in page.
    if (!options.signedIn) await browser.context.clearCookies();
    const page = await browser.newPage(width);
    return { page, console: recordConsole(page) };
  }

  test('an owner signs up and signs a contract with the keyboard alone; a declined payment blocks registration', async () => {
    const { page, console } = await open();
    await page.goto(`${base}/signup`);
    await page.getByLabel('Your name or company').fill(OWNER.name);
    await page.getByLabel('E-mail address').fill(OWNER.email);
    await page.getByLabel('Password', { exact: true }).fill(OWNER.password);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { level: 1, name: 'Sign a new contract' }).waitFor();
    await page.getByRole('radio').first().waitFor(); // the plans have loaded
    await saveScreenshot(page, 'contract-new');

    // Keyboard only from here: Tab to each field, type, an arrow key picks the plan, Enter submits.
    await page.locator('main').focus();
    const press = async (keys: string[]) => {
      for (const key of keys) await page.keyboard.press(key);
    };
    await press(['Tab']); // the first plan (retail: 10 devices at most)
    await page.keyboard.press('ArrowDown'); // the next, for fleets (1,000)
    await press(['Tab']);
    await page.keyboard.type('Acme Fleet Ltd');
    await press(['Tab']);
    await page.keyboard.type('1 Fleet Street, London');
    await press(['Tab']);
    await page.keyboard.type('GB');
    await press(['Tab']);
    await page.keyboard.type('billing@acme.example');
    await press(['Tab', 'Tab']); // past the optional VAT number
    await page.keyboard.type('DECLINE-0001');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: /Payment declined/ }).waitFor();
    contractId = /\/contracts\/(C[0-9A-Z]{12})$/.exec(page.url())?.[1] ?? '';
    assert.ok(contractId, page.url());
    assert.ok(
      await page.getByRole('button', { name: 'Add these devices' }).isDisabled(),
      'adding is blocked',
    );
    await saveScreenshot(page, 'contract-declined');

    // The API refuses too: nothing is registered while the payment is declined.
    const caller = new PortalCaller(base, operatorRoot);
    await caller.logIn(OWNER);
    expectRefusal(
      await caller.send('POST', at(addDevices, { contractId }), { dsimIds: typed }),
      'SIMCRED_PAYMENT_DECLINED',
    );
    assert.equal(await t.subscriber(typed[0]!), undefined);

    await page.getByLabel('New payment reference').fill('PO-2026-0001');
    await page.getByRole('button', { name: 'Retry the payment' }).click();
    await page.getByRole('heading', { name: /Payment declined/ }).waitFor({ state: 'detached' });
    assert.deepEqual(await cspViolations(page, console), []);
    await page.close();
  });

  test('the owner adds 3 devices typed in and a CSV of 500 with 2 bad rows, reported by line', async () => {
    const { page, console } = await open();
    await page.goto(`${base}/login`);
    await page.getByLabel('E-mail address').fill(OWNER.email);
    await page.getByLabel('Password').fill(OWNER.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Your contracts' }).waitFor();
    await page.getByRole('link', { name: contractId }).click();

    await page.getByLabel('DSIM_IDs, one per line').fill(typed.join('\n'));
    await page.getByRole('button', { name: 'Add these devices' }).click();
    await page.getByText(`${TYPED} devices added`).waitFor();

    // 500 rows: 498 good, line 101 not a DSIM_ID, line 302 a duplicate of line 2.
    const rows = [...filed];
    rows.splice(99, 0, 'DSIM-NOT-A-DEVICE');
    rows.splice(300, 0, filed[0]!);
    assert.equal(rows.length, IN_FILE);
    const csv = join(work.path, 'fleet.csv');
    await writeFile(csv, ['dsim_id', ...rows].join('\n') + '\n');
    await page.getByLabel('CSV or NDJSON file').setInputFiles(csv);
    await page.getByRole('button', { name: 'Upload the file' }).click();
    const report = page.getByRole('heading', { name: 'Report for fleet.csv' });
    await report.waitFor({ timeout: 120_000 });
    const rejected = page.locator('.rejections tbody tr');
    assert.equal(await rejected.count(), 2);
    assert.deepEqual(
      (await rejected.locator('td[data-label="Line"]').allTextContents()).map(Number),
      [101, 302],
      'the bad rows by their file line (the header is line 1)',
    );
    await page.getByText(`${IN_FILE - 2} accepted`).waitFor();
    await saveScreenshot(page, 'contract');
    assert.deepEqual(await cspViolations(page, console), []);
    await page.close();
  });

  test('the fleet onboards; the console shows the good devices attached and the funnel equals the HSS', async () => {
    const good = [...typed, ...filed];
    const report = await runFleet({
      pkiDir: t.config.pkiDir,
      dsimIds: good,
      concurrency: 16,
      maxAttempts: 3,
    });
    assert.equal(
      report.outcomes.filter((o) => !o.ok).length,
      0,
      JSON.stringify(report.outcomes.find((o) => !o.ok)),
    );

    const operator = OPERATOR;
    const { page, console } = await open();
    await page.goto(`${base}/login`);
    await page.getByLabel('E-mail address').fill(operator.email);
    await page.getByLabel('Password').fill(operator.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Operator console' }).waitFor();
    // The funnel follows the pushed `funnel` events until every good device is attached.
    const attached = page.locator('.funnel__table tr[data-state="attached"] td');
    await page.waitForFunction(
      ([selector, n]) => {
        const cell = (
          globalThis as unknown as { document: { querySelector(s: string): { textContent: string } | null } }
        ).document.querySelector(selector as string);
        return cell !== null && Number(cell.textContent.replace(/\D/g, '')) === n;
      },
      ['.funnel__table tr[data-state="attached"] td', good.length] as const,
      { timeout: 120_000 },
    );
    const hss = await HssStore.open(roleDatabase(t.config, 'hss'));
    try {
      assert.equal(Number((await attached.textContent())?.replace(/\D/g, '')), await hss.countSubscribers());
    } finally {
      await hss.close();
    }
    await saveScreenshot(page, 'console');

    // The bad rows were never registered: the contract holds exactly the good devices.
    await page.getByLabel(/Search by DSIM_ID/).fill(contractId);
    await page.getByRole('button', { name: 'Search' }).click();
    // The contract is linked from the search result and from its upload.
    await page.getByRole('link', { name: contractId }).first().click();
    await page.getByText(`${good.length} devices`).first().waitFor();

    // A device's page: its timeline across roles.
    await page.goto(`${base}/console/devices/${typed[0]}`);
    await page.getByRole('heading', { name: 'Timeline' }).waitFor();
    assert.ok((await page.locator('.timeline tbody tr').count()) >= 5, 'events of several roles');
    // Its registration server let its own credentialing server retire the record (the owner is read
    // from the certificate the same way on a resumed TLS session as on a fresh one).
    assert.equal(
      await page.locator('.timeline tbody tr', { hasText: 'withdraw-refused' }).count(),
      0,
      'a withdrawal refused to the record’s own server',
    );
    await saveScreenshot(page, 'device');

    const narrow = await open(360, { signedIn: true });
    await narrow.page.goto(`${base}/console`);
    await narrow.page.getByRole('heading', { level: 1, name: 'Operator console' }).waitFor();
    assert.equal(await scrollsSideways(narrow.page), false, 'the console fits 360 px');
    await saveScreenshot(narrow.page, 'console-360');
    assert.deepEqual(await cspViolations(page, console), []);
    assert.deepEqual(await cspViolations(narrow.page, narrow.console), []);
    await page.close();
    await narrow.page.close();
  });

  test('a delivered device can be neither added again nor cancelled', async () => {
    const owner = new PortalCaller(base, operatorRoot);
    try {
      await owner.logIn(OWNER);
      const added = await owner.send('POST', at(addDevices, { contractId }), { dsimIds: [typed[0]!] });
      assert.equal(added.statusCode, 200, added.text);
      const body = JSON.parse(added.text) as { accepted: string[]; rejected: { code: string }[] };
      assert.deepEqual(body.accepted, []);
      assert.deepEqual(
        body.rejected.map((r) => r.code),
        ['SIMCRED_REGISTRATION_USED'],
      );
      expectRefusal(
        await owner.send('DELETE', at(cancelDevice, { contractId, dsimId: typed[0]! })),
        'SIMCRED_REGISTRATION_USED',
      );
    } finally {
      await owner.close();
    }
  });

  test("an owner cannot open another owner's contract, in the API or in the browser", async () => {
    const other = new PortalCaller(base, operatorRoot);
    await other.signUp(OTHER);
    expectRefusal(await other.send('GET', at(getContract, { contractId })), 'SIMCRED_CONTRACT_UNKNOWN');
    expectRefusal(await other.send('GET', at(listDevices, { contractId })), 'SIMCRED_CONTRACT_UNKNOWN');

    const { page } = await open();
    await page.goto(`${base}/login`);
    await page.getByLabel('E-mail address').fill(OTHER.email);
    await page.getByLabel('Password').fill(OTHER.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Your contracts' }).waitFor();
    await page.goto(`${base}/contracts/${contractId}`);
    await page.getByText('There is no such contract, or it is not yours.').waitFor();
    await page.close();
  });

  test('a POST without the CSRF token is refused', async () => {
    const owner = new PortalCaller(base, operatorRoot);
    await owner.logIn(OWNER);
    expectRefusal(
      await owner.send(
        'POST',
        at(retryPayment, { contractId }),
        { paymentReference: 'PO-2' },
        { csrf: false },
      ),
      'SIMCRED_CSRF_INVALID',
    );
  });

  test('the log-in rate limit holds', async () => {
    const caller = new PortalCaller(base, operatorRoot);
    let last: Awaited<ReturnType<PortalCaller['send']>> | undefined;
    for (let i = 0; i < 50; i++) {
      last = await caller.send('POST', logIn.path, { email: OWNER.email, password: 'wrong password!' });
      if (last.statusCode === 429) break;
      expectRefusal(last, 'SIMCRED_LOGIN_FAILED');
    }
    expectRefusal(last!, 'SIMCRED_RATE_LIMITED');
    // Even the right password is refused while the limit holds.
    expectRefusal(
      await caller.send('POST', logIn.path, { email: OWNER.email, password: OWNER.password }),
      'SIMCRED_RATE_LIMITED',
    );
  });
});
