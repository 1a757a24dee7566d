import type { Generated, Kysely } from 'kysely';
import { AkaStateStore, createAkaStateTable } from '../aka/state-store.js';
import {
  autoIncrementKey,
  lockFeedTail,
  openDatabase,
  type DatabaseConfig,
  type Migrations,
} from '../storage/index.js';

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
  /** IMSIs whose subscriber was released (revoked before delivery): kept aside, never allocated again. */
  released_imsis: { imsi: string; dsim_id: string; released_at: string; reason: string | null };
  /**
   * Each subscriber's first attach with its downloaded credentials, numbered: the feed the
   * credentialing server follows (hss.subscriberEvents) to record its devices' 'attached'.
   */
  attach_events: { id: Generated<number>; imsi: string; dsim_id: string; at: string };
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
  '0003_released_imsis': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('released_imsis')
        .addColumn('imsi', 'text', (c) => c.primaryKey())
        .addColumn('dsim_id', 'text', (c) => c.notNull())
        .addColumn('released_at', 'text', (c) => c.notNull())
        .addColumn('reason', 'text')
        .execute();
    },
  },
  '0004_attach_events': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('attach_events')
        .addColumn('id', 'integer', (c) => autoIncrementKey(db, c))
        .addColumn('imsi', 'text', (c) => c.notNull().unique())
        .addColumn('dsim_id', 'text', (c) => c.notNull())
        .addColumn('at', 'text', (c) => c.notNull())
        .execute();
    },
  },
};

/** A subscriber's first attach, as the HSS's feed lists it. */
export interface AttachEvent {
  id: number;
  imsi: string;
  dsimId: string;
  at: Date;
}

export type ReleaseOutcome = 'released' | 'attached' | 'absent';

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
  private readonly attachListeners = new Set<() => void>();

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

  /**
   * Releases the subscriber of a DSIM_ID that never attached: the row (sealed K and OPc, package) and
   * its AKA state are deleted and the IMSI recorded as released, in one transaction; the DSIM_ID may
   * later be credentialed anew, with a new IMSI. A subscriber that has attached is left as it is.
   */
  async releaseSubscriber(
    dsimId: string,
    reason: string | null,
    now: Date,
  ): Promise<{ outcome: ReleaseOutcome; imsi: string | null }> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx
        .selectFrom('subscribers')
        .select(['imsi', 'state'])
        .where('dsim_id', '=', dsimId)
        .executeTakeFirst();
      if (!row) return { outcome: 'absent' as const, imsi: null };
      if (row.state !== 'provisioned') return { outcome: 'attached' as const, imsi: row.imsi };
      // Conditional on the state read above: an attach that lands meanwhile keeps the subscriber.
      const deleted = await trx
        .deleteFrom('subscribers')
        .where('imsi', '=', row.imsi)
        .where('state', '=', 'provisioned')
        .executeTakeFirst();
      if (Number(deleted.numDeletedRows) !== 1) return { outcome: 'attached' as const, imsi: row.imsi };
      await (trx as unknown as Kysely<{ aka_state: { subscriber: string } }>)
        .deleteFrom('aka_state')
        .where('subscriber', '=', row.imsi)
        .execute();
      await trx
        .insertInto('released_imsis')
        .values({ imsi: row.imsi, dsim_id: dsimId, released_at: now.toISOString(), reason })
        .execute();
      return { outcome: 'released' as const, imsi: row.imsi };
    });
  }

  /** Released IMSIs, oldest first (what the lifecycle's quarantine will read). */
  async releasedImsis(): Promise<
    { imsi: string; dsimId: string; releasedAt: Date; reason: string | null }[]
  > {
    const rows = await this.db.selectFrom('released_imsis').selectAll().orderBy('released_at').execute();
    return rows.map((r) => ({
      imsi: r.imsi,
      dsimId: r.dsim_id,
      releasedAt: new Date(r.released_at),
      reason: r.reason,
    }));
  }

  /**
   * The device attached with its downloaded credentials (step 12). The first attach (provisioned →
   * active) is also an attach event, in the same transaction; later attaches change nothing.
   * True on the first attach.
   */
  async markActive(imsi: string, now: Date): Promise<boolean> {
    const first = await this.db.transaction().execute(async (trx) => {
      const row = await trx
        .updateTable('subscribers')
        .set({ state: 'active' })
        .where('imsi', '=', imsi)
        .where('state', '=', 'provisioned')
        .returning('dsim_id')
        .executeTakeFirst();
      if (!row) return false;
      // Last statement of the transaction, after the feed lock on PostgreSQL (src/storage/feed.ts).
      await lockFeedTail(trx as unknown as Kysely<unknown>, 'hss.attach_events');
      await trx
        .insertInto('attach_events')
        .values({ imsi, dsim_id: row.dsim_id, at: now.toISOString() })
        .execute();
      return true;
    });
    if (first) for (const listener of this.attachListeners) listener();
    return first;
  }

  /** Called after each first attach is committed (the feed's long polls wait on it). */
  onAttach(listener: () => void): void {
    this.attachListeners.add(listener);
  }

  /** First attaches with an id above `after`, in id order, at most `limit`. */
  async attachEventsAfter(after: number, limit: number): Promise<AttachEvent[]> {
    const rows = await this.db
      .selectFrom('attach_events')
      .selectAll()
      .where('id', '>', after)
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ id: Number(r.id), imsi: r.imsi, dsimId: r.dsim_id, at: new Date(r.at) }));
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
