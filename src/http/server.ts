import { STATUS_CODES } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import Fastify, {
  LogController,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Logger } from 'pino';
import { ERROR_CODES, SimcredError, isSimcredError, type ErrorCode } from '../errors/index.js';
import { routeErrors, type RouteSpec } from '../protocol/route.js';
import { isDatabaseOutage } from '../storage/database.js';
import { REQUEST_ID_HEADER, acceptedRequestId, enterRequestId, newRequestId } from '../log/context.js';
import { capConnections } from './rate-limit.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The declared route this fastify route serves (set by mountRoute and the role skeleton). */
    route?: RouteSpec;
  }
}

/** Server TLS; with `clientCa`, peers may present certificates that `requirePeer` then checks. */
export interface ServerTls {
  cert: string;
  key: string;
  /** Roots that client certificates must chain to (mutual TLS between servers). */
  clientCa?: string[];
}

export interface HttpServerOptions {
  logger: Logger;
  tls?: ServerTls;
  /** Largest accepted body in bytes (default 64 KiB: every simcred message is small). */
  bodyLimit?: number;
  /** Where each answered request is counted and timed (the role's metrics; src/ops/telemetry.ts). */
  telemetry?: RequestObserver;
  /** Bounds on request time, header and body size and connections per address (Node's defaults when omitted). */
  limits?: ServerLimits;
}

/**
 * What one client may hold of a server (config `abuse`; docs/abuse-limits.md): a slow or oversized
 * request is cut off, and one address cannot hold every socket.
 */
export interface ServerLimits {
  /** A device route's whole request (headers and body) must arrive within this (ms); else 408, connection closed. */
  requestTimeoutMs: number;
  /** The headers must arrive within this (ms). */
  headersTimeoutMs: number;
  /** A connection with no traffic for this long is closed (ms). */
  idleTimeoutMs: number;
  /** Largest request head (request line and headers, bytes); more is 431. */
  maxHeaderBytes: number;
  /** Largest body of a device route (bytes); server-to-server routes keep the server's own limit. */
  deviceBodyLimit: number;
  /** Open connections per client address; one more is closed at once (0: no cap). */
  connectionsPerAddress: number;
}

/** What is told of each answered request: its declared route id (or 'unmatched'), method, status, time. */
export interface RequestObserver {
  observeRequest(route: string, method: string, status: number, seconds: number): void;
}

/** The body of every error response: a stable code and a one-line message. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
}

export const DEFAULT_BODY_LIMIT = 64 * 1024;
export const KEEP_ALIVE_TIMEOUT_MS = 5000;

/**
 * Shutdown without cutting a request on its way: Node's server.close() destroys every idle
 * keep-alive connection at once, and a request a client has just written on one meets a reset.
 * Held, close() only stops accepting; an idle connection ends when its keep-alive timeout passes
 * (the client, told the timeout, no longer uses it by then), and one a request arrives on is
 * answered 503 with Connection: close (fastify while closing). Call before app.close().
 */
export function holdIdleConnections(app: FastifyInstance): void {
  (app.server as { closeIdleConnections?: () => void }).closeIdleConnections = () => undefined;
}

/** A code a route answered although it does not declare it (routeErrors): a gap in the docs. */
export interface UndeclaredError {
  route: string;
  code: ErrorCode;
  count: number;
}

const undeclared = new WeakMap<FastifyInstance, Map<string, UndeclaredError>>();
const declaredCodes = new WeakMap<RouteSpec, ReadonlySet<ErrorCode>>();

function declares(route: RouteSpec, code: ErrorCode): boolean {
  let codes = declaredCodes.get(route);
  if (!codes) declaredCodes.set(route, (codes = new Set(routeErrors(route))));
  return codes.has(code);
}

/**
 * The codes this server answered on a route that does not declare them, each logged at error level
 * as 'undeclared error code' when it happened; the tests drive every refusal and expect none.
 *
 * @example
 *   assert.deepEqual(undeclaredErrors(app), []);
 */
export function undeclaredErrors(app: FastifyInstance): UndeclaredError[] {
  return [...(undeclared.get(app)?.values() ?? [])].map((e) => ({ ...e }));
}

/**
 * A fastify instance with simcred's error contract: every failure is `{code, message}` with the
 * code's HTTP status, 503s carry Retry-After, and a 500 never shows its detail.
 *
 * @example
 *   const app = createHttpServer({ logger });
 *   app.get('/health', async () => ({ ok: true }));
 *   const url = await listen(app, { host: '127.0.0.1', port: 0 });
 */
export function createHttpServer(options: HttpServerOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.logger,
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    // Per-request access logs cost ~20% of throughput; errors are still logged by sendError.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    ...(options.limits
      ? {
          // No server-wide requestTimeout: a peer's streamed batch (a million registrations) may take
          // minutes to upload. Device routes get their own bound (applyLimits); headers, everyone.
          connectionTimeout: options.limits.idleTimeoutMs,
          http: serverSocketOptions(options.limits),
        }
      : {}),
    // Node's own refusals before any route (a head too large, a request too slow, a request that does
    // not parse) in the error contract too.
    clientErrorHandler: answerClientError,
    // Node's 5 s rather than fastify's 72 s: clients (undici) take the Keep-Alive hint and stop reusing
    // an idle connection before the server times it out, so a draining server can let idle
    // connections time out instead of cutting them while a request may be on its way
    // (holdIdleConnections).
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    // The caller's x-request-id when well-formed (src/log/context.ts), else a fresh one; every log
    // line of the request carries it through the logger's mixin, so the child logger does not bind it
    // a second time.
    genReqId: (req) => acceptedRequestId(req.headers[REQUEST_ID_HEADER]) ?? newRequestId(),
    childLoggerFactory: (logger, bindings, childOptions) => {
      const { reqId: _bound, ...rest } = bindings as Record<string, unknown>;
      return logger.child(rest, childOptions);
    },
    // A path fastify cannot decode (bad percent-encoding, an over-long parameter) is the client's
    // mistake, answered under the error contract rather than with fastify's own body.
    frameworkErrors: (err, request, reply) =>
      sendError(request, reply, new SimcredError('SIMCRED_BAD_REQUEST', err.message)),
    ...(options.tls
      ? {
          https: {
            cert: options.tls.cert,
            key: options.tls.key,
            ...(options.limits ? serverSocketOptions(options.limits) : {}),
            ...(options.tls.clientCa
              ? // Clients without a certificate (devices) still connect; routes that need a peer check it.
                { ca: options.tls.clientCa, requestCert: true, rejectUnauthorized: false }
              : {}),
          },
        }
      : {}),
  }) as unknown as FastifyInstance;
  if (options.limits) applyLimits(app, options.limits);
  observeRequests(app, options.telemetry);
  const seen = new Map<string, UndeclaredError>();
  undeclared.set(app, seen);
  const onUndeclared = (route: string, code: ErrorCode) => {
    const key = `${route} ${code}`;
    const entry = seen.get(key) ?? { route, code, count: 0 };
    entry.count++;
    seen.set(key, entry);
  };
  app.setErrorHandler((err: FastifyError, request, reply) => sendError(request, reply, err, onUndeclared));
  app.setNotFoundHandler((request, reply) =>
    sendError(
      request,
      reply,
      new SimcredError('SIMCRED_NOT_FOUND', `no route ${request.method} ${request.url}`),
    ),
  );
  return app;
}

/**
 * Node's own bounds: the head's size, and how often it looks for requests past their time (every
 * 30 s by default, which would let a slow request hold its socket up to 30 s beyond the limit).
 */
function serverSocketOptions(limits: ServerLimits): {
  maxHeaderSize: number;
  connectionsCheckingInterval: number;
} {
  const shortest = Math.min(limits.requestTimeoutMs, limits.headersTimeoutMs);
  return {
    maxHeaderSize: limits.maxHeaderBytes,
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(shortest / 4))),
  };
}

function applyLimits(app: FastifyInstance, limits: ServerLimits): void {
  app.server.headersTimeout = limits.headersTimeoutMs;
  capConnections(app.server, limits, (address) =>
    app.log.warn(
      { address, cap: limits.connectionsPerAddress },
      'connection refused: too many from one address',
    ),
  );
  // A device route's body must arrive within requestTimeoutMs of the request's start (a slow sender
  // holds no socket and parser for longer); the timer stops once the body is read.
  const bodyTimers = new WeakMap<FastifyRequest, NodeJS.Timeout>();
  const stop = (request: FastifyRequest) => {
    clearTimeout(bodyTimers.get(request));
    bodyTimers.delete(request);
  };
  app.addHook('onRequest', (request, reply, done) => {
    if (request.routeOptions.config?.route?.caller.kind === 'device') {
      const timer = setTimeout(() => {
        if (reply.sent) return;
        writeRawError(request.raw.socket, 408, {
          code: 'SIMCRED_REQUEST_TIMEOUT',
          message: 'request not received in time',
        });
      }, limits.requestTimeoutMs);
      timer.unref();
      bodyTimers.set(request, timer);
    }
    done();
  });
  app.addHook('preValidation', (request, _reply, done) => {
    stop(request);
    done();
  });
  app.addHook('onResponse', (request, _reply, done) => {
    stop(request);
    done();
  });
  app.addHook('onRoute', (route) => {
    if (route.config?.route?.caller.kind === 'device' && route.bodyLimit === undefined) {
      route.bodyLimit = limits.deviceBodyLimit;
    }
  });
}

/**
 * Node's 'clientError' (fastify's clientErrorHandler): a request head too large (431), a request not
 * received in time (408) or one that does not parse (400), answered with a stable code before the
 * connection is closed.
 */
function answerClientError(this: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, body]: [number, ErrorBody] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, { code: 'SIMCRED_HEADERS_TOO_LARGE', message: 'request headers too large' }]
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, { code: 'SIMCRED_REQUEST_TIMEOUT', message: 'request not received in time' }]
        : [400, { code: 'SIMCRED_BAD_REQUEST', message: 'the request does not parse as HTTP' }];
  this.log.debug({ code: body.code, reason: err.code }, 'client error');
  writeRawError(socket, status, body);
}

/** An error answer written on the socket itself (no request object to answer through), then closed. */
function writeRawError(socket: Socket, status: number, body: ErrorBody): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const text = JSON.stringify(body);
  // end(), not destroy(): the answer is flushed before the connection closes.
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(text)}\r\n` +
      `Content-Type: application/json\r\nConnection: close\r\n\r\n${text}`,
  );
}

/**
 * The request id in the async context of the request's hooks and handler (so log lines and peer
 * calls carry it), echoed in the response; each answered request counted and timed, and logged at
 * debug level (an access log that costs nothing at the default level).
 */
function observeRequests(app: FastifyInstance, telemetry: RequestObserver | undefined): void {
  // Entered twice: the body is read in the connection's own async context, so the handler's hooks
  // enter it again once the body is parsed.
  const enter = (request: FastifyRequest, _reply: FastifyReply, done: () => void) => {
    enterRequestId(request.id);
    done();
  };
  app.addHook('onRequest', (request, reply, done) => {
    reply.header(REQUEST_ID_HEADER, request.id);
    enter(request, reply, done);
  });
  app.addHook('preHandler', enter);
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.config?.route?.id ?? 'unmatched';
    const seconds = reply.elapsedTime / 1000;
    telemetry?.observeRequest(route, request.method, reply.statusCode, seconds);
    if ((request.log as Logger).isLevelEnabled('debug')) {
      request.log.debug(
        { reqId: request.id, route, method: request.method, status: reply.statusCode, ms: reply.elapsedTime },
        'request answered',
      );
    }
    done();
  });
}

/** Maps any thrown error to the error contract. */
export function toSimcredError(err: unknown): SimcredError {
  if (isSimcredError(err)) return err;
  const e = err as Partial<FastifyError> & { validation?: unknown };
  if (e.validation) return new SimcredError('SIMCRED_BAD_REQUEST', e.message ?? 'invalid request');
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new SimcredError('SIMCRED_BODY_TOO_LARGE', 'request body too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new SimcredError('SIMCRED_UNSUPPORTED_MEDIA_TYPE', 'unsupported content type');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new SimcredError('SIMCRED_BAD_REQUEST', e.message ?? 'invalid body');
  }
  if (e instanceof SyntaxError || e.statusCode === 400) {
    return new SimcredError('SIMCRED_BAD_REQUEST', 'body is not valid JSON');
  }
  if (isDatabaseOutage(err)) {
    return new SimcredError('SIMCRED_DEPENDENCY_UNAVAILABLE', 'the database is unavailable', {
      retryAfter: 2,
      cause: err,
    });
  }
  if (e.statusCode === 404) return new SimcredError('SIMCRED_NOT_FOUND', 'not found');
  if (e.statusCode === 405) return new SimcredError('SIMCRED_METHOD_NOT_ALLOWED', 'method not allowed');
  return new SimcredError('SIMCRED_INTERNAL', 'internal error', { cause: err });
}

function sendError(
  request: FastifyRequest,
  reply: FastifyReply,
  err: unknown,
  onUndeclared?: (route: string, code: ErrorCode) => void,
): FastifyReply {
  const error = toSimcredError(err);
  const route = request.routeOptions.config?.route;
  if (route && !declares(route, error.code)) {
    request.log.error({ reqId: request.id, route: route.id, code: error.code }, 'undeclared error code');
    onUndeclared?.(route.id, error.code);
  }
  if (error.status >= 500 && error.code === 'SIMCRED_INTERNAL') {
    request.log.error(
      { reqId: request.id, err: error.cause ?? err, url: request.routeOptions.url },
      'request failed',
    );
  } else if (error.status >= 500) {
    request.log.warn({ reqId: request.id, code: error.code, url: request.routeOptions.url }, error.message);
  }
  if (error.status === 503 || error.retryAfter !== undefined)
    reply.header('retry-after', String(error.retryAfter ?? 1));
  const body: ErrorBody = {
    code: error.code,
    // Only errors below 500 (and declared dependency outages) show their detail.
    message: error.code === 'SIMCRED_INTERNAL' ? ERROR_CODES.SIMCRED_INTERNAL.meaning : error.message,
  };
  return reply.code(error.status).type('application/json').send(body);
}

/**
 * Starts listening and returns the base URL (port 0 picks a free port). A port in use or an address
 * this machine cannot listen on is the operator's to fix, so it gets its own code, not SIMCRED_INTERNAL.
 */
export async function listen(app: FastifyInstance, options: { host: string; port: number }): Promise<string> {
  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (err) {
    throw listenError(err, options.host, options.port);
  }
  const address = app.server.address() as AddressInfo;
  const scheme = app.initialConfig.https ? 'https' : 'http';
  return `${scheme}://${options.host}:${address.port}`;
}

/** The errors of listen(2) and of resolving the host, as the operator can act on them. */
const ADDRESS_UNAVAILABLE: Record<string, string> = {
  EADDRNOTAVAIL: 'the address is not one of this machine',
  ENOTFOUND: 'the host does not resolve',
  EAI_AGAIN: 'the host does not resolve (temporary DNS failure)',
  EAI_NONAME: 'the host does not resolve',
  EAI_FAIL: 'the host does not resolve',
  EACCES: 'the port needs privileges',
  EPERM: 'the port needs privileges',
};

/** Maps an error of listening on host:port to SIMCRED_ADDRESS_IN_USE / _UNAVAILABLE (others unchanged). */
export function listenError(err: unknown, host: string, port: number): unknown {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'EADDRINUSE') {
    return new SimcredError(
      'SIMCRED_ADDRESS_IN_USE',
      `cannot listen on ${host}:${port}: another process listens there`,
      { cause: err },
    );
  }
  const reason = code === undefined ? undefined : ADDRESS_UNAVAILABLE[code];
  if (reason !== undefined) {
    return new SimcredError('SIMCRED_ADDRESS_UNAVAILABLE', `cannot listen on ${host}:${port}: ${reason}`, {
      cause: err,
    });
  }
  return err;
}
