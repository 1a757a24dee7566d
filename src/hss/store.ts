import { SqliteAdapter, sql, type Generated, type Kysely } from 'kysely';
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
 * (AES-256-GCM under the key-encryption key, bound to the IMSI). A released IMSI (its subscriber
 * revoked or deleted) is quarantined: allocated again only once the configured period has passed.
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
    /** Set while the operator has the subscription suspended: attach is refused, nothing else changes. */
    suspended_at: string | null;
    package_id: string;
    device_nonce: string;
    package: string;
    created_at: string;
  };
  imsi_allocation: { name: string; next_index: number };
  /**
   * IMSIs whose subscriber was released (revoked or deleted): kept aside until the quarantine has
   * passed, then allocated again (the row goes with the allocation).
   */
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
  '0005_lifecycle': {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('subscribers').addColumn('suspended_at', 'text').execute();
      // An IMSI reused after its quarantine attaches for the first time again: one first attach per
      // subscriber, no longer per IMSI (markActive's conditional update already allows only one).
      if (db.getExecutor().adapter instanceof SqliteAdapter) {
        // SQLite cannot drop a column's UNIQUE: the table is rebuilt, ids (the feed's cursor) kept.
        await db.schema.alterTable('attach_events').renameTo('attach_events_0004').execute();
        await db.schema
          .createTable('attach_events')
          .addColumn('id', 'integer', (c) => autoIncrementKey(db, c))
          .addColumn('imsi', 'text', (c) => c.notNull())
          .addColumn('dsim_id', 'text', (c) => c.notNull())
          .addColumn('at', 'text', (c) => c.notNull())
          .execute();
        await sql`insert into attach_events (id, imsi, dsim_id, at) select id, imsi, dsim_id, at from attach_events_0004`.execute(
          db,
        );
        await db.schema.dropTable('attach_events_0004').execute();
      } else {
        await db.schema.alterTable('attach_events').dropConstraint('attach_events_imsi_key').execute();
      }
      // Allocation looks for the oldest released IMSI past its quarantine.
      await db.schema
        .createIndex('released_imsis_at')
        .on('released_imsis')
        .columns(['released_at', 'imsi'])
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

export type ReleaseOutcome = 'released' | 'absent';
export type SuspendOutcome = 'suspended' | 'resumed' | 'absent';

/** How createSubscriber finds an IMSI: a quarantined one released before `reusableBefore`, else the next index. */
export interface ImsiAllocation {
  capacity: number;
  imsiOf(index: number): string;
  /** Released IMSIs whose release is at or before this instant may be allocated again. */
  reusableBefore: Date;
}

export type Subscriber = {
  imsi: string;
  dsimId: string;
  deviceKeyDigest: string;
  kSealed: string;
  opcSealed: string;
  amf: string;
  sqn: number;
  state: 'provisioned' | 'active';
  suspended: boolean;
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
  suspended: r.suspended_at !== null,
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
   * Allocates an IMSI and inserts the subscriber built for it (without its package yet), in one
   * transaction: an IMSI is consumed only with its subscriber. The oldest released IMSI whose
   * quarantine has passed is taken first, else the next index of the range. Returns the existing
   * subscriber instead when the DSIM_ID already has one (a concurrent request won), so one DSIM_ID
   * never gets two IMSIs.
   */
  async createSubscriber(
    dsimId: string,
    allocation: ImsiAllocation,
    build: (imsi: string) => Subscriber,
  ): Promise<{ subscriber: Subscriber; created: boolean } | 'exhausted'> {
    return this.db.transaction().execute(async (trx) => {
      const existing = await trx
        .selectFrom('subscribers')
        .selectAll()
        .where('dsim_id', '=', dsimId)
        .executeTakeFirst();
      if (existing) return { subscriber: fromRow(existing), created: false };
      let imsi = await this.takeQuarantinedImsi(trx, allocation.reusableBefore);
      if (imsi === undefined) {
        // One atomic increment (row-locked on PostgreSQL): concurrent requests never share an index.
        const counter = await trx
          .updateTable('imsi_allocation')
          .set((eb) => ({ next_index: eb('next_index', '+', 1) }))
          .where('name', '=', 'imsi')
          .returning('next_index')
          .executeTakeFirstOrThrow();
        const index = Number(counter.next_index) - 1;
        if (index >= allocation.capacity) return 'exhausted' as const;
        imsi = allocation.imsiOf(index);
      }
      const s = build(imsi);
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
          suspended_at: null,
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
   * The oldest released IMSI whose quarantine has passed, taken out of released_imsis (undefined when
   * none is). The delete is the claim: of two concurrent allocations only one deletes the row (on
   * PostgreSQL the second waits for the first's commit and deletes nothing), and the loser takes the
   * next index instead.
   */
  private async takeQuarantinedImsi(
    trx: Kysely<HssTables>,
    reusableBefore: Date,
  ): Promise<string | undefined> {
    const candidate = await trx
      .selectFrom('released_imsis')
      .select('imsi')
      .where('released_at', '<=', reusableBefore.toISOString())
      .orderBy('released_at')
      .orderBy('imsi')
      .executeTakeFirst();
    if (!candidate) return undefined;
    const taken = await trx
      .deleteFrom('released_imsis')
      .where('imsi', '=', candidate.imsi)
      .executeTakeFirst();
    return Number(taken.numDeletedRows) === 1 ? candidate.imsi : undefined;
  }

  /**
   * Ends the subscription of a DSIM_ID (revoked or deleted by the operator), attached or not: the row
   * (sealed K and OPc, package) and its AKA state are deleted and the IMSI recorded as released, in
   * one transaction; from then on the IMSI cannot attach, and it is quarantined before any new
   * subscriber gets it. The DSIM_ID may later be credentialed anew, with another IMSI. Idempotent:
   * a DSIM_ID without a subscriber is 'absent'.
   */
  async releaseSubscriber(
    dsimId: string,
    reason: string | null,
    now: Date,
  ): Promise<{ outcome: ReleaseOutcome; imsi: string | null }> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx
        .deleteFrom('subscribers')
        .where('dsim_id', '=', dsimId)
        .returning('imsi')
        .executeTakeFirst();
      if (!row) return { outcome: 'absent' as const, imsi: null };
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

  /**
   * Suspends (`suspended` true) or resumes the subscriber of a DSIM_ID; idempotent (a second suspend
   * keeps the first one's time). Only the flag changes: K, OPc, SQN and whether it ever attached stay.
   */
  async setSuspended(
    dsimId: string,
    suspended: boolean,
    now: Date,
  ): Promise<{ outcome: SuspendOutcome; imsi: string | null }> {
    const row = await this.db
      .updateTable('subscribers')
      .set((eb) => ({
        suspended_at: suspended ? eb.fn.coalesce('suspended_at', eb.val(now.toISOString())) : null,
      }))
      .where('dsim_id', '=', dsimId)
      .returning('imsi')
      .executeTakeFirst();
    if (!row) return { outcome: 'absent', imsi: null };
    return { outcome: suspended ? 'suspended' : 'resumed', imsi: row.imsi };
  }

  /** True if this IMSI was released and not allocated again (what an attach with it is told). */
  async isReleased(imsi: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('released_imsis')
      .select('imsi')
      .where('imsi', '=', imsi)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Released IMSIs still in quarantine or waiting for reuse, oldest first. */
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
