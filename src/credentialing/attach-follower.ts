import type { Logger } from 'pino';
import { isSimcredError } from '../errors/index.js';
import type { Clock } from '../time/clock.js';
import type { CredentialingConsumers } from './consumers.js';
import type { CredentialingStore } from './store.js';
import { newRequestId, withRequestId } from '../log/context.js';

export interface AttachFollowerOptions {
  store: CredentialingStore;
  consumers: CredentialingConsumers;
  hssUrl: string;
  log: Logger;
  clock: Clock;
  /** How long each call waits at the HSS for a new attach (below the client's 10 s timeout). */
  waitSeconds?: number;
  /** Backoff while the HSS fails: doubling from `retryBaseMs` up to `retryMaxMs`. */
  retryBaseMs?: number;
  retryMaxMs?: number;
}

/** The cursor's name in the credentialing store's feed_cursors. */
export const HSS_ATTACH_FEED = 'hss.subscriberEvents';
const PAGE = 500;

/**
 * Step 12 as the operator sees it: only the HSS knows when a device first attaches with its
 * downloaded credentials. This follower long-polls the HSS's feed of first attaches
 * (hss.subscriberEvents) and records each as the device's 'attached' audit event (detail: the IMSI)
 * — no device is asked about one by one. Each page is recorded with the cursor's move in one
 * transaction, the move conditional on the cursor read: a restart resumes where the database says,
 * and of several instances following at once only one records a page. While the HSS is down it
 * retries with backoff.
 *
 * @example
 *   const follower = new AttachFollower({ store, consumers, hssUrl, log, clock });
 *   follower.start(); … await follower.stop();
 */
export class AttachFollower {
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private pause: { timer: NodeJS.Timeout; resolve(): void } | undefined;

  constructor(private readonly options: AttachFollowerOptions) {}

  start(): void {
    // Its own request id, not that of whatever started it (its calls to the HSS carry it).
    this.loop ??= withRequestId(newRequestId('attach-feed'), () => this.run());
  }

  /** Stops following: the call waiting at the HSS is aborted, a backoff cut short. */
  async stop(): Promise<void> {
    this.abort.abort();
    if (this.pause) {
      clearTimeout(this.pause.timer);
      this.pause.resolve();
    }
    await this.loop;
  }

  /** Reads and records one page; true if it recorded events (tests and the loop). */
  async followOnce(waitSeconds = this.options.waitSeconds ?? 5): Promise<boolean> {
    const { store, consumers, hssUrl } = this.options;
    const after = await store.feedCursor(HSS_ATTACH_FEED);
    const page = await consumers.subscriberEvents(
      hssUrl,
      { after, limit: PAGE, waitSeconds },
      this.abort.signal,
    );
    if (page.events.length === 0 || page.next <= after) return false;
    await store.recordFeedPage(
      HSS_ATTACH_FEED,
      after,
      page.next,
      page.events.map((e) => ({ dsimId: e.dsimId, event: 'attached', detail: e.imsi })),
      this.options.clock(),
    );
    return true;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.abort.signal.aborted) {
      try {
        await this.followOnce();
        failures = 0;
      } catch (err) {
        if (this.abort.signal.aborted) return;
        failures++;
        const base = this.options.retryBaseMs ?? 500;
        const delay = Math.min(base * 2 ** Math.min(failures - 1, 20), this.options.retryMaxMs ?? 30_000);
        this.options.log.warn(
          { code: isSimcredError(err) ? err.code : 'unknown', failures, retryInMs: delay },
          'attach feed: the HSS did not answer; retrying later',
        );
        await new Promise<void>((resolve) => {
          this.pause = { timer: setTimeout(resolve, delay), resolve };
        });
        this.pause = undefined;
      }
    }
  }
}
