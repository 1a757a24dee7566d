import { z } from 'zod';
import { DEVICE, defineRoute, peer } from './route.js';
import { compactJws, imsi, timestamp } from './fields.js';

/** Preliminary HLR (role 50): Milenage AKA on the preliminary credentials and the access grant (step 1). */

/** Lower-case hex of exactly `bytes` bytes. */
const hex = (bytes: number, description: string) =>
  z
    .string()
    .regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`), `must be ${bytes} bytes of lower-case hex`)
    .describe(description);

export const pimsi = imsi.describe('preliminary IMSI (PIMSI) from the factory');
export const rand = hex(16, 'RAND, 16 bytes hex');
export const autn = hex(16, 'AUTN = (SQN ⊕ AK) ‖ AMF ‖ MAC-A, 16 bytes hex');
/** RES is 4 to 16 bytes (TS 33.102 §6.3.2); Milenage gives 8. */
export const res = z
  .string()
  .regex(/^([0-9a-f]{2}){4,16}$/, 'must be 4 to 16 bytes of lower-case hex')
  .describe('RES, hex');
export const auts = hex(14, 'AUTS = (SQN_MS ⊕ AK*) ‖ MAC-S, 14 bytes hex');

/** What a challenge route answers: the network's half of AKA. */
export const AkaChallenge = z.object({ rand, autn }).strict();

/** What a RES can be refused with, at the PHLR (step 1) and the HSS (attach, step 12) alike. */
export const AKA_RESPONSE_ERRORS = [
  'SIMCRED_BAD_REQUEST',
  'SIMCRED_AKA_SUBSCRIBER_UNKNOWN',
  'SIMCRED_AKA_NO_CHALLENGE',
  'SIMCRED_AKA_RES_MISMATCH',
  // The subscriber's K/OPc at rest do not open with the configured KEK.
  'SIMCRED_SECRET_DECRYPT_FAILED',
  // The PKCS#11 token holding the KEK failed (503, Retry-After).
  'SIMCRED_KEY_STORE_UNAVAILABLE',
] as const;

export const phlrChallenge = defineRoute({
  id: 'phlr.challenge',
  issuesAkaChallenge: true,
  role: 'phlr',
  steps: '1',
  method: 'POST',
  path: '/v1/aka/challenge',
  caller: DEVICE,
  summary:
    'A fresh AKA challenge (RAND, AUTN) for a PIMSI, made with K_PIMSI/OPc_PIMSI and the next SQN; replaces any pending one.',
  body: z.object({ pimsi }).strict(),
  response: AkaChallenge,
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_AKA_SUBSCRIBER_UNKNOWN',
    'SIMCRED_SECRET_DECRYPT_FAILED',
    'SIMCRED_KEY_STORE_UNAVAILABLE',
  ],
});

export const phlrResponse = defineRoute({
  id: 'phlr.response',
  role: 'phlr',
  steps: '1',
  method: 'POST',
  path: '/v1/aka/response',
  caller: DEVICE,
  summary:
    "The device's RES for the pending challenge; when it equals XRES, a short-lived access grant (JWS signed by the PHLR) good only for registration. One answer per challenge.",
  body: z.object({ pimsi, res }).strict(),
  response: z.object({ grant: compactJws, expiresAt: timestamp }).strict(),
  errors: [...AKA_RESPONSE_ERRORS],
});

export const phlrResync = defineRoute({
  id: 'phlr.resync',
  issuesAkaChallenge: true,
  role: 'phlr',
  steps: '1',
  method: 'POST',
  path: '/v1/aka/resync',
  caller: DEVICE,
  summary:
    "The USIM found the SQN not fresh: the AUTS (over the pending challenge's RAND) resynchronises the PHLR's SQN, and a fresh challenge comes back.",
  body: z.object({ pimsi, rand, auts }).strict(),
  response: AkaChallenge,
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_AKA_SUBSCRIBER_UNKNOWN',
    'SIMCRED_AKA_NO_CHALLENGE',
    'SIMCRED_AKA_AUTS_INVALID',
    'SIMCRED_SECRET_DECRYPT_FAILED',
    // The PKCS#11 token holding the KEK failed (503, Retry-After).
    'SIMCRED_KEY_STORE_UNAVAILABLE',
  ],
});

export const importSubscribers = defineRoute({
  id: 'phlr.importSubscribers',
  role: 'phlr',
  steps: '1',
  method: 'POST',
  path: '/v1/subscribers/import',
  caller: peer('portal'),
  summary:
    "Read the new lines of the factory's subscriber list (PIMSI, DSIM_ID, K_PIMSI, OPc_PIMSI) into the PHLR's store now, rather than at the first unknown PIMSI.",
  body: z.object({}).strict(),
  response: z.object({ imported: z.number().int(), subscribers: z.number().int() }).strict(),
  errors: ['SIMCRED_UNAUTHENTICATED_PEER', 'SIMCRED_FORBIDDEN_PEER', 'SIMCRED_KEY_STORE_UNAVAILABLE'],
});

export const phlrRoutes = [phlrChallenge, phlrResponse, phlrResync, importSubscribers];
