import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { fromBase64url, sealPackage } from '../../src/crypto/index.js';
import { PeerClient, clientTls, loadTlsIdentity, mountRoute, startRoleServer } from '../../src/http/index.js';
import type { RunningServer } from '../../src/http/index.js';
import { toPem } from '../../src/pki/index.js';
import { proveSession } from '../../src/protocol/credentialing.js';
import { issueCredentials } from '../../src/protocol/hss.js';
import type { BodyOf, ResponseOf } from '../../src/protocol/index.js';
import { startRole } from '../../src/system/roles.js';
import { expectAudited, expectRefusal, rejectsWith } from '../helpers/assert.js';
import { startTestSystem, type TestSystem } from './harness.js';

type IssueBody = BodyOf<typeof issueCredentials>;
type Issued = ResponseOf<typeof issueCredentials>;

/**
 * What the HSS hands back (step 5) is checked twice: by the credentialing server before it refers the
 * device (signer, chain, binding, expiry), and by the device before it decrypts. Here the HSS is
 * replaced, on its own port and with its own TLS identity, by one that answers with bad packages; then
 * the genuine HSS returns with a range of one IMSI.
 */
describe('refusals of what the HSS answers (step 5) and of an exhausted IMSI range', () => {
  let t: TestSystem;
  let devices: string[];
  let next = 0;
  const fresh = () => devices[next++]!;
  let hssPort: number;
  let rogueHss: RunningServer | undefined;
  let genuineHss: RunningServer | undefined;
  /** What the HSS on the HSS's port answers, per test. */
  let answer: (body: IssueBody) => Promise<Issued>;

  before(async () => {
    t = await startTestSystem({ registration: { ttlSeconds: 3600 }, hss: { capacity: 1 } });
    devices = await t.manufacture(12);
    await t.register(devices);
    hssPort = Number(new URL(t.system.urls.hss).port);
    await t.system.servers.hss.close();
    rogueHss = await startRoleServer({
      role: 'hss',
      host: t.config.host,
      port: hssPort,
      logger: t.logger,
      tls: loadTlsIdentity(t.config.pkiDir, 'hss'),
      mount: (app) => mountRoute(app, issueCredentials, ({ body }) => answer(body)),
    });
  });
  after(async () => {
    await rogueHss?.close();
    await genuineHss?.close();
    await t.close();
  });

  /** A package as the genuine HSS would make it, with any of its inputs changed. */
  function seal(
    body: IssueBody,
    changes: Partial<Parameters<typeof sealPackage>[0]> = {},
  ): Promise<Issued & { packageId: string }> {
    const signer = t.system.pki.operator.packageSigner;
    const packageId = randomUUID();
    return sealPackage({
      credentials: {
        imsi: '001029999999999',
        k: randomBytes(16).toString('hex'),
        opc: randomBytes(16).toString('hex'),
        amf: '8000',
        sqn: '000000000000',
        plmn: '00102',
      },
      dsimId: body.dsimId,
      deviceNonce: Buffer.from(body.deviceNonce, 'base64url'),
      devicePublicKey: toPem(Buffer.from(body.deviceCertificate, 'base64')),
      operatorSigningKey: signer.privateKey(),
      operatorChainPem: [signer.pem, t.system.pki.operator.operatorCa.pem],
      ttlSeconds: 600,
      packageId,
      ...changes,
    }).then((pkg) => ({ imsi: '001029999999999', packageId, package: pkg }));
  }

  /**
   * A device's proof against the HSS of the moment: the device's raw answer and the operator's view
   * of it afterwards, with nothing referred. When the credentialing server refuses the HSS's answer,
   * the device is told to retry later (the HSS is its dependency) and the code is in the audit trail.
   */
  async function proveAgainstThisHss() {
    const dsimId = fresh();
    const { agent, module } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const session = await agent.openSession(registration);
    const proof = module.signProof({
      challenge: fromBase64url(session.challenge),
      sessionNonce: session.sessionNonce,
    });
    const answered = await t.deviceClient.send(
      `${registration.credentialingUrl}${proveSession.path.replace(':sessionId', session.sessionId)}`,
      'POST',
      JSON.stringify({ certificateChain: module.certificateChain, ...proof }),
      'application/json',
    );
    const state = await t.operator.deviceState(t.system.urls.credentialing, dsimId);
    assert.equal(state.state, 'registered');
    assert.equal(state.provisioningServer, null);
    return { answered, state };
  }

  test('signed by a key the operator CA certified for TLS, not for packages: SIMCRED_PACKAGE_CHAIN_INVALID', async () => {
    const tls = t.system.pki.operator.tls.hss;
    answer = (body) =>
      seal(body, {
        operatorSigningKey: tls.privateKey(),
        operatorChainPem: [tls.pem, t.system.pki.operator.operatorCa.pem],
      });
    const { answered, state } = await proveAgainstThisHss();
    expectRefusal(answered, 'SIMCRED_DEPENDENCY_UNAVAILABLE', /SIMCRED_PACKAGE_CHAIN_INVALID/);
    expectAudited(state, 'failed', 'SIMCRED_PACKAGE_CHAIN_INVALID');
  });

  test('altered after signing: SIMCRED_PACKAGE_SIGNATURE_INVALID', async () => {
    answer = async (body) => {
      const issued = await seal(body);
      const [header, payload, signature] = issued.package.split('.') as [string, string, string];
      const flipped = payload.slice(0, 40) + (payload[40] === 'A' ? 'B' : 'A') + payload.slice(41);
      return { ...issued, package: `${header}.${flipped}.${signature}` };
    };
    const { answered, state } = await proveAgainstThisHss();
    expectRefusal(answered, 'SIMCRED_DEPENDENCY_UNAVAILABLE', /SIMCRED_PACKAGE_SIGNATURE_INVALID/);
    expectAudited(state, 'failed', 'SIMCRED_PACKAGE_SIGNATURE_INVALID');
  });

  test('bound to another device nonce: SIMCRED_PACKAGE_BINDING_MISMATCH', async () => {
    answer = (body) => seal(body, { deviceNonce: randomBytes(32) });
    const { answered, state } = await proveAgainstThisHss();
    expectRefusal(answered, 'SIMCRED_DEPENDENCY_UNAVAILABLE', /SIMCRED_PACKAGE_BINDING_MISMATCH/);
    expectAudited(state, 'failed', 'SIMCRED_PACKAGE_BINDING_MISMATCH');
  });

  test('past its exp: SIMCRED_PACKAGE_EXPIRED', async () => {
    answer = (body) => seal(body, { now: new Date(Date.now() - 2 * 3600_000), ttlSeconds: 600 });
    const { answered, state } = await proveAgainstThisHss();
    expectRefusal(answered, 'SIMCRED_DEPENDENCY_UNAVAILABLE', /SIMCRED_PACKAGE_EXPIRED/);
    expectAudited(state, 'failed', 'SIMCRED_PACKAGE_EXPIRED');
  });

  test('not a simcred package: SIMCRED_PACKAGE_MALFORMED', async () => {
    answer = async (body) => {
      const issued = await seal(body);
      const [, payload, signature] = issued.package.split('.') as [string, string, string];
      const header = Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'JWT' })).toString('base64url');
      return { ...issued, package: `${header}.${payload}.${signature}` };
    };
    const { answered, state } = await proveAgainstThisHss();
    expectRefusal(answered, 'SIMCRED_DEPENDENCY_UNAVAILABLE', /SIMCRED_PACKAGE_MALFORMED/);
    expectAudited(state, 'failed', 'SIMCRED_PACKAGE_MALFORMED');
  });

  test('a signature algorithm outside the allow-list: SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED', async () => {
    answer = async (body) => {
      const issued = await seal(body);
      const [header, payload, signature] = issued.package.split('.') as [string, string, string];
      const decoded = JSON.parse(Buffer.from(header, 'base64url').toString()) as Record<string, unknown>;
      const hs256 = Buffer.from(JSON.stringify({ ...decoded, alg: 'HS256' })).toString('base64url');
      return { ...issued, package: `${hs256}.${payload}.${signature}` };
    };
    const { answered, state } = await proveAgainstThisHss();
    expectRefusal(answered, 'SIMCRED_DEPENDENCY_UNAVAILABLE', /SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED/);
    expectAudited(state, 'failed', 'SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED');
  });

  test('sealed to another device key: the credentialing server cannot tell, the device refuses it (SIMCRED_PACKAGE_DECRYPT_FAILED)', async () => {
    const dsimId = fresh();
    // sealPackage itself refuses a certificate binding another DSIM_ID: the wrong key comes bare.
    const { publicKey: strangerKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    answer = (body) => seal(body, { devicePublicKey: strangerKey });
    const { agent, module } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const session = await agent.openSession(registration);
    const pkg = await agent.collectPackage(await agent.proveSession(registration, session));
    await rejectsWith(agent.install(pkg, session.deviceNonce), 'SIMCRED_PACKAGE_DECRYPT_FAILED');
    assert.equal(module.subscription, undefined);
  });

  describe('the genuine HSS back, with a range of one IMSI', () => {
    before(async () => {
      await rogueHss!.close();
      rogueHss = undefined;
      genuineHss = await startRole(
        { ...t.config, ports: { ...t.config.ports, hss: hssPort } },
        'hss',
        1,
        t.logger,
      );
    });

    test('the first device gets the one IMSI; the next one SIMCRED_IMSI_EXHAUSTED, and nothing is half-done', async () => {
      const first = fresh();
      const onboarded = await (await t.device(first)).agent.onboard();
      assert.equal(onboarded.subscription.imsi, (await t.subscriber(first))!.imsi);

      const second = fresh();
      const { agent } = await t.device(second);
      const registration = await agent.lookupRegistration();
      const session = await agent.openSession(registration);
      // Passed through to the device as the HSS answered it: retrying will not help.
      await rejectsWith(agent.proveSession(registration, session), 'SIMCRED_IMSI_EXHAUSTED');
      assert.equal(await t.subscriber(second), undefined);
      const state = await t.operator.deviceState(t.system.urls.credentialing, second);
      expectAudited(state, 'failed', 'SIMCRED_IMSI_EXHAUSTED');
      assert.equal(state.state, 'registered');

      // The HSS's own answer, asked directly as the credentialing server.
      const credentialing = new PeerClient({
        tls: clientTls(loadTlsIdentity(t.config.pkiDir, 'credentialing')),
      });
      try {
        const third = fresh();
        const { module } = await t.device(third);
        const answered = await credentialing.send(
          `${t.system.urls.hss}${issueCredentials.path}`,
          'POST',
          JSON.stringify({
            dsimId: third,
            generation: 1,
            deviceCertificate: module.certificateChain[0],
            deviceNonce: randomBytes(32).toString('base64url'),
          }),
          'application/json',
        );
        expectRefusal(answered, 'SIMCRED_IMSI_EXHAUSTED');
      } finally {
        await credentialing.close();
      }
      // The first device's IMSI is untouched.
      assert.equal((await t.subscriber(first))!.imsi, onboarded.subscription.imsi);
    });
  });
});
