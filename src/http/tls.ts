import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readManifest } from '../pki/init.js';
import { tlsChainPath, type TlsRole } from '../pki/layout.js';
import type { ClientTls } from './client.js';
import type { ServerTls } from './server.js';

/** A role's TLS identity from the PKI folder: its certificate (with the operator CA), key and trust root. */
export interface TlsIdentity {
  /** Leaf then operator CA, PEM: what the role presents as server and as client. */
  cert: string;
  key: string;
  /** Operator root(s) that peers' certificates must chain to. */
  ca: string[];
}

/**
 * Reads `operator/tls/<role>.chain.pem` (leaf then operator CA) as what the role presents.
 *
 * @example
 *   const identity = loadTlsIdentity(config.pkiDir, 'hss');
 *   createHttpServer({ logger, tls: serverTls(identity) });
 */
export function loadTlsIdentity(pkiDir: string, role: TlsRole): TlsIdentity {
  const manifest = readManifest(pkiDir);
  const read = (relative: string) => readFileSync(join(pkiDir, relative), 'utf8');
  const paths = manifest.operator.tls[role];
  const chainPath = tlsChainPath(paths);
  return {
    // The chain file `simcred pki init` writes; a folder made before it existed gets the same bytes.
    cert: existsSync(join(pkiDir, chainPath))
      ? read(chainPath)
      : read(paths.cert) + read(manifest.operator.operatorCa.cert),
    key: read(paths.key),
    ca: [read(manifest.operator.root.cert)],
  };
}

/** Server side: present the identity, and ask peers for client certificates under the same root. */
export function serverTls(identity: TlsIdentity): ServerTls {
  return { cert: identity.cert, key: identity.key, clientCa: identity.ca };
}

/** Client side of a server-to-server call (mutual TLS). */
export function clientTls(identity: TlsIdentity): ClientTls {
  return { ca: identity.ca, cert: identity.cert, key: identity.key };
}
