import { X509Certificate as NodeX509Certificate, type KeyObject } from 'node:crypto';
import * as x509 from './x509.js';
import { SimcredError, type ErrorCode } from '../errors/index.js';
import { BoundedCache, derPairKey } from './bounded-cache.js';
import { certificateFacts, type CertificateFacts } from './certificate-facts.js';
import { derViolation } from './der.js';

/** Certificates in a package's x5c at most (signer, operator CA, and perhaps one more level). */
export const MAX_CHAIN_CERTIFICATES = 4;
/** Largest DER certificate accepted in an x5c, in bytes. */
export const MAX_CERTIFICATE_BYTES = 16 * 1024;

/** Extensions this verifier understands; a critical extension outside the set fails the chain (RFC 5280 §4.2). */
const KNOWN_EXTENSIONS = new Set([
  '2.5.29.19', // basicConstraints
  '2.5.29.15', // keyUsage
  '2.5.29.37', // extKeyUsage (not constrained here)
  '2.5.29.17', // subjectAltName
  '2.5.29.14', // subjectKeyIdentifier
  '2.5.29.35', // authorityKeyIdentifier
  '1.3.6.1.5.5.7.1.1', // authorityInfoAccess
  '2.5.29.31', // cRLDistributionPoints
  '2.5.29.32', // certificatePolicies (no policy processing: not critical in simcred's PKI)
]);

/** Anything accepted as a trust root: a parsed certificate or PEM text. */
export type CertificateInput = x509.X509Certificate | string;

/*
 * Parsing with @peculiar/x509 costs about 1.5 ms per certificate and its signature check about 1 ms, so:
 * parsed certificates are cached by their exact text (PEM or base64 DER; an operator's x5c and roots
 * repeat in every package, a manufacturer's device CA in every device chain), signatures are checked
 * natively (node:crypto X509Certificate.verify, ~0.1 ms), and a link whose signature verified is
 * remembered by the exact DER of both certificates, so it holds for any object parsed from those bytes.
 * A link's signature is a pure function of the two certificates' bytes, so the memo cannot go stale;
 * validity periods and constraints are re-checked on every call. Public keys are kept by the exact DER
 * of their certificate. Every table is bounded and drops the least recently used entry first.
 */
// Roots and CAs, and the device leaves of the last few seconds' onboardings (steps 2, 4 and 5 of one
// device, when the roles share a process).
const PARSE_CACHE_LIMIT = 512;
// Large enough to hold every device key between its step 4 and its receipt at a few thousand onboardings a second.
const MEMO_LIMIT = 8192;
const parseCache = new BoundedCache<x509.X509Certificate[]>(PARSE_CACHE_LIMIT);
let nodeViews = new WeakMap<x509.X509Certificate, NodeX509Certificate>();
const verifiedLinks = new BoundedCache<true>(MEMO_LIMIT);
const publicKeys = new BoundedCache<KeyObject>(MEMO_LIMIT);

/**
 * Counters of the work above, for the benchmark's "crypto floor" (docs/crypto.md): certificate
 * signature verifications actually performed vs. answered from the memo, certificates parsed vs. reused.
 *
 * @example
 *   const before = certificateStats.linkVerifications;
 *   await inspectPackage(jws, { operatorRoots });
 *   certificateStats.linkVerifications - before; // 2 cold, 0 warm
 */
export const certificateStats = {
  parsed: 0,
  parseCacheHits: 0,
  linkVerifications: 0,
  linkCacheHits: 0,
  keysExtracted: 0,
  keyCacheHits: 0,
};

/**
 * Forgets every parsed certificate, public key and verified link (a cold start, as on a device that
 * opens one package in its life); for tests and benchmarks.
 *
 * @example
 *   clearCertificateCaches();
 */
export function clearCertificateCaches(): void {
  parseCache.clear();
  nodeViews = new WeakMap();
  verifiedLinks.clear();
  publicKeys.clear();
}

function cachedParse(key: string, parse: () => x509.X509Certificate[]): x509.X509Certificate[] {
  const hit = parseCache.get(key);
  if (hit !== undefined) {
    certificateStats.parseCacheHits++;
    return hit;
  }
  const certs = parse();
  certificateStats.parsed += certs.length;
  return parseCache.set(key, certs);
}

/**
 * Parses PEM text (one or more CERTIFICATE blocks) or passes parsed certificates through. Throws
 * SimcredError with `code` (default SIMCRED_CONFIG_INVALID) if a text holds no readable certificate.
 *
 * @example
 *   const roots = parseCertificates([fs.readFileSync('operator-root.pem', 'utf8')]);
 */
export function parseCertificates(
  inputs: readonly CertificateInput[],
  code: ErrorCode = 'SIMCRED_CONFIG_INVALID',
): x509.X509Certificate[] {
  const out: x509.X509Certificate[] = [];
  for (const input of inputs) {
    if (input instanceof x509.X509Certificate) {
      out.push(input);
      continue;
    }
    try {
      out.push(
        ...cachedParse(input, () => {
          const ders = x509.PemConverter.decode(input);
          if (ders.length === 0) throw new Error('no PEM block');
          return ders.map((der) => new x509.X509Certificate(der));
        }),
      );
    } catch (cause) {
      throw new SimcredError(code, 'a certificate is not readable PEM', { cause });
    }
  }
  return out;
}

/**
 * Parses one base64 (not base64url) DER certificate, as carried in x5c (RFC 7515 §4.1.6) and in device
 * chains, of at most MAX_CERTIFICATE_BYTES, through the parse cache (keyed by the exact text: a CA that
 * repeats in every chain, or a device leaf seen again at the next step, is parsed once). Only canonical
 * base64 of strict DER is accepted (no trailing bytes, no BER: src/crypto/der.ts), so every later parser
 * sees the bytes this one checked. Throws SimcredError with `code` otherwise.
 *
 * @example
 *   const signer = parseCertificateBase64(header.x5c[0], 'SIMCRED_PACKAGE_MALFORMED');
 */
export function parseCertificateBase64(base64: string, code: ErrorCode): x509.X509Certificate {
  if (
    typeof base64 !== 'string' ||
    base64.length > Math.ceil(MAX_CERTIFICATE_BYTES / 3) * 4 ||
    base64.length % 4 !== 0 ||
    !/^[A-Za-z0-9+/]+={0,2}$/.test(base64)
  ) {
    throw new SimcredError(code, 'a certificate is not base64 DER of a sensible size');
  }
  return cachedParse(base64, () => {
    const der = Buffer.from(base64, 'base64');
    // Canonical base64 only: other spellings of the same bytes would be other cache keys and other texts.
    if (der.toString('base64') !== base64)
      throw new SimcredError(code, 'a certificate is not canonical base64');
    const violation = derViolation(der);
    if (violation !== undefined) throw new SimcredError(code, `a certificate is not DER (${violation})`);
    try {
      const cert = new x509.X509Certificate(der);
      // OpenSSL's reading too, and the key in it (both needed later, both memoised): a certificate one
      // parser reads and the other cannot is refused here, not met as an exception at a later step.
      certificatePublicKey(cert);
      return [cert];
    } catch (cause) {
      throw new SimcredError(code, 'a certificate is not readable DER', { cause });
    }
  })[0]!;
}

/**
 * The public key of a parsed certificate as a node:crypto KeyObject (memoised by the certificate's
 * exact DER, so a certificate parsed again — a root in every device, a CA in every request — does not
 * import its key again).
 *
 * @example
 *   const key = certificatePublicKey(info.signerCertificate);
 */
export function certificatePublicKey(cert: x509.X509Certificate): KeyObject {
  return publicKeys.remember(cert.rawData, () => nodeView(cert).publicKey, countKey);
}

/**
 * The public key of a DER certificate, from the same memo as {@link certificatePublicKey}: a device
 * key extracted at step 4 is found again at step 12 without parsing the stored certificate anew.
 *
 * @example
 *   const key = publicKeyOfCertificateDer(Buffer.from(registration.deviceCertificate, 'base64'));
 */
export function publicKeyOfCertificateDer(der: Uint8Array): KeyObject {
  return publicKeys.remember(der, () => new NodeX509Certificate(der).publicKey, countKey);
}

function countKey(hit: boolean): void {
  if (hit) certificateStats.keyCacheHits++;
  else certificateStats.keysExtracted++;
}

function nodeView(cert: x509.X509Certificate): NodeX509Certificate {
  let view = nodeViews.get(cert);
  if (view === undefined) {
    view = new NodeX509Certificate(Buffer.from(cert.rawData));
    nodeViews.set(cert, view);
  }
  return view;
}

export interface ChainOptions {
  /** Trust anchors (operator roots for packages). */
  roots: readonly x509.X509Certificate[];
  now: Date;
  /** Slack on notBefore / notAfter, seconds. */
  clockToleranceSeconds: number;
  /** KeyUsage bit the leaf must carry (the extension must be present). */
  leafKeyUsage: x509.KeyUsageFlags;
  /** Error code for every failure. */
  code: ErrorCode;
}

/**
 * Verifies a certification path, leaf first (as in x5c, RFC 7515 §4.1.6), up to one of the trust
 * anchors (RFC 5280 §6.1, reduced to what simcred's PKI uses): the chain may end with the anchor
 * itself or with a certificate the anchor issued; each link's issuer name equals the next subject and
 * its signature verifies with the next public key; every certificate (anchor included) is within its
 * validity period; every issuer is a CA (basicConstraints cA, keyCertSign if keyUsage is present,
 * pathLenConstraint respected); the leaf is not a CA and its keyUsage has the required bit; no
 * certificate carries an unknown critical extension. Returns the full path, leaf → anchor.
 *
 * @example
 *   const path = await verifyChain([signer, operatorCa], { roots, now: new Date(), clockToleranceSeconds: 60,
 *     leafKeyUsage: x509.KeyUsageFlags.digitalSignature, code: 'SIMCRED_PACKAGE_CHAIN_INVALID' });
 */
export async function verifyChain(
  chain: readonly x509.X509Certificate[],
  options: ChainOptions,
): Promise<x509.X509Certificate[]> {
  const fail = (why: string): never => {
    throw new SimcredError(options.code, `certificate chain rejected: ${why}`);
  };
  const factsOf = (cert: x509.X509Certificate): CertificateFacts => {
    try {
      return certificateFacts(cert);
    } catch {
      return fail(`"${cert.subject}" has an unreadable extension`);
    }
  };
  if (chain.length === 0 || chain.length > MAX_CHAIN_CERTIFICATES) fail('wrong number of certificates');
  const certs = [...chain];
  // The chain may end with the anchor itself; it is trusted by byte equality, not by what it says.
  let anchor = options.roots.find((r) => sameCertificate(r, certs[certs.length - 1]!));
  let topLinkVerified = false;
  if (anchor !== undefined) {
    if (certs.length === 1) fail('the signer is a trust anchor itself');
    certs.pop();
  } else {
    const top = certs[certs.length - 1]!;
    for (const root of options.roots) {
      if (root.subject === top.issuer && (await verifiesWith(top, root))) {
        anchor = root;
        topLinkVerified = true;
        break;
      }
    }
    if (anchor === undefined) return fail('does not chain to a trusted root');
  }
  const path = [...certs, anchor];

  const now = options.now.getTime();
  const slack = options.clockToleranceSeconds * 1000;
  for (const cert of path) {
    if (now + slack < cert.notBefore.getTime()) fail(`"${cert.subject}" is not yet valid`);
    if (now - slack > cert.notAfter.getTime()) fail(`"${cert.subject}" has expired`);
    if (factsOf(cert).criticalExtensions.some((oid) => !KNOWN_EXTENSIONS.has(oid)))
      fail(`"${cert.subject}" has an unknown critical extension`);
  }
  for (let i = 0; i < certs.length; i++) {
    const subject = path[i]!;
    const issuer = path[i + 1]!;
    if (subject.issuer !== issuer.subject) fail(`"${subject.subject}" was not issued by "${issuer.subject}"`);
    if (i === certs.length - 1 && topLinkVerified) continue; // checked when the anchor was found
    if (!(await verifiesWith(subject, issuer))) fail(`the signature on "${subject.subject}" does not verify`);
  }
  for (let j = 1; j < path.length; j++) {
    const ca = path[j]!;
    const { basicConstraints: bc, keyUsage } = factsOf(ca);
    if (bc === undefined || !bc.ca) fail(`"${ca.subject}" is not a CA`);
    // Intermediates below this CA (excluding the leaf) must not exceed its pathLenConstraint.
    if (bc!.pathLength !== undefined && j - 1 > bc!.pathLength) fail(`"${ca.subject}" path length exceeded`);
    if (keyUsage !== undefined && (keyUsage & x509.KeyUsageFlags.keyCertSign) === 0) {
      fail(`"${ca.subject}" may not sign certificates`);
    }
  }
  const leafFacts = factsOf(path[0]!);
  if (leafFacts.basicConstraints?.ca === true) fail('the signer is a CA certificate');
  if (leafFacts.keyUsage === undefined || (leafFacts.keyUsage & options.leafKeyUsage) === 0) {
    fail('the signer certificate lacks the required key usage');
  }
  return path;
}

function sameCertificate(a: x509.X509Certificate, b: x509.X509Certificate): boolean {
  return Buffer.from(a.rawData).equals(Buffer.from(b.rawData));
}

async function verifiesWith(subject: x509.X509Certificate, issuer: x509.X509Certificate): Promise<boolean> {
  const link = derPairKey(new Uint8Array(subject.rawData), new Uint8Array(issuer.rawData));
  if (verifiedLinks.get(link) !== undefined) {
    certificateStats.linkCacheHits++;
    return true;
  }
  certificateStats.linkVerifications++;
  let ok: boolean;
  try {
    ok = nodeView(subject).verify(certificatePublicKey(issuer));
  } catch {
    ok = false;
  }
  if (ok) verifiedLinks.set(link, true);
  return ok;
}
