import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import * as x509 from '../crypto/x509.js';
import { certificatePublicKey } from '../crypto/certificates.js';
import type { SimcredConfig } from '../config/index.js';
import { startCredentialingServer, type AuthorisationHookSettings } from '../credentialing/server.js';
import { SimcredError } from '../errors/index.js';
import { loadTlsIdentity, type RunningServer } from '../http/index.js';
import { startHssServer } from '../hss/server.js';
import { ocspCheckerByRoot, ocspStatusChecker } from '../ocsp/checker.js';
import { startPhlrServer } from '../phlr/server.js';
import { CaStore, loadPki, loadPkiSigningKey, PHLR_SUBSCRIBERS_FILE, type LoadedPki } from '../pki/index.js';
import type { SigningKey } from '../keys/signing-key.js';
import { isPkcs11Uri } from '../keys/pkcs11-uri.js';
import { startPortalServer } from '../portal/server.js';
import { startProvisioningServer } from '../provisioning/server.js';
import { startRegistrationServer } from '../registration/server.js';
import { loadHssSecrets, loadPhlrSecrets, loadRegistrationSecrets } from './secrets.js';
import type { Clock } from '../time/clock.js';
import type { Telemetry } from '../ops/telemetry.js';
import {
  abuseSettings,
  configuredUrls,
  listenAddress,
  manufacturerRoots,
  otherManufacturers,
  readCertificate,
  roleDatabase,
} from './wiring.js';

export const SERVABLE_ROLES = ['credentialing', 'registration', 'hss', 'provisioning'] as const;
export type ServableRole = (typeof SERVABLE_ROLES)[number];

/** What a role takes besides its config: the clock its expiry decisions read (the real one when omitted). */
export interface RoleDependencies {
  clock?: Clock;
  /** The process's metrics and readiness; each role registers under its name (`registration-2`). */
  telemetry?: Telemetry;
}

/** A role's name in metrics and `up --json`: registration and provisioning carry their instance. */
export function roleInstanceName(role: ServableRole, instance: number): string {
  return role === 'registration' || role === 'provisioning' ? `${role}-${instance}` : role;
}

/** The hook's settings with the CA its server certificate is checked against read from its file. */
function hookSettings(
  hook: NonNullable<SimcredConfig['credentialing']['authorisationHook']>,
  pki: LoadedPki,
): AuthorisationHookSettings {
  return {
    url: hook.url,
    timeoutMs: hook.timeoutMs,
    ca: hook.caFile ? [readFileSync(hook.caFile, 'utf8')] : [pki.operator.root.pem],
    ...(hook.plans ? { plans: hook.plans } : {}),
  };
}

/**
 * One role (DESIGN §5): peers are found at the URLs the config names unless given. `instance` picks
 * one of several registration or provisioning servers (1-based) and its port and store.
 *
 * @example
 *   const server = await startRole(config, 'hss', 1, logger);
 */
export async function startRole(
  config: SimcredConfig,
  role: ServableRole,
  instance: number,
  logger: Logger,
  peers: { ocsp: string; hss: string; provisioning: string[] } = configuredUrls(config),
  dependencies: RoleDependencies = {},
): Promise<RunningServer> {
  const { clock } = dependencies;
  const telemetry = dependencies.telemetry?.role(roleInstanceName(role, instance));
  const pki = await loadPki(config.pkiDir);
  const urls = peers;
  const host = listenAddress(config, role);
  const pick = (ports: number[]) => {
    const port = ports[instance - 1];
    if (port === undefined) {
      throw new SimcredError('SIMCRED_CLI_ARGUMENT', `--instance must be 1 to ${ports.length} for ${role}`);
    }
    return port;
  };
  switch (role) {
    case 'credentialing':
      return startCredentialingServer({
        host,
        port: config.ports.credentialing,
        // Behind a load balancer, the route devices are given is the balancer's.
        ...(config.urls.credentialing ? { publicUrl: config.urls.credentialing } : {}),
        database: roleDatabase(config, 'credentialing'),
        tls: loadTlsIdentity(config.pkiDir, 'credentialing'),
        logger,
        abuse: abuseSettings(config, clock),
        manufacturerRoots: [...manufacturerRoots(pki), ...otherManufacturers(config).map((m) => m.root)],
        operatorRoots: [new x509.X509Certificate(pki.operator.root.der)],
        // A device of another manufacturer's root is checked at that manufacturer's responder.
        ocsp: ocspCheckerByRoot(
          ocspStatusChecker({
            urls: [urls.ocsp],
            clockSkewSeconds: config.ocsp.clockSkewSeconds,
            timeoutMs: config.ocsp.timeoutMs,
          }),
          otherManufacturers(config).map((m) => ({
            root: m.root,
            checker: ocspStatusChecker({
              urls: [m.ocspUrl],
              clockSkewSeconds: config.ocsp.clockSkewSeconds,
              timeoutMs: config.ocsp.timeoutMs,
            }),
          })),
        ),
        hssUrl: urls.hss,
        ocspUrls: [urls.ocsp],
        telemetry,
        provisioningServers: urls.provisioning,
        provisioningPolicy: config.credentialing.provisioningPolicy,
        registrationTtlSeconds: config.registration.ttlSeconds,
        sessionTtlSeconds: config.credentialing.sessionTtlSeconds,
        ticketTtlSeconds: config.credentialing.ticketTtlSeconds,
        packageFormats: config.credentialing.packageFormats,
        ...(config.credentialing.authorisationHook
          ? { authorisationHook: hookSettings(config.credentialing.authorisationHook, pki) }
          : {}),
        notify: config.notify,
        ...(clock ? { clock } : {}),
      });
    case 'registration':
      return startRegistrationServer({
        host,
        port: pick(config.ports.registration),
        ...(config.urls.registration ? { publicUrl: config.urls.registration[instance - 1] } : {}),
        database: roleDatabase(config, `registration-${instance}`),
        tls: loadTlsIdentity(config.pkiDir, 'registration'),
        logger,
        abuse: abuseSettings(config, clock),
        manufacturerRoots: [...manufacturerRoots(pki), ...otherManufacturers(config).map((m) => m.root)],
        phlrKeys: [
          ...phlrGrantKeys(pki),
          ...config.trust.phlrCertificateFiles.map((file) =>
            certificatePublicKey(readCertificate(file, 'trust.phlrCertificateFiles[]')),
          ),
        ],
        grantClockSkewSeconds: config.phlr.grantClockSkewSeconds,
        telemetry,
        challengeSecret: loadRegistrationSecrets(config).challengeSecret,
        ...(clock ? { clock } : {}),
      });
    case 'provisioning':
      return startProvisioningServer({
        host,
        port: pick(config.ports.provisioning),
        database: roleDatabase(config, `provisioning-${instance}`),
        tls: loadTlsIdentity(config.pkiDir, 'provisioning'),
        logger,
        abuse: abuseSettings(config, clock),
        telemetry,
      });
    case 'hss': {
      const secrets = loadHssSecrets(config);
      return startHssServer({
        host,
        port: config.ports.hss,
        database: roleDatabase(config, 'hss'),
        tls: loadTlsIdentity(config.pkiDir, 'hss'),
        logger,
        abuse: abuseSettings(config, clock),
        profile: { ...config.hss, op: secrets.op },
        kek: secrets.kek,
        operatorSigningKey: packageSigningKey(config, pki),
        operatorChainPem: [pki.operator.packageSigner.pem, pki.operator.operatorCa.pem],
        telemetry,
        ...(clock ? { clock } : {}),
      });
    }
  }
}

/**
 * The package signer's key: config keys.packageSigner (a pkcs11: URI or a PEM file) or pki.json's,
 * checked against the signer certificate at start (fail closed: a token key under the wrong label,
 * or a token that cannot be opened, stops the HSS before it serves).
 */
export function packageSigningKey(config: SimcredConfig, pki: LoadedPki): SigningKey {
  const signer = pki.operator.packageSigner;
  if (config.keys.packageSigner === undefined) return signer.signingKey();
  const reference = config.keys.packageSigner;
  return loadPkiSigningKey(config.pkiDir, isPkcs11Uri(reference) ? reference : resolve(reference), {
    publicKey: signer.certificate.publicKey,
    name: signer.certPath,
  });
}

/**
 * The keys registration servers accept access grants from: the preliminary HLR's certificate in the
 * operator PKI (it signs grants with its TLS key; docs/aka.md says why).
 */
export function phlrGrantKeys(pki: LoadedPki) {
  return [pki.operator.tls.phlr.certificate.publicKey];
}

/**
 * The preliminary HLR (role 50) on config.ports.phlr: the factory's subscriber list from the PKI
 * folder (or config.phlr.subscribersFile), K/OPc sealed under its own KEK, grants signed with its key.
 *
 * @example
 *   const phlr = await startPhlr(config, logger);
 */
export async function startPhlr(
  config: SimcredConfig,
  logger: Logger,
  dependencies: RoleDependencies = {},
): Promise<RunningServer> {
  const pki = await loadPki(config.pkiDir);
  const identity = pki.operator.tls.phlr;
  return startPhlrServer({
    host: listenAddress(config, 'phlr'),
    port: config.ports.phlr,
    database: roleDatabase(config, 'phlr'),
    tls: loadTlsIdentity(config.pkiDir, 'phlr'),
    logger,
    abuse: abuseSettings(config, dependencies.clock),
    subscribersFile: config.phlr.subscribersFile ?? join(config.pkiDir, PHLR_SUBSCRIBERS_FILE),
    kek: loadPhlrSecrets(config).kek,
    signer: {
      privateKey: identity.privateKey(),
      certificateChainDer: [identity.der, pki.operator.operatorCa.der],
    },
    grantTtlSeconds: config.phlr.grantTtlSeconds,
    challengeTtlSeconds: config.phlr.challengeTtlSeconds,
    amf: Buffer.from(config.phlr.amf, 'hex'),
    telemetry: dependencies.telemetry?.role('phlr'),
    ...(dependencies.clock ? { clock: dependencies.clock } : {}),
  });
}

/**
 * The contract portal (step 0a) on config.ports.portal: its own store, its TLS identity as server and
 * as the operator API's client, the plans and operator accounts of config.portal. Peers at the
 * configured URLs unless given (startSystem passes the actual ones).
 *
 * @example
 *   const portal = await startPortal(config, logger);
 */
export async function startPortal(
  config: SimcredConfig,
  logger: Logger,
  peers: { credentialing: string; registration: string[] } = configuredUrls(config),
  dependencies: RoleDependencies = {},
): Promise<RunningServer> {
  const settings = config.portal;
  return startPortalServer({
    host: listenAddress(config, 'portal'),
    port: config.ports.portal,
    database: roleDatabase(config, 'portal'),
    tls: loadTlsIdentity(config.pkiDir, 'portal'),
    logger,
    credentialingUrl: peers.credentialing,
    registrationServer: settings.registrationServer ?? peers.registration[0]!,
    // The manufacturer's device list in this folder (ca.db holds no key): which registration server
    // each factory image names, so that a device typed in by its DSIM_ID alone is registered there.
    registrationServersOf: async (dsimIds) => {
      const store = await CaStore.open(config.pkiDir);
      try {
        return await store.registrationServersOf(dsimIds);
      } finally {
        await store.close();
      }
    },
    plans: settings.plans.map((p) => ({
      id: p.id,
      name: p.name,
      description: p.description,
      monthlyPricePerDevice: { amount: p.monthlyPricePerDevice, currency: p.currency },
      dataPerMonthMb: p.dataPerMonthMb,
      maxDevices: p.maxDevices,
    })),
    sessionTtlSeconds: settings.sessionTtlSeconds,
    loginAttempts: settings.loginAttempts,
    loginWindowSeconds: settings.loginWindowSeconds,
    uploadLimitBytes: settings.uploadLimitBytes,
    telemetry: dependencies.telemetry?.role('portal'),
    operators: settings.operators.map((o) => ({
      email: o.email.trim().toLowerCase(),
      name: o.name,
      password: readPasswordFile(o.passwordFile, 'portal.operators[].passwordFile'),
    })),
    ...(dependencies.clock ? { clock: dependencies.clock } : {}),
  });
}

/** The first line of a password file (an operator's password never sits in the config itself). */
export function readPasswordFile(file: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new SimcredError(
      missing ? 'SIMCRED_FILE_NOT_FOUND' : 'SIMCRED_IO',
      `${what}: cannot read ${file}${missing ? ': no such file' : ''}`,
    );
  }
  const password = text.split(/\r?\n/)[0] ?? '';
  if (password.length < 12 || password.length > 256) {
    throw new SimcredError(
      'SIMCRED_CLI_ARGUMENT',
      `${what}: the password in ${file} must be 12–256 characters`,
    );
  }
  return password;
}
