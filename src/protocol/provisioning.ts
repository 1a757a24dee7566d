import { z } from 'zod';
import { DEVICE, defineRoute, peer } from './route.js';
import { base64url, credentialPackage, dsimId, httpsUrl, timestamp } from './fields.js';
import { SYNCML_DM_XML } from './omadm/syncml.js';

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

export const omadm = defineRoute({
  id: 'provisioning.omadm',
  role: 'provisioning',
  steps: '7, 8, 9, 10',
  method: 'POST',
  path: '/v1/omadm',
  caller: DEVICE,
  summary:
    "OMA DM 1.2 delivery (SyncML DM, XML representation; docs/omadm.md). Package 1 (Alert 1201 or 1200, Replace of ./DevInfo, Cred syncml:auth-basic of DSIM_ID:ticket) is answered with Package 2: Status for each command and a Replace of ./SimCred/Package with the still-encrypted package, and a RespURI (this path with ?session=) for Package 3. Package 3 (the device's Status; 200 for the Replace marks the referral delivered) is answered with Package 4 (Status, Final). Credential and command faults inside a session are SyncML Status codes with HTTP 200 (401/407 with a Chal, 406), the SIMCRED_ code in the Status item; a message that is no SyncML DM 1.2, too large, or of an unknown session is an HTTP error.",
  bodyFormat: 'binary',
  media: { request: SYNCML_DM_XML, response: SYNCML_DM_XML },
  query: z
    .object({
      session: z
        .string()
        .regex(/^[A-Za-z0-9_-]{43}$/)
        .optional()
        .describe("the open session's token, from Package 2's RespURI"),
    })
    .strict(),
  response: z.string().describe('a SyncML DM 1.2 message'),
  errors: [
    'SIMCRED_DM_MALFORMED',
    'SIMCRED_DM_MESSAGE_TOO_LARGE',
    'SIMCRED_DM_SESSION_UNKNOWN',
    'SIMCRED_XML_DTD_FORBIDDEN',
    'SIMCRED_REGISTRATION_USED',
    'SIMCRED_REGISTRATION_REVOKED',
    'SIMCRED_UNAUTHENTICATED_PEER',
    'SIMCRED_FORBIDDEN_PEER',
  ],
});

export const omadmNotify = defineRoute({
  id: 'provisioning.omadmNotify',
  role: 'provisioning',
  steps: '6, 7',
  method: 'POST',
  path: '/v1/omadm/notifications',
  caller: peer('credentialing'),
  summary:
    'The operator side asks the provisioning server to wake a referred device with an OMA DM Package 0 (OMA-TS-DM_Notification-V1_2; docs/omadm.md) sent to its SMS address, here a loopback UDP stand-in for SMS. The device checks the digest and starts a session with Alert 1200 and the returned session id.',
  body: z
    .object({
      dsimId,
      smsAddress: z
        .string()
        .regex(/^udp:\/\/(127\.0\.0\.1|localhost|\[::1\]):[0-9]{1,5}$/)
        .describe('the SMS stand-in address: udp://127.0.0.1:<port>'),
    })
    .strict(),
  response: z.object({ sessionId: z.string().regex(/^[0-9A-F]{1,4}$/) }).strict(),
  errors: ['SIMCRED_NOT_FOUND'],
});

export const provisioningRoutes = [referral, deliver, omadm, omadmNotify];
