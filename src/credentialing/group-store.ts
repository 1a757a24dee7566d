import type { Kysely } from 'kysely';
import { SimcredError } from '../errors/index.js';
import { transact } from '../storage/index.js';
import type { CredentialingTables } from './store.js';

/** An enrollment group as stored. */
export interface StoredGroup {
  id: string;
  name: string;
  caSubject: string;
  caSha256: string;
  dsimPattern: string | null;
  cap: number | null;
  admitted: number;
  registrationServers: string[];
  active: boolean;
  /** The order its devices' registrations belong to. */
  orderId: string;
  createdAt: Date;
}

/**
 * Enrollment groups and the devices each admitted (in the credentialing server's database). A
 * device's admission is counted once, under a conditional update that never lets the count pass
 * the cap, however many registration servers or instances admit at once.
 */
export class GroupStore {
  constructor(private readonly db: Kysely<CredentialingTables>) {}

  async create(group: Omit<StoredGroup, 'admitted'>): Promise<void> {
    await this.db
      .insertInto('enrollment_groups')
      .values({
        id: group.id,
        name: group.name,
        ca_subject: group.caSubject,
        ca_sha256: group.caSha256,
        dsim_pattern: group.dsimPattern,
        cap: group.cap,
        admitted: 0,
        registration_servers: JSON.stringify(group.registrationServers),
        active: group.active ? 1 : 0,
        order_id: group.orderId,
        created_at: group.createdAt.toISOString(),
      })
      .execute();
  }

  async remove(id: string): Promise<void> {
    await this.db.deleteFrom('enrollment_groups').where('id', '=', id).execute();
  }

  async find(id: string): Promise<StoredGroup | undefined> {
    const row = await this.db
      .selectFrom('enrollment_groups')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? fromRow(row) : undefined;
  }

  async list(): Promise<StoredGroup[]> {
    const rows = await this.db.selectFrom('enrollment_groups').selectAll().orderBy('created_at').execute();
    return rows.map(fromRow);
  }

  async close(id: string): Promise<void> {
    await this.db.updateTable('enrollment_groups').set({ active: 0 }).where('id', '=', id).execute();
  }

  /**
   * Counts a device against the group's cap, once: a device admitted before (through any group)
   * counts nothing more. SIMCRED_GROUP_CAP_REACHED when the cap is full (nothing written).
   */
  async admit(groupId: string, dsimId: string, now: Date): Promise<void> {
    await transact(this.db, async (trx) => {
      const member = await trx
        .insertInto('group_members')
        .values({ dsim_id: dsimId, group_id: groupId, admitted_at: now.toISOString() })
        .onConflict((oc) => oc.column('dsim_id').doNothing())
        .executeTakeFirst();
      if (Number(member.numInsertedOrUpdatedRows ?? 0) === 0) return;
      const counted = await trx
        .updateTable('enrollment_groups')
        .set((eb) => ({ admitted: eb('admitted', '+', 1) }))
        .where('id', '=', groupId)
        .where((eb) => eb.or([eb('cap', 'is', null), eb('admitted', '<', eb.ref('cap'))]))
        .executeTakeFirst();
      if (Number(counted.numUpdatedRows) === 0) {
        // Rolls the membership back with the transaction.
        throw new SimcredError('SIMCRED_GROUP_CAP_REACHED', `enrollment group ${groupId} is full`);
      }
    });
  }
}

function fromRow(row: CredentialingTables['enrollment_groups']): StoredGroup {
  return {
    id: row.id,
    name: row.name,
    caSubject: row.ca_subject,
    caSha256: row.ca_sha256,
    dsimPattern: row.dsim_pattern,
    cap: row.cap === null ? null : Number(row.cap),
    admitted: Number(row.admitted),
    registrationServers: JSON.parse(row.registration_servers) as string[],
    active: Number(row.active) === 1,
    orderId: row.order_id,
    createdAt: new Date(row.created_at),
  };
}
