import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ERROR_CODES } from '../../src/errors/index.js';
import { PeerClient, clientTls, loadTlsIdentity } from '../../src/http/index.js';
import type { TlsRole } from '../../src/pki/index.js';
import { ALL_ROUTES, type Role, type RouteSpec } from '../../src/protocol/index.js';
import { startTestSystem, type TestSystem } from './harness.js';

/** DESIGN §4.5: bad input gets a clear 4xx with a stable code on every route, and every role keeps serving. */
describe('bad input on every route', () => {
  let t: TestSystem;
  const clients = new Map<string, PeerClient>();
  before(async () => {
    t = await startTestSystem();
  });
  after(async () => {
    for (const client of clients.values()) await client.close();
    await t.close();
  });

  function baseUrl(role: Role): string {
    const urls = t.system.urls as unknown as Record<string, string | string[]>;
    const url = urls[role];
    return Array.isArray(url) ? url[0]! : url!;
  }

  /** Peer routes get a genuine certificate of an allowed role, so the input checks are what answers. */
  function clientFor(route: RouteSpec): PeerClient {
    const role = route.caller.kind === 'peer' ? route.caller.roles[0]! : 'device';
    let client = clients.get(role);
    if (!client) {
      client =
        role === 'device'
          ? new PeerClient({ tls: { ca: [t.system.pki.operator.root.pem] } })
          : new PeerClient({ tls: clientTls(loadTlsIdentity(t.config.pkiDir, role as TlsRole)) });
      clients.set(role, client);
    }
    return client;
  }

  function pathOf(route: RouteSpec): string {
    return route.path.replace(/:[A-Za-z]+/g, 'DSIM0000000000000000');
  }

  async function expectCode(
    route: RouteSpec,
    body: string | Buffer | undefined,
    type: string,
    codes: string[],
    path = pathOf(route),
  ): Promise<void> {
    const response = await clientFor(route).send(`${baseUrl(route.role)}${path}`, route.method, body, type);
    assert.ok(
      response.statusCode >= 400 && response.statusCode < 500,
      `${route.id}: HTTP ${response.statusCode}`,
    );
    const json = JSON.parse(response.text) as { code: string; message: string };
    assert.ok(codes.includes(json.code), `${route.id}: ${json.code} (${json.message})`);
    assert.ok(json.code in ERROR_CODES);
    assert.doesNotMatch(response.text, /\n\s+at |node_modules/, 'no stack trace');
  }

  const posts = () => ALL_ROUTES.filter((r) => r.method === 'POST' && r.bodyFormat !== 'ndjson' && r.body);

  test('malformed JSON', async () => {
    for (const route of posts())
      await expectCode(route, '{"dsimId":', 'application/json', ['SIMCRED_BAD_REQUEST']);
  });

  test('wrong types and unknown fields', async () => {
    for (const route of posts()) {
      await expectCode(route, '[]', 'application/json', ['SIMCRED_BAD_REQUEST']);
      await expectCode(route, '{"surprise":true}', 'application/json', ['SIMCRED_BAD_REQUEST']);
      const shape = (route.body as { shape?: Record<string, unknown> }).shape ?? {};
      if (Object.keys(shape).length === 0) continue;
      const wrong = Object.fromEntries(Object.keys(shape).map((k) => [k, 12345]));
      await expectCode(route, JSON.stringify(wrong), 'application/json', ['SIMCRED_BAD_REQUEST']);
    }
  });

  test('oversized bodies and wrong content types', async () => {
    for (const route of posts()) {
      await expectCode(route, Buffer.alloc(4 * 1024 * 1024, 0x41), 'application/json', [
        'SIMCRED_BODY_TOO_LARGE',
      ]);
      await expectCode(route, '<a/>', 'application/xml', ['SIMCRED_UNSUPPORTED_MEDIA_TYPE']);
    }
  });

  test('bad path parameters', async () => {
    for (const route of ALL_ROUTES.filter((r) => r.params)) {
      await expectCode(
        route,
        route.method === 'GET' ? undefined : '{}',
        'application/json',
        ['SIMCRED_BAD_REQUEST'],
        route.path.replace(/:[A-Za-z]+/g, '..%2F..%2Fetc'),
      );
    }
  });

  test('a malformed NDJSON batch is rejected line by line; the service keeps serving', async () => {
    const summary = await t.operator.registerDevices(t.system.urls.credentialing, [
      { dsimId: 'not-a-dsim', registrationServer: t.system.urls.registration[0]! },
      { dsimId: 'DSIM00000000000000AB', registrationServer: 'ftp://nowhere' },
    ]);
    assert.equal(summary.registered, 0);
    assert.deepEqual(
      summary.rejected.map((r) => r.code),
      ['SIMCRED_BAD_REQUEST', 'SIMCRED_BAD_REQUEST'],
    );
    for (const role of ['credentialing', 'registration', 'provisioning', 'hss', 'phlr'] as Role[]) {
      const response = await clientFor({ caller: { kind: 'device' } } as RouteSpec).send(
        `${baseUrl(role)}/health`,
        'GET',
        undefined,
        '',
      );
      assert.equal(response.statusCode, 200, role);
    }
  });
});
