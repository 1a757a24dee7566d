import { Readable } from 'node:stream';
import { SimcredError, type ErrorCode } from '../errors/index.js';
import { PeerClient, clientTls, ndjsonLines, type TlsIdentity } from '../http/index.js';
import {
  authoriseTransfer,
  deleteDevice,
  reprovisionDevice,
  resumeDevice,
  suspendDevice,
  closeGroup,
  createGroup,
  listGroups,
  deviceEvents,
  deviceState,
  registerDevices,
  revokeRegistration,
  type DeviceToRegister,
} from '../protocol/credentialing.js';
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
import { healthRoute } from '../protocol/service.js';
import type { z } from 'zod';

type Device = z.infer<typeof DeviceToRegister>;
type Summary = Omit<z.infer<typeof registerDevices.response>, 'error'>;

/**
 * The operator's client of the credentialing server's operator API (mutual TLS with the portal's
 * certificate): streams a device list of any size as NDJSON and follows its progress lines (steps
 * 0a–0b); a device's state, the event feed, revoke and the lifecycle; enrollment groups; orders and
 * webhooks. What the portal, `simcred operator …`, the demo and the benches call.
 *
 * @example
 *   const summary = await new OperatorClient(loadTlsIdentity(pkiDir, 'portal'))
 *     .registerDevices(credentialingUrl, devices, (n) => progress.update(n));
 */
export class OperatorClient {
  private readonly client: PeerClient;

  constructor(identity: TlsIdentity, options: { timeoutMs?: number } = {}) {
    this.client = new PeerClient({
      tls: clientTls(identity),
      timeoutMs: options.timeoutMs ?? 600_000,
      connections: 2,
    });
  }

  /** The credentialing server answers (the portal's readiness). */
  async health(credentialingUrl: string): Promise<void> {
    await this.client.call(credentialingUrl, healthRoute('credentialing'));
  }

  async registerDevices(
    credentialingUrl: string,
    devices: Iterable<Device> | AsyncIterable<Device>,
    onProgress: (registeredLines: number) => void = () => {},
    /** The label of the order the batch becomes (issue 14). */
    options: RegistrationOptions = {},
  ): Promise<Summary> {
    const body = Readable.from(
      (async function* () {
        let buffer = '';
        for await (const device of devices) {
          buffer += `${JSON.stringify(device)}\n`;
          if (buffer.length > 64 * 1024) {
            yield buffer;
            buffer = '';
          }
        }
        if (buffer) yield buffer;
      })(),
    );
    const response = await this.client.open(
      `${credentialingUrl}${registerDevices.path}${registrationQuery(options)}`,
      registerDevices.method,
      body,
      'application/x-ndjson',
    );
    if (response.statusCode >= 400) {
      this.client.decode(registerDevices, response.statusCode, response.headers, await response.body.text());
    }
    let summary: (Summary & { error: { code: string; message: string } | null }) | undefined;
    // The summary line lists up to 1,000 rejections (~150 KB).
    for await (const { text: line } of ndjsonLines(response.body, 1024 * 1024)) {
      const parsed = JSON.parse(line) as { progress?: number } & Partial<typeof summary>;
      if (typeof parsed.progress === 'number') onProgress(parsed.progress);
      else summary = parsed as typeof summary;
    }
    if (!summary)
      throw new SimcredError('SIMCRED_DEPENDENCY_UNAVAILABLE', 'registration stream ended early', {
        retryAfter: 2,
      });
    if (summary.error)
      throw new SimcredError(summary.error.code as ErrorCode, summary.error.message, { retryAfter: 2 });
    const { error: _error, ...rest } = summary;
    return rest;
  }

  /** A device's registration state and audit trail. */
  deviceState(credentialingUrl: string, dsimId: string): Promise<ResponseOf<typeof deviceState>> {
    return this.client.call(credentialingUrl, deviceState, { params: { dsimId } });
  }

  /**
   * The devices' audit events after a cursor, each with the state it moves its device to: follow
   * with `after = next` of the previous answer. With `waitSeconds` (up to 25) and nothing new, the
   * call waits for the next event (long poll).
   *
   * @example
   *   let after = 0;
   *   for (;;) { const page = await operator.events(url, after, { waitSeconds: 25 }); after = page.next; … }
   */
  events(
    credentialingUrl: string,
    after: number,
    options: { limit?: number; waitSeconds?: number; signal?: AbortSignal } = {},
  ): Promise<ResponseOf<typeof deviceEvents>> {
    return this.client.call(credentialingUrl, deviceEvents, {
      query: { after, limit: options.limit, waitSeconds: options.waitSeconds },
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  /** Revokes a registration (after delivery too: its subscriber is then released at the HSS). */
  revoke(
    credentialingUrl: string,
    dsimId: string,
    reason?: string,
  ): Promise<ResponseOf<typeof revokeRegistration>> {
    return this.client.call(credentialingUrl, revokeRegistration, {
      params: { dsimId },
      body: reason ? { reason } : {},
    });
  }

  /** Enrols a device CA as an enrollment group (pushed to its registration servers). */
  /** A delivered subscription suspended, resumed, or ended for good (`simcred operator suspend|resume|delete`). */
  lifecycle(
    credentialingUrl: string,
    change: 'suspend' | 'resume' | 'delete' | 'reprovision',
    dsimId: string,
    reason?: string,
  ): Promise<
    ResponseOf<typeof suspendDevice | typeof resumeDevice | typeof deleteDevice | typeof reprovisionDevice>
  > {
    const route = {
      suspend: suspendDevice,
      resume: resumeDevice,
      delete: deleteDevice,
      reprovision: reprovisionDevice,
    }[change];
    return this.client.call(credentialingUrl, route, { params: { dsimId }, body: reason ? { reason } : {} });
  }

  /**
   * Operator change: hands a delivered device over to another operator (`simcred operator transfer`).
   *
   * @example
   *   await client.transfer(url, dsimId, { toOperatorRoot: bRootPem, toRegistrationServers: [bReg], toServers: { ocsp, hss } });
   */
  transfer(
    credentialingUrl: string,
    dsimId: string,
    body: z.infer<NonNullable<typeof authoriseTransfer.body>>,
  ): Promise<ResponseOf<typeof authoriseTransfer>> {
    return this.client.call(credentialingUrl, authoriseTransfer, { params: { dsimId }, body });
  }

  createGroup(
    credentialingUrl: string,
    body: z.infer<NonNullable<typeof createGroup.body>>,
  ): Promise<ResponseOf<typeof createGroup>> {
    return this.client.call(credentialingUrl, createGroup, { body });
  }

  listGroups(credentialingUrl: string): Promise<ResponseOf<typeof listGroups>> {
    return this.client.call(credentialingUrl, listGroups);
  }

  closeGroup(credentialingUrl: string, groupId: string): Promise<ResponseOf<typeof closeGroup>> {
    return this.client.call(credentialingUrl, closeGroup, { params: { groupId } });
  }

  // --- orders and webhooks (issue 14) ---

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

/** A registration batch's options: the new order's label and reprovision policy, or the order to add to. */
type RegistrationOptions = { label?: string; order?: string; reprovision?: 'never' | 'operator' | 'device' };

/** The registration batch's query: the order's label, or the order to add to (issue 14). */
function registrationQuery(options: RegistrationOptions): string {
  const query = new URLSearchParams();
  if (options.label) query.set('label', options.label);
  if (options.order) query.set('order', options.order);
  if (options.reprovision) query.set('reprovision', options.reprovision);
  const text = query.toString();
  return text ? `?${text}` : '';
}
