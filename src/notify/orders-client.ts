import { PeerClient, clientTls, type TlsIdentity } from '../http/index.js';
import {
  addWebhook,
  cancelOrder,
  listDeliveries,
  listOrders,
  listWebhooks,
  removeWebhook,
  showOrder,
} from '../protocol/orders.js';
import type { ResponseOf } from '../protocol/route.js';

/**
 * The operator's client of orders and webhooks at the credentialing server (mutual TLS with the
 * portal's certificate, as `simcred operator register`): what `simcred operator orders|webhooks` call.
 *
 * @example
 *   const client = new OrdersClient(loadTlsIdentity(pkiDir, 'portal'));
 *   const { webhook, secret } = await client.addWebhook(url, { url: 'https://ops.example/hook' });
 */
export class OrdersClient {
  private readonly client: PeerClient;

  constructor(identity: TlsIdentity, options: { timeoutMs?: number } = {}) {
    // A cancellation revokes device by device: a large order takes a while.
    this.client = new PeerClient({
      tls: clientTls(identity),
      timeoutMs: options.timeoutMs ?? 600_000,
      connections: 2,
    });
  }

  listOrders(
    url: string,
    query: { before?: number; limit?: number } = {},
  ): Promise<ResponseOf<typeof listOrders>> {
    return this.client.call(url, listOrders, { query });
  }

  showOrder(url: string, orderId: string): Promise<ResponseOf<typeof showOrder>> {
    return this.client.call(url, showOrder, { params: { orderId } });
  }

  cancelOrder(url: string, orderId: string, reason?: string): Promise<ResponseOf<typeof cancelOrder>> {
    return this.client.call(url, cancelOrder, { params: { orderId }, body: reason ? { reason } : {} });
  }

  addWebhook(
    url: string,
    body: { url: string; secret?: string; orderId?: string },
  ): Promise<ResponseOf<typeof addWebhook>> {
    return this.client.call(url, addWebhook, { body });
  }

  listWebhooks(url: string): Promise<ResponseOf<typeof listWebhooks>> {
    return this.client.call(url, listWebhooks, {});
  }

  removeWebhook(url: string, webhookId: string): Promise<ResponseOf<typeof removeWebhook>> {
    return this.client.call(url, removeWebhook, { params: { webhookId } });
  }

  deliveries(
    url: string,
    query: { failed?: boolean; webhookId?: string; before?: number; limit?: number } = {},
  ): Promise<ResponseOf<typeof listDeliveries>> {
    return this.client.call(url, listDeliveries, {
      query: {
        ...(query.failed ? { failed: 'true' } : {}),
        webhookId: query.webhookId,
        before: query.before,
        limit: query.limit,
      },
    });
  }

  close(): Promise<void> {
    return this.client.close();
  }
}
