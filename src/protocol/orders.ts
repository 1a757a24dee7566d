import { z } from 'zod';
import { defineRoute, peer } from './route.js';
import { dsimId, timestamp } from './fields.js';
import { DeviceFeedState, ReprovisionPolicy } from './credentialing.js';

/**
 * Credentialing server (role 10), operator API for orders and notifications (issue 14): every
 * registration batch is an order; webhooks receive every device state change, signed (docs/protocol.md,
 * "Notifications").
 */

export const orderId = z
  .string()
  .regex(/^ord_[A-Za-z0-9_-]{22}$/)
  .describe('order id (opaque)');
export const webhookId = z
  .string()
  .regex(/^whk_[A-Za-z0-9_-]{16,32}$/)
  .describe('webhook id (opaque)');

/** open until every device reached a final state (completed, revoked, expired); cancelled by the operator. */
export const OrderState = z.enum(['open', 'completed', 'cancelled']);

export const Order = z
  .object({
    id: orderId,
    createdAt: timestamp,
    placedBy: z
      .string()
      .describe('who placed it: the calling peer (simcred-portal for the portal and the CLI)'),
    label: z.string().nullable(),
    state: OrderState,
    reprovisionPolicy: ReprovisionPolicy.describe(
      "who may ask for its devices' re-provisioning: never, the operator, or also the device after a factory reset",
    ),
    cancelledAt: timestamp.nullable(),
    devices: z.number().int().describe('devices whose registration belongs to this order now'),
    counts: z
      .record(z.string(), z.number().int())
      .describe(
        'devices per registration state (registered, authenticating, referred, delivered, completed, revoked, expired, …); states with none are left out',
      ),
  })
  .strict();
export type Order = z.infer<typeof Order>;

const pageLimit = z
  .string()
  .regex(/^([1-9][0-9]{0,2}|1000)$/)
  .transform(Number)
  .default(50)
  .describe('most items in one answer, 1 to 1000 (default 50)');
const pageCursor = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,14})$/)
  .transform(Number)
  .optional()
  .describe('the `next` of the previous answer (absent: from the start)');

export const listOrders = defineRoute({
  id: 'credentialing.listOrders',
  role: 'credentialing',
  steps: '0a',
  method: 'GET',
  path: '/v1/operator/orders',
  caller: peer('portal'),
  summary:
    'The orders, newest first, each with its per-state device counts. Page with `before` = the `next` of the previous answer; `next` is null on the last page.',
  query: z.object({ before: pageCursor, limit: pageLimit }).strict(),
  response: z
    .object({
      orders: z.array(Order),
      next: z.number().int().nullable().describe('the `before` of the next page'),
    })
    .strict(),
  errors: ['SIMCRED_UNAUTHENTICATED_PEER'],
});

export const showOrder = defineRoute({
  id: 'credentialing.showOrder',
  role: 'credentialing',
  steps: '0a',
  method: 'GET',
  path: '/v1/operator/orders/:orderId',
  caller: peer('portal'),
  summary: 'One order: its state and how many of its devices are in each registration state.',
  params: z.object({ orderId }).strict(),
  response: Order,
  errors: ['SIMCRED_ORDER_UNKNOWN', 'SIMCRED_UNAUTHENTICATED_PEER'],
});

export const cancelOrder = defineRoute({
  id: 'credentialing.cancelOrder',
  role: 'credentialing',
  steps: '0b–9',
  method: 'POST',
  path: '/v1/operator/orders/:orderId/cancel',
  caller: peer('portal'),
  summary:
    'Cancel an order: each of its devices not yet delivered is revoked (as POST /v1/operator/devices/:dsimId/revoke: withdrawn from its registration server, any subscriber released); devices already delivered keep their credentials and are counted as pastDelivery. Idempotent: cancelling again revokes what is still revocable.',
  params: z.object({ orderId }).strict(),
  body: z.object({ reason: z.string().max(200).optional() }).strict(),
  response: z
    .object({
      order: Order,
      revoked: z.number().int().describe('devices this call revoked'),
      alreadyRevoked: z.number().int().describe('devices revoked before this call'),
      pastDelivery: z.number().int().describe('devices already delivered (or later): left as they are'),
    })
    .strict(),
  errors: ['SIMCRED_ORDER_UNKNOWN', 'SIMCRED_UNAUTHENTICATED_PEER'],
});

// --- Webhooks -----------------------------------------------------------------------------------

export const Webhook = z
  .object({
    id: webhookId,
    url: z.string().describe('where each notification is POSTed'),
    orderId: orderId.nullable().describe("only this order's devices (null: every device)"),
    source: z.enum(['api', 'config']).describe('added through the API/CLI, or declared in the config'),
    createdAt: timestamp,
  })
  .strict();

export const addWebhook = defineRoute({
  id: 'credentialing.addWebhook',
  role: 'credentialing',
  steps: 'all',
  method: 'POST',
  path: '/v1/operator/webhooks',
  caller: peer('portal'),
  summary:
    "Subscribe a URL to device state changes (every device, or one order's). Its secret signs every notification; given or generated, it is answered here only, once. Notifications start with the next event (no history). https only, except http to a loopback address or when the config allows it.",
  body: z
    .object({
      url: z.string().max(512).describe('https URL (http only to loopback unless notify.allowHttp)'),
      secret: z
        .string()
        .min(16)
        .max(256)
        .optional()
        .describe('the signing secret (generated, 32 random bytes base64url, when absent)'),
      orderId: orderId.optional(),
    })
    .strict(),
  response: z.object({ webhook: Webhook, secret: z.string().describe('shown once') }).strict(),
  errors: ['SIMCRED_WEBHOOK_URL_REFUSED', 'SIMCRED_ORDER_UNKNOWN', 'SIMCRED_UNAUTHENTICATED_PEER'],
});

export const listWebhooks = defineRoute({
  id: 'credentialing.listWebhooks',
  role: 'credentialing',
  steps: 'all',
  method: 'GET',
  path: '/v1/operator/webhooks',
  caller: peer('portal'),
  summary: 'Every webhook (secrets are never shown again), with how many deliveries are pending and dead.',
  response: z
    .object({
      webhooks: z.array(
        Webhook.extend({
          pending: z.number().int(),
          dead: z.number().int(),
          delivered: z.number().int(),
        }).strict(),
      ),
    })
    .strict(),
  errors: ['SIMCRED_UNAUTHENTICATED_PEER'],
});

export const removeWebhook = defineRoute({
  id: 'credentialing.removeWebhook',
  role: 'credentialing',
  steps: 'all',
  method: 'DELETE',
  path: '/v1/operator/webhooks/:webhookId',
  caller: peer('portal'),
  summary:
    'Unsubscribe: nothing more is sent to it, its pending deliveries are dropped. A webhook declared in the config comes back at the next start while the config names it.',
  params: z.object({ webhookId }).strict(),
  response: z.object({ id: webhookId, removed: z.literal(true) }).strict(),
  errors: ['SIMCRED_WEBHOOK_UNKNOWN', 'SIMCRED_UNAUTHENTICATED_PEER'],
});

export const DeliveryState = z.enum(['pending', 'delivered', 'dead']);

export const Delivery = z
  .object({
    id: z.number().int().describe('the cursor'),
    webhookId,
    eventId: z.number().int(),
    dsimId,
    state: DeliveryState.describe(
      'pending (not yet acknowledged: waiting its turn or its next attempt), delivered (a 2xx came back), dead (given up after notify.maxAttempts or notify.maxAgeSeconds)',
    ),
    attempts: z.number().int(),
    lastError: z.string().nullable().describe('HTTP status or connection error of the last failed attempt'),
    lastAttemptAt: timestamp.nullable(),
    nextAttemptAt: timestamp.nullable().describe('pending: not before this time'),
    createdAt: timestamp,
    deliveredAt: timestamp.nullable(),
  })
  .strict();

export const listDeliveries = defineRoute({
  id: 'credentialing.listDeliveries',
  role: 'credentialing',
  steps: 'all',
  method: 'GET',
  path: '/v1/operator/webhooks/deliveries',
  caller: peer('portal'),
  summary:
    'Notification deliveries, newest first: attempts, last error and next attempt of each. `failed=true` lists only those that failed at least once and are not delivered (pending retries and dead ones). Page with `before` = `next`.',
  query: z
    .object({
      failed: z.enum(['true', 'false']).optional().describe('true: only failed ones'),
      webhookId: webhookId.optional(),
      before: pageCursor,
      limit: pageLimit,
    })
    .strict(),
  response: z
    .object({
      deliveries: z.array(Delivery),
      next: z.number().int().nullable().describe('the `before` of the next page'),
    })
    .strict(),
  errors: ['SIMCRED_UNAUTHENTICATED_PEER'],
});

/**
 * The body of every notification (JSON, POSTed to each matching webhook, signed in the
 * Simcred-Signature header). Not a route: documented in docs/protocol.md and checked by
 * src/notify/receiver.ts.
 */
export const WebhookNotification = z
  .object({
    eventId: z
      .number()
      .int()
      .positive()
      .describe("the audit event's id: unique, and the receiver's idempotency key"),
    dsimId,
    state: DeviceFeedState.describe('the state the device moved to'),
    event: z.string().describe('the audit event that moved it'),
    at: timestamp,
    orderId: orderId.nullable(),
    detail: z
      .string()
      .nullable()
      .describe('the failure code for failed; an IMSI, a server, a reason otherwise'),
    webhookId,
  })
  .strict();
export type WebhookNotification = z.infer<typeof WebhookNotification>;

export const orderRoutes = [
  listOrders,
  showOrder,
  cancelOrder,
  addWebhook,
  listWebhooks,
  listDeliveries,
  removeWebhook,
];
