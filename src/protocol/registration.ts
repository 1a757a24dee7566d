import { z } from 'zod';
import { DEVICE, defineRoute, peer } from './route.js';
import { dsimPattern } from './dsim-pattern.js';
import {
  base64url,
  certificateChain,
  compactJws,
  dsimId,
  httpsUrl,
  nonce32,
  signature,
  signatureAlg,
  timestamp,
} from './fields.js';

/** Registration server (role 14): what credentialing servers push, and what devices look up (step 2). */

export const RegistrationRecord = z
  .object({
    dsimId,
    registrationNonce: nonce32('registration nonce (32 random bytes), secret'),
    credentialingUrl: httpsUrl,
    expiresAt: timestamp,
    generation: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe('which credentialing of the device (1 when absent; one more per re-provisioning)'),
  })
  .strict();
export type RegistrationRecord = z.infer<typeof RegistrationRecord>;

/** Most records one push carries; a batch of a million streams as many pushes. */
export const MAX_RECORDS_PER_PUSH = 2000;

/** DSIM_IDs a push or withdrawal left alone: their record is another credentialing server's. */
const refusedDsimIds = z
  .array(dsimId)
  .optional()
  .describe(
    "DSIM_IDs whose record another credentialing server pushed (its certificate's subject or issuing CA differ): left as they are",
  );

export const pushRegistrations = defineRoute({
  id: 'registration.pushRegistrations',
  role: 'registration',
  steps: '0b',
  method: 'POST',
  path: '/v1/registrations',
  caller: peer('credentialing'),
  summary:
    'Store (or replace) registration records for devices; only trusted credentialing servers may push.',
  body: z.object({ registrations: z.array(RegistrationRecord).min(1).max(MAX_RECORDS_PER_PUSH) }).strict(),
  response: z
    .object({
      stored: z.number().int(),
      refused: refusedDsimIds,
    })
    .strict(),
  errors: ['SIMCRED_BAD_REQUEST', 'SIMCRED_UNAUTHENTICATED_PEER', 'SIMCRED_FORBIDDEN_PEER'],
});

export const withdrawRegistrations = defineRoute({
  id: 'registration.withdrawRegistrations',
  role: 'registration',
  steps: '0b',
  method: 'POST',
  path: '/v1/registrations/withdraw',
  caller: peer('credentialing'),
  summary:
    'Remove registration records (the operator revoked them), or with `used`, retire them: the nonce is forgotten and the record kept as used, so the device is told SIMCRED_REGISTRATION_USED and a factory-reset device can ask its credentialing server for re-provisioning through this server. `upToGeneration` spares a newer record pushed since (a re-provisioning or a re-registration).',
  body: z
    .object({
      dsimIds: z.array(dsimId).min(1).max(MAX_RECORDS_PER_PUSH),
      used: z.boolean().optional().describe('retire (keep as used) instead of remove'),
      upToGeneration: z
        .record(dsimId, z.number().int().min(1))
        .optional()
        .describe('per DSIM_ID, the newest generation the call may touch; absent: any'),
    })
    .strict(),
  response: z
    .object({
      withdrawn: z.number().int(),
      refused: refusedDsimIds,
    })
    .strict(),
  errors: ['SIMCRED_BAD_REQUEST', 'SIMCRED_UNAUTHENTICATED_PEER', 'SIMCRED_FORBIDDEN_PEER'],
});

export const lookupChallenge = defineRoute({
  id: 'registration.lookupChallenge',
  role: 'registration',
  steps: '2',
  method: 'POST',
  path: '/v1/lookup/challenge',
  caller: DEVICE,
  summary: 'A short-lived challenge the device signs to prove it holds SK_dsim.',
  body: z.object({ dsimId }).strict(),
  response: z.object({ challenge: base64url(16, 128, 'opaque challenge'), expiresAt: timestamp }).strict(),
  // Stateless: an HMAC over the DSIM_ID and expiry, no store read.
  readsDatabase: false,
  errors: ['SIMCRED_BAD_REQUEST'],
});

export const lookup = defineRoute({
  id: 'registration.lookup',
  role: 'registration',
  steps: '2',
  method: 'POST',
  path: '/v1/lookup',
  caller: DEVICE,
  summary:
    "The device shows its access grant from the preliminary HLR and proves it holds its key (signature over the challenge); it gets its registration nonce and its credentialing server's route.",
  body: z
    .object({
      dsimId,
      grant: compactJws.max(8192).describe("the preliminary HLR's access grant (step 1)"),
      challenge: base64url(16, 128, 'the challenge from /v1/lookup/challenge'),
      certificateChain,
      alg: signatureAlg,
      signature,
      reprovision: z
        .boolean()
        .optional()
        .describe(
          'the device holds no credential (a factory reset): if its registration was used, ask its credentialing server to re-provision it (allowed by the order’s policy)',
        ),
    })
    .strict(),
  response: z
    .object({
      registrationNonce: nonce32('registration nonce, secret'),
      credentialingUrl: httpsUrl,
      expiresAt: timestamp,
    })
    .strict(),
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_GRANT_INVALID',
    'SIMCRED_GRANT_EXPIRED',
    'SIMCRED_CHALLENGE_INVALID',
    'SIMCRED_CERT_INVALID',
    'SIMCRED_CERT_UNTRUSTED',
    'SIMCRED_CERT_DSIM_MISMATCH',
    'SIMCRED_PROOF_INVALID',
    'SIMCRED_REGISTRATION_UNKNOWN',
    'SIMCRED_REGISTRATION_EXPIRED',
    'SIMCRED_GROUP_PATTERN_MISMATCH',
    'SIMCRED_GROUP_CAP_REACHED',
    'SIMCRED_REGISTRATION_REVOKED',
    'SIMCRED_REGISTRATION_USED',
    'SIMCRED_SUBSCRIPTION_ENDED',
    'SIMCRED_DEVICE_TRANSFERRED',
    'SIMCRED_DEPENDENCY_UNAVAILABLE',
    'SIMCRED_REPROVISION_NOT_ALLOWED',
    'SIMCRED_SUBSCRIPTION_NOT_PROVISIONED',
    'SIMCRED_SUBSCRIPTION_SUSPENDED',
    'SIMCRED_DEVICE_KEY_MISMATCH',
  ],
});

/**
 * An enrollment group as a registration server keeps it: devices whose certificate was issued by
 * this CA (and whose DSIM_ID matches the pattern) are admitted without being listed, by asking the
 * credentialing server that pushed the group for a registration (credentialing.admitGroupDevice).
 */
export const GroupRecord = z
  .object({
    groupId: z.string().regex(/^grp_[0-9a-f]{16}$/),
    caSha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .describe("SHA-256 of the issuing CA's certificate (DER), hex"),
    dsimPattern: dsimPattern.nullable().describe('null: any DSIM_ID'),
    credentialingUrl: httpsUrl,
    active: z.boolean().describe('false: the group was closed; its devices are no longer admitted'),
  })
  .strict();
export type GroupRecord = z.infer<typeof GroupRecord>;

export const pushGroups = defineRoute({
  id: 'registration.pushGroups',
  role: 'registration',
  steps: '0b',
  method: 'POST',
  path: '/v1/groups',
  caller: peer('credentialing'),
  summary:
    'Store (or replace) enrollment groups: devices of their CA that turn up unlisted at step 2 are admitted through the credentialing server that pushed the group.',
  body: z.object({ groups: z.array(GroupRecord).min(1).max(100) }).strict(),
  response: z
    .object({
      stored: z.number().int(),
      refused: z
        .array(z.string())
        .optional()
        .describe('group ids another credentialing server pushed: left as they are'),
    })
    .strict(),
  errors: ['SIMCRED_BAD_REQUEST', 'SIMCRED_UNAUTHENTICATED_PEER', 'SIMCRED_FORBIDDEN_PEER'],
});

// --- Operator change (issue 14; docs/architecture.md "Operator change") -----------------------

export const TransferStatementRecord = z
  .object({
    dsimId,
    transferId: z.string().regex(/^trf_[A-Za-z0-9_-]{22}$/),
    statement: compactJws.describe("the transfer statement, signed by the operator's package signer"),
  })
  .strict();
export type TransferStatementRecord = z.infer<typeof TransferStatementRecord>;

/** Most statements one push carries. */
export const MAX_STATEMENTS_PER_PUSH = 100;

export const pushTransferStatements = defineRoute({
  id: 'registration.pushTransferStatements',
  role: 'registration',
  steps: 'lifecycle',
  method: 'POST',
  path: '/v1/transfers',
  caller: peer('credentialing'),
  summary:
    'Store (or replace) transfer statements for devices an operator hands over to another one; each is owned by the credentialing server that pushed it (another one cannot replace it). The device fetches its own with /v1/transfers/fetch.',
  body: z
    .object({ statements: z.array(TransferStatementRecord).min(1).max(MAX_STATEMENTS_PER_PUSH) })
    .strict(),
  response: z.object({ stored: z.number().int() }).strict(),
  errors: ['SIMCRED_BAD_REQUEST', 'SIMCRED_UNAUTHENTICATED_PEER', 'SIMCRED_FORBIDDEN_PEER'],
});

/** The device's proof as at step 2: access grant, a fresh challenge of /v1/lookup/challenge, its key. */
const DeviceProof = {
  dsimId,
  grant: compactJws.max(8192).describe("the preliminary HLR's access grant (step 1)"),
  challenge: base64url(16, 128, 'the challenge from /v1/lookup/challenge'),
  certificateChain,
  alg: signatureAlg,
  signature,
};

export const fetchTransferStatement = defineRoute({
  id: 'registration.fetchTransferStatement',
  role: 'registration',
  steps: 'lifecycle',
  method: 'POST',
  path: '/v1/transfers/fetch',
  caller: DEVICE,
  summary:
    'The device, proving itself exactly as at step 2 (access grant, challenge signed with its key under the transfer label, chain to a manufacturer root, DSIM_ID bound), gets the transfer statement its operator pushed for it.',
  body: z.object(DeviceProof).strict(),
  response: z
    .object({ transferId: z.string(), statement: compactJws.describe('the transfer statement') })
    .strict(),
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_GRANT_INVALID',
    'SIMCRED_GRANT_EXPIRED',
    'SIMCRED_CHALLENGE_INVALID',
    'SIMCRED_CERT_INVALID',
    'SIMCRED_CERT_UNTRUSTED',
    'SIMCRED_CERT_DSIM_MISMATCH',
    'SIMCRED_PROOF_INVALID',
    'SIMCRED_TRANSFER_UNKNOWN',
  ],
});

export const registrationRoutes = [
  pushRegistrations,
  withdrawRegistrations,
  lookupChallenge,
  lookup,
  pushGroups,
  pushTransferStatements,
  fetchTransferStatement,
];
