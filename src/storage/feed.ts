import { PostgresAdapter, sql, type Kysely } from 'kysely';

/**
 * Event feeds by cursor (the credentialing server's audit events, the HSS's attach events): a table
 * with an auto-numbered id that readers follow with `id > after`. That is only safe if an id, once a
 * reader has seen a larger one, can never be committed later.
 *
 * SQLite gives that for free: every write transaction holds the database's one write lock from its
 * first write to its commit, so ids are handed out in commit order. PostgreSQL does not: two
 * transactions take ids 11 and 12 from the sequence, 12 commits first, a reader answers it and moves
 * its cursor to 12, then 11 commits and no reader will ever see it. So on PostgreSQL every transaction
 * that writes feed rows first takes one transaction-scoped advisory lock (held to its commit or
 * rollback) right before its feed insert: the id is drawn and committed under the lock, so ids commit
 * in order and `id > after` misses nothing. The price is that these commits queue behind one
 * another; each holds the lock only for its last insert and its commit (the feed insert is the last
 * statement of the transaction, so no transaction waits for another's row lock while holding it).
 */
export async function lockFeedTail(db: Kysely<unknown>, feed: FeedLock): Promise<void> {
  if (db.getExecutor().adapter instanceof PostgresAdapter) {
    await sql`select pg_advisory_xact_lock(${FEED_LOCK_KEYS[feed]})`.execute(db);
  }
}

/** The feeds, each with its own advisory lock key (any stable number, unique per feed). */
export type FeedLock = 'credentialing.audit_events' | 'hss.attach_events' | 'portal.portal_events';
const FEED_LOCK_KEYS: Record<FeedLock, number> = {
  'credentialing.audit_events': 0x51c7ed01,
  'hss.attach_events': 0x51c7ed02,
  'portal.portal_events': 0x51c7ed03,
};

/**
 * Wakes the long polls of one feed in this process when the store commits a feed row. Other
 * processes sharing the database (simcred up --workers, several instances) cannot signal here, so a
 * waiting poll also re-reads every `recheckMs`.
 *
 * @example
 *   const signal = new FeedSignal();
 *   store.onCommit(() => signal.notify());
 *   const answer = await longPoll(() => store.eventsAfter(after, limit), (a) => a.length > 0, 25, signal);
 */
export class FeedSignal {
  private waiters = new Set<() => void>();
  private closed = false;

  /** A feed row was committed: every waiting poll re-reads. */
  notify(): void {
    const waiters = this.waiters;
    this.waiters = new Set();
    for (const wake of waiters) wake();
  }

  /**
   * Armed before a read, so a row committed during the read is not missed: `woken` resolves on the
   * next notify, after `ms`, or at once once closed; `cancel` drops it.
   */
  arm(ms: number): { woken: Promise<void>; cancel(): void } {
    if (this.closed) return { woken: Promise.resolve(), cancel: () => {} };
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => {
      wake = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve();
      };
    });
    const timer = setTimeout(wake, ms);
    this.waiters.add(wake);
    return { woken, cancel: wake };
  }

  /** Releases every waiting poll (they answer what they have) and every later one at once. */
  close(): void {
    this.closed = true;
    this.notify();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

/** How often a waiting poll re-reads for rows other processes committed. */
export const FEED_RECHECK_MS = 1000;

/**
 * Reads, and with nothing new waits for a feed row (signalled or seen on a re-read) for up to
 * `waitSeconds`, then answers what it read last. No busy loop: between reads it sleeps on the signal.
 */
export async function longPoll<T>(
  read: () => Promise<T>,
  found: (answer: T) => boolean,
  waitSeconds: number,
  signal: FeedSignal,
  recheckMs = FEED_RECHECK_MS,
): Promise<T> {
  const deadline = Date.now() + waitSeconds * 1000;
  for (;;) {
    const left = deadline - Date.now();
    const wait = signal.arm(Math.max(0, Math.min(left, recheckMs)));
    let answer: T;
    try {
      answer = await read();
    } catch (err) {
      wait.cancel();
      throw err;
    }
    if (found(answer) || left <= 0 || signal.isClosed) {
      wait.cancel();
      return answer;
    }
    await wait.woken;
  }
}
