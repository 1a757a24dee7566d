import type { Kysely } from 'kysely';
import type { PendingChallenge } from '../aka/network.js';
import { openDatabase, type DatabaseConfig, type Migrations } from '../storage/index.js';

/**
 * The preliminary HLR's subscribers (role 50): one per PIMSI as the factory made it, K_PIMSI and
 * OPc_PIMSI sealed at rest (bound to the PIMSI), the network's SQN counter SEQ_HE, and at most one
 * pending challenge (RAND, XRES, expiry).
 */
interface PhlrTables {
  subscribers: {
    pimsi: string;
    dsim_id: string;
    k_sealed: string;
    opc_sealed: string;
    /** SEQ_HE (TS 33.102 Annex C.1.2): the SEQ of the last SQN handed out. */
    seq_he: number;
    pending_rand: string | null;
    pending_xres: string | null;
    pending_expires_at: string | null;
    imported_at: string;
  };
  /** How far the factory's subscriber list has been read (bytes), so each import reads only new lines. */
  import_state: { name: string; offset: number };
}

const migrations: Migrations = {
  '0001_subscribers': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('subscribers')
        .addColumn('pimsi', 'text', (c) => c.primaryKey())
        .addColumn('dsim_id', 'text', (c) => c.notNull())
        .addColumn('k_sealed', 'text', (c) => c.notNull())
        .addColumn('opc_sealed', 'text', (c) => c.notNull())
        .addColumn('seq_he', 'bigint', (c) => c.notNull())
        .addColumn('pending_rand', 'text')
        .addColumn('pending_xres', 'text')
        .addColumn('pending_expires_at', 'text')
        .addColumn('imported_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('import_state')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('offset', 'bigint', (c) => c.notNull())
        .execute();
      await (db as Kysely<PhlrTables>)
        .insertInto('import_state')
        .values({ name: 'subscribers', offset: 0 })
        .execute();
    },
  },
};

export interface PhlrSubscriber {
  pimsi: string;
  dsimId: string;
  kSealed: string;
  opcSealed: string;
  seqHe: number;
}

type Row = PhlrTables['subscribers'];
const fromRow = (r: Row): PhlrSubscriber => ({
  pimsi: r.pimsi,
  dsimId: r.dsim_id,
  kSealed: r.k_sealed,
  opcSealed: r.opc_sealed,
  seqHe: Number(r.seq_he),
});

/** @example const store = await PhlrStore.open({ kind: 'sqlite', file: 'data/phlr.db' }); */
export class PhlrStore {
  private constructor(private readonly db: Kysely<PhlrTables>) {}

  static async open(database: DatabaseConfig): Promise<PhlrStore> {
    return new PhlrStore(await openDatabase<PhlrTables>(database, migrations));
  }

  async find(pimsi: string): Promise<PhlrSubscriber | undefined> {
    const row = await this.db
      .selectFrom('subscribers')
      .selectAll()
      .where('pimsi', '=', pimsi)
      .executeTakeFirst();
    return row ? fromRow(row) : undefined;
  }

  /** Byte offset of the subscriber list read so far. */
  async importOffset(): Promise<number> {
    const row = await this.db
      .selectFrom('import_state')
      .select('offset')
      .where('name', '=', 'subscribers')
      .executeTakeFirstOrThrow();
    return Number(row.offset);
  }

  /**
   * Adds subscribers (a PIMSI already known keeps its record and SQN) and moves the read offset, in
   * one transaction. Returns how many were new.
   */
  async importSubscribers(subscribers: Omit<PhlrSubscriber, 'seqHe'>[], offset: number): Promise<number> {
    return this.db.transaction().execute(async (trx) => {
      let added = 0;
      const importedAt = new Date().toISOString();
      for (let i = 0; i < subscribers.length; i += 150) {
        const result = await trx
          .insertInto('subscribers')
          .values(
            subscribers.slice(i, i + 150).map((s) => ({
              pimsi: s.pimsi,
              dsim_id: s.dsimId,
              k_sealed: s.kSealed,
              opc_sealed: s.opcSealed,
              seq_he: 0,
              pending_rand: null,
              pending_xres: null,
              pending_expires_at: null,
              imported_at: importedAt,
            })),
          )
          .onConflict((oc) => oc.column('pimsi').doNothing())
          .executeTakeFirst();
        added += Number(result.numInsertedOrUpdatedRows ?? 0);
      }
      await trx.updateTable('import_state').set({ offset }).where('name', '=', 'subscribers').execute();
      return added;
    });
  }

  /** Takes the next SEQ atomically (SEQ_HE + 1) and returns it; undefined for an unknown PIMSI. */
  async nextSeq(pimsi: string): Promise<number | undefined> {
    const row = await this.db
      .updateTable('subscribers')
      .set((eb) => ({ seq_he: eb('seq_he', '+', 1) }))
      .where('pimsi', '=', pimsi)
      .returning('seq_he')
      .executeTakeFirst();
    return row ? Number(row.seq_he) : undefined;
  }

  async currentSeq(pimsi: string): Promise<number | undefined> {
    return (await this.find(pimsi))?.seqHe;
  }

  /** Resynchronised SEQ_HE (TS 33.102 §6.3.5), set only if nobody moved it meanwhile. */
  async resyncSeq(pimsi: string, from: number, to: number): Promise<void> {
    await this.db
      .updateTable('subscribers')
      .set({ seq_he: to })
      .where('pimsi', '=', pimsi)
      .where('seq_he', '=', from)
      .execute();
  }

  async setPending(pimsi: string, pending: PendingChallenge): Promise<void> {
    await this.db
      .updateTable('subscribers')
      .set({
        pending_rand: pending.rand.toString('hex'),
        pending_xres: pending.xres.toString('hex'),
        pending_expires_at: pending.expiresAt.toISOString(),
      })
      .where('pimsi', '=', pimsi)
      .execute();
  }

  /**
   * Removes and returns the pending challenge, so each challenge is answered at most once (a wrong
   * RES costs the device a new challenge, which bounds guessing). Expired ones are removed too.
   */
  async takePending(pimsi: string, now = new Date()): Promise<PendingChallenge | undefined> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx
        .selectFrom('subscribers')
        .select(['pending_rand', 'pending_xres', 'pending_expires_at'])
        .where('pimsi', '=', pimsi)
        .executeTakeFirst();
      if (!row?.pending_rand || !row.pending_xres || !row.pending_expires_at) return undefined;
      const cleared = await trx
        .updateTable('subscribers')
        .set({ pending_rand: null, pending_xres: null, pending_expires_at: null })
        .where('pimsi', '=', pimsi)
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

  async countSubscribers(): Promise<number> {
    const row = await this.db
      .selectFrom('subscribers')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
