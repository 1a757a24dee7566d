export * from './route.js';
export * as fields from './fields.js';
export * as registration from './registration.js';
export * as credentialing from './credentialing.js';
export * as hss from './hss.js';
export * as provisioning from './provisioning.js';
export * as phlr from './phlr.js';
export * as ocsp from './ocsp.js';
export * as portal from './portal.js';
export * as orders from './orders.js';
export * from './service.js';
import { registrationRoutes } from './registration.js';
import { credentialingRoutes } from './credentialing.js';
import { hssRoutes } from './hss.js';
import { provisioningRoutes } from './provisioning.js';
import { phlrRoutes } from './phlr.js';
import { ocspRoutes } from './ocsp.js';
import { portalRoutes } from './portal.js';
import { orderRoutes } from './orders.js';
import type { RouteSpec } from './route.js';
import { serviceRoutes, type ServingRole } from './service.js';

/** Every JSON route of every interface (docs/protocol.md is generated from this list). */
export const ALL_ROUTES = [
  ...credentialingRoutes,
  ...orderRoutes,
  ...registrationRoutes,
  ...hssRoutes,
  ...provisioningRoutes,
  ...phlrRoutes,
];

/** The OCSP responder's routes (binary DER bodies). */
export const OCSP_ROUTES = ocspRoutes;

/**
 * The contract portal's browser API (session cookies, not mutual TLS): kept out of ALL_ROUTES, which
 * is the inter-role protocol the route fuzzer walks.
 */
export const PORTAL_ROUTES: readonly RouteSpec[] = portalRoutes;

/**
 * Everything one role serves: its interface, and GET /health and GET /openapi.json. Its OpenAPI
 * document describes exactly these.
 *
 * @example
 *   routesOf('hss').map((r) => `${r.method} ${r.path}`);
 */
export function routesOf(role: ServingRole): RouteSpec[] {
  const own: readonly RouteSpec[] =
    role === 'ocsp' ? OCSP_ROUTES : role === 'portal' ? PORTAL_ROUTES : ALL_ROUTES;
  return [...own.filter((r) => r.role === role), ...serviceRoutes(role)];
}
