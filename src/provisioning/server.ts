import type { AbuseSettings } from '../http/running.js';
import type { Logger } from 'pino';
import {
  PeerClient,
  clientTls,
  startRoleServer,
  type RunningServer,
  type TlsIdentity,
} from '../http/index.js';
import type { DatabaseConfig } from '../storage/index.js';
import { mountProvisioningApi } from './api.js';
import { CredentialingConsumer } from './consumer.js';
import { ProvisioningProcessor } from './processor.js';
import { ProvisioningStore } from './store.js';
import { DmServer } from './omadm/session.js';
import type { RoleTelemetry } from '../ops/telemetry.js';

export interface ProvisioningServerOptions {
  /** Rate limits and request bounds on the device routes (config `abuse`; docs/abuse-limits.md). */
  abuse?: AbuseSettings;
  /** Metrics and readiness of this role (src/ops/telemetry.ts). */
  telemetry?: RoleTelemetry;
  host: string;
  port: number;
  database: DatabaseConfig;
  tls: TlsIdentity;
  logger: Logger;
}

/**
 * Starts a provisioning server (role 28/30).
 *
 * @example
 *   const server = await startProvisioningServer({ host: '127.0.0.1', port: 7441, database, tls, logger });
 */
export async function startProvisioningServer(options: ProvisioningServerOptions): Promise<RunningServer> {
  const store = await ProvisioningStore.open(options.database);
  options.telemetry?.readyWhen('store', () => store.ping());
  const client = new PeerClient({ tls: clientTls(options.tls) });
  const processor = new ProvisioningProcessor(store, new CredentialingConsumer(client), options.logger);
  return startRoleServer({
    role: 'provisioning',
    ...(options.abuse ? { abuse: { ...options.abuse, store: store.rateLimits } } : {}),
    host: options.host,
    port: options.port,
    logger: options.logger,
    tls: options.tls,
    telemetry: options.telemetry,
    mount: (app) => mountProvisioningApi(app, processor, new DmServer(processor, store, options.logger)),
    release: async () => {
      await client.close();
      await store.close();
    },
  });
}
