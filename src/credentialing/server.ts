import type { AbuseSettings } from '../http/running.js';
import type { PackageFormat } from '../crypto/package-format.js';
import type * as x509 from '../crypto/x509.js';
import type { Logger } from 'pino';
import {
  PeerClient,
  clientTls,
  startRoleServer,
  type RunningServer,
  type TlsIdentity,
} from '../http/index.js';
import type { DatabaseConfig } from '../storage/index.js';
import { mountCredentialingApi } from './api.js';
import type { CertificateStatusChecker } from '../ocsp/checker.js';
import { AuthenticationSubsystem } from './authentication-subsystem.js';
import { AuthorisationHook } from './authorisation-hook.js';
import { CredentialingConsumers } from './consumers.js';
import { CredentialingSubsystem } from './credentialing-subsystem.js';
import { EnrollmentGroups } from './enrollment-groups.js';
import { Reprovisioning } from './reprovisioning.js';
import { PeerActionSender } from './peer-actions.js';
import { AttachFollower } from './attach-follower.js';
import { RegistrationExpiry } from './expiry.js';
import { FeedSignal } from '../storage/index.js';
import { CredentialingProcessor } from './processor.js';
import { provisioningChooser, type ProvisioningPolicy } from './provisioning-policy.js';
import { RegistrationSubsystem } from './registration-subsystem.js';
import { CredentialingStore } from './store.js';
import { systemClock, type Clock } from '../time/clock.js';
import { mountOrderApi } from './order-api.js';
import { Transfers } from './transfers.js';
import { OrderService } from './orders.js';
import { healthRoute, type ServingRole } from '../protocol/service.js';
import type { RoleTelemetry } from '../ops/telemetry.js';
import { DEFAULT_NOTIFY, WebhookDispatcher, WebhookService, type NotifySettings } from './webhooks.js';

export interface CredentialingServerOptions {
  /** Rate limits and request bounds on the device routes (config `abuse`; docs/abuse-limits.md). */
  abuse?: AbuseSettings;
  /** Metrics and readiness of this role (src/ops/telemetry.ts). */
  telemetry?: RoleTelemetry;
  /** OCSP responders whose /health readiness requires (the device PKI's own). */
  ocspUrls?: string[];
  host: string;
  port: number;
  /** The URL devices and peers reach this server at (defaults to the listening address). */
  publicUrl?: string;
  database: DatabaseConfig;
  tls: TlsIdentity;
  logger: Logger;
  manufacturerRoots: x509.X509Certificate[];
  /** Operator roots: packages from the HSS must be signed under one of them. */
  operatorRoots: x509.X509Certificate[];
  ocsp: CertificateStatusChecker;
  hssUrl: string;
  provisioningServers: string[];
  provisioningPolicy?: ProvisioningPolicy;
  registrationTtlSeconds: number;
  sessionTtlSeconds?: number;
  ticketTtlSeconds?: number;
  /** Package formats sealed, in order of preference (default JOSE, then XML). */
  packageFormats?: readonly PackageFormat[];
  /** Time for every expiry decision; the real clock when omitted (tests set the time). */
  clock?: Clock;
  /** How often registrations past their expiry are marked expired (default 10 s). */
  expirySweepMs?: number;
  /** Notifications: config webhooks, URL policy, retries (issue 14). */
  notify?: NotifySettings;
  /** The operator's authorisation hook, asked at the end of step 4 (none by default). */
  authorisationHook?: AuthorisationHookSettings;
  /** Operator change: lifetime of a transfer statement (7 days by default). */
  transferTtlSeconds?: number;
}

export interface AuthorisationHookSettings {
  url: string;
  timeoutMs: number;
  /** PEM certificates the hook's server certificate must chain to. */
  ca: string[];
  plans?: string[];
}

/**
 * Starts the credentialing server (role 10) with its registration (12), authentication (18) and
 * credentialing (24) subsystems.
 *
 * @example
 *   const server = await startCredentialingServer({ host, port: 7401, database, tls, logger,
 *     manufacturerRoots, ocsp, hssUrl, provisioningServers: [p1, p2], registrationTtlSeconds: 86400 });
 */
export async function startCredentialingServer(options: CredentialingServerOptions): Promise<RunningServer> {
  const store = await CredentialingStore.open(options.database);
  const client = new PeerClient({ tls: clientTls(options.tls) });
  observe(options, store, client);
  const consumers = new CredentialingConsumers(client);
  // Known only once listening when the port is 0 (tests): the subsystems read it when they need it.
  let url = options.publicUrl ?? '';
  const credentialingUrl = () => url;
  const log = options.logger;
  const clock = options.clock ?? systemClock;
  const peerActions = new PeerActionSender({ store, consumers, log, clock });
  const feedSignal = new FeedSignal();
  store.onAudit(() => feedSignal.notify());
  const expiry = new RegistrationExpiry({ store, log, clock, sweepMs: options.expirySweepMs });
  const attachFollower = new AttachFollower({ store, consumers, hssUrl: options.hssUrl, log, clock });
  const hookSettings = options.authorisationHook;
  // The hook sees this server's client certificate, so it can tell who asks.
  const hookClient = hookSettings
    ? new PeerClient({
        tls: { ...clientTls(options.tls), ca: hookSettings.ca },
        timeoutMs: hookSettings.timeoutMs,
      })
    : undefined;
  const hook =
    hookSettings && hookClient
      ? new AuthorisationHook({
          url: hookSettings.url,
          client: hookClient,
          timeoutMs: hookSettings.timeoutMs,
          ...(hookSettings.plans ? { plans: hookSettings.plans } : {}),
          log,
          clock,
        })
      : undefined;
  const groups = new EnrollmentGroups({
    store,
    consumers,
    manufacturerRoots: options.manufacturerRoots,
    credentialingUrl,
    ttlSeconds: options.registrationTtlSeconds,
    log,
    clock,
  });
  const reprovisioning = new Reprovisioning({
    store,
    consumers,
    peerActions,
    manufacturerRoots: options.manufacturerRoots,
    credentialingUrl,
    ttlSeconds: options.registrationTtlSeconds,
    log,
    clock,
  });
  const processor = new CredentialingProcessor(
    new RegistrationSubsystem({
      store,
      consumers,
      credentialingUrl,
      ttlSeconds: options.registrationTtlSeconds,
      log,
      clock,
    }),
    new AuthenticationSubsystem({
      store,
      manufacturerRoots: options.manufacturerRoots,
      ocsp: options.ocsp,
      sessionTtlSeconds: options.sessionTtlSeconds ?? 120,
      log,
      clock,
      ...(hook ? { hook } : {}),
    }),
    new CredentialingSubsystem({
      store,
      consumers,
      peerActions,
      hssUrl: options.hssUrl,
      operatorRoots: options.operatorRoots,
      chooseProvisioningServer: provisioningChooser(
        options.provisioningServers,
        options.provisioningPolicy ?? 'hash',
      ),
      credentialingUrl,
      ticketTtlSeconds: options.ticketTtlSeconds ?? 600,
      ...(options.packageFormats ? { packageFormats: options.packageFormats } : {}),
      log,
      clock,
    }),
    store,
    peerActions,
    log,
    clock,
    { signal: feedSignal, expiry },
  );
  const transfers = new Transfers({
    store,
    peerActions,
    consumers,
    credentialingUrl,
    hssUrl: options.hssUrl,
    ...(options.transferTtlSeconds ? { ttlSeconds: options.transferTtlSeconds } : {}),
    log,
    clock,
  });
  const notify = options.notify ?? DEFAULT_NOTIFY;
  const orders = new OrderService(store, (dsimId, reason) => processor.revoke(dsimId, { reason }), clock);
  const webhooks = new WebhookService(store, notify, clock);
  await webhooks.syncConfig().catch(async (err: unknown) => {
    await client.close();
    await store.close();
    throw err;
  });
  const dispatcher = new WebhookDispatcher({ store, log, settings: notify, clock });
  const server = await startRoleServer({
    role: 'credentialing',
    ...(options.abuse ? { abuse: { ...options.abuse, store: store.rateLimits } } : {}),
    host: options.host,
    port: options.port,
    logger: log,
    tls: options.tls,
    telemetry: options.telemetry,
    mount: (app) => {
      mountCredentialingApi(app, processor, groups, reprovisioning, transfers);
      mountOrderApi(app, orders, webhooks, store);
      // Long polls waiting on the feed answer at once, so closing does not wait out their wait.
      app.addHook('preClose', (done) => {
        feedSignal.close();
        done();
      });
    },
    release: async () => {
      await dispatcher.stop();
      await attachFollower.stop();
      await expiry.stop();
      await peerActions.stop();
      await client.close();
      await hookClient?.close();
      await store.close();
    },
  });
  url ||= server.url;
  peerActions.start();
  expiry.start();
  attachFollower.start();
  dispatcher.start();
  return server;
}

/**
 * The credentialing server's metrics and readiness: devices per state, the outbox and batch
 * backlogs (count queries at scrape time), ready when its store and the peers a device's flow needs
 * (HSS, every provisioning server, the OCSP responders) answer.
 */
function observe(options: CredentialingServerOptions, store: CredentialingStore, client: PeerClient): void {
  const telemetry = options.telemetry;
  if (!telemetry) return;
  telemetry.count('onboardings', () => store.countByState());
  // Both backlog gauges come from one read per scrape.
  let reading: Promise<Awaited<ReturnType<CredentialingStore['backlogs']>>> | undefined;
  const backlogs = () =>
    (reading ??= store.backlogs().finally(() => setImmediate(() => (reading = undefined))));
  telemetry.count('outboxBacklog', async () => {
    const b = await backlogs();
    return { peer_actions: b.peerActions, webhook_deliveries: b.webhookDeliveries };
  });
  telemetry.count('batchBacklog', async () => ({ unpushed: (await backlogs()).unpushed }));
  telemetry.readyWhen('store', () => store.ping());
  const peers: [string, ServingRole, string][] = [
    ['hss', 'hss', options.hssUrl],
    ...options.provisioningServers.map((url, i): [string, ServingRole, string] => [
      `provisioning-${i + 1}`,
      'provisioning',
      url,
    ]),
    ...(options.ocspUrls ?? []).map((url, i): [string, ServingRole, string] => [
      options.ocspUrls!.length > 1 ? `ocsp-${i + 1}` : 'ocsp',
      'ocsp',
      url,
    ]),
  ];
  for (const [name, role, url] of peers) {
    telemetry.readyWhen(name, () => client.call(url, healthRoute(role)));
  }
}
