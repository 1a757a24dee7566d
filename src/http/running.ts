import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Role } from '../protocol/route.js';
import { createHttpServer, listen } from './server.js';
import { serverTls, type TlsIdentity } from './tls.js';

/** A role listening on a port: its base URL, and a close that also releases its store and clients. */
export interface RunningServer {
  role: Role;
  url: string;
  close(): Promise<void>;
}

export interface RoleServerOptions {
  role: Role;
  host: string;
  port: number;
  logger: Logger;
  /** HTTPS with mutual-TLS-capable peers; omitted only for plain-HTTP roles such as OCSP. */
  tls?: TlsIdentity;
  bodyLimit?: number;
  mount(app: FastifyInstance): void;
  /** Releases the role's store, clients and timers after the server stops accepting. */
  release?(): Promise<void>;
}

/**
 * The skeleton every role shares: an HTTP(S) server with the error contract, GET /health, the
 * role's routes, and an orderly close.
 *
 * @example
 *   const server = await startRoleServer({ role: 'hss', host, port, logger, tls, mount: (app) => mountHssApi(app, p) });
 */
export async function startRoleServer(options: RoleServerOptions): Promise<RunningServer> {
  const app = createHttpServer({
    logger: options.logger,
    bodyLimit: options.bodyLimit,
    tls: options.tls ? serverTls(options.tls) : undefined,
  });
  // Requests answered so far (health checks included), for benchmarks to count requests per onboarding.
  let requestsServed = 0;
  app.addHook('onResponse', (_request, _reply, done) => {
    requestsServed++;
    done();
  });
  app.get('/health', async () => ({ role: options.role, ok: true, requestsServed }));
  options.mount(app);
  let url: string;
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
  };
}
