import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, webcrypto } from 'node:crypto';
import { derViolation } from '../../src/crypto/der.js';
import * as x509 from '../../src/crypto/x509.js';

/** A freshly made self-signed certificate's DER, as @peculiar/x509 encodes it. */
async function testCertificateDer(): Promise<Buffer> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=der test',
    notBefore: new Date('2026-01-01T00:00:00Z'),
    notAfter: new Date('2027-01-01T00:00:00Z'),
    signingAlgorithm: alg,
    keys,
  });
  return Buffer.from(cert.rawData);
}

const hex = (h: string) => Buffer.from(h.replace(/\s+/g, ''), 'hex');

test('DER passes; each way of not being DER is named (X.690 §8, §10–11)', async () => {
  const der = await testCertificateDer();
  assert.equal(derViolation(der), undefined);
  assert.equal(derViolation(hex('3006 020101 0101ff')), undefined);
  const cases: [string, Buffer, RegExp][] = [
    ['empty', Buffer.alloc(0), /empty/],
    ['trailing byte', Buffer.concat([der, Buffer.of(0)]), /1 bytes after the value/],
    ['indefinite length', hex('3080 020101 0000'), /indefinite length/],
    ['long form for a short length', hex('308103 020101'), /shortest form/],
    ['length with a leading zero octet', hex('30820003 020101'), /shortest form/],
    ['length in five octets', hex('3085 0000000003 020101'), /more than four octets/],
    ['child runs past its SEQUENCE', hex('3003 020201 00'), /past the enclosing element/],
    ['length past the input', hex('3005 020101'), /past the enclosing element/],
    ['truncated header', hex('30'), /truncated/],
    ['constructed OCTET STRING', hex('2403 040100'), /constructed form of a primitive type/],
    ['primitive SEQUENCE', hex('1001 00'), /primitive SEQUENCE/],
    ['BOOLEAN 0x01', hex('010101'), /BOOLEAN/],
    ['INTEGER with a redundant leading zero', hex('02020001'), /fewest octets/],
    ['INTEGER with a redundant leading 0xff', hex('0202ff80'), /fewest octets/],
    ['empty INTEGER', hex('0200'), /empty INTEGER/],
    ['NULL with contents', hex('050100'), /NULL/],
    ['BIT STRING with 8 unused bits', hex('03020800'), /BIT STRING/],
    ['high tag number below 31', hex('1f0500'), /shortest form/],
    ['high tag number with a leading zero', hex('1f801f00'), /leading zero/],
  ];
  for (const [what, bytes, why] of cases) assert.match(derViolation(bytes) ?? 'accepted', why, what);
  // A high tag number above 30 is DER.
  assert.equal(derViolation(hex('9f1f0100')), undefined);
});

test('any bytes get an answer, never an exception; deep nesting is refused', () => {
  for (let i = 0; i < 20_000; i++) {
    const bytes = randomBytes(1 + (i % 64));
    if (i % 2 === 0) bytes[0] = 0x30;
    const answer = derViolation(bytes);
    assert.ok(answer === undefined || typeof answer === 'string');
  }
  let deep: Buffer = hex('0500');
  for (let depth = 0; depth < 40; depth++) {
    const len = deep.length;
    deep = Buffer.concat([len < 128 ? Buffer.of(0x30, len) : Buffer.of(0x30, 0x81, len), deep]);
  }
  assert.match(derViolation(deep) ?? 'accepted', /nested too deep/);
});
