import type { Kysely } from 'kysely';
import { transact } from '../storage/transactions.js';
import type { PendingChallenge } from './network.js';

/**
 * The network side's per-subscriber AKA state, one table in the role's own database, shared by the
 * preliminary HLR (PIMSI) and the HSS (IMSI): SEQ_HE (TS 33.102 Annex C.1.2, the SEQ of the last SQN
 * handed out) and at most one pending challenge (RAND, XRES, expiry).
 */
export interface AkaStateTables {
  aka_state: {
    subscriber: string;
    seq_he: number;
    pending_rand: string | null;
    pending_xres: string | null;
    pending_expires_at: string | null;
  };
}

/** The migration step that creates the table (each role calls it from its own migrations). */
export async function createAkaStateTable(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('aka_state')
    .addColumn('subscriber', 'text', (c) => c.primaryKey())
    .addColumn('seq_he', 'bigint', (c) => c.notNull())
    .addColumn('pending_rand', 'text')
    .addColumn('pending_xres', 'text')
    .addColumn('pending_expires_at', 'text')
    .execute();
}

/**
 * @example
 *   const aka = new AkaStateStore(db); // db: the role's Kysely, whose migrations ran createAkaStateTable
 *   // vectorFor(seq) returns { pending: { rand, xres, expiresAt }, result: { rand, autn } }
 *   const { rand, autn } = await aka.nextChallenge(imsi, (seq) => vectorFor(seq));
 */
export class AkaStateStore {
  private readonly db: Kysely<AkaStateTables>;

  constructor(db: Kysely<never>) {
    this.db = db as unknown as Kysely<AkaStateTables>;
  }

  /**
   * A new challenge in one transaction (one commit): SEQ_HE + 1 is taken, `make` builds the vector
   * from it (synchronously), and its RAND/XRES replace any pending challenge. If `make` throws,
   * nothing changes.
   */
  async nextChallenge<T>(
    subscriber: string,
    make: (seq: number) => { pending: PendingChallenge; result: T },
  ): Promise<T> {
    return transact(this.db, async (trx) => {
      const { pending, result } = make(await takeSeq(trx, subscriber));
      await storePending(trx, subscriber, pending);
      return result;
    });
  }

  async currentSeq(subscriber: string): Promise<number> {
    const row = await this.db
      .selectFrom('aka_state')
      .select('seq_he')
      .where('subscriber', '=', subscriber)
      .executeTakeFirst();
    return row ? Number(row.seq_he) : 0;
  }

  /** Resynchronised SEQ_HE (TS 33.102 §6.3.5), set only if nobody moved it meanwhile. */
  async resyncSeq(subscriber: string, from: number, to: number): Promise<void> {
    await this.db
      .updateTable('aka_state')
      .set({ seq_he: to })
      .where('subscriber', '=', subscriber)
      .where('seq_he', '=', from)
      .execute();
  }

  /**
   * Removes and returns the pending challenge, so each is answered at most once (a wrong RES costs
   * the device a new challenge, which bounds guessing). Expired ones are removed too.
   */
  async takePending(subscriber: string, now = new Date()): Promise<PendingChallenge | undefined> {
    return transact(this.db, async (trx) => {
      const row = await trx
        .selectFrom('aka_state')
        .select(['pending_rand', 'pending_xres', 'pending_expires_at'])
        .where('subscriber', '=', subscriber)
        .executeTakeFirst();
      if (!row?.pending_rand || !row.pending_xres || !row.pending_expires_at) return undefined;
      const cleared = await trx
        .updateTable('aka_state')
        .set({ pending_rand: null, pending_xres: null, pending_expires_at: null })
        .where('subscriber', '=', subscriber)
        .where('pending_rand', '=', row.pending_rand)
        .executeTakeFirst();
      // Another request took it first.
      if (Number(cleared.numUpdatedRows) === 0) return undefined;
      const expiresAt = new Date(row.pending_expires_at);
      if (expiresAt <= now) return undefined;
      return {
        rand: Buffer.from(row.pending_rand, 'hex'),
        xres: Buffer.from(row.pending_xres, 'hex'),
        expiresAt,
      };
    });
  }
}

/** SEQ_HE + 1, taken atomically (the first SEQ of a subscriber is 1). */
async function takeSeq(db: Kysely<AkaStateTables>, subscriber: string): Promise<number> {
  const row = await db
    .insertInto('aka_state')
    .values({ subscriber, seq_he: 1, pending_rand: null, pending_xres: null, pending_expires_at: null })
    .onConflict((oc) =>
      oc.column('subscriber').doUpdateSet((eb) => ({ seq_he: eb('aka_state.seq_he', '+', 1) })),
    )
    .returning('seq_he')
    .executeTakeFirstOrThrow();
  return Number(row.seq_he);
}

async function storePending(
  db: Kysely<AkaStateTables>,
  subscriber: string,
  pending: PendingChallenge,
): Promise<void> {
  await db
    .updateTable('aka_state')
    .set({
      pending_rand: pending.rand.toString('hex'),
      pending_xres: pending.xres.toString('hex'),
      pending_expires_at: pending.expiresAt.toISOString(),
    })
    .where('subscriber', '=', subscriber)
    .execute();
}
