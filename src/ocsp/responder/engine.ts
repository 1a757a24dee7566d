import { sign } from 'node:crypto';
import * as asn1js from 'asn1js';
import { BitString, GeneralizedTime } from 'asn1js';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  CertStatus,
  OCSPRequest,
  OCSPResponse,
  OCSPResponseStatus,
  RevokedInfo,
  SingleResponse,
  id_pkix_ocsp_basic,
  id_pkix_ocsp_nonce,
  type CertID,
} from '@peculiar/asn1-ocsp';
import { CRLReason, Extension, Extensions } from '@peculiar/asn1-x509';
import type { CertificateStatus } from '../../pki/store.js';
import { FLAT, HASH_OIDS, derConstructed, derOf, serialKey } from '../asn1.js';
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
    request = AsnConvert.parse(der, OCSPRequest, FLAT);
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

/**
 * Builds and signs a successful response: one SingleResponse per CertID, in request order.
 *
 * Each SingleResponse and the nonce extension are encoded by asn1-schema; the parts that never change
 * for an issuer (ResponderID, signature AlgorithmIdentifier, the [0] certs with the delegated signer)
 * were encoded once by prepareIssuer; the enclosing SEQUENCEs and tags are written by asn1js around
 * those already-encoded parts (derConstructed), so nothing is encoded twice and no DER is re-parsed.
 */
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
    return derOf(new SingleResponse({ certID, certStatus, thisUpdate, nextUpdate }));
  });
  // ResponseData ::= SEQUENCE { version [0] DEFAULT v1 (omitted), responderID, producedAt,
  //   responses SEQUENCE OF SingleResponse, responseExtensions [1] EXPLICIT Extensions OPTIONAL }
  const dataParts = [
    issuer.signer.responderIdDer,
    derOf(new GeneralizedTime({ valueDate: thisUpdate })),
    derConstructed('universal', 16, responses),
  ];
  if (options.nonce) {
    const extensions = new Extensions([
      new Extension({ extnID: id_pkix_ocsp_nonce, extnValue: options.nonce.extnValue }),
    ]);
    dataParts.push(derConstructed('context', 1, [derOf(extensions)]));
  }
  const tbs = derConstructed('universal', 16, dataParts);
  const signature = sign(issuer.signer.digest, tbs, { key: issuer.signer.key, dsaEncoding: 'der' });
  // BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm, signature BIT STRING,
  //   certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
  const basic = derConstructed('universal', 16, [
    tbs,
    issuer.signer.signatureAlgorithmDer,
    derOf(new BitString({ valueHex: signature })),
    ...(issuer.signer.certsFieldDer ? [issuer.signer.certsFieldDer] : []),
  ]);
  // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT ResponseBytes },
  // ResponseBytes ::= SEQUENCE { responseType OID, response OCTET STRING }
  const der = derConstructed('universal', 16, [
    SUCCESSFUL_STATUS_DER,
    derConstructed('context', 0, [
      derConstructed('universal', 16, [BASIC_TYPE_DER, derOf(new asn1js.OctetString({ valueHex: basic }))]),
    ]),
  ]);
  return { der, thisUpdate, nextUpdate, producedAt: thisUpdate };
}

const SUCCESSFUL_STATUS_DER = derOf(new asn1js.Enumerated({ value: OCSPResponseStatus.successful }));
const BASIC_TYPE_DER = derOf(new asn1js.ObjectIdentifier({ value: id_pkix_ocsp_basic }));

export function certIdSerial(certId: CertID): string {
  return serialKey(new Uint8Array(certId.serialNumber));
}
