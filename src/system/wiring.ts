import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SimcredError } from '../errors/index.js';
import type { SimcredConfig } from '../config/index.js';
import * as x509 from '../crypto/x509.js';
import type { LoadedPki } from '../pki/index.js';
import type { DatabaseConfig } from '../storage/index.js';

/** One role's store: a SQLite file under the data folder, or its own schema on the shared PostgreSQL. */
export function roleDatabase(config: SimcredConfig, name: string): DatabaseConfig {
  return config.database.kind === 'sqlite'
    ? { kind: 'sqlite', file: join(config.dataDir, `${name}.db`) }
    : { kind: 'postgres', url: config.database.url, schema: name.replace(/-/g, '_') };
}

/** The manufacturer roots a PKI folder trusts, parsed for chain checks. */
export function manufacturerRoots(pki: LoadedPki): x509.X509Certificate[] {
  return [new x509.X509Certificate(pki.manufacturer.root.der)];
}

/**
 * The other manufacturers' roots the config trusts (config.trust.manufacturers: devices transferred
 * from another operator), each with the OCSP responder of its device CAs.
 */
export function otherManufacturers(config: SimcredConfig): { root: x509.X509Certificate; ocspUrl: string }[] {
  return config.trust.manufacturers.map((m) => ({
    root: readCertificate(m.rootFile, 'trust.manufacturers[].rootFile'),
    ocspUrl: m.ocspUrl,
  }));
}

/** One PEM certificate from a file the config names; SIMCRED_CONFIG_INVALID naming the field otherwise. */
export function readCertificate(file: string, field: string): x509.X509Certificate {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new SimcredError('SIMCRED_CONFIG_INVALID', `${field}: cannot read ${file}`, { cause });
  }
  try {
    return new x509.X509Certificate(pem);
  } catch (cause) {
    throw new SimcredError('SIMCRED_CONFIG_INVALID', `${field}: ${file} is not a PEM certificate`, { cause });
  }
}

/** The URLs of a system started from the same config (by `simcred up`), if one answers. */
export function configuredUrls(config: SimcredConfig) {
  const https = (port: number) => `https://${config.host}:${port}`;
  return {
    credentialing: https(config.ports.credentialing),
    registration: config.ports.registration.map(https),
    provisioning: config.ports.provisioning.map(https),
    hss: https(config.ports.hss),
    phlr: https(config.ports.phlr),
    ocsp: `http://${config.host}:${config.ports.ocsp}`,
    portal: https(config.ports.portal),
  };
}
