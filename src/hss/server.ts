import type { AbuseSettings } from '../http/running.js';
import type { KeyObject } from 'node:crypto';
import type { SigningKey } from '../keys/signing-key.js';
import type { Logger } from 'pino';
import { startRoleServer, type RunningServer, type TlsIdentity } from '../http/index.js';
import type { DatabaseConfig } from '../storage/index.js';
import type { Clock } from '../time/clock.js';
import { mountHssApi } from './api.js';
import { HssAttach } from './attach.js';
import { AttachFeed } from './attach-feed.js';
import { HssProcessor, type SubscriptionProfile } from './processor.js';
import { HssStore } from './store.js';
import type { RoleTelemetry } from '../ops/telemetry.js';
import type { KeyEncryptionKey } from '../keys/key-encryption.js';

export interface HssServerOptions {
  /** Rate limits and request bounds on the device routes (config `abuse`; docs/abuse-limits.md). */
  abuse?: AbuseSettings;
  /** Metrics and readiness of this role (src/ops/telemetry.ts). */
  telemetry?: RoleTelemetry;
  host: string;
  port: number;
  database: DatabaseConfig;
  tls: TlsIdentity;
  logger: Logger;
  profile: SubscriptionProfile;
  /** Seals K/OPc at rest: in memory (config or secrets.json) or an AES key in a PKCS#11 token. */
  kek: KeyEncryptionKey;
  operatorSigningKey: KeyObject | SigningKey;
  operatorChainPem: string[];
  /** How long an attach challenge waits for its RES; 60 s when omitted. */
  attachChallengeTtlSeconds?: number;
  /** Time of releases and IMSI quarantine (tests move it); the real clock when omitted. */
  clock?: Clock;
}

/**
 * Starts the HSS (role 26) with its HLR and credential repository. Only the credentialing server
 * may ask for credentials (mutual TLS); devices attach to the network here with the downloaded ones.
 *
 * @example
 *   const hss = await startHssServer({ host, port: 7430, database, tls, logger, profile, kek, operatorSigningKey, operatorChainPem });
 */
export async function startHssServer(
  options: HssServerOptions,
): Promise<RunningServer & { store: HssStore }> {
  const store = await HssStore.open(options.database);
  options.telemetry?.readyWhen('store', () => store.ping());
  options.telemetry?.count('hssSubscribers', () => store.countByState());
  const processor = new HssProcessor({ ...options, store, log: options.logger });
  const attach = new HssAttach({
    store,
    kek: options.kek,
    challengeTtlSeconds: options.attachChallengeTtlSeconds ?? 60,
    log: options.logger,
  });
  const feed = new AttachFeed(store);
  const server = await startRoleServer({
    role: 'hss',
    ...(options.abuse ? { abuse: { ...options.abuse, store: store.rateLimits } } : {}),
    host: options.host,
    port: options.port,
    logger: options.logger,
    tls: options.tls,
    telemetry: options.telemetry,
    mount: (app) => {
      mountHssApi(app, processor, attach, feed);
      // Long polls waiting on the attach feed answer at once when the server begins to close.
      app.addHook('preClose', (done) => {
        void feed.close();
        done();
      });
    },
    // The store closes only after every long poll has read for the last time.
    release: async () => {
      await feed.close();
      await store.close();
    },
  });
  return { ...server, store };
}
