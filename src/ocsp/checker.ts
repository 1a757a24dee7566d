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

/**
 * A checker that sends a certificate whose issuer is one of `routes`' roots, or was signed by one,
 * to that route's checker, and every other to `fallback`: a device of another manufacturer (an
 * operator change) is checked at its own manufacturer's responder.
 *
 * @example
 *   const ocsp = ocspCheckerByRoot(ownChecker, [{ root: otherMakerRoot, checker: otherMakerChecker }]);
 */
export function ocspCheckerByRoot(
  fallback: CertificateStatusChecker,
  routes: { root: x509.X509Certificate; checker: CertificateStatusChecker }[],
): CertificateStatusChecker {
  if (routes.length === 0) return fallback;
  return {
    async requireGood(certificate, issuer) {
      for (const route of routes) {
        if (await issuedUnder(issuer, route.root)) return route.checker.requireGood(certificate, issuer);
      }
      return fallback.requireGood(certificate, issuer);
    },
  };
}

/** The issuer is the root, or a CA the root signed. */
async function issuedUnder(issuer: x509.X509Certificate, root: x509.X509Certificate): Promise<boolean> {
  if (Buffer.from(issuer.rawData).equals(Buffer.from(root.rawData))) return true;
  if (issuer.issuer !== root.subject) return false;
  try {
    return await issuer.verify({ publicKey: root.publicKey, signatureOnly: true });
  } catch {
    return false;
  }
}
