import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import { AsnConvert } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Certificate } from '@peculiar/asn1-x509';
import { BoundedCache } from '../crypto/bounded-cache.js';
import {
  CONTEXT,
  StructureError,
  TAG,
  UNIVERSAL,
  decodeBlock,
  decodeHeader,
  hasTag,
  integerOctets,
} from './blocks.js';

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

/** The parts of a certificate OCSP needs, decoded once. Shared and cached: treat as read-only. */
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

/** Entries of each bounded memo table below. */
export const CACHE_ENTRIES = 1000;

/*
 * The same few certificates — the issuing CAs, their delegated OCSP signers, the operator's package
 * signer — are decoded in every OCSP check, and decoding one with asn1-schema costs ~0.5–1 ms. Their
 * CertificateInfo is kept, keyed by the complete DER (a certificate that differs in one byte is a
 * different entry), at most CACHE_ENTRIES of them, least recently used dropped first.
 */
const infoCache = new BoundedCache<CertificateInfo>(CACHE_ENTRIES);

/** Counters for tests and the bench: decodes performed vs. answered from the caches. */
export const ocspCacheStats = {
  infoParsed: 0,
  infoHits: 0,
  keysImported: 0,
  keyHits: 0,
  delegateVerifications: 0,
  delegateHits: 0,
  certsFieldParsed: 0,
  certsFieldHits: 0,
};

/** The decoded parts of a certificate (memoised by its exact DER; see above). */
export function certificateInfo(der: Uint8Array): CertificateInfo {
  return infoCache.remember(
    der,
    () => parseCertificateInfo(der),
    (hit) => (hit ? ocspCacheStats.infoHits++ : ocspCacheStats.infoParsed++),
  );
}

/** certificateInfo without the memo (for certificates seen once, such as a leaf's AIA lookup). */
export function parseCertificateInfo(der: Uint8Array): CertificateInfo {
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

/** Forgets every cached decode and key (clearOcspCaches in verify.ts also forgets delegates). */
export function clearCertificateInfoCaches(): void {
  infoCache.clear();
  keyCache.clear();
}

const keyCache = new BoundedCache<KeyObject>(CACHE_ENTRIES);
const infoKeys = new WeakMap<CertificateInfo, KeyObject>();

/**
 * A public key as a node:crypto KeyObject from its DER SubjectPublicKeyInfo, memoised by the exact SPKI
 * bytes (importing an EC key costs ~0.15 ms: the point is decompressed and checked).
 */
export function publicKeyFromSpki(spki: Uint8Array): KeyObject {
  return keyCache.remember(
    spki,
    () => createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }),
    (hit) => (hit ? ocspCacheStats.keyHits++ : ocspCacheStats.keysImported++),
  );
}

/** The certificate's public key (see publicKeyFromSpki). */
export function publicKeyOf(cert: CertificateInfo): KeyObject {
  let key = infoKeys.get(cert);
  if (key === undefined) {
    key = publicKeyFromSpki(
      new Uint8Array(AsnConvert.serialize(cert.asn.tbsCertificate.subjectPublicKeyInfo)),
    );
    infoKeys.set(cert, key);
  }
  return key;
}

/**
 * The serialNumber INTEGER's content octets of a DER certificate, exactly as encoded (CertID.serialNumber),
 * decoding no more of the certificate than the two headers in front of it and the version:
 * `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { version [0] EXPLICIT … OPTIONAL, serialNumber
 * INTEGER, … }, … }`. asn1js reads every header and element (see blocks.ts); a full decode of a leaf
 * costs ~150 µs, node:crypto's X509Certificate as much (OpenSSL 3 decodes the public key eagerly).
 */
export function certificateSerial(der: Uint8Array): ArrayBuffer {
  try {
    const certificate = decodeHeader(der);
    if (certificate.headerLength + certificate.contentLength !== der.byteLength) {
      throw new StructureError('trailing data after the certificate');
    }
    const tbsOffset = certificate.headerLength;
    const tbs = decodeHeader(der.subarray(tbsOffset));
    if (!certificate.constructed || certificate.tagNumber !== TAG.SEQUENCE || !tbs.constructed) {
      throw new StructureError('not a Certificate');
    }
    if (tbs.tagClass !== UNIVERSAL || tbs.tagNumber !== TAG.SEQUENCE)
      throw new StructureError('no tbsCertificate');
    const tbsEnd = tbsOffset + tbs.headerLength + tbs.contentLength;
    let offset = tbsOffset + tbs.headerLength;
    let field = decodeBlock(der.subarray(offset, tbsEnd));
    if (hasTag(field, CONTEXT, 0, true)) {
      offset += field.blockLength;
      field = decodeBlock(der.subarray(offset, tbsEnd));
    }
    return integerOctets(field, 'serialNumber').slice().buffer;
  } catch (err) {
    throw new Error(`not a DER certificate: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}

/**
 * DER of a constructed element — a SEQUENCE (universal 16) or a context-specific [n] EXPLICIT tag —
 * whose contents are elements already encoded by asn1js / asn1-schema: the contents are not decoded
 * and re-encoded again (which is what embedding a DER value through asn1-schema's Any costs: a full
 * parse per use), and the identifier and length octets are asn1js's (derHeader).
 */
export function derConstructed(
  tagClass: 'universal' | 'context',
  tagNumber: number,
  contents: Uint8Array[],
): Buffer {
  let length = 0;
  for (const part of contents) length += part.byteLength;
  const header = derHeader(tagClass === 'universal' ? 1 : 3, tagNumber, true, length);
  return Buffer.concat([header, ...contents], header.byteLength + length);
}

/**
 * DER of a primitive universal element (OCTET STRING, INTEGER, BIT STRING …) whose content octets
 * are given as they are encoded: a BIT STRING's start with its unused-bits octet, an INTEGER's are
 * two's complement as read from a DER input.
 */
export function derPrimitive(tagNumber: number, ...content: Uint8Array[]): Buffer {
  let length = 0;
  for (const part of content) length += part.byteLength;
  const header = derHeader(1, tagNumber, false, length);
  return Buffer.concat([header, ...content], header.byteLength + length);
}

/*
 * Identifier and length octets per tag, form and content length, as asn1js writes them for an element
 * of that many content octets. Building an asn1js block per element costs far more than the few
 * octets it writes (its constructors and its writer copy the contents twice), and one answer or
 * request takes about ten; the distinct headers in use are few (the contents' lengths barely vary).
 */
const headers = new Map<number, Buffer>();
const MAX_HEADERS = 4096;

function derHeader(tagClass: 1 | 3, tagNumber: number, constructed: boolean, length: number): Buffer {
  // Tag numbers up to 30 fit the one identifier octet (every tag here does), and make the key unique.
  const key = tagNumber <= 30 ? ((length * 32 + tagNumber) * 2 + (constructed ? 1 : 0)) * 4 + tagClass : -1;
  let header = headers.get(key);
  if (header === undefined) {
    const element = new asn1js.Primitive({
      idBlock: { tagClass, tagNumber },
      valueHex: new Uint8Array(length),
    });
    element.idBlock.isConstructed = constructed;
    const der = element.toBER(false);
    header = Buffer.from(der, 0, der.byteLength - length);
    if (key < 0) return header;
    if (headers.size >= MAX_HEADERS) headers.clear();
    headers.set(key, header);
  }
  return header;
}

/** The DER of one value encoded by asn1js (an asn1js block) or asn1-schema (a schema object). */
export function derOf(value: asn1js.BaseBlock | object): Buffer {
  return Buffer.from(value instanceof asn1js.BaseBlock ? value.toBER(false) : AsnConvert.serialize(value));
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
