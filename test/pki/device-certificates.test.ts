import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import { buildName, keyIdentifier, OID, parseSpki, randomSerial } from '../../src/pki/certificates.js';
import {
  buildDeviceTbs,
  deviceTbs,
  makeDeviceCredentials,
  prepareDeviceIssuer,
} from '../../src/pki/device-certificates.js';
import { validityFrom } from '../../src/pki/certificates.js';

function issuerContext(keyType: 'ec' | 'rsa') {
  const ca = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = parseSpki(ca.publicKey.export({ type: 'spki', format: 'der' }));
  const validity = validityFrom(new Date(), 20);
  return {
    ca,
    context: {
      caKeyPem: ca.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      issuerNameDer: new Uint8Array(AsnConvert.serialize(buildName([[OID.commonName, 'test device CA']]))),
      issuerKeyId: keyIdentifier(spki),
      notBefore: validity.notBefore.toISOString(),
      notAfter: validity.notAfter.toISOString(),
      keyType,
    },
  };
}

for (const keyType of ['ec', 'rsa'] as const) {
  test(`fast device TBS (template) equals the generic encoding byte for byte (${keyType})`, () => {
    const { context } = issuerContext(keyType);
    const di = prepareDeviceIssuer(context);
    for (let i = 0; i < (keyType === 'ec' ? 50 : 3); i++) {
      const key =
        keyType === 'ec'
          ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
          : generateKeyPairSync('rsa', { modulusLength: 2048 });
      const spki = key.publicKey.export({ type: 'spki', format: 'der' });
      const dsimId = `DSIM${randomBytes(8).toString('hex').toUpperCase()}`;
      const serial = randomSerial();
      assert.deepEqual(deviceTbs(di, dsimId, serial, spki), buildDeviceTbs(di, dsimId, serial, spki));
    }
  });
}

test('device credentials: signature verifies, DER parses, serial positive 16 octets', async () => {
  const { ca, context } = issuerContext('ec');
  const creds = await makeDeviceCredentials(prepareDeviceIssuer(context), [
    'DSIM0123456789ABCDEF',
    'DSIMFEDCBA9876543210',
  ]);
  for (const cred of creds) {
    const cert = new X509Certificate(cred.certPem);
    assert.ok(cert.verify(ca.publicKey));
    assert.match(cert.subject, new RegExp(`serialNumber=${cred.dsimId}`));
    assert.equal(cert.subjectAltName, `URI:urn:simcred:dsim:${cred.dsimId}`);
    assert.equal(cred.serialHex.length, 32);
    const parsed = AsnConvert.parse(cert.raw, Certificate);
    assert.equal(new Uint8Array(parsed.tbsCertificate.serialNumber)[0]! & 0x80, 0);
  }
});
