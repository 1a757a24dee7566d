import { join } from 'node:path';

/**
 * The PKI folder made by `simcred pki init` and read by every role. pki.json (the manifest) names
 * every file by its path relative to the folder, so no caller guesses the layout.
 */
export const PKI_MANIFEST_FILE = 'pki.json';
export const CA_DATABASE_FILE = 'ca.db';
export const DEVICES_DIR = 'devices';

/** DSIM_ID: "DSIM" + 16 upper-case hex digits (8 random bytes). */
export const DSIM_ID_PATTERN = /^DSIM[0-9A-F]{16}$/;

/** The roles that get a server TLS certificate (SAN localhost, 127.0.0.1 and the names of `pki init --host`). */
export const TLS_ROLES = [
  'credentialing',
  'registration',
  'ocsp',
  'hss',
  'provisioning',
  'phlr',
  'portal',
] as const;
export type TlsRole = (typeof TLS_ROLES)[number];

/** The issuing CAs whose certificates the OCSP responder answers for. */
export const ISSUERS = ['device-ca', 'operator-ca'] as const;
export type IssuerName = (typeof ISSUERS)[number];

export interface CertKeyPaths {
  cert: string;
  key: string;
}

export interface PkiManifest {
  version: 1;
  createdAt: string;
  /** Manufacturer root → device-issuing CA → device certificates. */
  manufacturer: { root: CertKeyPaths; deviceCa: CertKeyPaths; deviceCaOcsp: CertKeyPaths };
  /** Operator root → operator CA → package signer, server TLS certificates. */
  operator: {
    root: CertKeyPaths;
    operatorCa: CertKeyPaths;
    operatorCaOcsp: CertKeyPaths;
    packageSigner: CertKeyPaths;
    tls: Record<TlsRole, CertKeyPaths>;
  };
}

/**
 * A TLS role's chain file beside its certificate (operator/tls/<role>.chain.pem): the role's leaf,
 * then the operator CA that issued it. What the role presents, as server and as client, so that a
 * peer trusting only the operator root can build the path.
 *
 * @example
 *   tlsChainPath(manifest.operator.tls.hss); // 'operator/tls/hss.chain.pem'
 */
export function tlsChainPath(paths: CertKeyPaths): string {
  return `${paths.cert.replace(/(\.crt)?\.pem$/, '')}.chain.pem`;
}

export function deviceDir(pkiDir: string, dsimId: string): string {
  return join(pkiDir, DEVICES_DIR, dsimId);
}
