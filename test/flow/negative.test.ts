import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  computeSessionNonce,
  fromBase64url,
  sealPackage,
  signProofOfPossession,
  toBase64url,
} from '../../src/crypto/index.js';
import { isSimcredError } from '../../src/errors/index.js';
import { PeerClient, loadTlsIdentity, clientTls } from '../../src/http/index.js';
import { openSession, proveSession, fetchPackage } from '../../src/protocol/credentialing.js';
import { issueCredentials } from '../../src/protocol/hss.js';
import { initPki, manufactureDevices, loadFactoryImage, revokeCertificate } from '../../src/pki/index.js';
import { startOcspResponder } from '../../src/ocsp/index.js';
import { TrustedModule } from '../../src/device/trusted-module.js';
import { startTestSystem, type TestSystem } from './harness.js';
import { tempDir } from '../helpers/cli.js';
import { ManualClock } from '../helpers/clock.js';
import { rejectsWith } from '../helpers/assert.js';

describe('no credential without every proof (DESIGN §4.1)', () => {
  let t: TestSystem;
  let devices: string[];
  let next = 0;
  const fresh = () => devices[next++]!;

  before(async () => {
    t = await startTestSystem({ registration: { ttlSeconds: 3600 } });
    devices = await t.manufacture(24);
    await t.register(devices);
  });
  after(async () => {
    await t.close();
  });

  /** Nothing was issued: no IMSI in the HSS, no package at the credentialing server. */
  async function nothingIssued(dsimId: string): Promise<void> {
    assert.equal(await t.subscriber(dsimId), undefined, 'the HSS allocated an IMSI');
    const state = await t.operator.deviceState(t.system.urls.credentialing, dsimId);
    assert.equal(state.imsi, null);
    assert.notEqual(state.state, 'referred');
  }

  test('wrong session nonce', async () => {
    const dsimId = fresh();
    const { agent } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const url = registration.credentialingUrl;
    await rejectsWith(
      t.deviceClient.call(url, openSession, {
        body: {
          dsimId,
          deviceNonce: toBase64url(randomBytes(32)),
          sessionNonce: toBase64url(randomBytes(32)),
        },
      }),
      'SIMCRED_SESSION_NONCE_INVALID',
    );
    await nothingIssued(dsimId);
  });

  test('registration nonce from another device', async () => {
    const victim = fresh();
    const attacker = fresh();
    const { agent: attackerAgent } = await t.device(attacker);
    const attackerRegistration = await attackerAgent.lookupRegistration();
    const deviceNonce = randomBytes(32);
    // The attacker derives a session nonce for the victim from its own registration nonce.
    const sessionNonce = computeSessionNonce({
      registrationNonce: fromBase64url(attackerRegistration.registrationNonce),
      dsimId: victim,
      deviceNonce,
    });
    await rejectsWith(
      t.deviceClient.call(attackerRegistration.credentialingUrl, openSession, {
        body: {
          dsimId: victim,
          deviceNonce: toBase64url(deviceNonce),
          sessionNonce: toBase64url(sessionNonce),
        },
      }),
      'SIMCRED_SESSION_NONCE_INVALID',
    );
    await nothingIssued(victim);
  });

  test('revoked registration, at registration and mid-session', async () => {
    const dsimId = fresh();
    const { agent } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const session = await agent.openSession(registration);
    await t.operator.revoke(t.system.urls.credentialing, dsimId, 'contract cancelled');
    await rejectsWith(agent.proveSession(registration, session), 'SIMCRED_SESSION_UNKNOWN');
    await rejectsWith(agent.openSession(registration), 'SIMCRED_REGISTRATION_REVOKED');
    // The registration server forgot it too.
    await rejectsWith(agent.lookupRegistration(), 'SIMCRED_REGISTRATION_UNKNOWN');
    await nothingIssued(dsimId);
    const state = await t.operator.deviceState(t.system.urls.credentialing, dsimId);
    assert.equal(state.state, 'revoked');
    assert.ok(state.audit.some((e) => e.event === 'revoked' && e.detail === 'contract cancelled'));
  });

  test('replay of a completed session', async () => {
    const dsimId = fresh();
    const { agent } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const session = await agent.openSession(registration);
    const referral = await agent.proveSession(registration, session);
    const pkg = await agent.collectPackage(referral);
    await agent.install(pkg, session.deviceNonce);
    await agent.sendReceipt(registration, session.deviceNonce);
    const imsi = (await t.subscriber(dsimId))!.imsi;

    await rejectsWith(agent.openSession(registration), 'SIMCRED_REGISTRATION_USED');
    await rejectsWith(agent.proveSession(registration, session), 'SIMCRED_SESSION_UNKNOWN');
    await rejectsWith(agent.collectPackage(referral), 'SIMCRED_REGISTRATION_USED');
    assert.equal((await t.subscriber(dsimId))!.imsi, imsi, 'one DSIM_ID, one IMSI');
    assert.equal((await t.operator.deviceState(t.system.urls.credentialing, dsimId)).state, 'completed');
  });

  test('a second concurrent session for the same device', async () => {
    const dsimId = fresh();
    const { agent } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const results = await Promise.allSettled([
      agent.openSession(registration),
      agent.openSession(registration),
    ]);
    const rejected = results.filter((r) => r.status === 'rejected');
    assert.equal(rejected.length, 1);
    assert.equal((rejected[0] as PromiseRejectedResult).reason.code, 'SIMCRED_SESSION_IN_PROGRESS');
    await rejectsWith(agent.openSession(registration), 'SIMCRED_SESSION_IN_PROGRESS');
    await nothingIssued(dsimId);
  });

  test('certificate from an untrusted CA', async () => {
    const dsimId = fresh();
    const { agent } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const session = await agent.openSession(registration);
    // A rogue factory: its own PKI, a device certificate claiming the victim's DSIM_ID's slot.
    const rogue = tempDir('simcred-rogue-');
    try {
      await initPki(rogue.path);
      const made = await manufactureDevices({ dir: rogue.path, count: 1, workers: 0 });
      const rogueImage = await loadFactoryImage(rogue.path, made.devices[0]!.dsimId);
      const proof = signProofOfPossession(rogueImage.privateKey, {
        challenge: fromBase64url(session.challenge),
        sessionNonce: session.sessionNonce,
        dsimId,
      });
      const rogueModule = TrustedModule.fromFactoryImage(rogueImage, { persist: false });
      await rejectsWith(
        t.deviceClient.call(registration.credentialingUrl, proveSession, {
          params: { sessionId: session.sessionId },
          body: {
            certificateChain: rogueModule.certificateChain,
            alg: proof.alg,
            signature: toBase64url(proof.signature),
          },
        }),
        'SIMCRED_CERT_UNTRUSTED',
      );
    } finally {
      rogue.cleanup();
    }
    await nothingIssued(dsimId);
  });

  test('DSIM_ID mismatch between request and certificate', async () => {
    const dsimId = fresh();
    const other = fresh();
    const { agent } = await t.device(dsimId);
    const otherImage = await loadFactoryImage(t.config.pkiDir, other);
    const registration = await agent.lookupRegistration();
    const session = await agent.openSession(registration);
    // A genuine certificate and a valid signature — but of another device.
    const proof = signProofOfPossession(otherImage.privateKey, {
      challenge: fromBase64url(session.challenge),
      sessionNonce: session.sessionNonce,
      dsimId,
    });
    await rejectsWith(
      t.deviceClient.call(registration.credentialingUrl, proveSession, {
        params: { sessionId: session.sessionId },
        body: {
          certificateChain: TrustedModule.fromFactoryImage(otherImage, { persist: false }).certificateChain,
          alg: proof.alg,
          signature: toBase64url(proof.signature),
        },
      }),
      'SIMCRED_CERT_DSIM_MISMATCH',
    );
    await nothingIssued(dsimId);
  });

  test('bad proof-of-possession signature', async () => {
    const dsimId = fresh();
    const { agent, module } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const session = await agent.openSession(registration);
    // Signed over another challenge: a stale or forged proof.
    const proof = module.signProof({ challenge: randomBytes(32), sessionNonce: session.sessionNonce });
    await rejectsWith(
      t.deviceClient.call(registration.credentialingUrl, proveSession, {
        params: { sessionId: session.sessionId },
        body: { certificateChain: module.certificateChain, ...proof },
      }),
      'SIMCRED_PROOF_INVALID',
    );
    // A failed proof ends the session; the device may start over.
    await rejectsWith(agent.proveSession(registration, session), 'SIMCRED_SESSION_UNKNOWN');
    await nothingIssued(dsimId);
  });

  test('certificate revoked at the OCSP responder', async () => {
    const dsimId = fresh();
    await revokeCertificate(t.config.pkiDir, { dsimId }, 'keyCompromise');
    const { agent } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const session = await agent.openSession(registration);
    await rejectsWith(agent.proveSession(registration, session), 'SIMCRED_OCSP_REVOKED');
    await nothingIssued(dsimId);
  });

  test('tampered package: the device refuses it', async () => {
    const dsimId = fresh();
    const { agent, module } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const session = await agent.openSession(registration);
    const pkg = await agent.collectPackage(await agent.proveSession(registration, session));
    const [header, payload, signature] = pkg.split('.') as [string, string, string];
    const flipped = payload.slice(0, 40) + (payload[40] === 'A' ? 'B' : 'A') + payload.slice(41);
    await rejectsWith(
      agent.install(`${header}.${flipped}.${signature}`, session.deviceNonce),
      'SIMCRED_PACKAGE_SIGNATURE_INVALID',
    );
    assert.equal(module.subscription, undefined);
    // The genuine package still installs.
    const installed = await agent.install(pkg, session.deviceNonce);
    assert.equal(installed.imsi, (await t.subscriber(dsimId))!.imsi);
  });

  test("a package forged with another operator-CA key (a provisioning server's TLS key) is refused", async () => {
    const dsimId = fresh();
    const { agent, image, module } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const session = await agent.openSession(registration);
    const tls = t.system.pki.operator.tls.provisioning;
    const forged = await sealPackage({
      credentials: {
        imsi: '001029999999999',
        k: '00'.repeat(16),
        opc: '11'.repeat(16),
        amf: '8000',
        sqn: '000000000000',
        plmn: '00102',
      },
      dsimId,
      deviceNonce: session.deviceNonce,
      devicePublicKey: image.certificatePem,
      operatorSigningKey: tls.privateKey(),
      operatorChainPem: [tls.pem, t.system.pki.operator.operatorCa.pem],
      ttlSeconds: 600,
    });
    await rejectsWith(agent.install(forged, session.deviceNonce), 'SIMCRED_PACKAGE_CHAIN_INVALID');
    assert.equal(module.subscription, undefined);
  });

  test('package replayed to another device: it cannot open it and refuses', async () => {
    const dsimId = fresh();
    const thief = fresh();
    const { agent } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const session = await agent.openSession(registration);
    const pkg = await agent.collectPackage(await agent.proveSession(registration, session));
    const { agent: thiefAgent, module: thiefModule } = await t.device(thief);
    await rejectsWith(thiefAgent.install(pkg, session.deviceNonce), 'SIMCRED_PACKAGE_BINDING_MISMATCH');
    assert.equal(thiefModule.subscription, undefined);
  });

  test('server-to-server calls without the right client certificate are refused', async () => {
    const dsimId = fresh();
    const image = await loadFactoryImage(t.config.pkiDir, dsimId);
    const body = {
      dsimId,
      generation: 1,
      deviceCertificate: TrustedModule.fromFactoryImage(image, { persist: false }).certificateChain[0]!,
      deviceNonce: toBase64url(randomBytes(32)),
    };
    // No client certificate at all.
    await rejectsWith(
      t.deviceClient.call(t.system.urls.hss, issueCredentials, { body }),
      'SIMCRED_UNAUTHENTICATED_PEER',
    );
    // A genuine operator certificate, but of a role that may not call the HSS.
    const provisioning = new PeerClient({ tls: clientTls(loadTlsIdentity(t.config.pkiDir, 'provisioning')) });
    try {
      await rejectsWith(
        provisioning.call(t.system.urls.hss, issueCredentials, { body }),
        'SIMCRED_FORBIDDEN_PEER',
      );
    } finally {
      await provisioning.close();
    }
    // A device cannot fetch a package as if it were a provisioning server.
    await rejectsWith(
      t.deviceClient.call(t.system.urls.credentialing, fetchPackage, {
        body: { dsimId, ticket: toBase64url(randomBytes(32)) },
      }),
      'SIMCRED_UNAUTHENTICATED_PEER',
    );
    assert.equal(await t.subscriber(dsimId), undefined);
  });

  test('OCSP responder down: 503 with Retry-After, nothing half-done, success once it is back', async () => {
    const dsimId = fresh();
    const { agent } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const port = Number(new URL(t.system.urls.ocsp).port);
    await t.system.servers.ocsp.close();
    let restarted: { close(): Promise<void> } | undefined;
    try {
      const session = await agent.openSession(registration);
      await assert.rejects(agent.proveSession(registration, session), (err: unknown) => {
        assert.ok(isSimcredError(err));
        assert.equal(err.status, 503);
        assert.ok((err.retryAfter ?? 0) > 0);
        return true;
      });
      await nothingIssued(dsimId);
      restarted = await startOcspResponder({
        pkiDir: t.config.pkiDir,
        host: '127.0.0.1',
        port,
        logger: t.logger,
      });
      const result = await agent.onboard();
      assert.equal(result.subscription.imsi, (await t.subscriber(dsimId))!.imsi);
    } finally {
      await restarted?.close();
    }
  });
});

describe('registrations expire', () => {
  test('an expired registration gets no session and no credential', async () => {
    // Every role that decides expiry, and the device, read one manual clock the test moves.
    const clock = new ManualClock();
    const t = await startTestSystem({ registration: { ttlSeconds: 600 } }, { clock: clock.now });
    try {
      const [dsimId] = await t.manufacture(1);
      await t.register([dsimId!]);
      const { agent } = await t.device(dsimId!);
      const registration = await agent.lookupRegistration();
      const expiresAt = new Date(registration.expiresAt);
      assert.equal(expiresAt.getTime(), clock.now().getTime() + 600_000, 'the TTL counts from the clock');
      // One second before the end: still live at both servers, and a session opens.
      clock.set(new Date(expiresAt.getTime() - 1000));
      const state = await t.operator.deviceState(t.system.urls.credentialing, dsimId!);
      assert.equal(state.state, 'registered');
      const live = await agent.lookupRegistration();
      const session = await agent.openSession(live);
      // At the end: the open session cannot be proven, and nothing new starts — also when the expiry
      // sweep (run before every read of the operator's event feed) found it before the device did.
      clock.set(expiresAt);
      await t.operator.events(t.system.urls.credentialing, 0);
      await rejectsWith(agent.proveSession(live, session), 'SIMCRED_REGISTRATION_EXPIRED');
      await rejectsWith(agent.openSession(registration), 'SIMCRED_REGISTRATION_EXPIRED');
      await rejectsWith(agent.lookupRegistration(), 'SIMCRED_REGISTRATION_EXPIRED');
      assert.equal(await t.subscriber(dsimId!), undefined);
      assert.equal((await t.operator.deviceState(t.system.urls.credentialing, dsimId!)).state, 'expired');
    } finally {
      await t.close();
    }
  });
});
