import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { routesOf } from '../protocol/index.js';
import { openApiDocument } from '../protocol/openapi.js';
import type { Role } from '../protocol/route.js';
import { healthRoute, openApiRoute, type ServingRole } from '../protocol/service.js';
import type { RoleTelemetry } from '../ops/telemetry.js';
import {
  createHttpServer,
  holdIdleConnections,
  listen,
  undeclaredErrors,
  type UndeclaredError,
} from './server.js';
import { serverTls, type TlsIdentity } from './tls.js';
import { limitDeviceRoutes, RequestLimiter, type AbuseLimitSettings } from './rate-limit.js';
import type { ServerLimits } from './server.js';
import type { RateLimitStore } from '../storage/rate-limits.js';
import type { Clock } from '../time/clock.js';

/**
 * A role's defences on its device-facing routes (config `abuse`, docs/abuse-limits.md): rate limits
 * counted in the role's own database (`store`), and bounds on request time, sizes and connections.
 */
export interface AbuseProtection {
  limits: AbuseLimitSettings;
  server: ServerLimits;
  store: RateLimitStore;
  /** The time windows are read from (the real clock when omitted; tests hold it still). */
  clock?: Clock;
}

/** What a role's caller gives: the settings; the role adds its own store's counters. */
export type AbuseSettings = Omit<AbuseProtection, 'store'>;

/** A role listening on a port: its base URL, and a close that also releases its store and clients. */
export interface RunningServer {
  role: Role;
  url: string;
  close(): Promise<void>;
  /** Codes answered on routes that do not declare them (logged as 'undeclared error code'); tests expect none. */
  undeclaredErrors(): UndeclaredError[];
  /** The fastify instance, for in-process tools (the long fuzz run sends requests to it without a socket). */
  app: FastifyInstance;
  /**
   * Presents `identity` to new TLS connections from now on (SIGHUP after a certificate rotation);
   * connections already open keep theirs. Absent on plain-HTTP roles.
   */
  reloadTls?(identity: TlsIdentity): void;
  /** SIGTERM: the next close lets idle connections time out rather than cutting them (server.ts holdIdleConnections). */
  holdIdleConnections(): void;
}

/**
 * What every role serves besides its interface: GET /health with a request counter, GET
 * /openapi.json (its document, with `url()` as the server), and the tie from each fastify route to
 * its declared spec, so the error handler can check the codes it answers (routes mounted without
 * mountRoute, such as a streaming one, are matched by method and path). Call before mounting routes.
 *
 * @example
 *   mountServiceRoutes(app, 'ocsp', () => url);
 */
export function mountServiceRoutes(app: FastifyInstance, role: ServingRole, url: () => string): void {
  const declared = routesOf(role);
  app.addHook('onRoute', (options) => {
    if (options.config?.route) return;
    const spec = declared.find((r) => r.method === options.method && r.path === options.url);
    if (spec) options.config = { ...options.config, route: spec };
  });
  // Requests answered so far (health checks included), for benchmarks to count requests per onboarding.
  let requestsServed = 0;
  app.addHook('onResponse', (_request, _reply, done) => {
    requestsServed++;
    done();
  });
  const health = healthRoute(role);
  app.route({
    method: health.method,
    url: health.path,
    config: { route: health },
    handler: async () => ({ role, ok: true as const, requestsServed }),
  });
  let document: string | undefined;
  const openApi = openApiRoute(role);
  app.route({
    method: openApi.method,
    url: openApi.path,
    config: { route: openApi },
    handler: async (_request, reply) => {
      document ??= JSON.stringify(openApiDocument(role, { servers: [url()] }));
      return reply.type('application/json').send(document);
    },
  });
}

export interface RoleServerOptions {
  role: ServingRole;
  host: string;
  port: number;
  logger: Logger;
  /** HTTPS with mutual-TLS-capable peers; omitted only for plain-HTTP roles such as OCSP. */
  tls?: TlsIdentity;
  bodyLimit?: number;
  /** The role's metrics and readiness (src/ops/telemetry.ts); requests are counted when given. */
  telemetry?: RoleTelemetry;
  mount(app: FastifyInstance): void;
  /** Releases the role's store, clients and timers after the server stops accepting. */
  release?(): Promise<void>;
  /** Rate limits and request bounds on the device routes; none when omitted. */
  abuse?: AbuseProtection;
}

/**
 * The skeleton every role shares: an HTTP(S) server with the error contract, GET /health, GET
 * /openapi.json, the role's routes, and an orderly close.
 *
 * @example
 *   const server = await startRoleServer({ role: 'hss', host, port, logger, tls, mount: (app) => mountHssApi(app, p) });
 */
export async function startRoleServer(options: RoleServerOptions): Promise<RunningServer> {
  const app = createHttpServer({
    logger: options.logger,
    bodyLimit: options.bodyLimit,
    tls: options.tls ? serverTls(options.tls) : undefined,
    telemetry: options.telemetry,
    ...(options.abuse ? { limits: options.abuse.server } : {}),
  });
  let url = '';
  if (options.abuse) {
    const { limits, store, clock } = options.abuse;
    const limiter = new RequestLimiter({
      store,
      denyCacheEntries: limits.denyCacheEntries,
      log: options.logger,
      ...(clock ? { clock } : {}),
    });
    limitDeviceRoutes(app, { settings: limits, limiter });
  }
  mountServiceRoutes(app, options.role, () => url);
  options.mount(app);
  try {
    url = await listen(app, { host: options.host, port: options.port });
  } catch (err) {
    await options.release?.();
    throw err;
  }
  return {
    role: options.role,
    url,
    async close() {
      await app.close();
      await options.release?.();
    },
    undeclaredErrors: () => undeclaredErrors(app),
    app,
    holdIdleConnections: () => holdIdleConnections(app),
    ...(options.tls ? { reloadTls: (identity: TlsIdentity) => reloadServerTls(app, identity) } : {}),
  };
}

/**
 * Node's tls.Server.setSecureContext: new handshakes use the new certificate and key (and trust
 * roots for client certificates); open connections are not dropped.
 */
export function reloadServerTls(app: FastifyInstance, identity: TlsIdentity): void {
  const tls = serverTls(identity);
  (app.server as unknown as import('node:tls').Server).setSecureContext({
    cert: tls.cert,
    key: tls.key,
    ...(tls.clientCa ? { ca: tls.clientCa } : {}),
  });
}
