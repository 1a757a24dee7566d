import type { Kysely } from 'kysely';
import type { PendingChallenge } from '../aka/network.js';
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
    /** Highest SEQ the HSS has used (TS 33.102 Annex C), for AKA at attach. */
    sqn: number;
    state: 'provisioned' | 'active';
    package_id: string;
    device_nonce: string;
    package: string;
    created_at: string;
    /** The attach challenge waiting for its RES (step 12), if any. */
    pending_rand: string | null;
    pending_xres: string | null;
    pending_expires_at: string | null;
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
  '0002_attach_challenge': {
    async up(db: Kysely<unknown>) {
      for (const column of ['pending_rand', 'pending_xres', 'pending_expires_at']) {
        await db.schema.alterTable('subscribers').addColumn(column, 'text').execute();
      }
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
  private constructor(private readonly db: Kysely<HssTables>) {}

  static async open(database: DatabaseConfig): Promise<HssStore> {
    return new HssStore(await openDatabase<HssTables>(database, migrations));
  }

  async findByDsimId(dsimId: string): Promise<Subscriber | undefined> {
    const row = await this.db
      .selectFrom('subscribers')
      .selectAll()
      .where('dsim_id', '=', dsimId)
      .executeTakeFirst();
    return row ? fromRow(row) : undefined;
  }

  async findByImsi(imsi: string): Promise<Subscriber | undefined> {
    const row = await this.db
      .selectFrom('subscribers')
      .selectAll()
      .where('imsi', '=', imsi)
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
          pending_rand: null,
          pending_xres: null,
          pending_expires_at: null,
        })
        .execute();
      return { subscriber: s, created: true };
    });
  }

  /** Takes the next attach SEQ atomically (SEQ_HE + 1, the `sqn` column) and returns it. */
  async nextSeq(imsi: string): Promise<number | undefined> {
    const row = await this.db
      .updateTable('subscribers')
      .set((eb) => ({ sqn: eb('sqn', '+', 1) }))
      .where('imsi', '=', imsi)
      .returning('sqn')
      .executeTakeFirst();
    return row ? Number(row.sqn) : undefined;
  }

  /** Resynchronised SEQ_HE (TS 33.102 §6.3.5), set only if nobody moved it meanwhile. */
  async resyncSeq(imsi: string, from: number, to: number): Promise<void> {
    await this.db
      .updateTable('subscribers')
      .set({ sqn: to })
      .where('imsi', '=', imsi)
      .where('sqn', '=', from)
      .execute();
  }

  async setPending(imsi: string, pending: PendingChallenge): Promise<void> {
    await this.db
      .updateTable('subscribers')
      .set({
        pending_rand: pending.rand.toString('hex'),
        pending_xres: pending.xres.toString('hex'),
        pending_expires_at: pending.expiresAt.toISOString(),
      })
      .where('imsi', '=', imsi)
      .execute();
  }

  /** Removes and returns the pending attach challenge (each is answered at most once). */
  async takePending(imsi: string, now = new Date()): Promise<PendingChallenge | undefined> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx
        .selectFrom('subscribers')
        .select(['pending_rand', 'pending_xres', 'pending_expires_at'])
        .where('imsi', '=', imsi)
        .executeTakeFirst();
      if (!row?.pending_rand || !row.pending_xres || !row.pending_expires_at) return undefined;
      const cleared = await trx
        .updateTable('subscribers')
        .set({ pending_rand: null, pending_xres: null, pending_expires_at: null })
        .where('imsi', '=', imsi)
        .where('pending_rand', '=', row.pending_rand)
        .executeTakeFirst();
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
