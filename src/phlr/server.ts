import type { AbuseSettings } from '../http/running.js';
import type { Logger } from 'pino';
import { startRoleServer, type RunningServer, type TlsIdentity } from '../http/index.js';
import type { DatabaseConfig } from '../storage/index.js';
import { mountPhlrApi } from './api.js';
import type { GrantSigner } from './grant.js';
import { PhlrProcessor } from './processor.js';
import { PhlrStore } from './store.js';
import type { Clock } from '../time/clock.js';
import type { RoleTelemetry } from '../ops/telemetry.js';
import type { KeyEncryptionKey } from '../keys/key-encryption.js';

export interface PhlrServerOptions {
  /** Rate limits and request bounds on the device routes (config `abuse`; docs/abuse-limits.md). */
  abuse?: AbuseSettings;
  /** Metrics and readiness of this role (src/ops/telemetry.ts). */
  telemetry?: RoleTelemetry;
  host: string;
  port: number;
  database: DatabaseConfig;
  tls: TlsIdentity;
  logger: Logger;
  /** The factory's subscriber list (<pki>/phlr/subscribers.ndjson), read on start and as devices appear. */
  subscribersFile: string;
  /** Seals K_PIMSI/OPc_PIMSI at rest: in memory (config or secrets.json) or an AES key in a PKCS#11 token. */
  kek: KeyEncryptionKey;
  /** Signs access grants; its certificate chain goes in x5c. */
  signer: GrantSigner;
  grantTtlSeconds: number;
  challengeTtlSeconds: number;
  amf: Buffer;
  /** The real clock when omitted (tests set the time). */
  clock?: Clock;
}

/**
 * Starts the preliminary HLR (role 50): devices authenticate on PIMSI/K_PIMSI and get an access
 * grant for registration traffic.
 *
 * @example
 *   const phlr = await startPhlrServer({ host, port: 7450, database, tls, logger, subscribersFile, kek, signer, grantTtlSeconds: 600, challengeTtlSeconds: 60, amf });
 */
export async function startPhlrServer(
  options: PhlrServerOptions,
): Promise<RunningServer & { store: PhlrStore; processor: PhlrProcessor }> {
  const store = await PhlrStore.open(options.database);
  options.telemetry?.readyWhen('store', () => store.ping());
  const processor = new PhlrProcessor({ ...options, store, log: options.logger });
  try {
    await processor.importSubscribers();
  } catch (err) {
    await store.close();
    throw err;
  }
  const server = await startRoleServer({
    role: 'phlr',
    ...(options.abuse ? { abuse: { ...options.abuse, store: store.rateLimits } } : {}),
    host: options.host,
    port: options.port,
    logger: options.logger,
    tls: options.tls,
    telemetry: options.telemetry,
    mount: (app) => mountPhlrApi(app, processor),
    release: () => store.close(),
  });
  return { ...server, store, processor };
}
