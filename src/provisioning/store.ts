import { sql, type Kysely } from 'kysely';
import { RateLimitStore, createRateLimitTable } from '../storage/rate-limits.js';
import { openDatabase, type DatabaseConfig, type Migrations } from '../storage/index.js';

/** The provisioning server keeps referrals only: never a package, never anything it could decrypt. */
interface ProvisioningTables {
  referrals: {
    dsim_id: string;
    ticket_digest: string;
    credentialing_url: string;
    expires_at: string;
    delivered_at: string | null;
  };
  /**
   * Open OMA DM sessions (docs/omadm.md): keyed by the digest of the RespURI token the server gave the
   * device in Package 2, so any provisioning instance behind a load balancer can carry on the session.
   */
  dm_sessions: {
    token_digest: string;
    dsim_id: string;
    session_id: string;
    /** The CmdID of the server's Replace that carries the package (its Status says "delivered"). */
    replace_cmd_id: string;
    expires_at: string;
  };
}

const migrations: Migrations = {
  '0001_referrals': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('referrals')
        .addColumn('dsim_id', 'text', (c) => c.primaryKey())
        .addColumn('ticket_digest', 'text', (c) => c.notNull())
        .addColumn('credentialing_url', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('delivered_at', 'text')
        .execute();
    },
  },
  '0002_dm_sessions': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('dm_sessions')
        .addColumn('token_digest', 'text', (c) => c.primaryKey())
        .addColumn('dsim_id', 'text', (c) => c.notNull())
        .addColumn('session_id', 'text', (c) => c.notNull())
        .addColumn('replace_cmd_id', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('dm_sessions_expiry').on('dm_sessions').column('expires_at').execute();
    },
  },
  // The abuse limits' counters of the device routes (src/http/rate-limit.ts).
  '0003_rate_limits': {
    async up(db: Kysely<unknown>) {
      await createRateLimitTable(db);
    },
  },
};

/** An open OMA DM session between Package 2 and Package 3. */
export interface DmSession {
  tokenDigest: string;
  dsimId: string;
  sessionId: string;
  replaceCmdId: string;
  expiresAt: Date;
}

export interface Referral {
  dsimId: string;
  ticketDigest: string;
  credentialingUrl: string;
  expiresAt: Date;
  deliveredAt: Date | null;
}

/** @example const store = await ProvisioningStore.open({ kind: 'sqlite', file: 'data/provisioning-1.db' }); */
export class ProvisioningStore {
  /** Counters of the abuse limits on this role's device routes, shared by its instances. */
  readonly rateLimits: RateLimitStore;

  private constructor(private readonly db: Kysely<ProvisioningTables>) {
    this.rateLimits = new RateLimitStore(db as unknown as Kysely<never>);
  }

  static async open(database: DatabaseConfig): Promise<ProvisioningStore> {
    return new ProvisioningStore(await openDatabase<ProvisioningTables>(database, migrations));
  }

  /** A new referral replaces an older one for the same device (the older ticket dies with it). */
  async saveReferral(referral: Omit<Referral, 'deliveredAt'>): Promise<void> {
    const row = {
      dsim_id: referral.dsimId,
      ticket_digest: referral.ticketDigest,
      credentialing_url: referral.credentialingUrl,
      expires_at: referral.expiresAt.toISOString(),
      delivered_at: null,
    };
    await this.db
      .insertInto('referrals')
      .values(row)
      .onConflict((oc) => oc.column('dsim_id').doUpdateSet(row))
      .execute();
  }

  async findReferral(dsimId: string): Promise<Referral | undefined> {
    const row = await this.db
      .selectFrom('referrals')
      .selectAll()
      .where('dsim_id', '=', dsimId)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      dsimId: row.dsim_id,
      ticketDigest: row.ticket_digest,
      credentialingUrl: row.credentialing_url,
      expiresAt: new Date(row.expires_at),
      deliveredAt: row.delivered_at ? new Date(row.delivered_at) : null,
    };
  }

  async markDelivered(dsimId: string, at: Date): Promise<void> {
    await this.db
      .updateTable('referrals')
      .set({ delivered_at: at.toISOString() })
      .where('dsim_id', '=', dsimId)
      .execute();
  }

  /** Opens a DM session (and drops the expired ones: a device that never sent Package 3). */
  async saveDmSession(session: DmSession, now: Date): Promise<void> {
    await this.db.deleteFrom('dm_sessions').where('expires_at', '<=', now.toISOString()).execute();
    await this.db
      .insertInto('dm_sessions')
      .values({
        token_digest: session.tokenDigest,
        dsim_id: session.dsimId,
        session_id: session.sessionId,
        replace_cmd_id: session.replaceCmdId,
        expires_at: session.expiresAt.toISOString(),
      })
      .execute();
  }

  /**
   * Takes an open, unexpired DM session out of the store: one Package 3 per session, so the delete is
   * the claim (a replayed Package 3 finds nothing).
   */
  async takeDmSession(tokenDigest: string, now: Date): Promise<DmSession | undefined> {
    const row = await this.db
      .deleteFrom('dm_sessions')
      .where('token_digest', '=', tokenDigest)
      .returningAll()
      .executeTakeFirst();
    if (!row || new Date(row.expires_at) <= now) return undefined;
    return {
      tokenDigest: row.token_digest,
      dsimId: row.dsim_id,
      sessionId: row.session_id,
      replaceCmdId: row.replace_cmd_id,
      expiresAt: new Date(row.expires_at),
    };
  }

  /** Answers when the database does (readiness checks). */
  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
