import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { z } from 'zod';
import * as x509 from '../../src/crypto/x509.js';
import { DeviceAgent } from '../../src/device/agent.js';
import { TrustedModule } from '../../src/device/trusted-module.js';
import { ERROR_CODES, SimcredError } from '../../src/errors/index.js';
import { PeerClient, clientTls, loadTlsIdentity, mountRoute, startRoleServer } from '../../src/http/index.js';
import { createLogger } from '../../src/log/logger.js';
import { ocspStatusChecker } from '../../src/ocsp/checker.js';
import { loadFactoryImage, TLS_ROLES, type TlsRole } from '../../src/pki/index.js';
import {
  DEVICE,
  SERVING_ROLES,
  defineRoute,
  hss,
  routeErrors,
  routesOf,
  type RouteSpec,
  type ServingRole,
} from '../../src/protocol/index.js';
import { startTestSystem, type TestSystem } from '../flow/harness.js';

function capturedLogger() {
  let text = '';
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return { logger: createLogger({ name: 'test', level: 'info', destination }), logs: () => text };
}

test('a code the route does not declare is logged as undeclared and counted; declared ones are not', async () => {
  const { logger, logs } = capturedLogger();
  const declaredNothing = defineRoute({
    id: 'test.declaresNothing',
    role: 'hss',
    steps: '',
    method: 'POST',
    path: '/v1/test',
    caller: DEVICE,
    summary: 'a route for this test',
    body: z.object({ n: z.number() }).strict(),
    response: z.object({}).strict(),
    readsDatabase: false,
    errors: [],
  });
  const server = await startRoleServer({
    role: 'hss',
    host: '127.0.0.1',
    port: 0,
    logger,
    mount(app) {
      mountRoute(app, declaredNothing, async () => {
        throw new SimcredError('SIMCRED_TICKET_INVALID', 'not this route’s code');
      });
      // Mounted without mountRoute, as a streaming route is: found by method and path all the same.
      app.post(hss.attachChallenge.path, async () => {
        throw new SimcredError('SIMCRED_RECEIPT_INVALID', 'not this route’s code either');
      });
    },
  });
  const client = new PeerClient();
  try {
    const send = (path: string, body: string) =>
      client.send(`${server.url}${path}`, 'POST', body, 'application/json');
    assert.equal((await send('/v1/test', '{"n":1}')).statusCode, 401);
    assert.equal((await send('/v1/test', '{"n":"one"}')).statusCode, 400); // declared: SIMCRED_BAD_REQUEST
    assert.equal((await send(hss.attachChallenge.path, '{}')).statusCode, 401);
    assert.deepEqual(server.undeclaredErrors(), [
      { route: 'test.declaresNothing', code: 'SIMCRED_TICKET_INVALID', count: 1 },
      { route: 'hss.attachChallenge', code: 'SIMCRED_RECEIPT_INVALID', count: 1 },
    ]);
    const lines = logs()
      .split('\n')
      .filter((l) => l.includes('undeclared error code'))
      .map((l) => JSON.parse(l) as { level: number; route: string; code: string });
    assert.deepEqual(
      lines.map((l) => [l.level, l.route, l.code]),
      [
        [50, 'test.declaresNothing', 'SIMCRED_TICKET_INVALID'],
        [50, 'hss.attachChallenge', 'SIMCRED_RECEIPT_INVALID'],
      ],
    );
  } finally {
    await client.close();
    await server.close();
  }
});

describe('every refusal a live role answers is one its route declares', () => {
  let t: TestSystem;
  const clients = new Map<string, PeerClient>();
  /** Every error answered: the route it was sent to and the code. */
  const answered: { route: string; status: number; code: string }[] = [];
  before(async () => {
    t = await startTestSystem();
  });
  after(async () => {
    for (const client of clients.values()) await client.close();
    await t.close();
  });

  const urlOf = (role: ServingRole): string => {
    const urls = t.system.urls;
    if (role === 'registration') return urls.registration[0]!;
    if (role === 'provisioning') return urls.provisioning[0]!;
    return urls[role];
  };
  const clientAs = (who: TlsRole | 'device'): PeerClient => {
    let client = clients.get(who);
    if (!client) {
      client =
        who === 'device'
          ? new PeerClient({ tls: { ca: [t.system.pki.operator.root.pem] } })
          : new PeerClient({ tls: clientTls(loadTlsIdentity(t.config.pkiDir, who)) });
      clients.set(who, client);
    }
    return client;
  };
  const allowedCaller = (route: RouteSpec): TlsRole | 'device' =>
    route.caller.kind === 'peer' ? (route.caller.roles[0] as TlsRole) : 'device';

  /** Sends to a route; an error answer must be one of its codes, with that code's status. */
  async function probe(
    route: RouteSpec,
    options: {
      path?: string;
      body?: string | Buffer;
      type?: string;
      as?: TlsRole | 'device';
      base?: string;
    } = {},
  ): Promise<{ statusCode: number; code?: string; text: string }> {
    const path =
      options.path ??
      route.path.replace(/:dsimId/, 'DSIM00000000000000AA').replace(/:sessionId/, randomUUID());
    const response = await clientAs(options.as ?? allowedCaller(route)).send(
      `${options.base ?? urlOf(route.role as ServingRole)}${path}`,
      route.method,
      options.body,
      options.type ?? 'application/json',
    );
    if (response.statusCode < 400) return response;
    const body = JSON.parse(response.text) as { code: string };
    answered.push({ route: route.id, status: response.statusCode, code: body.code });
    assert.ok(
      routeErrors(route).includes(body.code as never),
      `${route.id} answered ${body.code}: ${response.text}`,
    );
    assert.equal(response.statusCode, ERROR_CODES[body.code as keyof typeof ERROR_CODES].status, route.id);
    return { ...response, code: body.code };
  }

  // The portal's browser API checks the session before anything else (an unsigned caller learns
  // nothing of the rest); its generic refusals are asserted signed in, in test/portal/portal.test.ts.
  const every = () => SERVING_ROLES.filter((role) => role !== 'portal').flatMap((role) => routesOf(role));

  test('the generic refusals: media type, size, malformed and invalid bodies, bad paths, peer checks', async () => {
    for (const route of every()) {
      if (route.method === 'POST') {
        assert.equal(
          (await probe(route, { body: '<a/>', type: 'application/xml' })).code,
          'SIMCRED_UNSUPPORTED_MEDIA_TYPE',
        );
        const big = Buffer.alloc(4 * 1024 * 1024, 0x41);
        const type = route.bodyFormat === 'binary' ? route.media!.request! : 'application/json';
        assert.equal((await probe(route, { body: big, type })).code, 'SIMCRED_BODY_TOO_LARGE');
        if (route.bodyFormat !== 'binary') {
          assert.equal((await probe(route, { body: '{"dsimId":' })).code, 'SIMCRED_BAD_REQUEST');
          await probe(route, { body: '{"surprise":true}' });
        }
      }
      if (route.params && route.bodyFormat !== 'binary') {
        const body = route.method === 'POST' ? '{}' : undefined;
        const bad = route.path.replace(/:[A-Za-z]+/g, '..%2F..%2Fetc');
        assert.equal((await probe(route, { path: bad, body })).code, 'SIMCRED_BAD_REQUEST');
        const undecodable = route.path.replace(/:[A-Za-z]+/g, '%zz');
        assert.equal((await probe(route, { path: undecodable, body })).code, 'SIMCRED_BAD_REQUEST');
      }
      if (route.caller.kind === 'peer') {
        const body = route.method === 'POST' ? '{}' : undefined;
        assert.equal((await probe(route, { body, as: 'device' })).code, 'SIMCRED_UNAUTHENTICATED_PEER');
        const other = TLS_ROLES.find((r) => !(route.caller as { roles: string[] }).roles.includes(r))!;
        assert.equal((await probe(route, { body, as: other })).code, 'SIMCRED_FORBIDDEN_PEER');
      }
    }
  });

  test("each route's own refusals, from unknown identities to a delivery after revocation", async () => {
    const json = (value: unknown) => JSON.stringify(value);
    const dsim = 'DSIM00000000000000AB';
    const nonce = () => randomBytes(32).toString('base64url');
    const junkCertificate = Buffer.alloc(200, 7).toString('base64');
    const byId = new Map(every().map((r) => [r.id, r]));
    const route = (id: string) => byId.get(id)!;
    const expect = async (id: string, body: unknown, code: string, path?: string) =>
      assert.equal((await probe(route(id), { body: json(body), ...(path ? { path } : {}) })).code, code, id);

    await expect(
      'credentialing.openSession',
      { dsimId: dsim, deviceNonce: nonce(), sessionNonce: nonce() },
      'SIMCRED_REGISTRATION_UNKNOWN',
    );
    await expect(
      'credentialing.proveSession',
      { certificateChain: [junkCertificate], alg: 'ES256', signature: randomBytes(64).toString('base64url') },
      'SIMCRED_SESSION_UNKNOWN',
    );
    await expect(
      'credentialing.submitReceipt',
      { dsimId: dsim, receipt: 'a.b.c' },
      'SIMCRED_REGISTRATION_UNKNOWN',
    );
    await expect('credentialing.fetchPackage', { dsimId: dsim, ticket: nonce() }, 'SIMCRED_TICKET_INVALID');
    assert.equal((await probe(route('credentialing.deviceState'))).code, 'SIMCRED_REGISTRATION_UNKNOWN');
    await expect('credentialing.revokeRegistration', {}, 'SIMCRED_REGISTRATION_UNKNOWN');
    await expect(
      'registration.lookup',
      {
        dsimId: dsim,
        grant: 'a.b.c',
        challenge: nonce(),
        certificateChain: [junkCertificate],
        alg: 'ES256',
        signature: randomBytes(64).toString('base64url'),
      },
      'SIMCRED_GRANT_INVALID',
    );
    await expect('provisioning.deliver', { dsimId: dsim, ticket: nonce() }, 'SIMCRED_TICKET_INVALID');
    await expect(
      'hss.issueCredentials',
      { dsimId: dsim, generation: 1, deviceCertificate: junkCertificate, deviceNonce: nonce() },
      'SIMCRED_CERT_INVALID',
    );
    const imsi = '001020000099999';
    const rand = randomBytes(16).toString('hex');
    const auts = randomBytes(14).toString('hex');
    await expect('hss.attachChallenge', { imsi }, 'SIMCRED_AKA_SUBSCRIBER_UNKNOWN');
    await expect('hss.attachResponse', { imsi, res: 'aabbccdd' }, 'SIMCRED_AKA_SUBSCRIBER_UNKNOWN');
    await expect('hss.attachResync', { imsi, rand, auts }, 'SIMCRED_AKA_SUBSCRIBER_UNKNOWN');
    await expect('phlr.challenge', { pimsi: imsi }, 'SIMCRED_AKA_SUBSCRIBER_UNKNOWN');
    await expect('phlr.response', { pimsi: imsi, res: 'aabbccdd' }, 'SIMCRED_AKA_SUBSCRIBER_UNKNOWN');
    await expect('phlr.resync', { pimsi: imsi, rand, auts }, 'SIMCRED_AKA_SUBSCRIBER_UNKNOWN');

    // Two real devices: one revoked once referred (its delivery is then a 410), one with a bad chain.
    const dsimIds = await t.manufacture(2);
    const summary = await t.register(dsimIds);
    assert.equal(summary.registered, 2);
    const agents = await Promise.all(
      dsimIds.map(async (dsimId) => {
        const image = await loadFactoryImage(t.config.pkiDir, dsimId);
        return new DeviceAgent({
          module: TrustedModule.fromFactoryImage(image, { persist: false }),
          client: clientAs('device'),
          registrationServer: image.image.registrationServer,
          phlrUrl: t.system.urls.phlr,
          hssUrl: t.system.urls.hss,
          operatorRoots: [new x509.X509Certificate(image.image.trustRoots.operator)],
          ocsp: ocspStatusChecker({ urls: [t.system.urls.ocsp] }),
          maxAttempts: 1,
        });
      }),
    );
    const registration = await agents[0]!.lookupRegistration();
    const referral = await agents[0]!.proveSession(registration, await agents[0]!.openSession(registration));
    await t.operator.revoke(t.system.urls.credentialing, dsimIds[0]!, 'test');
    assert.equal(
      (
        await probe(route('provisioning.deliver'), {
          body: json({ dsimId: dsimIds[0], ticket: referral.ticket }),
          // The server the device was referred to (the policy picks one of the two).
          base: referral.provisioningUrl,
        })
      ).code,
      'SIMCRED_REGISTRATION_REVOKED',
    );

    const second = await agents[1]!.lookupRegistration();
    const session = await agents[1]!.openSession(second);
    const replay = { dsimId: dsimIds[1], deviceNonce: nonce(), sessionNonce: nonce() };
    assert.ok(
      ['SIMCRED_SESSION_IN_PROGRESS', 'SIMCRED_SESSION_NONCE_INVALID'].includes(
        (await probe(route('credentialing.openSession'), { body: json(replay) })).code!,
      ),
    );
    await expect(
      'credentialing.proveSession',
      { certificateChain: [junkCertificate], alg: 'ES256', signature: randomBytes(64).toString('base64url') },
      'SIMCRED_CERT_INVALID',
      `/v1/sessions/${session.sessionId}/proof`,
    );
  });

  test('no role answered a code its route does not declare, and none logged one', () => {
    assert.ok(answered.length > 80, `${answered.length} refusals driven`);
    const { servers } = t.system;
    const all = [
      servers.ocsp,
      servers.hss,
      servers.phlr,
      servers.credentialing,
      ...servers.registration,
      ...servers.provisioning,
    ];
    for (const server of all) assert.deepEqual(server.undeclaredErrors(), []);
    assert.ok(!t.logs().includes('undeclared error code'));
  });
});
