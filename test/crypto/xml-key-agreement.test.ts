// The XML package's hand-written key agreement (src/crypto/xml-key-agreement.ts) on published vectors.
// Debian's xmlsec1 1.2.37 has no ECDH-ES key agreement (xmlsec 1.3 added it), so it cannot decrypt an EC
// device's XML package; these vectors stand in for it: RFC 7518 Appendix C (ECDH-ES P-256 and the
// ConcatKDF core), the W3C XML Encryption 1.1 interop vector DRV.1 (ConcatKDF with XML Encryption's own
// OtherInfo from ConcatKDFParams) and RFC 3394 §4.6 (AES-256 key wrap).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  aesKeyUnwrap,
  aesKeyWrap,
  concatKdf,
  ecdhEsUnwrapKey,
  ecdhEsWrapKey,
  xmlConcatKdfOtherInfo,
} from '../../src/crypto/xml-key-agreement.js';

const vectors = JSON.parse(
  readFileSync(new URL('../../../test/crypto/vectors/key-agreement.json', import.meta.url), 'utf8'),
);

/** RFC 7518 §4.6.2: each of AlgorithmID, PartyUInfo, PartyVInfo as a 32-bit big-endian length then bytes. */
function joseField(bytes: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

test('ECDH-ES and ConcatKDF: RFC 7518 Appendix C (xmlsec1 1.2 has no ECDH-ES to check against)', () => {
  const v = vectors.rfc7518AppendixC;
  const alice = createPrivateKey({ format: 'jwk', key: v.alice });
  const bob = createPublicKey({ format: 'jwk', key: { kty: 'EC', crv: 'P-256', x: v.bob.x, y: v.bob.y } });
  const z = diffieHellman({ privateKey: alice, publicKey: bob });
  assert.equal(z.toString('hex'), v.sharedSecretZHex);
  const suppPubInfo = Buffer.alloc(4);
  suppPubInfo.writeUInt32BE(v.keyDataLenBits);
  const otherInfo = Buffer.concat([
    joseField(Buffer.from(v.enc)),
    joseField(Buffer.from(v.apu)),
    joseField(Buffer.from(v.apv)),
    suppPubInfo,
  ]);
  assert.equal(concatKdf(z, v.keyDataLenBits / 8, otherInfo).toString('base64url'), v.derivedKeyBase64url);
});

test('ConcatKDF with XML Encryption 1.1 ConcatKDFParams: W3C interop vector DRV.1 decrypts', () => {
  const v = vectors.xmlenc11InteropDrv1;
  const otherInfo = xmlConcatKdfOtherInfo({
    algorithmId: v.algorithmId,
    partyUInfo: v.partyUInfo,
    partyVInfo: v.partyVInfo,
  });
  assert.ok(otherInfo);
  const key = concatKdf(Buffer.from(v.masterKeyHex, 'hex'), 32, otherInfo);
  const data = Buffer.from(v.cipherValueBase64, 'base64');
  const decipher = createDecipheriv('aes-256-cbc', key, data.subarray(0, 16));
  decipher.setAutoPadding(false); // the vector's plaintext is not padded (xmlsec's README)
  const plaintext = Buffer.concat([decipher.update(data.subarray(16)), decipher.final()]);
  assert.equal(plaintext.toString('hex'), v.plaintextHexUnit.repeat(v.plaintextUnits));
  // The padding-bit octet is part of the attribute, not of OtherInfo: kept, the vector does not decrypt.
  const unstripped = Buffer.from(v.algorithmId + v.partyUInfo + v.partyVInfo, 'hex');
  assert.notDeepEqual(concatKdf(Buffer.from(v.masterKeyHex, 'hex'), 32, unstripped), key);
});

test('ConcatKDFParams bit strings: only whole octets ("00" first), hex only', () => {
  assert.deepEqual(
    xmlConcatKdfOtherInfo({ algorithmId: '00414243', partyUInfo: '', partyVInfo: '00' }),
    Buffer.from('ABC'),
  );
  assert.equal(xmlConcatKdfOtherInfo({ algorithmId: '0141', partyUInfo: '', partyVInfo: '' }), undefined);
  assert.equal(xmlConcatKdfOtherInfo({ algorithmId: '00zz', partyUInfo: '', partyVInfo: '' }), undefined);
  assert.equal(xmlConcatKdfOtherInfo({ algorithmId: '004', partyUInfo: '', partyVInfo: '' }), undefined);
});

test('AES-256 key wrap: RFC 3394 §4.6', () => {
  const v = vectors.rfc3394Section4_6;
  const kek = Buffer.from(v.kekHex, 'hex');
  const wrapped = aesKeyWrap(kek, Buffer.from(v.keyDataHex, 'hex'));
  assert.equal(wrapped.toString('hex').toUpperCase(), v.ciphertextHex);
  assert.equal(aesKeyUnwrap(kek, wrapped).toString('hex').toUpperCase(), v.keyDataHex);
  wrapped[3]! ^= 1;
  assert.throws(() => aesKeyUnwrap(kek, wrapped));
});

test('ECDH-ES wrap and unwrap: the recipient recovers the key; another key or other parameters do not', () => {
  const device = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const params = { algorithmId: '0041', partyUInfo: '0042', partyVInfo: '0043' };
  const cek = Buffer.alloc(32, 7);
  const { originatorPoint, wrappedKey } = ecdhEsWrapKey(cek, device.publicKey, params);
  assert.equal(originatorPoint.length, 65);
  assert.deepEqual(ecdhEsUnwrapKey(wrappedKey, originatorPoint, device.privateKey, params), cek);
  assert.throws(() => ecdhEsUnwrapKey(wrappedKey, originatorPoint, other.privateKey, params));
  assert.throws(() =>
    ecdhEsUnwrapKey(wrappedKey, originatorPoint, device.privateKey, { ...params, partyVInfo: '0044' }),
  );
  const offCurve = Buffer.from(originatorPoint);
  offCurve[64]! ^= 1;
  assert.throws(() => ecdhEsUnwrapKey(wrappedKey, offCurve, device.privateKey, params));
});
