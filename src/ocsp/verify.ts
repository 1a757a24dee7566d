import { X509Certificate, verify as verifySignature, type KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { OCSPResponseStatus, id_pkix_ocsp_basic, id_pkix_ocsp_nonce, type CertID } from '@peculiar/asn1-ocsp';
import { ExtendedKeyUsage, id_ce_extKeyUsage, id_kp_OCSPSigning } from '@peculiar/asn1-x509';
import { SimcredError } from '../errors/index.js';
import {
  CACHE_ENTRIES,
  SIGNATURE_ALGORITHMS,
  certificateInfo,
  clearCertificateInfoCaches,
  digest,
  ocspCacheStats,
  publicKeyOf,
  serialKey,
  type CertificateInfo,
} from './asn1.js';
import { BoundedCache, derPairKey } from '../crypto/bounded-cache.js';
import {
  CONTEXT,
  StructureError,
  TAG,
  assertDer,
  UNIVERSAL,
  bitStringBytes,
  decodeBlock,
  decodeHeader,
  decodeWhole,
  elements,
  enumerated,
  explicit,
  extensions,
  generalizedTime,
  hasTag,
  integerOctets,
  octetString,
  oid,
  rawOf,
  type Block,
} from './blocks.js';

export type OcspStatus = 'good' | 'revoked' | 'unknown';

export interface OcspResult {
  status: OcspStatus;
  revokedAt?: Date;
  /** RFC 5280 CRLReason code, when the responder gave one. */
  reason?: number;
  thisUpdate: Date;
  nextUpdate?: Date;
  producedAt: Date;
}

export interface VerifyOptions {
  /** The CertID the request carried (hash algorithm, issuer hashes, serial). */
  certId: CertID;
  issuer: CertificateInfo;
  /** extnValue of the nonce extension sent, if any. */
  nonce?: Uint8Array;
  now: Date;
  clockSkewSeconds: number;
}

/** A CertID as read from a response: the parts compared with the one requested. */
interface ReceivedCertId {
  hashOid: string;
  nameHash: Uint8Array;
  keyHash: Uint8Array;
  serial: Uint8Array;
}

interface ReceivedSingle {
  certId: ReceivedCertId;
  status: OcspStatus;
  revokedAt?: Date;
  reason?: number;
  thisUpdate: Date;
  nextUpdate?: Date;
}

/** BasicOCSPResponse as the client reads it (see readBasicResponse). */
interface ReceivedBasic {
  /** The exact DER of tbsResponseData: what the signature covers. */
  tbsRaw: Uint8Array;
  responderByName?: Uint8Array;
  responderByKey?: Uint8Array;
  producedAt: Date;
  responses: ReceivedSingle[];
  /** extnValue of the nonce response extension, when there is one. */
  nonce?: Uint8Array;
  signatureAlgorithm: string;
  signature: Uint8Array;
  certs: CertificateInfo[];
}

/**
 * Strict RFC 6960 verification of a DER OCSPResponse about one certificate. Every failure is a
 * distinct SimcredError; nothing but a fully verified response yields a status.
 */
export function verifyOcspResponse(der: Uint8Array, options: VerifyOptions): OcspResult {
  // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT ResponseBytes OPTIONAL }
  // ResponseBytes ::= SEQUENCE { responseType OBJECT IDENTIFIER, response OCTET STRING }
  let responseStatus: number;
  let responseBytes: { type: string; response: Uint8Array } | undefined;
  try {
    const fields = elements(decodeWhole(der), 'OCSPResponse');
    if (fields.length < 1 || fields.length > 2) throw new StructureError('OCSPResponse fields');
    responseStatus = enumerated(fields[0], 'responseStatus');
    if (fields[1] !== undefined) {
      const bytes = elements(explicit(fields[1], 0, 'responseBytes'), 'ResponseBytes');
      if (bytes.length !== 2) throw new StructureError('ResponseBytes fields');
      responseBytes = { type: oid(bytes[0], 'responseType'), response: octetString(bytes[1], 'response') };
    }
  } catch (err) {
    throw new SimcredError('SIMCRED_OCSP_MALFORMED_RESPONSE', 'OCSP response is not DER OCSPResponse', {
      cause: err,
    });
  }
  if (responseStatus !== OCSPResponseStatus.successful) {
    const name = OCSPResponseStatus[responseStatus] ?? String(responseStatus);
    throw new SimcredError('SIMCRED_OCSP_RESPONDER_ERROR', `OCSP responder answered ${name}`, {
      ...(responseStatus === OCSPResponseStatus.tryLater ? { retryAfter: 5 } : {}),
    });
  }
  if (!responseBytes || responseBytes.type !== id_pkix_ocsp_basic) {
    throw new SimcredError('SIMCRED_OCSP_MALFORMED_RESPONSE', 'OCSP response is not a BasicOCSPResponse');
  }
  let data: ReceivedBasic;
  try {
    data = readBasicResponse(responseBytes.response);
  } catch (err) {
    throw new SimcredError('SIMCRED_OCSP_MALFORMED_RESPONSE', 'BasicOCSPResponse does not parse', {
      cause: err,
    });
  }
  const skewMs = options.clockSkewSeconds * 1000;
  const now = options.now.getTime();

  // 1. Who signed: the ResponderID names the issuer itself or a certificate carried in the response.
  const candidates: CertificateInfo[] = [options.issuer, ...data.certs];
  const byName = data.responderByName;
  const byKey = data.responderByKey;
  const signer = candidates.find((c) =>
    byName ? bytesEqual(byName, c.subjectDer) : byKey ? bytesEqual(byKey, keyId(c)) : false,
  );
  if (!signer) {
    throw new SimcredError(
      'SIMCRED_OCSP_UNAUTHORIZED_SIGNER',
      'no certificate matching the ResponderID: the signer is neither the issuer nor a responder it delegated',
    );
  }

  // 2. The signature over tbsResponseData, with the signer's key.
  const algorithm = SIGNATURE_ALGORITHMS[data.signatureAlgorithm];
  if (!algorithm) {
    throw new SimcredError(
      'SIMCRED_OCSP_BAD_SIGNATURE',
      `unsupported OCSP signature algorithm ${data.signatureAlgorithm}`,
    );
  }
  let signerKey: KeyObject;
  try {
    signerKey = publicKeyOf(signer);
  } catch (err) {
    // A certificate in the certs field decoded, but its key does not import: nothing can verify.
    throw new SimcredError('SIMCRED_OCSP_BAD_SIGNATURE', "the OCSP signer's public key is unreadable", {
      cause: err,
    });
  }
  let verified = false;
  try {
    verified = verifySignature(
      algorithm.hash,
      data.tbsRaw,
      { key: signerKey, dsaEncoding: 'der' },
      data.signature,
    );
  } catch {
    verified = false;
  }
  if (!verified || !keyMatches(signerKey, algorithm.kind)) {
    throw new SimcredError('SIMCRED_OCSP_BAD_SIGNATURE', 'OCSP response signature does not verify');
  }

  // 3. The signer's authority (RFC 6960 §4.2.2.2): the issuer, or a certificate the issuer signed
  //    with id-kp-OCSPSigning, valid now.
  if (signer !== options.issuer && !signer.der.equals(options.issuer.der)) {
    authoriseDelegate(signer, options.issuer, now, skewMs);
  }

  // 4. The answer is about the certificate asked for.
  const single = data.responses.find((r) => sameCertId(r.certId, options.certId));
  if (!single) {
    throw new SimcredError('SIMCRED_OCSP_CERTID_MISMATCH', 'the OCSP response is not about this certificate');
  }

  // 5. The nonce is echoed exactly.
  if (options.nonce) {
    const echoed = data.nonce;
    if (!echoed || !bytesEqual(echoed, options.nonce)) {
      throw new SimcredError(
        'SIMCRED_OCSP_NONCE_MISMATCH',
        echoed ? 'the OCSP response carries another nonce' : 'the OCSP response carries no nonce',
      );
    }
  }

  // 6. Time window, with bounded clock skew.
  const thisUpdate = single.thisUpdate;
  if (thisUpdate.getTime() > now + skewMs || data.producedAt.getTime() > now + skewMs) {
    throw new SimcredError(
      'SIMCRED_OCSP_STALE',
      `OCSP thisUpdate ${thisUpdate.toISOString()} is in the future`,
    );
  }
  if (single.nextUpdate && single.nextUpdate.getTime() < now - skewMs) {
    throw new SimcredError(
      'SIMCRED_OCSP_STALE',
      `OCSP nextUpdate ${single.nextUpdate.toISOString()} has passed`,
    );
  }
  return {
    status: single.status,
    ...(single.revokedAt ? { revokedAt: single.revokedAt } : {}),
    ...(single.reason !== undefined ? { reason: single.reason } : {}),
    thisUpdate,
    ...(single.nextUpdate ? { nextUpdate: single.nextUpdate } : {}),
    producedAt: data.producedAt,
  };
}

/**
 * BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData, signatureAlgorithm AlgorithmIdentifier,
 *   signature BIT STRING, certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
 *
 * Read field by field with asn1js (blocks.ts): the SEQUENCE's header, then its first three elements one
 * after another; what follows them, up to the end of the SEQUENCE, is the optional certs field. A
 * responder sends the same delegated signer certificate in every response, and decoding it is most of
 * the cost of decoding a response, so the certs field is remembered by its exact bytes (see certsField);
 * tbsResponseData is kept as its exact DER, what the signature covers.
 */
function readBasicResponse(der: Uint8Array): ReceivedBasic {
  assertDer(der);
  const header = decodeHeader(der);
  if (
    header.tagClass !== UNIVERSAL ||
    header.tagNumber !== TAG.SEQUENCE ||
    !header.constructed ||
    header.headerLength + header.contentLength !== der.byteLength
  ) {
    throw new StructureError('BasicOCSPResponse is not one SEQUENCE');
  }
  let offset = header.headerLength;
  const next = (): Block => {
    if (offset >= der.byteLength) throw new StructureError('BasicOCSPResponse fields');
    const block = decodeBlock(der.subarray(offset));
    offset += block.blockLength;
    return block;
  };
  const tbs = next();
  const algorithm = elements(next(), 'signatureAlgorithm');
  if (algorithm.length < 1 || algorithm.length > 2) throw new StructureError('AlgorithmIdentifier fields');
  const signature = bitStringBytes(next(), 'signature');
  const certs = offset < der.byteLength ? certsField(der.subarray(offset)) : [];
  return {
    ...readResponseData(tbs),
    tbsRaw: rawOf(tbs),
    signatureAlgorithm: oid(algorithm[0], 'signatureAlgorithm'),
    signature,
    certs,
  };
}

/*
 * BasicOCSPResponse.certs, `[0] EXPLICIT SEQUENCE OF Certificate`, by its exact bytes: a field seen before
 * (byte for byte) is the same certificates; anything else is decoded (and must be exactly one such field).
 * Only the decode is remembered: what the certificates are trusted for is decided per response.
 */
const certsFields = new BoundedCache<CertificateInfo[]>(CACHE_ENTRIES);

function certsField(der: Uint8Array): CertificateInfo[] {
  return certsFields.remember(
    der,
    () =>
      elements(explicit(decodeWhole(der), 0, 'certs'), 'certs').map((cert) => {
        elements(cert, 'Certificate');
        return certificateInfo(rawOf(cert));
      }),
    (hit) => (hit ? ocspCacheStats.certsFieldHits++ : ocspCacheStats.certsFieldParsed++),
  );
}

/*
 * ResponseData ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1, responderID ResponderID,
 *   producedAt GeneralizedTime, responses SEQUENCE OF SingleResponse,
 *   responseExtensions [1] EXPLICIT Extensions OPTIONAL }
 * ResponderID ::= CHOICE { byName [1] Name, byKey [2] KeyHash }
 */
function readResponseData(block: Block | undefined) {
  const fields = elements(block, 'ResponseData');
  let i = 0;
  if (hasTag(fields[i], CONTEXT, 0, true)) {
    const version = integerOctets(explicit(fields[i++], 0, 'version'), 'version');
    if (version.byteLength !== 1 || version[0] !== 0)
      throw new StructureError('ResponseData version is not v1');
  }
  let responderByName: Uint8Array | undefined;
  let responderByKey: Uint8Array | undefined;
  const responder = fields[i++];
  if (hasTag(responder, CONTEXT, 1, true)) {
    const name = explicit(responder, 1, 'ResponderID byName');
    elements(name, 'Name');
    responderByName = rawOf(name);
  } else {
    responderByKey = octetString(explicit(responder, 2, 'ResponderID'), 'ResponderID byKey');
  }
  const producedAt = generalizedTime(fields[i++], 'producedAt');
  const responses = elements(fields[i++], 'responses').map(readSingleResponse);
  let nonce: Uint8Array | undefined;
  if (fields[i] !== undefined) {
    for (const ext of extensions(explicit(fields[i++], 1, 'responseExtensions'))) {
      if (ext.id === id_pkix_ocsp_nonce) nonce = ext.value;
    }
  }
  if (i !== fields.length) throw new StructureError('extra fields in ResponseData');
  return {
    ...(responderByName ? { responderByName } : {}),
    ...(responderByKey ? { responderByKey } : {}),
    producedAt,
    responses,
    ...(nonce ? { nonce } : {}),
  };
}

/*
 * SingleResponse ::= SEQUENCE { certID CertID, certStatus CertStatus, thisUpdate GeneralizedTime,
 *   nextUpdate [0] EXPLICIT GeneralizedTime OPTIONAL, singleExtensions [1] EXPLICIT Extensions OPTIONAL }
 * CertStatus ::= CHOICE { good [0] IMPLICIT NULL, revoked [1] IMPLICIT RevokedInfo, unknown [2] IMPLICIT NULL }
 * RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }
 */
function readSingleResponse(block: Block): ReceivedSingle {
  const fields = elements(block, 'SingleResponse');
  const certId = readCertId(fields[0]);
  const status = fields[1];
  let single: Pick<ReceivedSingle, 'status' | 'revokedAt' | 'reason'>;
  if (hasTag(status, CONTEXT, 0, false) && isEmpty(status!)) {
    single = { status: 'good' };
  } else if (hasTag(status, CONTEXT, 2, false) && isEmpty(status!)) {
    single = { status: 'unknown' };
  } else {
    const revoked = elements(status, 'CertStatus', CONTEXT, 1);
    if (revoked.length < 1 || revoked.length > 2) throw new StructureError('RevokedInfo fields');
    single = {
      status: 'revoked',
      revokedAt: generalizedTime(revoked[0], 'revocationTime'),
      ...(revoked[1] !== undefined
        ? { reason: enumerated(explicit(revoked[1], 0, 'revocationReason'), 'revocationReason') }
        : {}),
    };
  }
  const thisUpdate = generalizedTime(fields[2], 'thisUpdate');
  let i = 3;
  let nextUpdate: Date | undefined;
  if (hasTag(fields[i], CONTEXT, 0, true)) {
    nextUpdate = generalizedTime(explicit(fields[i++], 0, 'nextUpdate'), 'nextUpdate');
  }
  if (fields[i] !== undefined) extensions(explicit(fields[i++], 1, 'singleExtensions'));
  if (i !== fields.length) throw new StructureError('extra fields in SingleResponse');
  return { certId, ...single, thisUpdate, ...(nextUpdate ? { nextUpdate } : {}) };
}

/* CertID ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET STRING,
 *   issuerKeyHash OCTET STRING, serialNumber CertificateSerialNumber } */
function readCertId(block: Block | undefined): ReceivedCertId {
  const fields = elements(block, 'CertID');
  if (fields.length !== 4) throw new StructureError('CertID fields');
  const algorithm = elements(fields[0], 'hashAlgorithm');
  if (algorithm.length < 1 || algorithm.length > 2) throw new StructureError('AlgorithmIdentifier fields');
  return {
    hashOid: oid(algorithm[0], 'hashAlgorithm'),
    nameHash: octetString(fields[1], 'issuerNameHash'),
    keyHash: octetString(fields[2], 'issuerKeyHash'),
    serial: integerOctets(fields[3], 'serialNumber'),
  };
}

/** A primitive element with no content octets (an IMPLICIT NULL). */
function isEmpty(block: Block): boolean {
  return rawOf(block).byteLength === block.blockLength && block.blockLength === 2;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return (
    a.byteLength === b.byteLength &&
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    )
  );
}

/*
 * Delegated signers whose certificate was found issued and signed by the issuer: a pure function of the
 * two certificates' DER, so it is kept, keyed by both complete DER values (CACHE_ENTRIES pairs at most).
 * Only successes are kept; a delegate that failed is examined afresh every time. Extended key usage and
 * validity are checked on every response.
 */
const authorisedDelegates = new BoundedCache<true>(CACHE_ENTRIES);

/** Forgets every cached decode, public key and delegate authorisation (a cold start, for tests). */
export function clearOcspCaches(): void {
  clearCertificateInfoCaches();
  authorisedDelegates.clear();
  certsFields.clear();
}

function authoriseDelegate(
  signer: CertificateInfo,
  issuer: CertificateInfo,
  now: number,
  skewMs: number,
): void {
  const deny = (why: string): never => {
    throw new SimcredError('SIMCRED_OCSP_UNAUTHORIZED_SIGNER', `OCSP signer not authorised: ${why}`);
  };
  const pair = derPairKey(signer.der, issuer.der);
  if (authorisedDelegates.get(pair) === undefined) {
    ocspCacheStats.delegateVerifications++;
    let x: X509Certificate;
    try {
      x = new X509Certificate(signer.der);
    } catch {
      return deny('its certificate is not readable');
    }
    if (!Buffer.from(AsnConvert.serialize(signer.asn.tbsCertificate.issuer)).equals(issuer.subjectDer)) {
      deny('not issued by the certificate issuer');
    }
    let signedByIssuer = false;
    try {
      signedByIssuer = x.verify(publicKeyOf(issuer));
    } catch {
      signedByIssuer = false;
    }
    if (!signedByIssuer) deny('its certificate is not signed by the issuer');
    authorisedDelegates.set(pair, true);
  } else {
    ocspCacheStats.delegateHits++;
  }
  if (!hasOcspSigning(signer)) deny('no id-kp-OCSPSigning extended key usage');
  if (signer.notBefore.getTime() > now + skewMs || signer.notAfter.getTime() < now - skewMs) {
    deny('its certificate is not valid now');
  }
}

/** Whether the certificate lists id-kp-OCSPSigning (a function of its DER: memoised per decoded certificate). */
const ocspSigning = new WeakMap<CertificateInfo, boolean>();
function hasOcspSigning(cert: CertificateInfo): boolean {
  let found = ocspSigning.get(cert);
  if (found === undefined) {
    const eku = cert.asn.tbsCertificate.extensions?.find((e) => e.extnID === id_ce_extKeyUsage);
    found = (eku ? AsnConvert.parse(eku.extnValue.buffer, ExtendedKeyUsage) : []).includes(id_kp_OCSPSigning);
    ocspSigning.set(cert, found);
  }
  return found;
}

/** ResponderID byKey of a certificate: SHA-1 of its public key bits (memoised per decoded certificate). */
const keyIds = new WeakMap<CertificateInfo, Buffer>();
function keyId(cert: CertificateInfo): Buffer {
  let id = keyIds.get(cert);
  if (id === undefined) {
    id = digest('sha1', cert.publicKeyBits);
    keyIds.set(cert, id);
  }
  return id;
}

function keyMatches(key: KeyObject, kind: 'ec' | 'rsa' | 'ed'): boolean {
  const type = key.asymmetricKeyType;
  return kind === 'ec' ? type === 'ec' : kind === 'rsa' ? type === 'rsa' : type === 'ed25519';
}

/** Whether a CertID read from a response is the one requested (same hash, issuer hashes and serial). */
function sameCertId(received: ReceivedCertId, sent: CertID): boolean {
  return (
    received.hashOid === sent.hashAlgorithm.algorithm &&
    bytesEqual(received.nameHash, new Uint8Array(sent.issuerNameHash.buffer)) &&
    bytesEqual(received.keyHash, new Uint8Array(sent.issuerKeyHash.buffer)) &&
    serialKey(received.serial) === serialKey(new Uint8Array(sent.serialNumber))
  );
}
