// The XML credential package (docs/crypto.md §6b): round trips for EC and RSA devices, Debian's xmlsec1
// 1.2 as the independent peer (it verifies our signature, decrypts an RSA device's package, and signs
// and encrypts a package our device opens), and each bad input refused with its own code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { sealXmlPackage, inspectXmlPackage, openXmlPackage } from '../../src/crypto/xml-package.js';
import { signEnveloped } from '../../src/crypto/xml-signature.js';
import type { SealInput } from '../../src/crypto/package-common.js';
import { buildFixture, CREDENTIALS, deviceRsaCertificatePem } from './fixture.js';
import { rejectsWith } from '../helpers/assert.js';

const f = await buildFixture();
const roots = [f.operatorRoot.pem];
const chain = [f.signer.pem, f.operatorCa.pem];
const nonce = Buffer.alloc(32, 0xa1);

const deviceRsaCertPem = await deviceRsaCertificatePem(f);

function sealInput(over: Partial<SealInput> = {}): SealInput {
  return {
    credentials: CREDENTIALS,
    dsimId: 'dsim-ec-0001',
    deviceNonce: nonce,
    devicePublicKey: f.deviceEcCertPem,
    operatorSigningKey: f.signer.key,
    operatorChainPem: chain,
    ttlSeconds: 3600,
    ...over,
  };
}
const rsaInput = (over: Partial<SealInput> = {}) =>
  sealInput({ dsimId: 'dsim-rsa-0001', devicePublicKey: deviceRsaCertPem, ...over });

const openAs = (device: KeyObject, dsimId: string, over: object = {}) => ({
  operatorRoots: roots,
  dsimId,
  deviceNonce: nonce,
  devicePrivateKey: device,
  ...over,
});

for (const [name, device, dsimId, input, keyManagement] of [
  ['EC P-256', f.deviceEc.privateKey, 'dsim-ec-0001', sealInput, 'http://www.w3.org/2009/xmlenc11#ECDH-ES'],
  [
    'RSA-2048',
    f.deviceRsa.privateKey,
    'dsim-rsa-0001',
    rsaInput,
    'http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p',
  ],
] as const) {
  test(`${name}: seal, inspect and open the XML package`, async () => {
    const xml = await sealXmlPackage(input());
    assert.ok(xml.startsWith('<'), xml.slice(0, 40));
    assert.ok(
      !xml.includes(CREDENTIALS.k) && !xml.includes(CREDENTIALS.opc) && !xml.includes(CREDENTIALS.imsi),
    );
    assert.match(xml, /xmldsig-more#ecdsa-sha256/);
    assert.match(xml, /xmlenc11#aes256-gcm/);
    const info = await inspectXmlPackage(xml, { operatorRoots: roots });
    assert.equal(info.dsimId, dsimId);
    assert.equal(info.deviceNonce, nonce.toString('base64url'));
    assert.equal(info.exp - info.iat, 3600);
    assert.equal(info.keyManagement, keyManagement);
    assert.equal(info.signerCertificate.subject, 'CN=Test Package Signer');
    const opened = await openXmlPackage(xml, openAs(device, dsimId));
    assert.deepEqual(opened.credentials, CREDENTIALS);
    assert.equal(opened.packageId, info.packageId);
  });
}

// ——— Debian's xmlsec1 1.2 as the independent peer ———

const work = mkdtempSync(join(tmpdir(), 'simcred-xmlsec-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const path = join(work, name);
  writeFileSync(path, text);
  return path;
};
const rootPem = file('operator-root.pem', f.operatorRoot.pem);
const deviceCaPem = file('device-ca.pem', f.manufacturerCa.pem);
const deviceRsaKey = file(
  'device-rsa.key',
  f.deviceRsa.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
);
const deviceRsaCert = file('device-rsa.pem', deviceRsaCertPem);
const signerKey = file('signer.key', f.signer.key.export({ format: 'pem', type: 'pkcs8' }).toString());
const signerCert = file('signer.pem', f.signer.pem);
const operatorCaCert = file('operator-ca.pem', f.operatorCa.pem);

function xmlsec1(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('xmlsec1', args, { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('xmlsec1 verifies the XML Signature of an EC and an RSA device package (ECDSA-SHA256, exc-c14n, X509Data chain)', async () => {
  for (const [name, xml] of [
    ['ec', await sealXmlPackage(sealInput())],
    ['rsa', await sealXmlPackage(rsaInput())],
  ] as const) {
    const r = xmlsec1(['--verify', '--trusted-pem', rootPem, file(`${name}-package.xml`, xml)]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^OK$/m);
    // A changed byte anywhere in the signed content: xmlsec1 refuses it too.
    const tampered = xml.replace('<DsimId>dsim-', '<DsimId>dsjm-');
    const bad = xmlsec1(['--verify', '--trusted-pem', rootPem, file(`${name}-tampered.xml`, tampered)]);
    assert.notEqual(bad.status, 0);
  }
});

test("xmlsec1 decrypts an RSA device's package with the device key (rsa-oaep-mgf1p, aes256-gcm)", async () => {
  const xml = await sealXmlPackage(rsaInput());
  const r = xmlsec1([
    '--decrypt',
    '--privkey-pem',
    deviceRsaKey,
    '--trusted-pem',
    deviceCaPem,
    file('rsa-package.xml', xml),
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stdout,
    new RegExp(`<Imsi>${CREDENTIALS.imsi}</Imsi><K>${CREDENTIALS.k}</K><OPc>${CREDENTIALS.opc}</OPc>`),
  );
  assert.match(r.stdout, /<DsimId>dsim-rsa-0001<\/DsimId>/);
});

test("xmlsec1 1.2 cannot decrypt an EC device's package: it has no ECDH-ES (the key agreement is checked on published vectors in xml-key-agreement.test.ts)", async () => {
  const listed = xmlsec1(['--list-transforms']);
  assert.doesNotMatch(listed.stdout + listed.stderr, /ecdh/i);
  const xml = await sealXmlPackage(sealInput());
  const r = xmlsec1([
    '--decrypt',
    '--privkey-pem',
    file('device-ec.key', f.deviceEc.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()),
    file('ec-package.xml', xml),
  ]);
  assert.notEqual(r.status, 0);
});

/**
 * A package made by xmlsec1 alone from templates: it encrypts the Credentials document to the RSA device
 * certificate and signs the CredentialPackage with the operator signer (chain in X509Data).
 */
function xmlsec1Package(over: { sealedPackageId?: string; nowSeconds?: number } = {}): string {
  const iat = over.nowSeconds ?? Math.floor(Date.now() / 1000);
  const fields = (packageId: string) =>
    `<PackageId>${packageId}</PackageId><DsimId>dsim-rsa-0001</DsimId><DeviceNonce>${nonce.toString('base64url')}</DeviceNonce><IssuedAt>${iat}</IssuedAt><Expires>${iat + 3600}</Expires>`;
  const ns = 'urn:simcred:xml-package:1';
  const credentials = file(
    'credentials.xml',
    `<Credentials xmlns="${ns}">${fields(over.sealedPackageId ?? 'pkg-xmlsec1')}<Imsi>${CREDENTIALS.imsi}</Imsi><K>${CREDENTIALS.k}</K><OPc>${CREDENTIALS.opc}</OPc><Amf>${CREDENTIALS.amf}</Amf><Sqn>${CREDENTIALS.sqn}</Sqn><Plmn>${CREDENTIALS.plmn}</Plmn></Credentials>`,
  );
  const encryptionTemplate = file(
    'encrypt-template.xml',
    '<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Type="http://www.w3.org/2001/04/xmlenc#Element">' +
      '<xenc:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm"/>' +
      '<ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey>' +
      '<xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/>' +
      '<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>' +
      '<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>',
  );
  const encrypted = join(work, 'encrypted.xml');
  const e = xmlsec1([
    '--encrypt',
    '--pubkey-cert-pem',
    deviceRsaCert,
    '--session-key',
    'aes-256',
    '--xml-data',
    credentials,
    '--output',
    encrypted,
    encryptionTemplate,
  ]);
  assert.equal(e.status, 0, e.stderr);
  const encryptedData = readFileSync(encrypted, 'utf8').replace(/^<\?xml[^>]*\?>\s*/, '');
  const signatureTemplate =
    '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>' +
    '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>' +
    '<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"/>' +
    '<ds:Reference URI=""><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>' +
    '<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>' +
    '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference></ds:SignedInfo>' +
    '<ds:SignatureValue/><ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>';
  const template = file(
    'package-template.xml',
    `<CredentialPackage xmlns="${ns}" Version="1">${fields('pkg-xmlsec1')}${encryptedData}${signatureTemplate}</CredentialPackage>`,
  );
  const signed = join(work, 'package-xmlsec1.xml');
  const s = xmlsec1([
    '--sign',
    '--privkey-pem',
    `${signerKey},${signerCert},${operatorCaCert}`,
    '--output',
    signed,
    template,
  ]);
  assert.equal(s.status, 0, s.stderr);
  return readFileSync(signed, 'utf8');
}

test('our device opens a package that xmlsec1 encrypted (RSA) and signed', async () => {
  const xml = xmlsec1Package();
  const info = await inspectXmlPackage(xml, { operatorRoots: roots });
  assert.equal(info.packageId, 'pkg-xmlsec1');
  const opened = await openXmlPackage(xml, openAs(f.deviceRsa.privateKey, 'dsim-rsa-0001'));
  assert.deepEqual(opened.credentials, CREDENTIALS);
  // The same, but the sealed Credentials name another package than the signed fields do.
  await rejectsWith(
    openXmlPackage(
      xmlsec1Package({ sealedPackageId: 'pkg-other' }),
      openAs(f.deviceRsa.privateKey, 'dsim-rsa-0001'),
    ),
    'SIMCRED_PACKAGE_BINDING_MISMATCH',
  );
});

// ——— bad input, each with its own code ———

const SIGNATURE = /<ds:Signature[\s\S]*<\/ds:Signature>/;
/** Re-signs an altered document with the genuine operator key and chain (an insider forgery). */
function resign(xml: string): string {
  return signEnveloped(xml.replace(SIGNATURE, ''), {
    kind: 'ec-p256',
    privateKey: f.signer.key,
    chainBase64: [f.signer.cert, f.operatorCa.cert].map((c) => Buffer.from(c.rawData).toString('base64')),
  });
}
const ecPackage = await sealXmlPackage(sealInput());
const inspect = (xml: string) => inspectXmlPackage(xml, { operatorRoots: roots });
const openEc = (xml: string, over: object = {}) =>
  openXmlPackage(xml, openAs(f.deviceEc.privateKey, 'dsim-ec-0001', over));

test('malformed XML: SIMCRED_XML_MALFORMED', async () => {
  await rejectsWith(
    inspect('<CredentialPackage xmlns="urn:simcred:xml-package:1"><PackageId>'),
    'SIMCRED_XML_MALFORMED',
  );
  await rejectsWith(inspect(ecPackage.replace('</DsimId>', '</Dsim>')), 'SIMCRED_XML_MALFORMED');
  await rejectsWith(inspect('not xml at all'), 'SIMCRED_XML_MALFORMED');
  // An entity reference without any DTD is undeclared, hence not well-formed.
  await rejectsWith(
    inspect(ecPackage.replace('<DsimId>dsim-ec-0001', '<DsimId>&xxe;')),
    'SIMCRED_XML_MALFORMED',
  );
  await rejectsWith(
    inspect(ecPackage.replace('<PackageId>', '<?evil instruction?><PackageId>')),
    'SIMCRED_XML_MALFORMED',
  );
});

test('a DTD, an external entity, billion laughs: SIMCRED_XML_DTD_FORBIDDEN, nothing expanded or fetched', async () => {
  const dtd = '<!DOCTYPE CredentialPackage [<!ELEMENT CredentialPackage ANY>]>';
  await rejectsWith(inspect(dtd + ecPackage), 'SIMCRED_XML_DTD_FORBIDDEN');
  const external = '<!DOCTYPE CredentialPackage [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>';
  await rejectsWith(
    inspect(external + ecPackage.replace('<DsimId>dsim-ec-0001', '<DsimId>&xxe;')),
    'SIMCRED_XML_DTD_FORBIDDEN',
  );
  const laughs =
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">' +
    Array.from(
      { length: 9 },
      (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i === 0 ? '' : i};`.repeat(10)}">`,
    ).join('') +
    ']><CredentialPackage xmlns="urn:simcred:xml-package:1">&lol9;</CredentialPackage>';
  await rejectsWith(inspect(laughs), 'SIMCRED_XML_DTD_FORBIDDEN');
  await rejectsWith(
    openEc('<!doctype CredentialPackage SYSTEM "http://127.0.0.1:1/x.dtd">' + ecPackage),
    'SIMCRED_XML_DTD_FORBIDDEN',
  );
});

test('oversized or too deeply nested: SIMCRED_XML_TOO_LARGE', async () => {
  await rejectsWith(
    inspect(ecPackage.replace('</Expires>', `</Expires><!--${'x'.repeat(70_000)}-->`)),
    'SIMCRED_XML_TOO_LARGE',
  );
  const deep = '<a>'.repeat(40) + '</a>'.repeat(40);
  await rejectsWith(inspect(ecPackage.replace('</Expires>', `</Expires>${deep}`)), 'SIMCRED_XML_TOO_LARGE');
  const wide = '<a/>'.repeat(3000);
  await rejectsWith(inspect(ecPackage.replace('</Expires>', `</Expires>${wide}`)), 'SIMCRED_XML_TOO_LARGE');
  // Depth far beyond the limit does not crash the parser (no recursion on our side).
  const abyss = '<a>'.repeat(10_000) + '</a>'.repeat(10_000);
  await rejectsWith(inspect(ecPackage.replace('</Expires>', `</Expires>${abyss}`)), 'SIMCRED_XML_TOO_LARGE');
});

test('a wrapped signature: SIMCRED_XML_SIGNATURE_WRAPPED', async () => {
  // The genuine signed package moved inside a forged one with the attacker's fields.
  const genuine = ecPackage.replace(/^<\?xml[^>]*\?>/, '');
  const forged = ecPackage
    .replace(SIGNATURE, '')
    .replace('<DsimId>dsim-ec-0001</DsimId>', '<DsimId>dsim-evil</DsimId>')
    .replace('</CredentialPackage>', `<Wrapper>${genuine}</Wrapper></CredentialPackage>`);
  await rejectsWith(inspect(forged), 'SIMCRED_XML_SIGNATURE_WRAPPED');
  // The signature moved into the EncryptedData, away from the document element.
  const signature = SIGNATURE.exec(ecPackage)![0];
  const moved = ecPackage
    .replace(SIGNATURE, '')
    .replace('</xenc:EncryptedData>', `${signature}</xenc:EncryptedData>`);
  await rejectsWith(inspect(moved), 'SIMCRED_XML_SIGNATURE_WRAPPED');
  // The reference pointed at an element instead of the whole document.
  await rejectsWith(
    inspect(ecPackage.replace('<ds:Reference URI="">', '<ds:Reference URI="#evil">')),
    'SIMCRED_XML_SIGNATURE_WRAPPED',
  );
  // The signature not last: content after it.
  await rejectsWith(
    inspect(ecPackage.replace('</CredentialPackage>', '<Extra/></CredentialPackage>')),
    'SIMCRED_XML_SIGNATURE_WRAPPED',
  );
});

test('a second signature, or a second reference: SIMCRED_XML_SIGNATURE_NOT_SINGLE', async () => {
  const signature = SIGNATURE.exec(ecPackage)![0];
  await rejectsWith(
    inspect(ecPackage.replace('</CredentialPackage>', `${signature}</CredentialPackage>`)),
    'SIMCRED_XML_SIGNATURE_NOT_SINGLE',
  );
  await rejectsWith(
    inspect(ecPackage.replace('<PackageId>', `${signature}<PackageId>`)),
    'SIMCRED_XML_SIGNATURE_NOT_SINGLE',
  );
  await rejectsWith(inspect(ecPackage.replace(SIGNATURE, '')), 'SIMCRED_XML_SIGNATURE_NOT_SINGLE');
  const reference = /<ds:Reference[\s\S]*<\/ds:Reference>/.exec(ecPackage)![0];
  await rejectsWith(
    inspect(ecPackage.replace(reference, reference + reference)),
    'SIMCRED_XML_SIGNATURE_NOT_SINGLE',
  );
});

test('signed by a TLS key of the operator CA, not the package signer: SIMCRED_PACKAGE_CHAIN_INVALID', async () => {
  const xml = await sealXmlPackage(
    sealInput({ operatorSigningKey: f.tlsSigner.key, operatorChainPem: [f.tlsSigner.pem, f.operatorCa.pem] }),
  );
  await rejectsWith(inspect(xml), 'SIMCRED_PACKAGE_CHAIN_INVALID');
  await rejectsWith(openEc(xml), 'SIMCRED_PACKAGE_CHAIN_INVALID');
  // A package signer of another operator, and a chain that stops short of the root.
  const foreign = await sealXmlPackage(
    sealInput({
      operatorSigningKey: f.foreignSigner.key,
      operatorChainPem: [f.foreignSigner.pem, f.foreignCa.pem],
    }),
  );
  await rejectsWith(inspect(foreign), 'SIMCRED_PACKAGE_CHAIN_INVALID');
  const short = await sealXmlPackage(sealInput({ operatorChainPem: [f.signer.pem] }));
  await rejectsWith(inspect(short), 'SIMCRED_PACKAGE_CHAIN_INVALID');
});

test('a package for another device: SIMCRED_PACKAGE_BINDING_MISMATCH, or SIMCRED_PACKAGE_DECRYPT_FAILED with its key', async () => {
  await rejectsWith(
    openXmlPackage(ecPackage, openAs(f.deviceEc2.privateKey, 'dsim-ec-0002')),
    'SIMCRED_PACKAGE_BINDING_MISMATCH',
  );
  await rejectsWith(
    openEc(ecPackage, { deviceNonce: Buffer.alloc(32, 0xb2) }),
    'SIMCRED_PACKAGE_BINDING_MISMATCH',
  );
  // Another device claiming this DSIM_ID and nonce still cannot decrypt it, EC or RSA.
  await rejectsWith(
    openXmlPackage(ecPackage, openAs(f.deviceEc2.privateKey, 'dsim-ec-0001')),
    'SIMCRED_PACKAGE_DECRYPT_FAILED',
  );
  await rejectsWith(
    openXmlPackage(ecPackage, openAs(f.deviceRsa.privateKey, 'dsim-ec-0001')),
    'SIMCRED_PACKAGE_DECRYPT_FAILED',
  );
  // Sealing to a certificate that binds another DSIM_ID is refused before anything is made.
  await rejectsWith(sealXmlPackage(sealInput({ dsimId: 'dsim-other' })), 'SIMCRED_PACKAGE_BINDING_MISMATCH');
});

test('tampered ciphertext: SIMCRED_PACKAGE_SIGNATURE_INVALID; re-signed by an insider, SIMCRED_PACKAGE_DECRYPT_FAILED', async () => {
  for (const [xml, device, dsimId] of [
    [ecPackage, f.deviceEc.privateKey, 'dsim-ec-0001'],
    [await sealXmlPackage(rsaInput()), f.deviceRsa.privateKey, 'dsim-rsa-0001'],
  ] as const) {
    const values = [...xml.matchAll(/<xenc:CipherValue>([^<]+)<\/xenc:CipherValue>/g)];
    const content = values[values.length - 1]![1]!;
    const bytes = Buffer.from(content, 'base64');
    bytes[20]! ^= 0x01;
    const tampered = xml.replace(content, bytes.toString('base64'));
    await rejectsWith(openXmlPackage(tampered, openAs(device, dsimId)), 'SIMCRED_PACKAGE_SIGNATURE_INVALID');
    await rejectsWith(inspect(tampered), 'SIMCRED_PACKAGE_SIGNATURE_INVALID');
    await rejectsWith(
      openXmlPackage(resign(tampered), openAs(device, dsimId)),
      'SIMCRED_PACKAGE_DECRYPT_FAILED',
    );
  }
  // A signed field changed after signing.
  await rejectsWith(
    inspect(ecPackage.replace(/<Expires>\d+/, '<Expires>9999999999')),
    'SIMCRED_PACKAGE_SIGNATURE_INVALID',
  );
});

test('algorithms outside the allow-list: SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED', async () => {
  await rejectsWith(
    inspect(resign(ecPackage.replace('xmlenc11#aes256-gcm', 'xmlenc#aes256-cbc'))),
    'SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED',
  );
  await rejectsWith(
    inspect(ecPackage.replace('xmldsig-more#ecdsa-sha256', 'xmldsig-more#rsa-sha256')),
    'SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED',
  );
  await rejectsWith(
    inspect(
      ecPackage.replace(
        '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>',
        '<ds:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/><ds:DigestValue>',
      ),
    ),
    'SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED',
  );
  await rejectsWith(
    inspect(
      ecPackage.replace(
        '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>',
        '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>',
      ),
    ),
    'SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED',
  );
});

test('expired, and the package shape: SIMCRED_PACKAGE_EXPIRED, SIMCRED_PACKAGE_MALFORMED', async () => {
  const later = new Date(Date.now() + 2 * 3600 * 1000);
  await rejectsWith(
    inspectXmlPackage(ecPackage, { operatorRoots: roots, now: later }),
    'SIMCRED_PACKAGE_EXPIRED',
  );
  await rejectsWith(openEc(ecPackage, { now: later }), 'SIMCRED_PACKAGE_EXPIRED');
  assert.ok(await inspectXmlPackage(ecPackage, { operatorRoots: roots, now: later, allowExpired: true }));
  await rejectsWith(
    inspect(resign(ecPackage.replace('<IssuedAt>', '<Extra>1</Extra><IssuedAt>'))),
    'SIMCRED_PACKAGE_MALFORMED',
  );
  await rejectsWith(
    inspect(resign(ecPackage.replace(/<DeviceNonce>[^<]+/, '<DeviceNonce>not+base64url'))),
    'SIMCRED_PACKAGE_MALFORMED',
  );
  await rejectsWith(
    inspect(ecPackage.replace('xmlns="urn:simcred:xml-package:1"', 'xmlns="urn:other"')),
    'SIMCRED_PACKAGE_MALFORMED',
  );
  // An RSA device's package needs the device certificate (xml-encryption writes it into KeyInfo).
  await rejectsWith(
    sealXmlPackage(rsaInput({ devicePublicKey: f.deviceRsa.publicKey })),
    'SIMCRED_CRYPTO_KEY_UNSUPPORTED',
  );
});
