import * as x509 from '../crypto/x509.js';
import { SimcredError } from '../errors/index.js';
import { certificateFacts, type CertificateFacts } from '../crypto/certificate-facts.js';

const DSIM_URN_PREFIX = 'urn:simcred:dsim:';

/**
 * The DSIM_ID a device certificate binds (DESIGN §3): subject serialNumber and SAN URI
 * urn:simcred:dsim:<id> must both be present and agree, else the certificate binds nothing.
 *
 * @example
 *   if (boundDsimId(certificate) !== request.dsimId) throw …;
 */
export function boundDsimId(certificate: x509.X509Certificate): string {
  let facts: CertificateFacts;
  try {
    facts = certificateFacts(certificate);
  } catch {
    throw new SimcredError('SIMCRED_CERT_INVALID', 'the certificate extensions cannot be read');
  }
  const fromSubject = facts.subjectSerialNumbers;
  const fromSan = facts.sanUris
    .filter((uri) => uri.startsWith(DSIM_URN_PREFIX))
    .map((uri) => uri.slice(DSIM_URN_PREFIX.length));
  if (fromSubject.length !== 1 || fromSan.length !== 1 || fromSubject[0] !== fromSan[0]) {
    throw new SimcredError(
      'SIMCRED_CERT_DSIM_MISMATCH',
      'the certificate does not bind exactly one DSIM_ID in subject serialNumber and SAN URI',
    );
  }
  return fromSan[0]!;
}

/** Throws SIMCRED_CERT_DSIM_MISMATCH unless the certificate binds this DSIM_ID. */
export function requireDsimBinding(certificate: x509.X509Certificate, dsimId: string): void {
  if (boundDsimId(certificate) !== dsimId) {
    throw new SimcredError(
      'SIMCRED_CERT_DSIM_MISMATCH',
      'the DSIM_ID in the request is not the one in the certificate',
    );
  }
}
