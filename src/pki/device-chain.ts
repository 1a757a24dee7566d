import * as x509 from '../crypto/x509.js';
import { parseCertificateBase64, verifyChain } from '../crypto/certificates.js';

/** A device certificate whose chain to a trusted manufacturer CA verified. */
export interface VerifiedDeviceCertificate {
  leaf: x509.X509Certificate;
  /** The issuing CA (its name and key make the OCSP CertID). */
  issuer: x509.X509Certificate;
}

/**
 * Parses a base64-DER chain (leaf first), strictly, once, at the edge: anything that is not canonical
 * base64 of DER certificates (trailing bytes, BER, garbage) is SIMCRED_CERT_INVALID, on every route
 * that takes a chain. Every certificate goes through the parse cache, keyed by its exact text: the
 * manufacturer's device CA is the same in every chain, and where the roles share a process (simcred up)
 * a device's leaf is parsed once for steps 2, 4 and 5 instead of once per step. Verification is never
 * cached with the parse.
 */
export function parseDeviceChain(chainBase64: string[]): x509.X509Certificate[] {
  return chainBase64.map((certificate) => parseCertificateBase64(certificate, 'SIMCRED_CERT_INVALID'));
}

/**
 * DESIGN §2 step 4: the chain must lead to one of the trusted manufacturer roots, every link valid
 * now, and the leaf must be an end-entity certificate allowed to sign (digitalSignature).
 *
 * @example
 *   const { leaf, issuer } = await verifyDeviceChain(parseDeviceChain(body.certificateChain), { roots, now });
 */
export async function verifyDeviceChain(
  chain: x509.X509Certificate[],
  options: { roots: x509.X509Certificate[]; now: Date; clockToleranceSeconds?: number },
): Promise<VerifiedDeviceCertificate> {
  const path = await verifyChain(chain, {
    roots: options.roots,
    now: options.now,
    clockToleranceSeconds: options.clockToleranceSeconds ?? 60,
    leafKeyUsage: x509.KeyUsageFlags.digitalSignature,
    code: 'SIMCRED_CERT_UNTRUSTED',
  });
  return { leaf: path[0]!, issuer: path[1]! };
}
