import { FeedSignal, longPoll } from '../storage/index.js';
import type { subscriberEvents } from '../protocol/hss.js';
import type { QueryOf, ResponseOf } from '../protocol/route.js';
import type { HssStore } from './store.js';

/**
 * The HSS's feed of first attaches (hss.subscriberEvents): what the credentialing server follows to
 * record 'attached' for its devices. A read with nothing new waits (long poll) until an attach is
 * committed in this process, or is seen on a re-read (another process sharing the store), or the
 * wait ends.
 *
 * @example
 *   const feed = new AttachFeed(store);
 *   const { events, next } = await feed.events({ after: 0, limit: 500, waitSeconds: 5 });
 */
export class AttachFeed {
  private readonly signal = new FeedSignal();

  constructor(private readonly store: HssStore) {
    store.onAttach(() => this.signal.notify());
  }

  async events(query: QueryOf<typeof subscriberEvents>): Promise<ResponseOf<typeof subscriberEvents>> {
    const events = await longPoll(
      () => this.store.attachEventsAfter(query.after, query.limit),
      (found) => found.length > 0,
      query.waitSeconds,
      this.signal,
    );
    return {
      events: events.map((e) => ({
        id: e.id,
        dsimId: e.dsimId,
        imsi: e.imsi,
        at: e.at.toISOString(),
        event: 'attached' as const,
      })),
      next: events.at(-1)?.id ?? query.after,
    };
  }

  /** Releases the waiting polls (the server is closing). */
  close(): void {
    this.signal.close();
  }
}
