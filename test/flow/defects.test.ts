import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { fromBase64url, toBase64url } from '../../src/crypto/index.js';
import { PeerClient, clientTls, loadTlsIdentity } from '../../src/http/index.js';
import { HssStore } from '../../src/hss/store.js';
import { openSession, proveSession } from '../../src/protocol/credentialing.js';
import { issueCredentials } from '../../src/protocol/hss.js';
import { lookup, lookupChallenge } from '../../src/protocol/registration.js';
import { startRole } from '../../src/system/roles.js';
import { roleDatabase } from '../../src/system/start.js';
import { startTestSystem, type TestDevice, type TestSystem } from './harness.js';
import { rejectsWith } from '../helpers/assert.js';

/**
 * The four defects an independent client found (issue #12), each shown end to end: a replayed
 * session open, a used registration left at the registration server, certificates that are not DER,
 * and an IMSI left allocated after a revocation.
 */
describe('defects found by an independent implementation', () => {
  let t: TestSystem;
  let devices: string[];
  let next = 0;
  const fresh = () => devices[next++]!;

  before(async () => {
    t = await startTestSystem({ registration: { ttlSeconds: 3600 } });
    devices = await t.manufacture(16);
    await t.register(devices);
  });
  after(async () => {
    await t.close();
  });

  /** Waits (bounded) until the device's audit trail shows `event`: the outbox sender works in the background. */
  async function auditShows(dsimId: string, event: string, attempts = 200): Promise<string | null> {
    for (let i = 0; i < attempts; i++) {
      const { audit } = await t.operator.deviceState(t.system.urls.credentialing, dsimId);
      const found = audit.find((e) => e.event === event);
      if (found) return found.detail;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.fail(`the audit trail of ${dsimId} never showed "${event}"`);
  }

  async function completeOnboarding(device: TestDevice) {
    const { agent } = device;
    const registration = await agent.lookupRegistration();
    const session = await agent.openSession(registration);
    const referral = await agent.proveSession(registration, session);
    const pkg = await agent.collectPackage(referral);
    await agent.install(pkg, session.deviceNonce);
    await agent.sendReceipt(registration, session.deviceNonce);
    return registration;
  }

  describe('1. a replayed session open changes nothing', () => {
    test('while the device is referred: refused, and its ticket still buys the package', async () => {
      const dsimId = fresh();
      const { agent } = await t.device(dsimId);
      const registration = await agent.lookupRegistration();
      const session = await agent.openSession(registration);
      const referral = await agent.proveSession(registration, session);
      const replay = {
        dsimId,
        deviceNonce: toBase64url(session.deviceNonce),
        sessionNonce: toBase64url(session.sessionNonce),
      };
      await rejectsWith(
        t.deviceClient.call(registration.credentialingUrl, openSession, { body: replay }),
        'SIMCRED_DEVICE_NONCE_REUSED',
      );
      const state = await t.operator.deviceState(t.system.urls.credentialing, dsimId);
      assert.equal(state.state, 'referred', 'the replay moved the device');
      const pkg = await agent.collectPackage(referral);
      await agent.install(pkg, session.deviceNonce);
      await agent.sendReceipt(registration, session.deviceNonce);
      assert.equal((await t.operator.deviceState(t.system.urls.credentialing, dsimId)).state, 'completed');
    });

    test('while its session is open: answered with that same session, which can still be proved once', async () => {
      // A device whose answer to step 3 was lost (a cut connection, a server that died after its
      // commit) sends it again with the same nonce; it gets the session already open, not a new one
      // and not SIMCRED_SESSION_IN_PROGRESS until that session lapses.
      const dsimId = fresh();
      const { agent } = await t.device(dsimId);
      const registration = await agent.lookupRegistration();
      const session = await agent.openSession(registration);
      const body = {
        dsimId,
        deviceNonce: toBase64url(session.deviceNonce),
        sessionNonce: toBase64url(session.sessionNonce),
      };
      const resent = await t.deviceClient.call(registration.credentialingUrl, openSession, { body });
      assert.equal(resent.sessionId, session.sessionId);
      assert.equal(resent.challenge, session.challenge);
      assert.equal(resent.expiresAt, session.expiresAt);
      // A session nonce that does not match the device nonce is still refused.
      await rejectsWith(
        t.deviceClient.call(registration.credentialingUrl, openSession, {
          body: { ...body, sessionNonce: toBase64url(randomBytes(32)) },
        }),
        'SIMCRED_SESSION_NONCE_INVALID',
      );
      // Another nonce while it is open: busy, as before.
      await rejectsWith(agent.openSession(registration), 'SIMCRED_SESSION_IN_PROGRESS');
      const referral = await agent.proveSession(registration, session);
      assert.equal(referral.status, 'credentials-ready');
      // Once proved, the same open is a replay again.
      await rejectsWith(
        t.deviceClient.call(registration.credentialingUrl, openSession, { body }),
        'SIMCRED_DEVICE_NONCE_REUSED',
      );
    });

    test("an earlier session's nonce, after that session failed: refused; a fresh nonce opens", async () => {
      const dsimId = fresh();
      const { agent } = await t.device(dsimId);
      const registration = await agent.lookupRegistration();
      const first = await agent.openSession(registration);
      // A wrong proof ends the first session (the device would start over).
      await rejectsWith(
        t.deviceClient.call(registration.credentialingUrl, proveSession, {
          params: { sessionId: first.sessionId },
          body: {
            certificateChain: (await t.device(dsimId)).module.certificateChain,
            alg: 'ES256',
            signature: toBase64url(randomBytes(64)),
          },
        }),
        'SIMCRED_PROOF_INVALID',
      );
      await rejectsWith(agent.openSession(registration, first.deviceNonce), 'SIMCRED_DEVICE_NONCE_REUSED');
      const second = await agent.openSession(registration);
      assert.equal((await agent.proveSession(registration, second)).status, 'credentials-ready');
    });
  });

  describe('2. a used registration is retired at the registration server', () => {
    test('after delivery, the lookup no longer hands out the registration nonce', async () => {
      const dsimId = fresh();
      const device = await t.device(dsimId);
      await completeOnboarding(device);
      // Retired, not removed: the nonce is gone, the record says it was used (re-provisioning
      // of a factory-reset device goes through it).
      assert.equal(await auditShows(dsimId, 'retired'), device.image.image.registrationServer);
      await rejectsWith(device.agent.lookupRegistration(), 'SIMCRED_REGISTRATION_USED');
    });
  });

  describe('3. certificates are parsed once, strictly, at the edge', () => {
    /** The device's own chain with its leaf re-encoded by `mangle`. */
    function mangledChain(device: TestDevice, mangle: (der: Buffer) => Buffer): string[] {
      const [leaf, ...rest] = device.module.certificateChain;
      return [mangle(Buffer.from(leaf!, 'base64')).toString('base64'), ...rest];
    }
    const manglings: [string, (der: Buffer) => Buffer][] = [
      ['a byte after the DER', (der) => Buffer.concat([der, Buffer.from([0])])],
      ['a DER certificate twice', (der) => Buffer.concat([der, der])],
      // 30 82 LL LL → 30 83 00 LL LL: the same value with a length one octet longer than DER allows.
      [
        'a length not in its shortest form',
        (der) => Buffer.concat([Buffer.from([0x30, 0x83, 0x00]), der.subarray(2)]),
      ],
      // 30 82 LL LL … → 30 80 … 00 00: BER's indefinite length.
      [
        'an indefinite length',
        (der) => Buffer.concat([Buffer.from([0x30, 0x80]), der.subarray(4), Buffer.alloc(2)]),
      ],
    ];

    for (const [what, mangle] of manglings) {
      test(`${what}: SIMCRED_CERT_INVALID at the lookup (step 2), the proof (step 4) and the HSS (step 5)`, async () => {
        const dsimId = fresh();
        const device = await t.device(dsimId);
        const chain = mangledChain(device, mangle);
        const registrationServer = device.image.image.registrationServer;
        const grant = await device.agent.accessGrant();

        const { challenge } = await t.deviceClient.call(registrationServer, lookupChallenge, {
          body: { dsimId },
        });
        const lookupProof = device.module.signLookup(fromBase64url(challenge, 'challenge'));
        await rejectsWith(
          t.deviceClient.call(registrationServer, lookup, {
            body: { dsimId, grant, challenge, certificateChain: chain, ...lookupProof },
          }),
          'SIMCRED_CERT_INVALID',
        );

        const registration = await device.agent.lookupRegistration(grant);
        const session = await device.agent.openSession(registration);
        await rejectsWith(
          t.deviceClient.call(registration.credentialingUrl, proveSession, {
            params: { sessionId: session.sessionId },
            body: {
              certificateChain: chain,
              ...device.module.signProof({
                challenge: fromBase64url(session.challenge, 'challenge'),
                sessionNonce: session.sessionNonce,
              }),
            },
          }),
          'SIMCRED_CERT_INVALID',
        );

        const credentialing = new PeerClient({
          tls: clientTls(loadTlsIdentity(t.config.pkiDir, 'credentialing')),
        });
        try {
          await rejectsWith(
            credentialing.call(t.system.urls.hss, issueCredentials, {
              body: {
                dsimId,
                generation: 1,
                deviceCertificate: chain[0]!,
                deviceNonce: toBase64url(randomBytes(32)),
              },
            }),
            'SIMCRED_CERT_INVALID',
          );
        } finally {
          await credentialing.close();
        }
        assert.equal(await t.subscriber(dsimId), undefined, 'the HSS allocated an IMSI');
        // Nothing was disturbed: the same device with its real chain goes all the way.
        const result = await device.agent.onboard();
        assert.equal(result.subscription.imsi, (await t.subscriber(dsimId))!.imsi);
      });
    }
  });

  describe('4. revoking after step 5 releases the IMSI', () => {
    async function released(): Promise<{ imsi: string; dsimId: string }[]> {
      const hss = await HssStore.open(roleDatabase(t.config, 'hss'));
      try {
        return await hss.releasedImsis();
      } finally {
        await hss.close();
      }
    }

    test('a referred device: its subscriber is released, and registered again it gets a new IMSI', async () => {
      const dsimId = fresh();
      const { agent, image } = await t.device(dsimId);
      const registration = await agent.lookupRegistration();
      const session = await agent.openSession(registration);
      const referral = await agent.proveSession(registration, session);
      const imsi = (await t.subscriber(dsimId))!.imsi;

      await t.operator.revoke(t.system.urls.credentialing, dsimId, 'contract cancelled');
      assert.equal(await auditShows(dsimId, 'subscriber-released'), imsi);
      assert.equal(await t.subscriber(dsimId), undefined, 'the subscriber is still at the HSS');
      assert.ok((await released()).some((r) => r.imsi === imsi && r.dsimId === dsimId));
      await rejectsWith(agent.collectPackage(referral), 'SIMCRED_REGISTRATION_REVOKED');
      await auditShows(dsimId, 'withdrawn');

      await t.operator.registerDevices(t.system.urls.credentialing, [
        { dsimId, registrationServer: image.image.registrationServer },
      ]);
      const result = await agent.onboard();
      assert.notEqual(result.subscription.imsi, imsi, 'a released IMSI was allocated again');
      assert.equal((await t.subscriber(dsimId))!.imsi, result.subscription.imsi);
    });

    test('the HSS down at the revocation: the release waits in the outbox and happens once it is back', async () => {
      const dsimId = fresh();
      const { agent } = await t.device(dsimId);
      const registration = await agent.lookupRegistration();
      const session = await agent.openSession(registration);
      await agent.proveSession(registration, session);
      const imsi = (await t.subscriber(dsimId))!.imsi;

      const port = Number(new URL(t.system.urls.hss).port);
      await t.system.servers.hss.close();
      await t.operator.revoke(t.system.urls.credentialing, dsimId);
      assert.equal((await t.operator.deviceState(t.system.urls.credentialing, dsimId)).state, 'revoked');
      const hss = await startRole(
        { ...t.config, ports: { ...t.config.ports, hss: port } },
        'hss',
        1,
        t.logger,
      );
      try {
        assert.equal(await auditShows(dsimId, 'subscriber-released'), imsi);
        assert.equal(await t.subscriber(dsimId), undefined);
      } finally {
        await hss.close();
      }
    });
  });
});
