import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseKek } from '../crypto/index.js';
import { SimcredError } from '../errors/index.js';
import type { SimcredConfig } from '../config/index.js';

/**
 * The HSS's own secrets: the key-encryption key for K/OPc at rest and the operator's OP. From config
 * (SIMCRED_HSS__KEK, SIMCRED_HSS__OP) in production; in the embedded setup generated once into
 * <dataDir>/hss/secrets.json (0600) so a restart keeps every subscriber readable.
 */
export function loadHssSecrets(config: SimcredConfig): { kek: Buffer; op: Buffer } {
  const file = join(config.dataDir, 'hss', 'secrets.json');
  let stored: { kek?: string; op?: string } = {};
  if (existsSync(file)) {
    try {
      stored = JSON.parse(readFileSync(file, 'utf8')) as typeof stored;
    } catch {
      throw new SimcredError('SIMCRED_CONFIG_INVALID', `${file} is not valid JSON`);
    }
  }
  const kekText = config.hss.kek ?? stored.kek ?? randomBytes(32).toString('hex');
  const opText = config.hss.op ?? stored.op ?? randomBytes(16).toString('hex');
  if (!config.hss.kek && !config.hss.op && (!stored.kek || !stored.op)) {
    mkdirSync(join(config.dataDir, 'hss'), { recursive: true, mode: 0o700 });
    writeFileSync(file, JSON.stringify({ kek: kekText, op: opText }), { mode: 0o600 });
  }
  return { kek: parseKek(kekText, 'hss.kek'), op: Buffer.from(opText, 'hex') };
}
