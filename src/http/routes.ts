import { X509Certificate } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import * as x509 from '../crypto/x509.js';
import { SimcredError } from '../errors/index.js';
import type { Role, RouteSpec } from '../protocol/route.js';

/**
 * Who called: a device (no client certificate needed) or an authenticated peer server. A peer's
 * `subject` is its certificate's CN (simcred-<role>: every instance of a role has it); its `owner`
 * tells one server from another: the certificate's whole subject DN and the key of the CA that issued
 * it. Instances sharing a certificate, or a certificate renewed under the same name by the same CA,
 * are one owner; a server with another name, or under another CA, is another.
 */
export type CallerIdentity =
  { kind: 'device' } | { kind: 'peer'; role: Role; subject: string; owner: string };

export interface RouteInput<S extends RouteSpec> {
  body: z.infer<NonNullable<S['body']>>;
  params: z.infer<NonNullable<S['params']>>;
  query: z.infer<NonNullable<S['query']>>;
  caller: CallerIdentity;
  request: FastifyRequest;
}

type Handler<S extends RouteSpec> = (input: RouteInput<S>) => Promise<z.infer<S['response']>>;

/**
 * Mounts one declared route: checks the caller (mutual TLS for peer routes), validates params, query
 * and body with the route's own schemas, then calls the processor-level handler.
 *
 * @example
 *   mountRoute(app, protocol.hss.issueCredentials, async ({ body }) => processor.issue(body));
 */
export function mountRoute<S extends RouteSpec>(app: FastifyInstance, spec: S, handler: Handler<S>): void {
  app.route({
    method: spec.method,
    url: spec.path,
    // The error handler checks every answered code against the codes this route declares.
    config: { route: spec },
    handler: async (request) => {
      const caller = identifyCaller(request, spec);
      return handler({ ...parseInput(spec, request), caller, request } as RouteInput<S>);
    },
  });
}

/**
 * A request's path parameters, query and body, each validated with the route's own schema (what is
 * not declared is undefined). Called once the caller is known: an unknown caller's input is not read.
 */
export function parseInput(
  spec: RouteSpec,
  request: FastifyRequest,
): { params: unknown; query: unknown; body: unknown } {
  return {
    params: spec.params ? parse(spec.params, request.params, 'path') : undefined,
    query: spec.query ? parse(spec.query, request.query ?? {}, 'query') : undefined,
    body: spec.body ? parse(spec.body, request.body ?? {}, 'body') : undefined,
  };
}

/** Parses with a route schema; the first few issues become one SIMCRED_BAD_REQUEST message. */
export function parse<T extends z.ZodType>(schema: T, value: unknown, where: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues
    .slice(0, 3)
    .map((i) => `${[where, ...i.path].join('.')}: ${i.message}`)
    .join('; ');
  throw new SimcredError('SIMCRED_BAD_REQUEST', issues);
}

/**
 * Peer routes need a TLS client certificate chaining to the operator root (checked by the TLS layer,
 * `authorized`) whose CN names an allowed role: simcred-<role>.
 */
export function identifyCaller(request: FastifyRequest, spec: RouteSpec): CallerIdentity {
  // Device and public routes take no client certificate.
  if (spec.caller.kind !== 'peer') return { kind: 'device' };
  const socket = request.raw.socket as Partial<TLSSocket>;
  const peer = socket.authorized ? peerNames(socket as TLSSocket) : undefined;
  const commonName = peer?.commonName;
  if (peer === undefined || commonName === undefined) {
    throw new SimcredError('SIMCRED_UNAUTHENTICATED_PEER', `${spec.id} needs a valid client certificate`);
  }
  const role = commonName.replace(/^simcred-/, '') as Role;
  if (!spec.caller.roles.includes(role)) {
    throw new SimcredError('SIMCRED_FORBIDDEN_PEER', `${commonName || 'this peer'} may not call ${spec.id}`);
  }
  return { kind: 'peer', role, subject: commonName, owner: peer.owner };
}

/*
 * A peer's certificate is fixed for the life of its TLS connection, and getPeerCertificate() builds a
 * fresh object from it on every call; servers keep connections alive for thousands of requests, so
 * the names are read once per socket.
 */
const peerNamesOf = new WeakMap<TLSSocket, { commonName: string | undefined; owner: string } | undefined>();

function peerNames(socket: TLSSocket): { commonName: string | undefined; owner: string } | undefined {
  if (peerNamesOf.has(socket)) return peerNamesOf.get(socket);
  const certificate =
    typeof socket.getPeerCertificate === 'function'
      ? (socket.getPeerCertificate() as PeerCertificate | undefined)
      : undefined;
  const names =
    certificate && certificate.raw
      ? { commonName: String(certificate.subject?.CN ?? ''), owner: ownerOf(certificate) }
      : undefined;
  peerNamesOf.set(socket, names);
  return names;
}

/**
 * `<subject DN>; issuer key <the certificate's Authority Key Identifier, hex>` (the issuer DN where a
 * certificate has no AKI). Read from the leaf itself: a resumed TLS session keeps the peer's leaf but
 * not the chain it was verified with, so the issuing certificate is not always at hand.
 */
function ownerOf(certificate: PeerCertificate): string {
  const leaf = new x509.X509Certificate(certificate.raw);
  const keyId = leaf.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId;
  return `${new X509Certificate(certificate.raw).subject.split('\n').join(', ')}; issuer key ${keyId ?? leaf.issuer}`;
}
