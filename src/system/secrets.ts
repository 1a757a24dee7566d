import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseKek } from '../crypto/index.js';
import { SimcredError } from '../errors/index.js';
import { loadKeyEncryptionKey, loadOperatorVariant, type KeyEncryptionKey } from '../keys/key-encryption.js';
import type { SimcredConfig } from '../config/index.js';

/**
 * A role's own secrets, each from config when set there (production: SIMCRED_<ROLE>__<NAME>), else
 * from <dataDir>/<role>/secrets.json, else generated once and written there (0600, folder 0700) so a
 * restart keeps every record sealed under them readable. Values are text (hex).
 *
 * @example
 *   const { kek } = loadRoleSecrets(config, 'phlr', { kek: { configured: config.phlr.kek, bytes: 32 } });
 */
export function loadRoleSecrets<Name extends string>(
  config: SimcredConfig,
  role: string,
  fields: Record<Name, { configured?: string; bytes: number }>,
): Record<Name, string> {
  const file = join(config.dataDir, role, 'secrets.json');
  let stored: Partial<Record<string, string>> = {};
  const existed = existsSync(file);
  if (existed) {
    try {
      stored = JSON.parse(readFileSync(file, 'utf8')) as typeof stored;
    } catch {
      throw new SimcredError('SIMCRED_CONFIG_INVALID', `${file} is not valid JSON`);
    }
  }
  const values = {} as Record<Name, string>;
  const toStore: Record<string, string> = {};
  let generated = false;
  for (const name of Object.keys(fields) as Name[]) {
    const { configured, bytes } = fields[name];
    if (configured !== undefined) {
      values[name] = configured;
      continue;
    }
    let value = stored[name];
    if (typeof value !== 'string') {
      value = randomBytes(bytes).toString('hex');
      generated = true;
    }
    values[name] = toStore[name] = value;
  }
  if (generated) {
    mkdirSync(join(config.dataDir, role), { recursive: true, mode: 0o700 });
    try {
      // A first file is created exclusively: of two processes starting at once (two instances of a
      // role on one data folder), one writes it and the other reads what that one wrote.
      writeFileSync(file, JSON.stringify({ ...stored, ...toStore }), {
        mode: 0o600,
        flag: existed ? 'w' : 'wx',
      });
    } catch (err) {
      if ((err as { code?: string }).code === 'EEXIST') return loadRoleSecrets(config, role, fields);
      throw err;
    }
  }
  return values;
}

/**
 * The HSS's own secrets: the key-encryption key for K/OPc at rest and the operator's OP. From config
 * (SIMCRED_HSS__KEK, SIMCRED_HSS__OP) in production, each either a value or a pkcs11: URI naming an
 * AES key / a private data object in a token (then nothing of it is written under the data folder);
 * in the embedded setup generated once into <dataDir>/hss/secrets.json (0600) so a restart keeps
 * every subscriber readable. A token that cannot be opened: SIMCRED_KEY_STORE_UNAVAILABLE.
 */
export function loadHssSecrets(config: SimcredConfig): { kek: KeyEncryptionKey; op: Buffer } {
  const { kek, op } = loadRoleSecrets(config, 'hss', {
    kek: { configured: config.hss.kek, bytes: 32 },
    op: { configured: config.hss.op, bytes: 16 },
  });
  return { kek: loadKeyEncryptionKey(kek, 'hss.kek'), op: loadOperatorVariant(op, 'hss.op') };
}

/**
 * The preliminary HLR's key-encryption key for K_PIMSI/OPc_PIMSI at rest: SIMCRED_PHLR__KEK (a value or
 * a pkcs11: URI naming a token's AES key), or generated once into <dataDir>/phlr/secrets.json (0600).
 */
export function loadPhlrSecrets(config: SimcredConfig): { kek: KeyEncryptionKey } {
  const { kek } = loadRoleSecrets(config, 'phlr', { kek: { configured: config.phlr.kek, bytes: 32 } });
  return { kek: loadKeyEncryptionKey(kek, 'phlr.kek') };
}

/**
 * The key of the registration servers' stateless lookup challenges (step 2): SIMCRED_REGISTRATION__CHALLENGE_SECRET,
 * or generated once into <dataDir>/registration/secrets.json (0600). Every process serving a
 * registration server from this data folder (restarts, `simcred up --workers N`) must share it, or a
 * challenge one issued fails at another.
 */
export function loadRegistrationSecrets(config: SimcredConfig): { challengeSecret: Buffer } {
  const { challengeSecret } = loadRoleSecrets(config, 'registration', {
    challengeSecret: { configured: config.registration.challengeSecret, bytes: 32 },
  });
  return { challengeSecret: parseKek(challengeSecret, 'registration.challengeSecret') };
}
