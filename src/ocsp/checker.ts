import type * as x509 from '../crypto/x509.js';
import { requireGood } from './client.js';

/**
 * What the credentialing server (step 4) and the device (step 11) need from OCSP: resolve only on a
 * verified "good", throw a SimcredError otherwise (fail closed).
 */
export interface CertificateStatusChecker {
  requireGood(certificate: x509.X509Certificate, issuer: x509.X509Certificate): Promise<void>;
}

/**
 * The strict OCSP client as a CertificateStatusChecker: a fresh nonce per check, the responders
 * tried in order.
 *
 * @example
 *   const ocsp = ocspStatusChecker({ urls: ['http://127.0.0.1:7420'], clockSkewSeconds: 300, timeoutMs: 5000 });
 *   await ocsp.requireGood(deviceCertificate, deviceCa);
 */
export function ocspStatusChecker(options: {
  urls: string[];
  clockSkewSeconds?: number;
  timeoutMs?: number;
}): CertificateStatusChecker {
  return {
    async requireGood(certificate, issuer) {
      await requireGood({
        certificate: new Uint8Array(certificate.rawData),
        issuer: new Uint8Array(issuer.rawData),
        urls: options.urls,
        clockSkewSeconds: options.clockSkewSeconds,
        timeoutMs: options.timeoutMs,
      });
    },
  };
}
