import type * as x509 from '../crypto/x509.js';
import { SimcredError, isSimcredError } from '../errors/index.js';
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
      }).catch((err: unknown) => {
        throw asOutage(err);
      });
    },
  };
}

/**
 * A responder that answers tryLater/internalError or an HTTP 5xx is down for the caller as much as
 * one that cannot be reached: a retryable 503 with Retry-After (DESIGN §4.6), never a final refusal.
 */
function asOutage(err: unknown): unknown {
  if (!isSimcredError(err)) return err;
  if (err.code === 'SIMCRED_OCSP_HTTP_ERROR' || err.code === 'SIMCRED_OCSP_RESPONDER_ERROR') {
    return new SimcredError('SIMCRED_DEPENDENCY_UNAVAILABLE', `OCSP responder unavailable: ${err.message}`, {
      retryAfter: err.retryAfter ?? 5,
      cause: err,
    });
  }
  return err;
}
