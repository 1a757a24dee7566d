import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { PeerClient, clientTls, loadTlsIdentity } from '../../src/http/index.js';
import { initPki, loadFactoryImage, TLS_ROLES, type TlsRole } from '../../src/pki/index.js';
import { ALL_ROUTES, type Role, type RouteSpec } from '../../src/protocol/index.js';
import { openSession } from '../../src/protocol/credentialing.js';
import { issueCredentials } from '../../src/protocol/hss.js';
import { isSimcredError } from '../../src/errors/index.js';
import { tempDir } from '../helpers/cli.js';
import { expectRefusal, rejectsWith, type HttpAnswer } from '../helpers/assert.js';
import { forgeDeviceCertificate } from './forgery.js';
import { startTestSystem, type TestSystem } from './harness.js';

/**
 * DESIGN §4.4 end to end: every peer route, called by every kind of caller that may not call it,
 * answers with the error contract's refusal; the HSS refuses what it cannot bind; a client refuses a
 * server whose certificate does not name the host it dialled.
 */
describe('refusals between servers', () => {
  let t: TestSystem;
  const rogue = tempDir('simcred-rogue-pki-');
  const clients = new Map<string, PeerClient>();

  before(async () => {
    t = await startTestSystem();
    await initPki(rogue.path);
  });
  after(async () => {
    for (const client of clients.values()) await client.close();
    await t.close();
    rogue.cleanup();
  });

  /** A client presenting the operator-issued TLS certificate of `role` (of the rogue PKI when asked). */
  function clientOf(role: TlsRole, pkiDir = t.config.pkiDir): PeerClient {
    const key = `${pkiDir}:${role}`;
    let client = clients.get(key);
    if (!client) {
      const identity = loadTlsIdentity(pkiDir, role);
      // Trusts this system's root (to reach its servers) whatever PKI its own certificate is from.
      client = new PeerClient({
        tls: { ...clientTls(identity), ca: [t.system.pki.operator.root.pem] },
      });
      clients.set(key, client);
    }
    return client;
  }

  function baseUrl(role: Role): string {
    const urls = t.system.urls as unknown as Record<string, string | string[]>;
    const url = urls[role]!;
    return Array.isArray(url) ? url[0]! : url;
  }

  /** The route with any well-formed body: the caller check must answer before the body matters. */
  function call(client: PeerClient, route: RouteSpec): Promise<HttpAnswer> {
    const path = route.path.replace(/:[A-Za-z]+/g, 'DSIM0000000000000000');
    const url = `${baseUrl(route.role)}${path}`;
    if (route.method === 'GET') return client.send(url, 'GET', undefined, '');
    if (route.bodyFormat === 'ndjson') return client.send(url, route.method, '', 'application/x-ndjson');
    return client.send(url, route.method, '{}', 'application/json');
  }

  const peerRoutes: RouteSpec[] = ALL_ROUTES.filter((r) => r.caller.kind === 'peer');
  /** The roles a peer route allows. */
  const allowed = (route: RouteSpec): Role[] => (route.caller.kind === 'peer' ? route.caller.roles : []);

  test('every peer route: no client certificate is SIMCRED_UNAUTHENTICATED_PEER', async () => {
    assert.ok(peerRoutes.length >= 7, `only ${peerRoutes.length} peer routes`);
    for (const route of peerRoutes) {
      expectRefusal(await call(t.deviceClient, route), 'SIMCRED_UNAUTHENTICATED_PEER', new RegExp(route.id));
    }
  });

  test('every peer route: a certificate of another operator’s PKI is SIMCRED_UNAUTHENTICATED_PEER', async () => {
    for (const route of peerRoutes) {
      // The rogue certificate names a role the route allows: only its issuer is wrong.
      const answer = await call(clientOf(allowed(route)[0] as TlsRole, rogue.path), route);
      expectRefusal(answer, 'SIMCRED_UNAUTHENTICATED_PEER', new RegExp(route.id));
    }
  });

  test('every peer route: a genuine certificate of a role not allowed there is SIMCRED_FORBIDDEN_PEER', async () => {
    let refused = 0;
    for (const route of peerRoutes) {
      for (const role of TLS_ROLES.filter((r) => !allowed(route).includes(r))) {
        expectRefusal(
          await call(clientOf(role), route),
          'SIMCRED_FORBIDDEN_PEER',
          new RegExp(`simcred-${role}`),
        );
        refused++;
      }
      // The allowed role gets past the caller check (to the body's checks, or to its answer).
      for (const role of allowed(route)) {
        const answer = await call(clientOf(role as TlsRole), route);
        assert.doesNotMatch(
          answer.text,
          /SIMCRED_(FORBIDDEN|UNAUTHENTICATED)_PEER/,
          `${route.id} as ${role}`,
        );
      }
    }
    assert.ok(refused >= peerRoutes.length * (TLS_ROLES.length - 2), `only ${refused} refusals`);
  });

  test('unknown paths and methods on every role: SIMCRED_NOT_FOUND', async () => {
    for (const role of ['credentialing', 'registration', 'hss', 'provisioning', 'phlr'] as Role[]) {
      expectRefusal(
        await t.deviceClient.send(`${baseUrl(role)}/v1/nothing-here`, 'GET', undefined, ''),
        'SIMCRED_NOT_FOUND',
      );
      // A declared path with a method it does not serve is no route either.
      expectRefusal(
        await t.deviceClient.send(`${baseUrl(role)}/health`, 'DELETE', undefined, ''),
        'SIMCRED_NOT_FOUND',
      );
    }
  });

  describe('the HSS (step 5), called as the credentialing server', () => {
    const issue = (body: { dsimId: string; deviceCertificate: string; deviceNonce: string }) =>
      clientOf('credentialing').send(
        `${t.system.urls.hss}${issueCredentials.path}`,
        'POST',
        JSON.stringify({ ...body, generation: 1 }),
        'application/json',
      );
    const nonce = () => randomBytes(32).toString('base64url');

    test('not a certificate, another device’s certificate, another key for a bound DSIM_ID', async () => {
      const [a, b] = await t.manufacture(2);
      const imageA = await loadFactoryImage(t.config.pkiDir, a!);
      const imageB = await loadFactoryImage(t.config.pkiDir, b!);
      const der = (image: typeof imageA) => Buffer.from(image.certificate.raw).toString('base64');

      expectRefusal(
        await issue({
          dsimId: a!,
          deviceCertificate: randomBytes(300).toString('base64'),
          deviceNonce: nonce(),
        }),
        'SIMCRED_CERT_INVALID',
      );
      expectRefusal(
        await issue({ dsimId: a!, deviceCertificate: der(imageB), deviceNonce: nonce() }),
        'SIMCRED_CERT_DSIM_MISMATCH',
      );
      assert.equal(await t.subscriber(a!), undefined);

      // The genuine certificate binds A's key to A's IMSI; a retry lands on the same IMSI.
      const first = await issue({ dsimId: a!, deviceCertificate: der(imageA), deviceNonce: nonce() });
      assert.equal(first.statusCode, 200, first.text);
      const { imsi } = JSON.parse(first.text) as { imsi: string };
      // A second certificate for A (issued by the genuine CA) with another key.
      const clone = await forgeDeviceCertificate(t.config.pkiDir, a!);
      expectRefusal(
        await issue({ dsimId: a!, deviceCertificate: clone.certificateChain[0]!, deviceNonce: nonce() }),
        'SIMCRED_DEVICE_KEY_MISMATCH',
      );
      const again = await issue({ dsimId: a!, deviceCertificate: der(imageA), deviceNonce: nonce() });
      assert.equal((JSON.parse(again.text) as { imsi: string }).imsi, imsi);
      assert.equal((await t.subscriber(a!))!.imsi, imsi);
    });
  });

  describe('a server certificate that does not name the host dialled', () => {
    let forwarder: Server;
    let forwardedUrl: string;
    const sockets = new Set<Socket>();

    before(async () => {
      // A TCP relay on another loopback address to the genuine credentialing server: the TLS session
      // is the server's own, only the name the client dialled differs (127.0.0.2 is not in its SAN).
      const target = new URL(t.system.urls.credentialing);
      forwarder = createServer((inbound) => {
        const outbound = connect(Number(target.port), target.hostname);
        sockets.add(inbound).add(outbound);
        inbound.pipe(outbound).pipe(inbound);
        const drop = () => {
          inbound.destroy();
          outbound.destroy();
        };
        inbound.on('error', drop).on('close', drop);
        outbound.on('error', drop).on('close', drop);
      });
      await new Promise<void>((resolve) => forwarder.listen(0, '127.0.0.2', resolve));
      const { port } = forwarder.address() as { port: number };
      forwardedUrl = `https://127.0.0.2:${port}`;
    });
    after(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => forwarder.close(resolve));
    });

    const body = {
      dsimId: 'DSIM0000000000000000',
      deviceNonce: randomBytes(32).toString('base64url'),
      sessionNonce: randomBytes(32).toString('base64url'),
    };

    /** The refusal the client reports, and the TLS error under it. */
    async function refusedByTls(promise: Promise<unknown>, tlsCode: string): Promise<void> {
      await rejectsWith(promise, 'SIMCRED_DEPENDENCY_UNAVAILABLE');
      await promise.catch((err: unknown) => {
        assert.ok(isSimcredError(err));
        assert.equal((err.cause as { code?: string } | undefined)?.code, tlsCode, String(err.cause));
      });
    }

    test('the client refuses the connection (SIMCRED_DEPENDENCY_UNAVAILABLE from ERR_TLS_CERT_ALTNAME_INVALID)', async () => {
      await refusedByTls(
        t.deviceClient.call(forwardedUrl, openSession, { body }),
        'ERR_TLS_CERT_ALTNAME_INVALID',
      );
      // A peer with its client certificate refuses it just the same.
      await refusedByTls(
        clientOf('provisioning').call(forwardedUrl, openSession, { body }),
        'ERR_TLS_CERT_ALTNAME_INVALID',
      );
      // Through the same relay, asking for a name the certificate carries, the handshake succeeds: what
      // was refused is the name, not the relay.
      const { port } = new URL(forwardedUrl);
      const socket = tlsConnect({
        host: '127.0.0.2',
        port: Number(port),
        servername: 'localhost',
        ca: [t.system.pki.operator.root.pem],
      });
      try {
        await once(socket, 'secureConnect');
        assert.ok(socket.authorized, String(socket.authorizationError));
      } finally {
        socket.destroy();
      }
    });

    test('a server certificate from another operator root: the client refuses it', async () => {
      const stranger = new PeerClient({ tls: { ca: [loadTlsIdentity(rogue.path, 'credentialing').ca[0]!] } });
      try {
        await refusedByTls(
          stranger.call(t.system.urls.credentialing, openSession, { body }),
          'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
        );
      } finally {
        await stranger.close();
      }
    });
  });
});
