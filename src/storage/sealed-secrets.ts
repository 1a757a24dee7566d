import { sql, type Kysely } from 'kysely';
import type { ResealableStore, SealedSecrets } from '../keys/rekey.js';

/** The part of a `subscribers` table a KEK rotation reads and writes (HSS: by IMSI; PHLR: by PIMSI). */
interface SealedColumns {
  subscribers: { k_sealed: string; opc_sealed: string };
}

/**
 * A store's subscribers as a KEK rotation sees them: pages of sealed pairs in id order, and a
 * replacement of both fields at once only if they are still what was read.
 *
 * @example
 *   const resealable = resealableSubscribers(db, 'imsi');
 */
export function resealableSubscribers<DB>(db: Kysely<DB>, idColumn: 'imsi' | 'pimsi'): ResealableStore {
  const table = db as unknown as Kysely<SealedColumns>;
  const id = sql.ref<string>(`subscribers.${idColumn}`);
  return {
    async sealedSecretsAfter(after: string, limit: number): Promise<SealedSecrets[]> {
      const rows = await table
        .selectFrom('subscribers')
        .select([id.as('id'), 'k_sealed', 'opc_sealed'])
        .where(id, '>', after)
        .orderBy(id)
        .limit(limit)
        .execute();
      return rows.map((r) => ({ id: r.id, kSealed: r.k_sealed, opcSealed: r.opc_sealed }));
    },
    async replaceSealedSecrets(from, to): Promise<boolean> {
      const result = await table
        .updateTable('subscribers')
        .set({ k_sealed: to.kSealed, opc_sealed: to.opcSealed })
        .where(id, '=', from.id)
        .where('k_sealed', '=', from.kSealed)
        .where('opc_sealed', '=', from.opcSealed)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },
  };
}
