import { sql } from 'kysely';
import type { Logger } from 'pino';
import { z } from 'zod';
import { startRoleServer, type RunningServer, type TlsIdentity } from '../http/index.js';
import type { Plan } from '../protocol/portal.js';
import type { DatabaseConfig } from '../storage/index.js';
import { systemClock, type Clock } from '../time/clock.js';
import { AccountService } from './accounts.js';
import { mountPortalApi } from './api.js';
import { ContractService } from './contracts.js';
import { EventHub } from './events.js';
import { FeedFollower, HttpDeviceEventSource, type DeviceEventSource } from './feed.js';
import { defaultFrontEndDir } from './front-end.js';
import { Lease } from './leases.js';
import { OperatorClient } from './operator-client.js';
import { testPaymentProvider, type PaymentProvider } from './payment.js';
import { SharedEvents } from './shared-events.js';
import { openPortalStore } from './store.js';
import type { RoleTelemetry } from '../ops/telemetry.js';

export interface PortalServerOptions {
  /** Metrics and readiness of this role (src/ops/telemetry.ts). */
  telemetry?: RoleTelemetry;
  host: string;
  port: number;
  database: DatabaseConfig;
  /** The portal's TLS identity: its server certificate, and its client certificate at the operator API. */
  tls: TlsIdentity;
  logger: Logger;
  credentialingUrl: string;
  /** Where devices are registered when neither their row nor the directory names a registration server. */
  registrationServer: string;
  /**
   * The manufacturer's device list: which registration server each DSIM_ID's factory image names
   * (default: none known).
   */
  registrationServersOf?: (dsimIds: string[]) => Promise<Map<string, string>>;
  plans: z.infer<typeof Plan>[];
  sessionTtlSeconds: number;
  loginAttempts: number;
  loginWindowSeconds: number;
  uploadLimitBytes: number;
  /** Operator accounts created (or their password reset) at start. */
  operators?: { email: string; password: string; name: string }[];
  payments?: PaymentProvider;
  /** The credentialing server's event feed (the HTTP one when omitted). */
  events?: DeviceEventSource;
  frontEndDir?: string;
  clock?: Clock;
}

/**
 * How long the feed follower's lease lasts unrenewed: it is renewed before every read (a long poll
 * waits at most 25 s), and another instance takes over this long after its holder died.
 */
const FEED_LEASE_SECONDS = 60;

/** JSON bodies of the portal's API are small forms; device files stream past this limit. */
const JSON_BODY_LIMIT = 64 * 1024;

/**
 * Starts the contract portal (step 0a): HTTPS with its operator-CA certificate, its own store, and
 * the credentialing server reached only through the operator API as simcred-portal. It holds no HSS,
 * package-signing or CA secret.
 *
 * @example
 *   const portal = await startPortalServer({ host, port: 7460, database, tls, logger, credentialingUrl,
 *     registrationServer, plans, sessionTtlSeconds: 43200, loginAttempts: 5, loginWindowSeconds: 900,
 *     uploadLimitBytes: 16 * 1024 * 1024 });
 */
export async function startPortalServer(options: PortalServerOptions): Promise<RunningServer> {
  const clock = options.clock ?? systemClock;
  const log = options.logger;
  const db = await openPortalStore(options.database);
  options.telemetry?.readyWhen('store', () => sql`select 1`.execute(db));
  const accounts = new AccountService({
    db,
    clock,
    sessionTtlSeconds: options.sessionTtlSeconds,
    loginAttempts: options.loginAttempts,
    loginWindowSeconds: options.loginWindowSeconds,
  });
  const operator = new OperatorClient(options.tls);
  options.telemetry?.readyWhen('credentialing', () => operator.health(options.credentialingUrl));
  const hub = new EventHub();
  const events = new SharedEvents({ db, hub, log, onChange: () => contracts.scheduleFunnel() });
  const contracts: ContractService = new ContractService({
    db,
    plans: options.plans,
    payments: options.payments ?? testPaymentProvider,
    operator,
    credentialingUrl: () => options.credentialingUrl,
    registrationServer: () => options.registrationServer,
    registrationServersOf: options.registrationServersOf ?? (async () => new Map<string, string>()),
    hub,
    events,
    clock,
    log,
  });
  const source = options.events ?? new HttpDeviceEventSource(options.tls, () => options.credentialingUrl);
  const follower = new FeedFollower({
    source,
    // One instance on this database follows the feed; the others take over if it stops or dies.
    lease: new Lease({ db, name: 'credentialing-feed', ttlSeconds: FEED_LEASE_SECONDS }),
    cursor: {
      async load() {
        const row = await db
          .selectFrom('feed_cursor')
          .select('cursor')
          .where('name', '=', 'credentialing')
          .executeTakeFirst();
        return row?.cursor ?? null;
      },
      async save(cursor) {
        await db
          .insertInto('feed_cursor')
          .values({ name: 'credentialing', cursor })
          .onConflict((oc) => oc.column('name').doUpdateSet({ cursor }))
          .execute();
      },
    },
    apply: (events) => contracts.applyFeedEvents(events),
    log,
  });
  const release = async () => {
    contracts.stop();
    await follower.stop();
    await events.stop();
    await operator.close();
    await db.destroy();
  };
  try {
    for (const account of options.operators ?? []) await accounts.ensureOperator(account);
    await events.start();
  } catch (err) {
    await release();
    throw err;
  }
  const server = await startRoleServer({
    role: 'portal',
    host: options.host,
    port: options.port,
    logger: log,
    tls: options.tls,
    bodyLimit: JSON_BODY_LIMIT,
    telemetry: options.telemetry,
    mount: (app) =>
      mountPortalApi(app, {
        accounts,
        contracts,
        hub,
        sessionTtlSeconds: options.sessionTtlSeconds,
        uploadLimitBytes: options.uploadLimitBytes,
        frontEndDir: options.frontEndDir ?? defaultFrontEndDir(),
      }),
    release,
  });
  follower.start();
  return server;
}
