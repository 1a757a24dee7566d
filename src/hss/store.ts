import type { Kysely } from 'kysely';
import { AkaStateStore, createAkaStateTable } from '../aka/state-store.js';
import { openDatabase, type DatabaseConfig, type Migrations } from '../storage/index.js';

/**
 * The HSS's HLR and credential repository: one subscriber per DSIM_ID, K and OPc sealed at rest
 * (AES-256-GCM under the key-encryption key, bound to the IMSI), IMSIs never reused.
 */
interface HssTables {
  subscribers: {
    imsi: string;
    dsim_id: string;
    device_key_digest: string;
    k_sealed: string;
    opc_sealed: string;
    amf: string;
    /** The SQN the package gave the module (its starting point); attach SQNs live in aka_state. */
    sqn: number;
    state: 'provisioned' | 'active';
    package_id: string;
    device_nonce: string;
    package: string;
    created_at: string;
  };
  imsi_allocation: { name: string; next_index: number };
}

const migrations: Migrations = {
  '0001_subscribers': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('subscribers')
        .addColumn('imsi', 'text', (c) => c.primaryKey())
        .addColumn('dsim_id', 'text', (c) => c.notNull().unique())
        .addColumn('device_key_digest', 'text', (c) => c.notNull())
        .addColumn('k_sealed', 'text', (c) => c.notNull())
        .addColumn('opc_sealed', 'text', (c) => c.notNull())
        .addColumn('amf', 'text', (c) => c.notNull())
        .addColumn('sqn', 'bigint', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('package_id', 'text', (c) => c.notNull())
        .addColumn('device_nonce', 'text', (c) => c.notNull())
        .addColumn('package', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('imsi_allocation')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('next_index', 'bigint', (c) => c.notNull())
        .execute();
      await (db as Kysely<HssTables>)
        .insertInto('imsi_allocation')
        .values({ name: 'imsi', next_index: 0 })
        .execute();
    },
  },
  '0002_aka_state': {
    async up(db: Kysely<unknown>) {
      await createAkaStateTable(db);
    },
  },
};

export type Subscriber = {
  imsi: string;
  dsimId: string;
  deviceKeyDigest: string;
  kSealed: string;
  opcSealed: string;
  amf: string;
  sqn: number;
  state: 'provisioned' | 'active';
  packageId: string;
  deviceNonce: string;
  package: string;
};

type Row = HssTables['subscribers'];
const fromRow = (r: Row): Subscriber => ({
  imsi: r.imsi,
  dsimId: r.dsim_id,
  deviceKeyDigest: r.device_key_digest,
  kSealed: r.k_sealed,
  opcSealed: r.opc_sealed,
  amf: r.amf,
  sqn: Number(r.sqn),
  state: r.state,
  packageId: r.package_id,
  deviceNonce: r.device_nonce,
  package: r.package,
});

/** @example const store = await HssStore.open({ kind: 'sqlite', file: 'data/hss.db' }); */
export class HssStore {
  /** SEQ_HE and the pending attach challenge of each IMSI. */
  readonly aka: AkaStateStore;

  private constructor(private readonly db: Kysely<HssTables>) {
    this.aka = new AkaStateStore(db as unknown as Kysely<never>);
  }

  static async open(database: DatabaseConfig): Promise<HssStore> {
    return new HssStore(await openDatabase<HssTables>(database, migrations));
  }

  findByDsimId(dsimId: string): Promise<Subscriber | undefined> {
    return this.findOne('dsim_id', dsimId);
  }

  findByImsi(imsi: string): Promise<Subscriber | undefined> {
    return this.findOne('imsi', imsi);
  }

  /** The subscriber a unique column names (IMSI and DSIM_ID are both unique). */
  private async findOne(column: 'imsi' | 'dsim_id', value: string): Promise<Subscriber | undefined> {
    const row = await this.db
      .selectFrom('subscribers')
      .selectAll()
      .where(column, '=', value)
      .executeTakeFirst();
    return row ? fromRow(row) : undefined;
  }

  /**
   * Allocates the next IMSI index and inserts the subscriber built for it (without its package yet),
   * in one transaction: an IMSI is consumed only with its subscriber. Returns the existing subscriber instead when the
   * DSIM_ID already has one (a concurrent request won), so one DSIM_ID never gets two IMSIs.
   */
  async createSubscriber(
    dsimId: string,
    capacity: number,
    build: (index: number) => Subscriber,
  ): Promise<{ subscriber: Subscriber; created: boolean } | 'exhausted'> {
    return this.db.transaction().execute(async (trx) => {
      const existing = await trx
        .selectFrom('subscribers')
        .selectAll()
        .where('dsim_id', '=', dsimId)
        .executeTakeFirst();
      if (existing) return { subscriber: fromRow(existing), created: false };
      // One atomic increment (row-locked on PostgreSQL): concurrent requests never share an index.
      const counter = await trx
        .updateTable('imsi_allocation')
        .set((eb) => ({ next_index: eb('next_index', '+', 1) }))
        .where('name', '=', 'imsi')
        .returning('next_index')
        .executeTakeFirstOrThrow();
      const index = Number(counter.next_index) - 1;
      if (index >= capacity) return 'exhausted' as const;
      const s = build(index);
      await trx
        .insertInto('subscribers')
        .values({
          imsi: s.imsi,
          dsim_id: s.dsimId,
          device_key_digest: s.deviceKeyDigest,
          k_sealed: s.kSealed,
          opc_sealed: s.opcSealed,
          amf: s.amf,
          sqn: s.sqn,
          state: s.state,
          package_id: s.packageId,
          device_nonce: s.deviceNonce,
          package: s.package,
          created_at: new Date().toISOString(),
        })
        .execute();
      return { subscriber: s, created: true };
    });
  }

  /** The device attached with its downloaded credentials (step 12). */
  async markActive(imsi: string): Promise<void> {
    await this.db.updateTable('subscribers').set({ state: 'active' }).where('imsi', '=', imsi).execute();
  }

  /** Subscribers among these DSIM_IDs that have attached (state 'active'). */
  async countActiveFor(dsimIds: string[]): Promise<number> {
    let n = 0;
    for (let i = 0; i < dsimIds.length; i += 500) {
      const row = await this.db
        .selectFrom('subscribers')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('dsim_id', 'in', dsimIds.slice(i, i + 500))
        .where('state', '=', 'active')
        .executeTakeFirstOrThrow();
      n += Number(row.n);
    }
    return n;
  }

  /** A re-sealed package for a new device nonce (same IMSI, K, OPc). */
  async replacePackage(imsi: string, packageId: string, deviceNonce: string, pkg: string): Promise<void> {
    await this.db
      .updateTable('subscribers')
      .set({ package_id: packageId, device_nonce: deviceNonce, package: pkg })
      .where('imsi', '=', imsi)
      .execute();
  }

  async countSubscribers(): Promise<number> {
    const row = await this.db
      .selectFrom('subscribers')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Subscribers among these DSIM_IDs (what the demo counts against its fleet). */
  async countSubscribersFor(dsimIds: string[]): Promise<number> {
    let n = 0;
    for (let i = 0; i < dsimIds.length; i += 500) {
      const row = await this.db
        .selectFrom('subscribers')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('dsim_id', 'in', dsimIds.slice(i, i + 500))
        .executeTakeFirstOrThrow();
      n += Number(row.n);
    }
    return n;
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
