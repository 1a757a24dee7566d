import { sql, type ColumnType, type Kysely } from 'kysely';
import { RateLimitStore, createRateLimitTable } from '../storage/rate-limits.js';
import {
  inKeyOrder,
  openDatabase,
  transact,
  type DatabaseConfig,
  type Migrations,
} from '../storage/index.js';

/** Per-device registration info pushed by credentialing servers (role 14). */
interface RegistrationTables {
  registrations: {
    dsim_id: string;
    registration_nonce: string;
    credentialing_url: string;
    expires_at: string;
    /** Which credentialing server pushed it: only that one may replace or withdraw it. */
    pushed_by: string;
    /** Which credentialing of the device (migration 0003): an older push never replaces a newer one. */
    generation: ColumnType<number, number | undefined, number>;
    /** 1 once the registration was used (retired): the nonce is erased, the route kept. */
    used: ColumnType<number, number | undefined, number>;
  };
  /** Enrollment groups: CAs whose unlisted devices are admitted through their credentialing server. */
  enrollment_groups: {
    group_id: string;
    ca_sha256: string;
    dsim_pattern: string | null;
    credentialing_url: string;
    active: number;
    pushed_by: string;
  };
  /** Operator change: a device's transfer statement, owned (replaceable) only by its pusher. */
  transfer_statements: {
    dsim_id: string;
    transfer_id: string;
    statement: string;
    pushed_by: string;
    pushed_at: string;
  };
}

const migrations: Migrations = {
  '0001_registrations': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('registrations')
        .addColumn('dsim_id', 'text', (c) => c.primaryKey())
        .addColumn('registration_nonce', 'text', (c) => c.notNull())
        .addColumn('credentialing_url', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('pushed_by', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0002_enrollment_groups': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('enrollment_groups')
        .addColumn('group_id', 'text', (c) => c.primaryKey())
        .addColumn('ca_sha256', 'text', (c) => c.notNull())
        .addColumn('dsim_pattern', 'text')
        .addColumn('credentialing_url', 'text', (c) => c.notNull())
        .addColumn('active', 'integer', (c) => c.notNull())
        .addColumn('pushed_by', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('enrollment_groups_ca')
        .on('enrollment_groups')
        .column('ca_sha256')
        .execute();
    },
  },
  '0003_generations_and_used': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .alterTable('registrations')
        .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(1))
        .execute();
      await db.schema
        .alterTable('registrations')
        .addColumn('used', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
    },
  },
  '0004_transfer_statements': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('transfer_statements')
        .addColumn('dsim_id', 'text', (c) => c.primaryKey())
        .addColumn('transfer_id', 'text', (c) => c.notNull())
        .addColumn('statement', 'text', (c) => c.notNull())
        .addColumn('pushed_by', 'text', (c) => c.notNull())
        .addColumn('pushed_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
  // The abuse limits' counters of the device routes (src/http/rate-limit.ts).
  '0005_rate_limits': {
    async up(db: Kysely<unknown>) {
      await createRateLimitTable(db);
    },
  },
};

export interface StoredGroup {
  groupId: string;
  caSha256: string;
  dsimPattern: string | null;
  credentialingUrl: string;
  /** The credentialing server that pushed it (its certificate's subject). */
  pushedBy: string;
}

export interface StoredRegistration {
  dsimId: string;
  registrationNonce: string;
  credentialingUrl: string;
  expiresAt: Date;
  /** 1 when absent (records pushed before generations). */
  generation?: number | undefined;
  /** The registration was used: only its route is kept (see withdraw). */
  used?: boolean;
  /** The credentialing server that pushed it (as read back). */
  pushedBy?: string;
}

/**
 * Who writes: the pushing credentialing server's identity (`owner`, see CallerIdentity), and the CN
 * that rows written before owners were whole identities carry (`legacyName`): such a row goes to the
 * first server of that CN that writes it again.
 */
export interface Writer {
  owner: string;
  legacyName?: string | undefined;
}

/** What a write did: how many records it stored, and the DSIM_IDs it left alone as another server's. */
export interface WriteResult {
  stored: number;
  refused: string[];
}

/** @example const store = await RegistrationStore.open({ kind: 'sqlite', file: 'data/registration-1.db' }); */
export class RegistrationStore {
  /** Counters of the abuse limits on this role's device routes, shared by its instances. */
  readonly rateLimits: RateLimitStore;

  private constructor(private readonly db: Kysely<RegistrationTables>) {
    this.rateLimits = new RateLimitStore(db as unknown as Kysely<never>);
  }

  static async open(database: DatabaseConfig): Promise<RegistrationStore> {
    return new RegistrationStore(await openDatabase<RegistrationTables>(database, migrations));
  }

  /**
   * Stores records; one already stored is replaced only by its owner (else its DSIM_ID is in
   * `refused`), and never by an older generation.
   */
  async upsert(records: StoredRegistration[], writer: Writer): Promise<WriteResult> {
    const ordered = inKeyOrder(records, (r) => r.dsimId);
    const owners = ownersOf(writer);
    return transact(this.db, async (trx) => {
      const refused: string[] = [];
      for (let i = 0; i < ordered.length; i += 150) {
        const batch = ordered.slice(i, i + 150);
        const result = await trx
          .insertInto('registrations')
          .values(
            batch.map((r) => ({
              dsim_id: r.dsimId,
              registration_nonce: r.registrationNonce,
              credentialing_url: r.credentialingUrl,
              expires_at: r.expiresAt.toISOString(),
              pushed_by: writer.owner,
              generation: r.generation ?? 1,
              used: 0,
            })),
          )
          .onConflict((oc) =>
            oc
              .column('dsim_id')
              .doUpdateSet((eb) => ({
                registration_nonce: eb.ref('excluded.registration_nonce'),
                credentialing_url: eb.ref('excluded.credentialing_url'),
                expires_at: eb.ref('excluded.expires_at'),
                pushed_by: eb.ref('excluded.pushed_by'),
                generation: eb.ref('excluded.generation'),
                used: 0,
              }))
              // A push delayed past a re-provisioning never brings the older registration back.
              .where(sql<boolean>`excluded.generation >= registrations.generation`)
              // Another credentialing server's record is not this one's to replace.
              .where('registrations.pushed_by', 'in', owners),
          )
          .executeTakeFirst();
        // Every row written: none can be another's. Only a short count is worth the look-up.
        if (Number(result.numInsertedOrUpdatedRows ?? 0n) < batch.length) {
          refused.push(
            ...(await othersOf(
              trx,
              'registrations',
              batch.map((r) => r.dsimId),
              owners,
            )),
          );
        }
      }
      return { stored: records.length - refused.length, refused };
    });
  }

  /**
   * Removes records, or with `used` retires them (nonce erased, route kept: the device is told its
   * registration was used, and a factory-reset device's request for re-provisioning can be passed
   * on). `upToGeneration` limits it per DSIM_ID, so a newer record pushed since is spared.
   */
  async withdraw(
    dsimIds: string[],
    writer: Writer,
    options: { used?: boolean | undefined; upToGeneration?: Record<string, number> | undefined } = {},
  ): Promise<{ withdrawn: number; refused: string[] }> {
    const limited = options.upToGeneration ?? {};
    const unlimited = dsimIds.filter((id) => !Object.hasOwn(limited, id));
    const owners = ownersOf(writer);
    return transact(this.db, async (trx) => {
      let n = 0;
      const apply = async (ids: string[], upTo?: number) => {
        if (ids.length === 0) return;
        if (options.used) {
          let query = trx
            .updateTable('registrations')
            .set({ used: 1, registration_nonce: '' })
            .where('dsim_id', 'in', ids)
            .where('pushed_by', 'in', owners);
          if (upTo !== undefined) query = query.where('generation', '<=', upTo);
          n += Number((await query.executeTakeFirst()).numUpdatedRows);
        } else {
          let query = trx
            .deleteFrom('registrations')
            .where('dsim_id', 'in', ids)
            .where('pushed_by', 'in', owners);
          if (upTo !== undefined) query = query.where('generation', '<=', upTo);
          n += Number((await query.executeTakeFirst()).numDeletedRows);
        }
      };
      await apply(unlimited);
      for (const id of dsimIds) if (Object.hasOwn(limited, id)) await apply([id], limited[id]);
      const refused = n < dsimIds.length ? await othersOf(trx, 'registrations', dsimIds, owners) : [];
      return { withdrawn: n, refused };
    });
  }

  async find(dsimId: string): Promise<StoredRegistration | undefined> {
    const row = await this.db
      .selectFrom('registrations')
      .selectAll()
      .where('dsim_id', '=', dsimId)
      .executeTakeFirst();
    return row
      ? {
          dsimId: row.dsim_id,
          registrationNonce: row.registration_nonce,
          credentialingUrl: row.credentialing_url,
          expiresAt: new Date(row.expires_at),
          generation: Number(row.generation),
          used: Number(row.used) === 1,
          pushedBy: row.pushed_by,
        }
      : undefined;
  }

  /**
   * Stores (or replaces) enrollment groups; a closed one is kept inactive. A group already stored is
   * replaced only by its owner.
   */
  async upsertGroups(
    groups: {
      groupId: string;
      caSha256: string;
      dsimPattern: string | null;
      credentialingUrl: string;
      active: boolean;
    }[],
    writer: Writer,
  ): Promise<WriteResult> {
    const owners = ownersOf(writer);
    let stored = 0;
    for (const g of groups) {
      const row = {
        group_id: g.groupId,
        ca_sha256: g.caSha256,
        dsim_pattern: g.dsimPattern,
        credentialing_url: g.credentialingUrl,
        active: g.active ? 1 : 0,
        pushed_by: writer.owner,
      };
      const result = await this.db
        .insertInto('enrollment_groups')
        .values(row)
        .onConflict((oc) =>
          oc.column('group_id').doUpdateSet(row).where('enrollment_groups.pushed_by', 'in', owners),
        )
        .executeTakeFirst();
      stored += Number(result.numInsertedOrUpdatedRows ?? 0n);
    }
    const refused = await othersOf(
      this.db,
      'enrollment_groups',
      groups.map((g) => g.groupId),
      owners,
    );
    return { stored, refused };
  }

  /** The open groups of a CA (by its certificate's SHA-256), in a stable order. */
  async groupsOfCa(caSha256: string): Promise<StoredGroup[]> {
    const rows = await this.db
      .selectFrom('enrollment_groups')
      .selectAll()
      .where('ca_sha256', '=', caSha256)
      .where('active', '=', 1)
      .orderBy('group_id')
      .execute();
    return rows.map((r) => ({
      groupId: r.group_id,
      caSha256: r.ca_sha256,
      dsimPattern: r.dsim_pattern,
      credentialingUrl: r.credentialing_url,
      pushedBy: r.pushed_by,
    }));
  }

  /**
   * Stores transfer statements; one already stored for a DSIM_ID is replaced only by the
   * credentialing server that pushed it (an operator cannot overwrite another's). Returns how many
   * were stored.
   */
  async upsertTransferStatements(
    statements: { dsimId: string; transferId: string; statement: string }[],
    writer: Writer,
    now: Date,
  ): Promise<number> {
    const owners = ownersOf(writer);
    let stored = 0;
    for (const t of statements) {
      const row = {
        dsim_id: t.dsimId,
        transfer_id: t.transferId,
        statement: t.statement,
        pushed_by: writer.owner,
        pushed_at: now.toISOString(),
      };
      const result = await this.db
        .insertInto('transfer_statements')
        .values(row)
        .onConflict((oc) =>
          oc
            .column('dsim_id')
            .doUpdateSet({
              transfer_id: row.transfer_id,
              statement: row.statement,
              pushed_by: row.pushed_by,
              pushed_at: row.pushed_at,
            })
            .where('transfer_statements.pushed_by', 'in', owners),
        )
        .executeTakeFirst();
      stored += Number(result.numInsertedOrUpdatedRows ?? 0n);
    }
    return stored;
  }

  async findTransferStatement(
    dsimId: string,
  ): Promise<{ transferId: string; statement: string } | undefined> {
    const row = await this.db
      .selectFrom('transfer_statements')
      .select(['transfer_id', 'statement'])
      .where('dsim_id', '=', dsimId)
      .executeTakeFirst();
    return row ? { transferId: row.transfer_id, statement: row.statement } : undefined;
  }

  /** Answers when the database does (readiness checks). */
  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

/** The stored owner values a writer matches: its identity, and the bare CN of rows from before it. */
function ownersOf(writer: Writer): string[] {
  return writer.legacyName ? [writer.owner, writer.legacyName] : [writer.owner];
}

/** Of the given keys, those stored under an owner that is not this writer's. */
async function othersOf(
  db: Kysely<RegistrationTables>,
  table: 'registrations' | 'enrollment_groups',
  keys: string[],
  owners: string[],
): Promise<string[]> {
  if (keys.length === 0) return [];
  const rows =
    table === 'registrations'
      ? await db
          .selectFrom('registrations')
          .select('dsim_id as key')
          .where('dsim_id', 'in', keys)
          .where('pushed_by', 'not in', owners)
          .execute()
      : await db
          .selectFrom('enrollment_groups')
          .select('group_id as key')
          .where('group_id', 'in', keys)
          .where('pushed_by', 'not in', owners)
          .execute();
  return rows.map((r) => r.key).sort();
}
