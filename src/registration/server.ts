import type { AbuseSettings } from '../http/running.js';
import { randomBytes, type KeyObject } from 'node:crypto';
import type * as x509 from '../crypto/x509.js';
import type { Logger } from 'pino';
import {
  PeerClient,
  clientTls,
  startRoleServer,
  type RunningServer,
  type TlsIdentity,
} from '../http/index.js';
import { admitGroupDevice, requestReprovision } from '../protocol/credentialing.js';
import type { DatabaseConfig } from '../storage/index.js';
import { mountRegistrationApi } from './api.js';
import { LookupChallenges } from './challenge.js';
import { RegistrationProcessor } from './processor.js';
import { RegistrationStore } from './store.js';
import { systemClock, type Clock } from '../time/clock.js';
import type { RoleTelemetry } from '../ops/telemetry.js';

export interface RegistrationServerOptions {
  /** Rate limits and request bounds on the device routes (config `abuse`; docs/abuse-limits.md). */
  abuse?: AbuseSettings;
  /** Metrics and readiness of this role (src/ops/telemetry.ts). */
  telemetry?: RoleTelemetry;
  host: string;
  port: number;
  database: DatabaseConfig;
  tls: TlsIdentity;
  logger: Logger;
  manufacturerRoots: x509.X509Certificate[];
  /** Public keys of the preliminary HLRs whose access grants this server accepts (step 2). */
  phlrKeys: KeyObject[];
  /** Clock skew allowed on a grant's iat/exp; 30 s when omitted. */
  grantClockSkewSeconds?: number;
  /** Shared by every instance behind one load balancer; random per process when omitted. */
  challengeSecret?: Buffer;
  challengeTtlSeconds?: number;
  /** The real clock when omitted (tests set the time). */
  clock?: Clock;
  /** The URL devices reach this server at, as enrollment groups name it (defaults to the listening address). */
  publicUrl?: string;
}

/**
 * Starts a registration server (role 14).
 *
 * @example
 *   const server = await startRegistrationServer({ host, port: 7411, database, tls, logger, manufacturerRoots, phlrKeys });
 */
export async function startRegistrationServer(options: RegistrationServerOptions): Promise<RunningServer> {
  const store = await RegistrationStore.open(options.database);
  options.telemetry?.readyWhen('store', () => store.ping());
  // Enrollment groups' admissions: this server asks the group's credentialing server, as itself.
  const client = new PeerClient({ tls: clientTls(options.tls) });
  let url = options.publicUrl ?? '';
  const processor = new RegistrationProcessor({
    store,
    challenges: new LookupChallenges(
      options.challengeSecret ?? randomBytes(32),
      options.challengeTtlSeconds ?? 60,
    ),
    manufacturerRoots: options.manufacturerRoots,
    phlrKeys: options.phlrKeys,
    grantClockSkewSeconds: options.grantClockSkewSeconds ?? 30,
    log: options.logger,
    clock: options.clock ?? systemClock,
    admit: (credentialingUrl, groupId, body) =>
      client.call(credentialingUrl, admitGroupDevice, { params: { groupId }, body }),
    reprovision: (credentialingUrl, body) => client.call(credentialingUrl, requestReprovision, { body }),
    url: () => url,
  });
  const server = await startRoleServer({
    role: 'registration',
    ...(options.abuse ? { abuse: { ...options.abuse, store: store.rateLimits } } : {}),
    host: options.host,
    port: options.port,
    logger: options.logger,
    tls: options.tls,
    telemetry: options.telemetry,
    // A push carries up to 2,000 records of ~200 bytes.
    bodyLimit: 1024 * 1024,
    mount: (app) => mountRegistrationApi(app, processor),
    release: async () => {
      await client.close();
      await store.close();
    },
  });
  url ||= server.url;
  return server;
}
