import { sql, type Kysely } from 'kysely';
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
};

export interface Referral {
  dsimId: string;
  ticketDigest: string;
  credentialingUrl: string;
  expiresAt: Date;
  deliveredAt: Date | null;
}

/** @example const store = await ProvisioningStore.open({ kind: 'sqlite', file: 'data/provisioning-1.db' }); */
export class ProvisioningStore {
  private constructor(private readonly db: Kysely<ProvisioningTables>) {}

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

  /** Answers when the database does (readiness checks). */
  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
