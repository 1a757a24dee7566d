import { z } from 'zod';
import { PUBLIC, defineRoute, type Role } from './route.js';

/** The roles that run a server (every role: the portal serves its browser front end and API). */
export type ServingRole = Role;
export const SERVING_ROLES: readonly ServingRole[] = [
  'credentialing',
  'registration',
  'hss',
  'provisioning',
  'phlr',
  'ocsp',
  'portal',
];

export const HealthResponse = z
  .object({
    role: z.enum(SERVING_ROLES as [ServingRole, ...ServingRole[]]),
    ok: z.literal(true),
    requestsServed: z
      .number()
      .int()
      .min(0)
      .describe('requests this process answered since it started (health checks included)'),
  })
  .strict();

/** The parts of an OpenAPI 3.1 document a client relies on; the rest is described by OpenAPI itself. */
export const OpenApiDocument = z
  .looseObject({
    openapi: z.string().regex(/^3\.1\.\d+$/),
    info: z.looseObject({ title: z.string(), version: z.string() }),
    paths: z.record(z.string(), z.record(z.string(), z.unknown())),
  })
  .describe('OpenAPI 3.1 document (https://spec.openapis.org/oas/v3.1.0)');

/** GET /health, served by every role (the OCSP responder included) for load balancers and the bench. */
export function healthRoute(role: ServingRole) {
  return defineRoute({
    id: `${role}.health`,
    role,
    steps: '',
    method: 'GET',
    path: '/health',
    caller: PUBLIC,
    summary:
      'Liveness: the role answers while it accepts requests, with the number of requests it has answered (the bench counts requests per onboarding with it).',
    response: HealthResponse,
    readsDatabase: false,
    errors: [],
  });
}

/** GET /openapi.json: this role's routes as OpenAPI 3.1, generated from the same route specs. */
export function openApiRoute(role: ServingRole) {
  return defineRoute({
    id: `${role}.openapi`,
    role,
    steps: '',
    method: 'GET',
    path: '/openapi.json',
    caller: PUBLIC,
    summary:
      "This role's interface as an OpenAPI 3.1 document, generated from src/protocol (the same as docs/openapi/<role>.json, with this server's own URL).",
    response: OpenApiDocument,
    readsDatabase: false,
    errors: [],
  });
}

/** The routes every role serves besides its own. */
export function serviceRoutes(role: ServingRole) {
  return [healthRoute(role), openApiRoute(role)];
}
