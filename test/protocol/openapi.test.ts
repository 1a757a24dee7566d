import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import * as x509 from '../../src/crypto/x509.js';
import { DeviceAgent } from '../../src/device/agent.js';
import { TrustedModule } from '../../src/device/trusted-module.js';
import { clientTls, loadTlsIdentity } from '../../src/http/index.js';
import { buildOcspRequest, decodeGetPath } from '../../src/ocsp/index.js';
import { ocspStatusChecker } from '../../src/ocsp/checker.js';
import { loadFactoryImage, readManifest, type TlsRole } from '../../src/pki/index.js';
import { SERVING_ROLES, routeErrors, routesOf, type ServingRole } from '../../src/protocol/index.js';
import { defaultServerUrls, openApiDocument, type OpenApiDocument } from '../../src/protocol/openapi.js';
import { startTestSystem, type TestSystem } from '../flow/harness.js';
import { OpenApiChecker, RecordingClient, type Exchange } from './exchanges.js';

const committed = (role: ServingRole) =>
  JSON.parse(readFileSync(`docs/openapi/${role}.json`, 'utf8')) as OpenApiDocument;

test('docs/openapi/<role>.json are generated from the route specs (npm run docs:openapi)', () => {
  for (const role of SERVING_ROLES) assert.deepEqual(committed(role), openApiDocument(role), role);
});

test('every document is valid OpenAPI 3.1 (@seriousme/openapi-schema-validator)', async () => {
  for (const role of SERVING_ROLES) {
    const validator = new Validator();
    const result = await validator.validate(openApiDocument(role));
    assert.equal(result.valid, true, `${role}: ${JSON.stringify(result.errors)}`);
    assert.equal(validator.version, '3.1');
  }
});

test('each document has every route of its role, its complete error codes, mutual TLS on peer routes', () => {
  const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
  for (const role of SERVING_ROLES) {
    const document = openApiDocument(role);
    assert.equal(document.info.version, version);
    assert.deepEqual(
      document.servers.map((s) => s.url),
      defaultServerUrls(role),
    );
    for (const route of routesOf(role)) {
      const operation = document.paths[route.path.replace(/:([A-Za-z]+)/g, '{$1}')]?.[
        route.method.toLowerCase()
      ] as
        | {
            operationId: string;
            security: unknown[];
            responses: Record<
              string,
              { content?: Record<string, { schema: { properties: { code: { enum: string[] } } } }> }
            >;
          }
        | undefined;
      assert.ok(operation, `${route.id} missing`);
      assert.equal(operation.operationId, route.id);
      const documented = Object.entries(operation.responses)
        .filter(([status]) => status !== '200')
        .flatMap(([, r]) => r.content!['application/json']!.schema.properties.code.enum);
      assert.deepEqual(documented.sort(), routeErrors(route).sort(), route.id);
      assert.deepEqual(operation.security, route.caller.kind === 'peer' ? [{ mutualTLS: [] }] : [], route.id);
    }
  }
});

test('/health and /openapi.json can never be an RFC 5019 GET request at the OCSP responder', () => {
  assert.equal(decodeGetPath('/health'), undefined);
  assert.equal(decodeGetPath('/openapi.json'), undefined);
  // Every DER OCSPRequest is a SEQUENCE (0x30): its base64 starts with "M", in either alphabet.
  for (let i = 0; i < 20; i++) {
    const der = Buffer.concat([Buffer.from([0x30]), randomBytes(1 + i * 7)]);
    assert.equal(der.toString('base64')[0], 'M');
    assert.equal(der.toString('base64url')[0], 'M');
  }
});

describe('the live roles agree with their OpenAPI documents', () => {
  let t: TestSystem;
  const served = new Map<ServingRole, OpenApiDocument>();
  const clients: RecordingClient[] = [];
  before(async () => {
    t = await startTestSystem();
  });
  after(async () => {
    for (const client of clients) await client.close();
    await t.close();
  });

  const urlOf = (role: ServingRole): string => {
    const urls = t.system.urls;
    if (role === 'registration') return urls.registration[0]!;
    if (role === 'provisioning') return urls.provisioning[0]!;
    return urls[role];
  };
  const deviceClient = () => {
    const client = new RecordingClient({ tls: { ca: [t.system.pki.operator.root.pem] } });
    clients.push(client);
    return client;
  };
  const peerClient = (role: TlsRole) => {
    const client = new RecordingClient({ tls: clientTls(loadTlsIdentity(t.config.pkiDir, role)) });
    clients.push(client);
    return client;
  };

  test('GET /openapi.json on each role is the committed document, with its own URL as the server', async () => {
    const client = deviceClient();
    for (const role of SERVING_ROLES) {
      const response = await client.send(`${urlOf(role)}/openapi.json`, 'GET', undefined, '');
      assert.equal(response.statusCode, 200, role);
      const document = JSON.parse(response.text) as OpenApiDocument;
      assert.deepEqual(document.servers, [{ url: urlOf(role) }], role);
      assert.deepEqual({ ...document, servers: committed(role).servers }, committed(role), role);
      served.set(role, document);
    }
  });

  test('one request per route: each request and answer matches the served document', async () => {
    assert.equal(served.size, SERVING_ROLES.length, 'the documents were fetched');
    const device = deviceClient();
    const portal = peerClient('portal');
    const credentialing = peerClient('credentialing');
    const provisioning = peerClient('provisioning');
    const { urls } = t.system;

    for (const role of SERVING_ROLES) await device.send(`${urlOf(role)}/health`, 'GET', undefined, '');

    // Step 0b, as the operator's portal streams it.
    const dsimIds = await t.manufacture(3);
    const batch = dsimIds
      .slice(0, 2)
      .map((dsimId, i) => JSON.stringify({ dsimId, registrationServer: urls.registration[i % 2] }))
      .join('\n');
    const registered = await portal.send(
      `${urls.credentialing}/v1/operator/registrations`,
      'POST',
      `${batch}\n`,
      'application/x-ndjson',
    );
    assert.equal(registered.statusCode, 200, registered.text);
    const get = (client: RecordingClient, url: string) => client.send(url, 'GET', undefined, '');
    const post = (client: RecordingClient, url: string, body: unknown) =>
      client.send(url, 'POST', JSON.stringify(body), 'application/json');

    // Steps 1–12 of a real device, every message through the recording client.
    const image = await loadFactoryImage(t.config.pkiDir, dsimIds[0]!);
    const module = TrustedModule.fromFactoryImage(image, { persist: false });
    const agent = new DeviceAgent({
      module,
      client: device,
      registrationServer: image.image.registrationServer,
      phlrUrl: urls.phlr,
      hssUrl: urls.hss,
      operatorRoots: [new x509.X509Certificate(image.image.trustRoots.operator)],
      ocsp: ocspStatusChecker({ urls: [urls.ocsp] }),
      maxAttempts: 1,
    });
    const { subscription } = await agent.onboard();

    const done = async (response: Promise<{ statusCode: number; text: string }>, status: number) => {
      const { statusCode, text } = await response;
      assert.equal(statusCode, status, text);
    };
    await done(get(portal, `${urls.credentialing}/v1/operator/devices/${dsimIds[0]}`), 200);
    await done(post(portal, `${urls.credentialing}/v1/operator/devices/${dsimIds[1]}/revoke`, {}), 200);
    await done(get(portal, `${urls.credentialing}/v1/operator/events?after=0&limit=50&waitSeconds=0`), 200);
    await done(get(credentialing, `${urls.hss}/v1/subscribers/events?after=0&waitSeconds=0`), 200);
    // Orders and webhooks (issue 14).
    const { orderId } = JSON.parse(registered.text.trim().split('\n').pop()!) as { orderId: string };
    await done(get(portal, `${urls.credentialing}/v1/operator/orders?limit=10`), 200);
    await done(get(portal, `${urls.credentialing}/v1/operator/orders/${orderId}`), 200);
    await done(
      post(portal, `${urls.credentialing}/v1/operator/orders/${orderId}/cancel`, { reason: 'test' }),
      200,
    );
    const hook = await post(portal, `${urls.credentialing}/v1/operator/webhooks`, {
      url: 'https://ops.example.net/hook',
    });
    assert.equal(hook.statusCode, 200, hook.text);
    const webhookId = (JSON.parse(hook.text) as { webhook: { id: string } }).webhook.id;
    await done(get(portal, `${urls.credentialing}/v1/operator/webhooks`), 200);
    await done(get(portal, `${urls.credentialing}/v1/operator/webhooks/deliveries?failed=true&limit=5`), 200);
    await done(
      portal.send(`${urls.credentialing}/v1/operator/webhooks/${webhookId}`, 'DELETE', undefined, ''),
      200,
    );
    await done(post(portal, `${urls.phlr}/v1/subscribers/import`, {}), 200);
    const stray = 'DSIM00000000000000FF';
    await done(
      post(credentialing, `${urls.registration[0]}/v1/registrations`, {
        registrations: [
          {
            dsimId: stray,
            registrationNonce: randomBytes(32).toString('base64url'),
            credentialingUrl: urls.credentialing,
            expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
          },
        ],
      }),
      200,
    );
    await done(
      post(credentialing, `${urls.registration[0]}/v1/registrations/withdraw`, { dsimIds: [stray] }),
      200,
    );
    const third = await loadFactoryImage(t.config.pkiDir, dsimIds[2]!);
    await done(
      post(credentialing, `${urls.hss}/v1/credentials`, {
        dsimId: dsimIds[2],
        generation: 1,
        deviceCertificate: TrustedModule.fromFactoryImage(third, { persist: false }).certificateChain[0],
        deviceNonce: randomBytes(32).toString('base64url'),
      }),
      200,
    );
    await done(
      post(credentialing, `${urls.hss}/v1/subscribers/release`, { dsimIds: [stray], reason: 'revoked' }),
      200,
    );
    await done(
      post(credentialing, `${urls.provisioning[0]}/v1/referrals`, {
        dsimId: stray,
        ticketDigest: randomBytes(32).toString('base64url'),
        credentialingUrl: urls.credentialing,
        expiresAt: new Date(Date.now() + 600_000).toISOString(),
      }),
      200,
    );
    // OMA DM (docs/omadm.md): a Package 1 without credentials is answered in SyncML (Status 407), and
    // a Package 0 for the referred device goes to an SMS stand-in address (nothing listens there).
    const omadmUri = `${urls.provisioning[0]}/v1/omadm`;
    await done(
      device.send(
        omadmUri,
        'POST',
        `<SyncML xmlns="SYNCML:SYNCML1.2"><SyncHdr><VerDTD>1.2</VerDTD><VerProto>DM/1.2</VerProto><SessionID>1</SessionID><MsgID>1</MsgID><Target><LocURI>${omadmUri}</LocURI></Target><Source><LocURI>${stray}</LocURI></Source></SyncHdr><SyncBody><Alert><CmdID>1</CmdID><Data>1201</Data></Alert><Final/></SyncBody></SyncML>`,
        'application/vnd.syncml.dm+xml',
      ),
      200,
    );
    await done(
      post(credentialing, `${urls.provisioning[0]}/v1/omadm/notifications`, {
        dsimId: stray,
        smsAddress: 'udp://127.0.0.1:9',
      }),
      200,
    );
    // Enrollment groups: enrol the device CA, list, a registration server's admission, the push, close.
    const manifest = readManifest(t.config.pkiDir);
    const group = await post(portal, `${urls.credentialing}/v1/operator/groups`, {
      name: 'openapi',
      caCertificate: readFileSync(join(t.config.pkiDir, manifest.manufacturer.deviceCa.cert), 'utf8'),
      dsimPattern: dsimIds[2],
      registrationServers: [urls.registration[0]],
    });
    assert.equal(group.statusCode, 200, group.text);
    const groupId = (JSON.parse(group.text) as { id: string }).id;
    await done(get(portal, `${urls.credentialing}/v1/operator/groups`), 200);
    await done(
      post(peerClient('registration'), `${urls.credentialing}/v1/groups/${groupId}/admissions`, {
        dsimId: dsimIds[2],
        certificateChain: TrustedModule.fromFactoryImage(third, { persist: false }).certificateChain,
        registrationServer: urls.registration[0],
      }),
      200,
    );
    await done(
      post(credentialing, `${urls.registration[0]}/v1/groups`, {
        groups: [
          {
            groupId: 'grp_00000000000000ff',
            caSha256: '0'.repeat(64),
            dsimPattern: null,
            credentialingUrl: urls.credentialing,
            active: false,
          },
        ],
      }),
      200,
    );
    await done(
      portal.send(`${urls.credentialing}/v1/operator/groups/${groupId}/close`, 'POST', undefined, ''),
      200,
    );
    // Documented refusals where a success would need state a real flow has already used up.
    await done(
      post(provisioning, `${urls.credentialing}/v1/provisioning/packages`, {
        dsimId: dsimIds[0],
        ticket: randomBytes(32).toString('base64url'),
      }),
      409,
    );
    const rand = randomBytes(16).toString('hex');
    const auts = randomBytes(14).toString('hex');
    await done(post(device, `${urls.hss}/v1/attach/resync`, { imsi: subscription.imsi, rand, auts }), 409);
    await done(post(device, `${urls.phlr}/v1/aka/resync`, { pimsi: module.pimsi, rand, auts }), 409);
    // The subscription's lifecycle, once the attach routes are done with the device's subscriber.
    const operatorDevice = `${urls.credentialing}/v1/operator/devices/${dsimIds[0]}`;
    await done(post(portal, `${operatorDevice}/suspend`, { reason: 'test' }), 200);
    await done(post(portal, `${operatorDevice}/resume`, {}), 200);
    await done(post(portal, `${operatorDevice}/reprovision`, { reason: 'test' }), 200);
    // The order allows the operator only: a device's own request, passed on, is refused.
    await done(
      post(peerClient('registration'), `${urls.credentialing}/v1/reprovision-requests`, {
        dsimId: dsimIds[0],
        certificateChain: module.certificateChain,
        registrationServer: image.image.registrationServer,
      }),
      403,
    );
    await done(post(portal, `${operatorDevice}/delete`, {}), 200);
    for (const action of ['suspend', 'resume', 'delete'])
      await done(post(credentialing, `${urls.hss}/v1/subscribers/${action}`, { dsimIds: [stray] }), 200);
    // Operator change: the device was deleted just now, so A refuses to hand it over (documented) and
    // knows no transfer to confirm; a statement pushed to the registration server is fetched.
    await done(
      post(portal, `${operatorDevice}/transfer`, {
        toOperatorRoot: t.system.pki.operator.root.pem,
        toRegistrationServers: [urls.registration[1]],
        toServers: { ocsp: urls.ocsp, hss: urls.hss },
      }),
      410,
    );
    const transferId = `trf_${randomBytes(16).toString('base64url')}`;
    // The HSS signs a statement for the third device, whose subscriber it made above.
    await done(
      post(credentialing, `${urls.hss}/v1/transfers/statements`, {
        dsimId: dsimIds[2],
        transferId,
        newOperatorRoot: t.system.pki.operator.root.pem,
        newRegistrationServers: [urls.registration[1]],
        newServers: { ocsp: urls.ocsp, hss: urls.hss },
        confirmUrl: urls.credentialing,
        ttlSeconds: 3600,
      }),
      200,
    );
    await done(
      post(device, `${urls.credentialing}/v1/transfers/confirmation`, {
        dsimId: dsimIds[0],
        transferId,
        packageId: 'pkg-1',
        alg: 'ES256',
        signature: randomBytes(64).toString('base64url'),
      }),
      404,
    );
    await done(
      post(credentialing, `${urls.registration[0]}/v1/transfers`, {
        statements: [{ dsimId: dsimIds[0], transferId, statement: 'e30.e30.c2ln' }],
      }),
      200,
    );
    const fetchChallenge = JSON.parse(
      (await post(device, `${urls.registration[0]}/v1/lookup/challenge`, { dsimId: dsimIds[0] })).text,
    ) as { challenge: string };
    await done(
      post(device, `${urls.registration[0]}/v1/transfers/fetch`, {
        dsimId: dsimIds[0],
        grant: await agent.accessGrant(),
        challenge: fetchChallenge.challenge,
        certificateChain: module.certificateChain,
        ...module.signTransferFetch(Buffer.from(fetchChallenge.challenge, 'base64url')),
      }),
      200,
    );

    // OCSP, both bindings, about the device's own certificate.
    const [leaf, issuer] = module.certificateChain.map((c) => Buffer.from(c, 'base64'));
    const request = buildOcspRequest({ certificate: leaf!, issuer: issuer!, nonce: false }).der;
    await done(device.send(urls.ocsp, 'POST', request, 'application/ocsp-request'), 200);
    await done(get(device, `${urls.ocsp}/${encodeURIComponent(request.toString('base64'))}`), 200);

    const exchanges: Exchange[] = clients.flatMap((c) => c.exchanges);
    const checkers = new Map(SERVING_ROLES.map((role) => [role, new OpenApiChecker(served.get(role)!)]));
    const roleOf = (url: string): ServingRole => {
      const origin = new URL(url).origin;
      for (const role of SERVING_ROLES) {
        const all =
          role === 'registration'
            ? urls.registration
            : role === 'provisioning'
              ? urls.provisioning
              : [urls[role]];
        if (all.some((u) => new URL(u).origin === origin)) return role;
      }
      throw new Error(`no role at ${url}`);
    };
    const problems = exchanges.flatMap((e) => checkers.get(roleOf(e.url))!.check(e));
    assert.deepEqual(problems, []);
    // One request per route at least, on every role.
    const answered = new Set(exchanges.map((e) => checkers.get(roleOf(e.url))!.operationOf(e)));
    // The portal's browser API (session cookies) is checked against its document the same way, route
    // by route, in test/portal/portal.test.ts.
    for (const role of SERVING_ROLES.filter((r) => r !== 'portal'))
      for (const route of routesOf(role))
        assert.ok(
          answered.has(route.id),
          `no request reached ${route.id}: a new route needs its request in this test`,
        );
  });
});
