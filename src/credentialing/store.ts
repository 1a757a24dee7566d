import {
  sql,
  type ColumnType,
  type ExpressionBuilder,
  type Generated,
  type Kysely,
  type Selectable,
  type UpdateResult,
} from 'kysely';
import { RateLimitStore, createRateLimitTable } from '../storage/rate-limits.js';
import { randomToken, tokenDigest } from '../crypto/digest.js';
import {
  autoIncrementKey,
  inKeyOrder,
  lockFeedTail,
  openDatabase,
  retryConflicts,
  transact,
  type DatabaseConfig,
  type Migrations,
} from '../storage/index.js';
import { GroupStore } from './group-store.js';
import { OrderStore, WebhookStore, orderMigrations, type OrderTables } from './order-store.js';

/**
 * The credentialing server's records, one row per device. Every state change is a conditional update
 * (`… WHERE state = expected`), so retries, replays, concurrent requests and several server instances
 * sharing one database can never move a device twice (DESIGN §4.2).
 *
 *   registered → authenticating → referred → delivered → completed
 *        ↑______________|  ↑_______|   (a failed step undoes the session; a referred device
 *                                       whose delivery failed may open a new one)
 *   any state before delivered → revoked;  registered or authenticating past its expiry, or referred
 *   past its expiry with its ticket lapsed → expired (a periodic sweep, or the late device, finds it)
 *   after delivery (the subscription's life, docs/architecture.md):
 *     delivered | completed ⇄ suspended (resume goes back to the state it came from, `resume_state`)
 *     delivered | completed | suspended → revoked (the HSS subscriber is released)
 *   any state → deleted (final: the subscription ends for good and the DSIM_ID is never registered again)
 *   re-provisioning: delivered | completed → registered with a fresh registration nonce and the next
 *     generation (also a re-provisioning not yet delivered, to start it over); the device goes
 *     through the flow again, and its old subscription ends once the new one is in use
 *   operator change (docs/architecture.md): delivered | completed → transferring → transferred (final:
 *     the device confirmed another operator's credential; the subscriber here is deleted)
 *
 * Every change is also an audit event, written in its transaction; the audit events, numbered, are
 * the operator's event feed (credentialing.deviceEvents), each mapped to the state it moves its
 * device to by EVENT_STATES in src/protocol/credentialing.ts.
 */
export type RegistrationStateName =
  | 'registered'
  | 'authenticating'
  | 'referred'
  | 'delivered'
  | 'completed'
  | 'revoked'
  | 'expired'
  | 'suspended'
  | 'deleted'
  | 'transferring'
  | 'transferred';

export interface CredentialingTables {
  registrations: {
    dsim_id: string;
    registration_nonce: string;
    registration_server: string;
    /** Further registration servers the record is pushed to (JSON array; null: none). */
    also_at: ColumnType<string | null, string | null | undefined, string | null>;
    state: RegistrationStateName;
    expires_at: string;
    pushed: number;
    session_id: string | null;
    device_nonce: string | null;
    session_nonce: string | null;
    challenge: string | null;
    session_expires_at: string | null;
    device_certificate: string | null;
    provisioning_server: string | null;
    ticket_digest: string | null;
    ticket_expires_at: string | null;
    imsi: string | null;
    package_id: string | null;
    package: string | null;
    /** While suspended: the state a resume goes back to (delivered or completed). */
    resume_state: RegistrationStateName | null;
    /**
     * Which credentialing of the device this registration is: 1, then one more per re-provisioning
     * and per re-registration after a revocation. The HSS keeps a subscriber per generation, and
     * every release names the newest generation it may end, so it never ends a newer one.
     */
    generation: ColumnType<number, number | undefined, number>;
    updated_at: string;
    /** The order (registration batch) this registration came from; null for rows older than orders. */
    order_id: ColumnType<string | null, string | null | undefined, string | null>;
  };
  /** Enrollment groups (group-store.ts): a device CA enrolled instead of a list of DSIM_IDs. */
  enrollment_groups: {
    id: string;
    name: string;
    ca_subject: string;
    ca_sha256: string;
    dsim_pattern: string | null;
    cap: number | null;
    admitted: number;
    /** JSON array of URLs. */
    registration_servers: string;
    active: number;
    /** The order its admitted devices' registrations belong to (one per group). */
    order_id: string;
    created_at: string;
  };
  /** Each device admitted through a group, once: what its cap counts. */
  group_members: { dsim_id: string; group_id: string; admitted_at: string };
  audit_events: {
    id: Generated<number>;
    dsim_id: string;
    at: string;
    event: string;
    detail: string | null;
    /** The device's order when the event happened (filled in by insertAudit). */
    order_id: ColumnType<string | null, string | null | undefined, string | null>;
  };
  /** Device nonces that opened a session, per DSIM_ID (digests): a replayed step 3 is refused. */
  device_nonces: {
    dsim_id: string;
    nonce_digest: string;
    at: string;
  };
  /**
   * The outbox of calls to peers that a state change owes them, written in the same transaction as
   * the change: withdraw a used or revoked registration from its registration server, release a
   * revoked device's subscriber at the HSS. A sender drains it, retrying with backoff.
   */
  peer_actions: {
    id: Generated<number>;
    kind: PeerActionKind;
    dsim_id: string;
    target: string;
    due_at: string;
    attempts: number;
    claim: string | null;
    last_error: string | null;
    created_at: string;
    /** The registration's generation when the action was queued: the newest one it may affect. */
    generation: ColumnType<number | null, number | null | undefined, number | null>;
  };
  feed_cursors: FeedCursorTable['feed_cursors'];
  /** Operator change: each transfer authorised, with its signed statement (transfer-store section below). */
  transfers: {
    transfer_id: string;
    dsim_id: string;
    statement: string;
    /** What the operator asked for (B's root digest and URLs), to answer a repeated request the same. */
    target: string;
    expires_at: string;
    created_at: string;
    confirmed_at: string | null;
    new_package_id: string | null;
  };
}

/**
 * How far this server has followed a peer's event feed (the HSS's first attaches): the last id it
 * recorded, moved in the transaction that records what it read, so a restart neither loses nor
 * repeats an event.
 */
interface FeedCursorTable {
  feed_cursors: { name: string; position: number };
}

/**
 * withdraw: the registration server forgets the record; retire: it keeps only that the record was
 * used (so a factory-reset device can ask for re-provisioning through it); release: the HSS frees
 * the subscriber of a revoked device; suspend, resume, delete: the operator's lifecycle decisions,
 * applied at the HSS; supersede: a re-provisioned device is done with its new subscriber, the HSS
 * releases the older generations; transfer: push a device's transfer statement to its registration
 * server (operator change).
 */
export type PeerActionKind =
  'withdraw' | 'retire' | 'release' | 'suspend' | 'resume' | 'delete' | 'supersede' | 'transfer';

export interface PeerAction {
  id: number;
  kind: PeerActionKind;
  dsimId: string;
  target: string;
  attempts: number;
  /** The registration's generation when it was queued (null: queued before generations). */
  generation: number | null;
}

const migrations: Migrations = {
  '0001_registrations': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('registrations')
        .addColumn('dsim_id', 'text', (c) => c.primaryKey())
        .addColumn('registration_nonce', 'text', (c) => c.notNull())
        .addColumn('registration_server', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('pushed', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('session_id', 'text', (c) => c.unique())
        .addColumn('device_nonce', 'text')
        .addColumn('session_nonce', 'text')
        .addColumn('challenge', 'text')
        .addColumn('session_expires_at', 'text')
        .addColumn('device_certificate', 'text')
        .addColumn('provisioning_server', 'text')
        .addColumn('ticket_digest', 'text')
        .addColumn('ticket_expires_at', 'text')
        .addColumn('imsi', 'text')
        .addColumn('package_id', 'text')
        .addColumn('package', 'text')
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('audit_events')
        .addColumn('id', 'integer', (c) => autoIncrementKey(db, c))
        .addColumn('dsim_id', 'text', (c) => c.notNull())
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('event', 'text', (c) => c.notNull())
        .addColumn('detail', 'text')
        .execute();
      await db.schema
        .createIndex('audit_events_dsim')
        .on('audit_events')
        .columns(['dsim_id', 'id'])
        .execute();
    },
  },
  '0002_device_nonces_and_peer_actions': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('device_nonces')
        .addColumn('dsim_id', 'text', (c) => c.notNull())
        .addColumn('nonce_digest', 'text', (c) => c.notNull())
        .addColumn('at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('device_nonces_pk', ['dsim_id', 'nonce_digest'])
        .execute();
      await db.schema
        .createTable('peer_actions')
        .addColumn('id', 'integer', (c) => autoIncrementKey(db, c))
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('dsim_id', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('due_at', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('claim', 'text')
        .addColumn('last_error', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('peer_actions_due').on('peer_actions').columns(['due_at', 'id']).execute();
    },
  },
  '0003_feed_cursors_and_expiry': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('feed_cursors')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('position', 'bigint', (c) => c.notNull())
        .execute();
      // The expiry sweep looks for live registrations past their expiry without scanning the rest.
      await db.schema
        .createIndex('registrations_expiry')
        .on('registrations')
        .columns(['state', 'expires_at'])
        .execute();
    },
  },
  '0004_enrollment_groups': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('enrollment_groups')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('ca_subject', 'text', (c) => c.notNull())
        .addColumn('ca_sha256', 'text', (c) => c.notNull())
        .addColumn('dsim_pattern', 'text')
        .addColumn('cap', 'integer')
        .addColumn('admitted', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('registration_servers', 'text', (c) => c.notNull())
        .addColumn('active', 'integer', (c) => c.notNull())
        .addColumn('order_id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('group_members')
        .addColumn('dsim_id', 'text', (c) => c.primaryKey())
        .addColumn('group_id', 'text', (c) => c.notNull())
        .addColumn('admitted_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0005_lifecycle': {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('registrations').addColumn('resume_state', 'text').execute();
    },
  },
  ...orderMigrations,
  '0007_reprovisioning': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .alterTable('registrations')
        .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(1))
        .execute();
      await db.schema.alterTable('peer_actions').addColumn('generation', 'integer').execute();
      // Several registration servers per device (issue 15): the ones after the first.
      await db.schema.alterTable('registrations').addColumn('also_at', 'text').execute();
      await db.schema
        .alterTable('orders')
        .addColumn('reprovision_policy', 'text', (c) => c.notNull().defaultTo('operator'))
        .execute();
    },
  },
  '0008_transfers': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('transfers')
        .addColumn('transfer_id', 'text', (c) => c.primaryKey())
        .addColumn('dsim_id', 'text', (c) => c.notNull())
        .addColumn('statement', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('confirmed_at', 'text')
        .addColumn('new_package_id', 'text')
        .execute();
      await db.schema.createIndex('transfers_dsim').on('transfers').column('dsim_id').execute();
    },
  },
  // The abuse limits' counters of the device routes (src/http/rate-limit.ts).
  '0009_rate_limits': {
    async up(db: Kysely<unknown>) {
      await createRateLimitTable(db);
    },
  },
};

export interface Registration {
  dsimId: string;
  registrationNonce: string;
  /** The first of the device's registration servers (the operator's choice). */
  registrationServer: string;
  /** Every registration server the record is pushed to: `registrationServer` first. */
  registrationServers: string[];
  state: RegistrationStateName;
  expiresAt: Date;
  pushed: boolean;
  sessionId: string | null;
  deviceNonce: string | null;
  sessionNonce: string | null;
  challenge: string | null;
  sessionExpiresAt: Date | null;
  deviceCertificate: string | null;
  provisioningServer: string | null;
  ticketDigest: string | null;
  ticketExpiresAt: Date | null;
  imsi: string | null;
  packageId: string | null;
  package: string | null;
  /** The order (registration batch or enrollment group) of this registration; null before orders. */
  orderId: string | null;
  /** Which credentialing of the device: 1, then one more per re-provisioning (see the table). */
  generation: number;
}

/** An operator change authorised for a device (store.authoriseTransfer). */
export interface Transfer {
  transferId: string;
  dsimId: string;
  statement: string;
  target: string;
  expiresAt: Date;
  confirmedAt: Date | null;
  newPackageId: string | null;
}

export interface AuditEvent {
  at: Date;
  event: string;
  detail: string | null;
}

/** An audit event as the operator's feed lists it: with its id, the cursor. */
export interface NumberedAuditEvent extends AuditEvent {
  id: number;
  dsimId: string;
  orderId: string | null;
}

type AuditRow = { dsim_id: string; at: string; event: string; detail: string | null };

/**
 * Audit rows are the operator's event feed (its cursor is their id), so every insert goes through
 * here: as the last statement of its transaction, after the feed lock on PostgreSQL
 * (src/storage/feed.ts says why).
 */
async function insertAudit(db: Kysely<CredentialingTables>, rows: AuditRow[]): Promise<void> {
  if (rows.length === 0) return;
  // Each event carries its device's order as of this transaction (read before the feed lock, so the
  // lock is still held only for the insert and the commit).
  const orders = new Map<string, string | null>();
  const ids = [...new Set(rows.map((r) => r.dsim_id))];
  for (let i = 0; i < ids.length; i += 500) {
    const found = await db
      .selectFrom('registrations')
      .select(['dsim_id', 'order_id'])
      .where('dsim_id', 'in', ids.slice(i, i + 500))
      .execute();
    for (const r of found) orders.set(r.dsim_id, r.order_id);
  }
  await lockFeedTail(db as unknown as Kysely<unknown>, 'credentialing.audit_events');
  for (let i = 0; i < rows.length; i += 500) {
    await db
      .insertInto('audit_events')
      .values(rows.slice(i, i + 500).map((r) => ({ ...r, order_id: orders.get(r.dsim_id) ?? null })))
      .execute();
  }
}

type Row = Selectable<CredentialingTables['registrations']>;
const date = (v: string | null) => (v === null ? null : new Date(v));

function fromRow(row: Row): Registration {
  return {
    dsimId: row.dsim_id,
    registrationNonce: row.registration_nonce,
    registrationServer: row.registration_server,
    registrationServers: [
      row.registration_server,
      ...(row.also_at ? (JSON.parse(row.also_at) as string[]) : []),
    ],
    state: row.state,
    expiresAt: new Date(row.expires_at),
    pushed: Number(row.pushed) === 1,
    sessionId: row.session_id,
    deviceNonce: row.device_nonce,
    sessionNonce: row.session_nonce,
    challenge: row.challenge,
    sessionExpiresAt: date(row.session_expires_at),
    deviceCertificate: row.device_certificate,
    provisioningServer: row.provisioning_server,
    ticketDigest: row.ticket_digest,
    ticketExpiresAt: date(row.ticket_expires_at),
    imsi: row.imsi,
    packageId: row.package_id,
    package: row.package,
    orderId: row.order_id ?? null,
    generation: Number(row.generation),
  };
}

/** Columns a session writes, cleared together when a session is undone or revoked. */
const NO_SESSION = {
  session_id: null,
  device_nonce: null,
  session_nonce: null,
  challenge: null,
  session_expires_at: null,
} as const;

/**
 * What expiry clears: the session's nonces and challenge, but not its id, so that a device proving a
 * session its registration expired under is told SIMCRED_REGISTRATION_EXPIRED, whether the sweep or
 * the device itself found the expiry first.
 */
const EXPIRED_SESSION = {
  device_nonce: null,
  session_nonce: null,
  challenge: null,
  session_expires_at: null,
} as const;

/** Past its expiry with nothing delivered: see {@link CredentialingStore.markExpired}. */
function expiredAt(eb: ExpressionBuilder<CredentialingTables, 'registrations'>, now: Date) {
  const at = now.toISOString();
  return eb.and([
    eb('expires_at', '<=', at),
    eb.or([
      eb('state', 'in', ['registered', 'authenticating']),
      eb.and([eb('state', '=', 'referred'), eb('ticket_expires_at', '<=', at)]),
    ]),
  ]);
}

async function queueActions(
  db: Kysely<CredentialingTables>,
  actions: { kind: PeerActionKind; dsimId: string; target: string; generation?: number }[],
  now: Date,
): Promise<void> {
  if (actions.length === 0) return;
  await db
    .insertInto('peer_actions')
    .values(
      actions.map((a) => ({
        kind: a.kind,
        dsim_id: a.dsimId,
        target: a.target,
        due_at: now.toISOString(),
        attempts: 0,
        created_at: now.toISOString(),
        generation: a.generation ?? null,
      })),
    )
    .execute();
}

/**
 * Queues actions for one device stamped with its current generation (read in the caller's
 * transaction, after its state change): the newest credentialing they may affect.
 */
async function queueGenerationActions(
  db: Kysely<CredentialingTables>,
  dsimId: string,
  actions: { kind: PeerActionKind; target: string }[],
  now: Date,
): Promise<void> {
  const { generation } = await db
    .selectFrom('registrations')
    .select('generation')
    .where('dsim_id', '=', dsimId)
    .executeTakeFirstOrThrow();
  await queueActions(
    db,
    actions.map((a) => ({ ...a, dsimId, generation: Number(generation) })),
    now,
  );
}

/** @example const store = await CredentialingStore.open({ kind: 'sqlite', file: 'data/credentialing.db' }); */
export class CredentialingStore {
  private readonly auditListeners = new Set<() => void>();

  /** Registration batches as orders (issue 14). */
  readonly orders: OrderStore;
  /** Webhooks and their outbox of deliveries (issue 14). */
  readonly webhooks: WebhookStore;

  /** Counters of the abuse limits on this role's device routes, shared by its instances. */
  readonly rateLimits: RateLimitStore;

  private constructor(private readonly db: Kysely<CredentialingTables>) {
    this.rateLimits = new RateLimitStore(db as unknown as Kysely<never>);
    this.orders = new OrderStore(db as unknown as Kysely<OrderTables>);
    this.webhooks = new WebhookStore(db as unknown as Kysely<OrderTables>);
  }

  /** Called after every commit that wrote audit events (the feed's long polls wait on it). */
  onAudit(listener: () => void): () => void {
    this.auditListeners.add(listener);
    return () => this.auditListeners.delete(listener);
  }

  private audited(): void {
    for (const listener of this.auditListeners) listener();
  }

  static async open(database: DatabaseConfig): Promise<CredentialingStore> {
    return new CredentialingStore(await openDatabase<CredentialingTables>(database, migrations));
  }

  /** The enrollment groups, in this store's database. */
  groups(): GroupStore {
    return new GroupStore(this.db);
  }

  async find(dsimId: string): Promise<Registration | undefined> {
    const row = await this.db
      .selectFrom('registrations')
      .selectAll()
      .where('dsim_id', '=', dsimId)
      .executeTakeFirst();
    return row ? fromRow(row) : undefined;
  }

  async findMany(dsimIds: string[]): Promise<Map<string, Registration>> {
    const found = new Map<string, Registration>();
    for (let i = 0; i < dsimIds.length; i += 500) {
      const rows = await this.db
        .selectFrom('registrations')
        .selectAll()
        .where('dsim_id', 'in', dsimIds.slice(i, i + 500))
        .execute();
      for (const row of rows) found.set(row.dsim_id, fromRow(row));
    }
    return found;
  }

  async findBySession(sessionId: string): Promise<Registration | undefined> {
    const row = await this.db
      .selectFrom('registrations')
      .selectAll()
      .where('session_id', '=', sessionId)
      .executeTakeFirst();
    return row ? fromRow(row) : undefined;
  }

  /**
   * Step 0b: writes fresh registrations (insert, or replace one that expired or was revoked), not yet
   * pushed. Rows in any other state are left alone, even if they changed after the caller read them.
   */
  async saveRegistrations(
    records: {
      dsimId: string;
      registrationNonce: string;
      registrationServer: string;
      alsoAt?: string[] | undefined;
      expiresAt: Date;
    }[],
    now: Date,
    /** The order (batch) these registrations join; a replaced registration moves to it. */
    orderId: string | null = null,
  ): Promise<void> {
    if (records.length === 0) return;
    const ordered = inKeyOrder(records, (r) => r.dsimId);
    await transact(this.db, async (trx) => {
      const audit: AuditRow[] = [];
      for (let i = 0; i < ordered.length; i += 100) {
        const rows = ordered.slice(i, i + 100).map((r) => ({
          dsim_id: r.dsimId,
          registration_nonce: r.registrationNonce,
          registration_server: r.registrationServer,
          also_at: r.alsoAt?.length ? JSON.stringify(r.alsoAt) : null,
          state: 'registered' as const,
          expires_at: r.expiresAt.toISOString(),
          pushed: 0,
          updated_at: now.toISOString(),
          order_id: orderId,
        }));
        await trx
          .insertInto('registrations')
          .values(rows)
          .onConflict((oc) =>
            oc
              .column('dsim_id')
              .doUpdateSet((eb) => ({
                registration_nonce: eb.ref('excluded.registration_nonce'),
                registration_server: eb.ref('excluded.registration_server'),
                also_at: eb.ref('excluded.also_at'),
                state: 'registered',
                expires_at: eb.ref('excluded.expires_at'),
                pushed: 0,
                updated_at: eb.ref('excluded.updated_at'),
                ...NO_SESSION,
                device_certificate: null,
                provisioning_server: null,
                ticket_digest: null,
                ticket_expires_at: null,
                package_id: null,
                package: null,
                order_id: eb.ref('excluded.order_id'),
                // Registered afresh after a revocation: a new credentialing, so a release still
                // owed to the HSS for the revoked one cannot end the subscriber this one gets.
                generation: sql<number>`case when registrations.state = 'revoked' then registrations.generation + 1 else registrations.generation end`,
              }))
              // Only a dead registration is replaced: a concurrent batch or a hand-over that moved
              // the row since the caller read it wins (the caller re-reads what was stored).
              .where((eb) =>
                eb.or([
                  eb('registrations.state', 'in', ['revoked', 'expired']),
                  eb.and([
                    eb('registrations.expires_at', '<=', now.toISOString()),
                    eb('registrations.state', 'not in', [
                      'delivered',
                      'completed',
                      'suspended',
                      'deleted',
                      'transferring',
                      'transferred',
                    ]),
                  ]),
                ]),
              ),
          )
          .execute();
        for (const r of rows)
          audit.push({ dsim_id: r.dsim_id, at: r.updated_at, event: 'registered', detail: null });
      }
      await insertAudit(trx, audit);
    });
    this.audited();
  }

  async markPushed(dsimIds: string[]): Promise<void> {
    for (let i = 0; i < dsimIds.length; i += 500) {
      await this.db
        .updateTable('registrations')
        .set({ pushed: 1 })
        .where('dsim_id', 'in', dsimIds.slice(i, i + 500))
        .execute();
    }
  }

  /**
   * Step 3: opens a session if the registration is live (registered, or referred but not yet
   * delivered), no other session is (or the other one has expired), and this device nonce never
   * opened one before. 'busy': another live session holds the device; 'nonce-reused': a replayed
   * request, refused before it can change anything (a live referral and its ticket stay as they are).
   */
  async openSession(
    dsimId: string,
    session: {
      sessionId: string;
      deviceNonce: string;
      sessionNonce: string;
      challenge: string;
      expiresAt: Date;
    },
    now: Date,
  ): Promise<'opened' | 'busy' | 'nonce-reused'> {
    const reused = Symbol('nonce-reused');
    try {
      const opened = await this.transition(
        dsimId,
        { event: 'session-opened', detail: null },
        now,
        async (db) => {
          const result = await db
            .updateTable('registrations')
            .set({
              state: 'authenticating',
              session_id: session.sessionId,
              device_nonce: session.deviceNonce,
              session_nonce: session.sessionNonce,
              challenge: session.challenge,
              session_expires_at: session.expiresAt.toISOString(),
              updated_at: now.toISOString(),
            })
            .where('dsim_id', '=', dsimId)
            .where('expires_at', '>', now.toISOString())
            .where((eb) =>
              eb.or([
                eb('state', '=', 'registered'),
                // A referred device that lost its referral, or whose delivery failed, starts over with a
                // fresh device nonce; the new session kills the old ticket (hand-over needs 'referred').
                eb('state', '=', 'referred'),
                eb.and([
                  eb('state', '=', 'authenticating'),
                  eb('session_expires_at', '<=', now.toISOString()),
                ]),
              ]),
            )
            .executeTakeFirst();
          if (Number(result.numUpdatedRows) === 1) {
            const seen = await db
              .insertInto('device_nonces')
              .values({
                dsim_id: dsimId,
                nonce_digest: tokenDigest(session.deviceNonce),
                at: now.toISOString(),
              })
              .onConflict((oc) => oc.columns(['dsim_id', 'nonce_digest']).doNothing())
              .executeTakeFirst();
            // Seen before: roll the whole transaction back, the session change with it.
            if (Number(seen.numInsertedOrUpdatedRows ?? 0n) !== 1) throw reused;
          }
          return result;
        },
      );
      if (opened) return 'opened';
      // Not opened because another session holds the device; a replay is still named as one.
      return (await this.deviceNonceSeen(dsimId, session.deviceNonce)) ? 'nonce-reused' : 'busy';
    } catch (err) {
      if (err === reused) return 'nonce-reused';
      throw err;
    }
  }

  /** True if this device nonce already opened a session for the DSIM_ID (a replayed step 3). */
  async deviceNonceSeen(dsimId: string, deviceNonce: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('device_nonces')
      .select('dsim_id')
      .where('dsim_id', '=', dsimId)
      .where('nonce_digest', '=', tokenDigest(deviceNonce))
      .executeTakeFirst();
    return row !== undefined;
  }

  /**
   * A session that failed on a check or a dependency is undone (the device may start over), audited
   * as 'failed' with the refusal's code in the same transaction. False when the session had already
   * ended (revoked, expired, or undone by the referral's own failure): then nothing is written.
   */
  async failSession(dsimId: string, sessionId: string, code: string, now: Date): Promise<boolean> {
    return this.transition(dsimId, { event: 'failed', detail: code }, now, (db) =>
      db
        .updateTable('registrations')
        .set({ state: 'registered', ...NO_SESSION, updated_at: now.toISOString() })
        .where('dsim_id', '=', dsimId)
        .where('session_id', '=', sessionId)
        .where('state', '=', 'authenticating')
        .executeTakeFirst(),
    );
  }

  /** Steps 5–6 done: package held, device referred. False if the session was revoked meanwhile. */
  async markReferred(
    dsimId: string,
    sessionId: string,
    referral: {
      deviceCertificate: string;
      provisioningServer: string;
      ticketDigest: string;
      ticketExpiresAt: Date;
      imsi: string;
      packageId: string;
      package: string;
    },
    now: Date,
  ): Promise<boolean> {
    const result = await this.db
      .updateTable('registrations')
      .set({
        state: 'referred',
        device_certificate: referral.deviceCertificate,
        provisioning_server: referral.provisioningServer,
        ticket_digest: referral.ticketDigest,
        ticket_expires_at: referral.ticketExpiresAt.toISOString(),
        imsi: referral.imsi,
        package_id: referral.packageId,
        package: referral.package,
        challenge: null,
        updated_at: now.toISOString(),
      })
      .where('dsim_id', '=', dsimId)
      .where('session_id', '=', sessionId)
      .where('state', '=', 'authenticating')
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /**
   * The referral could not be delivered to the provisioning server: back to registered, ticket void,
   * audited as 'failed' with the code in the same transaction.
   */
  async undoReferral(dsimId: string, sessionId: string, code: string, now: Date): Promise<boolean> {
    return this.transition(dsimId, { event: 'failed', detail: code }, now, (db) =>
      db
        .updateTable('registrations')
        .set({
          state: 'registered',
          ...NO_SESSION,
          ticket_digest: null,
          package: null,
          updated_at: now.toISOString(),
        })
        .where('dsim_id', '=', dsimId)
        .where('session_id', '=', sessionId)
        .where('state', '=', 'referred')
        .executeTakeFirst(),
    );
  }

  /**
   * Step 9: referred → delivered (the registration is now used); audited with the provisioning server,
   * and its retirement at the registration server (nonce forgotten, the record kept as used) queued
   * in the same transaction.
   */
  async markDelivered(
    registration: { dsimId: string; registrationServers: string[] },
    provisioningServer: string | null,
    now: Date,
  ): Promise<boolean> {
    const { dsimId } = registration;
    return this.transition(
      dsimId,
      { event: 'delivered', detail: provisioningServer },
      now,
      (db) =>
        db
          .updateTable('registrations')
          .set({ state: 'delivered', updated_at: now.toISOString() })
          .where('dsim_id', '=', dsimId)
          .where('state', '=', 'referred')
          .executeTakeFirst(),
      (db) =>
        queueGenerationActions(
          db,
          dsimId,
          registration.registrationServers.map((target) => ({ kind: 'retire' as const, target })),
          now,
        ),
    );
  }

  /**
   * Step 12: delivered → completed; the package is dropped, only its id stays. Audited with the IMSI.
   * A re-provisioned device (generation > 1) now holds its new subscription: the release of the
   * older ones is queued for the HSS (`hssUrl`) in the same transaction.
   */
  async markCompleted(dsimId: string, imsi: string | null, now: Date, hssUrl?: string): Promise<boolean> {
    return this.transition(
      dsimId,
      { event: 'completed', detail: imsi },
      now,
      (db) =>
        db
          .updateTable('registrations')
          .set({
            state: 'completed',
            package: null,
            ...NO_SESSION,
            ticket_digest: null,
            updated_at: now.toISOString(),
          })
          .where('dsim_id', '=', dsimId)
          .where('state', '=', 'delivered')
          .executeTakeFirst(),
      // A used registration refuses every session: its nonces need no memory any more.
      async (db) => {
        await db.deleteFrom('device_nonces').where('dsim_id', '=', dsimId).execute();
        if (hssUrl === undefined) return;
        const { generation } = await db
          .selectFrom('registrations')
          .select('generation')
          .where('dsim_id', '=', dsimId)
          .executeTakeFirstOrThrow();
        if (Number(generation) > 1) {
          await queueActions(
            db,
            [{ kind: 'supersede', dsimId, target: hssUrl, generation: Number(generation) - 1 }],
            now,
          );
        }
      },
    );
  }

  /**
   * A conditional state change and its audit event in one transaction: the trail never shows a step
   * that did not happen nor misses one that did, and the two writes cost one commit.
   */
  private async transition(
    dsimId: string,
    audit: { event: string; detail: string | null },
    now: Date,
    update: (db: Kysely<CredentialingTables>) => Promise<UpdateResult>,
    alsoWhenChanged?: (db: Kysely<CredentialingTables>) => Promise<void>,
  ): Promise<boolean> {
    const changed = await transact(this.db, async (trx) => {
      const changed = Number((await update(trx)).numUpdatedRows) === 1;
      if (changed) {
        await alsoWhenChanged?.(trx);
        await insertAudit(trx, [
          { dsim_id: dsimId, at: now.toISOString(), event: audit.event, detail: audit.detail },
        ]);
      }
      return changed;
    });
    if (changed) this.audited();
    return changed;
  }

  /**
   * Revocation, at any step: before delivery it wins over the step under way; after delivery (also
   * completed, attached or suspended) it ends the subscription. In the same transaction: the audit
   * event, the withdrawal from the registration server and the release of any subscriber the HSS
   * allocated for the device (step 5 may have run). Only a deleted device cannot be revoked.
   */
  async revoke(
    registration: { dsimId: string; registrationServers: string[] },
    reason: string | null,
    hssUrl: string,
    now: Date,
  ): Promise<boolean> {
    return this.end(registration, 'revoked', reason, hssUrl, now);
  }

  /**
   * Suspends a delivered or completed device's subscription: 'suspended' (remembering the state to
   * resume to), audited, and the suspension queued for the HSS, in one transaction. False when the
   * device is in no state that has a subscription to suspend.
   */
  async suspend(dsimId: string, reason: string | null, hssUrl: string, now: Date): Promise<boolean> {
    return this.transition(
      dsimId,
      { event: 'suspended', detail: reason },
      now,
      (db) =>
        db
          .updateTable('registrations')
          .set((eb) => ({ state: 'suspended', resume_state: eb.ref('state'), updated_at: now.toISOString() }))
          .where('dsim_id', '=', dsimId)
          .where('state', 'in', ['delivered', 'completed'])
          .executeTakeFirst(),
      (db) => queueActions(db, [{ kind: 'suspend', dsimId, target: hssUrl }], now),
    );
  }

  /** A suspended subscription back to the state it was suspended from; audited; the HSS told. */
  async resume(dsimId: string, reason: string | null, hssUrl: string, now: Date): Promise<boolean> {
    return this.transition(
      dsimId,
      { event: 'resumed', detail: reason },
      now,
      (db) =>
        db
          .updateTable('registrations')
          .set({
            state: sql<RegistrationStateName>`coalesce(resume_state, 'completed')`,
            resume_state: null,
            updated_at: now.toISOString(),
          })
          .where('dsim_id', '=', dsimId)
          .where('state', '=', 'suspended')
          .executeTakeFirst(),
      (db) => queueActions(db, [{ kind: 'resume', dsimId, target: hssUrl }], now),
    );
  }

  /**
   * Deletes a device's subscription for good, from any state but deleted: 'deleted' (final; the
   * session, ticket and package are dropped), audited, the withdrawal from the registration server
   * and the deletion of the HSS subscriber queued, in one transaction.
   */
  async delete(
    registration: { dsimId: string; registrationServers: string[] },
    reason: string | null,
    hssUrl: string,
    now: Date,
  ): Promise<boolean> {
    return this.end(registration, 'deleted', reason, hssUrl, now);
  }

  /**
   * The shared path of revoke, delete and a confirmed transfer: the session, ticket and package
   * dropped, audited, the withdrawal from each registration server and the HSS's part (release, or
   * delete) queued, in one transaction. Revoke comes from any state but deleted and revoked; delete
   * from any but deleted; transferred from transferring only. Delete and transferred also forget the
   * device nonces (such a device never opens a session again); `also` adds writes to the transaction.
   */
  private end(
    registration: { dsimId: string; registrationServers: string[] },
    final: 'revoked' | 'deleted' | 'transferred',
    detail: string | null,
    hssUrl: string,
    now: Date,
    also?: (db: Kysely<CredentialingTables>) => Promise<void>,
  ): Promise<boolean> {
    const { dsimId } = registration;
    const endsFrom: RegistrationStateName[] =
      final === 'transferred'
        ? ['transferring']
        : final === 'revoked'
          ? [
              'registered',
              'authenticating',
              'referred',
              'expired',
              'delivered',
              'completed',
              'suspended',
              'transferring',
            ]
          : [
              'registered',
              'authenticating',
              'referred',
              'expired',
              'delivered',
              'completed',
              'suspended',
              'revoked',
              'transferring',
            ];
    return this.transition(
      dsimId,
      { event: final, detail },
      now,
      (db) =>
        db
          .updateTable('registrations')
          .set({
            state: final,
            ...NO_SESSION,
            package: null,
            ticket_digest: null,
            resume_state: null,
            updated_at: now.toISOString(),
          })
          .where('dsim_id', '=', dsimId)
          .where('state', 'in', endsFrom)
          .executeTakeFirst(),
      async (db) => {
        await queueGenerationActions(
          db,
          dsimId,
          [
            ...registration.registrationServers.map((target) => ({ kind: 'withdraw' as const, target })),
            { kind: final === 'revoked' ? 'release' : 'delete', target: hssUrl },
          ],
          now,
        );
        if (final !== 'revoked') await db.deleteFrom('device_nonces').where('dsim_id', '=', dsimId).execute();
        await also?.(db);
      },
    );
  }

  /**
   * Re-provisioning (operator request, or the device's after a factory reset): a device that holds a
   * subscription (delivered or completed), or whose re-provisioning has not been delivered yet, gets
   * a fresh registration nonce and the next generation and is 'registered' again, not yet pushed;
   * audited as 'reprovisioned' with who asked, in one transaction. The old subscription stays live
   * until the new one is in use (HSS: its first attach; here: the receipt queues 'supersede').
   * False when the device is in no such state (the caller re-reads to say why).
   */
  async reprovision(
    dsimId: string,
    fresh: { registrationNonce: string; expiresAt: Date },
    requestedBy: 'operator' | 'device',
    now: Date,
  ): Promise<boolean> {
    return this.transition(dsimId, { event: 'reprovisioned', detail: requestedBy }, now, (db) =>
      db
        .updateTable('registrations')
        .set((eb) => ({
          registration_nonce: fresh.registrationNonce,
          state: 'registered',
          expires_at: fresh.expiresAt.toISOString(),
          pushed: 0,
          ...NO_SESSION,
          provisioning_server: null,
          ticket_digest: null,
          ticket_expires_at: null,
          package_id: null,
          package: null,
          resume_state: null,
          generation: eb('generation', '+', 1),
          updated_at: now.toISOString(),
        }))
        .where('dsim_id', '=', dsimId)
        .where((eb) =>
          eb.or([
            eb('state', 'in', ['delivered', 'completed']),
            eb.and([
              eb('generation', '>', 1),
              eb('state', 'in', ['registered', 'authenticating', 'referred', 'expired']),
            ]),
          ]),
        )
        .executeTakeFirst(),
    );
  }

  /** Queues peer actions outside a state change (a subscriber the HSS made after a revocation). */
  async queuePeerActions(
    actions: { kind: PeerActionKind; dsimId: string; target: string }[],
    now: Date,
  ): Promise<void> {
    await queueActions(this.db, actions, now);
  }

  /**
   * Claims up to `limit` due peer actions for `leaseMs` (another sender, or this one after a crash,
   * takes them again once the lease lapses). The claim is one conditional update, so of several
   * credentialing instances sharing the database each action goes to one at a time.
   */
  async claimPeerActions(now: Date, leaseMs: number, limit: number): Promise<PeerAction[]> {
    const claim = randomToken(16);
    // A read first: the poll that finds nothing due (nearly every one) takes no write lock.
    const due = await this.db
      .selectFrom('peer_actions')
      .select('id')
      .where('due_at', '<=', now.toISOString())
      .orderBy('due_at')
      .orderBy('id')
      .limit(limit)
      .execute();
    if (due.length === 0) return [];
    // Two claimers' multi-row updates may meet in a deadlock on PostgreSQL: the loser runs again.
    await retryConflicts(() =>
      this.db
        .updateTable('peer_actions')
        .set((eb) => ({
          claim,
          due_at: new Date(now.getTime() + leaseMs).toISOString(),
          attempts: eb('attempts', '+', 1),
        }))
        .where(
          'id',
          'in',
          due.map((r) => r.id),
        )
        // Re-checked under the row lock: an action another sender claimed meanwhile is not due any more.
        .where('due_at', '<=', now.toISOString())
        .execute(),
    );
    const rows = await this.db
      .selectFrom('peer_actions')
      .select(['id', 'kind', 'dsim_id', 'target', 'attempts', 'generation'])
      .where('claim', '=', claim)
      .orderBy('id')
      .execute();
    return rows.map((r) => ({
      id: Number(r.id),
      kind: r.kind,
      dsimId: r.dsim_id,
      target: r.target,
      attempts: Number(r.attempts),
      generation: r.generation === null ? null : Number(r.generation),
    }));
  }

  /** Done: the actions leave the outbox, each with its audit event, in one transaction. */
  async completePeerActions(
    done: { id: number; dsimId: string; event: string; detail: string | null }[],
    now: Date,
  ): Promise<void> {
    if (done.length === 0) return;
    await transact(this.db, async (trx) => {
      await trx
        .deleteFrom('peer_actions')
        .where(
          'id',
          'in',
          done.map((d) => d.id),
        )
        .execute();
      await insertAudit(
        trx,
        done.map((d) => ({ dsim_id: d.dsimId, at: now.toISOString(), event: d.event, detail: d.detail })),
      );
    });
    this.audited();
  }

  /** Failed: due again at `dueAt`, with the error code kept for the operator (never a secret). */
  async retryPeerActions(ids: number[], dueAt: Date, errorCode: string): Promise<void> {
    if (ids.length === 0) return;
    await retryConflicts(() =>
      this.db
        .updateTable('peer_actions')
        .set({ due_at: dueAt.toISOString(), claim: null, last_error: errorCode })
        .where('id', 'in', ids)
        .execute(),
    );
  }

  /** Actions still owed to peers (for tests and the operator): kind, DSIM_ID, attempts, last error. */
  async pendingPeerActions(): Promise<(PeerAction & { lastError: string | null })[]> {
    const rows = await this.db.selectFrom('peer_actions').selectAll().orderBy('id').execute();
    return rows.map((r) => ({
      id: Number(r.id),
      kind: r.kind,
      dsimId: r.dsim_id,
      target: r.target,
      attempts: Number(r.attempts),
      generation: r.generation === null ? null : Number(r.generation),
      lastError: r.last_error,
    }));
  }

  /**
   * A registration past its expiry, nothing delivered: 'expired', audited in the same transaction.
   * A referred device expires only once its ticket has lapsed too (until then it may still be
   * delivered). Called when a device shows up late and by the periodic sweep ({@link expireDue}).
   */
  async markExpired(dsimId: string, now: Date): Promise<boolean> {
    return this.transition(dsimId, { event: 'expired', detail: null }, now, (db) =>
      db
        .updateTable('registrations')
        .set({ state: 'expired', ...EXPIRED_SESSION, updated_at: now.toISOString() })
        .where('dsim_id', '=', dsimId)
        .where((eb) => expiredAt(eb, now))
        .executeTakeFirst(),
    );
  }

  /**
   * The expiry sweep: up to `limit` registrations past their expiry become 'expired', each with its
   * audit event, in one transaction. A conditional update, so sweeps of several instances, or a
   * sweep and a late device, expire a registration once. Returns how many expired.
   */
  async expireDue(now: Date, limit: number): Promise<number> {
    // A read first: the sweep that finds nothing due (nearly every one) takes no write lock.
    const due = await this.db
      .selectFrom('registrations')
      .select('dsim_id')
      .where((eb) => expiredAt(eb, now))
      .limit(limit)
      .execute();
    if (due.length === 0) return 0;
    const expired = await transact(this.db, async (trx) => {
      const rows = await trx
        .updateTable('registrations')
        .set({ state: 'expired', ...EXPIRED_SESSION, updated_at: now.toISOString() })
        .where(
          'dsim_id',
          'in',
          due.map((r) => r.dsim_id),
        )
        // Re-checked under the row lock: a registration that moved meanwhile is left alone.
        .where((eb) => expiredAt(eb, now))
        .returning('dsim_id')
        .execute();
      await insertAudit(
        trx,
        rows.map((r) => ({ dsim_id: r.dsim_id, at: now.toISOString(), event: 'expired', detail: null })),
      );
      return rows.length;
    });
    if (expired > 0) this.audited();
    return expired;
  }

  /** An audit event outside a state change (its own transaction, after the feed lock on PostgreSQL). */
  async audit(dsimId: string, event: string, detail: string | null = null, at = new Date()): Promise<void> {
    await transact(this.db, (trx) =>
      insertAudit(trx, [{ dsim_id: dsimId, at: at.toISOString(), event, detail }]),
    );
    this.audited();
  }

  /** The operator's feed: audit events with an id above `after`, in id order, at most `limit`. */
  async auditEventsAfter(after: number, limit: number): Promise<NumberedAuditEvent[]> {
    const rows = await this.db
      .selectFrom('audit_events')
      .selectAll()
      .where('id', '>', after)
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      id: Number(r.id),
      dsimId: r.dsim_id,
      at: new Date(r.at),
      event: r.event,
      detail: r.detail,
      orderId: r.order_id,
    }));
  }

  /** Where this server is in a peer's feed (0: nothing read yet). */
  async feedCursor(name: string): Promise<number> {
    const row = await this.db
      .selectFrom('feed_cursors')
      .select('position')
      .where('name', '=', name)
      .executeTakeFirst();
    return row ? Number(row.position) : 0;
  }

  /**
   * Records what a follower read from a peer's feed and moves its cursor from `from` to `to`, in one
   * transaction. The cursor moves conditionally: if another instance (or this one before a restart)
   * recorded the same page already, nothing is written and false comes back, so no event is recorded
   * twice. Audit events only for devices this server registered.
   */
  async recordFeedPage(
    name: string,
    from: number,
    to: number,
    events: { dsimId: string; event: string; detail: string | null }[],
    now: Date,
  ): Promise<boolean> {
    const recorded = await transact(this.db, async (trx) => {
      const moved =
        from === 0
          ? await trx
              .insertInto('feed_cursors')
              .values({ name, position: to })
              .onConflict((oc) =>
                oc.column('name').doUpdateSet({ position: to }).where('feed_cursors.position', '=', 0),
              )
              .executeTakeFirst()
              .then((r) => Number(r.numInsertedOrUpdatedRows ?? 0n))
          : await trx
              .updateTable('feed_cursors')
              .set({ position: to })
              .where('name', '=', name)
              .where('position', '=', from)
              .executeTakeFirst()
              .then((r) => Number(r.numUpdatedRows));
      if (moved !== 1) return false;
      const known = new Set<string>();
      const ids = [...new Set(events.map((e) => e.dsimId))];
      for (let i = 0; i < ids.length; i += 500) {
        const rows = await trx
          .selectFrom('registrations')
          .select('dsim_id')
          .where('dsim_id', 'in', ids.slice(i, i + 500))
          .execute();
        for (const r of rows) known.add(r.dsim_id);
      }
      const audit = events
        .filter((e) => known.has(e.dsimId))
        .map((e) => ({ dsim_id: e.dsimId, at: now.toISOString(), event: e.event, detail: e.detail }));
      await insertAudit(trx, audit);
      return audit.length > 0 ? 'audited' : true;
    });
    if (recorded === 'audited') this.audited();
    return recorded !== false;
  }

  async auditTrail(dsimId: string): Promise<AuditEvent[]> {
    const rows = await this.db
      .selectFrom('audit_events')
      .select(['at', 'event', 'detail'])
      .where('dsim_id', '=', dsimId)
      .orderBy('id')
      .execute();
    return rows.map((r) => ({ at: new Date(r.at), event: r.event, detail: r.detail }));
  }

  async countByState(): Promise<Record<string, number>> {
    const rows = await this.db
      .selectFrom('registrations')
      .select(['state', sql<number>`count(*)`.as('n')])
      .groupBy('state')
      .execute();
    return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
  }

  // --- Operator change (docs/architecture.md "Operator change") ----------------------------------

  /**
   * A delivered or completed device handed over to another operator: 'transferring', the transfer
   * and its statement stored, the statement's push to the device's registration server queued, and
   * the audit event 'transfer-authorised', in one transaction. False when the device is in no state
   * that has a subscription to hand over.
   */
  async authoriseTransfer(
    registration: { dsimId: string; registrationServer: string },
    transfer: { transferId: string; statement: string; target: string; expiresAt: Date },
    now: Date,
  ): Promise<boolean> {
    const { dsimId } = registration;
    return this.transition(
      dsimId,
      { event: 'transfer-authorised', detail: transfer.transferId },
      now,
      (db) =>
        db
          .updateTable('registrations')
          .set({ state: 'transferring', updated_at: now.toISOString() })
          .where('dsim_id', '=', dsimId)
          .where('state', 'in', ['delivered', 'completed'])
          .executeTakeFirst(),
      async (db) => {
        await db
          .insertInto('transfers')
          .values({
            transfer_id: transfer.transferId,
            dsim_id: dsimId,
            statement: transfer.statement,
            target: transfer.target,
            expires_at: transfer.expiresAt.toISOString(),
            created_at: now.toISOString(),
            confirmed_at: null,
            new_package_id: null,
          })
          .execute();
        await queueActions(db, [{ kind: 'transfer', dsimId, target: registration.registrationServer }], now);
      },
    );
  }

  /** The device's latest transfer, if any. */
  async findTransfer(dsimId: string): Promise<Transfer | undefined> {
    const row = await this.db
      .selectFrom('transfers')
      .selectAll()
      .where('dsim_id', '=', dsimId)
      .orderBy('created_at', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row
      ? {
          transferId: row.transfer_id,
          dsimId: row.dsim_id,
          statement: row.statement,
          target: row.target,
          expiresAt: new Date(row.expires_at),
          confirmedAt: row.confirmed_at === null ? null : new Date(row.confirmed_at),
          newPackageId: row.new_package_id,
        }
      : undefined;
  }

  /**
   * The device confirmed the new operator's credential: 'transferred' (final; session, ticket and
   * package dropped, device nonces forgotten), the transfer marked confirmed, the withdrawal from the
   * registration server and the deletion of the HSS subscriber queued, audited 'transferred' with
   * the new operator's package id, in one transaction. False when the device is not transferring.
   */
  async completeTransfer(
    registration: { dsimId: string; registrationServers: string[] },
    transferId: string,
    newPackageId: string,
    hssUrl: string,
    now: Date,
  ): Promise<boolean> {
    return this.end(registration, 'transferred', newPackageId, hssUrl, now, async (db) => {
      await db
        .updateTable('transfers')
        .set({ confirmed_at: now.toISOString(), new_package_id: newPackageId })
        .where('transfer_id', '=', transferId)
        .execute();
    });
  }

  /** The statements of the devices' latest transfers (for the push to registration servers). */
  async transferStatements(
    dsimIds: string[],
  ): Promise<Map<string, { transferId: string; statement: string }>> {
    const found = new Map<string, { transferId: string; statement: string }>();
    for (let i = 0; i < dsimIds.length; i += 500) {
      const rows = await this.db
        .selectFrom('transfers')
        .select(['dsim_id', 'transfer_id', 'statement', 'created_at'])
        .where('dsim_id', 'in', dsimIds.slice(i, i + 500))
        .orderBy('created_at')
        .execute();
      for (const r of rows) found.set(r.dsim_id, { transferId: r.transfer_id, statement: r.statement });
    }
    return found;
  }

  /** Answers when the database does (readiness checks). */
  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  /**
   * What this server still owes others (operations metrics): peer actions in the outbox, webhook
   * deliveries pending, registrations not yet pushed to their registration server. Three counts.
   */
  async backlogs(): Promise<{ peerActions: number; webhookDeliveries: number; unpushed: number }> {
    const count = async (query: Promise<{ n: number | string | bigint } | undefined>) =>
      Number((await query)?.n ?? 0);
    const [peerActions, webhookDeliveries, unpushed] = await Promise.all([
      count(
        this.db
          .selectFrom('peer_actions')
          .select(sql<number>`count(*)`.as('n'))
          .executeTakeFirst(),
      ),
      count(
        (this.db as unknown as Kysely<OrderTables>)
          .selectFrom('webhook_deliveries')
          .select(sql<number>`count(*)`.as('n'))
          .where('state', '=', 'pending')
          .executeTakeFirst(),
      ),
      count(
        this.db
          .selectFrom('registrations')
          .select(sql<number>`count(*)`.as('n'))
          .where('pushed', '=', 0)
          .where('state', '=', 'registered')
          .executeTakeFirst(),
      ),
    ]);
    return { peerActions, webhookDeliveries, unpushed };
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
