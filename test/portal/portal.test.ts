// The contract portal end to end (issue 13): a real system on loopback, the portal's API driven as a
// browser drives it (session cookie, CSRF header), the credentialing server checked through its own
// operator API.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isSimcredError } from '../../src/errors/index.js';
import { startTestSystem, type TestSystem } from '../flow/harness.js';
import { expectRefusal } from '../helpers/assert.js';
import { tempDir } from '../helpers/cli.js';
import { ManualClock } from '../helpers/clock.js';
import { PortalBrowser } from './api-client.js';
import { routesOf } from '../../src/protocol/index.js';
import { openApiDocument, type OpenApiDocument } from '../../src/protocol/openapi.js';
import { OpenApiChecker } from '../protocol/exchanges.js';

const PASSWORD = 'a long enough password';
const OPERATOR = { email: 'ops@operator.example', password: 'operator password 1' };
const billing = {
  name: 'Meters Ltd',
  address: '1 Grid Street, Springfield',
  country: 'GB',
  email: 'billing@meters.example',
};

const newDsimId = () => `DSIM${randomBytes(8).toString('hex').toUpperCase()}`;

interface Contract {
  id: string;
  payment: { status: string; reason: string | null };
  totals: Record<string, number>;
  devices: number;
}
interface Rejection {
  line?: number;
  dsimId?: string;
  code: string;
  message: string;
}
interface Upload {
  state: string;
  rows: number;
  accepted: number;
  rejectedCount: number;
  rejected: Rejection[];
}

describe('the contract portal', () => {
  let t: TestSystem;
  let portalUrl: string;
  const clock = new ManualClock();
  const browsers: PortalBrowser[] = [];
  const work = tempDir('simcred-portal-');

  before(async () => {
    const passwordFile = join(work.path, 'operator-password');
    writeFileSync(passwordFile, `${OPERATOR.password}\n`);
    t = await startTestSystem(
      { portal: { operators: [{ email: OPERATOR.email, passwordFile }] } },
      { clock: clock.now },
    );
    portalUrl = t.system.urls.portal;
  });
  after(async () => {
    for (const b of browsers) await b.close();
    await t?.close();
    work.cleanup();
  });

  const browser = () => {
    const b = new PortalBrowser(portalUrl, t.system.pki.operator.root.pem);
    browsers.push(b);
    return b;
  };
  /** A new owner, signed up and signed in. */
  const owner = async (name: string) => {
    const b = browser();
    const answer = await b.signIn('/api/v1/accounts', {
      email: `${name}-${randomBytes(3).toString('hex')}@example.com`,
      password: PASSWORD,
      name,
    });
    assert.equal(answer.statusCode, 200, answer.text);
    return b;
  };
  const operator = async () => {
    const b = browser();
    const answer = await b.signIn('/api/v1/session', OPERATOR);
    assert.equal(answer.statusCode, 200, answer.text);
    return b;
  };
  const contract = async (b: PortalBrowser, planId = 'm2m-fleet', paymentReference = 'PO-1') => {
    const answer = await b.post('/api/v1/contracts', { planId, billing, paymentReference });
    assert.equal(answer.statusCode, 200, answer.text);
    return answer.json<Contract>();
  };
  const credentialingState = async (dsimId: string) => {
    try {
      return (await t.operator.deviceState(t.system.urls.credentialing, dsimId)).state;
    } catch (err) {
      if (isSimcredError(err) && err.code === 'SIMCRED_REGISTRATION_UNKNOWN') return 'unknown';
      throw err;
    }
  };

  test('every answer carries the CSP (no unsafe-inline) and the other security headers', async () => {
    const b = browser();
    for (const path of [
      '/api/v1/plans',
      '/api/v1/contracts',
      '/health',
      '/api/v1/nothing',
      '/',
      '/contracts/x',
    ]) {
      const answer = await b.get(path);
      const csp = String(answer.headers['content-security-policy']);
      assert.match(csp, /default-src 'self'/, path);
      assert.match(csp, /frame-ancestors 'none'/, path);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, path);
      assert.equal(answer.headers['x-content-type-options'], 'nosniff', path);
      assert.equal(answer.headers['referrer-policy'], 'no-referrer', path);
    }
    expectRefusal(await b.get('/api/v1/nothing'), 'SIMCRED_NOT_FOUND');
    // Not an API path: the front end's page (or the page saying it is not built).
    const page = await b.get('/contracts/C0000');
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
  });

  test('the plans come from the config, for anyone', async () => {
    const plans = (await browser().get('/api/v1/plans')).json<{
      plans: { id: string; maxDevices: number }[];
    }>();
    assert.deepEqual(
      plans.plans.map((p) => p.id),
      ['retail', 'm2m-starter', 'm2m-fleet'],
    );
  });

  test('sign up, current session, log out, log in; the cookie is HttpOnly, SameSite=Strict, Secure', async () => {
    const b = browser();
    const email = `owner-${randomBytes(3).toString('hex')}@example.com`;
    const signUp = await b.signIn('/api/v1/accounts', {
      email: email.toUpperCase(),
      password: PASSWORD,
      name: 'Owner',
    });
    assert.equal(signUp.statusCode, 200, signUp.text);
    const setCookie = String(signUp.headers['set-cookie']);
    assert.match(setCookie, /^simcred_session=[A-Za-z0-9_-]{43};/);
    for (const attribute of [/; HttpOnly/, /; Secure/, /; SameSite=Strict/, /; Path=\//])
      assert.match(setCookie, attribute);
    const session = signUp.json<{ account: { email: string; kind: string }; csrfToken: string }>();
    assert.equal(session.account.email, email, 'e-mail addresses are kept in lower case');
    assert.equal(session.account.kind, 'owner');
    assert.equal((await b.get('/api/v1/session')).json<{ csrfToken: string }>().csrfToken, session.csrfToken);

    expectRefusal(
      await browser().post('/api/v1/accounts', { email, password: PASSWORD, name: 'Again' }),
      'SIMCRED_ACCOUNT_EXISTS',
      /email/,
    );
    expectRefusal(
      await browser().post('/api/v1/accounts', { email: 'not-an-email', password: 'short', name: '' }),
      'SIMCRED_BAD_REQUEST',
      /body\.email: must be an e-mail address/,
    );

    const out = await b.delete('/api/v1/session');
    assert.equal(out.statusCode, 200, out.text);
    assert.match(String(out.headers['set-cookie']), /^simcred_session=; .*Max-Age=0/);
    assert.equal(b.cookie, undefined);
    expectRefusal(await b.get('/api/v1/session'), 'SIMCRED_UNAUTHENTICATED');
    expectRefusal(await b.get('/api/v1/contracts'), 'SIMCRED_UNAUTHENTICATED');

    assert.equal((await b.signIn('/api/v1/session', { email, password: PASSWORD })).statusCode, 200);
    assert.equal((await b.get('/api/v1/session')).statusCode, 200);
    expectRefusal(
      await browser().post('/api/v1/session', { email, password: 'not the password' }),
      'SIMCRED_LOGIN_FAILED',
    );
  });

  test('a POST or DELETE without the CSRF token is refused and changes nothing', async () => {
    const b = await owner('csrf');
    expectRefusal(
      await b.post(
        '/api/v1/contracts',
        { planId: 'retail', billing, paymentReference: 'PO-9' },
        { csrf: false },
      ),
      'SIMCRED_CSRF_INVALID',
    );
    const wrong = b.csrfToken;
    b.csrfToken = randomBytes(32).toString('base64url');
    expectRefusal(
      await b.post('/api/v1/contracts', { planId: 'retail', billing, paymentReference: 'PO-9' }),
      'SIMCRED_CSRF_INVALID',
    );
    b.csrfToken = wrong;
    expectRefusal(await b.delete('/api/v1/session', { csrf: false }), 'SIMCRED_CSRF_INVALID');
    assert.deepEqual((await b.get('/api/v1/contracts')).json<{ items: unknown[] }>().items, []);
    assert.equal((await b.get('/api/v1/session')).statusCode, 200, 'still signed in');
  });

  test('signed in, the generic refusals: bad path, malformed JSON, wrong media type, too large a form', async () => {
    const b = await owner('generic');
    expectRefusal(await b.get('/api/v1/contracts/..%2F..%2Fetc'), 'SIMCRED_BAD_REQUEST', /path\.contractId/);
    expectRefusal(await b.get('/api/v1/contracts?limit=many'), 'SIMCRED_BAD_REQUEST', /query\.limit/);
    expectRefusal(
      await b.send('POST', '/api/v1/contracts', '{"planId":', 'application/json'),
      'SIMCRED_BAD_REQUEST',
    );
    expectRefusal(
      await b.send('POST', '/api/v1/contracts', '<a/>', 'application/xml'),
      'SIMCRED_UNSUPPORTED_MEDIA_TYPE',
    );
    const c = await contract(b);
    expectRefusal(
      await b.send('POST', `/api/v1/contracts/${c.id}/uploads`, '{"dsimIds":[]}', 'application/json'),
      'SIMCRED_UNSUPPORTED_MEDIA_TYPE',
      /text\/csv or application\/x-ndjson/,
    );
    const big = JSON.stringify({ dsimIds: Array.from({ length: 100 }, () => 'x'.repeat(1000)) });
    expectRefusal(
      await b.send('POST', `/api/v1/contracts/${c.id}/devices`, big, 'application/json'),
      'SIMCRED_BODY_TOO_LARGE',
    );
  });

  test('contract fields are validated by name; an unknown plan is SIMCRED_PLAN_UNKNOWN', async () => {
    const b = await owner('fields');
    expectRefusal(
      await b.post('/api/v1/contracts', { planId: 'gold', billing, paymentReference: 'PO-1' }),
      'SIMCRED_PLAN_UNKNOWN',
      /planId: no plan "gold"/,
    );
    expectRefusal(
      await b.post('/api/v1/contracts', {
        planId: 'retail',
        billing: { ...billing, country: 'Britain' },
        paymentReference: 'PO-1',
      }),
      'SIMCRED_BAD_REQUEST',
      /body\.billing\.country: must be an ISO 3166-1 alpha-2 country code/,
    );
  });

  test("an owner sees only their own contracts: another owner's is SIMCRED_CONTRACT_UNKNOWN (404)", async () => {
    const alice = await owner('alice');
    const bob = await owner('bob');
    const mine = await contract(alice);
    const [dsimId] = [newDsimId()];
    assert.equal(
      (await alice.post(`/api/v1/contracts/${mine.id}/devices`, { dsimIds: [dsimId] })).statusCode,
      200,
    );
    expectRefusal(await bob.get(`/api/v1/contracts/${mine.id}`), 'SIMCRED_CONTRACT_UNKNOWN');
    expectRefusal(await bob.get(`/api/v1/contracts/${mine.id}/devices`), 'SIMCRED_CONTRACT_UNKNOWN');
    expectRefusal(
      await bob.delete(`/api/v1/contracts/${mine.id}/devices/${dsimId}`),
      'SIMCRED_CONTRACT_UNKNOWN',
    );
    expectRefusal(
      await bob.post(`/api/v1/contracts/${mine.id}/devices`, { dsimIds: [newDsimId()] }),
      'SIMCRED_CONTRACT_UNKNOWN',
    );
    assert.deepEqual((await bob.get('/api/v1/contracts')).json<{ items: unknown[] }>().items, []);
    assert.deepEqual((await bob.get(`/api/v1/contracts?q=${dsimId}`)).json<{ items: unknown[] }>().items, []);
    expectRefusal(
      await alice.delete(`/api/v1/contracts/${mine.id}/devices/${newDsimId()}`),
      'SIMCRED_DEVICE_UNKNOWN',
    );
    // Operator routes are not for owners.
    expectRefusal(await alice.get('/api/v1/funnel'), 'SIMCRED_FORBIDDEN_ACCOUNT');
    expectRefusal(await alice.get(`/api/v1/devices/${dsimId}`), 'SIMCRED_FORBIDDEN_ACCOUNT');
    // And owner routes are not for operators.
    const ops = await operator();
    expectRefusal(
      await ops.post('/api/v1/contracts', { planId: 'retail', billing, paymentReference: 'PO-1' }),
      'SIMCRED_FORBIDDEN_ACCOUNT',
    );
  });

  test('a declined payment blocks adding devices (402) until a new payment is authorised', async () => {
    const b = await owner('declined');
    const declined = await contract(b, 'm2m-fleet', 'decline-card-expired');
    assert.equal(declined.payment.status, 'declined');
    assert.match(declined.payment.reason ?? '', /decline/);
    const dsimId = newDsimId();
    expectRefusal(
      await b.post(`/api/v1/contracts/${declined.id}/devices`, { dsimIds: [dsimId] }),
      'SIMCRED_PAYMENT_DECLINED',
    );
    expectRefusal(
      await b.upload(`/api/v1/contracts/${declined.id}/uploads`, `dsim_id\n${dsimId}\n`, 'text/csv'),
      'SIMCRED_PAYMENT_DECLINED',
    );
    assert.equal(await credentialingState(dsimId), 'unknown', 'nothing was registered');
    const again = await b.post(`/api/v1/contracts/${declined.id}/payment`, {
      paymentReference: 'decline-again',
    });
    assert.equal(again.json<Contract>().payment.status, 'declined');
    const paid = await b.post(`/api/v1/contracts/${declined.id}/payment`, { paymentReference: 'PO-2' });
    assert.equal(paid.json<Contract>().payment.status, 'authorised');
    const added = await b.post(`/api/v1/contracts/${declined.id}/devices`, { dsimIds: [dsimId] });
    assert.deepEqual(added.json<{ accepted: string[] }>().accepted, [dsimId]);
    assert.equal(await credentialingState(dsimId), 'registered');
  });

  test('3 devices typed in and a CSV of 500 with 2 bad rows: 501 registered, the 2 reported by line and never registered', async () => {
    const b = await owner('fleet');
    const c = await contract(b);
    const typed = [newDsimId(), newDsimId(), newDsimId()];
    const added = await b.post(`/api/v1/contracts/${c.id}/devices`, { dsimIds: typed });
    assert.equal(added.statusCode, 200, added.text);
    assert.deepEqual(added.json<{ accepted: string[]; rejected: unknown[] }>(), {
      accepted: typed,
      rejected: [],
    });

    const good = Array.from({ length: 498 }, newDsimId);
    const stray = newDsimId();
    const lines = ['dsim_id,label', ...good.map((id, i) => `${id},meter ${i}`)];
    // Line 101: not a DSIM_ID. Line 302: a DSIM_ID with a column too many.
    lines.splice(100, 0, 'DSIM-NOT-AN-ID,meter x');
    lines.splice(301, 0, `${stray},meter y,extra`);
    const answer = await b.upload(
      `/api/v1/contracts/${c.id}/uploads?fileName=fleet.csv`,
      `${lines.join('\n')}\n`,
      'text/csv',
    );
    assert.equal(answer.statusCode, 200, answer.text);
    const upload = answer.json<Upload>();
    assert.equal(upload.state, 'done');
    assert.equal(upload.rows, 500);
    assert.equal(upload.accepted, 498);
    assert.equal(upload.rejectedCount, 2);
    assert.deepEqual(
      upload.rejected.map((r) => [r.line, r.code]),
      [
        [101, 'SIMCRED_BAD_REQUEST'],
        [302, 'SIMCRED_BAD_REQUEST'],
      ],
    );
    assert.match(upload.rejected[0]!.message, /^line 101: dsim_id: must be DSIM followed by 16/);
    assert.match(upload.rejected[1]!.message, /^line 302: 3 columns where the header has 2/);

    for (const dsimId of [...typed, ...good])
      assert.equal(await credentialingState(dsimId), 'registered', dsimId);
    assert.equal(await credentialingState(stray), 'unknown', 'the bad row was never registered');

    const view = (await b.get(`/api/v1/contracts/${c.id}`)).json<Contract>();
    assert.equal(view.devices, 501);
    assert.equal(view.totals.registered, 501);
    assert.equal(view.totals.pending, 0);
    const page = (await b.get(`/api/v1/contracts/${c.id}/devices?limit=10&state=registered`)).json<{
      items: { dsimId: string; state: string }[];
      next: string | null;
    }>();
    assert.equal(page.items.length, 10);
    assert.equal(page.next, page.items[9]!.dsimId);
    expectRefusal(
      await b.get(`/api/v1/contracts/${c.id}/devices?limit=0`),
      'SIMCRED_BAD_REQUEST',
      /query\.limit/,
    );
    const uploads = (await b.get('/api/v1/uploads')).json<{ items: Upload[] }>();
    assert.equal(uploads.items[0]!.accepted, 498);

    // The operator sees every contract, finds one by DSIM_ID, and sees a device's timeline.
    const ops = await operator();
    const found = (await ops.get(`/api/v1/contracts?q=${good[7]}`)).json<{ items: Contract[] }>();
    assert.deepEqual(
      found.items.map((x) => x.id),
      [c.id],
    );
    const timeline = (await ops.get(`/api/v1/devices/${good[7]}`)).json<{
      device: { state: string };
      timeline: { role: string; event: string }[];
    }>();
    assert.equal(timeline.device.state, 'registered');
    assert.deepEqual(timeline.timeline[0], {
      ...timeline.timeline[0],
      role: 'credentialing',
      event: 'registered',
    });
    expectRefusal(await ops.get(`/api/v1/devices/${newDsimId()}`), 'SIMCRED_DEVICE_UNKNOWN');
    const funnel = (await ops.get('/api/v1/funnel')).json<{
      totals: Record<string, number>;
      devices: number;
    }>();
    assert.ok(funnel.totals.registered! >= 501);
  });

  test('NDJSON uploads; duplicates within a file and across contracts are refused by row; non-UTF-8 rows too', async () => {
    const alice = await owner('dup-a');
    const bob = await owner('dup-b');
    const a = await contract(alice);
    const bc = await contract(bob);
    const [taken, mine, twice] = [newDsimId(), newDsimId(), newDsimId()];
    await alice.post(`/api/v1/contracts/${a.id}/devices`, { dsimIds: [taken] });
    const ndjson = [
      JSON.stringify({ dsimId: mine }),
      JSON.stringify({ dsimId: taken }),
      JSON.stringify({ dsimId: twice }),
      '',
      JSON.stringify({ dsimId: twice }),
      'not json',
    ].join('\n');
    const answer = await bob.upload(`/api/v1/contracts/${bc.id}/uploads`, ndjson, 'application/x-ndjson');
    assert.equal(answer.statusCode, 200, answer.text);
    const upload = answer.json<Upload>();
    assert.deepEqual(
      upload.rejected.map((r) => [r.line, r.code]),
      [
        [2, 'SIMCRED_DEVICE_DUPLICATE'],
        [5, 'SIMCRED_DEVICE_DUPLICATE'],
        [6, 'SIMCRED_BAD_REQUEST'],
      ],
    );
    assert.match(upload.rejected[0]!.message, /another contract/);
    assert.match(upload.rejected[1]!.message, /same DSIM_ID as line 3/);
    assert.equal(upload.accepted, 2);
    // Typed in twice: the same rule.
    const typed = await bob.post(`/api/v1/contracts/${bc.id}/devices`, { dsimIds: [taken] });
    assert.deepEqual(
      typed.json<{ rejected: Rejection[] }>().rejected.map((r) => r.code),
      ['SIMCRED_DEVICE_DUPLICATE'],
    );
    // A row that is not UTF-8 is refused alone.
    const bytes = Buffer.concat([
      Buffer.from(`dsim_id\n${newDsimId()}\n`),
      Buffer.from([0x44, 0xff, 0xfe, 0x0a]),
    ]);
    const mixed = (await bob.upload(`/api/v1/contracts/${bc.id}/uploads`, bytes, 'text/csv')).json<Upload>();
    assert.deepEqual(
      mixed.rejected.map((r) => [r.line, r.code]),
      [[3, 'SIMCRED_BAD_REQUEST']],
    );
    assert.match(mixed.rejected[0]!.message, /not UTF-8/);
  });

  test('a file that cannot be read at all is SIMCRED_UPLOAD_INVALID; over the limit is SIMCRED_BODY_TOO_LARGE', async () => {
    const b = await owner('files');
    const c = await contract(b);
    const dsimId = newDsimId();
    expectRefusal(
      await b.upload(`/api/v1/contracts/${c.id}/uploads`, `serial,label\n${dsimId},x\n`, 'text/csv'),
      'SIMCRED_UPLOAD_INVALID',
      /no dsim_id column/,
    );
    expectRefusal(
      await b.upload(
        `/api/v1/contracts/${c.id}/uploads`,
        Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('d\0s\0i\0m\0_\0i\0d\0\n\0', 'binary')]),
        'text/csv',
      ),
      'SIMCRED_UPLOAD_INVALID',
      /not UTF-8/,
    );
    assert.equal(await credentialingState(dsimId), 'unknown');
    const fifty = Buffer.alloc(50 * 1024 * 1024, 0x41);
    expectRefusal(
      await b.upload(`/api/v1/contracts/${c.id}/uploads`, fifty, 'text/csv'),
      'SIMCRED_BODY_TOO_LARGE',
      /upload limit of 16777216 bytes/,
    );
  });

  test("a plan's limit: the rows beyond it are refused, then the contract takes no more", async () => {
    const b = await owner('retail');
    const c = await contract(b, 'retail');
    const ids = Array.from({ length: 11 }, newDsimId);
    const answer = (await b.post(`/api/v1/contracts/${c.id}/devices`, { dsimIds: ids })).json<{
      accepted: string[];
      rejected: Rejection[];
    }>();
    assert.equal(answer.accepted.length, 10);
    assert.deepEqual(
      answer.rejected.map((r) => [r.line, r.code]),
      [[11, 'SIMCRED_PLAN_LIMIT']],
    );
    expectRefusal(
      await b.post(`/api/v1/contracts/${c.id}/devices`, { dsimIds: [newDsimId()] }),
      'SIMCRED_PLAN_LIMIT',
    );
  });

  test('cancel before delivery revokes the registration at the credentialing server', async () => {
    const b = await owner('cancel');
    const c = await contract(b);
    const dsimId = newDsimId();
    await b.post(`/api/v1/contracts/${c.id}/devices`, { dsimIds: [dsimId] });
    assert.equal(await credentialingState(dsimId), 'registered');
    const cancelled = await b.delete(`/api/v1/contracts/${c.id}/devices/${dsimId}`);
    assert.equal(cancelled.statusCode, 200, cancelled.text);
    assert.equal(cancelled.json<{ state: string }>().state, 'revoked');
    assert.equal(await credentialingState(dsimId), 'revoked');
  });

  test("the event stream delivers a device's event to its owner, and not to another owner", async () => {
    const alice = await owner('sse-a');
    const bob = await owner('sse-b');
    const a = await contract(alice);
    const bc = await contract(bob);
    const aliceStream = await alice.stream();
    const bobStream = await bob.stream();
    try {
      const [hers, his] = [newDsimId(), newDsimId()];
      await alice.post(`/api/v1/contracts/${a.id}/devices`, { dsimIds: [hers] });
      await aliceStream.until(new RegExp(`event: device\\ndata: .*"${hers}".*"registered"`));
      await bob.post(`/api/v1/contracts/${bc.id}/devices`, { dsimIds: [his] });
      await bobStream.until(new RegExp(`"${his}"`));
      // Bob's stream had Alice's event published before his own, and does not carry it.
      assert.doesNotMatch(bobStream.received(), new RegExp(hers));
      assert.doesNotMatch(aliceStream.received(), new RegExp(his));
    } finally {
      aliceStream.close();
      bobStream.close();
    }
    expectRefusal(await browser().get('/api/v1/stream'), 'SIMCRED_UNAUTHENTICATED');
  });

  test('sign-in rate limit: the 6th failure is 429 with Retry-After; past the window the owner gets in', async () => {
    // Earlier tests' failures from this address fall out of the window first.
    clock.advance(16 * 60);
    const email = `limited-${randomBytes(3).toString('hex')}@example.com`;
    await browser().signIn('/api/v1/accounts', { email, password: PASSWORD, name: 'Limited' });
    const b = browser();
    for (let i = 0; i < 5; i++) {
      expectRefusal(
        await b.post('/api/v1/session', { email, password: `wrong ${i}` }),
        'SIMCRED_LOGIN_FAILED',
      );
    }
    const limited = await b.post('/api/v1/session', { email, password: PASSWORD });
    expectRefusal(limited, 'SIMCRED_RATE_LIMITED');
    assert.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After');
    assert.ok(Number(limited.headers['retry-after']) <= 15 * 60);
    clock.advance(15 * 60 + 1);
    assert.equal((await b.signIn('/api/v1/session', { email, password: PASSWORD })).statusCode, 200);
  });

  test('no code answered outside what its route declares', () => {
    assert.deepEqual(t.system.servers.portal.undeclaredErrors(), []);
  });

  test("every request and answer above matches the portal's served OpenAPI document; every route was called", async () => {
    const served = await browser().get('/openapi.json');
    const document = served.json<OpenApiDocument>();
    assert.deepEqual({ ...document, servers: openApiDocument('portal').servers }, openApiDocument('portal'));
    const checker = new OpenApiChecker(document);
    // Refused requests were meant to be wrong: their answers are checked, not their bodies or queries.
    const exchanges = PortalBrowser.exchanges
      .filter(
        (e) =>
          !['/', '/contracts/x', '/contracts/C0000', '/api/v1/nothing'].includes(new URL(e.url).pathname),
      )
      .filter((e) => !e.url.includes('..%2F'))
      .map((e) => (e.statusCode >= 400 ? { ...e, body: undefined, url: e.url.split('?')[0]! } : e));
    assert.deepEqual(
      exchanges.flatMap((e) => checker.check(e).map((p) => `${e.method} ${e.url}: ${p}`)),
      [],
    );
    const answered = new Set(exchanges.map((e) => checker.operationOf(e)));
    for (const route of routesOf('portal'))
      assert.ok(answered.has(route.id), `no request reached ${route.id}`);
  });
});
