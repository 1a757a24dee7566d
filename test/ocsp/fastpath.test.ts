// The schema-free hot paths (src/ocsp/blocks.ts users): the certs-field memo of the strict client never
// lets a different response pass, the serial read from a certificate's first fields is the certificate's
// serial, and the responder's exact-encoding CertID index falls back to matching by value.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { CertID, OCSPRequest, Request, TBSRequest } from '@peculiar/asn1-ocsp';
import { AlgorithmIdentifier, Certificate, Version } from '@peculiar/asn1-x509';
import * as asn1js from 'asn1js';
import {
  certificateDer,
  certificateInfo,
  certificateSerial,
  derConstructed,
  derPrimitive,
  ocspCacheStats,
} from '../../src/ocsp/asn1.js';
import { buildOcspRequest, type BuiltRequest } from '../../src/ocsp/client.js';
import { clearOcspCaches, verifyOcspResponse } from '../../src/ocsp/verify.js';
import { parseRequest } from '../../src/ocsp/responder/engine.js';
import {
  IssuerIndex,
  prepareIssuer,
  type IssuerSource,
  type ServedIssuer,
} from '../../src/ocsp/responder/issuers.js';
import { decodeHeader } from '../../src/ocsp/blocks.js';
import { issueCertificate, parseSpki, buildName } from '../../src/pki/certificates.js';
import { deviceCaDelegate, goodAnswer, issuerOf, makePki, type TestPki } from './fixture.js';

let pki: TestPki;
let delegate: IssuerSource;
let served: ServedIssuer;

before(async () => {
  pki = await makePki(2);
  delegate = deviceCaDelegate(pki);
  served = prepareIssuer(delegate);
});
after(() => pki?.cleanup());

/** A request for a device and the responder's signed answer to it (in memory). */
function answer(device = 0, signer: ServedIssuer = served): { built: BuiltRequest; der: Buffer } {
  return goodAnswer(pki, pki.devices[device]!.pem, served, signer);
}

function check(der: Uint8Array, built: BuiltRequest, issuerPem = pki.deviceCa) {
  return verifyOcspResponse(der, {
    certId: built.certId,
    issuer: certificateInfo(certificateDer(issuerPem)),
    ...(built.nonce ? { nonce: built.nonce } : {}),
    now: new Date(),
    clockSkewSeconds: 60,
  });
}

const code = (expected: string) => (e: { code?: string; message?: string }) => {
  assert.equal(e.code, expected, e.message);
  return true;
};

test('certs-field memo: after a cached success, other signers, nonces, serials and issuers are still refused', () => {
  clearOcspCaches();
  const first = answer();
  assert.equal(check(first.der, first.built).status, 'good');
  assert.equal(ocspCacheStats.certsFieldParsed, 1);
  const hits = ocspCacheStats.certsFieldHits;
  const second = answer();
  assert.equal(check(second.der, second.built).status, 'good');
  assert.equal(ocspCacheStats.certsFieldHits, hits + 1, 'the delegate certificate field came from the memo');
  assert.equal(ocspCacheStats.certsFieldParsed, 1);

  // The same (cached) certs field, but the response signed by another key.
  const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const forged = answer(0, { ...served, signer: { ...served.signer, key: otherKey } });
  assert.throws(() => check(forged.der, forged.built), code('SIMCRED_OCSP_BAD_SIGNATURE'));
  // A genuine response, checked against another request's nonce, another serial, another issuer.
  const third = answer();
  assert.throws(() => check(third.der, second.built), code('SIMCRED_OCSP_NONCE_MISMATCH'));
  const otherDevice = answer(1);
  assert.throws(
    () => check(otherDevice.der, { ...third.built, nonce: otherDevice.built.nonce! }),
    code('SIMCRED_OCSP_CERTID_MISMATCH'),
  );
  assert.throws(
    () => check(third.der, third.built, pki.operatorCa),
    code('SIMCRED_OCSP_UNAUTHORIZED_SIGNER'),
  );
  // and the memo still answers a genuine response
  assert.equal(check(third.der, third.built).status, 'good');
});

test('anything after the DER element is refused: a response at the client, a request at the responder', () => {
  const genuine = answer();
  assert.equal(check(genuine.der, genuine.built).status, 'good');
  for (const tail of [Buffer.from([0x00]), Buffer.from([0x05, 0x00]), genuine.der]) {
    assert.throws(
      () => check(Buffer.concat([genuine.der, tail]), genuine.built),
      code('SIMCRED_OCSP_MALFORMED_RESPONSE'),
    );
  }
  const index = new IssuerIndex([served]);
  assert.ok(parseRequest(genuine.built.der, index).ok);
  const padded = parseRequest(Buffer.concat([genuine.built.der, Buffer.from([0x00])]), index);
  assert.deepEqual(padded.ok ? 'accepted' : padded.error, 'malformedRequest');
});

test('certs-field memo: one changed byte in the delegate certificate is another field, decoded and refused', () => {
  clearOcspCaches();
  const good = answer();
  assert.equal(check(good.der, good.built).status, 'good');
  const parsed = ocspCacheStats.certsFieldParsed;
  // The certificate is the last element of the response and its signature the certificate's last bytes:
  // the tbsResponseData signature still verifies, the certificate no longer does.
  const tampered = answer();
  const bytes = Buffer.from(tampered.der);
  bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0x01;
  assert.throws(
    () => check(bytes, tampered.built),
    (e: { code?: string; message?: string }) =>
      code('SIMCRED_OCSP_UNAUTHORIZED_SIGNER')(e) && /not signed by the issuer/.test(e.message ?? ''),
  );
  assert.equal(ocspCacheStats.certsFieldParsed, parsed + 1, 'the changed field was decoded, not looked up');
  // The same tampered response again: its (memoised) decode is still refused.
  assert.throws(() => check(bytes, tampered.built), code('SIMCRED_OCSP_UNAUTHORIZED_SIGNER'));
  // Bytes appended after the certs field, or the field cut short: not a BasicOCSPResponse.
  const cut = Buffer.from(tampered.der.subarray(0, tampered.der.length - 1));
  assert.throws(() => check(cut, tampered.built), code('SIMCRED_OCSP_MALFORMED_RESPONSE'));
});

test('certificateSerial reads exactly the serialNumber INTEGER (leading zero, no version field)', () => {
  for (const pem of [...pki.devices.map((d) => d.pem), pki.deviceCa, pki.operatorCa, pki.packageSigner]) {
    const der = certificateDer(pem);
    assert.equal(Buffer.from(certificateSerial(der)).toString('hex'), certificateInfo(der).serialHex);
  }
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = parseSpki(publicKey.export({ format: 'der', type: 'spki' }));
  const serial = Buffer.from('00ff0102030405060708090a0b0c0d0e0f', 'hex'); // DER keeps the 00 (positive)
  const der = issueCertificate(
    {
      serial,
      subject: buildName([['2.5.4.3', 'serial test']]),
      spki,
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: new Date(Date.now() + 3600_000),
      extensions: [],
    },
    issuerOf(pki.deviceCa, privateKey),
  );
  assert.deepEqual(Buffer.from(certificateSerial(der)), serial);
  // A v1 certificate has no [0] version field before the serial.
  const v1 = AsnConvert.parse(der, Certificate);
  v1.tbsCertificate.version = Version.v1;
  v1.tbsCertificate.extensions = undefined;
  const v1Der = new Uint8Array(AsnConvert.serialize(v1));
  const outer = decodeHeader(v1Der).headerLength;
  const first = outer + decodeHeader(v1Der.subarray(outer)).headerLength;
  assert.equal(v1Der[first], 0x02, 'the first tbsCertificate field is the INTEGER');
  assert.deepEqual(Buffer.from(certificateSerial(v1Der)), serial);
  // Garbage, a truncated certificate, trailing bytes: errors, never a serial.
  assert.throws(() => certificateSerial(Buffer.from('not a certificate')));
  assert.throws(() => certificateSerial(der.subarray(0, 40)));
  assert.throws(() => certificateSerial(Buffer.concat([der, Buffer.from([0])])));
});

test('responder CertID index: exact encodings echoed, other encodings matched by value, others refused', () => {
  const index = new IssuerIndex([served]);
  const base = buildOcspRequest({ certificate: pki.devices[0]!.pem, issuer: pki.deviceCa, nonce: false });
  const requestWith = (certId: CertID) =>
    Buffer.from(
      AsnConvert.serialize(
        new OCSPRequest({ tbsRequest: new TBSRequest({ requestList: [new Request({ reqCert: certId })] }) }),
      ),
    );
  const variant = (hashAlgorithm: AlgorithmIdentifier, nameHash?: ArrayBuffer) =>
    new CertID({
      hashAlgorithm,
      issuerNameHash: new OctetString(nameHash ?? base.certId.issuerNameHash.buffer),
      issuerKeyHash: base.certId.issuerKeyHash,
      serialNumber: base.certId.serialNumber,
    });

  // NULL parameters (what we and OpenSSL send) and absent parameters: echoed as sent.
  const absent = variant(new AlgorithmIdentifier({ algorithm: '1.3.14.3.2.26' }));
  for (const certId of [base.certId, absent]) {
    const parsed = parseRequest(requestWith(certId), index);
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.certIds[0], Buffer.from(AsnConvert.serialize(certId)));
    assert.equal(parsed.serials[0], certificateInfo(certificateDer(pki.devices[0]!.pem)).serialHex);
  }
  // Unusual parameters: not an indexed encoding, matched by value, answered with NULL parameters.
  const odd = variant(
    new AlgorithmIdentifier({ algorithm: '1.3.14.3.2.26', parameters: new Uint8Array([0x30, 0x00]).buffer }),
  );
  const parsedOdd = parseRequest(requestWith(odd), index);
  assert.ok(parsedOdd.ok);
  assert.deepEqual(parsedOdd.certIds[0], Buffer.from(AsnConvert.serialize(base.certId)));
  // Another issuer's hashes: unauthorized; an unsupported hash algorithm (MD5): malformedRequest.
  const otherName = new Uint8Array(base.certId.issuerNameHash.buffer.slice(0));
  otherName[0] = otherName[0]! ^ 0xff;
  const foreign = parseRequest(requestWith(variant(base.certId.hashAlgorithm, otherName.buffer)), index);
  assert.equal(foreign.ok ? 'ok' : foreign.error, 'unauthorized');
  const md5 = variant(new AlgorithmIdentifier({ algorithm: '1.2.840.113549.2.5', parameters: null }));
  const parsedMd5 = parseRequest(requestWith(md5), index);
  assert.equal(parsedMd5.ok ? 'ok' : parsedMd5.error, 'malformedRequest');
  // Not DER at all, or a request cut short.
  for (const bad of [Buffer.from('garbage'), base.der.subarray(0, base.der.length - 3)]) {
    const parsed = parseRequest(bad, index);
    assert.equal(parsed.ok ? 'ok' : parsed.error, 'malformedRequest');
  }
});

test('derConstructed and derPrimitive write the bytes asn1js writes for the whole element, at every length form', () => {
  // Short form, the 127/128 boundary, one- and two-octet long forms, and 65 536 (three length octets).
  for (const length of [0, 1, 127, 128, 255, 256, 1000, 65_535, 65_536]) {
    const content = Buffer.alloc(length, length & 0xff);
    const integer = Buffer.concat([Buffer.of(0x7f), content]); // a positive two's complement INTEGER
    assert.deepEqual(
      derPrimitive(4, content),
      Buffer.from(new asn1js.OctetString({ valueHex: content }).toBER()),
    );
    assert.deepEqual(
      derPrimitive(2, integer),
      Buffer.from(new asn1js.Integer({ valueHex: integer }).toBER()),
    );
    const bits = new asn1js.BitString({ valueHex: content });
    assert.deepEqual(derPrimitive(3, Uint8Array.of(0), content), Buffer.from(bits.toBER(false)));
    const inner = Buffer.from(new asn1js.OctetString({ valueHex: content }).toBER(false));
    const sequence = new asn1js.Sequence({ value: [new asn1js.OctetString({ valueHex: content })] });
    assert.deepEqual(derConstructed('universal', 16, [inner]), Buffer.from(sequence.toBER(false)));
    const tagged = new asn1js.Constructed({
      idBlock: { tagClass: 3, tagNumber: 1 },
      value: [new asn1js.OctetString({ valueHex: content })],
    });
    assert.deepEqual(
      derConstructed('context', 1, [inner.subarray(0, 2), inner.subarray(2)]),
      Buffer.from(tagged.toBER(false)),
    );
    // A tag number that needs more than the one identifier octet (not memoised, still asn1js's octets).
    for (const tagNumber of [30, 31, 200]) {
      const high = new asn1js.Constructed({
        idBlock: { tagClass: 3, tagNumber },
        value: [new asn1js.OctetString({ valueHex: content })],
      });
      assert.deepEqual(derConstructed('context', tagNumber, [inner]), Buffer.from(high.toBER(false)));
    }
  }
});
