import { SqliteAdapter, sql, type Generated, type Kysely } from 'kysely';
import { RateLimitStore, createRateLimitTable } from '../storage/rate-limits.js';
import { AkaStateStore, createAkaStateTable } from '../aka/state-store.js';
import {
  autoIncrementKey,
  lockFeedTail,
  openDatabase,
  transact,
  type DatabaseConfig,
  type Migrations,
} from '../storage/index.js';
import type { ResealableStore } from '../keys/rekey.js';
import { resealableSubscribers } from '../storage/sealed-secrets.js';

/**
 * The HSS's HLR and credential repository: one subscriber per DSIM_ID and generation, K and OPc
 * sealed at rest (AES-256-GCM under the key-encryption key, bound to the IMSI). A generation is one
 * credentialing of the device: the first is 1, each re-provisioning (or re-registration after a
 * revocation) the next. A new generation's subscriber lives beside the old one until it first
 * attaches (or the credentialing server has its receipt), when the older ones are released. A
 * released IMSI (its subscriber revoked, deleted or superseded) is quarantined: allocated again only
 * once the configured period has passed.
 */
interface HssTables {
  subscribers: {
    imsi: string;
    dsim_id: string;
    /** Which credentialing of the DSIM_ID this subscriber is (1, then one more per re-provisioning). */
    generation: number;
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
  '0006_generations': {
    async up(db: Kysely<unknown>) {
      // One subscriber per DSIM_ID and generation (was: per DSIM_ID), so a re-provisioned device's
      // new subscriber can be made while the old one still serves it.
      if (db.getExecutor().adapter instanceof SqliteAdapter) {
        // SQLite cannot drop a column's UNIQUE: the table is rebuilt with its rows.
        await db.schema.alterTable('subscribers').renameTo('subscribers_0005').execute();
        await db.schema
          .createTable('subscribers')
          .addColumn('imsi', 'text', (c) => c.primaryKey())
          .addColumn('dsim_id', 'text', (c) => c.notNull())
          .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(1))
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
          .addColumn('suspended_at', 'text')
          .addUniqueConstraint('subscribers_dsim_generation_key', ['dsim_id', 'generation'])
          .execute();
        await sql`insert into subscribers (imsi, dsim_id, generation, device_key_digest, k_sealed, opc_sealed, amf, sqn, state, package_id, device_nonce, package, created_at, suspended_at)
          select imsi, dsim_id, 1, device_key_digest, k_sealed, opc_sealed, amf, sqn, state, package_id, device_nonce, package, created_at, suspended_at from subscribers_0005`.execute(
          db,
        );
        await db.schema.dropTable('subscribers_0005').execute();
      } else {
        await db.schema
          .alterTable('subscribers')
          .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(1))
          .execute();
        await db.schema.alterTable('subscribers').dropConstraint('subscribers_dsim_id_key').execute();
        await db.schema
          .alterTable('subscribers')
          .addUniqueConstraint('subscribers_dsim_generation_key', ['dsim_id', 'generation'])
          .execute();
      }
    },
  },
  // The abuse limits' counters of the device routes (src/http/rate-limit.ts).
  '0007_rate_limits': {
    async up(db: Kysely<unknown>) {
      await createRateLimitTable(db);
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
  generation: number;
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
  generation: Number(r.generation),
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

  /** Counters of the abuse limits on this role's device routes, shared by its instances. */
  readonly rateLimits: RateLimitStore;

  private constructor(private readonly db: Kysely<HssTables>) {
    this.rateLimits = new RateLimitStore(db as unknown as Kysely<never>);
    this.aka = new AkaStateStore(db as unknown as Kysely<never>);
  }

  static async open(database: DatabaseConfig): Promise<HssStore> {
    return new HssStore(await openDatabase<HssTables>(database, migrations));
  }

  /** The DSIM_ID's newest subscriber (its latest generation), if it has one. */
  async findByDsimId(dsimId: string): Promise<Subscriber | undefined> {
    const row = await this.db
      .selectFrom('subscribers')
      .selectAll()
      .where('dsim_id', '=', dsimId)
      .orderBy('generation', 'desc')
      .executeTakeFirst();
    return row ? fromRow(row) : undefined;
  }

  /** Every subscriber the DSIM_ID has, oldest generation first (two while a re-provisioning runs). */
  async subscribersOf(dsimId: string): Promise<Subscriber[]> {
    const rows = await this.db
      .selectFrom('subscribers')
      .selectAll()
      .where('dsim_id', '=', dsimId)
      .orderBy('generation')
      .execute();
    return rows.map(fromRow);
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
   * Allocates an IMSI and inserts the subscriber built for it (without its package yet), in one
   * transaction: an IMSI is consumed only with its subscriber. The oldest released IMSI whose
   * quarantine has passed is taken first, else the next index of the range. Returns the existing
   * subscriber instead when the DSIM_ID already has one of this generation (a retry, or a concurrent
   * request that won), so one credentialing of a device never gets two IMSIs.
   *
   * The insert decides a race (ON CONFLICT on (dsim_id, generation)): on PostgreSQL two requests
   * may both find no subscriber, and the loser's insert then waits for the winner's commit and
   * inserts nothing. The loser's transaction is rolled back, so the IMSI it took goes back too
   * (the index, or the quarantined IMSI), and it answers the winner's subscriber.
   */
  async createSubscriber(
    dsimId: string,
    generation: number,
    allocation: ImsiAllocation,
    build: (imsi: string) => Subscriber,
  ): Promise<{ subscriber: Subscriber; created: boolean } | 'exhausted'> {
    const lost = new Error('lost the race');
    const created = await transact(this.db, async (trx) => {
      const existing = await trx
        .selectFrom('subscribers')
        .selectAll()
        .where('dsim_id', '=', dsimId)
        .where('generation', '=', generation)
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
      const inserted = await trx
        .insertInto('subscribers')
        .values({
          imsi: s.imsi,
          dsim_id: s.dsimId,
          generation,
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
        .onConflict((oc) => oc.columns(['dsim_id', 'generation']).doNothing())
        .executeTakeFirst();
      // A concurrent request inserted this generation's subscriber first: roll back the IMSI taken.
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) !== 1) throw lost;
      return { subscriber: { ...s, generation }, created: true };
    }).catch((err: unknown) => {
      if (err === lost) return 'lost' as const;
      throw err;
    });
    if (created !== 'lost') return created;
    const winner = await this.db
      .selectFrom('subscribers')
      .selectAll()
      .where('dsim_id', '=', dsimId)
      .where('generation', '=', generation)
      .executeTakeFirstOrThrow();
    return { subscriber: fromRow(winner), created: false };
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
   * Ends the subscriptions of a DSIM_ID (revoked, deleted or superseded), attached or not: the rows
   * (sealed K and OPc, package) and their AKA state are deleted and the IMSIs recorded as released,
   * in one transaction; from then on those IMSIs cannot attach, and they are quarantined before any
   * new subscriber gets them. `upToGeneration` limits it to that generation and older ones, so a
   * release queued before a re-registration never ends the newer subscriber. The DSIM_ID may later
   * be credentialed anew, with another IMSI. Idempotent: a DSIM_ID without such a subscriber is
   * 'absent'. `imsi` is the newest IMSI released.
   */
  async releaseSubscriber(
    dsimId: string,
    reason: string | null,
    now: Date,
    upToGeneration?: number,
  ): Promise<{ outcome: ReleaseOutcome; imsi: string | null }> {
    return transact(this.db, async (trx) => {
      const imsis = await releaseWithin(trx, dsimId, upToGeneration, reason, now);
      return imsis.length === 0
        ? { outcome: 'absent' as const, imsi: null }
        : { outcome: 'released' as const, imsi: imsis.at(-1)! };
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
   * A re-provisioned device's first attach on its new subscriber also ends its older generations
   * (released as 'reprovisioned'), in that transaction: from then on only the new one can attach.
   * True on the first attach.
   */
  async markActive(imsi: string, now: Date): Promise<boolean> {
    const first = await transact(this.db, async (trx) => {
      const row = await trx
        .updateTable('subscribers')
        .set({ state: 'active' })
        .where('imsi', '=', imsi)
        .where('state', '=', 'provisioned')
        .returning(['dsim_id', 'generation'])
        .executeTakeFirst();
      if (!row) return false;
      if (Number(row.generation) > 1) {
        await releaseWithin(trx, row.dsim_id, Number(row.generation) - 1, 'reprovisioned', now);
      }
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

  /**
   * A package sealed for a device nonce (same IMSI, K, OPc), stored unless one for that nonce is
   * there already: of two requests for one session that raced (a proof that reached two credentialing
   * instances), the first stored wins and both answer with it, so a device has one package. Returns
   * the package stored.
   */
  async replacePackage(
    imsi: string,
    packageId: string,
    deviceNonce: string,
    pkg: string,
  ): Promise<{ packageId: string; package: string }> {
    const updated = await this.db
      .updateTable('subscribers')
      .set({ package_id: packageId, device_nonce: deviceNonce, package: pkg })
      .where('imsi', '=', imsi)
      .where((eb) => eb.or([eb('device_nonce', '!=', deviceNonce), eb('package', '=', '')]))
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 1) return { packageId, package: pkg };
    const stored = await this.db
      .selectFrom('subscribers')
      .select(['package_id', 'package'])
      .where('imsi', '=', imsi)
      .executeTakeFirstOrThrow();
    return { packageId: stored.package_id, package: stored.package };
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

  /** KEK rotation (src/keys/rekey.ts): sealed K/OPc pages in IMSI order, replaced only if unchanged. */
  resealable(): ResealableStore {
    return resealableSubscribers(this.db, 'imsi');
  }

  /** Answers when the database does (readiness checks). */
  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  /** Subscribers by state (operations metrics): one GROUP BY. */
  async countByState(): Promise<Record<string, number>> {
    const rows = await this.db
      .selectFrom('subscribers')
      .select(['state', sql<number>`count(*)`.as('n')])
      .groupBy('state')
      .execute();
    return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

/**
 * Deletes the DSIM_ID's subscribers (up to a generation) with their AKA state and records their
 * IMSIs as released, inside the caller's transaction. Returns the released IMSIs, oldest generation
 * first.
 */
async function releaseWithin(
  trx: Kysely<HssTables>,
  dsimId: string,
  upToGeneration: number | undefined,
  reason: string | null,
  now: Date,
): Promise<string[]> {
  let query = trx.deleteFrom('subscribers').where('dsim_id', '=', dsimId);
  if (upToGeneration !== undefined) query = query.where('generation', '<=', upToGeneration);
  const rows = await query.returning(['imsi', 'generation']).execute();
  rows.sort((a, b) => Number(a.generation) - Number(b.generation));
  for (const { imsi } of rows) {
    await (trx as unknown as Kysely<{ aka_state: { subscriber: string } }>)
      .deleteFrom('aka_state')
      .where('subscriber', '=', imsi)
      .execute();
    await trx
      .insertInto('released_imsis')
      .values({ imsi, dsim_id: dsimId, released_at: now.toISOString(), reason })
      .execute();
  }
  return rows.map((r) => r.imsi);
}
