import { sql, type Kysely } from 'kysely';
import { RateLimitStore, createRateLimitTable } from '../storage/rate-limits.js';
import { AkaStateStore, createAkaStateTable } from '../aka/state-store.js';
import {
  inKeyOrder,
  openDatabase,
  transact,
  type DatabaseConfig,
  type Migrations,
} from '../storage/index.js';
import type { ResealableStore } from '../keys/rekey.js';
import { resealableSubscribers } from '../storage/sealed-secrets.js';

/**
 * The preliminary HLR's subscribers (role 50): one per PIMSI as the factory made it, K_PIMSI and
 * OPc_PIMSI sealed at rest (bound to the PIMSI); their AKA state (SEQ_HE, pending challenge) in
 * the shared aka_state table.
 */
interface PhlrTables {
  subscribers: {
    pimsi: string;
    dsim_id: string;
    k_sealed: string;
    opc_sealed: string;
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
        .addColumn('imported_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('import_state')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('offset', 'bigint', (c) => c.notNull())
        .execute();
      await createAkaStateTable(db);
      await (db as Kysely<PhlrTables>)
        .insertInto('import_state')
        .values({ name: 'subscribers', offset: 0 })
        .execute();
    },
  },
  // The abuse limits' counters of the device routes (src/http/rate-limit.ts).
  '0002_rate_limits': {
    async up(db: Kysely<unknown>) {
      await createRateLimitTable(db);
    },
  },
};

export interface PhlrSubscriber {
  pimsi: string;
  dsimId: string;
  kSealed: string;
  opcSealed: string;
}

type Row = PhlrTables['subscribers'];
const fromRow = (r: Row): PhlrSubscriber => ({
  pimsi: r.pimsi,
  dsimId: r.dsim_id,
  kSealed: r.k_sealed,
  opcSealed: r.opc_sealed,
});

/** @example const store = await PhlrStore.open({ kind: 'sqlite', file: 'data/phlr.db' }); */
export class PhlrStore {
  /** SEQ_HE and the pending challenge of each PIMSI. */
  readonly aka: AkaStateStore;

  /** Counters of the abuse limits on this role's device routes, shared by its instances. */
  readonly rateLimits: RateLimitStore;

  private constructor(private readonly db: Kysely<PhlrTables>) {
    this.rateLimits = new RateLimitStore(db as unknown as Kysely<never>);
    this.aka = new AkaStateStore(db as unknown as Kysely<never>);
  }

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
  async importSubscribers(subscribers: PhlrSubscriber[], offset: number): Promise<number> {
    const ordered = inKeyOrder(subscribers, (s) => s.pimsi, 'first');
    return transact(this.db, async (trx) => {
      let added = 0;
      const importedAt = new Date().toISOString();
      for (let i = 0; i < ordered.length; i += 150) {
        const result = await trx
          .insertInto('subscribers')
          .values(
            ordered.slice(i, i + 150).map((s) => ({
              pimsi: s.pimsi,
              dsim_id: s.dsimId,
              k_sealed: s.kSealed,
              opc_sealed: s.opcSealed,
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

  async countSubscribers(): Promise<number> {
    const row = await this.db
      .selectFrom('subscribers')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** KEK rotation (src/keys/rekey.ts): sealed K/OPc pages in PIMSI order, replaced only if unchanged. */
  resealable(): ResealableStore {
    return resealableSubscribers(this.db, 'pimsi');
  }

  /** Answers when the database does (readiness checks). */
  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
