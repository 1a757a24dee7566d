import { z } from 'zod';
import { DEVICE, defineRoute, peer } from './route.js';
import {
  base64url,
  certificateDer,
  compactJws,
  credentialPackage,
  dsimId,
  httpsUrl,
  imsi,
  packageFormat,
  timestamp,
} from './fields.js';
import { FeedQuery } from './credentialing.js';
import { AKA_RESPONSE_ERRORS, AkaChallenge, auts, rand, res } from './phlr.js';

/** HSS (role 26) as the credentialing subsystem sees it (step 5). */

/** A device's credentialing count at the HSS: 1, then one more per re-provisioning. */
const generation = z.number().int().min(1).max(1_000_000);

export const issueCredentials = defineRoute({
  id: 'hss.issueCredentials',
  role: 'hss',
  steps: '5',
  method: 'POST',
  path: '/v1/credentials',
  caller: peer('credentialing'),
  summary:
    "Allocate an IMSI and K/OPc for the DSIM_ID's generation (idempotent: a retry returns the same subscriber; a re-provisioning's next generation gets a new one beside the old) and return the package sealed to the device key and signed by the operator.",
  body: z
    .object({
      dsimId,
      generation: generation.describe(
        'which credentialing of the device: 1, then one more per re-provisioning',
      ),
      deviceCertificate: certificateDer,
      deviceNonce: base64url(16, 64, 'device nonce from step 3'),
      packageFormat: packageFormat.optional().describe('format to seal the package in (default jose)'),
    })
    .strict(),
  response: z.object({ imsi, packageId: z.string().min(8).max(64), package: credentialPackage }).strict(),
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_CERT_INVALID',
    'SIMCRED_CERT_DSIM_MISMATCH',
    'SIMCRED_DEVICE_KEY_MISMATCH',
    'SIMCRED_IMSI_EXHAUSTED',
    'SIMCRED_UNAUTHENTICATED_PEER',
    'SIMCRED_FORBIDDEN_PEER',
    // A device key that is neither EC P-256 nor RSA ≥ 2048 cannot be sealed to.
    'SIMCRED_CRYPTO_KEY_UNSUPPORTED',
    // K/OPc at rest do not open with the configured KEK.
    'SIMCRED_SECRET_DECRYPT_FAILED',
    // The PKCS#11 token holding the KEK failed (503, Retry-After).
    'SIMCRED_KEY_STORE_UNAVAILABLE',
  ],
});

/** Most DSIM_IDs in one release call (the credentialing server's outbox sends them in batches). */
export const MAX_RELEASES_PER_CALL = 500;

/**
 * Per DSIM_ID of the batch, the newest generation the call may end (older ones too); a DSIM_ID not
 * named has every subscriber ended. What keeps a release queued before a re-registration or a
 * re-provisioning from ending the newer subscriber.
 */
const UpToGeneration = z
  .record(dsimId, generation)
  .optional()
  .describe('per DSIM_ID, the newest generation to end (older ones too); absent: all');

export const ReleaseOutcome = z.enum(['released', 'absent']);

export const releaseSubscribers = defineRoute({
  id: 'hss.releaseSubscribers',
  role: 'hss',
  steps: 'all',
  method: 'POST',
  path: '/v1/subscribers/release',
  caller: peer('credentialing'),
  summary:
    'The operator revoked these devices (at any step, also after delivery or attach), or a re-provisioned device completed with its new subscriber (reason "reprovisioned", upToGeneration the previous one): each subscriber is released — K and OPc erased, its attach refused from then on, the IMSI quarantined (hss.imsiQuarantineSeconds) before it is allocated again. One that does not exist is reported absent. Idempotent.',
  body: z
    .object({
      dsimIds: z.array(dsimId).min(1).max(MAX_RELEASES_PER_CALL),
      reason: z.string().max(200).optional(),
      upToGeneration: UpToGeneration,
    })
    .strict(),
  response: z
    .object({
      results: z.array(z.object({ dsimId, outcome: ReleaseOutcome, imsi: imsi.nullable() }).strict()),
    })
    .strict(),
  errors: ['SIMCRED_BAD_REQUEST', 'SIMCRED_UNAUTHENTICATED_PEER', 'SIMCRED_FORBIDDEN_PEER'],
});

/** The body of the lifecycle calls: a batch of DSIM_IDs, as the credentialing server's outbox sends them. */
const LifecycleBatch = z
  .object({
    dsimIds: z.array(dsimId).min(1).max(MAX_RELEASES_PER_CALL),
    reason: z.string().max(200).optional(),
  })
  .strict();

const lifecycleResults = <T extends z.ZodType>(outcome: T) =>
  z
    .object({
      results: z.array(z.object({ dsimId, outcome, imsi: imsi.nullable() }).strict()),
    })
    .strict();

export const suspendSubscribers = defineRoute({
  id: 'hss.suspendSubscribers',
  role: 'hss',
  steps: 'lifecycle',
  method: 'POST',
  path: '/v1/subscribers/suspend',
  caller: peer('credentialing'),
  summary:
    "The operator suspended these devices' subscriptions: each subscriber's attach is refused (SIMCRED_SUBSCRIPTION_SUSPENDED) until it is resumed; K, OPc and SQN stay. One that does not exist is reported absent. Idempotent.",
  body: LifecycleBatch,
  response: lifecycleResults(z.enum(['suspended', 'absent'])),
  errors: ['SIMCRED_BAD_REQUEST', 'SIMCRED_UNAUTHENTICATED_PEER', 'SIMCRED_FORBIDDEN_PEER'],
});

export const resumeSubscribers = defineRoute({
  id: 'hss.resumeSubscribers',
  role: 'hss',
  steps: 'lifecycle',
  method: 'POST',
  path: '/v1/subscribers/resume',
  caller: peer('credentialing'),
  summary:
    'The operator resumed these suspended subscriptions: each subscriber may attach again. One that does not exist is reported absent. Idempotent (resuming an active subscriber changes nothing).',
  body: LifecycleBatch,
  response: lifecycleResults(z.enum(['resumed', 'absent'])),
  errors: ['SIMCRED_BAD_REQUEST', 'SIMCRED_UNAUTHENTICATED_PEER', 'SIMCRED_FORBIDDEN_PEER'],
});

export const deleteSubscribers = defineRoute({
  id: 'hss.deleteSubscribers',
  role: 'hss',
  steps: 'lifecycle',
  method: 'POST',
  path: '/v1/subscribers/delete',
  caller: peer('credentialing'),
  summary:
    'The operator deleted these subscriptions for good: as a release, each subscriber is ended (K and OPc erased, attach refused with SIMCRED_SUBSCRIPTION_ENDED) and its IMSI quarantined before reuse. One that does not exist is reported absent. Idempotent.',
  body: LifecycleBatch.extend({ upToGeneration: UpToGeneration }).strict(),
  response: lifecycleResults(ReleaseOutcome),
  errors: ['SIMCRED_BAD_REQUEST', 'SIMCRED_UNAUTHENTICATED_PEER', 'SIMCRED_FORBIDDEN_PEER'],
});

export const subscriberEvents = defineRoute({
  id: 'hss.subscriberEvents',
  role: 'hss',
  steps: '12',
  method: 'GET',
  path: '/v1/subscribers/events',
  caller: peer('credentialing'),
  summary:
    "Subscribers' first attach with their downloaded credentials, after a cursor, in order: what the credentialing server follows to record each device's `attached` without asking device by device. With waitSeconds and nothing new, the answer waits for the next attach (long poll); `next` is the cursor for the following call.",
  query: FeedQuery,
  response: z
    .object({
      events: z.array(
        z
          .object({
            id: z.number().int().positive(),
            dsimId,
            imsi,
            at: timestamp,
            event: z.literal('attached'),
          })
          .strict(),
      ),
      next: z.number().int().min(0),
    })
    .strict(),
  errors: ['SIMCRED_UNAUTHENTICATED_PEER', 'SIMCRED_FORBIDDEN_PEER'],
});

/** The HSS/HLR as the device sees it on the network: attach with the downloaded credentials (step 12). */

export const attachChallenge = defineRoute({
  id: 'hss.attachChallenge',
  issuesAkaChallenge: true,
  role: 'hss',
  steps: '12',
  method: 'POST',
  path: '/v1/attach/challenge',
  caller: DEVICE,
  summary:
    "A fresh AKA challenge (RAND, AUTN) for an IMSI, made with the subscriber's K/OPc and its next SQN; replaces any pending one.",
  body: z.object({ imsi }).strict(),
  response: AkaChallenge,
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_AKA_SUBSCRIBER_UNKNOWN',
    'SIMCRED_SECRET_DECRYPT_FAILED',
    // The PKCS#11 token holding the KEK failed (503, Retry-After).
    'SIMCRED_KEY_STORE_UNAVAILABLE',
    // The operator's lifecycle decisions (docs/aka.md).
    'SIMCRED_SUBSCRIPTION_SUSPENDED',
    'SIMCRED_SUBSCRIPTION_ENDED',
  ],
});

export const attachResponse = defineRoute({
  id: 'hss.attachResponse',
  role: 'hss',
  steps: '12',
  method: 'POST',
  path: '/v1/attach/response',
  caller: DEVICE,
  summary:
    "The device's RES for the pending challenge; when it equals XRES the device is attached and the subscriber becomes active. One answer per challenge.",
  body: z.object({ imsi, res }).strict(),
  response: z.object({ attached: z.literal(true) }).strict(),
  errors: [...AKA_RESPONSE_ERRORS, 'SIMCRED_SUBSCRIPTION_SUSPENDED', 'SIMCRED_SUBSCRIPTION_ENDED'],
});

export const attachResync = defineRoute({
  id: 'hss.attachResync',
  issuesAkaChallenge: true,
  role: 'hss',
  steps: '12',
  method: 'POST',
  path: '/v1/attach/resync',
  caller: DEVICE,
  summary:
    "The USIM found the SQN not fresh: the AUTS (over the pending challenge's RAND) resynchronises the HSS's SQN, and a fresh challenge comes back.",
  body: z.object({ imsi, rand, auts }).strict(),
  response: AkaChallenge,
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_AKA_SUBSCRIBER_UNKNOWN',
    'SIMCRED_AKA_NO_CHALLENGE',
    'SIMCRED_AKA_AUTS_INVALID',
    'SIMCRED_SECRET_DECRYPT_FAILED',
    // The PKCS#11 token holding the KEK failed (503, Retry-After).
    'SIMCRED_KEY_STORE_UNAVAILABLE',
    'SIMCRED_SUBSCRIPTION_SUSPENDED',
    'SIMCRED_SUBSCRIPTION_ENDED',
  ],
});

/**
 * Operator change (docs/architecture.md): the HSS, which holds the package signer, signs the transfer
 * statement, bound to the device key it seals packages to.
 */
export const signTransferStatement = defineRoute({
  id: 'hss.signTransferStatement',
  role: 'hss',
  steps: 'lifecycle',
  method: 'POST',
  path: '/v1/transfers/statements',
  caller: peer('credentialing'),
  summary:
    "Sign a transfer statement for a subscriber the operator hands over to another operator, with the package signer (the key the device checks packages against), bound to the device key this HSS holds for the DSIM_ID: the caller names the new operator's root and servers, never the device key.",
  body: z
    .object({
      dsimId,
      transferId: z.string().regex(/^trf_[A-Za-z0-9_-]{22}$/),
      newOperatorRoot: z.string().min(100).max(12_000).describe("the new operator's root certificate, PEM"),
      newRegistrationServers: z.array(httpsUrl).min(1).max(8),
      newServers: z.object({ ocsp: httpsUrl, hss: httpsUrl }).strict(),
      confirmUrl: httpsUrl.describe("the credentialing server's URL where the device confirms"),
      ttlSeconds: z
        .number()
        .int()
        .positive()
        .max(30 * 24 * 3600),
    })
    .strict(),
  response: z.object({ statement: compactJws }).strict(),
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_SUBSCRIPTION_NOT_PROVISIONED',
    'SIMCRED_SUBSCRIPTION_SUSPENDED',
    'SIMCRED_UNAUTHENTICATED_PEER',
    'SIMCRED_FORBIDDEN_PEER',
  ],
});

export const hssRoutes = [
  issueCredentials,
  releaseSubscribers,
  subscriberEvents,
  attachChallenge,
  attachResponse,
  attachResync,
  suspendSubscribers,
  resumeSubscribers,
  deleteSubscribers,
  signTransferStatement,
];
