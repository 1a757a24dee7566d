import { z } from 'zod';
import { defineRoute, peer } from './route.js';
import { base64url, certificateDer, compactJws, dsimId, imsi } from './fields.js';

/** HSS (role 26) as the credentialing subsystem sees it (step 5). */

export const issueCredentials = defineRoute({
  id: 'hss.issueCredentials',
  role: 'hss',
  steps: '5',
  method: 'POST',
  path: '/v1/credentials',
  caller: peer('credentialing'),
  summary:
    'Allocate an IMSI and K/OPc for the DSIM_ID (idempotent: a retry returns the same subscriber) and return the package sealed to the device key and signed by the operator.',
  body: z
    .object({
      dsimId,
      deviceCertificate: certificateDer,
      deviceNonce: base64url(16, 64, 'device nonce from step 3'),
    })
    .strict(),
  response: z.object({ imsi, packageId: z.string().min(8).max(64), package: compactJws }).strict(),
  errors: [
    'SIMCRED_BAD_REQUEST',
    'SIMCRED_CERT_INVALID',
    'SIMCRED_CERT_DSIM_MISMATCH',
    'SIMCRED_DEVICE_KEY_MISMATCH',
    'SIMCRED_IMSI_EXHAUSTED',
    'SIMCRED_UNAUTHENTICATED_PEER',
    'SIMCRED_FORBIDDEN_PEER',
  ],
});

export const hssRoutes = [issueCredentials];
