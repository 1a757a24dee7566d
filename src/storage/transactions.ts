import type { Kysely, Transaction } from 'kysely';

/**
 * PostgreSQL's answers that mean "this transaction lost a race and was rolled back whole; run it
 * again": 40001 serialization_failure and 40P01 deadlock_detected. Nothing of the failed attempt was
 * committed, so running the same work again cannot write anything twice. A unique violation (23505)
 * is not one of them: each store decides that race in its own statement (INSERT … ON CONFLICT, a
 * conditional UPDATE), and a 23505 that still escapes is a bug to be seen, not retried away.
 */
const TRANSACTION_CONFLICTS = new Set(['40001', '40P01']);

/** How often a transaction that lost a race is run before its error is let through. */
export const TRANSACTION_ATTEMPTS = 4;

/** True when a driver error is a serialization failure or a deadlock (running it again is safe). */
export function isTransactionConflict(err: unknown): boolean {
  return TRANSACTION_CONFLICTS.has(String((err as { code?: unknown } | undefined)?.code ?? ''));
}

/**
 * Runs `work` in one transaction (SQLite: BEGIN IMMEDIATE, src/storage/database.ts; PostgreSQL:
 * READ COMMITTED), again from the start if PostgreSQL rolled it back for a serialization failure or
 * a deadlock, at most {@link TRANSACTION_ATTEMPTS} times. `work` must touch nothing but the
 * transaction (no side effects outside it), so that running it again is safe.
 *
 * @example
 *   const moved = await transact(db, async (trx) => { … return changed; });
 */
export async function transact<DB, T>(
  db: Kysely<DB>,
  work: (trx: Transaction<DB>) => Promise<T>,
): Promise<T> {
  return retryConflicts(() => db.transaction().execute(work));
}

/**
 * Runs a single statement (its own transaction), or any `attempt` that is safe to repeat, again when
 * it lost a race, as {@link transact} does.
 */
export async function retryConflicts<T>(attempt: () => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (n >= TRANSACTION_ATTEMPTS || !isTransactionConflict(err)) throw err;
      // A short, growing, jittered pause so the two losers of a deadlock do not meet again at once.
      await new Promise((resolve) => setTimeout(resolve, n * 5 + Math.random() * 10 * n));
    }
  }
}

/**
 * The rows of a multi-row upsert in key order, one per key. On PostgreSQL an INSERT … ON CONFLICT
 * locks its rows in the order given: two upserts of overlapping sets in different orders would
 * deadlock, and one that names a key twice with DO UPDATE fails ("cannot affect row a second
 * time"), where SQLite, one writer at a time, applies them in turn. In one order, the second upsert
 * just waits for the first. `keep` says which of a key's rows SQLite's statement would have left:
 * the last for DO UPDATE (the default), the first for DO NOTHING.
 *
 * @example
 *   await db.insertInto('registrations').values(inKeyOrder(rows, (r) => r.dsim_id)).onConflict(…)
 */
export function inKeyOrder<T>(
  rows: readonly T[],
  key: (row: T) => string,
  keep: 'first' | 'last' = 'last',
): T[] {
  const byKey = new Map<string, T>();
  for (const row of rows) {
    const k = key(row);
    if (keep === 'first' && byKey.has(k)) continue;
    byKey.set(k, row);
  }
  return [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, row]) => row);
}
