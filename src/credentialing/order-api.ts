import type { FastifyInstance } from 'fastify';
import { mountRoute } from '../http/index.js';
import {
  addWebhook,
  cancelOrder,
  listDeliveries,
  listOrders,
  listWebhooks,
  removeWebhook,
  showOrder,
} from '../protocol/orders.js';
import type { OrderService } from './orders.js';
import type { WebhookService } from './webhooks.js';
import type { CredentialingStore } from './store.js';
import type { WebhookRow } from './order-store.js';

/** The operator API of orders and webhooks (src/protocol/orders.ts). */
export function mountOrderApi(
  app: FastifyInstance,
  orders: OrderService,
  webhooks: WebhookService,
  store: CredentialingStore,
): void {
  mountRoute(app, listOrders, ({ query }) => orders.list(query.before, query.limit));
  mountRoute(app, showOrder, ({ params }) => orders.show(params.orderId));
  mountRoute(app, cancelOrder, ({ params, body }) => orders.cancel(params.orderId, body.reason));
  mountRoute(app, addWebhook, async ({ body }) => {
    const { webhook, secret } = await webhooks.add(body);
    return { webhook: publicWebhook(webhook), secret };
  });
  mountRoute(app, listWebhooks, async () => {
    const [rows, counts] = await Promise.all([store.webhooks.list(), store.webhooks.deliveryCounts()]);
    return {
      webhooks: rows.map((w) => {
        const c = counts.get(w.id) ?? {};
        return {
          ...publicWebhook(w),
          pending: c.pending ?? 0,
          dead: c.dead ?? 0,
          delivered: c.delivered ?? 0,
        };
      }),
    };
  });
  mountRoute(app, removeWebhook, async ({ params }) => {
    await webhooks.remove(params.webhookId);
    return { id: params.webhookId, removed: true as const };
  });
  mountRoute(app, listDeliveries, async ({ query }) => {
    const rows = await store.webhooks.deliveries({
      failed: query.failed === 'true',
      ...(query.webhookId ? { webhookId: query.webhookId } : {}),
      ...(query.before !== undefined ? { before: query.before } : {}),
      limit: query.limit,
    });
    return {
      deliveries: rows.map((d) => ({
        id: d.id,
        webhookId: d.webhookId,
        eventId: d.eventId,
        dsimId: d.dsimId,
        state: d.state,
        attempts: d.attempts,
        lastError: d.lastError,
        lastAttemptAt: d.lastAttemptAt?.toISOString() ?? null,
        nextAttemptAt: d.state === 'pending' ? d.dueAt.toISOString() : null,
        createdAt: d.createdAt.toISOString(),
        deliveredAt: d.deliveredAt?.toISOString() ?? null,
      })),
      next: rows.length === query.limit ? rows.at(-1)!.id : null,
    };
  });
}

/** A webhook as the API shows it: never its secret. */
function publicWebhook(w: WebhookRow) {
  return { id: w.id, url: w.url, orderId: w.orderId, source: w.source, createdAt: w.createdAt.toISOString() };
}
