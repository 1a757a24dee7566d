import { z } from 'zod';
import type { Logger } from 'pino';
import { SimcredError, isSimcredError } from '../errors/index.js';
import { createSecureContext } from 'node:tls';
import { Agent, request } from 'undici';
import type { TlsIdentity } from '../http/index.js';

/** The device states the credentialing server's event feed reports (null: an event that moves none). */
export const FeedState = z.enum([
  'registered',
  'authenticated',
  'referred',
  'delivered',
  'completed',
  'attached',
  'failed',
  'expired',
  'revoked',
]);

export const FeedEvent = z.object({
  id: z.union([z.string(), z.number()]).transform(String),
  dsimId: z.string(),
  at: z.string(),
  event: z.string(),
  state: FeedState.nullable(),
  detail: z.string().nullable(),
});
export type FeedEvent = z.infer<typeof FeedEvent>;

const FeedPage = z.object({
  events: z.array(FeedEvent),
  next: z.union([z.string(), z.number()]).transform(String).nullable(),
});
export type FeedPage = z.infer<typeof FeedPage>;

/**
 * Where device state changes come from: the credentialing server's event feed. One long-poll read at a
 * time, after a cursor; no per-device polling.
 */
export interface DeviceEventSource {
  read(after: string | null, options: { limit: number; waitSeconds: number }): Promise<FeedPage>;
  close(): Promise<void>;
}

/**
 * The feed over the operator API: GET /v1/operator/events?after=&limit=&waitSeconds= with the
 * portal's client certificate.
 *
 * @example
 *   const page = await new HttpDeviceEventSource(identity, url).read(null, { limit: 500, waitSeconds: 25 });
 */
export class HttpDeviceEventSource implements DeviceEventSource {
  // Not PeerClient: a long poll in flight must end at once when the portal stops (Agent.destroy).
  private readonly agent: Agent;

  constructor(
    identity: TlsIdentity,
    private readonly credentialingUrl: () => string,
  ) {
    this.agent = new Agent({
      connections: 1,
      connect: {
        secureContext: createSecureContext({ ca: identity.ca, cert: identity.cert, key: identity.key }),
      },
    });
  }

  async read(after: string | null, options: { limit: number; waitSeconds: number }): Promise<FeedPage> {
    const query = new URLSearchParams({
      limit: String(options.limit),
      waitSeconds: String(options.waitSeconds),
    });
    if (after !== null) query.set('after', after);
    const url = `${this.credentialingUrl()}/v1/operator/events?${query.toString()}`;
    let answer: { statusCode: number; text: string };
    try {
      const response = await request(url, {
        method: 'GET',
        dispatcher: this.agent,
        // Longer than the longest wait the feed is asked for.
        headersTimeout: (options.waitSeconds + 30) * 1000,
        bodyTimeout: 30_000,
      });
      answer = { statusCode: response.statusCode, text: await response.body.text() };
    } catch (err) {
      throw new SimcredError('SIMCRED_DEPENDENCY_UNAVAILABLE', `${new URL(url).origin} unreachable`, {
        retryAfter: 2,
        cause: err,
      });
    }
    let json: unknown;
    try {
      json = JSON.parse(answer.text);
    } catch {
      json = undefined;
    }
    if (answer.statusCode !== 200) {
      const code = (json as { code?: string } | undefined)?.code ?? `HTTP ${answer.statusCode}`;
      throw new SimcredError('SIMCRED_DEPENDENCY_UNAVAILABLE', `event feed answered ${code}`, {
        retryAfter: 5,
      });
    }
    const page = FeedPage.safeParse(json);
    if (!page.success) {
      throw new SimcredError(
        'SIMCRED_DEPENDENCY_UNAVAILABLE',
        'event feed answer does not match its schema',
        {
          retryAfter: 5,
        },
      );
    }
    return page.data;
  }

  close(): Promise<void> {
    return this.agent.destroy();
  }
}

/** Longest pause between reads while the credentialing server is down. */
const MAX_BACKOFF_MS = 30_000;

/**
 * Follows the feed from the persisted cursor for as long as the portal runs: each page's events are
 * applied (device rows updated, browsers told) before the cursor moves, so a restart resumes where it
 * stopped and an event applied twice changes nothing. While the credentialing server is down it backs
 * off (1 s doubling to 30 s).
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
  }

  private async run(): Promise<void> {
    let backoff = 1000;
    let warned = false;
    while (this.running) {
      try {
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
