import { z } from 'zod';
import { DEVICE, defineRoute, peer } from './route.js';
import {
  base64url,
  certificateChain,
  compactJws,
  dsimId,
  httpsUrl,
  imsi,
  nonce32,
  signature,
  signatureAlg,
  timestamp,
} from './fields.js';

/** Credentialing server (role 10): operator API (0b), device API (3, 4, 6, 12), provisioning API (8, 9). */

// --- Operator API -----------------------------------------------------------------------------

export const DeviceToRegister = z
  .object({
    dsimId,
    registrationServer: httpsUrl.describe('the registration server named in the factory image'),
  })
  .strict();

export const RegistrationSummary = z
  .object({
    registered: z.number().int(),
    unchanged: z.number().int(),
    rejected: z.array(z.object({ line: z.number().int(), code: z.string(), message: z.string() }).strict()),
    elapsedMs: z.number(),
  })
  .strict();

export const registerDevices = defineRoute({
  id: 'credentialing.registerDevices',
  role: 'credentialing',
  steps: '0a, 0b',
  method: 'POST',
  path: '/v1/operator/registrations',
  caller: peer('portal'),
  summary:
    'Register a batch of devices, streamed as NDJSON (one device per line; any size). Each gets a fresh registration nonce and expiry, pushed to its registration server. Progress lines {"progress":n} stream back; the summary is the last line. Re-registering a live registration leaves it unchanged.',
  bodyFormat: 'ndjson',
  body: DeviceToRegister,
  response: RegistrationSummary,
  errors: ['SIMCRED_BAD_REQUEST', 'SIMCRED_DEPENDENCY_UNAVAILABLE', 'SIMCRED_UNAUTHENTICATED_PEER'],
});

export const RegistrationState = z.enum([
  'registered',
  'authenticating',
  'referred',
  'delivered',
  'completed',
  'revoked',
  'expired',
]);

export const deviceState = defineRoute({
  id: 'credentialing.deviceState',
  role: 'credentialing',
  steps: 'all',
  method: 'GET',
  path: '/v1/operator/devices/:dsimId',
  caller: peer('portal'),
  summary: "A device's registration state and its audit trail (every step is an audit event).",
  params: z.object({ dsimId }).strict(),
  response: z
    .object({
      dsimId,
      state: RegistrationState,
      registrationServer: httpsUrl,
      expiresAt: timestamp,
      provisioningServer: httpsUrl.nullable(),
      imsi: imsi.nullable(),
      audit: z.array(z.object({ at: timestamp, event: z.string(), detail: z.string().nullable() }).strict()),
    })
    .strict(),
  errors: ['SIMCRED_REGISTRATION_UNKNOWN', 'SIMCRED_UNAUTHENTICATED_PEER'],
});

export const revokeRegistration = defineRoute({
  id: 'credentialing.revokeRegistration',
  role: 'credentialing',
  steps: '0b–9',
  method: 'POST',
  path: '/v1/operator/devices/:dsimId/revoke',
  caller: peer('portal'),
  summary: 'Revoke a registration at any step before delivery; it is withdrawn from its registration server.',
  params: z.object({ dsimId }).strict(),
  body: z.object({ reason: z.string().max(200).optional() }).strict(),
  response: z.object({ dsimId, state: z.literal('revoked') }).strict(),
  errors: ['SIMCRED_REGISTRATION_UNKNOWN', 'SIMCRED_REGISTRATION_USED', 'SIMCRED_UNAUTHENTICATED_PEER'],
});

// --- Device API -------------------------------------------------------------------------------

export const openSession = defineRoute({
  id: 'credentialing.openSession',
  role: 'credentialing',
  steps: '3, 4',
  method: 'POST',
  path: '/v1/sessions',
  caller: DEVICE,
  summary:
    'The device presents DSIM_ID, a fresh device nonce and the registration-session nonce HMAC-SHA-256(registration nonce, "simcred/v1/session" ‖ DSIM_ID ‖ device nonce); on a match it gets a challenge.',
  body: z
    .object({
      dsimId,
      deviceNonce: base64url(16, 64, 'fresh device nonce'),
      sessionNonce: nonce32('registration-session nonce'),
    })
    .strict(),
  response: z
    .object({ sessionId: z.uuid(), challenge: nonce32('challenge to sign'), expiresAt: timestamp })
    .strict(),
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_REGISTRATION_UNKNOWN',
    'SIMCRED_REGISTRATION_EXPIRED',
    'SIMCRED_REGISTRATION_REVOKED',
    'SIMCRED_REGISTRATION_USED',
    'SIMCRED_SESSION_NONCE_INVALID',
    'SIMCRED_DEVICE_NONCE_REUSED',
    'SIMCRED_SESSION_IN_PROGRESS',
  ],
});

export const proveSession = defineRoute({
  id: 'credentialing.proveSession',
  role: 'credentialing',
  steps: '4, 5, 6',
  method: 'POST',
  path: '/v1/sessions/:sessionId/proof',
  caller: DEVICE,
  summary:
    'The device signs (challenge ‖ session nonce ‖ DSIM_ID) and sends its certificate chain. After the signature, chain, DSIM_ID binding and OCSP status check out, the HSS issues the package and the device is referred to a provisioning server with a one-time ticket.',
  params: z.object({ sessionId: z.uuid() }).strict(),
  body: z.object({ certificateChain, alg: signatureAlg, signature }).strict(),
  response: z
    .object({
      status: z.literal('credentials-ready'),
      provisioningUrl: httpsUrl,
      ticket: base64url(32, 32, 'one-time ticket for the provisioning server'),
      expiresAt: timestamp,
    })
    .strict(),
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_SESSION_UNKNOWN',
    'SIMCRED_REGISTRATION_EXPIRED',
    'SIMCRED_REGISTRATION_REVOKED',
    'SIMCRED_PROOF_INVALID',
    'SIMCRED_CERT_INVALID',
    'SIMCRED_CERT_UNTRUSTED',
    'SIMCRED_CERT_DSIM_MISMATCH',
    'SIMCRED_OCSP_REVOKED',
    'SIMCRED_OCSP_UNKNOWN',
    'SIMCRED_DEPENDENCY_UNAVAILABLE',
  ],
});

export const submitReceipt = defineRoute({
  id: 'credentialing.submitReceipt',
  role: 'credentialing',
  steps: '12',
  method: 'POST',
  path: '/v1/receipts',
  caller: DEVICE,
  summary:
    'The device confirms, with a JWS signed by its key, that it stored the credentials of this package.',
  body: z.object({ dsimId, receipt: compactJws }).strict(),
  response: z.object({ dsimId, state: z.literal('completed') }).strict(),
  errors: ['SIMCRED_BAD_REQUEST', 'SIMCRED_REGISTRATION_UNKNOWN', 'SIMCRED_RECEIPT_INVALID'],
});

// --- Provisioning-server API ------------------------------------------------------------------

export const fetchPackage = defineRoute({
  id: 'credentialing.fetchPackage',
  role: 'credentialing',
  steps: '8, 9',
  method: 'POST',
  path: '/v1/provisioning/packages',
  caller: peer('provisioning'),
  summary:
    'The referred provisioning server presents the device ticket and gets the still-encrypted package; the registration is now used.',
  body: z.object({ dsimId, ticket: base64url(32, 32, 'the ticket the device presented') }).strict(),
  response: z.object({ package: compactJws }).strict(),
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_TICKET_INVALID',
    'SIMCRED_REGISTRATION_USED',
    'SIMCRED_REGISTRATION_REVOKED',
    'SIMCRED_UNAUTHENTICATED_PEER',
    'SIMCRED_FORBIDDEN_PEER',
  ],
});

export const credentialingRoutes = [
  registerDevices,
  deviceState,
  revokeRegistration,
  openSession,
  proveSession,
  submitReceipt,
  fetchPackage,
];
