import type { Logger } from 'pino';
import { isSimcredError } from '../errors/index.js';
import type { TlsIdentity } from '../http/index.js';
import type { DeviceFeedState } from '../protocol/credentialing.js';
import { OperatorClient } from './operator-client.js';

/** One event of the credentialing server's feed, as the portal keeps it (the cursor as text). */
export interface FeedEvent {
  id: string;
  dsimId: string;
  at: string;
  event: string;
  /** The state the event moves its device to; null for an event that moves none. */
  state: DeviceFeedState | null;
  detail: string | null;
}

export interface FeedPage {
  events: FeedEvent[];
  next: string | null;
}

/**
 * Where device state changes come from: the credentialing server's event feed. One long-poll read at a
 * time, after a cursor; no per-device polling.
 */
export interface DeviceEventSource {
  read(after: string | null, options: { limit: number; waitSeconds: number }): Promise<FeedPage>;
  close(): Promise<void>;
}

/**
 * The feed over the operator API (GET /v1/operator/events, credentialing.deviceEvents) with the
 * portal's client certificate.
 *
 * @example
 *   const page = await new HttpDeviceEventSource(identity, () => url).read(null, { limit: 500, waitSeconds: 25 });
 */
export class HttpDeviceEventSource implements DeviceEventSource {
  private readonly operator: OperatorClient;
  // A long poll in flight must end at once when the portal stops.
  private readonly stopping = new AbortController();

  constructor(
    identity: TlsIdentity,
    private readonly credentialingUrl: () => string,
  ) {
    this.operator = new OperatorClient(identity, { timeoutMs: 60_000 });
  }

  async read(after: string | null, options: { limit: number; waitSeconds: number }): Promise<FeedPage> {
    const page = await this.operator.events(this.credentialingUrl(), after === null ? 0 : Number(after), {
      limit: options.limit,
      waitSeconds: options.waitSeconds,
      signal: this.stopping.signal,
    });
    return { events: page.events.map((e) => ({ ...e, id: String(e.id) })), next: String(page.next) };
  }

  async close(): Promise<void> {
    this.stopping.abort();
    await this.operator.close();
  }
}

/** How often an instance without the lease asks for it again. */
const LEASE_RETRY_MS = 5000;

/** Longest pause between reads while the credentialing server is down. */
const MAX_BACKOFF_MS = 30_000;

/**
 * Follows the feed from the persisted cursor for as long as the portal runs: each page's events are
 * applied (device rows updated, browsers told) before the cursor moves, so a restart resumes where it
 * stopped and an event applied twice changes nothing. While the credentialing server is down it backs
 * off (1 s doubling to 30 s). With a lease, only its holder reads, renewing it before each read.
 *
 * @example
 *   const follower = new FeedFollower({ source, cursor, apply, log });
 *   follower.start(); … await follower.stop();
 */
export class FeedFollower {
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly options: {
      source: DeviceEventSource;
      cursor: { load(): Promise<string | null>; save(cursor: string): Promise<void> };
      apply(events: FeedEvent[]): Promise<void>;
      log: Logger;
      waitSeconds?: number;
      /** When given, the feed is followed only while this instance holds it (one instance at a time). */
      lease?: { acquire(): Promise<boolean>; release(): Promise<void> };
    },
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.options.source.close().catch(() => undefined);
    await this.loop;
    await this.options.lease?.release().catch(() => undefined);
  }

  private async run(): Promise<void> {
    let backoff = 1000;
    let warned = false;
    while (this.running) {
      try {
        if (this.options.lease && !(await this.options.lease.acquire())) {
          await this.sleep(LEASE_RETRY_MS);
          continue;
        }
        const cursor = await this.options.cursor.load();
        const page = await this.options.source.read(cursor, {
          limit: 500,
          waitSeconds: this.options.waitSeconds ?? 25,
        });
        if (!this.running) break;
        if (page.events.length > 0) await this.options.apply(page.events);
        if (page.next !== null && page.next !== cursor) await this.options.cursor.save(page.next);
        backoff = 1000;
        warned = false;
      } catch (err) {
        if (!this.running) break;
        if (!warned) {
          this.options.log.warn(
            { code: isSimcredError(err) ? err.code : undefined, retryInMs: backoff },
            `credentialing event feed unavailable: ${err instanceof Error ? err.message : String(err)}`,
          );
          warned = true;
        }
        await this.sleep(backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
