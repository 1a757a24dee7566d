import type { Kysely } from 'kysely';
import type { Clock } from '../time/clock.js';
import type { PortalTables } from './store.js';

/**
 * Failed attempts per key (an e-mail address, a client address) in a sliding window: after `limit`
 * failures the key is refused until the oldest falls out of the window. Kept in the portal's
 * database, so every portal instance on it (simcred up --workers, several hosts) counts the same
 * attempts: a guesser gains nothing by reaching another instance. Two attempts checked at the same
 * instant on two instances can both pass; the limit is a brake on guessing, not an exact quota.
 *
 * @example
 *   const limiter = new AttemptLimiter({ db, scope: 'sign-in', limit: 5, windowSeconds: 900, clock: systemClock });
 *   const wait = await limiter.retryAfter('ip:127.0.0.1'); // 0 when allowed, else seconds to wait
 */
export class AttemptLimiter {
  private failuresSincePrune = 0;

  constructor(
    private readonly options: {
      db: Kysely<PortalTables>;
      /** What is limited ('sign-in', 'sign-up'): limiters on one table keep their keys apart. */
      scope: string;
      limit: number;
      windowSeconds: number;
      clock: Clock;
    },
  ) {}

  /** Seconds until `key` may try again (0: now). */
  async retryAfter(key: string): Promise<number> {
    const { db, limit, windowSeconds, clock } = this.options;
    // The limit-th most recent failure inside the window: once it leaves, the key is free.
    const recent = await db
      .selectFrom('attempts')
      .select('at')
      .where('key', '=', this.scoped(key))
      .where('at', '>', this.windowStart())
      .orderBy('at', 'desc')
      .limit(limit)
      .execute();
    if (recent.length < limit) return 0;
    const freeAt = Date.parse(recent[limit - 1]!.at) + windowSeconds * 1000;
    return Math.max(1, Math.ceil((freeAt - clock().getTime()) / 1000));
  }

  async fail(key: string): Promise<void> {
    const { db, clock } = this.options;
    await db
      .insertInto('attempts')
      .values({ key: this.scoped(key), at: clock().toISOString() })
      .execute();
    // Attempts older than the window count for nothing: dropped now and then, so a spray of
    // addresses does not grow the table without end.
    if (++this.failuresSincePrune >= 1000) {
      this.failuresSincePrune = 0;
      await db.deleteFrom('attempts').where('at', '<=', this.windowStart()).execute();
    }
  }

  async reset(key: string): Promise<void> {
    await this.options.db.deleteFrom('attempts').where('key', '=', this.scoped(key)).execute();
  }

  private scoped(key: string): string {
    return `${this.options.scope}|${key}`;
  }

  private windowStart(): string {
    return new Date(this.options.clock().getTime() - this.options.windowSeconds * 1000).toISOString();
  }
}
