import type { z } from 'zod';
import type { ErrorCode } from '../errors/index.js';

/** The roles that serve simcred interfaces. */
export type Role = 'credentialing' | 'registration' | 'hss' | 'provisioning' | 'phlr' | 'ocsp' | 'portal';

/**
 * Who may call a route: any device (no client certificate; the device proves itself in the body),
 * or a server of one of the listed roles, authenticated by its TLS client certificate.
 */
export type Caller = { kind: 'device' } | { kind: 'peer'; roles: Role[] };

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
   * json (default): one object. ndjson: a stream of `body` objects, one per line; the server answers
   * with NDJSON progress lines and `response` as the last line (batches of millions never sit in memory).
   */
  bodyFormat?: 'json' | 'ndjson';
  body?: Body;
  response: Response;
  /** The error codes this route can answer with (besides the generic transport ones). */
  errors: ErrorCode[];
}

export const DEVICE: Caller = { kind: 'device' };
export const peer = (...roles: Role[]): Caller => ({ kind: 'peer', roles });

export function defineRoute<B extends z.ZodType, R extends z.ZodType, P extends z.ZodType>(
  spec: RouteSpec<B, R, P>,
): RouteSpec<B, R, P> {
  return spec;
}

export type BodyOf<S> = S extends RouteSpec<infer B, z.ZodType, z.ZodType> ? z.infer<B> : never;
export type ResponseOf<S> = S extends RouteSpec<z.ZodType, infer R, z.ZodType> ? z.infer<R> : never;
export type ParamsOf<S> = S extends RouteSpec<z.ZodType, z.ZodType, infer P> ? z.infer<P> : never;
