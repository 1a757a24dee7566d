import { createHash, type KeyObject } from 'node:crypto';
import { AsnConvert, AsnProp, AsnPropTypes, AsnType, AsnTypeTypes } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Certificate } from '@peculiar/asn1-x509';

/** Hash algorithms a CertID may use (RFC 6960 §4.1.1; RFC 5019 clients send SHA-1). */
export const HASH_OIDS: Record<string, 'sha1' | 'sha256' | 'sha384' | 'sha512'> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};
export const OID_BY_HASH = { sha1: '1.3.14.3.2.26', sha256: '2.16.840.1.101.3.4.2.1' } as const;
export type CertIdHash = keyof typeof OID_BY_HASH;

/** Signature algorithms the client verifies and the responder signs with. */
export const SIGNATURE_ALGORITHMS: Record<string, { hash: string | null; kind: 'ec' | 'rsa' | 'ed' }> = {
  '1.2.840.10045.4.1': { hash: 'sha1', kind: 'ec' },
  '1.2.840.10045.4.3.2': { hash: 'sha256', kind: 'ec' },
  '1.2.840.10045.4.3.3': { hash: 'sha384', kind: 'ec' },
  '1.2.840.10045.4.3.4': { hash: 'sha512', kind: 'ec' },
  '1.2.840.113549.1.1.5': { hash: 'sha1', kind: 'rsa' },
  '1.2.840.113549.1.1.11': { hash: 'sha256', kind: 'rsa' },
  '1.2.840.113549.1.1.12': { hash: 'sha384', kind: 'rsa' },
  '1.2.840.113549.1.1.13': { hash: 'sha512', kind: 'rsa' },
  '1.3.101.112': { hash: null, kind: 'ed' },
};

/**
 * BasicOCSPResponse (RFC 6960 §4.2.1) whose parts are already-encoded DER: the signed
 * tbsResponseData and the certificates are inserted as they are, not re-encoded per response.
 * Declared without decorator syntax (the project compiles with standard decorators).
 */
export class RawBasicOcspResponse {
  tbsResponseData: ArrayBuffer = new ArrayBuffer(0);
  signatureAlgorithm: ArrayBuffer = new ArrayBuffer(0);
  signature: ArrayBuffer = new ArrayBuffer(0);
  certs?: ArrayBuffer[];
  constructor(params: Partial<RawBasicOcspResponse> = {}) {
    Object.assign(this, params);
  }
}
AsnType({ type: AsnTypeTypes.Sequence })(RawBasicOcspResponse);
AsnProp({ type: AsnPropTypes.Any })(RawBasicOcspResponse.prototype, 'tbsResponseData');
AsnProp({ type: AsnPropTypes.Any })(RawBasicOcspResponse.prototype, 'signatureAlgorithm');
AsnProp({ type: AsnPropTypes.BitString })(RawBasicOcspResponse.prototype, 'signature');
AsnProp({ type: AsnPropTypes.Any, repeated: 'sequence', optional: true, context: 0 })(
  RawBasicOcspResponse.prototype,
  'certs',
);

/** A Node Buffer's bytes as an exact ArrayBuffer (asn1-schema wants ArrayBuffer / views). */
export function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** The signature AlgorithmIdentifier and node:crypto digest for a signing key. */
export function signatureAlgorithmFor(key: KeyObject): {
  oid: string;
  digest: string | null;
  der: ArrayBuffer;
} {
  let oid: string;
  let params: ArrayBuffer | null | undefined;
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      oid =
        curve === 'secp384r1'
          ? '1.2.840.10045.4.3.3'
          : curve === 'secp521r1'
            ? '1.2.840.10045.4.3.4'
            : '1.2.840.10045.4.3.2';
      break;
    }
    case 'rsa':
      oid = '1.2.840.113549.1.1.11';
      params = null; // sha256WithRSAEncryption carries an explicit NULL
      break;
    case 'ed25519':
      oid = '1.3.101.112';
      break;
    default:
      throw new Error(`unsupported OCSP signing key type ${key.asymmetricKeyType ?? 'unknown'}`);
  }
  const alg = new AlgorithmIdentifier({ algorithm: oid });
  if (params === null) alg.parameters = null;
  return { oid, digest: SIGNATURE_ALGORITHMS[oid]!.hash, der: AsnConvert.serialize(alg) };
}

/** The parts of a certificate OCSP needs, decoded once. */
export interface CertificateInfo {
  der: Buffer;
  asn: Certificate;
  /** DER of the subject Name (hashed into CertID.issuerNameHash, compared with ResponderID byName). */
  subjectDer: Buffer;
  /** The subjectPublicKey BIT STRING's content (hashed into issuerKeyHash and ResponderID byKey). */
  publicKeyBits: Buffer;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
}

export function certificateInfo(der: Uint8Array): CertificateInfo {
  const asn = AsnConvert.parse(der, Certificate);
  const tbs = asn.tbsCertificate;
  return {
    der: Buffer.from(der),
    asn,
    subjectDer: Buffer.from(AsnConvert.serialize(tbs.subject)),
    publicKeyBits: Buffer.from(tbs.subjectPublicKeyInfo.subjectPublicKey),
    serialHex: Buffer.from(tbs.serialNumber).toString('hex'),
    notBefore: tbs.validity.notBefore.getTime(),
    notAfter: tbs.validity.notAfter.getTime(),
  };
}

/** PEM (one certificate) or DER → DER. */
export function certificateDer(input: string | Uint8Array): Buffer {
  if (typeof input !== 'string') {
    const text = Buffer.from(input).toString('latin1');
    if (!text.includes('-----BEGIN')) return Buffer.from(input);
    input = text;
  }
  const m = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(input);
  if (!m) throw new Error('no PEM certificate found');
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

export function digest(alg: string, data: Uint8Array): Buffer {
  return createHash(alg).update(data).digest();
}

/** Serial numbers as lower-case hex without DER's leading zero octets (as CaStore keys them). */
export function serialKey(serial: Uint8Array): string {
  const hex = Buffer.from(serial)
    .toString('hex')
    .replace(/^(00)+/, '');
  return hex === '' ? '00' : hex;
}
