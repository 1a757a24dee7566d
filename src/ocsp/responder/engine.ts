import { sign } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  CertStatus,
  OCSPRequest,
  OCSPResponse,
  OCSPResponseStatus,
  ResponseBytes,
  ResponseData,
  RevokedInfo,
  SingleResponse,
  id_pkix_ocsp_basic,
  id_pkix_ocsp_nonce,
  type CertID,
} from '@peculiar/asn1-ocsp';
import { CRLReason, Extension } from '@peculiar/asn1-x509';
import type { CertificateStatus } from '../../pki/store.js';
import { HASH_OIDS, RawBasicOcspResponse, serialKey } from '../asn1.js';
import type { IssuerIndex, ServedIssuer } from './issuers.js';

/** RFC 8954 §2.1: a nonce is 1 to 32 octets. */
export const MAX_NONCE_OCTETS = 32;

export type ErrorStatus = 'malformedRequest' | 'internalError' | 'tryLater' | 'unauthorized';

/** The four unsigned error responses, encoded once. */
export const ERROR_RESPONSES: Record<ErrorStatus, Buffer> = {
  malformedRequest: errorResponse(OCSPResponseStatus.malformedRequest),
  internalError: errorResponse(OCSPResponseStatus.internalError),
  tryLater: errorResponse(OCSPResponseStatus.tryLater),
  unauthorized: errorResponse(OCSPResponseStatus.unauthorized),
};

function errorResponse(status: OCSPResponseStatus): Buffer {
  return Buffer.from(AsnConvert.serialize(new OCSPResponse({ responseStatus: status })));
}

/** What a request asks, once parsed and matched against the served issuers. */
export type ParsedRequest =
  | { ok: false; error: ErrorStatus; reason: string }
  | { ok: true; issuer: ServedIssuer; certIds: CertID[]; nonce?: Extension };

export function parseRequest(der: Uint8Array, index: IssuerIndex): ParsedRequest {
  let request: OCSPRequest;
  try {
    request = AsnConvert.parse(der, OCSPRequest);
  } catch {
    return { ok: false, error: 'malformedRequest', reason: 'not a DER OCSPRequest' };
  }
  const list = request.tbsRequest.requestList;
  if (list.length === 0) return { ok: false, error: 'malformedRequest', reason: 'empty requestList' };
  if (list.length > 100) return { ok: false, error: 'malformedRequest', reason: 'too many certificates' };
  let nonce: Extension | undefined;
  for (const ext of request.tbsRequest.requestExtensions ?? []) {
    if (ext.extnID !== id_pkix_ocsp_nonce) continue;
    const length = nonceLength(ext.extnValue);
    if (length < 1 || length > MAX_NONCE_OCTETS) {
      return { ok: false, error: 'malformedRequest', reason: `nonce of ${length} octets` };
    }
    nonce = ext;
  }
  let issuer: ServedIssuer | undefined;
  for (const { reqCert } of list) {
    const alg = reqCert.hashAlgorithm.algorithm;
    if (!HASH_OIDS[alg]) return { ok: false, error: 'malformedRequest', reason: `CertID hash ${alg}` };
    const found = index.find(alg, reqCert.issuerNameHash, reqCert.issuerKeyHash);
    // One response has one signer, and each CA has its own delegated signer.
    if (!found || (issuer && found !== issuer)) {
      return { ok: false, error: 'unauthorized', reason: 'issuer not served' };
    }
    issuer = found;
  }
  return { ok: true, issuer: issuer!, certIds: list.map((r) => r.reqCert), ...(nonce ? { nonce } : {}) };
}

/**
 * RFC 8954: extnValue holds a DER OCTET STRING (the nonce); legacy clients put the raw octets there.
 * Either way its length is what is bounded.
 */
function nonceLength(extnValue: OctetString): number {
  const bytes = new Uint8Array(extnValue.buffer);
  if (bytes[0] === 0x04) {
    try {
      const inner = AsnConvert.parse(bytes, OctetString);
      if (AsnConvert.serialize(inner).byteLength === bytes.byteLength) return inner.byteLength;
    } catch {
      // not an encapsulated OCTET STRING: a raw nonce
    }
  }
  return bytes.byteLength;
}

export interface SignedResponse {
  der: Buffer;
  thisUpdate: Date;
  nextUpdate: Date;
  producedAt: Date;
}

/** Builds and signs a successful response: one SingleResponse per CertID, in request order. */
export function signResponse(options: {
  issuer: ServedIssuer;
  certIds: CertID[];
  statuses: CertificateStatus[];
  nonce?: Extension;
  now: Date;
  validitySeconds: number;
}): SignedResponse {
  const { issuer, now } = options;
  // Whole seconds: GeneralizedTime without fractions (RFC 5280 §4.1.2.5.2 style, as OpenSSL emits).
  const thisUpdate = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const nextUpdate = new Date(thisUpdate.getTime() + options.validitySeconds * 1000);
  const responses = options.certIds.map((certID, i) => {
    const status = options.statuses[i]!;
    const certStatus =
      status.status === 'good'
        ? new CertStatus({ good: null })
        : status.status === 'revoked'
          ? new CertStatus({
              revoked: new RevokedInfo({
                revocationTime: new Date(Math.floor(status.revokedAt.getTime() / 1000) * 1000),
                revocationReason: new CRLReason(status.reason),
              }),
            })
          : new CertStatus({ unknown: null });
    return new SingleResponse({ certID, certStatus, thisUpdate, nextUpdate });
  });
  const data = new ResponseData({
    responderID: issuer.signer.responderId,
    producedAt: thisUpdate,
    responses,
    ...(options.nonce
      ? {
          responseExtensions: [
            new Extension({ extnID: id_pkix_ocsp_nonce, extnValue: options.nonce.extnValue }),
          ],
        }
      : {}),
  });
  const tbs = AsnConvert.serialize(data);
  const signature = sign(issuer.signer.digest, new Uint8Array(tbs), {
    key: issuer.signer.key,
    dsaEncoding: 'der',
  });
  const basic = AsnConvert.serialize(
    new RawBasicOcspResponse({
      tbsResponseData: tbs,
      signatureAlgorithm: issuer.signer.signatureAlgorithmDer,
      signature: new Uint8Array(signature).buffer,
      ...(issuer.signer.certsDer.length > 0 ? { certs: issuer.signer.certsDer } : {}),
    }),
  );
  const der = AsnConvert.serialize(
    new OCSPResponse({
      responseStatus: OCSPResponseStatus.successful,
      responseBytes: new ResponseBytes({
        responseType: id_pkix_ocsp_basic,
        response: new OctetString(basic),
      }),
    }),
  );
  return { der: Buffer.from(der), thisUpdate, nextUpdate, producedAt: thisUpdate };
}

export function certIdSerial(certId: CertID): string {
  return serialKey(new Uint8Array(certId.serialNumber));
}
