import { z } from 'zod';
import { DEVICE, defineRoute, peer } from './route.js';
import { base64url, credentialPackage, dsimId, httpsUrl, timestamp } from './fields.js';

/** Provisioning server (role 28/30): referrals from the credentialing server (step 6), delivery to devices (7, 10). */

export const referral = defineRoute({
  id: 'provisioning.referral',
  role: 'provisioning',
  steps: '6',
  method: 'POST',
  path: '/v1/referrals',
  caller: peer('credentialing'),
  summary:
    'The credentialing server refers a device: the digest of its one-time ticket and where to fetch its package.',
  body: z
    .object({
      dsimId,
      ticketDigest: base64url(32, 32, 'SHA-256 of the ticket'),
      credentialingUrl: httpsUrl,
      expiresAt: timestamp,
    })
    .strict(),
  response: z.object({ accepted: z.literal(true) }).strict(),
  errors: ['SIMCRED_BAD_REQUEST', 'SIMCRED_UNAUTHENTICATED_PEER', 'SIMCRED_FORBIDDEN_PEER'],
});

export const deliver = defineRoute({
  id: 'provisioning.deliver',
  role: 'provisioning',
  steps: '7, 8, 9, 10',
  method: 'POST',
  path: '/v1/deliveries',
  caller: DEVICE,
  summary:
    'The device presents its ticket; the server fetches the still-encrypted package and hands it over.',
  body: z.object({ dsimId, ticket: base64url(32, 32, 'one-time ticket from step 6') }).strict(),
  response: z.object({ package: credentialPackage }).strict(),
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_TICKET_INVALID',
    'SIMCRED_REGISTRATION_USED',
    'SIMCRED_DEPENDENCY_UNAVAILABLE',
    // The credentialing server's refusals of the fetch pass through: revoked after the referral (410),
    // and, when this server's own certificate is not accepted there, its peer-check codes.
    'SIMCRED_REGISTRATION_REVOKED',
    'SIMCRED_UNAUTHENTICATED_PEER',
    'SIMCRED_FORBIDDEN_PEER',
  ],
});

export const provisioningRoutes = [referral, deliver];
