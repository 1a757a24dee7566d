import { z } from 'zod';
import { DEVICE, defineRoute, peer } from './route.js';
import { dsimPattern } from './dsim-pattern.js';
import { RegistrationRecord } from './registration.js';
import {
  base64url,
  certificateChain,
  compactJws,
  credentialPackage,
  packageFormat,
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
    alsoAt: z
      .array(httpsUrl)
      .max(7)
      .optional()
      .describe(
        "further registration servers the device's factory image lists (it tries them in order): the record is pushed to each",
      ),
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

/** The lines streamed while a batch is read: devices read so far. */
export const RegistrationProgress = z.object({ progress: z.number().int() }).strict();

/** The last line: the summary, and the error that stopped the batch early (null when it ran to its end). */
export const RegistrationOutcome = z
  .object({
    ...RegistrationSummary.shape,
    error: z.object({ code: z.string(), message: z.string() }).strict().nullable(),
    orderId: z
      .string()
      .nullable()
      .describe('the order this batch became (null only when the batch stopped before it was created)'),
  })
  .strict();

/** Who may ask for an order's devices to be re-provisioned (each level allows the ones before it). */
export const ReprovisionPolicy = z.enum(['never', 'operator', 'device']);

/** The query of a registration batch: an optional label for the order it becomes. */
export const RegistrationQuery = z
  .object({
    reprovision: ReprovisionPolicy.optional().describe(
      "who may later ask for the new order's devices to be re-provisioned: never, operator (the default: `simcred operator reprovision`), or device (also the device itself after a factory reset); ignored with `order`",
    ),
    label: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .describe("the order's label, shown when orders are listed (a contract, a purchase order number)"),
    order: z
      .string()
      .regex(/^ord_[A-Za-z0-9_-]{22}$/)
      .optional()
      .describe(
        'add the batch to this existing order instead of a new one (not a cancelled one); `label` is then ignored',
      ),
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
    'Register a batch of devices, streamed as NDJSON (one device per line; any size). Each gets a fresh registration nonce and expiry, pushed to its registration server. Progress lines {"progress":n} stream back; the summary is the last line. Re-registering a live registration leaves it unchanged. The batch becomes an order (its id is in the summary; `label` names it); a device whose registration is written afresh joins it, a live one left unchanged stays in its own order.',
  bodyFormat: 'ndjson',
  body: DeviceToRegister,
  response: RegistrationOutcome,
  progress: RegistrationProgress,
  query: RegistrationQuery,
  // Rejected lines and a batch stopped early carry their codes inside the 200 stream.
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_DEPENDENCY_UNAVAILABLE',
    'SIMCRED_UNAUTHENTICATED_PEER',
    'SIMCRED_REGISTRATION_USED',
    'SIMCRED_SUBSCRIPTION_ENDED',
    'SIMCRED_DEVICE_TRANSFERRED',
    'SIMCRED_ORDER_UNKNOWN',
    'SIMCRED_ORDER_CANCELLED',
  ],
});

export const RegistrationState = z.enum([
  'registered',
  'authenticating',
  'referred',
  'delivered',
  'completed',
  'revoked',
  'expired',
  // The subscription's life after delivery (docs/architecture.md).
  'suspended',
  'deleted',
  // Operator change: handed over to another operator, then gone to it (final).
  'transferring',
  'transferred',
]);

/**
 * A device's state as the operator follows it (the portal's timeline): the registration states, with
 * `authenticated` for a device that passed step 4, `attached` once the HSS saw its first attach with
 * the downloaded credentials (step 12), and `failed` when a refusal ended its session (the audit
 * event's detail names the code). A failed device may start over and move on. After delivery the
 * operator's lifecycle decisions: `suspended`, `active` (resumed: it may attach again; the state
 * it was suspended from is not repeated), `revoked` (the subscriber released) and `deleted` (final).
 * `reprovisioned`: the device got a fresh registration to go through the flow again (its old
 * subscription lives on until the new one is in use); it moves on through the states above.
 * An operator change: `transferring` (handed over to another operator), `transferred` (final: the
 * device confirmed the new operator's credential; the subscription here is deleted).
 */
export const DeviceFeedState = z.enum([
  'registered',
  'authenticated',
  'referred',
  'delivered',
  'completed',
  'attached',
  'failed',
  'expired',
  'revoked',
  'suspended',
  'active',
  'deleted',
  'reprovisioned',
  'transferring',
  'transferred',
]);
export type DeviceFeedState = z.infer<typeof DeviceFeedState>;

/**
 * The one place that says which audit event moves a device to which state. Any other event
 * (session-opened, session-refused, withdrawn, subscriber-released, …) records something that
 * happened without changing the state: null.
 */
export const EVENT_STATES: Readonly<Record<string, DeviceFeedState>> = {
  registered: 'registered',
  authenticated: 'authenticated',
  referred: 'referred',
  delivered: 'delivered',
  completed: 'completed',
  attached: 'attached',
  failed: 'failed',
  expired: 'expired',
  revoked: 'revoked',
  suspended: 'suspended',
  resumed: 'active',
  deleted: 'deleted',
  reprovisioned: 'reprovisioned',
  'transfer-authorised': 'transferring',
  transferred: 'transferred',
};

/** The state an audit event moves its device to, or null (see EVENT_STATES). */
export function stateOfEvent(event: string): DeviceFeedState | null {
  return Object.hasOwn(EVENT_STATES, event) ? EVENT_STATES[event]! : null;
}

/** Query strings of the event feeds: decimal digits only, so `-1`, `1e3` or `0x10` are refused. */
const cursor = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,14})$/)
  .transform(Number)
  .default(0)
  .describe('answer events after this id (the `next` of the previous answer; 0 from the start)');
const feedLimit = z
  .string()
  .regex(/^([1-9][0-9]{0,2}|1000)$/)
  .transform(Number)
  .default(500)
  .describe('most events in one answer, 1 to 1000 (default 500)');
const waitSeconds = z
  .string()
  .regex(/^([0-9]|1[0-9]|2[0-5])$/)
  .transform(Number)
  .default(0)
  .describe(
    'with nothing new, wait up to this many seconds (0 to 25, default 0) for an event before answering (long poll)',
  );

/** The query of every event feed (this route's and the HSS's subscriberEvents). */
export const FeedQuery = z.object({ after: cursor, limit: feedLimit, waitSeconds }).strict();

/** Most events one feed answer holds, and the longest a long poll waits. */
export const MAX_FEED_LIMIT = 1000;
export const MAX_FEED_WAIT_SECONDS = 25;

export const DeviceEvent = z
  .object({
    id: z.number().int().positive().describe('the cursor: ids grow in the order events are committed'),
    dsimId,
    at: timestamp,
    event: z.string().describe('the audit event (registered, session-opened, failed, withdrawn, …)'),
    state: DeviceFeedState.nullable().describe(
      'the state this event moves the device to; null for an event that changes no state',
    ),
    detail: z.string().nullable().describe('the refusal code of a failed step, an IMSI, a server, a reason'),
    orderId: z
      .string()
      .nullable()
      .describe(
        'the order the device belonged to when the event happened (null: before orders, or no registration)',
      ),
  })
  .strict();

export const deviceEvents = defineRoute({
  id: 'credentialing.deviceEvents',
  role: 'credentialing',
  steps: 'all',
  method: 'GET',
  path: '/v1/operator/events',
  caller: peer('portal'),
  summary:
    "The audit events of every device after a cursor, in order: the feed an operator's portal follows to know each device's state without asking device by device. Each event carries the state it moves its device to (null if none). With waitSeconds and nothing new, the answer waits for the next event (long poll). `next` is the cursor for the following call; an event is listed only once every event before it is committed, so a follower never skips one.",
  query: FeedQuery,
  response: z
    .object({
      events: z.array(DeviceEvent),
      next: z.number().int().min(0).describe('the `after` of the next call'),
    })
    .strict(),
  errors: ['SIMCRED_UNAUTHENTICATED_PEER'],
});

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
  steps: 'all',
  method: 'POST',
  path: '/v1/operator/devices/:dsimId/revoke',
  caller: peer('portal'),
  summary:
    'Revoke a registration at any step: it is withdrawn from its registration server, and any subscriber the HSS allocated for the device is released — also after delivery, completion or attach (the subscription ends; its IMSI is quarantined). Idempotent. A revoked device may be registered again.',
  params: z.object({ dsimId }).strict(),
  body: z.object({ reason: z.string().max(200).optional() }).strict(),
  response: z.object({ dsimId, state: z.literal('revoked') }).strict(),
  errors: [
    'SIMCRED_REGISTRATION_UNKNOWN',
    'SIMCRED_SUBSCRIPTION_ENDED',
    'SIMCRED_DEVICE_TRANSFERRED',
    'SIMCRED_UNAUTHENTICATED_PEER',
  ],
});

/** The body of the lifecycle routes: an optional reason, kept in the audit trail. */
const LifecycleBody = z.object({ reason: z.string().max(200).optional() }).strict();

export const suspendDevice = defineRoute({
  id: 'credentialing.suspendDevice',
  role: 'credentialing',
  steps: 'lifecycle',
  method: 'POST',
  path: '/v1/operator/devices/:dsimId/suspend',
  caller: peer('portal'),
  summary:
    "Suspend a delivered device's subscription: the HSS refuses its attach (SIMCRED_SUBSCRIPTION_SUSPENDED) until it is resumed. The state changes at once; the HSS is told through the server's outbox (retried while it is down; the audit trail shows `subscriber-suspended` once applied). Idempotent.",
  params: z.object({ dsimId }).strict(),
  body: LifecycleBody,
  response: z.object({ dsimId, state: z.literal('suspended') }).strict(),
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_REGISTRATION_UNKNOWN',
    'SIMCRED_SUBSCRIPTION_NOT_PROVISIONED',
    'SIMCRED_SUBSCRIPTION_ENDED',
    'SIMCRED_DEVICE_TRANSFERRED',
    'SIMCRED_TRANSFER_IN_PROGRESS',
    'SIMCRED_UNAUTHENTICATED_PEER',
  ],
});

export const resumeDevice = defineRoute({
  id: 'credentialing.resumeDevice',
  role: 'credentialing',
  steps: 'lifecycle',
  method: 'POST',
  path: '/v1/operator/devices/:dsimId/resume',
  caller: peer('portal'),
  summary:
    'Resume a suspended subscription: the device may attach again (through the outbox, as suspend). The answer is the registration state it returns to (delivered or completed); the event feed shows `active`. Resuming a device that is not suspended changes nothing.',
  params: z.object({ dsimId }).strict(),
  body: LifecycleBody,
  response: z.object({ dsimId, state: z.enum(['delivered', 'completed']) }).strict(),
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_REGISTRATION_UNKNOWN',
    'SIMCRED_SUBSCRIPTION_NOT_PROVISIONED',
    'SIMCRED_SUBSCRIPTION_ENDED',
    'SIMCRED_DEVICE_TRANSFERRED',
    'SIMCRED_TRANSFER_IN_PROGRESS',
    'SIMCRED_UNAUTHENTICATED_PEER',
  ],
});

export const deleteDevice = defineRoute({
  id: 'credentialing.deleteDevice',
  role: 'credentialing',
  steps: 'lifecycle',
  method: 'POST',
  path: '/v1/operator/devices/:dsimId/delete',
  caller: peer('portal'),
  summary:
    "End a device's subscription for good, at any step: the registration ends in the final state `deleted` (never registered again), it is withdrawn from its registration server, and the HSS subscriber is deleted (K and OPc erased, attach refused with SIMCRED_SUBSCRIPTION_ENDED, the IMSI quarantined before reuse) through the outbox. Idempotent.",
  params: z.object({ dsimId }).strict(),
  body: LifecycleBody,
  response: z.object({ dsimId, state: z.literal('deleted') }).strict(),
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_REGISTRATION_UNKNOWN',
    'SIMCRED_DEVICE_TRANSFERRED',
    'SIMCRED_UNAUTHENTICATED_PEER',
  ],
});

// --- Device API -------------------------------------------------------------------------------

/**
 * A registration the credentialing server writes at a registration server's request (a group's
 * admission, a device's re-provisioning): the record a push carries, its generation always named.
 */
const IssuedRegistration = RegistrationRecord.extend({
  generation: z
    .number()
    .int()
    .min(1)
    .describe('which credentialing of the device (1, then one more per re-provisioning)'),
}).strict();

export const reprovisionDevice = defineRoute({
  id: 'credentialing.reprovisionDevice',
  role: 'credentialing',
  steps: 'lifecycle',
  method: 'POST',
  path: '/v1/operator/devices/:dsimId/reprovision',
  caller: peer('portal'),
  summary:
    "Re-provision a device that holds a subscription (or restart a re-provisioning not yet delivered): a fresh registration nonce and the next generation, pushed to its registration server; the device goes through the flow again when it next checks in and gets a new subscription (new IMSI, K, OPc). Its old subscription stays live until the new one is in use (first attach, or the receipt), then the HSS releases it. Allowed by the order's reprovision policy (operator or device).",
  params: z.object({ dsimId }).strict(),
  body: LifecycleBody,
  response: z
    .object({
      dsimId,
      state: z.literal('registered'),
      generation: z
        .number()
        .int()
        .min(2)
        .describe('the new credentialing of the device (2 for the first re-provisioning)'),
    })
    .strict(),
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_REGISTRATION_UNKNOWN',
    'SIMCRED_SUBSCRIPTION_NOT_PROVISIONED',
    'SIMCRED_SUBSCRIPTION_SUSPENDED',
    'SIMCRED_SUBSCRIPTION_ENDED',
    'SIMCRED_DEVICE_TRANSFERRED',
    'SIMCRED_TRANSFER_IN_PROGRESS',
    'SIMCRED_REPROVISION_NOT_ALLOWED',
    'SIMCRED_DEPENDENCY_UNAVAILABLE',
    'SIMCRED_UNAUTHENTICATED_PEER',
  ],
});

export const requestReprovision = defineRoute({
  id: 'credentialing.requestReprovision',
  role: 'credentialing',
  steps: '2, lifecycle',
  method: 'POST',
  path: '/v1/reprovision-requests',
  caller: peer('registration'),
  summary:
    "A registration server passes on the request of a device that proved itself at step 2 but holds no credential any more (a factory reset) and whose registration was used: if the device's order allows re-provisioning by the device, it gets a fresh registration nonce and the next generation (as the operator's reprovision route), which the registration server keeps and gives the device. The chain is checked again here and must carry the key the device was credentialed with. A device whose re-provisioning is already under way gets its live registration again.",
  body: z
    .object({
      dsimId,
      certificateChain,
      registrationServer: httpsUrl.describe('the asking registration server'),
    })
    .strict(),
  response: IssuedRegistration,
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_REGISTRATION_UNKNOWN',
    'SIMCRED_REGISTRATION_REVOKED',
    'SIMCRED_SUBSCRIPTION_NOT_PROVISIONED',
    'SIMCRED_SUBSCRIPTION_SUSPENDED',
    'SIMCRED_SUBSCRIPTION_ENDED',
    'SIMCRED_DEVICE_TRANSFERRED',
    'SIMCRED_TRANSFER_IN_PROGRESS',
    'SIMCRED_REPROVISION_NOT_ALLOWED',
    'SIMCRED_DEVICE_KEY_MISMATCH',
    'SIMCRED_CERT_INVALID',
    'SIMCRED_CERT_UNTRUSTED',
    'SIMCRED_CERT_DSIM_MISMATCH',
    'SIMCRED_UNAUTHENTICATED_PEER',
    'SIMCRED_FORBIDDEN_PEER',
  ],
});

export const openSession = defineRoute({
  id: 'credentialing.openSession',
  role: 'credentialing',
  steps: '3, 4',
  method: 'POST',
  path: '/v1/sessions',
  caller: DEVICE,
  summary:
    'The device presents DSIM_ID, a fresh device nonce and the registration-session nonce HMAC-SHA-256(registration nonce, "simcred/v1/session" ‖ DSIM_ID ‖ device nonce); on a match it gets a challenge. Sent again with the same device nonce while that session is open (its answer was lost), it gets the same session back.',
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
    'SIMCRED_SUBSCRIPTION_ENDED',
    'SIMCRED_DEVICE_TRANSFERRED',
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
  body: z
    .object({
      certificateChain,
      alg: signatureAlg,
      signature,
      packageFormats: z
        .array(packageFormat)
        .min(1)
        .max(2)
        .optional()
        .describe('the package formats the device opens, from its factory image (absent: jose only)'),
    })
    .strict(),
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
    'SIMCRED_PACKAGE_FORMAT_UNSUPPORTED',
    'SIMCRED_SESSION_UNKNOWN',
    'SIMCRED_REGISTRATION_EXPIRED',
    'SIMCRED_REGISTRATION_REVOKED',
    'SIMCRED_PROOF_INVALID',
    'SIMCRED_CERT_INVALID',
    'SIMCRED_CERT_UNTRUSTED',
    'SIMCRED_CERT_DSIM_MISMATCH',
    'SIMCRED_OCSP_REVOKED',
    'SIMCRED_OCSP_UNKNOWN',
    'SIMCRED_AUTHORISATION_DENIED',
    'SIMCRED_AUTHORISATION_UNAVAILABLE',
    'SIMCRED_DEPENDENCY_UNAVAILABLE',
    // The OCSP client's strict checks (src/ocsp/verify.ts), passed on as they are.
    'SIMCRED_OCSP_UNREACHABLE',
    'SIMCRED_OCSP_MALFORMED_RESPONSE',
    'SIMCRED_OCSP_BAD_SIGNATURE',
    'SIMCRED_OCSP_UNAUTHORIZED_SIGNER',
    'SIMCRED_OCSP_NONCE_MISMATCH',
    'SIMCRED_OCSP_STALE',
    'SIMCRED_OCSP_CERTID_MISMATCH',
    // The HSS's own refusals of step 5, passed through (retrying will not change them).
    'SIMCRED_IMSI_EXHAUSTED',
    'SIMCRED_DEVICE_KEY_MISMATCH',
    // The operator deleted the subscription while the package was being made.
    'SIMCRED_SUBSCRIPTION_ENDED',
    'SIMCRED_DEVICE_TRANSFERRED',
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
  response: z.object({ package: credentialPackage }).strict(),
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_TICKET_INVALID',
    'SIMCRED_REGISTRATION_USED',
    'SIMCRED_REGISTRATION_REVOKED',
    'SIMCRED_UNAUTHENTICATED_PEER',
    'SIMCRED_FORBIDDEN_PEER',
    'SIMCRED_SUBSCRIPTION_ENDED',
    'SIMCRED_DEVICE_TRANSFERRED',
  ],
});

// --- Enrollment groups ------------------------------------------------------------------------

export const EnrollmentGroup = z
  .object({
    id: z.string().regex(/^grp_[0-9a-f]{16}$/),
    name: z.string(),
    caSubject: z.string().describe("the enrolled CA's subject"),
    caSha256: z.string().regex(/^[0-9a-f]{64}$/),
    dsimPattern: dsimPattern.nullable(),
    cap: z.number().int().positive().nullable().describe('most devices admitted (null: no cap)'),
    admitted: z.number().int().describe('devices admitted so far (each counted once)'),
    registrationServers: z.array(httpsUrl),
    active: z.boolean(),
    orderId: z.string().describe('the order its admitted devices belong to (orders, notifications)'),
    createdAt: timestamp,
  })
  .strict();

export const createGroup = defineRoute({
  id: 'credentialing.createGroup',
  role: 'credentialing',
  steps: '0a, 0b',
  method: 'POST',
  path: '/v1/operator/groups',
  caller: peer('portal'),
  summary:
    "Enrol a manufacturer's device CA instead of listing DSIM_IDs (optionally a DSIM_ID pattern and a cap): the group is pushed to the registration servers named, which admit its devices as they turn up, each with its own registration nonce.",
  body: z
    .object({
      name: z.string().min(1).max(100),
      caCertificate: z
        .string()
        .min(100)
        .max(8192)
        .describe('the issuing CA of the devices: base64 DER or PEM'),
      dsimPattern: dsimPattern.optional(),
      cap: z.number().int().positive().max(100_000_000).optional(),
      registrationServers: z.array(httpsUrl).min(1).max(16),
      reprovision: ReprovisionPolicy.optional().describe(
        "the reprovision policy of the group's order (never, operator — the default — or device)",
      ),
    })
    .strict(),
  response: EnrollmentGroup,
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_CERT_INVALID',
    'SIMCRED_CERT_UNTRUSTED',
    'SIMCRED_DEPENDENCY_UNAVAILABLE',
    'SIMCRED_UNAUTHENTICATED_PEER',
  ],
});

export const listGroups = defineRoute({
  id: 'credentialing.listGroups',
  role: 'credentialing',
  steps: '0a',
  method: 'GET',
  path: '/v1/operator/groups',
  caller: peer('portal'),
  summary: 'Every enrollment group with the devices admitted so far.',
  response: z.object({ groups: z.array(EnrollmentGroup) }).strict(),
  errors: ['SIMCRED_UNAUTHENTICATED_PEER'],
});

export const closeGroup = defineRoute({
  id: 'credentialing.closeGroup',
  role: 'credentialing',
  steps: '0a',
  method: 'POST',
  path: '/v1/operator/groups/:groupId/close',
  caller: peer('portal'),
  summary:
    'Close a group: its registration servers stop admitting its devices (those already admitted keep their registrations).',
  params: z.object({ groupId: z.string().regex(/^grp_[0-9a-f]{16}$/) }).strict(),
  response: EnrollmentGroup,
  errors: ['SIMCRED_GROUP_UNKNOWN', 'SIMCRED_DEPENDENCY_UNAVAILABLE', 'SIMCRED_UNAUTHENTICATED_PEER'],
});

export const admitGroupDevice = defineRoute({
  id: 'credentialing.admitGroupDevice',
  role: 'credentialing',
  steps: '2, 0b',
  method: 'POST',
  path: '/v1/groups/:groupId/admissions',
  caller: peer('registration'),
  summary:
    "A registration server asks for a registration for an unlisted device of the group that proved itself at step 2 (its chain is checked again here). The device gets a fresh registration nonce, counted once against the group's cap; a device that already has a live registration gets it again.",
  params: z.object({ groupId: z.string().regex(/^grp_[0-9a-f]{16}$/) }).strict(),
  body: z
    .object({
      dsimId,
      certificateChain,
      registrationServer: httpsUrl.describe('the asking registration server, one of the group’s'),
    })
    .strict(),
  response: IssuedRegistration,
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_GROUP_UNKNOWN',
    'SIMCRED_GROUP_CA_MISMATCH',
    'SIMCRED_GROUP_PATTERN_MISMATCH',
    'SIMCRED_GROUP_CAP_REACHED',
    'SIMCRED_REGISTRATION_USED',
    'SIMCRED_REGISTRATION_REVOKED',
    'SIMCRED_SUBSCRIPTION_ENDED',
    'SIMCRED_DEVICE_TRANSFERRED',
    'SIMCRED_CERT_INVALID',
    'SIMCRED_CERT_UNTRUSTED',
    'SIMCRED_CERT_DSIM_MISMATCH',
    'SIMCRED_UNAUTHENTICATED_PEER',
    'SIMCRED_FORBIDDEN_PEER',
  ],
});

// --- Operator change (issue 14; docs/architecture.md "Operator change") -----------------------

/** A transfer as the operator API answers it. */
export const TransferAnswer = z
  .object({
    dsimId,
    state: z.literal('transferring'),
    transferId: z.string().regex(/^trf_[A-Za-z0-9_-]{22}$/),
    expiresAt: timestamp.describe('the transfer statement is good until then'),
  })
  .strict();

export const authoriseTransfer = defineRoute({
  id: 'credentialing.authoriseTransfer',
  role: 'credentialing',
  steps: 'lifecycle',
  method: 'POST',
  path: '/v1/operator/devices/:dsimId/transfer',
  caller: peer('portal'),
  summary:
    "Hand a delivered device over to another operator (B): a transfer statement naming B's operator root, B's registration servers and B's OCSP responder and home network, bound to the device's key and signed by this operator's package signer, is pushed to the device's registration server, where the device fetches it. The device moves to `transferring`; once it confirms that B's credential is installed it becomes `transferred` and its subscription here is deleted. Asking again for the same target answers the same transfer.",
  params: z.object({ dsimId }).strict(),
  body: z
    .object({
      toOperatorRoot: z.string().min(100).max(12_000).describe("B's operator root certificate, PEM"),
      toRegistrationServers: z.array(httpsUrl).min(1).max(8).describe("B's registration servers"),
      toServers: z
        .object({
          ocsp: httpsUrl.describe("B's OCSP responder (B's package signer is checked there)"),
          hss: httpsUrl.describe("B's home network, where the device attaches with B's credential"),
        })
        .strict(),
      reason: z.string().max(200).optional(),
    })
    .strict(),
  response: TransferAnswer,
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_REGISTRATION_UNKNOWN',
    'SIMCRED_SUBSCRIPTION_NOT_PROVISIONED',
    'SIMCRED_SUBSCRIPTION_SUSPENDED',
    'SIMCRED_SUBSCRIPTION_ENDED',
    'SIMCRED_DEVICE_TRANSFERRED',
    'SIMCRED_TRANSFER_IN_PROGRESS',
    'SIMCRED_UNAUTHENTICATED_PEER',
  ],
});

/** The bytes of a transfer confirmation are in src/crypto/transfer-confirmation.ts. */
export const confirmTransfer = defineRoute({
  id: 'credentialing.confirmTransfer',
  role: 'credentialing',
  steps: 'lifecycle',
  method: 'POST',
  path: '/v1/transfers/confirmation',
  caller: DEVICE,
  summary:
    "The transferred device confirms, signed with its key, that the new operator's credential (package `packageId`) is installed: the device becomes `transferred` (final), its subscriber here is deleted and its registration withdrawn. Idempotent.",
  body: z
    .object({
      dsimId,
      transferId: z.string().regex(/^trf_[A-Za-z0-9_-]{22}$/),
      packageId: z.string().min(1).max(128).describe("the new operator's package id"),
      alg: signatureAlg,
      signature,
    })
    .strict(),
  response: z.object({ dsimId, state: z.literal('transferred') }).strict(),
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_REGISTRATION_UNKNOWN',
    'SIMCRED_TRANSFER_UNKNOWN',
    'SIMCRED_TRANSFER_CONFIRMATION_INVALID',
  ],
});

export const credentialingRoutes = [
  registerDevices,
  deviceState,
  deviceEvents,
  revokeRegistration,
  openSession,
  proveSession,
  submitReceipt,
  fetchPackage,
  createGroup,
  listGroups,
  closeGroup,
  admitGroupDevice,
  reprovisionDevice,
  requestReprovision,
  suspendDevice,
  resumeDevice,
  deleteDevice,
  authoriseTransfer,
  confirmTransfer,
];
