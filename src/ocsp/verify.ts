import { X509Certificate, verify as verifySignature, type KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  OCSPResponse,
  OCSPResponseStatus,
  type ResponseData,
  id_pkix_ocsp_basic,
  id_pkix_ocsp_nonce,
  type CertID,
  type SingleResponse,
} from '@peculiar/asn1-ocsp';
import {
  type AlgorithmIdentifier,
  ExtendedKeyUsage,
  id_ce_extKeyUsage,
  id_kp_OCSPSigning,
} from '@peculiar/asn1-x509';
import { SimcredError } from '../errors/index.js';
import {
  CACHE_ENTRIES,
  FLAT,
  ReceivedBasicOcspResponse,
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

/**
 * Strict RFC 6960 verification of a DER OCSPResponse about one certificate. Every failure is a
 * distinct SimcredError; nothing but a fully verified response yields a status.
 */
export function verifyOcspResponse(der: Uint8Array, options: VerifyOptions): OcspResult {
  let response: OCSPResponse;
  try {
    response = AsnConvert.parse(der, OCSPResponse, FLAT);
  } catch (err) {
    throw new SimcredError('SIMCRED_OCSP_MALFORMED_RESPONSE', 'OCSP response is not DER OCSPResponse', {
      cause: err,
    });
  }
  if (response.responseStatus !== OCSPResponseStatus.successful) {
    const name = OCSPResponseStatus[response.responseStatus] ?? String(response.responseStatus);
    throw new SimcredError('SIMCRED_OCSP_RESPONDER_ERROR', `OCSP responder answered ${name}`, {
      ...(response.responseStatus === OCSPResponseStatus.tryLater ? { retryAfter: 5 } : {}),
    });
  }
  if (!response.responseBytes || response.responseBytes.responseType !== id_pkix_ocsp_basic) {
    throw new SimcredError('SIMCRED_OCSP_MALFORMED_RESPONSE', 'OCSP response is not a BasicOCSPResponse');
  }
  // One decode of the BasicOCSPResponse: tbsResponseData both decoded and kept as the exact DER the
  // signature covers; each certificate kept as DER and looked up by it, so a delegated signer sent in
  // every response is decoded once, not decoded, re-encoded and decoded again in each response.
  let tbsRaw: Uint8Array;
  let data: ResponseData;
  let signatureAlgorithm: AlgorithmIdentifier;
  let signatureValue: ArrayBuffer;
  const certs: CertificateInfo[] = [];
  try {
    const basic = AsnConvert.parse(response.responseBytes.response.buffer, ReceivedBasicOcspResponse, FLAT);
    if (!basic.tbsResponseDataRaw) throw new Error('no tbsResponseData');
    tbsRaw = basic.tbsResponseDataRaw;
    data = basic.tbsResponseData;
    signatureAlgorithm = basic.signatureAlgorithm;
    signatureValue = basic.signature;
    for (const cert of basic.certs ?? []) certs.push(certificateInfo(new Uint8Array(cert)));
  } catch (err) {
    throw new SimcredError('SIMCRED_OCSP_MALFORMED_RESPONSE', 'BasicOCSPResponse does not parse', {
      cause: err,
    });
  }
  const skewMs = options.clockSkewSeconds * 1000;
  const now = options.now.getTime();

  // 1. Who signed: the ResponderID names the issuer itself or a certificate carried in the response.
  const candidates: CertificateInfo[] = [options.issuer, ...certs];
  const byName = data.responderID.byName ? Buffer.from(AsnConvert.serialize(data.responderID.byName)) : null;
  const byKey = data.responderID.byKey ? Buffer.from(data.responderID.byKey.buffer) : null;
  const signer = candidates.find((c) =>
    byName ? byName.equals(c.subjectDer) : byKey ? byKey.equals(keyId(c)) : false,
  );
  if (!signer) {
    throw new SimcredError(
      'SIMCRED_OCSP_UNAUTHORIZED_SIGNER',
      'no certificate matching the ResponderID: the signer is neither the issuer nor a responder it delegated',
    );
  }

  // 2. The signature over tbsResponseData, with the signer's key.
  const algorithm = SIGNATURE_ALGORITHMS[signatureAlgorithm.algorithm];
  if (!algorithm) {
    throw new SimcredError(
      'SIMCRED_OCSP_BAD_SIGNATURE',
      `unsupported OCSP signature algorithm ${signatureAlgorithm.algorithm}`,
    );
  }
  const signerKey = publicKeyOf(signer);
  let verified = false;
  try {
    verified = verifySignature(
      algorithm.hash,
      new Uint8Array(tbsRaw),
      { key: signerKey, dsaEncoding: 'der' },
      new Uint8Array(signatureValue),
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
  const single = data.responses.find((r) => sameCertId(r.certID, options.certId));
  if (!single) {
    throw new SimcredError('SIMCRED_OCSP_CERTID_MISMATCH', 'the OCSP response is not about this certificate');
  }

  // 5. The nonce is echoed exactly.
  if (options.nonce) {
    const echoed = data.responseExtensions?.find((e) => e.extnID === id_pkix_ocsp_nonce);
    if (!echoed || !Buffer.from(echoed.extnValue.buffer).equals(Buffer.from(options.nonce))) {
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
  return toResult(single, data.producedAt);
}

function toResult(single: SingleResponse, producedAt: Date): OcspResult {
  const base = {
    thisUpdate: single.thisUpdate,
    producedAt,
    ...(single.nextUpdate ? { nextUpdate: single.nextUpdate } : {}),
  };
  const s = single.certStatus;
  if (s.revoked) {
    return {
      status: 'revoked',
      revokedAt: s.revoked.revocationTime,
      ...(s.revoked.revocationReason ? { reason: s.revoked.revocationReason.reason } : {}),
      ...base,
    };
  }
  if (s.good !== undefined) return { status: 'good', ...base };
  return { status: 'unknown', ...base };
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
    const x = new X509Certificate(signer.der);
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
  const eku = signer.asn.tbsCertificate.extensions?.find((e) => e.extnID === id_ce_extKeyUsage);
  const usages = eku ? AsnConvert.parse(eku.extnValue.buffer, ExtendedKeyUsage) : [];
  if (!usages.includes(id_kp_OCSPSigning)) deny('no id-kp-OCSPSigning extended key usage');
  if (signer.notBefore.getTime() > now + skewMs || signer.notAfter.getTime() < now - skewMs) {
    deny('its certificate is not valid now');
  }
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

export function sameCertId(a: CertID, b: CertID): boolean {
  return (
    a.hashAlgorithm.algorithm === b.hashAlgorithm.algorithm &&
    Buffer.from(a.issuerNameHash.buffer).equals(Buffer.from(b.issuerNameHash.buffer)) &&
    Buffer.from(a.issuerKeyHash.buffer).equals(Buffer.from(b.issuerKeyHash.buffer)) &&
    serialKey(new Uint8Array(a.serialNumber)) === serialKey(new Uint8Array(b.serialNumber))
  );
}
