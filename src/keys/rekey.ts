import { SimcredError } from '../errors/index.js';
import { sealedBy, type KeyEncryptionKey } from './key-encryption.js';

/** One subscriber's sealed pair, as a store hands it to a KEK rotation (id: IMSI or PIMSI). */
export interface SealedSecrets {
  id: string;
  kSealed: string;
  opcSealed: string;
}

/** What a store must offer for its subscribers' K/OPc to be re-sealed (HssStore, PhlrStore). */
export interface ResealableStore {
  sealedSecretsAfter(after: string, limit: number): Promise<SealedSecrets[]>;
  replaceSealedSecrets(from: SealedSecrets, to: { kSealed: string; opcSealed: string }): Promise<boolean>;
}

const PAGE = 500;

/**
 * KEK rotation: opens every subscriber's K and OPc with the old key and seals them with the new one,
 * both fields of a row in one update (a row is never left half under each key). Rows already under
 * the new key are skipped, so an interrupted rotation is finished by running it again. Run it with the
 * role stopped: a running server holds only the old key. The contexts are those the HSS and PHLR
 * seal with (`k:<id>`, `opc:<id>`).
 *
 * @example
 *   const { resealed } = await resealSubscribers(store, oldKek, tokenKek(uri, '--to'));
 */
export async function resealSubscribers(
  store: ResealableStore,
  from: KeyEncryptionKey,
  to: KeyEncryptionKey,
): Promise<{ resealed: number; alreadyNew: number }> {
  if (from.header === to.header) {
    throw new SimcredError(
      'SIMCRED_CLI_ARGUMENT',
      `the new key-encryption key is the current one (${to.header})`,
    );
  }
  let resealed = 0;
  let alreadyNew = 0;
  let after = '';
  for (;;) {
    const page = await store.sealedSecretsAfter(after, PAGE);
    if (page.length === 0) break;
    for (const row of page) {
      after = row.id;
      if (sealedBy(row.kSealed) === to.header && sealedBy(row.opcSealed) === to.header) {
        alreadyNew++;
        continue;
      }
      const open = (sealed: string, context: string) =>
        sealedBy(sealed) === to.header ? to.open(sealed, context) : from.open(sealed, context);
      const k = open(row.kSealed, `k:${row.id}`);
      const opc = open(row.opcSealed, `opc:${row.id}`);
      const replaced = await store.replaceSealedSecrets(row, {
        kSealed: to.seal(k, `k:${row.id}`),
        opcSealed: to.seal(opc, `opc:${row.id}`),
      });
      k.fill(0);
      opc.fill(0);
      if (!replaced) {
        throw new SimcredError(
          'SIMCRED_CONFIG_INVALID',
          `subscriber ${row.id} changed during the rotation: stop the role and run it again`,
        );
      }
      resealed++;
    }
  }
  return { resealed, alreadyNew };
}
