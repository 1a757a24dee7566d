import { z } from 'zod';
import { dsimId, httpsUrl, timestamp } from './fields.js';

/**
 * The operator's authorisation hook (optional, config `credentialing.authorisationHook`): after every
 * check of step 4 has passed, the credentialing server POSTs this to the operator's URL over HTTPS,
 * presenting its own client certificate, and goes on only if the answer allows the device. Like AWS
 * IoT's pre-provisioning hook: the operator's business systems have the last word per device.
 */
export const AuthorisationRequest = z
  .object({
    dsimId,
    orderId: z
      .string()
      .nullable()
      .describe('the order the device was registered in (null for a registration older than orders)'),
    registrationServer: httpsUrl,
    device: z
      .object({
        subject: z.string().describe("the device certificate's subject DN"),
        issuer: z.string().describe("its issuer's DN (the manufacturer CA)"),
        serialNumber: z.string().describe('its serial number, hex'),
        sha256: z.string().describe('SHA-256 of its DER, hex'),
      })
      .strict(),
    at: timestamp,
  })
  .strict();

/** A plan id: what the operator's catalogue calls it (lower case, digits, dashes). */
export const planId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,63}$/)
  .describe('a plan of the catalogue');

/**
 * The hook's answer. Anything else (another status than 200, not this JSON, a plan the config does
 * not list) is treated as the hook failing: the device is refused for now (503), never let through.
 */
export const AuthorisationDecision = z
  .object({
    decision: z.enum(['allow', 'deny']),
    plan: planId.optional().describe('with allow: the plan the subscription is provisioned under'),
    reason: z.string().max(200).optional().describe('with deny: why, for the audit trail'),
  })
  .strict();
