import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import * as asn1js from 'asn1js';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { CertID, id_pkix_ocsp_nonce } from '@peculiar/asn1-ocsp';
import {
  AlgorithmIdentifier,
  AuthorityInfoAccessSyntax,
  id_ad_ocsp,
  id_pe_authorityInfoAccess,
} from '@peculiar/asn1-x509';
import { SimcredError, isSimcredError } from '../errors/index.js';
import {
  OID_BY_HASH,
  certificateDer,
  certificateInfo,
  certificateSerial,
  derConstructed,
  derOf,
  derPrimitive,
  digest,
  parseCertificateInfo,
  toArrayBuffer,
  type CertIdHash,
  type CertificateInfo,
} from './asn1.js';
import { TAG } from './blocks.js';
import { verifyOcspResponse, type OcspResult } from './verify.js';
import { REQUEST_ID_HEADER, currentRequestId } from '../log/context.js';

export type { OcspResult, OcspStatus } from './verify.js';

/** A certificate as PEM text or DER bytes. */
export type CertificateInput = string | Uint8Array;

export interface BuiltRequest {
  der: Buffer;
  certId: CertID;
  /** extnValue of the nonce extension (a DER OCTET STRING, RFC 8954), when one was added. */
  nonce?: Buffer;
}

/** Builds a DER OCSPRequest for one certificate (SHA-1 CertID by default, as RFC 5019 asks). */
export function buildOcspRequest(options: {
  certificate: CertificateInput;
  issuer: CertificateInput;
  nonce?: boolean | Uint8Array;
  hash?: CertIdHash;
}): BuiltRequest {
  return buildRequestFor(
    certificateSerial(certificateDer(options.certificate)),
    certificateInfo(certificateDer(options.issuer)),
    options.nonce,
    options.hash ?? 'sha1',
  );
}

/**
 * The request for a serial under a decoded issuer. The parts that depend only on the issuer (the hash
 * algorithm and the issuer name / key hashes of the CertID) are encoded once per issuer and hash; the
 * serial, the nonce and the enclosing SEQUENCEs are encoded per request.
 */
function buildRequestFor(
  serialNumber: ArrayBuffer,
  issuer: CertificateInfo,
  nonceOption: boolean | Uint8Array | undefined,
  hash: CertIdHash,
): BuiltRequest {
  const prefix = certIdPrefix(issuer, hash);
  const certId = new CertID({
    hashAlgorithm: prefix.hashAlgorithm,
    issuerNameHash: new OctetString(prefix.nameHash),
    issuerKeyHash: new OctetString(prefix.keyHash),
    serialNumber: serialNumber.slice(0),
  });
  const nonceValue =
    nonceOption === false
      ? undefined
      : nonceOption === true || nonceOption === undefined
        ? randomBytes(16)
        : nonceOption;
  const nonce = nonceValue ? derPrimitive(TAG.OCTET_STRING, nonceValue) : undefined;
  // OCSPRequest ::= SEQUENCE { tbsRequest SEQUENCE { requestList SEQUENCE OF Request,
  //   requestExtensions [2] EXPLICIT Extensions OPTIONAL } }, Request ::= SEQUENCE { reqCert CertID }
  const certIdDer = derConstructed('universal', 16, [
    prefix.der,
    derPrimitive(TAG.INTEGER, new Uint8Array(serialNumber)),
  ]);
  const tbsParts = [derConstructed('universal', 16, [derConstructed('universal', 16, [certIdDer])])];
  if (nonce) {
    // Extensions ::= SEQUENCE OF Extension; Extension ::= SEQUENCE { extnID, extnValue OCTET STRING }
    const extension = derConstructed('universal', 16, [NONCE_OID_DER, derPrimitive(TAG.OCTET_STRING, nonce)]);
    tbsParts.push(derConstructed('context', 2, [derConstructed('universal', 16, [extension])]));
  }
  const der = derConstructed('universal', 16, [derConstructed('universal', 16, tbsParts)]);
  return { der, certId, ...(nonce ? { nonce } : {}) };
}

const NONCE_OID_DER = derOf(new asn1js.ObjectIdentifier({ value: id_pkix_ocsp_nonce }));

interface CertIdPrefix {
  hashAlgorithm: AlgorithmIdentifier;
  nameHash: ArrayBuffer;
  keyHash: ArrayBuffer;
  /** DER of hashAlgorithm, issuerNameHash and issuerKeyHash, in that order (the CertID without its serial). */
  der: Buffer;
}
const certIdPrefixes = new WeakMap<CertificateInfo, Partial<Record<CertIdHash, CertIdPrefix>>>();

function certIdPrefix(issuer: CertificateInfo, hash: CertIdHash): CertIdPrefix {
  let byHash = certIdPrefixes.get(issuer);
  if (byHash === undefined) certIdPrefixes.set(issuer, (byHash = {}));
  let prefix = byHash[hash];
  if (prefix === undefined) {
    const hashAlgorithm = new AlgorithmIdentifier({ algorithm: OID_BY_HASH[hash] });
    hashAlgorithm.parameters = null;
    const nameHash = toArrayBuffer(digest(hash, issuer.subjectDer));
    const keyHash = toArrayBuffer(digest(hash, issuer.publicKeyBits));
    const der = Buffer.concat([
      derOf(hashAlgorithm),
      derOf(new OctetString(nameHash)),
      derOf(new OctetString(keyHash)),
    ]);
    prefix = byHash[hash] = { hashAlgorithm, nameHash, keyHash, der };
  }
  return prefix;
}

export function certIdFor(cert: CertificateInfo, issuer: CertificateInfo, hash: CertIdHash): CertID {
  const hashAlgorithm = new AlgorithmIdentifier({ algorithm: OID_BY_HASH[hash] });
  hashAlgorithm.parameters = null;
  return new CertID({
    hashAlgorithm,
    issuerNameHash: new OctetString(toArrayBuffer(digest(hash, issuer.subjectDer))),
    issuerKeyHash: new OctetString(toArrayBuffer(digest(hash, issuer.publicKeyBits))),
    serialNumber: cert.asn.tbsCertificate.serialNumber.slice(0),
  });
}

export interface CheckOptions {
  certificate: CertificateInput;
  issuer: CertificateInput;
  /** Responder URL; or `urls`, tried in order; or, with neither, the certificate's AIA OCSP URL. */
  url?: string;
  urls?: string[];
  /** Send a fresh nonce and require it echoed (default true). */
  nonce?: boolean;
  hash?: CertIdHash;
  /** Tolerated clock difference for thisUpdate / nextUpdate / signer validity (default 60 s). */
  clockSkewSeconds?: number;
  timeoutMs?: number;
  /** POST (default) or GET (RFC 5019 §5). */
  method?: 'POST' | 'GET';
  now?: Date;
}

/** Responders tried when a request fails in a way another responder may not: down, HTTP error, tryLater. */
const FAIL_OVER = new Set([
  'SIMCRED_OCSP_UNREACHABLE',
  'SIMCRED_OCSP_HTTP_ERROR',
  'SIMCRED_OCSP_RESPONDER_ERROR',
]);

/**
 * Asks an OCSP responder about a certificate and returns its status only after strict checks
 * (signature, responder authority, CertID, nonce, time window). Every failure throws a
 * SimcredError with its own code; nothing unproven is ever reported as good.
 *
 * @example
 *   const r = await checkCertificateStatus({ certificate: devicePem, issuer: deviceCaPem, url });
 *   if (r.status !== 'good') …
 */
export async function checkCertificateStatus(options: CheckOptions): Promise<OcspResult> {
  const certDer = certificateDer(options.certificate);
  const issuer = certificateInfo(certificateDer(options.issuer));
  const serialNumber = certificateSerial(certDer);
  const urls = options.urls ?? (options.url ? [options.url] : aiaOcspUrls(certDer));
  if (urls.length === 0) {
    throw new SimcredError('SIMCRED_OCSP_UNREACHABLE', 'no OCSP responder URL for this certificate', {
      retryAfter: 60,
    });
  }
  let lastError: unknown;
  for (const url of urls) {
    // A fresh nonce per attempt: a responder never sees a nonce twice.
    const built = buildRequestFor(serialNumber, issuer, options.nonce ?? true, options.hash ?? 'sha1');
    try {
      const body = await fetchOcsp(url, built.der, options.timeoutMs ?? 5000, options.method ?? 'POST');
      return verifyOcspResponse(body, {
        certId: built.certId,
        issuer,
        ...(built.nonce ? { nonce: built.nonce } : {}),
        now: options.now ?? new Date(),
        clockSkewSeconds: options.clockSkewSeconds ?? 60,
      });
    } catch (err) {
      lastError = err;
      if (!(isSimcredError(err) && FAIL_OVER.has(err.code))) throw err;
    }
  }
  throw lastError;
}

/** checkCertificateStatus, then anything but good is an error (SIMCRED_OCSP_REVOKED / _UNKNOWN). */
export async function requireGood(options: CheckOptions): Promise<OcspResult & { status: 'good' }> {
  const result = await checkCertificateStatus(options);
  if (result.status === 'revoked') {
    throw new SimcredError(
      'SIMCRED_OCSP_REVOKED',
      `certificate revoked at ${result.revokedAt?.toISOString() ?? 'unknown time'}` +
        (result.reason !== undefined ? ` (reason ${result.reason})` : ''),
    );
  }
  if (result.status !== 'good') {
    throw new SimcredError('SIMCRED_OCSP_UNKNOWN', 'the OCSP responder does not know this certificate');
  }
  return result as OcspResult & { status: 'good' };
}

/**
 * One responder per issuing CA: issuer certificate → URL(s). `urlsFor` picks by the issuer's
 * subject and key, so a device certificate goes to the device CA's responder.
 */
export class OcspResponderMap {
  private readonly map = new Map<string, string[]>();

  set(issuer: CertificateInput, urls: string | string[]): this {
    this.map.set(OcspResponderMap.key(issuer), Array.isArray(urls) ? urls : [urls]);
    return this;
  }

  urlsFor(issuer: CertificateInput): string[] {
    return this.map.get(OcspResponderMap.key(issuer)) ?? [];
  }

  private static key(issuer: CertificateInput): string {
    const info = certificateInfo(certificateDer(issuer));
    return `${info.subjectDer.toString('hex')}|${digest('sha1', info.publicKeyBits).toString('hex')}`;
  }
}

export function aiaOcspUrls(certDer: Uint8Array): string[] {
  const cert = parseCertificateInfo(certDer);
  const ext = cert.asn.tbsCertificate.extensions?.find((e) => e.extnID === id_pe_authorityInfoAccess);
  if (!ext) return [];
  try {
    return AsnConvert.parse(ext.extnValue.buffer, AuthorityInfoAccessSyntax)
      .filter((d) => d.accessMethod === id_ad_ocsp && d.accessLocation.uniformResourceIdentifier)
      .map((d) => d.accessLocation.uniformResourceIdentifier!);
  } catch {
    return [];
  }
}

const MAX_RESPONSE_BYTES = 1024 * 1024;

/** The current request's id, so the responder's log lines name the request that asked. */
function requestIdHeader(): Record<string, string> {
  const id = currentRequestId();
  return id === undefined ? {} : { [REQUEST_ID_HEADER]: id };
}

async function fetchOcsp(
  url: string,
  der: Buffer,
  timeoutMs: number,
  method: 'POST' | 'GET',
): Promise<Buffer> {
  let res: Awaited<ReturnType<typeof request>>;
  try {
    const target =
      method === 'GET' ? `${url.replace(/\/+$/, '')}/${encodeURIComponent(der.toString('base64'))}` : url;
    res = await request(target, {
      method,
      ...(method === 'POST'
        ? {
            body: der,
            headers: {
              'content-type': 'application/ocsp-request',
              accept: 'application/ocsp-response',
              ...requestIdHeader(),
            },
          }
        : { headers: { accept: 'application/ocsp-response', ...requestIdHeader() } }),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new SimcredError(
      'SIMCRED_OCSP_UNREACHABLE',
      `OCSP responder ${url} unreachable: ${describe(err)}`,
      {
        retryAfter: 5,
        cause: err,
      },
    );
  }
  try {
    if (res.statusCode !== 200) {
      throw new SimcredError(
        'SIMCRED_OCSP_HTTP_ERROR',
        `OCSP responder ${url} answered HTTP ${res.statusCode}`,
        {
          ...(res.statusCode === 503 ? { retryAfter: 5 } : {}),
        },
      );
    }
    const type = String(res.headers['content-type'] ?? '');
    if (!type.toLowerCase().startsWith('application/ocsp-response')) {
      throw new SimcredError(
        'SIMCRED_OCSP_MALFORMED_RESPONSE',
        `OCSP responder ${url} answered ${type || 'no content type'}`,
      );
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).byteLength;
      if (size > MAX_RESPONSE_BYTES) {
        throw new SimcredError('SIMCRED_OCSP_MALFORMED_RESPONSE', 'OCSP response too large');
      }
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  } catch (err) {
    if (isSimcredError(err)) throw err;
    throw new SimcredError(
      'SIMCRED_OCSP_UNREACHABLE',
      `OCSP responder ${url} failed mid-response: ${describe(err)}`,
      {
        retryAfter: 5,
        cause: err,
      },
    );
  } finally {
    // A body not read to the end is discarded; its abort must not surface as an uncaught error.
    if (!res.body.readableEnded) res.body.on('error', () => {}).destroy();
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
