import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { fromBase64url, signProofOfPossession, signReceipt, toBase64url } from '../../src/crypto/index.js';
import { signDeviceMessage } from '../../src/crypto/device-signature.js';
import { lookupProofMessage } from '../../src/crypto/lookup-proof.js';
import { tokenDigest } from '../../src/crypto/digest.js';
import { PeerClient, clientTls, loadTlsIdentity } from '../../src/http/index.js';
import { initPki, loadFactoryImage } from '../../src/pki/index.js';
import { fetchPackage, proveSession, submitReceipt } from '../../src/protocol/credentialing.js';
import { deliver, referral } from '../../src/protocol/provisioning.js';
import { lookup, lookupChallenge } from '../../src/protocol/registration.js';
import type { RouteSpec } from '../../src/protocol/index.js';
import { LookupChallenges } from '../../src/registration/challenge.js';
import { tempDir } from '../helpers/cli.js';
import { expectRefusal, type HttpAnswer } from '../helpers/assert.js';
import { forgeDeviceCertificate } from './forgery.js';
import { startTestSystem, type TestDevice, type TestSystem } from './harness.js';

const YEAR_MS = 365 * 24 * 3600_000;
/** A validity period that ended a year ago. */
const EXPIRED = { notBefore: new Date(Date.now() - 2 * YEAR_MS), notAfter: new Date(Date.now() - YEAR_MS) };

/**
 * The refusals docs/errors.md promises a device, each provoked end to end: real roles on loopback,
 * real HTTPS requests, and every answer checked against the error contract (status and code).
 */
describe('refusals a device meets (steps 2, 4, 7–9, 12)', () => {
  const challengeSecret = randomBytes(32);
  let t: TestSystem;
  let devices: string[];
  let next = 0;
  const fresh = () => devices[next++]!;
  const rogue = tempDir('simcred-rogue-pki-');
  let provisioningPeer: PeerClient;
  let credentialingPeer: PeerClient;

  before(async () => {
    t = await startTestSystem({
      registration: { ttlSeconds: 3600, challengeSecret: challengeSecret.toString('hex') },
    });
    devices = await t.manufacture(24);
    await t.register(devices);
    // Another manufacturer's PKI, which this operator does not trust.
    await initPki(rogue.path);
    provisioningPeer = new PeerClient({ tls: clientTls(loadTlsIdentity(t.config.pkiDir, 'provisioning')) });
    credentialingPeer = new PeerClient({ tls: clientTls(loadTlsIdentity(t.config.pkiDir, 'credentialing')) });
  });
  after(async () => {
    await provisioningPeer.close();
    await credentialingPeer.close();
    await t.close();
    rogue.cleanup();
  });

  /** POSTs a route's body as JSON with `client` and returns the raw answer. */
  function post(
    client: PeerClient,
    baseUrl: string,
    route: RouteSpec,
    body: unknown,
    params: Record<string, string> = {},
  ): Promise<HttpAnswer> {
    const path = route.path.replace(/:([A-Za-z]+)/g, (_, name: string) => encodeURIComponent(params[name]!));
    return client.send(`${baseUrl}${path}`, 'POST', JSON.stringify(body), 'application/json');
  }

  /** Nothing was issued: no IMSI in the HSS, no package at the credentialing server. */
  async function nothingIssued(dsimId: string): Promise<void> {
    assert.equal(await t.subscriber(dsimId), undefined, 'the HSS allocated an IMSI');
    const state = await t.operator.deviceState(t.system.urls.credentialing, dsimId);
    assert.equal(state.imsi, null);
    assert.ok(['registered', 'authenticating'].includes(state.state), state.state);
  }

  describe('step 2, the registration lookup', () => {
    /** A lookup body exactly as the genuine device sends it: its grant, a fresh challenge, its chain and proof. */
    async function genuineLookup(device: TestDevice) {
      const dsimId = device.module.dsimId;
      const grant = await device.agent.accessGrant();
      const { challenge } = await t.deviceClient.call(
        device.image.image.registrationServer,
        lookupChallenge,
        {
          body: { dsimId },
        },
      );
      return {
        dsimId,
        grant,
        challenge,
        certificateChain: device.module.certificateChain,
        ...device.module.signLookup(fromBase64url(challenge)),
      };
    }
    type LookupBody = Awaited<ReturnType<typeof genuineLookup>>;

    /** The same body over another challenge, signed properly by the device: only the challenge is wrong. */
    function withChallenge(device: TestDevice, body: LookupBody, challenge: Buffer): LookupBody {
      return {
        ...body,
        challenge: toBase64url(challenge),
        ...device.module.signLookup(challenge),
      };
    }

    const send = (device: TestDevice, body: unknown) =>
      post(t.deviceClient, device.image.image.registrationServer, lookup, body);

    test('a forged, tampered, expired or another device’s challenge: SIMCRED_CHALLENGE_INVALID', async () => {
      const device = await t.device(fresh());
      const other = fresh();
      const body = await genuineLookup(device);
      const issued = fromBase64url(body.challenge);

      // Forged: the right shape (expiry ‖ random ‖ tag) with a tag not made with the server's secret.
      expectRefusal(
        await send(device, withChallenge(device, body, randomBytes(issued.length))),
        'SIMCRED_CHALLENGE_INVALID',
      );
      // Tampered: one bit of the expiry changed.
      const tampered = Buffer.from(issued);
      tampered[7]! ^= 0x01;
      expectRefusal(await send(device, withChallenge(device, body, tampered)), 'SIMCRED_CHALLENGE_INVALID');
      // Issued to another device, signed by this one.
      const { challenge: othersChallenge } = await t.deviceClient.call(
        device.image.image.registrationServer,
        lookupChallenge,
        { body: { dsimId: other } },
      );
      expectRefusal(
        await send(device, withChallenge(device, body, fromBase64url(othersChallenge))),
        'SIMCRED_CHALLENGE_INVALID',
      );
      // Expired: made with the server's own secret, for this device, an hour ago.
      const stale = new LookupChallenges(challengeSecret, 60).issue(
        device.module.dsimId,
        new Date(Date.now() - 3600_000),
      );
      expectRefusal(
        await send(device, withChallenge(device, body, fromBase64url(stale.challenge))),
        'SIMCRED_CHALLENGE_INVALID',
      );
      // The same secret makes a live challenge that is accepted: the refusals above are the challenge's.
      const live = new LookupChallenges(challengeSecret, 60).issue(device.module.dsimId);
      const answer = await send(device, withChallenge(device, body, fromBase64url(live.challenge)));
      assert.equal(answer.statusCode, 200, answer.text);
      // And the genuine one.
      assert.equal((await send(device, body)).statusCode, 200);
    });

    test('a proof that does not verify: SIMCRED_PROOF_INVALID', async () => {
      const device = await t.device(fresh());
      const other = await loadFactoryImage(t.config.pkiDir, fresh());
      const body = await genuineLookup(device);
      // Signed by the device, but over another challenge.
      const overAnother = device.module.signLookup(randomBytes(40));
      expectRefusal(await send(device, { ...body, ...overAnother }), 'SIMCRED_PROOF_INVALID');
      // Over the right message, but with another device's key.
      const { alg, signature } = signDeviceMessage(
        other.privateKey,
        lookupProofMessage({ challenge: fromBase64url(body.challenge), dsimId: device.module.dsimId }),
      );
      expectRefusal(
        await send(device, { ...body, alg, signature: toBase64url(signature) }),
        'SIMCRED_PROOF_INVALID',
      );
      assert.equal((await send(device, body)).statusCode, 200);
    });

    test('a certificate for a key outside the allow-list (P-384, RSA-1024, Ed25519): SIMCRED_PROOF_INVALID', async () => {
      const device = await t.device(fresh());
      const body = await genuineLookup(device);
      const message = lookupProofMessage({
        challenge: fromBase64url(body.challenge),
        dsimId: device.module.dsimId,
      });
      const unfit = [
        { alg: 'ES256', key: generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, hash: 'sha256' },
        { alg: 'RS256', key: generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey, hash: 'sha256' },
        { alg: 'ES256', key: generateKeyPairSync('ed25519').privateKey, hash: null },
      ] as const;
      for (const { alg, key, hash } of unfit) {
        // Certified by the genuine device CA, and a true signature by that key: only the key is unfit.
        const forged = await forgeDeviceCertificate(t.config.pkiDir, device.module.dsimId, undefined, key);
        const signature = sign(hash, message, { key, dsaEncoding: 'ieee-p1363' });
        expectRefusal(
          await send(device, {
            ...body,
            certificateChain: forged.certificateChain,
            alg,
            signature: toBase64url(signature),
          }),
          'SIMCRED_PROOF_INVALID',
        );
      }
    });

    test('a certificate of an untrusted manufacturer, or a self-made chain: SIMCRED_CERT_UNTRUSTED', async () => {
      const device = await t.device(fresh());
      const body = await genuineLookup(device);
      const challenge = fromBase64url(body.challenge);
      const signAs = (forged: { privateKey: KeyObject }) => {
        const { alg, signature } = signDeviceMessage(
          forged.privateKey,
          lookupProofMessage({ challenge, dsimId: device.module.dsimId }),
        );
        return { alg, signature: toBase64url(signature) };
      };
      // Another manufacturer's CA binds this very DSIM_ID; the proof is made with its key.
      const foreign = await forgeDeviceCertificate(rogue.path, device.module.dsimId);
      expectRefusal(
        await send(device, { ...body, certificateChain: foreign.certificateChain, ...signAs(foreign) }),
        'SIMCRED_CERT_UNTRUSTED',
      );
      // The same leaf presented under the genuine device CA: the CA did not sign it.
      expectRefusal(
        await send(device, {
          ...body,
          certificateChain: [foreign.certificateChain[0]!, device.module.certificateChain[1]!],
          ...signAs(foreign),
        }),
        'SIMCRED_CERT_UNTRUSTED',
      );
      // The leaf alone, no chain to any root.
      expectRefusal(
        await send(device, { ...body, certificateChain: [foreign.certificateChain[0]!], ...signAs(foreign) }),
        'SIMCRED_CERT_UNTRUSTED',
      );
    });

    test('another device’s genuine certificate: SIMCRED_CERT_DSIM_MISMATCH', async () => {
      const device = await t.device(fresh());
      const other = await t.device(fresh());
      const body = await genuineLookup(device);
      // The other device's chain and key sign this device's lookup message: all valid, but not bound to this DSIM_ID.
      const { alg, signature } = signDeviceMessage(
        other.image.privateKey,
        lookupProofMessage({ challenge: fromBase64url(body.challenge), dsimId: device.module.dsimId }),
      );
      expectRefusal(
        await send(device, {
          ...body,
          certificateChain: other.module.certificateChain,
          alg,
          signature: toBase64url(signature),
        }),
        'SIMCRED_CERT_DSIM_MISMATCH',
      );
    });

    test('a certificate outside its validity period: SIMCRED_CERT_UNTRUSTED', async () => {
      // errors.md once listed this under SIMCRED_CERT_INVALID; the chain check has always answered
      // SIMCRED_CERT_UNTRUSTED (a path that does not validate), and the code's meaning now says so.
      const device = await t.device(fresh());
      const body = await genuineLookup(device);
      const expired = await forgeDeviceCertificate(t.config.pkiDir, device.module.dsimId, EXPIRED);
      const { alg, signature } = signDeviceMessage(
        expired.privateKey,
        lookupProofMessage({ challenge: fromBase64url(body.challenge), dsimId: device.module.dsimId }),
      );
      expectRefusal(
        await send(device, {
          ...body,
          certificateChain: expired.certificateChain,
          alg,
          signature: toBase64url(signature),
        }),
        'SIMCRED_CERT_UNTRUSTED',
        /has expired/,
      );
    });

    test('bytes that are not a certificate: SIMCRED_CERT_INVALID', async () => {
      const device = await t.device(fresh());
      const body = await genuineLookup(device);
      expectRefusal(
        await send(device, { ...body, certificateChain: [randomBytes(300).toString('base64')] }),
        'SIMCRED_CERT_INVALID',
      );
      expectRefusal(
        await send(device, {
          ...body,
          certificateChain: [device.module.certificateChain[0]!, randomBytes(300).toString('base64')],
        }),
        'SIMCRED_CERT_INVALID',
      );
    });
  });

  describe('step 4, the proof at the credentialing server', () => {
    test('a device certificate the OCSP responder does not know: SIMCRED_OCSP_UNKNOWN', async () => {
      const dsimId = fresh();
      const { agent } = await t.device(dsimId);
      const registration = await agent.lookupRegistration();
      const session = await agent.openSession(registration);
      // Issued by the genuine device CA (a stolen CA key, say) but never recorded: chain and binding
      // hold, only the responder can tell.
      const clone = await forgeDeviceCertificate(t.config.pkiDir, dsimId);
      const proof = signProofOfPossession(clone.privateKey, {
        challenge: fromBase64url(session.challenge),
        sessionNonce: session.sessionNonce,
        dsimId,
      });
      expectRefusal(
        await post(
          t.deviceClient,
          registration.credentialingUrl,
          proveSession,
          {
            certificateChain: clone.certificateChain,
            alg: proof.alg,
            signature: toBase64url(proof.signature),
          },
          { sessionId: session.sessionId },
        ),
        'SIMCRED_OCSP_UNKNOWN',
      );
      await nothingIssued(dsimId);
      // The genuine device is not locked out by the clone's attempt.
      const retry = await agent.openSession(registration);
      const referred = await agent.proveSession(registration, retry);
      assert.equal(referred.status, 'credentials-ready');
    });

    test('a certificate outside its validity period, or not a certificate: SIMCRED_CERT_UNTRUSTED, SIMCRED_CERT_INVALID', async () => {
      const dsimId = fresh();
      const { agent } = await t.device(dsimId);
      const registration = await agent.lookupRegistration();
      const prove = async (certificateChain: string[], key: KeyObject) => {
        const session = await agent.openSession(registration);
        const proof = signProofOfPossession(key, {
          challenge: fromBase64url(session.challenge),
          sessionNonce: session.sessionNonce,
          dsimId,
        });
        return post(
          t.deviceClient,
          registration.credentialingUrl,
          proveSession,
          { certificateChain, alg: proof.alg, signature: toBase64url(proof.signature) },
          { sessionId: session.sessionId },
        );
      };
      const expired = await forgeDeviceCertificate(t.config.pkiDir, dsimId, EXPIRED);
      expectRefusal(
        await prove(expired.certificateChain, expired.privateKey),
        'SIMCRED_CERT_UNTRUSTED',
        /has expired/,
      );
      expectRefusal(
        await prove([randomBytes(300).toString('base64')], expired.privateKey),
        'SIMCRED_CERT_INVALID',
      );
      await nothingIssued(dsimId);
    });
  });

  /** A device taken through steps 2–6: it holds a referral (provisioning URL and one-time ticket). */
  async function referred(dsimId: string) {
    const device = await t.device(dsimId);
    const registration = await device.agent.lookupRegistration();
    const session = await device.agent.openSession(registration);
    const referral = await device.agent.proveSession(registration, session);
    return { ...device, registration, session, referral };
  }

  describe('step 7, the ticket at the provisioning server', () => {
    test('a forged ticket, another device’s ticket, a lapsed referral: SIMCRED_TICKET_INVALID', async () => {
      const a = await referred(fresh());
      const b = await referred(fresh());
      const deliverAt = (url: string, dsimId: string, ticket: string) =>
        post(t.deviceClient, url, deliver, { dsimId, ticket });

      expectRefusal(
        await deliverAt(a.referral.provisioningUrl, a.module.dsimId, toBase64url(randomBytes(32))),
        'SIMCRED_TICKET_INVALID',
      );
      expectRefusal(
        await deliverAt(b.referral.provisioningUrl, b.module.dsimId, a.referral.ticket),
        'SIMCRED_TICKET_INVALID',
      );
      // A referral whose time is up, as the genuine credentialing server would send it.
      const c = fresh();
      const ticket = toBase64url(randomBytes(32));
      const provisioningUrl = t.system.urls.provisioning[0]!;
      await credentialingPeer.call(provisioningUrl, referral, {
        body: {
          dsimId: c,
          ticketDigest: tokenDigest(ticket),
          credentialingUrl: t.system.urls.credentialing,
          expiresAt: new Date(Date.now() - 60_000).toISOString(),
        },
      });
      expectRefusal(
        await deliverAt(provisioningUrl, c, ticket),
        'SIMCRED_TICKET_INVALID',
        /for this device here/,
      );
      // The genuine tickets still deliver.
      for (const device of [a, b]) {
        const answer = await deliverAt(
          device.referral.provisioningUrl,
          device.module.dsimId,
          device.referral.ticket,
        );
        assert.equal(answer.statusCode, 200, answer.text);
      }
      // A used ticket: until the receipt the same package may be fetched again (the device may have
      // lost it); once the device confirmed it, the ticket buys nothing.
      const again = await deliverAt(b.referral.provisioningUrl, b.module.dsimId, b.referral.ticket);
      assert.equal(again.statusCode, 200, again.text);
      const pkg = (JSON.parse(again.text) as { package: string }).package;
      await b.agent.install(pkg, b.session.deviceNonce);
      await b.agent.sendReceipt(b.registration, b.session.deviceNonce);
      expectRefusal(
        await deliverAt(b.referral.provisioningUrl, b.module.dsimId, b.referral.ticket),
        'SIMCRED_REGISTRATION_USED',
      );
    });
  });

  describe('steps 8–9, the ticket at the credentialing server (called as the referred provisioning server)', () => {
    test('a forged ticket, another device’s, an unreferred or unknown device: SIMCRED_TICKET_INVALID; a used one: SIMCRED_REGISTRATION_USED', async () => {
      const a = await referred(fresh());
      const b = await referred(fresh());
      const registeredOnly = fresh();
      const fetch = (dsimId: string, ticket: string) =>
        post(provisioningPeer, t.system.urls.credentialing, fetchPackage, { dsimId, ticket });

      expectRefusal(await fetch(a.module.dsimId, toBase64url(randomBytes(32))), 'SIMCRED_TICKET_INVALID');
      expectRefusal(await fetch(b.module.dsimId, a.referral.ticket), 'SIMCRED_TICKET_INVALID');
      expectRefusal(await fetch(registeredOnly, toBase64url(randomBytes(32))), 'SIMCRED_TICKET_INVALID');
      expectRefusal(await fetch('DSIM0000000000000000', a.referral.ticket), 'SIMCRED_TICKET_INVALID');
      assert.equal(
        (await t.operator.deviceState(t.system.urls.credentialing, b.module.dsimId)).state,
        'referred',
      );

      // The genuine ticket buys the package; once the device's receipt closed the record it buys nothing.
      const answer = await fetch(a.module.dsimId, a.referral.ticket);
      assert.equal(answer.statusCode, 200, answer.text);
      const pkg = (JSON.parse(answer.text) as { package: string }).package;
      await a.agent.install(pkg, a.session.deviceNonce);
      await a.agent.sendReceipt(a.registration, a.session.deviceNonce);
      expectRefusal(await fetch(a.module.dsimId, a.referral.ticket), 'SIMCRED_REGISTRATION_USED');
    });
  });

  describe('step 12, the receipt', () => {
    test('a receipt by another key, for another package or nonce, or before delivery: SIMCRED_RECEIPT_INVALID', async () => {
      const a = await referred(fresh());
      const stranger = await loadFactoryImage(t.config.pkiDir, fresh());
      const dsimId = a.module.dsimId;
      const send = (receipt: string, who = dsimId) =>
        post(t.deviceClient, a.registration.credentialingUrl, submitReceipt, { dsimId: who, receipt });

      // Referred but not delivered: no package awaits a receipt.
      expectRefusal(
        await send(
          await signReceipt(a.image.privateKey, {
            dsimId,
            packageId: '00000000-0000-4000-8000-000000000000',
            deviceNonce: a.session.deviceNonce,
          }),
        ),
        'SIMCRED_RECEIPT_INVALID',
      );
      const pkg = await a.agent.collectPackage(a.referral);
      const installed = await a.agent.install(pkg, a.session.deviceNonce);
      const claims = { dsimId, packageId: installed.packageId, deviceNonce: a.session.deviceNonce };
      // Signed by another device's key.
      expectRefusal(await send(await signReceipt(stranger.privateKey, claims)), 'SIMCRED_RECEIPT_INVALID');
      // Signed by the device, but for another package or another device nonce.
      expectRefusal(
        await send(
          await signReceipt(a.image.privateKey, {
            ...claims,
            packageId: '00000000-0000-4000-8000-000000000000',
          }),
        ),
        'SIMCRED_RECEIPT_INVALID',
      );
      expectRefusal(
        await send(await signReceipt(a.image.privateKey, { ...claims, deviceNonce: randomBytes(32) })),
        'SIMCRED_RECEIPT_INVALID',
      );
      assert.equal((await t.operator.deviceState(t.system.urls.credentialing, dsimId)).state, 'delivered');
      // The genuine receipt completes the record.
      const answer = await send(await signReceipt(a.image.privateKey, claims));
      assert.equal(answer.statusCode, 200, answer.text);
      assert.equal((await t.operator.deviceState(t.system.urls.credentialing, dsimId)).state, 'completed');
    });
  });
});
