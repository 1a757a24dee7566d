export * from './route.js';
export * as fields from './fields.js';
export * as registration from './registration.js';
export * as credentialing from './credentialing.js';
export * as hss from './hss.js';
export * as provisioning from './provisioning.js';
export * as phlr from './phlr.js';
import { registrationRoutes } from './registration.js';
import { credentialingRoutes } from './credentialing.js';
import { hssRoutes } from './hss.js';
import { provisioningRoutes } from './provisioning.js';
import { phlrRoutes } from './phlr.js';

/** Every route of every interface (docs/protocol.md is generated from this list). */
export const ALL_ROUTES = [
  ...credentialingRoutes,
  ...registrationRoutes,
  ...hssRoutes,
  ...provisioningRoutes,
  ...phlrRoutes,
];
