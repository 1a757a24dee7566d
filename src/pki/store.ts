import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { openDatabase, type Migrations } from '../storage/index.js';
import { CA_DATABASE_FILE, type IssuerName } from './layout.js';

/** RFC 5280 §5.3.1 CRLReason codes accepted by `simcred pki revoke --reason`. */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  removeFromCRL: 8,
  privilegeWithdrawn: 9,
  aACompromise: 10,
} as const;
export type RevocationReason = keyof typeof REVOCATION_REASONS;

interface CaTables {
  issued_certificates: {
    issuer: IssuerName;
    /** Lower-case hex of the certificate serial number, no leading zeros beyond DER's. */
    serial_hex: string;
    subject: string;
    dsim_id: string | null;
    not_after: string;
    cert_path: string;
  };
  revocations: {
    issuer: IssuerName;
    serial_hex: string;
    revoked_at: string;
    reason: number;
  };
  devices: {
    dsim_id: string;
    serial_hex: string;
    pimsi: string;
    key_type: string;
    registration_server: string;
    created_at: string;
  };
  counters: { name: string; value: number };
}

const migrations: Migrations = {
  '0001_ca': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('issued_certificates')
        .addColumn('issuer', 'text', (c) => c.notNull())
        .addColumn('serial_hex', 'text', (c) => c.notNull())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('dsim_id', 'text')
        .addColumn('not_after', 'text', (c) => c.notNull())
        .addColumn('cert_path', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('issued_certificates_pk', ['issuer', 'serial_hex'])
        .execute();
      await db.schema
        .createTable('revocations')
        .addColumn('issuer', 'text', (c) => c.notNull())
        .addColumn('serial_hex', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'text', (c) => c.notNull())
        .addColumn('reason', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('revocations_pk', ['issuer', 'serial_hex'])
        .execute();
      await db.schema
        .createTable('devices')
        .addColumn('dsim_id', 'text', (c) => c.primaryKey())
        .addColumn('serial_hex', 'text', (c) => c.notNull())
        .addColumn('pimsi', 'text', (c) => c.notNull().unique())
        .addColumn('key_type', 'text', (c) => c.notNull())
        .addColumn('registration_server', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('counters')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('value', 'integer', (c) => c.notNull())
        .execute();
    },
  },
};

export type CertificateStatus =
  { status: 'good' } | { status: 'revoked'; revokedAt: Date; reason: number } | { status: 'unknown' };

export interface IssuedCertificate {
  issuer: IssuerName;
  serialHex: string;
  subject: string;
  dsimId?: string;
  notAfter: Date;
  certPath: string;
}

export interface ManufacturedDevice {
  dsimId: string;
  serialHex: string;
  pimsi: string;
  keyType: 'ec' | 'rsa';
  registrationServer: string;
}

/**
 * The CA's own records in <pki>/ca.db: what it issued, what it revoked, which devices it made.
 * The OCSP responder reads the same file, so a revocation is served without a restart.
 *
 * @example
 *   const store = await openCaStore(pkiDir);
 *   await store.revoke('device-ca', serialHex, new Date(), REVOCATION_REASONS.keyCompromise);
 *   (await store.status('device-ca', serialHex)).status; // 'revoked'
 */
export class CaStore {
  private constructor(readonly db: Kysely<CaTables>) {}

  static async open(pkiDir: string): Promise<CaStore> {
    return new CaStore(
      await openDatabase<CaTables>({ kind: 'sqlite', file: join(pkiDir, CA_DATABASE_FILE) }, migrations),
    );
  }

  /** With ignoreDuplicates, re-recording a certificate already on file is a no-op (idempotent init). */
  async recordIssued(
    certs: IssuedCertificate[],
    options: { ignoreDuplicates?: boolean } = {},
  ): Promise<void> {
    if (certs.length === 0) return;
    await this.db.transaction().execute(async (trx) => {
      // SQLite limits bound parameters per statement; 500 rows × 6 columns stays under it.
      for (let i = 0; i < certs.length; i += 500) {
        await trx
          .insertInto('issued_certificates')
          .values(
            certs.slice(i, i + 500).map((c) => ({
              issuer: c.issuer,
              serial_hex: normaliseSerial(c.serialHex),
              subject: c.subject,
              dsim_id: c.dsimId ?? null,
              not_after: c.notAfter.toISOString(),
              cert_path: c.certPath,
            })),
          )
          .$call((q) =>
            options.ignoreDuplicates
              ? q.onConflict((oc) => oc.columns(['issuer', 'serial_hex']).doNothing())
              : q,
          )
          .execute();
      }
    });
  }

  async recordDevices(devices: ManufacturedDevice[]): Promise<void> {
    if (devices.length === 0) return;
    const now = new Date().toISOString();
    await this.db.transaction().execute(async (trx) => {
      for (let i = 0; i < devices.length; i += 500) {
        await trx
          .insertInto('devices')
          .values(
            devices.slice(i, i + 500).map((d) => ({
              dsim_id: d.dsimId,
              serial_hex: normaliseSerial(d.serialHex),
              pimsi: d.pimsi,
              key_type: d.keyType,
              registration_server: d.registrationServer,
              created_at: now,
            })),
          )
          .execute();
      }
    });
  }

  async findDevice(dsimId: string): Promise<ManufacturedDevice | undefined> {
    const row = await this.db
      .selectFrom('devices')
      .selectAll()
      .where('dsim_id', '=', dsimId)
      .executeTakeFirst();
    return row
      ? {
          dsimId: row.dsim_id,
          serialHex: row.serial_hex,
          pimsi: row.pimsi,
          keyType: row.key_type as 'ec' | 'rsa',
          registrationServer: row.registration_server,
        }
      : undefined;
  }

  /** The registration server each of these devices' factory images names (unknown devices left out). */
  async registrationServersOf(dsimIds: string[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    for (let i = 0; i < dsimIds.length; i += 500) {
      const rows = await this.db
        .selectFrom('devices')
        .select(['dsim_id', 'registration_server'])
        .where('dsim_id', 'in', dsimIds.slice(i, i + 500))
        .execute();
      for (const row of rows) found.set(row.dsim_id, row.registration_server);
    }
    return found;
  }

  /** Which of these DSIM_IDs are already taken (the factory draws random IDs and must not repeat one). */
  async knownDsimIds(dsimIds: string[]): Promise<Set<string>> {
    const known = new Set<string>();
    for (let i = 0; i < dsimIds.length; i += 500) {
      const rows = await this.db
        .selectFrom('devices')
        .select('dsim_id')
        .where('dsim_id', 'in', dsimIds.slice(i, i + 500))
        .execute();
      for (const row of rows) known.add(row.dsim_id);
    }
    return known;
  }

  /** Every manufactured device, in manufacture order (the demo picks its fleet from these). */
  async listDevices(): Promise<{ dsimId: string; registrationServer: string }[]> {
    const rows = await this.db
      .selectFrom('devices')
      .select(['dsim_id', 'registration_server'])
      .orderBy('created_at')
      .orderBy('dsim_id')
      .execute();
    return rows.map((r) => ({ dsimId: r.dsim_id, registrationServer: r.registration_server }));
  }

  async countDevices(): Promise<number> {
    const row = await this.db
      .selectFrom('devices')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Reserves `count` consecutive values of a named counter and returns the first. */
  async reserve(name: string, count: number, start = 0): Promise<number> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx
        .selectFrom('counters')
        .select('value')
        .where('name', '=', name)
        .executeTakeFirst();
      const first = row ? Number(row.value) : start;
      if (row)
        await trx
          .updateTable('counters')
          .set({ value: first + count })
          .where('name', '=', name)
          .execute();
      else
        await trx
          .insertInto('counters')
          .values({ name, value: first + count })
          .execute();
      return first;
    });
  }

  /** Records a revocation; revoking twice keeps the first time and reason (RFC 5280: revocation is final). */
  async revoke(issuer: IssuerName, serialHex: string, revokedAt: Date, reason: number): Promise<void> {
    await this.db
      .insertInto('revocations')
      .values({ issuer, serial_hex: normaliseSerial(serialHex), revoked_at: revokedAt.toISOString(), reason })
      .onConflict((oc) => oc.columns(['issuer', 'serial_hex']).doNothing())
      .execute();
  }

  /** good if this CA issued the serial and did not revoke it; unknown if it never issued it. */
  async status(issuer: IssuerName, serialHex: string): Promise<CertificateStatus> {
    const serial = normaliseSerial(serialHex);
    const revoked = await this.db
      .selectFrom('revocations')
      .selectAll()
      .where('issuer', '=', issuer)
      .where('serial_hex', '=', serial)
      .executeTakeFirst();
    if (revoked)
      return { status: 'revoked', revokedAt: new Date(revoked.revoked_at), reason: revoked.reason };
    const issued = await this.db
      .selectFrom('issued_certificates')
      .select('serial_hex')
      .where('issuer', '=', issuer)
      .where('serial_hex', '=', serial)
      .executeTakeFirst();
    return issued ? { status: 'good' } : { status: 'unknown' };
  }

  /** Changes whenever a revocation is recorded: lets caches of signed responses know they are stale. */
  async revocationGeneration(): Promise<number> {
    const row = await this.db
      .selectFrom('revocations')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

/** Serials are compared as lower-case hex without leading zero octets, whatever DER padding they had. */
export function normaliseSerial(serialHex: string): string {
  const hex = serialHex.toLowerCase().replace(/^(00)+/, '');
  return hex === '' ? '00' : hex;
}
