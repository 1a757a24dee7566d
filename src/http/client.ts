import { createSecureContext } from 'node:tls';
import { Agent, request, type Dispatcher } from 'undici';
import type { z } from 'zod';
import { ERROR_CODES, SimcredError, type ErrorCode } from '../errors/index.js';
import type { RouteSpec } from '../protocol/route.js';
import { REQUEST_ID_HEADER, currentRequestId } from '../log/context.js';

/** What a client presents and trusts: the operator root(s), and for server-to-server calls its certificate. */
export interface ClientTls {
  ca: string[];
  cert?: string;
  key?: string;
}

export interface PeerClientOptions {
  tls?: ClientTls;
  /** Per-request timeout (default 10 s). */
  timeoutMs?: number;
  /** Concurrent connections per origin (default 32). */
  connections?: number;
  /** The local address connections are made from (a simulated fleet behind one address). */
  localAddress?: string;
}

/**
 * The typed client of any simcred interface: calls a declared route on a base URL, validates the
 * answer with the route's response schema, and turns error bodies back into SimcredErrors.
 * Keep one per process and role: it holds keep-alive connections.
 *
 * @example
 *   const hss = new PeerClient({ tls: { ca: [operatorRoot], cert, key } });
 *   const { package: pkg } = await hss.call(hssUrl, protocol.hss.issueCredentials, { body });
 */
export class PeerClient {
  private readonly dispatcher: Dispatcher;
  private readonly timeoutMs: number;

  constructor(options: PeerClientOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.dispatcher = new Agent({
      connections: options.connections ?? 32,
      keepAliveTimeout: 30_000,
      // One TLS context for every connection: given as ca/cert/key, each new connection would parse
      // the PEM and build its own.
      connect: options.tls
        ? {
            secureContext: createSecureContext({
              ca: options.tls.ca,
              cert: options.tls.cert,
              key: options.tls.key,
            }),
          }
        : {},
      // A client option (undici passes it to each connect), not a connect option.
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    });
  }

  async call<S extends RouteSpec>(
    baseUrl: string,
    spec: S,
    input: {
      params?: z.infer<NonNullable<S['params']>>;
      /** Query parameters, as the route's query schema reads them (numbers are sent as decimal strings). */
      query?: z.input<NonNullable<S['query']>> | Record<string, string | number | undefined>;
      body?: z.infer<NonNullable<S['body']>>;
      /** Aborts the request (a follower that stops while its long poll waits). */
      signal?: AbortSignal;
    } = {},
  ): Promise<z.infer<S['response']>> {
    const path = spec.path.replace(/:([A-Za-z]+)/g, (_, name: string) =>
      encodeURIComponent(String((input.params as Record<string, unknown> | undefined)?.[name] ?? '')),
    );
    const search = queryString(input.query as Record<string, unknown> | undefined);
    const body = input.body === undefined ? undefined : JSON.stringify(input.body);
    const send = () =>
      this.send(`${baseUrl}${path}${search}`, spec.method, body, 'application/json', input.signal);
    let answer: Awaited<ReturnType<typeof send>>;
    try {
      answer = await send();
    } catch (err) {
      // A kept-alive connection the peer closed meanwhile (it restarted) fails before any answer; every
      // server-to-server route is idempotent by design, so it is sent once more on a new connection.
      // Device routes are not resent: a replayed step 3 would be refused as one.
      if (spec.caller.kind !== 'peer' || !closedBeforeAnswer(err)) throw err;
      answer = await send();
    }
    return this.decode(spec, answer.statusCode, answer.headers, answer.text);
  }

  /** Low-level request for non-JSON bodies; the whole answer as text. */
  async send(
    url: string,
    method: string,
    body: string | Buffer | AsyncIterable<Uint8Array> | undefined,
    contentType: string,
    signal?: AbortSignal,
    headers: Record<string, string> = {},
  ): Promise<{ statusCode: number; headers: Record<string, string | string[] | undefined>; text: string }> {
    const response = await this.open(url, method, body, contentType, signal, headers);
    try {
      return { statusCode: response.statusCode, headers: response.headers, text: await response.body.text() };
    } catch (err) {
      throw unreachable(url, err);
    }
  }

  /** Low-level request whose answer is read as a stream (NDJSON progress). */
  async open(
    url: string,
    method: string,
    body: string | Buffer | AsyncIterable<Uint8Array> | undefined,
    contentType: string,
    signal?: AbortSignal,
    /** Further request headers (a portal session's cookie and CSRF token). */
    headers: Record<string, string> = {},
  ): Promise<Dispatcher.ResponseData> {
    // The request (or background job) this call is made for: the peer logs under the same id.
    const requestId = currentRequestId();
    const sent = requestId === undefined ? headers : { [REQUEST_ID_HEADER]: requestId, ...headers };
    try {
      return await request(url, {
        method: method as Dispatcher.HttpMethod,
        dispatcher: this.dispatcher,
        ...(signal ? { signal } : {}),
        headers: body === undefined ? sent : { ...sent, 'content-type': contentType },
        body: body as Dispatcher.DispatchOptions['body'],
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
    } catch (err) {
      throw unreachable(url, err);
    }
  }

  decode<S extends RouteSpec>(
    spec: S,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    text: string,
  ): z.infer<S['response']> {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new SimcredError(
        'SIMCRED_DEPENDENCY_UNAVAILABLE',
        `${spec.id}: answer is not JSON (HTTP ${statusCode})`,
        {
          retryAfter: 2,
        },
      );
    }
    if (statusCode >= 400) throw errorFromBody(spec, statusCode, headers, json);
    const parsed = spec.response.safeParse(json);
    if (!parsed.success) {
      throw new SimcredError(
        'SIMCRED_DEPENDENCY_UNAVAILABLE',
        `${spec.id}: answer does not match its schema`,
        {
          retryAfter: 2,
        },
      );
    }
    return parsed.data as z.infer<S['response']>;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

/** `?a=1&b=2` from the defined values (empty when there are none). */
function queryString(query: Record<string, unknown> | undefined): string {
  if (!query) return '';
  const pairs = Object.entries(query).filter(([, v]) => v !== undefined);
  if (pairs.length === 0) return '';
  return `?${new URLSearchParams(pairs.map(([k, v]): [string, string] => [k, String(v)])).toString()}`;
}

/** The connection ended before the answer began: undici's "other side closed", or a reset. */
function closedBeforeAnswer(err: unknown): boolean {
  const cause = (err as { cause?: { code?: string } }).cause;
  return cause?.code === 'UND_ERR_SOCKET' || cause?.code === 'ECONNRESET';
}

function unreachable(url: string, cause: unknown): SimcredError {
  return new SimcredError('SIMCRED_DEPENDENCY_UNAVAILABLE', `${new URL(url).origin} unreachable`, {
    retryAfter: 2,
    cause,
  });
}

/**
 * Rebuilds the SimcredError a peer answered with. Server-side failures become a retryable 503, except
 * a 5xx code the route declares (SIMCRED_IMSI_EXHAUSTED from the HSS): that is the peer's answer, not
 * its failure, and retrying will not change it.
 */
function errorFromBody(
  spec: RouteSpec,
  statusCode: number,
  headers: Record<string, string | string[] | undefined>,
  json: unknown,
): SimcredError {
  const body = (json ?? {}) as { code?: string; message?: string };
  const retryAfter = Number(headers['retry-after'] ?? 2) || 2;
  const known = body.code !== undefined && body.code in ERROR_CODES;
  const declared = known && spec.errors.includes(body.code as ErrorCode);
  if (!known || (statusCode >= 500 && !declared)) {
    return new SimcredError('SIMCRED_DEPENDENCY_UNAVAILABLE', `${spec.id} failed (HTTP ${statusCode})`, {
      retryAfter,
    });
  }
  return new SimcredError(body.code as ErrorCode, body.message ?? String(body.code), { retryAfter });
}
