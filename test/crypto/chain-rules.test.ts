import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import {
  BasicConstraints,
  KeyUsage,
  KeyUsageFlags,
  GeneralName,
  SubjectAlternativeName,
  id_ce_basicConstraints,
  id_ce_subjectAltName,
  id_ce_keyUsage,
  type Extension,
} from '@peculiar/asn1-x509';
import * as x509 from '../../src/crypto/x509.js';
import { certificateFacts } from '../../src/crypto/certificate-facts.js';
import { certificateStats, verifyChain } from '../../src/crypto/certificates.js';
import { parseDeviceChain, verifyDeviceChain } from '../../src/pki/device-chain.js';
import { boundDsimId } from '../../src/pki/device-identity.js';
import {
  OID,
  buildName,
  caExtensions,
  deviceConstantExtensions,
  deviceSanExtension,
  extension,
  issueCertificate,
  keyIdentifier,
  parseSpki,
  randomSerial,
  tlsServerExtensions,
  type Issuer,
} from '../../src/pki/certificates.js';
import { rejectsWith } from '../helpers/assert.js';

/*
 * verifyChain and boundDsimId read extensions and names through certificateFacts (one decode per
 * certificate); these tests pin every rule they enforce on certificates built here, so a rule that
 * silently stopped firing would fail.
 */

const now = new Date();
const DAY = 86_400_000;

function key(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

function issue(
  subject: [string, string][],
  publicKey: KeyObject,
  extensions: Extension[],
  issuer: Issuer | 'self',
  privateKey?: KeyObject,
): { cert: x509.X509Certificate; issuer: Issuer } {
  const spki = parseSpki(publicKey.export({ type: 'spki', format: 'der' }));
  const name = buildName(subject);
  const self: Issuer | undefined =
    issuer === 'self' ? { name, keyId: keyIdentifier(spki), privateKey: privateKey! } : undefined;
  const der = issueCertificate(
    {
      serial: randomSerial(),
      subject: name,
      spki,
      notBefore: new Date(now.getTime() - DAY),
      notAfter: new Date(now.getTime() + DAY),
      extensions,
    },
    self ?? (issuer as Issuer),
  );
  return { cert: new x509.X509Certificate(der), issuer: self ?? (issuer as Issuer) };
}

/** A self-signed root CA (pathLenConstraint 1) with a key of its own. */
function rootCa(commonName: string): ReturnType<typeof issue> {
  const keys = key();
  return issue([[OID.commonName, commonName]], keys.publicKey, caExtensions(1), 'self', keys.privateKey);
}

const root = rootCa('test root');
const caKeys = key();
const ca = issue([[OID.commonName, 'test device CA']], caKeys.publicKey, caExtensions(0), root.issuer);
const caIssuer: Issuer = { ...issuerOf(ca.cert, caKeys.privateKey) };

function issuerOf(cert: x509.X509Certificate, privateKey: KeyObject): Issuer {
  const spki = parseSpki(Buffer.from(cert.publicKey.rawData));
  return {
    name: buildName([[OID.commonName, cert.subjectName.getField(OID.commonName)[0]!]]),
    keyId: keyIdentifier(spki),
    privateKey,
  };
}

function device(dsimId: string, extensions?: Extension[], subjectSerial: string[] = [dsimId]) {
  return issue(
    [...subjectSerial.map((s): [string, string] => [OID.serialNumber, s]), [OID.commonName, dsimId]],
    key().publicKey,
    extensions ?? [...deviceConstantExtensions('ec'), deviceSanExtension(dsimId)],
    caIssuer,
  ).cert;
}

const options = {
  roots: [root.cert],
  now,
  clockToleranceSeconds: 60,
  leafKeyUsage: x509.KeyUsageFlags.digitalSignature,
  code: 'SIMCRED_CERT_UNTRUSTED' as const,
};

test('certificateFacts agrees with @peculiar/x509 on every extension the flow reads', () => {
  const tls = issue(
    [[OID.commonName, 'simcred-hss']],
    key().publicKey,
    tlsServerExtensions(['localhost'], []),
    caIssuer,
  ).cert;
  for (const cert of [root.cert, ca.cert, device('DSIM00000000000000A1'), tls]) {
    const facts = certificateFacts(cert);
    const bc = cert.getExtension(x509.BasicConstraintsExtension);
    assert.deepEqual(facts.basicConstraints, bc ? { ca: bc.ca, pathLength: bc.pathLength } : undefined);
    assert.equal(facts.keyUsage, cert.getExtension(x509.KeyUsagesExtension)?.usages);
    assert.deepEqual(facts.criticalExtensions, [
      ...cert.extensions.filter((e) => e.critical).map((e) => e.type),
    ]);
    const sanUris = (cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [])
      .filter((n) => n.type === 'url')
      .map((n) => n.value);
    assert.deepEqual(facts.sanUris, sanUris);
    assert.deepEqual(facts.subjectSerialNumbers, cert.subjectName.getField(OID.serialNumber));
  }
  assert.equal(certificateFacts(ca.cert), certificateFacts(ca.cert), 'memoised per certificate object');
});

test('a well-formed device chain verifies and binds its DSIM_ID', async () => {
  const leaf = device('DSIM00000000000000B1');
  const path = await verifyChain([leaf, ca.cert], options);
  assert.equal(path.length, 3);
  assert.equal(boundDsimId(leaf), 'DSIM00000000000000B1');
});

test('a device chain sent again is parsed once, and every verification still checks the clock and the roots', async () => {
  const wire = [device('DSIM00000000000000B2'), ca.cert].map((c) =>
    Buffer.from(c.rawData).toString('base64'),
  );
  const parsed = certificateStats.parsed;
  const first = parseDeviceChain(wire);
  assert.equal(certificateStats.parsed - parsed, 2, 'leaf and CA parsed the first time');
  const hits = certificateStats.parseCacheHits;
  const again = parseDeviceChain([...wire]); // same text, as at the next step of the same device
  assert.equal(certificateStats.parsed - parsed, 2, 'nothing parsed again');
  assert.equal(certificateStats.parseCacheHits - hits, 2);
  assert.equal(again[0], first[0]);
  await verifyDeviceChain(again, { roots: [root.cert], now });
  await rejectsWith(
    verifyDeviceChain(again, { roots: [root.cert], now: new Date(now.getTime() + 2 * DAY) }),
    'SIMCRED_CERT_UNTRUSTED',
  );
  const otherRoot = rootCa('other root');
  await rejectsWith(verifyDeviceChain(again, { roots: [otherRoot.cert], now }), 'SIMCRED_CERT_UNTRUSTED');
});

test('verifyChain refuses leaves that break the profile', async (t) => {
  const dsim = 'DSIM00000000000000C1';
  const san = deviceSanExtension(dsim);
  const cases: [string, Extension[], RegExp][] = [
    ['no keyUsage', [san], /lacks the required key usage/],
    [
      'keyUsage without digitalSignature',
      [extension(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.keyAgreement)), san],
      /lacks the required key usage/,
    ],
    [
      'a CA certificate as the leaf',
      [
        ...deviceConstantExtensions('ec'),
        san,
        extension(id_ce_basicConstraints, true, new BasicConstraints({ cA: true })),
      ],
      /is a CA certificate/,
    ],
    [
      'an unknown critical extension',
      [
        ...deviceConstantExtensions('ec'),
        san,
        extension('1.3.6.1.4.1.99999.1', true, new BasicConstraints()),
      ],
      /unknown critical extension/,
    ],
  ];
  for (const [name, extensions, message] of cases) {
    await t.test(name, async () => {
      await rejectsWith(
        verifyChain([device(dsim, extensions), ca.cert], options),
        'SIMCRED_CERT_UNTRUSTED',
        message,
      );
    });
  }
});

test('verifyChain refuses an issuer that is not a CA, and a path longer than pathLenConstraint', async () => {
  const notCaKeys = key();
  const notCa = issue(
    [[OID.commonName, 'not a CA']],
    notCaKeys.publicKey,
    deviceConstantExtensions('ec'),
    root.issuer,
  );
  const leafUnderNotCa = issue(
    [[OID.commonName, 'leaf']],
    key().publicKey,
    deviceConstantExtensions('ec'),
    issuerOf(notCa.cert, notCaKeys.privateKey),
  ).cert;
  await rejectsWith(
    verifyChain([leafUnderNotCa, notCa.cert], options),
    'SIMCRED_CERT_UNTRUSTED',
    /is not a CA/,
  );

  // ca has pathLenConstraint 0: no intermediate may sit below it.
  const subKeys = key();
  const sub = issue([[OID.commonName, 'sub CA']], subKeys.publicKey, caExtensions(0), caIssuer);
  const leafUnderSub = issue(
    [[OID.commonName, 'leaf2']],
    key().publicKey,
    deviceConstantExtensions('ec'),
    issuerOf(sub.cert, subKeys.privateKey),
  ).cert;
  await rejectsWith(
    verifyChain([leafUnderSub, sub.cert, ca.cert], options),
    'SIMCRED_CERT_UNTRUSTED',
    /path length exceeded/,
  );
});

test('boundDsimId refuses certificates that bind no DSIM_ID, two, or two different ones', () => {
  const dsim = 'DSIM00000000000000D1';
  const constant = deviceConstantExtensions('ec');
  const cases: [string, x509.X509Certificate][] = [
    ['no SAN URI', device(dsim, constant)],
    ['no subject serialNumber', device(dsim, undefined, [])],
    ['two subject serialNumbers', device(dsim, undefined, [dsim, dsim])],
    ['subject and SAN disagree', device(dsim, [...constant, deviceSanExtension('DSIM00000000000000D2')])],
    ['two SAN URIs', device(dsim, [...constant, san2(dsim)])],
  ];
  for (const [name, cert] of cases) {
    assert.throws(() => boundDsimId(cert), { code: 'SIMCRED_CERT_DSIM_MISMATCH' }, name);
  }
});

function san2(dsimId: string): Extension {
  const uri = `urn:simcred:dsim:${dsimId}`;
  return extension(
    id_ce_subjectAltName,
    false,
    new SubjectAlternativeName([
      new GeneralName({ uniformResourceIdentifier: uri }),
      new GeneralName({ uniformResourceIdentifier: uri }),
    ]),
  );
}
