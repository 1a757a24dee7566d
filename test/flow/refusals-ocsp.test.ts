import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { BasicOCSPResponse, OCSPResponse } from '@peculiar/asn1-ocsp';
import { fromBase64url } from '../../src/crypto/index.js';
import { startOcspResponder, type IssuerSource } from '../../src/ocsp/index.js';
import { parseRequest, signResponse } from '../../src/ocsp/responder/engine.js';
import { IssuerIndex, loadIssuersFromPki, prepareIssuer } from '../../src/ocsp/responder/issuers.js';
import { readManifest } from '../../src/pki/index.js';
import { proveSession } from '../../src/protocol/credentialing.js';
import { expectAudited, expectRefusal } from '../helpers/assert.js';
import { aboutAnotherSerial, issuerOf, makeCert, rawServer, type Craft } from '../ocsp/fixture.js';
import { startTestSystem, type TestSystem } from './harness.js';

/** What the stand-in responder answers to the credentialing server's request. */
/**
 * Step 4's last check: the credentialing server's strict OCSP client asks the responder about the
 * device certificate. Here the responder on the OCSP port is replaced by one that answers badly in each
 * way the client refuses (the bad answers of test/ocsp/client.test.ts, now through the running roles);
 * a device that is otherwise genuine is refused with the client's code, gets no IMSI, and its session
 * is undone. Then the genuine responder returns and a device completes.
 */
describe('refusals of what the OCSP responder answers (step 4)', () => {
  let t: TestSystem;
  let devices: string[];
  let next = 0;
  const fresh = () => devices[next++]!;
  let ocspPort: number;
  /** The CAs as the genuine responder serves them, each with its delegated OCSP signer. */
  let served: IssuerSource[];
  let deviceCa: IssuerSource;
  let deviceCaKey: KeyObject;
  let standIn: { close: () => Promise<void> } | undefined;
  let genuine: { close: () => Promise<void> } | undefined;

  before(async () => {
    t = await startTestSystem({ registration: { ttlSeconds: 3600 } });
    devices = await t.manufacture(10);
    await t.register(devices);
    served = loadIssuersFromPki(t.config.pkiDir);
    deviceCa = served.find((source) => source.name === 'device-ca')!;
    const manifest = readManifest(t.config.pkiDir);
    deviceCaKey = createPrivateKey(readFileSync(join(t.config.pkiDir, manifest.manufacturer.deviceCa.key)));
    ocspPort = Number(new URL(t.system.urls.ocsp).port);
    await t.system.servers.ocsp.close();
  });
  after(async () => {
    await standIn?.close();
    await genuine?.close();
    await t.close();
  });

  /**
   * Puts on the OCSP port a responder that answers every request with `craft`'s bytes, signed for the
   * device CA by `deviceCaSigner` (its genuine delegate when omitted).
   */
  async function answerWith(craft: Craft, deviceCaSigner: IssuerSource = deviceCa): Promise<void> {
    await standIn?.close();
    const index = new IssuerIndex(
      served.map((source) => prepareIssuer(source.name === 'device-ca' ? deviceCaSigner : source)),
    );
    standIn = await rawServer((body) => {
      const parsed = parseRequest(body, index);
      // The credentialing server's request is well-formed; were it not, the stand-in's garbage would
      // fail the test on the wrong code.
      return { body: parsed.ok ? craft({ issuer: parsed.issuer, parsed }) : Buffer.from('unreadable') };
    }, ocspPort);
  }

  /** A genuine "good" answer, made at `now` + `shift` ms, valid for `validitySeconds`. */
  const good =
    (shift = 0, validitySeconds = 3600): Craft =>
    ({ issuer, parsed }) =>
      signResponse({
        issuer,
        certIds: parsed.certIds,
        statuses: parsed.certIds.map(() => ({ status: 'good' as const })),
        now: new Date(Date.now() + shift),
        validitySeconds,
        ...(parsed.nonce ? { nonce: parsed.nonce } : {}),
      }).der;

  /**
   * A genuine device proves its session (step 4) against the responder of the moment: the device's raw
   * answer, after which no IMSI was allocated, the session is gone (proving it again is
   * SIMCRED_SESSION_UNKNOWN) and the operator sees the device still registered, with the refusal audited.
   */
  async function proveAgainstThisResponder() {
    const dsimId = fresh();
    const { agent, module } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const session = await agent.openSession(registration);
    const proof = module.signProof({
      challenge: fromBase64url(session.challenge),
      sessionNonce: session.sessionNonce,
    });
    const prove = () =>
      t.deviceClient.send(
        `${registration.credentialingUrl}${proveSession.path.replace(':sessionId', session.sessionId)}`,
        'POST',
        JSON.stringify({ certificateChain: module.certificateChain, ...proof }),
        'application/json',
      );
    const answered = await prove();
    assert.equal(await t.subscriber(dsimId), undefined, 'no IMSI was allocated');
    const state = await t.operator.deviceState(t.system.urls.credentialing, dsimId);
    assert.equal(state.state, 'registered');
    assert.equal(state.provisioningServer, null);
    expectRefusal(await prove(), 'SIMCRED_SESSION_UNKNOWN');
    return { answered, state };
  }

  test('nothing listening on the OCSP port: SIMCRED_OCSP_UNREACHABLE, a 503 with Retry-After', async () => {
    await standIn?.close();
    standIn = undefined;
    const { answered, state } = await proveAgainstThisResponder();
    assert.ok(answered.headers?.['retry-after'], 'Retry-After');
    expectRefusal(answered, 'SIMCRED_OCSP_UNREACHABLE');
    expectAudited(state, 'failed', 'SIMCRED_OCSP_UNREACHABLE');
  });

  test('bytes that are no OCSP response: SIMCRED_OCSP_MALFORMED_RESPONSE', async () => {
    await answerWith(() => Buffer.from('garbage, not DER'));
    const { answered, state } = await proveAgainstThisResponder();
    expectRefusal(answered, 'SIMCRED_OCSP_MALFORMED_RESPONSE');
    expectAudited(state, 'failed', 'SIMCRED_OCSP_MALFORMED_RESPONSE');
  });

  test('a genuine response altered after signing: SIMCRED_OCSP_BAD_SIGNATURE', async () => {
    await answerWith((ctx) => {
      const response = AsnConvert.parse(good()(ctx), OCSPResponse);
      const basic = AsnConvert.parse(response.responseBytes!.response.buffer, BasicOCSPResponse);
      const signature = new Uint8Array(basic.signature.slice(0));
      signature[signature.length - 3] = signature[signature.length - 3]! ^ 0x01;
      basic.signature = signature.buffer;
      response.responseBytes!.response = new OctetString(AsnConvert.serialize(basic));
      return Buffer.from(AsnConvert.serialize(response));
    });
    const { answered, state } = await proveAgainstThisResponder();
    expectRefusal(answered, 'SIMCRED_OCSP_BAD_SIGNATURE');
    expectAudited(state, 'failed', 'SIMCRED_OCSP_BAD_SIGNATURE');
  });

  test('signed by an OCSP signer the device CA never delegated to: SIMCRED_OCSP_UNAUTHORIZED_SIGNER', async () => {
    const foreignCa = makeCert({ cn: 'foreign CA', ca: true });
    const foreignSigner = makeCert({ cn: 'foreign OCSP signer', issuer: foreignCa.issuer, ocspSigner: true });
    await answerWith(good(), {
      ...deviceCa,
      signerCertPem: foreignSigner.pem,
      signerKeyPem: foreignSigner.keyPem,
    });
    const first = await proveAgainstThisResponder();
    expectRefusal(first.answered, 'SIMCRED_OCSP_UNAUTHORIZED_SIGNER');
    expectAudited(first.state, 'failed', 'SIMCRED_OCSP_UNAUTHORIZED_SIGNER');

    // Issued by the device CA itself, but not for OCSP signing (no id-kp-OCSPSigning).
    const noEku = makeCert({
      cn: 'device CA, not an OCSP signer',
      issuer: issuerOf(deviceCa.certPem, deviceCaKey),
    });
    await answerWith(good(), { ...deviceCa, signerCertPem: noEku.pem, signerKeyPem: noEku.keyPem });
    const second = await proveAgainstThisResponder();
    expectRefusal(second.answered, 'SIMCRED_OCSP_UNAUTHORIZED_SIGNER');
  });

  test('another nonce echoed: SIMCRED_OCSP_NONCE_MISMATCH', async () => {
    const other = Buffer.from(AsnConvert.serialize(new OctetString(Buffer.alloc(16, 9))));
    await answerWith(
      ({ issuer, parsed }) =>
        signResponse({
          issuer,
          certIds: parsed.certIds,
          statuses: parsed.certIds.map(() => ({ status: 'good' as const })),
          nonce: other,
          now: new Date(),
          validitySeconds: 3600,
        }).der,
    );
    const { answered, state } = await proveAgainstThisResponder();
    expectRefusal(answered, 'SIMCRED_OCSP_NONCE_MISMATCH');
    expectAudited(state, 'failed', 'SIMCRED_OCSP_NONCE_MISMATCH');
  });

  test('a response whose nextUpdate passed an hour ago: SIMCRED_OCSP_STALE', async () => {
    // Made two hours ago, valid for one: far outside any configured skew, whatever the machine's load.
    await answerWith(good(-2 * 3600_000, 3600));
    const { answered, state } = await proveAgainstThisResponder();
    expectRefusal(answered, 'SIMCRED_OCSP_STALE');
    expectAudited(state, 'failed', 'SIMCRED_OCSP_STALE');
  });

  test('a response about another certificate: SIMCRED_OCSP_CERTID_MISMATCH', async () => {
    await answerWith(aboutAnotherSerial);
    const { answered, state } = await proveAgainstThisResponder();
    expectRefusal(answered, 'SIMCRED_OCSP_CERTID_MISMATCH');
    expectAudited(state, 'failed', 'SIMCRED_OCSP_CERTID_MISMATCH');
  });

  test('a stand-in answering honestly is accepted: the refusals above are about the answers, not the stand-in', async () => {
    await answerWith(good());
    const dsimId = fresh();
    const result = await (await t.device(dsimId)).agent.onboard();
    assert.equal(result.subscription.imsi, (await t.subscriber(dsimId))!.imsi);
  });

  test('the genuine responder back on its port: a device completes', async () => {
    await standIn?.close();
    standIn = undefined;
    genuine = await startOcspResponder({
      pkiDir: t.config.pkiDir,
      host: t.config.host,
      port: ocspPort,
      logger: t.logger,
    });
    const dsimId = fresh();
    const result = await (await t.device(dsimId)).agent.onboard();
    assert.equal(result.subscription.imsi, (await t.subscriber(dsimId))!.imsi);
  });
});
