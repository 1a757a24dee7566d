import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SimcredError } from '../errors/index.js';
import { isIPv6 } from 'node:net';
import type { ListenRole, SimcredConfig } from '../config/index.js';
import * as x509 from '../crypto/x509.js';
import type { IssuerName, LoadedPki } from '../pki/index.js';
import { isPkcs11Uri } from '../keys/pkcs11-uri.js';
import type { DatabaseConfig } from '../storage/index.js';
import type { AbuseSettings } from '../http/running.js';
import type { Clock } from '../time/clock.js';

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

/**
 * The address a role listens on: config.listen's for it, else config.host.
 *
 * @example
 *   listenAddress(config, 'credentialing'); // '127.0.1.1' with { listen: { credentialing: '127.0.1.1' } }
 */
export function listenAddress(config: SimcredConfig, role: ListenRole): string {
  return config.listen[role] ?? config.host;
}

/**
 * The URLs the roles of this config reach each other at: config.urls where it names one (a load
 * balancer's), else the role's listen address and port (config.host for a wildcard address).
 */
export function configuredUrls(config: SimcredConfig) {
  const at = (role: ListenRole, port: number, scheme = 'https') => {
    const address = listenAddress(config, role);
    const host = address === '0.0.0.0' || address === '::' ? config.host : address;
    return `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`;
  };
  const urls = config.urls;
  return {
    credentialing: urls.credentialing ?? at('credentialing', config.ports.credentialing),
    registration: urls.registration ?? config.ports.registration.map((p) => at('registration', p)),
    provisioning: urls.provisioning ?? config.ports.provisioning.map((p) => at('provisioning', p)),
    hss: urls.hss ?? at('hss', config.ports.hss),
    phlr: urls.phlr ?? at('phlr', config.ports.phlr),
    ocsp: urls.ocsp ?? at('ocsp', config.ports.ocsp, 'http'),
    portal: urls.portal ?? at('portal', config.ports.portal),
  };
}

/**
 * The abuse limits and request bounds of the device-facing roles, from config `abuse`
 * (docs/abuse-limits.md); `clock` is the time their windows are read from.
 */
export function abuseSettings(config: SimcredConfig, clock?: Clock): AbuseSettings {
  const a = config.abuse;
  return {
    limits: {
      enabled: a.enabled,
      perAddress: a.perAddress,
      perIdentity: a.perIdentity,
      perIdentityAndAddress: a.perIdentityAndAddress,
      akaChallenges: a.akaChallenges,
      akaChallengesPerAddress: a.akaChallengesPerAddress,
      denyCacheEntries: a.denyCacheEntries,
    },
    server: {
      requestTimeoutMs: a.requestTimeoutMs,
      headersTimeoutMs: a.headersTimeoutMs,
      idleTimeoutMs: a.idleTimeoutMs,
      maxHeaderBytes: a.maxHeaderBytes,
      deviceBodyLimit: a.deviceBodyLimitBytes,
      connectionsPerAddress: a.connectionsPerAddress,
    },
    ...(clock ? { clock } : {}),
  };
}

/**
 * Config keys.ocspSigners as the OCSP responder takes them: per issuing CA, a pkcs11: URI as given or
 * a PEM file resolved against the working folder; CAs not named keep pki.json's key.
 *
 * @example
 *   startOcspResponder({ pkiDir: config.pkiDir, signerKeys: ocspSignerKeys(config), logger });
 */
export function ocspSignerKeys(config: SimcredConfig): Partial<Record<IssuerName, string>> {
  const keys: Partial<Record<IssuerName, string>> = {};
  const reference = (value: string) => (isPkcs11Uri(value) ? value : resolve(value));
  const { deviceCa, operatorCa } = config.keys.ocspSigners;
  if (deviceCa !== undefined) keys['device-ca'] = reference(deviceCa);
  if (operatorCa !== undefined) keys['operator-ca'] = reference(operatorCa);
  return keys;
}
