import { sign } from 'node:crypto';
import * as asn1js from 'asn1js';
import { GeneralizedTime } from 'asn1js';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  CertStatus,
  OCSPResponse,
  OCSPResponseStatus,
  RevokedInfo,
  id_pkix_ocsp_basic,
  id_pkix_ocsp_nonce,
  type CertID,
} from '@peculiar/asn1-ocsp';
import { CRLReason } from '@peculiar/asn1-x509';
import type { CertificateStatus } from '../../pki/store.js';
import { derKey } from '../../crypto/bounded-cache.js';
import { HASH_OIDS, derConstructed, derOf, derPrimitive, serialKey } from '../asn1.js';
import {
  CONTEXT,
  StructureError,
  TAG,
  UNIVERSAL,
  decodeWhole,
  elements,
  explicit,
  extensions,
  hasTag,
  integerOctets,
  octetString,
  oid,
  rawOf,
} from '../blocks.js';
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
  | {
      ok: true;
      issuer: ServedIssuer;
      /** Each CertID as the response carries it (DER), in request order. */
      certIds: Buffer[];
      /** Each CertID's serial number, as CaStore keys it (serialKey). */
      serials: string[];
      /** extnValue of the nonce extension, when the request has one. */
      nonce?: Buffer;
    };

interface RequestedCertId {
  /** derKey of the exact DER of hashAlgorithm ‖ issuerNameHash ‖ issuerKeyHash. */
  prefixKey: string;
  hashOid: string;
  nameHash: Uint8Array;
  keyHash: Uint8Array;
  serial: Uint8Array;
}

/*
 * OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
 * TBSRequest ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1, requestorName [1] EXPLICIT GeneralName
 *   OPTIONAL, requestList SEQUENCE OF Request, requestExtensions [2] EXPLICIT Extensions OPTIONAL }
 * Request ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
 * CertID ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET STRING,
 *   issuerKeyHash OCTET STRING, serialNumber CertificateSerialNumber }
 *
 * Decoded by asn1js and read field by field (blocks.ts).
 */
function readRequest(der: Uint8Array): { certIds: RequestedCertId[]; nonces: Uint8Array[] } {
  const request = elements(decodeWhole(der), 'OCSPRequest');
  if (request.length < 1 || request.length > 2) throw new StructureError('OCSPRequest fields');
  if (request[1] !== undefined) elements(explicit(request[1], 0, 'optionalSignature'), 'Signature');
  const tbs = elements(request[0], 'TBSRequest');
  let i = 0;
  if (hasTag(tbs[i], CONTEXT, 0, true)) integerOctets(explicit(tbs[i++], 0, 'version'), 'version');
  if (hasTag(tbs[i], CONTEXT, 1, true)) explicit(tbs[i++], 1, 'requestorName');
  const certIds = elements(tbs[i++], 'requestList').map((entry) => {
    const fields = elements(entry, 'Request');
    if (fields.length < 1 || fields.length > 2) throw new StructureError('Request fields');
    if (fields[1] !== undefined) extensions(explicit(fields[1], 0, 'singleRequestExtensions'));
    const certId = elements(fields[0], 'CertID');
    if (certId.length !== 4) throw new StructureError('CertID fields');
    const algorithm = elements(certId[0], 'hashAlgorithm');
    if (algorithm.length < 1 || algorithm.length > 2) throw new StructureError('AlgorithmIdentifier fields');
    return {
      prefixKey: derKey(rawOf(certId[0]!)) + derKey(rawOf(certId[1]!)) + derKey(rawOf(certId[2]!)),
      hashOid: oid(algorithm[0], 'hashAlgorithm'),
      nameHash: octetString(certId[1], 'issuerNameHash'),
      keyHash: octetString(certId[2], 'issuerKeyHash'),
      serial: integerOctets(certId[3], 'serialNumber'),
    };
  });
  const nonces: Uint8Array[] = [];
  if (tbs[i] !== undefined) {
    for (const ext of extensions(explicit(tbs[i++], 2, 'requestExtensions'))) {
      if (ext.id === id_pkix_ocsp_nonce) nonces.push(ext.value);
    }
  }
  if (i !== tbs.length) throw new StructureError('extra fields in TBSRequest');
  return { certIds, nonces };
}

export function parseRequest(der: Uint8Array, index: IssuerIndex): ParsedRequest {
  let request: ReturnType<typeof readRequest>;
  try {
    request = readRequest(der);
  } catch {
    return { ok: false, error: 'malformedRequest', reason: 'not a DER OCSPRequest' };
  }
  const list = request.certIds;
  if (list.length === 0) return { ok: false, error: 'malformedRequest', reason: 'empty requestList' };
  if (list.length > 100) return { ok: false, error: 'malformedRequest', reason: 'too many certificates' };
  let nonce: Uint8Array | undefined;
  for (const value of request.nonces) {
    const length = nonceLength(value);
    if (length < 1 || length > MAX_NONCE_OCTETS) {
      return { ok: false, error: 'malformedRequest', reason: `nonce of ${length} octets` };
    }
    nonce = value;
  }
  let issuer: ServedIssuer | undefined;
  const certIds: Buffer[] = [];
  const serials: string[] = [];
  for (const certId of list) {
    let found = index.byDer(certId.prefixKey);
    if (!found) {
      if (!HASH_OIDS[certId.hashOid]) {
        return { ok: false, error: 'malformedRequest', reason: `CertID hash ${certId.hashOid}` };
      }
      found = index.find(certId.hashOid, certId.nameHash, certId.keyHash);
    }
    // One response has one signer, and each CA has its own delegated signer.
    if (!found || (issuer && found.issuer !== issuer)) {
      return { ok: false, error: 'unauthorized', reason: 'issuer not served' };
    }
    issuer = found.issuer;
    certIds.push(
      derConstructed('universal', 16, [found.prefixDer, derPrimitive(TAG.INTEGER, certId.serial)]),
    );
    serials.push(serialKey(certId.serial));
  }
  return { ok: true, issuer: issuer!, certIds, serials, ...(nonce ? { nonce: Buffer.from(nonce) } : {}) };
}

/**
 * RFC 8954: extnValue holds a DER OCTET STRING (the nonce); legacy clients put the raw octets there.
 * Either way its length is what is bounded.
 */
function nonceLength(extnValue: Uint8Array): number {
  if (extnValue[0] === 0x04) {
    try {
      const inner = decodeWhole(extnValue);
      if (hasTag(inner, UNIVERSAL, TAG.OCTET_STRING, false)) return octetString(inner, 'nonce').byteLength;
    } catch {
      // not an encapsulated OCTET STRING: a raw nonce
    }
  }
  return extnValue.byteLength;
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
 * The parts that never change for an issuer (ResponderID, signature AlgorithmIdentifier, the [0] certs
 * with the delegated signer) were encoded once by prepareIssuer, the CertIDs by parseRequest, the
 * constant status and type fields once here; GeneralizedTimes are encoded once per second. The varying
 * values (serial, nonce, signature) and the enclosing SEQUENCEs and tags get their identifier and
 * length octets from asn1js's memoised headers (derPrimitive, derConstructed) in front of contents
 * already encoded, so nothing is encoded twice and no DER is re-parsed.
 * `certIds` may also be asn1-schema CertID objects (encoded here; tests craft those).
 */
export function signResponse(options: {
  issuer: ServedIssuer;
  certIds: readonly (Uint8Array | CertID)[];
  statuses: CertificateStatus[];
  /** extnValue of the request's nonce extension, echoed byte for byte. */
  nonce?: Uint8Array;
  now: Date;
  validitySeconds: number;
}): SignedResponse {
  const { issuer, now } = options;
  // Whole seconds: GeneralizedTime without fractions (RFC 5280 §4.1.2.5.2 style, as OpenSSL emits).
  const thisUpdate = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const nextUpdate = new Date(thisUpdate.getTime() + options.validitySeconds * 1000);
  const thisUpdateDer = generalizedTimeDer(thisUpdate);
  const nextUpdateField = generalizedTimeDer(nextUpdate, 0);
  // SingleResponse ::= SEQUENCE { certID, certStatus, thisUpdate, nextUpdate [0] EXPLICIT }
  const responses = options.certIds.map((certId, i) =>
    derConstructed('universal', 16, [
      certId instanceof Uint8Array ? certId : derOf(certId),
      certStatusDer(options.statuses[i]!),
      thisUpdateDer,
      nextUpdateField,
    ]),
  );
  // ResponseData ::= SEQUENCE { version [0] DEFAULT v1 (omitted), responderID, producedAt,
  //   responses SEQUENCE OF SingleResponse, responseExtensions [1] EXPLICIT Extensions OPTIONAL }
  const dataParts = [issuer.signer.responderIdDer, thisUpdateDer, derConstructed('universal', 16, responses)];
  if (options.nonce) {
    // Extensions ::= SEQUENCE OF Extension; Extension ::= SEQUENCE { extnID, extnValue OCTET STRING }
    const extension = derConstructed('universal', 16, [
      NONCE_OID_DER,
      derPrimitive(TAG.OCTET_STRING, options.nonce),
    ]);
    dataParts.push(derConstructed('context', 1, [derConstructed('universal', 16, [extension])]));
  }
  const tbs = derConstructed('universal', 16, dataParts);
  const { key, tokenKey } = issuer.signer;
  const signature = key
    ? sign(issuer.signer.digest, tbs, { key, dsaEncoding: 'der' })
    : tokenKey!.sign(tbs, 'der');
  // BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm, signature BIT STRING,
  //   certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
  const basic = derConstructed('universal', 16, [
    tbs,
    issuer.signer.signatureAlgorithmDer,
    derPrimitive(TAG.BIT_STRING, NO_UNUSED_BITS, signature),
    ...(issuer.signer.certsFieldDer ? [issuer.signer.certsFieldDer] : []),
  ]);
  // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT ResponseBytes },
  // ResponseBytes ::= SEQUENCE { responseType OID, response OCTET STRING }
  const der = derConstructed('universal', 16, [
    SUCCESSFUL_STATUS_DER,
    derConstructed('context', 0, [
      derConstructed('universal', 16, [BASIC_TYPE_DER, derPrimitive(TAG.OCTET_STRING, basic)]),
    ]),
  ]);
  return { der, thisUpdate, nextUpdate, producedAt: thisUpdate };
}

/** A BIT STRING's first content octet: how many bits of the last octet are unused (a signature: none). */
const NO_UNUSED_BITS = Uint8Array.of(0);
const SUCCESSFUL_STATUS_DER = derOf(new asn1js.Enumerated({ value: OCSPResponseStatus.successful }));
const BASIC_TYPE_DER = derOf(new asn1js.ObjectIdentifier({ value: id_pkix_ocsp_basic }));
const NONCE_OID_DER = derOf(new asn1js.ObjectIdentifier({ value: id_pkix_ocsp_nonce }));
// CertStatus ::= CHOICE { good [0] IMPLICIT NULL, revoked [1] IMPLICIT RevokedInfo, unknown [2] IMPLICIT NULL }
const GOOD_DER = derOf(new CertStatus({ good: null }));
const UNKNOWN_DER = derOf(new CertStatus({ unknown: null }));

function certStatusDer(status: CertificateStatus): Buffer {
  if (status.status === 'good') return GOOD_DER;
  if (status.status === 'unknown') return UNKNOWN_DER;
  return derOf(
    new CertStatus({
      revoked: new RevokedInfo({
        revocationTime: new Date(Math.floor(status.revokedAt.getTime() / 1000) * 1000),
        revocationReason: new CRLReason(status.reason),
      }),
    }),
  );
}

/**
 * GeneralizedTime DER of a whole-second time, or of `[explicitTag] EXPLICIT GeneralizedTime`; the few in
 * use at a time (this second's thisUpdate and nextUpdate) are kept.
 */
const timeDers = new Map<string, Buffer>();
function generalizedTimeDer(time: Date, explicitTag?: number): Buffer {
  const key = `${time.getTime()}/${explicitTag ?? ''}`;
  let der = timeDers.get(key);
  if (der === undefined) {
    if (timeDers.size >= 16) timeDers.clear();
    der = derOf(new GeneralizedTime({ valueDate: time }));
    if (explicitTag !== undefined) der = derConstructed('context', explicitTag, [der]);
    timeDers.set(key, der);
  }
  return der;
}
