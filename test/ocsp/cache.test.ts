// The hot-path memo tables (src/crypto/bounded-cache.ts users): each is keyed by the exact DER it was derived
// from, so a *different* input is never answered from it; and the hand-assembled encodings (asn1js
// writing tags and lengths around asn1-schema-encoded parts) are byte for byte what asn1-schema alone
// would encode.
import { isSimcredError } from '../../src/errors/index.js';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  BasicOCSPResponse,
  CertID,
  CertStatus,
  OCSPRequest,
  OCSPResponse,
  Request,
  ResponseData,
  RevokedInfo,
  SingleResponse,
  TBSRequest,
  id_pkix_ocsp_nonce,
} from '@peculiar/asn1-ocsp';
import { CRLReason, Extension } from '@peculiar/asn1-x509';
import { certificateDer, certificateInfo, ocspCacheStats, publicKeyFromSpki } from '../../src/ocsp/asn1.js';
import { buildOcspRequest } from '../../src/ocsp/client.js';
import { clearOcspCaches, verifyOcspResponse } from '../../src/ocsp/verify.js';
import { parseRequest, signResponse } from '../../src/ocsp/responder/engine.js';
import { IssuerIndex, prepareIssuer, type IssuerSource } from '../../src/ocsp/responder/issuers.js';
import {
  certificatePublicKey,
  certificateStats,
  clearCertificateCaches,
  parseCertificates,
} from '../../src/crypto/certificates.js';
import { parseDeviceChain, verifyDeviceChain } from '../../src/pki/device-chain.js';
import type { CertificateStatus } from '../../src/pki/store.js';
import { deviceCaDelegate, goodAnswer, issuerOf, makeCert, makePki, type TestPki } from './fixture.js';

let pki: TestPki;
let delegate: IssuerSource;

before(async () => {
  pki = await makePki(2);
  delegate = deviceCaDelegate(pki);
});
after(() => pki?.cleanup());

/** One request / response round trip in memory: client request → responder → strict client check. */
function roundTrip(source: IssuerSource, options: { now?: Date; certificate?: string } = {}) {
  const issuer = prepareIssuer(source);
  const { built, der } = goodAnswer(pki, options.certificate ?? pki.devices[0]!.pem, issuer);
  return verifyOcspResponse(der, {
    certId: built.certId,
    issuer: certificateInfo(certificateDer(pki.deviceCa)),
    nonce: built.nonce!,
    now: options.now ?? new Date(),
    clockSkewSeconds: 60,
  });
}

const refused = (e: { code?: string; message?: string }, why: RegExp) => {
  assert.equal(e.code, 'SIMCRED_OCSP_UNAUTHORIZED_SIGNER', e.message);
  assert.match(e.message ?? '', why);
  return true;
};

test('delegate cache: a delegate signed by another key is refused after a good one was cached', () => {
  clearOcspCaches();
  assert.equal(roundTrip(delegate).status, 'good');
  const verified = ocspCacheStats.delegateVerifications;
  const hits = ocspCacheStats.delegateHits;
  assert.equal(roundTrip(delegate).status, 'good');
  assert.equal(
    ocspCacheStats.delegateVerifications,
    verified,
    'the second response reuses the authorisation',
  );
  assert.equal(ocspCacheStats.delegateHits, hits + 1);

  // Same issuer name, OCSP-signing EKU, valid — but signed by a key that is not the device CA's.
  const forger = issuerOf(pki.deviceCa, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
  const impostor = makeCert({ cn: 'device-ca OCSP', issuer: forger, ocspSigner: true });
  const impostorSource = { ...delegate, signerCertPem: impostor.pem, signerKeyPem: impostor.keyPem };
  for (let i = 0; i < 2; i++) {
    assert.throws(
      () => roundTrip(impostorSource),
      (e: { code?: string; message?: string }) => refused(e, /not signed by the issuer/),
    );
  }
  // and the good delegate is still good
  assert.equal(roundTrip(delegate).status, 'good');
});

test('delegate cache: validity and EKU are checked on every response, even for a cached delegate', () => {
  clearOcspCaches();
  assert.equal(roundTrip(delegate).status, 'good'); // authorisation cached
  const signerNotAfter = certificateInfo(certificateDer(delegate.signerCertPem!)).notAfter;
  assert.throws(
    () => roundTrip(delegate, { now: new Date(signerNotAfter.getTime() + 86_400_000) }),
    (e: { code?: string; message?: string }) => refused(e, /not valid now/),
  );
  // a certificate the CA did sign, without id-kp-OCSPSigning, is refused every time
  const caIssuer = issuerOf(pki.deviceCa, pki.deviceCaKey);
  const noEku = makeCert({ cn: 'no eku', issuer: caIssuer });
  const source = { ...delegate, signerCertPem: noEku.pem, signerKeyPem: noEku.keyPem };
  for (let i = 0; i < 2; i++) {
    assert.throws(
      () => roundTrip(source),
      (e: { code?: string; message?: string }) => refused(e, /id-kp-OCSPSigning/),
    );
  }
});

test('certificate info cache: keyed by the complete DER, so one changed byte is a different entry', () => {
  clearOcspCaches();
  const der = certificateDer(pki.devices[0]!.pem);
  const first = certificateInfo(der);
  assert.equal(certificateInfo(Buffer.from(der)), first, 'same bytes: the cached entry');
  // Change the last byte (inside the signature value): still a parsable certificate, but other bytes.
  const changed = Buffer.from(der);
  changed[changed.length - 1] = changed[changed.length - 1]! ^ 0x01;
  const other = certificateInfo(changed);
  assert.notEqual(other, first);
  assert.deepEqual(other.der, changed);
  assert.deepEqual(first.der, der);
  // a different certificate is never the cached one
  const second = certificateInfo(certificateDer(pki.devices[1]!.pem));
  assert.notEqual(second.serialHex, first.serialHex);
});

test('public key cache: keyed by the exact SPKI bytes', () => {
  clearOcspCaches();
  const a = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
  const b = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
  const spkiA = a.export({ format: 'der', type: 'spki' });
  const spkiB = b.export({ format: 'der', type: 'spki' });
  const keyA = publicKeyFromSpki(spkiA);
  assert.equal(publicKeyFromSpki(Buffer.from(spkiA)), keyA);
  const keyB = publicKeyFromSpki(spkiB);
  assert.notEqual(keyB, keyA);
  assert.deepEqual(keyB.export({ format: 'der', type: 'spki' }), spkiB);
  assert.ok(keyA.equals(a) && keyB.equals(b));
});

test('CertID parts are per issuer: a request under another issuer carries that issuer’s hashes', () => {
  const device = buildOcspRequest({ certificate: pki.devices[0]!.pem, issuer: pki.deviceCa, nonce: false });
  const operator = buildOcspRequest({
    certificate: pki.packageSigner,
    issuer: pki.operatorCa,
    nonce: false,
  });
  const again = buildOcspRequest({ certificate: pki.devices[0]!.pem, issuer: pki.deviceCa, nonce: false });
  assert.deepEqual(again.der, device.der);
  assert.notDeepEqual(
    Buffer.from(operator.certId.issuerKeyHash.buffer),
    Buffer.from(device.certId.issuerKeyHash.buffer),
  );
  assert.notDeepEqual(
    Buffer.from(operator.certId.issuerNameHash.buffer),
    Buffer.from(device.certId.issuerNameHash.buffer),
  );
});

test('requests are encoded exactly as asn1-schema encodes an OCSPRequest', () => {
  for (const hash of ['sha1', 'sha256'] as const) {
    for (const nonce of [false, Buffer.alloc(16, 7), Buffer.alloc(32, 0xff)] as const) {
      const built = buildOcspRequest({ certificate: pki.devices[1]!.pem, issuer: pki.deviceCa, nonce, hash });
      const tbsRequest = new TBSRequest({ requestList: [new Request({ reqCert: built.certId })] });
      if (built.nonce) {
        tbsRequest.requestExtensions = [
          new Extension({ extnID: id_pkix_ocsp_nonce, extnValue: new OctetString(built.nonce) }),
        ];
      }
      const reference = Buffer.from(AsnConvert.serialize(new OCSPRequest({ tbsRequest })));
      assert.deepEqual(built.der, reference, `${hash}, nonce ${nonce === false ? 'none' : nonce.byteLength}`);
    }
  }
});

test('responses are encoded exactly as asn1-schema encodes them (good, revoked, unknown; nonce or not)', () => {
  const issuer = prepareIssuer(delegate);
  const selfSigned = prepareIssuer({
    name: 'device-ca',
    certPem: pki.deviceCa,
    signerKeyPem: pki.pem(pki.manifest.manufacturer.deviceCa.key),
  });
  const index = new IssuerIndex([issuer]);
  const requests = pki.devices.map((d) =>
    buildOcspRequest({ certificate: d.pem, issuer: pki.deviceCa, nonce: false }),
  );
  const withNonce = buildOcspRequest({ certificate: pki.devices[0]!.pem, issuer: pki.deviceCa });
  const revoked: CertificateStatus = {
    status: 'revoked',
    revokedAt: new Date('2026-01-02T03:04:05.678Z'),
    reason: 1,
  };
  const cases: { statuses: CertificateStatus[]; nonce: boolean }[] = [
    { statuses: [{ status: 'good' }], nonce: true },
    { statuses: [revoked], nonce: false },
    { statuses: [{ status: 'unknown' }, { status: 'good' }], nonce: false },
  ];
  for (const served of [issuer, selfSigned]) {
    for (const { statuses, nonce } of cases) {
      const parsed = parseRequest(nonce ? withNonce.der : requests[0]!.der, index);
      assert.ok(parsed.ok);
      const certIds = statuses.map((_, i) => (i === 0 ? parsed.certIds[0]! : requests[i]!.certId));
      const now = new Date('2026-11-25T12:00:00.250Z');
      const signed = signResponse({
        issuer: served,
        certIds,
        statuses,
        now,
        validitySeconds: 600,
        ...(parsed.nonce ? { nonce: parsed.nonce } : {}),
      });
      // The whole response re-encodes to itself through asn1-schema's own classes …
      const response = AsnConvert.parse(signed.der, OCSPResponse);
      assert.deepEqual(Buffer.from(AsnConvert.serialize(response)), signed.der);
      const basic = AsnConvert.parse(response.responseBytes!.response.buffer, BasicOCSPResponse);
      assert.deepEqual(
        Buffer.from(AsnConvert.serialize(basic)),
        Buffer.from(response.responseBytes!.response.buffer),
      );
      assert.equal((basic.certs ?? []).length, served === issuer ? 1 : 0);
      // … and its tbsResponseData is what asn1-schema encodes for the same content.
      const thisUpdate = new Date('2026-11-25T12:00:00Z');
      const nextUpdate = new Date('2026-11-25T12:10:00Z');
      const reference = new ResponseData({
        responderID: served.signer.responderId,
        producedAt: thisUpdate,
        responses: certIds.map(
          (certID, i) =>
            new SingleResponse({
              certID: certID instanceof Uint8Array ? AsnConvert.parse(certID, CertID) : certID,
              certStatus:
                statuses[i]!.status === 'good'
                  ? new CertStatus({ good: null })
                  : statuses[i]!.status === 'revoked'
                    ? new CertStatus({
                        revoked: new RevokedInfo({
                          revocationTime: new Date('2026-01-02T03:04:05Z'),
                          revocationReason: new CRLReason(1),
                        }),
                      })
                    : new CertStatus({ unknown: null }),
              thisUpdate,
              nextUpdate,
            }),
        ),
        ...(parsed.nonce
          ? {
              responseExtensions: [
                new Extension({ extnID: id_pkix_ocsp_nonce, extnValue: new OctetString(parsed.nonce) }),
              ],
            }
          : {}),
      });
      assert.deepEqual(Buffer.from(basic.tbsResponseDataRaw!), Buffer.from(AsnConvert.serialize(reference)));
    }
  }
});

test('chain memo: a link is remembered by both DERs; a forged CA or leaf under the same names fails', async () => {
  clearCertificateCaches();
  const roots = parseCertificates([pki.manufacturerRoot]);
  const b64 = (pem: string) => pem.replace(/-----[^-]+-----|\s/g, '');
  const good = [b64(pki.devices[0]!.pem), b64(pki.deviceCa)];
  const now = new Date();
  await verifyDeviceChain(parseDeviceChain(good), { roots, now });
  const verified = certificateStats.linkVerifications;
  await verifyDeviceChain(parseDeviceChain(good), { roots, now });
  // new objects, same bytes: both links answered from the memo
  assert.equal(certificateStats.linkVerifications, verified);

  // A CA with the device CA's issuer (the root's name) but signed by another key.
  const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const forgedCa = makeCert({ cn: 'device CA', issuer: issuerOf(pki.manufacturerRoot, otherKey), ca: true });
  await assert.rejects(
    verifyDeviceChain(parseDeviceChain([good[0]!, b64(forgedCa.pem)]), { roots, now }),
    (e: { code?: string }) => e.code === 'SIMCRED_CERT_UNTRUSTED',
  );
  // A leaf naming the real device CA as issuer, signed by another key, with the real (cached) CA.
  const forgedLeaf = makeCert({ cn: 'leaf', issuer: issuerOf(pki.deviceCa, otherKey) });
  await assert.rejects(
    verifyDeviceChain(parseDeviceChain([b64(forgedLeaf.pem), good[1]!]), { roots, now }),
    (e: { code?: string; message?: string }) =>
      e.code === 'SIMCRED_CERT_UNTRUSTED' && /does not verify/.test(e.message ?? ''),
  );
});

test('parse and key caches: the same text is one object (leaf or CA), other text another; keys follow the DER', () => {
  clearCertificateCaches();
  const b64 = (pem: string) => pem.replace(/-----[^-]+-----|\s/g, '');
  const a = parseDeviceChain([b64(pki.devices[0]!.pem), b64(pki.deviceCa)]);
  const b = parseDeviceChain([b64(pki.devices[0]!.pem), b64(pki.deviceCa)]);
  assert.equal(a[0], b[0], 'a leaf sent again (the next step of one device) comes from the parse cache');
  assert.equal(a[1], b[1], 'the device CA comes from the parse cache');
  const leafText = b64(pki.devices[0]!.pem);
  // Other base64 text of the same DER is not canonical, so it never reaches the cache at the edge.
  assert.throws(
    () => parseDeviceChain([`${leafText.slice(0, 64)}\n${leafText.slice(64)}`]),
    (err: unknown) => isSimcredError(err) && err.code === 'SIMCRED_CERT_INVALID',
  );
  const c = parseDeviceChain([b64(pki.devices[0]!.pem), b64(pki.operatorCa)]);
  assert.notEqual(c[1], a[1]);
  assert.equal(c[1]!.subject === a[1]!.subject, false);
  // keys: a re-parsed certificate gets the cached key; another certificate its own
  const [root1] = parseCertificates([pki.manufacturerRoot]);
  const [root2] = parseCertificates([`${pki.manufacturerRoot}\n`]); // other text, same DER
  assert.notEqual(root1, root2);
  assert.equal(certificatePublicKey(root1!), certificatePublicKey(root2!));
  assert.notEqual(certificatePublicKey(a[1]!), certificatePublicKey(root1!));
  assert.equal(certificatePublicKey(a[1]!).equals(certificatePublicKey(c[1]!)), false);
});
