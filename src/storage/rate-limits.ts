import { sql, type Kysely } from 'kysely';
import { inKeyOrder, retryConflicts } from './transactions.js';

/**
 * Request counters of the abuse limits (src/http/rate-limit.ts, docs/abuse-limits.md), one table in
 * each device-facing role's own database, so every instance of the role counts the same requests.
 * Each row is a sliding-window counter: the hits of the current fixed window and of the one before.
 */
export interface RateLimitTables {
  rate_limits: {
    /** `<limit>|<route>|<subject>`, e.g. `address|phlr.challenge|203.0.113.7`. */
    key: string;
    /** floor(time / window length): which window `hits` counts. */
    window_index: number;
    hits: number;
    /** Hits of window `window_index − 1` (0 when that window saw none). */
    previous_hits: number;
    /** When the row counts for nothing any more (ms since the epoch): the end of the next window. */
    expires_at: number;
  };
}

/** The migration step that creates the table (each role calls it from its own migrations). */
export async function createRateLimitTable(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('rate_limits')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('window_index', 'bigint', (c) => c.notNull())
    .addColumn('hits', 'integer', (c) => c.notNull())
    .addColumn('previous_hits', 'integer', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('rate_limits_expiry').on('rate_limits').column('expires_at').execute();
}

/** One counter to bump: its key and the length of its window. */
export interface RateLimitHit {
  key: string;
  windowMs: number;
}

/** A counter after a hit: the window it counts in, its hits there and in the window before. */
export interface RateLimitCount {
  windowIndex: number;
  hits: number;
  previousHits: number;
}

/** How often (at most) one store deletes the rows whose windows are over. */
const PRUNE_EVERY_MS = 60_000;

/**
 * The counters, bumped by one statement per request: a multi-row INSERT … ON CONFLICT DO UPDATE …
 * RETURNING that moves each row to the current window (the old current becomes the previous when it
 * was the window just before, else both restart) and adds the hit. On PostgreSQL each row is locked
 * by its upsert and the rows go in key order, so two instances never lose a hit or deadlock; on
 * SQLite the statement runs alone. An instance whose clock lags counts into the newer window it finds.
 *
 * @example
 *   const store = new RateLimitStore(db); // db: a role's Kysely whose migrations ran createRateLimitTable
 *   const counts = await store.hit([{ key: 'address|phlr.challenge|127.0.0.1', windowMs: 60_000 }], Date.now());
 */
export class RateLimitStore {
  private readonly db: Kysely<RateLimitTables>;
  private prunedAt = 0;

  constructor(db: Kysely<never>) {
    this.db = db as unknown as Kysely<RateLimitTables>;
  }

  /** Adds one hit to each counter at time `nowMs`; returns each counter's state by key. */
  async hit(hits: readonly RateLimitHit[], nowMs: number): Promise<Map<string, RateLimitCount>> {
    if (hits.length === 0) return new Map();
    const rows = inKeyOrder(hits, (h) => h.key).map((h) => {
      const windowIndex = Math.floor(nowMs / h.windowMs);
      return sql`(${h.key}, ${windowIndex}, 1, 0, ${(windowIndex + 2) * h.windowMs})`;
    });
    // SET reads the row as it was before the update (both dialects), so each CASE sees the old window.
    const query = sql<{ key: string; window_index: number | string; hits: number; previous_hits: number }>`
      insert into rate_limits (key, window_index, hits, previous_hits, expires_at)
      values ${sql.join(rows)}
      on conflict (key) do update set
        previous_hits = case
          when rate_limits.window_index >= excluded.window_index then rate_limits.previous_hits
          when rate_limits.window_index = excluded.window_index - 1 then rate_limits.hits
          else 0 end,
        hits = case
          when rate_limits.window_index >= excluded.window_index then rate_limits.hits + 1
          else 1 end,
        expires_at = case
          when rate_limits.window_index >= excluded.window_index then rate_limits.expires_at
          else excluded.expires_at end,
        window_index = case
          when rate_limits.window_index >= excluded.window_index then rate_limits.window_index
          else excluded.window_index end
      returning key, window_index, hits, previous_hits`;
    const result = await retryConflicts(() => query.execute(this.db));
    const counts = new Map<string, RateLimitCount>();
    for (const row of result.rows) {
      counts.set(row.key, {
        windowIndex: Number(row.window_index),
        hits: Number(row.hits),
        previousHits: Number(row.previous_hits),
      });
    }
    if (nowMs - this.prunedAt >= PRUNE_EVERY_MS) {
      this.prunedAt = nowMs;
      await this.prune(nowMs);
    }
    return counts;
  }

  /** Deletes the counters whose windows are over (a spray of addresses does not grow the table for ever). */
  async prune(nowMs: number): Promise<number> {
    const result = await this.db.deleteFrom('rate_limits').where('expires_at', '<', nowMs).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /** Every counter's row (tests, and an operator's look at who is limited). */
  async list(): Promise<(RateLimitCount & { key: string })[]> {
    const rows = await this.db.selectFrom('rate_limits').selectAll().orderBy('key').execute();
    return rows.map((r) => ({
      key: r.key,
      windowIndex: Number(r.window_index),
      hits: Number(r.hits),
      previousHits: Number(r.previous_hits),
    }));
  }
}
