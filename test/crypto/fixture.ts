// Throwaway PKI for the crypto tests: operator root → operator CA → package signer, a foreign chain,
// a manufacturer CA with device certificates, and device EC / RSA keys. Nothing here is persisted.
import { generateKeyPairSync, KeyObject, webcrypto } from 'node:crypto';
import * as x509 from '../../src/crypto/x509.js';

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 24 * 3600 * 1000;

export interface Issued {
  cert: x509.X509Certificate;
  pem: string;
  key: KeyObject;
  keys: webcrypto.CryptoKeyPair;
}

let serial = 1;
async function issue(options: {
  subject: string;
  issuer?: Issued;
  ca?: { pathLength?: number };
  usages: x509.KeyUsageFlags;
  notBefore?: Date;
  notAfter?: Date;
  san?: string;
  eku?: string[];
}): Promise<Issued> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(options.ca !== undefined, options.ca?.pathLength, true),
    new x509.KeyUsagesExtension(options.usages, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  if (options.eku) extensions.push(new x509.ExtendedKeyUsageExtension(options.eku));
  if (options.san)
    extensions.push(new x509.SubjectAlternativeNameExtension([{ type: 'url', value: options.san }]));
  const common = {
    serialNumber: (serial++).toString(16).padStart(4, '0'),
    notBefore: options.notBefore ?? new Date(Date.now() - DAY),
    notAfter: options.notAfter ?? new Date(Date.now() + 365 * DAY),
    signingAlgorithm: EC,
    extensions,
  };
  const cert = options.issuer
    ? await x509.X509CertificateGenerator.create({
        ...common,
        subject: options.subject,
        issuer: options.issuer.cert.subject,
        publicKey: keys.publicKey,
        signingKey: options.issuer.keys.privateKey,
      })
    : await x509.X509CertificateGenerator.createSelfSigned({ ...common, name: options.subject, keys });
  return { cert, pem: cert.toString('pem'), key: KeyObject.from(keys.privateKey), keys };
}

const CA_USAGES = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;
const SIGNER_USAGES = x509.KeyUsageFlags.digitalSignature;
/** id-kp-documentSigning: the package signer's purpose. */
const PACKAGE_SIGNING = ['1.3.6.1.5.5.7.3.36'];

export async function buildFixture() {
  const operatorRoot = await issue({ subject: 'CN=Test Operator Root', ca: {}, usages: CA_USAGES });
  const operatorCa = await issue({
    subject: 'CN=Test Operator CA',
    issuer: operatorRoot,
    ca: { pathLength: 0 },
    usages: CA_USAGES,
  });
  const signer = await issue({
    subject: 'CN=Test Package Signer',
    issuer: operatorCa,
    usages: SIGNER_USAGES,
    eku: PACKAGE_SIGNING,
  });
  const expiredSigner = await issue({
    subject: 'CN=Expired Package Signer',
    issuer: operatorCa,
    usages: SIGNER_USAGES,
    eku: PACKAGE_SIGNING,
    notBefore: new Date(Date.now() - 10 * DAY),
    notAfter: new Date(Date.now() - DAY),
  });
  const encipherOnlySigner = await issue({
    subject: 'CN=Wrong Usage Signer',
    issuer: operatorCa,
    usages: x509.KeyUsageFlags.keyEncipherment,
    eku: PACKAGE_SIGNING,
  });
  // A server's TLS certificate from the same operator CA: valid, but not for packages.
  const tlsSigner = await issue({
    subject: 'CN=simcred-provisioning',
    issuer: operatorCa,
    usages: SIGNER_USAGES,
    eku: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'],
  });
  const foreignRoot = await issue({ subject: 'CN=Foreign Root', ca: {}, usages: CA_USAGES });
  const foreignCa = await issue({
    subject: 'CN=Test Operator CA',
    issuer: foreignRoot,
    ca: {},
    usages: CA_USAGES,
  });
  const foreignSigner = await issue({
    subject: 'CN=Test Package Signer',
    issuer: foreignCa,
    usages: SIGNER_USAGES,
    eku: PACKAGE_SIGNING,
  });

  const manufacturerCa = await issue({ subject: 'CN=Test Device CA', ca: {}, usages: CA_USAGES });
  const deviceEc = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const deviceEc2 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const deviceRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const deviceEcCert = await x509.X509CertificateGenerator.create({
    serialNumber: 'a001',
    subject: 'CN=dsim-ec-0001',
    issuer: manufacturerCa.cert.subject,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 365 * DAY),
    signingAlgorithm: EC,
    publicKey: await x509.PublicKey.create(deviceEc.publicKey.export({ format: 'der', type: 'spki' })),
    signingKey: manufacturerCa.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement,
        true,
      ),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'urn:simcred:dsim:dsim-ec-0001' }]),
    ],
  });

  return {
    operatorRoot,
    operatorCa,
    signer,
    expiredSigner,
    encipherOnlySigner,
    tlsSigner,
    foreignRoot,
    foreignCa,
    foreignSigner,
    manufacturerCa,
    deviceEc,
    deviceEc2,
    deviceRsa,
    deviceEcCertPem: deviceEcCert.toString('pem'),
  };
}

export type Fixture = Awaited<ReturnType<typeof buildFixture>>;

/** Test credentials (TS 35.208 test set 1 K / OPc). */
export const CREDENTIALS = {
  imsi: '001010123456789',
  k: '465b5ce8b199b49faa5f0a2ee238a6bc',
  opc: 'cd63cb71954a9f4e48a5994e37a02baf',
  amf: 'b9b9',
  sqn: 'ff9bb4d0b607',
  plmn: '00101',
};

/** A certificate for the fixture's RSA device key (dsim-rsa-0001), from its manufacturer CA: an RSA device's XML package carries it. */
export async function deviceRsaCertificatePem(f: Fixture): Promise<string> {
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: 'a002',
    subject: 'CN=dsim-rsa-0001',
    issuer: f.manufacturerCa.cert.subject,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 365 * DAY),
    signingAlgorithm: EC,
    publicKey: await x509.PublicKey.create(f.deviceRsa.publicKey.export({ format: 'der', type: 'spki' })),
    signingKey: f.manufacturerCa.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: 'urn:simcred:dsim:dsim-rsa-0001' }]),
    ],
  });
  return cert.toString('pem');
}
