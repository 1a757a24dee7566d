import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { Agent, request } from 'undici';
import { randomToken } from '../crypto/digest.js';
import { SimcredError, isSimcredError } from '../errors/index.js';
import { CoalescedRun } from '../storage/index.js';
import { stateOfEvent } from '../protocol/credentialing.js';
import type { WebhookNotification } from '../protocol/orders.js';
import { signatureHeader } from '../notify/signature.js';
import { checkWebhookUrl } from '../notify/url.js';
import { systemClock, type Clock } from '../time/clock.js';
import type { ClaimedDelivery, WebhookRow } from './order-store.js';
import type { CredentialingStore } from './store.js';

/** How notifications are sent (config `notify`, docs/configuration.md). */
export interface NotifySettings {
  /** http:// webhook URLs to any host (otherwise https, or http to loopback only). */
  allowHttp: boolean;
  /** A delivery is dead after this many attempts… */
  maxAttempts: number;
  /** …or once it is this old. */
  maxAgeSeconds: number;
  /** Backoff after a failure: doubling from retryBaseMs up to retryMaxMs, with jitter. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** One POST's timeout (connect, headers, body); a timeout is a failure. */
  timeoutMs: number;
  /** Deliveries in flight at once (each a different device). */
  concurrency: number;
  /** Webhooks declared in the config. */
  webhooks: { url: string; secret: string; orderId?: string | undefined }[];
}

export const DEFAULT_NOTIFY: NotifySettings = {
  allowHttp: false,
  maxAttempts: 50,
  maxAgeSeconds: 3 * 24 * 3600,
  retryBaseMs: 1000,
  retryMaxMs: 300_000,
  timeoutMs: 10_000,
  concurrency: 32,
  webhooks: [],
};

/** Audit events read per page when deliveries are made from the feed; deliveries claimed per round. */
const EXPAND_PAGE = 1000;
const CLAIM_BATCH = 200;

export interface WebhookDispatcherOptions {
  store: CredentialingStore;
  log: Logger;
  settings: NotifySettings;
  clock?: Clock;
  /** How often retries due and other instances' events are looked for (default 500 ms). */
  pollMs?: number;
  /** How long a claimed delivery is this sender's (default: the timeout plus 20 s). */
  leaseMs?: number;
}

/**
 * Sends every device state change to the webhooks that want it, at least once, in order per device.
 *
 * Two steps, both restartable from the database alone:
 * 1. Deliveries are made from the audit feed: for each webhook, the events after its cursor whose
 *    state is not null (stateOfEvent) and whose order matches become delivery rows, and the cursor
 *    moves, in one transaction (conditionally: of several instances one wins a page).
 * 2. Deliveries are claimed (a lease) and POSTed, signed; a 2xx marks one delivered, anything else
 *    is retried with backoff until it is dead. Only the oldest pending delivery of each (webhook,
 *    device) can be claimed, so a device's events arrive in order; different devices go in parallel.
 *
 * @example
 *   const dispatcher = new WebhookDispatcher({ store, log, settings });
 *   dispatcher.start(); // kicked by every audit commit, and every pollMs
 */
export class WebhookDispatcher {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly loop = new CoalescedRun(
    () => this.drain(),
    (err: unknown) =>
      this.options.log.warn(
        { code: isSimcredError(err) ? err.code : 'unknown', err: isSimcredError(err) ? undefined : err },
        'webhooks: drain failed',
      ),
    'webhooks',
  );
  private readonly clock: Clock;
  private readonly agent: Agent;
  private unsubscribe: (() => void) | undefined;
  private prunedAt = 0;

  constructor(private readonly options: WebhookDispatcherOptions) {
    this.clock = options.clock ?? systemClock;
    this.agent = new Agent({
      connections: Math.max(4, options.settings.concurrency),
      keepAliveTimeout: 10_000,
      connect: { timeout: options.settings.timeoutMs },
    });
  }

  start(): void {
    this.unsubscribe = this.options.store.onAudit(() => this.kick());
    this.timer = setInterval(() => this.kick(), this.options.pollMs ?? 500);
    this.timer.unref();
    this.kick();
  }

  /** Drain soon (coalesced). */
  kick(): void {
    this.loop.kick();
  }

  idle(): Promise<void> {
    return this.loop.idle();
  }

  /** Stops; what is pending stays in the outbox for the next start (of this or another instance). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.loop.stop();
    this.unsubscribe?.();
    if (this.timer) clearInterval(this.timer);
    await this.idle();
    await this.agent.close();
  }

  /** Makes deliveries from new events, then sends what is due until nothing is. */
  async drain(): Promise<void> {
    await this.prune();
    for (;;) {
      if (this.stopped) return;
      // Each round first makes deliveries of what was committed meanwhile: under a steady flow of
      // events the rounds never run dry, and new events must not wait for them to.
      const webhooks = await this.options.store.webhooks.list();
      if (webhooks.length === 0) return;
      for (const webhook of webhooks) await this.expand(webhook);
      const claimed = await this.options.store.webhooks.claim(this.clock(), this.leaseMs(), CLAIM_BATCH);
      if (claimed.length === 0) return;
      await this.sendRound(claimed, new Map(webhooks.map((w) => [w.id, w])));
    }
  }

  /** Delivered rows are kept as long as a delivery may live (notify.maxAgeSeconds), pruned hourly. */
  private async prune(): Promise<void> {
    const now = this.clock().getTime();
    if (now - this.prunedAt < 3_600_000) return;
    this.prunedAt = now;
    await this.options.store.webhooks.pruneDelivered(
      new Date(now - this.options.settings.maxAgeSeconds * 1000),
    );
  }

  private leaseMs(): number {
    return this.options.leaseMs ?? this.options.settings.timeoutMs + 20_000;
  }

  /** Step 1 for one webhook: its cursor through the feed, each page in one transaction. */
  private async expand(webhook: WebhookRow): Promise<void> {
    const { store } = this.options;
    let from = webhook.position;
    for (;;) {
      const events = await store.auditEventsAfter(from, EXPAND_PAGE);
      if (events.length === 0) return;
      const to = events.at(-1)!.id;
      const deliveries = [];
      for (const e of events) {
        const state = stateOfEvent(e.event);
        if (state === null) continue;
        if (webhook.orderId !== null && e.orderId !== webhook.orderId) continue;
        const notification: WebhookNotification = {
          eventId: e.id,
          dsimId: e.dsimId,
          state,
          event: e.event,
          at: e.at.toISOString(),
          orderId: e.orderId,
          detail: e.detail,
          webhookId: webhook.id,
        };
        deliveries.push({ eventId: e.id, dsimId: e.dsimId, body: JSON.stringify(notification) });
      }
      // Another instance moved this cursor first: its deliveries stand; the next drain reads on.
      if (!(await store.webhooks.expand(webhook.id, from, to, deliveries, this.clock()))) return;
      from = to;
      if (events.length < EXPAND_PAGE) return;
    }
  }

  /**
   * Step 2 for one claimed round (at most one delivery per device and webhook), `concurrency` at a
   * time; after each acknowledged delivery the device's next one is claimed at once (claimNext), so a
   * burst of one device's events does not wait a round per event. A webhook that cannot be reached at all (connection refused, timeout) is not tried again in
   * this round: its other deliveries wait the same backoff instead of each failing on their own.
   */
  private async sendRound(claimed: ClaimedDelivery[], webhooks: Map<string, WebhookRow>): Promise<void> {
    const { store, settings } = this.options;
    const unreachable = new Map<string, { error: string; delayMs: number }>();
    const queue = [...claimed];
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        // A device's deliveries one after the other: each acknowledged one lets its next be claimed.
        for (let delivery: ClaimedDelivery | undefined = next; delivery;) {
          const webhook: WebhookRow | undefined =
            webhooks.get(delivery.webhookId) ?? (await store.webhooks.find(delivery.webhookId));
          if (!webhook) break; // removed meanwhile, its deliveries with it
          const down = unreachable.get(webhook.id);
          if (down) {
            await this.failed(delivery, `not sent: ${down.error}`, down.delayMs);
            break;
          }
          const outcome = await this.post(webhook, delivery);
          if (outcome === 'ok') {
            await store.webhooks.delivered([delivery.id], this.clock());
            delivery = this.stopped
              ? undefined
              : await store.webhooks.claimNext(webhook.id, delivery.dsimId, this.clock(), this.leaseMs());
            continue;
          }
          const delayMs = this.backoffMs(delivery.attempts);
          if (outcome.unreachable) unreachable.set(webhook.id, { error: outcome.error, delayMs });
          this.options.log.warn(
            {
              webhookId: webhook.id,
              eventId: delivery.eventId,
              attempts: delivery.attempts,
              error: outcome.error,
            },
            'webhook delivery failed; retrying later',
          );
          await this.failed(delivery, outcome.error, delayMs);
          break;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(settings.concurrency, claimed.length) }, worker));
  }

  private async failed(delivery: ClaimedDelivery, error: string, delayMs: number): Promise<void> {
    const { settings, store } = this.options;
    const now = this.clock();
    const dead =
      delivery.attempts >= settings.maxAttempts ||
      now.getTime() + delayMs - delivery.createdAt.getTime() > settings.maxAgeSeconds * 1000;
    if (dead)
      this.options.log.warn(
        { webhookId: delivery.webhookId, eventId: delivery.eventId, attempts: delivery.attempts, error },
        'webhook delivery dead: given up',
      );
    await store.webhooks.failed(
      delivery.id,
      error,
      dead ? 'dead' : { dueAt: new Date(now.getTime() + delayMs) },
    );
  }

  /** Doubling from retryBaseMs to retryMaxMs; "equal jitter": between half and all of it. */
  private backoffMs(attempts: number): number {
    const { retryBaseMs, retryMaxMs } = this.options.settings;
    const full = Math.min(retryBaseMs * 2 ** Math.min(attempts - 1, 30), retryMaxMs);
    return Math.round(full / 2 + (Math.random() * full) / 2);
  }

  /** One signed POST. The secret goes into the HMAC only, never into a log line or an error. */
  private async post(
    webhook: WebhookRow,
    delivery: ClaimedDelivery,
  ): Promise<'ok' | { error: string; unreachable: boolean }> {
    const timestamp = Math.floor(this.clock().getTime() / 1000);
    try {
      const response = await request(webhook.url, {
        method: 'POST',
        dispatcher: this.agent,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'simcred-webhooks/1',
          'simcred-signature': signatureHeader(webhook.secret, timestamp, delivery.body),
          'simcred-event-id': String(delivery.eventId),
        },
        body: delivery.body,
        headersTimeout: this.options.settings.timeoutMs,
        bodyTimeout: this.options.settings.timeoutMs,
      });
      await response.body.dump().catch(() => undefined);
      if (response.statusCode >= 200 && response.statusCode < 300) return 'ok';
      return { error: `HTTP ${response.statusCode}`, unreachable: false };
    } catch (err) {
      const code = (err as { code?: string }).code;
      return { error: `unreachable: ${code ?? (err as Error).name}`, unreachable: true };
    }
  }
}

/**
 * The operator API's side of webhooks: add (URL checked, secret generated when not given), list,
 * remove, deliveries, and the webhooks the config declares (kept in step with it at start).
 */
export class WebhookService {
  constructor(
    private readonly store: CredentialingStore,
    private readonly settings: NotifySettings,
    private readonly clock: Clock = systemClock,
  ) {}

  async add(input: {
    url: string;
    secret?: string | undefined;
    orderId?: string | undefined;
  }): Promise<{ webhook: WebhookRow; secret: string }> {
    checkWebhookUrl(input.url, this.settings.allowHttp);
    const order = input.orderId === undefined ? undefined : await this.store.orders.find(input.orderId);
    if (input.orderId !== undefined && !order)
      throw new SimcredError('SIMCRED_ORDER_UNKNOWN', `no order ${input.orderId}`);
    const secret = input.secret ?? randomToken(32);
    // A webhook for one order is sent its events from the order's start, even if added later.
    const webhook = await this.store.webhooks.add(
      { id: `whk_${randomToken(16)}`, url: input.url, secret, orderId: input.orderId ?? null, source: 'api' },
      this.clock(),
      order?.feedPosition,
    );
    return { webhook, secret };
  }

  async remove(id: string): Promise<void> {
    if (!(await this.store.webhooks.remove(id)))
      throw new SimcredError('SIMCRED_WEBHOOK_UNKNOWN', `no webhook ${id}`);
  }

  /**
   * The config's webhooks as rows (id derived from URL, secret and order, so every instance and
   * every restart agrees); config rows the config no longer names are removed.
   */
  async syncConfig(): Promise<void> {
    const ids: string[] = [];
    for (const w of this.settings.webhooks) {
      checkWebhookUrl(w.url, this.settings.allowHttp);
      const id = `whk_${createHash('sha256')
        .update(`${w.url}\0${w.secret}\0${w.orderId ?? ''}`)
        .digest('base64url')
        .slice(0, 22)}`;
      ids.push(id);
      const order = w.orderId === undefined ? undefined : await this.store.orders.find(w.orderId);
      await this.store.webhooks.add(
        { id, url: w.url, secret: w.secret, orderId: w.orderId ?? null, source: 'config' },
        this.clock(),
        order?.feedPosition,
      );
    }
    await this.store.webhooks.removeConfigWebhooksExcept(ids);
  }
}
