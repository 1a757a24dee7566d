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
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(private readonly store: HssStore) {
    store.onAttach(() => this.signal.notify());
  }

  async events(query: QueryOf<typeof subscriberEvents>): Promise<ResponseOf<typeof subscriberEvents>> {
    const poll = longPoll(
      () => this.store.attachEventsAfter(query.after, query.limit),
      (found) => found.length > 0,
      query.waitSeconds,
      this.signal,
    );
    this.inFlight.add(poll);
    let events: Awaited<typeof poll>;
    try {
      events = await poll;
    } finally {
      this.inFlight.delete(poll);
    }
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

  /**
   * Releases the waiting polls (the server is closing) and waits until each has read for the last
   * time: the store may close after this, not under a poll.
   */
  async close(): Promise<void> {
    this.signal.close();
    await Promise.allSettled([...this.inFlight]);
  }
}
