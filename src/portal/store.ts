import { sql, type Generated, type Kysely } from 'kysely';
import { autoIncrementKey, openDatabase, type DatabaseConfig, type Migrations } from '../storage/index.js';

/** The portal's own store (DESIGN §1: each role its own): accounts, sessions, contracts, devices, uploads. */
export interface PortalTables {
  accounts: {
    id: string;
    email: string;
    name: string;
    kind: 'owner' | 'operator';
    /** scrypt$N$r$p$salt$hash (passwords.ts). */
    password_hash: string;
    created_at: string;
  };
  /** Only the SHA-256 of a session id is kept: a copy of the table signs no one in. */
  sessions: {
    id_digest: string;
    account_id: string;
    csrf_token: string;
    expires_at: string;
    created_at: string;
  };
  contracts: {
    id: string;
    owner_id: string;
    plan_id: string;
    /** The Billing object as JSON. */
    billing: string;
    payment_status: 'authorised' | 'declined';
    payment_reference: string;
    payment_reason: string | null;
    payment_at: string;
    created_at: string;
  };
  devices: {
    /** Unique across contracts: a device belongs to one contract. */
    dsim_id: string;
    contract_id: string;
    state: string;
    reason: string | null;
    imsi: string | null;
    registration_server: string;
    updated_at: string;
    /** The upload (and its line) that last added the device: a repeat in the same file is a duplicate. */
    upload_id: string | null;
    upload_line: number | null;
  };
  uploads: {
    id: string;
    contract_id: string;
    owner_id: string;
    file_name: string | null;
    state: 'running' | 'done' | 'failed';
    rows: number;
    accepted: number;
    rejected_count: number;
    /** The first 1,000 rejections as JSON. */
    rejected: string;
    started_at: string;
    finished_at: string | null;
  };
  /** Where the credentialing event feed follower has read up to. */
  feed_cursor: { name: string; cursor: string };
  /**
   * What every portal instance on this database shares (simcred up --workers, several hosts): failed
   * sign-ins and sign-ups per key within the window (rate-limit.ts), ...
   */
  attempts: { key: string; at: string };
  /** ... the events pushed to browsers, tailed by every instance (shared-events.ts), ... */
  portal_events: {
    id: Generated<number>;
    /** The owner who may see it; null for events only operators see. */
    owner_id: string | null;
    type: string;
    /** The PortalEvent's data as JSON. */
    data: string;
    at: string;
  };
  /** ... and which instance does a job only one may do at a time (the feed follower): leases.ts. */
  leases: { name: string; holder: string; expires_at: string };
}

const migrations: Migrations = {
  '0001_portal': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('accounts')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('email', 'text', (c) => c.notNull().unique())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('password_hash', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('sessions')
        .addColumn('id_digest', 'text', (c) => c.primaryKey())
        .addColumn('account_id', 'text', (c) => c.notNull())
        .addColumn('csrf_token', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('contracts')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('owner_id', 'text', (c) => c.notNull())
        .addColumn('plan_id', 'text', (c) => c.notNull())
        .addColumn('billing', 'text', (c) => c.notNull())
        .addColumn('payment_status', 'text', (c) => c.notNull())
        .addColumn('payment_reference', 'text', (c) => c.notNull())
        .addColumn('payment_reason', 'text')
        .addColumn('payment_at', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('contracts_owner').on('contracts').column('owner_id').execute();
      await db.schema
        .createTable('devices')
        .addColumn('dsim_id', 'text', (c) => c.primaryKey())
        .addColumn('contract_id', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('reason', 'text')
        .addColumn('imsi', 'text')
        .addColumn('registration_server', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('upload_id', 'text')
        .addColumn('upload_line', 'integer')
        .execute();
      await db.schema
        .createIndex('devices_contract')
        .on('devices')
        .columns(['contract_id', 'dsim_id'])
        .execute();
      await db.schema.createIndex('devices_imsi').on('devices').column('imsi').execute();
      await db.schema
        .createTable('uploads')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('contract_id', 'text', (c) => c.notNull())
        .addColumn('owner_id', 'text', (c) => c.notNull())
        .addColumn('file_name', 'text')
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('rows', 'integer', (c) => c.notNull())
        .addColumn('accepted', 'integer', (c) => c.notNull())
        .addColumn('rejected_count', 'integer', (c) => c.notNull())
        .addColumn('rejected', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text', (c) => c.notNull())
        .addColumn('finished_at', 'text')
        .execute();
      await db.schema
        .createTable('feed_cursor')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('cursor', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0002_shared_between_instances': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('attempts')
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('attempts_key_at').on('attempts').columns(['key', 'at']).execute();
      await db.schema
        .createTable('portal_events')
        .addColumn('id', 'integer', (c) => autoIncrementKey(db, c))
        .addColumn('owner_id', 'text')
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('data', 'text', (c) => c.notNull())
        .addColumn('at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('portal_events_at').on('portal_events').column('at').execute();
      await db.schema
        .createTable('leases')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('holder', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
};

/**
 * Opens the portal's store (SQLite file or its own PostgreSQL schema) at the latest schema.
 *
 * @example
 *   const db = await openPortalStore(roleDatabase(config, 'portal'));
 */
export function openPortalStore(config: DatabaseConfig): Promise<Kysely<PortalTables>> {
  return openDatabase<PortalTables>(config, migrations);
}

/** Devices per state of a set of contracts (all when `contractIds` is undefined). */
export async function stateCounts(
  db: Kysely<PortalTables>,
  contractIds?: string[],
): Promise<Map<string, Map<string, number>>> {
  let query = db
    .selectFrom('devices')
    .select(['contract_id', 'state', sql<number>`count(*)`.as('n')])
    .groupBy(['contract_id', 'state']);
  if (contractIds) {
    if (contractIds.length === 0) return new Map();
    query = query.where('contract_id', 'in', contractIds);
  }
  const out = new Map<string, Map<string, number>>();
  for (const row of await query.execute()) {
    const perState = out.get(row.contract_id) ?? new Map<string, number>();
    perState.set(row.state, Number(row.n));
    out.set(row.contract_id, perState);
  }
  return out;
}
