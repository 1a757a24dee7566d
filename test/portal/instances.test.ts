// Several portal instances on one database (simcred up --workers N runs one in every worker; an
// operator may run several hosts): what one instance counts, applies or publishes, every instance
// sees. A second and third instance are started beside the test system's own, on its store.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { RunningServer } from '../../src/http/index.js';
import { Lease } from '../../src/portal/leases.js';
import { openPortalStore } from '../../src/portal/store.js';
import { roleDatabase } from '../../src/system/wiring.js';
import { startPortal } from '../../src/system/roles.js';
import { startTestSystem, type TestSystem } from '../flow/harness.js';
import { expectRefusal } from '../helpers/assert.js';
import { ManualClock } from '../helpers/clock.js';
import { PortalBrowser } from './api-client.js';

const PASSWORD = 'a long enough password';
const billing = { name: 'Grid Ltd', address: '2 Grid Street', country: 'GB', email: 'billing@grid.example' };
const newDsimId = () => `DSIM${randomBytes(8).toString('hex').toUpperCase()}`;

/** Fails after `ms` instead of waiting for ever. */
function within<T>(what: string, promise: Promise<T>, ms = 20_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    }),
  ]);
}

describe('several portal instances on one database', () => {
  let t: TestSystem;
  const others: RunningServer[] = [];
  const browsers: PortalBrowser[] = [];

  before(async () => {
    t = await startTestSystem();
    for (let i = 0; i < 2; i++) {
      others.push(
        await startPortal(t.config, t.logger, {
          credentialing: t.system.urls.credentialing,
          registration: t.system.urls.registration,
        }),
      );
    }
  });
  after(async () => {
    for (const b of browsers) await b.close();
    for (const o of others) await o.close();
    await t?.close();
  });

  const urls = () => [t.system.urls.portal, ...others.map((o) => o.url)];
  const browser = (url: string) => {
    const b = new PortalBrowser(url, t.system.pki.operator.root.pem);
    browsers.push(b);
    return b;
  };
  /** The same signed-in session, talking to another instance. */
  const sameSessionAt = (b: PortalBrowser, url: string) => {
    const other = browser(url);
    other.cookie = b.cookie;
    other.csrfToken = b.csrfToken;
    return other;
  };

  test('failed sign-ins count across instances: 5 spread over three, the 6th is 429 on any', async () => {
    const email = `spread-${randomBytes(3).toString('hex')}@example.com`;
    await browser(urls()[0]!).signIn('/api/v1/accounts', { email, password: PASSWORD, name: 'Spread' });
    for (let i = 0; i < 5; i++) {
      const at = browser(urls()[i % 3]!);
      expectRefusal(
        await at.post('/api/v1/session', { email, password: `wrong ${i}` }),
        'SIMCRED_LOGIN_FAILED',
      );
    }
    for (const url of urls()) {
      const limited = await browser(url).post('/api/v1/session', { email, password: PASSWORD });
      expectRefusal(limited, 'SIMCRED_RATE_LIMITED');
      assert.ok(Number(limited.headers['retry-after']) > 0);
    }
  });

  test("a device added on one instance and revoked at the credentialing server reaches its owner's stream on another", async () => {
    const owner = browser(urls()[0]!);
    const signedUp = await owner.signIn('/api/v1/accounts', {
      email: `streams-${randomBytes(3).toString('hex')}@example.com`,
      password: PASSWORD,
      name: 'Streams',
    });
    assert.equal(signedUp.statusCode, 200, signedUp.text);
    const contract = await owner.post('/api/v1/contracts', {
      planId: 'm2m-fleet',
      billing,
      paymentReference: 'PO-9',
    });
    assert.equal(contract.statusCode, 200, contract.text);
    const contractId = contract.json<{ id: string }>().id;
    const streams = await Promise.all(others.map((o) => sameSessionAt(owner, o.url).stream()));
    try {
      const dsimId = newDsimId();
      // Added on the first instance: its `registered` event is pushed by the other two.
      const added = await owner.post(`/api/v1/contracts/${contractId}/devices`, { dsimIds: [dsimId] });
      assert.equal(added.statusCode, 200, added.text);
      for (const s of streams) {
        await within('registered on every stream', s.until(new RegExp(`"${dsimId}".*"registered"`)));
      }
      // Revoked behind the portal's back: whichever instance follows the feed applies it, every one pushes it.
      await t.operator.revoke(t.system.urls.credentialing, dsimId, 'test');
      for (const s of streams) {
        await within('revoked on every stream', s.until(new RegExp(`"${dsimId}".*"revoked"`)));
      }
      // An upload's progress on one instance is seen on the others.
      const upload = await sameSessionAt(owner, others[1]!.url).upload(
        `/api/v1/contracts/${contractId}/uploads`,
        `dsim_id\n${newDsimId()}\nnot-a-dsim\n`,
        'text/csv',
      );
      assert.equal(upload.statusCode, 200, upload.text);
      await within(
        'the upload on the first other instance',
        streams[0]!.until(/event: upload\ndata: .*"state":"done"/),
      );
    } finally {
      for (const s of streams) s.close();
    }
  });

  test('exactly one instance follows the feed; the lease passes on when released or expired', async () => {
    const db = await openPortalStore(roleDatabase(t.config, 'portal'));
    try {
      const holders = await db
        .selectFrom('leases')
        .selectAll()
        .where('name', '=', 'credentialing-feed')
        .execute();
      assert.equal(holders.length, 1);
      assert.match(holders[0]!.holder, new RegExp(`:${process.pid}:`));
      assert.ok(Date.parse(holders[0]!.expires_at) > Date.now());

      const clock = new ManualClock();
      const options = {
        db,
        name: `test-${randomBytes(3).toString('hex')}`,
        ttlSeconds: 60,
        clock: clock.now,
      };
      const [first, second] = [new Lease(options), new Lease(options)];
      assert.equal(await first.acquire(), true);
      assert.equal(await second.acquire(), false, 'held by another');
      assert.equal(await first.acquire(), true, 'renewed by its holder');
      clock.advance(59);
      assert.equal(await second.acquire(), false, 'renewed 59 s ago');
      clock.advance(2);
      assert.equal(await second.acquire(), true, 'expired: taken over');
      assert.equal(await first.acquire(), false, 'lost');
      await second.release();
      assert.equal(await first.acquire(), true, 'released: taken at once');
    } finally {
      await db.destroy();
    }
  });
});
