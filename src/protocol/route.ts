import type { z } from 'zod';
import type { ErrorCode } from '../errors/index.js';

/** The roles that serve simcred interfaces. */
export type Role = 'credentialing' | 'registration' | 'hss' | 'provisioning' | 'phlr' | 'ocsp' | 'portal';

/**
 * Who may call a route: any device (no client certificate; the device proves itself in the body),
 * a server of one of the listed roles, authenticated by its TLS client certificate, a signed-in
 * portal account of one of the listed kinds (session cookie; CSRF token on state-changing requests),
 * or anyone (public: health, the OpenAPI document, OCSP).
 */
export type Caller =
  | { kind: 'device' }
  | { kind: 'peer'; roles: Role[] }
  | { kind: 'public' }
  | { kind: 'account'; accounts: AccountKind[] };

/** Portal accounts: owners sign contracts, operators watch every contract (a browser session cookie). */
export type AccountKind = 'owner' | 'operator';

/**
 * One endpoint, declared once: the server mounts it (validation, caller check) and the peer's
 * typed client calls it with the same schemas. docs/protocol.md is generated from these.
 *
 * @example
 *   export const openSession = defineRoute({ id: 'credentialing.openSession', role: 'credentialing',
 *     method: 'POST', path: '/v1/sessions', caller: DEVICE, summary: '…', body: OpenSessionRequest,
 *     response: OpenSessionResponse, errors: ['SIMCRED_REGISTRATION_UNKNOWN'] });
 */
export interface RouteSpec<
  Body extends z.ZodType = z.ZodType,
  Response extends z.ZodType = z.ZodType,
  Params extends z.ZodType = z.ZodType,
  Query extends z.ZodType = z.ZodType,
> {
  id: string;
  role: Role;
  /** Step numbers of DESIGN §2 this route implements, for the reader. */
  steps: string;
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  caller: Caller;
  summary: string;
  params?: Params;
  /**
   * The query string's parameters. They arrive as strings: numbers are string patterns
   * transformed to numbers, so the documents show exactly what a URL may carry.
   */
  query?: Query;
  /**
   * json (default): one object. ndjson: a stream of `body` objects, one per line; the server answers
   * with NDJSON `progress` lines and `response` as the last line (batches of millions never sit in
   * memory). binary: opaque bodies of the `media` types (OCSP's DER), not JSON.
   */
  bodyFormat?: 'json' | 'ndjson' | 'binary';
  body?: Body;
  response: Response;
  /** ndjson routes: the lines streamed before the last one. */
  progress?: z.ZodType;
  /** binary routes: the media types of the request body (if any) and of the answer. */
  media?: { request?: string; response: string };
  /**
   * false when no database outage can reach the HTTP answer (the route reads none, or reports an
   * outage inside its body, as OCSP's tryLater); otherwise SIMCRED_DEPENDENCY_UNAVAILABLE is one of
   * its codes.
   */
  readsDatabase?: boolean;
  /**
   * true on AKA routes that hand out a new challenge (challenge, resync): each advances the
   * subscriber's SQN and replaces its pending challenge, so they share a per-subscriber throttle
   * (SIMCRED_AKA_THROTTLED; docs/abuse-limits.md).
   */
  issuesAkaChallenge?: boolean;
  /**
   * The error codes of this route's own work. The generic layer's codes follow from the route's shape
   * and are added by {@link routeErrors}; that union is what the docs list and the server enforces.
   */
  errors: ErrorCode[];
}

export const DEVICE: Caller = { kind: 'device' };
export const PUBLIC: Caller = { kind: 'public' };
export const peer = (...roles: Role[]): Caller => ({ kind: 'peer', roles });
export const ACCOUNT = (...accounts: AccountKind[]): Caller => ({ kind: 'account', accounts });

export function defineRoute<
  B extends z.ZodType,
  R extends z.ZodType,
  P extends z.ZodType,
  Q extends z.ZodType = z.ZodType,
>(spec: RouteSpec<B, R, P, Q>): RouteSpec<B, R, P, Q> {
  return spec;
}

export type BodyOf<S> = S extends RouteSpec<infer B, z.ZodType, z.ZodType> ? z.infer<B> : never;
export type ResponseOf<S> = S extends RouteSpec<z.ZodType, infer R, z.ZodType> ? z.infer<R> : never;
export type ParamsOf<S> = S extends RouteSpec<z.ZodType, z.ZodType, infer P> ? z.infer<P> : never;
export type QueryOf<S> = S extends RouteSpec<z.ZodType, z.ZodType, z.ZodType, infer Q> ? z.infer<Q> : never;

/**
 * Every code a route can answer: its own `errors`, and what the shared HTTP layer adds given its
 * shape — a schema, query or body parse (SIMCRED_BAD_REQUEST), a POST body's size and type
 * (SIMCRED_BODY_TOO_LARGE, SIMCRED_UNSUPPORTED_MEDIA_TYPE), the peer check
 * (SIMCRED_UNAUTHENTICATED_PEER, SIMCRED_FORBIDDEN_PEER), a database outage
 * (SIMCRED_DEPENDENCY_UNAVAILABLE), a device route's abuse limits (SIMCRED_ADDRESS_RATE_LIMITED, …)
 * and a bug (SIMCRED_INTERNAL). docs/protocol.md and the OpenAPI
 * documents list this set; the server logs any code it answers outside it as 'undeclared error code'.
 *
 * @example
 *   routeErrors(protocol.hss.issueCredentials).includes('SIMCRED_FORBIDDEN_PEER'); // true
 */
export function routeErrors(spec: RouteSpec): ErrorCode[] {
  const codes = new Set<ErrorCode>(spec.errors);
  if (spec.method === 'POST' || spec.params || spec.query || spec.body) codes.add('SIMCRED_BAD_REQUEST');
  if (spec.method === 'POST') {
    codes.add('SIMCRED_BODY_TOO_LARGE');
    codes.add('SIMCRED_UNSUPPORTED_MEDIA_TYPE');
  }
  if (spec.caller.kind === 'peer') {
    codes.add('SIMCRED_UNAUTHENTICATED_PEER');
    codes.add('SIMCRED_FORBIDDEN_PEER');
  }
  if (spec.caller.kind === 'account') {
    codes.add('SIMCRED_UNAUTHENTICATED');
    if (spec.caller.accounts.length === 1) codes.add('SIMCRED_FORBIDDEN_ACCOUNT');
    if (spec.method !== 'GET') codes.add('SIMCRED_CSRF_INVALID');
  }
  if (spec.readsDatabase !== false) codes.add('SIMCRED_DEPENDENCY_UNAVAILABLE');
  // The abuse limits on device routes (src/http/rate-limit.ts): per client address on every one, per
  // identity where the request names a DSIM_ID, PIMSI, IMSI or session (not the XML OMA DM route).
  if (spec.caller.kind === 'device') {
    codes.add('SIMCRED_ADDRESS_RATE_LIMITED');
    if (spec.bodyFormat !== 'binary') codes.add('SIMCRED_IDENTITY_RATE_LIMITED');
    if (spec.issuesAkaChallenge) codes.add('SIMCRED_AKA_THROTTLED');
  }
  codes.add('SIMCRED_INTERNAL');
  return [...codes];
}
