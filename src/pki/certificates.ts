import { createHash, KeyObject, randomBytes, sign, X509Certificate } from 'node:crypto';
import { AsnConvert, AsnProp, AsnPropTypes, AsnType, AsnTypeTypes, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  Extension,
  Extensions,
  GeneralName,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  Name,
  RelativeDistinguishedName,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  id_kp_clientAuth,
  id_kp_OCSPSigning,
  id_kp_serverAuth,
} from '@peculiar/asn1-x509';
import { id_pkix_ocsp_nocheck } from '@peculiar/asn1-ocsp';
import * as asn1js from 'asn1js';
import { SimcredError } from '../errors/index.js';
import { asSigningKey, type SigningKey } from '../keys/signing-key.js';

/*
 * Certificates are built with @peculiar/asn1-x509's schema classes and signed with node:crypto.
 * @peculiar/x509's generator would do the same but needs a Reflect metadata polyfill and costs
 * about a millisecond more per certificate, which matters when a factory run makes 10,000 devices.
 */

export const MANUFACTURER_ORG = 'simcred demo manufacturer';
export const OPERATOR_ORG = 'simcred demo operator';

export const OID = {
  commonName: '2.5.4.3',
  serialNumber: '2.5.4.5',
  organization: '2.5.4.10',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  serverAuth: id_kp_serverAuth,
  clientAuth: id_kp_clientAuth,
  ocspSigning: id_kp_OCSPSigning,
  ocspNoCheck: id_pkix_ocsp_nocheck,
  /** id-kp-documentSigning (RFC 9336): marks the one certificate allowed to sign credential packages. */
  documentSigning: '1.3.6.1.5.5.7.3.36',
} as const;

/** A distinguished name as (attribute OID, value) pairs, each in its own RDN, in order. */
export type DistinguishedName = ReadonlyArray<readonly [oid: string, value: string]>;

export function buildName(dn: DistinguishedName): Name {
  return new Name(
    dn.map(
      ([type, value]) =>
        new RelativeDistinguishedName([
          new AttributeTypeAndValue({
            type,
            // X.520 fixes serialNumber to PrintableString; RFC 5280 §4.1.2.4 wants UTF8String elsewhere.
            value: new AttributeValue(
              type === OID.serialNumber ? { printableString: value } : { utf8String: value },
            ),
          }),
        ]),
    ),
  );
}

/**
 * A random positive 16-byte serial (RFC 5280 §4.1.2.2: positive, at most 20 octets, unique per CA).
 * The top bits are forced to 01 so the DER INTEGER is exactly 16 octets: no sign octet, no
 * leading zero that would make the encoding non-minimal.
 */
export function randomSerial(): Buffer {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x3f) | 0x40;
  return serial;
}

export function parseSpki(spkiDer: Uint8Array): SubjectPublicKeyInfo {
  return AsnConvert.parse(spkiDer, SubjectPublicKeyInfo);
}

/** RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING value. */
export function keyIdentifier(spki: SubjectPublicKeyInfo): Buffer {
  return createHash('sha1').update(new Uint8Array(spki.subjectPublicKey)).digest();
}

export function extension(extnID: string, critical: boolean, value: unknown): Extension {
  return new Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
}

/**
 * The signing side of an issuance: the issuer's name and key identifier, and its key (a file's or a
 * PKCS#11 token's: the CA signs through it either way).
 */
export type Issuer = { name: Name; keyId: Buffer } & (
  | { signer: SigningKey }
  /** A file's key as a KeyObject (embedding and tests). */
  | { privateKey: KeyObject }
);

/** The key an issuer signs with. */
export function issuerKey(issuer: Issuer): KeyObject | SigningKey {
  return 'signer' in issuer ? issuer.signer : issuer.privateKey;
}

export interface CertificateTemplate {
  serial: Buffer;
  subject: Name;
  spki: SubjectPublicKeyInfo;
  notBefore: Date;
  notAfter: Date;
  /** Profile extensions; SKI and AKI are added by issueCertificate. */
  extensions: Extension[];
  /** Precomputed for speed; computed from spki otherwise. */
  subjectKeyId?: Buffer;
}

/** The certificate signatureAlgorithm of an issuer key (a KeyObject or a SigningKey: both name their type). */
export function signatureAlgorithm(key: { asymmetricKeyType?: string | undefined }): {
  algorithm: AlgorithmIdentifier;
  hash: 'sha256';
} {
  switch (key.asymmetricKeyType) {
    // RFC 5758 §3.2: ecdsa-with-SHA256 has no parameters.
    case 'ec':
      return { algorithm: new AlgorithmIdentifier({ algorithm: OID.ecdsaWithSha256 }), hash: 'sha256' };
    // RFC 4055 §5: sha256WithRSAEncryption carries NULL parameters.
    case 'rsa':
      return {
        algorithm: new AlgorithmIdentifier({ algorithm: OID.sha256WithRsa, parameters: null }),
        hash: 'sha256',
      };
    default:
      throw new SimcredError('SIMCRED_INTERNAL', `unsupported issuer key type ${key.asymmetricKeyType}`);
  }
}

/**
 * Signs a v3 certificate and returns its DER. Every certificate gets a subject key identifier and
 * an authority key identifier (RFC 5280 §4.2.1.1, §4.2.1.2), roots included (AKI = own SKI).
 *
 * @example
 *   const der = issueCertificate({ serial: randomSerial(), subject, spki, notBefore, notAfter,
 *     extensions: tlsServerExtensions() }, operatorCaIssuer);
 */
export function issueCertificate(template: CertificateTemplate, issuer: Issuer): Buffer {
  return signTbs(buildTbsCertificate(template, issuer), issuerKey(issuer));
}

/** The DER TBSCertificate of a template: what the issuer signs. */
export function buildTbsCertificate(template: CertificateTemplate, issuer: Issuer): Buffer {
  const subjectKeyId = template.subjectKeyId ?? keyIdentifier(template.spki);
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: toArrayBuffer(template.serial),
    signature: signatureAlgorithm(issuerKey(issuer)).algorithm,
    issuer: issuer.name,
    validity: new Validity({ notBefore: template.notBefore, notAfter: template.notAfter }),
    subject: template.subject,
    subjectPublicKeyInfo: template.spki,
    extensions: new Extensions([
      ...template.extensions,
      extension(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(subjectKeyId)),
      authorityKeyIdExtension(issuer.keyId),
    ]),
  });
  return Buffer.from(AsnConvert.serialize(tbs));
}

/**
 * Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue } (RFC 5280 §4.1),
 * with the TBSCertificate taken as the exact bytes that were signed rather than re-encoded.
 */
class SignedCertificate {
  tbsCertificate: ArrayBuffer = new ArrayBuffer(0);
  signatureAlgorithm = new AlgorithmIdentifier();
  signatureValue: ArrayBuffer = new ArrayBuffer(0);
}
AsnProp({ type: AsnPropTypes.Any })(SignedCertificate.prototype, 'tbsCertificate');
AsnProp({ type: AlgorithmIdentifier })(SignedCertificate.prototype, 'signatureAlgorithm');
AsnProp({ type: AsnPropTypes.BitString })(SignedCertificate.prototype, 'signatureValue');
AsnType({ type: AsnTypeTypes.Sequence })(SignedCertificate);

/** Signs DER TBSCertificate bytes (with a file's KeyObject or any SigningKey) and returns the certificate's DER. */
export function signTbs(tbsDer: Uint8Array, issuerKey: KeyObject | SigningKey): Buffer {
  const { algorithm, hash } = signatureAlgorithm(issuerKey);
  const signature =
    issuerKey instanceof KeyObject ? sign(hash, tbsDer, issuerKey) : issuerKey.sign(tbsDer, 'der');
  return assembleCertificate(tbsDer, algorithm, signature);
}

export function assembleCertificate(
  tbsDer: Uint8Array,
  algorithm: AlgorithmIdentifier,
  signature: Uint8Array,
): Buffer {
  const cert = new SignedCertificate();
  cert.tbsCertificate = toArrayBuffer(tbsDer);
  cert.signatureAlgorithm = algorithm;
  cert.signatureValue = toArrayBuffer(signature);
  return Buffer.from(AsnConvert.serialize(cert));
}

/** Precomputed per issuer: the AKI extension is the same for everything it signs. */
const akiCache = new Map<string, Extension>();
function authorityKeyIdExtension(keyId: Buffer): Extension {
  const hex = keyId.toString('hex');
  let ext = akiCache.get(hex);
  if (!ext) {
    ext = extension(
      id_ce_authorityKeyIdentifier,
      false,
      new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(toArrayBuffer(keyId)) }),
    );
    akiCache.set(hex, ext);
  }
  return ext;
}

function keyUsage(flags: number): Extension {
  // RFC 5280 §4.2.1.3: conforming CAs SHOULD mark keyUsage critical.
  return extension(id_ce_keyUsage, true, new KeyUsage(flags));
}

function extendedKeyUsage(...purposes: string[]): Extension {
  return extension(id_ce_extKeyUsage, false, new ExtendedKeyUsage(purposes));
}

/** RFC 5280 §4.2.1.9: basicConstraints critical, cA true, pathLen bounding the chain below. */
export function caExtensions(pathLenConstraint: number): Extension[] {
  return [
    extension(id_ce_basicConstraints, true, new BasicConstraints({ cA: true, pathLenConstraint })),
    keyUsage(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign),
  ];
}

/**
 * A delegated OCSP responder (RFC 6960 §4.2.2.2): id-kp-OCSPSigning, issued by the CA it answers
 * for, with id-pkix-ocsp-nocheck (§4.2.2.2.1, NULL value, non-critical) so clients do not ask the
 * responder about its own certificate.
 */
export function ocspSignerExtensions(): Extension[] {
  return [
    keyUsage(KeyUsageFlags.digitalSignature),
    extendedKeyUsage(OID.ocspSigning),
    new Extension({
      extnID: OID.ocspNoCheck,
      critical: false,
      extnValue: new OctetString(new asn1js.Null().toBER()),
    }),
  ];
}

/** Servers call each other with mutual TLS, so one certificate is both server and client. */
export function tlsServerExtensions(dnsNames: string[], ipAddresses: string[]): Extension[] {
  return [
    keyUsage(KeyUsageFlags.digitalSignature),
    extendedKeyUsage(OID.serverAuth, OID.clientAuth),
    extension(
      id_ce_subjectAltName,
      false,
      new SubjectAlternativeName([
        ...dnsNames.map((dNSName) => new GeneralName({ dNSName })),
        ...ipAddresses.map((iPAddress) => new GeneralName({ iPAddress })),
      ]),
    ),
  ];
}

export function packageSignerExtensions(): Extension[] {
  // Devices accept a package only from a certificate with this EKU: no TLS or OCSP key of the
  // operator CA (held by third-party servers) can sign credentials.
  return [keyUsage(KeyUsageFlags.digitalSignature), extendedKeyUsage(OID.documentSigning)];
}

/** Device profile, constant part: EC keys also agree keys (ECDH-ES), RSA keys encipher (RSA-OAEP). */
export function deviceConstantExtensions(keyType: 'ec' | 'rsa'): Extension[] {
  return [
    keyUsage(
      KeyUsageFlags.digitalSignature |
        (keyType === 'ec' ? KeyUsageFlags.keyAgreement : KeyUsageFlags.keyEncipherment),
    ),
    extendedKeyUsage(OID.clientAuth),
  ];
}

/** Device profile, per device: DSIM_ID as a SAN URI (subject is non-empty, so non-critical). */
export function deviceSanExtension(dsimId: string): Extension {
  return extension(
    id_ce_subjectAltName,
    false,
    new SubjectAlternativeName([new GeneralName({ uniformResourceIdentifier: dsimUri(dsimId) })]),
  );
}

export function dsimUri(dsimId: string): string {
  return `urn:simcred:dsim:${dsimId}`;
}

/** Reads the issuer-side facts (subject name, SKI) back from a certificate this PKI wrote. */
export function issuerFromCertificate(certDer: Uint8Array, key: KeyObject | SigningKey): Issuer {
  const cert = AsnConvert.parse(certDer, Certificate);
  const skiExt = cert.tbsCertificate.extensions?.find((e) => e.extnID === id_ce_subjectKeyIdentifier);
  const keyId = skiExt
    ? Buffer.from(AsnConvert.parse(skiExt.extnValue.buffer, SubjectKeyIdentifier).buffer)
    : keyIdentifier(cert.tbsCertificate.subjectPublicKeyInfo);
  return { name: cert.tbsCertificate.subject, keyId, signer: asSigningKey(key) };
}

export function toPem(der: Uint8Array, label = 'CERTIFICATE'): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

export function pemToDer(pem: string): Buffer {
  return Buffer.from(new X509Certificate(pem).raw);
}

export function serialHex(serial: Uint8Array): string {
  return Buffer.from(serial).toString('hex');
}

/** notBefore a few minutes back, so a peer whose clock is slightly behind accepts a fresh certificate. */
export function validityFrom(now: Date, years: number): { notBefore: Date; notAfter: Date } {
  const notBefore = new Date(now.getTime() - 5 * 60_000);
  notBefore.setUTCMilliseconds(0);
  const notAfter = new Date(notBefore);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + years);
  return { notBefore, notAfter };
}

export function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}
