import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SimcredConfig } from '../config/index.js';
import { SimcredError } from '../errors/index.js';
import { HssStore } from '../hss/store.js';
import { loadKeyEncryptionKey } from '../keys/key-encryption.js';
import { resealSubscribers } from '../keys/rekey.js';
import { PhlrStore } from '../phlr/store.js';
import { roleDatabase } from './wiring.js';

/** What `simcred hss rekey` / `simcred phlr rekey` did; keys appear only by id or URI. */
export interface RekeyReport {
  role: 'hss' | 'phlr';
  from: string;
  to: string;
  resealed: number;
  alreadyNew: number;
  /** What the operator does next: the new key is named where the old one was. */
  next: string;
}

/**
 * Rotates a role's key-encryption key (docs/crypto.md §7): every subscriber's K/OPc re-sealed from the
 * current KEK (config `<role>.kek`, else `<dataDir>/<role>/secrets.json`) to `to` (a pkcs11: URI or 32
 * bytes). When the current key came from secrets.json, secrets.json then names the new one instead
 * (a pkcs11: URI names a key, it holds none); when it came from config, the operator sets the
 * setting. The role must be stopped meanwhile.
 *
 * @example
 *   await rekeyRole(config, 'hss', 'pkcs11:token=simcred;object=simcred-hss-kek');
 */
export async function rekeyRole(
  config: SimcredConfig,
  role: 'hss' | 'phlr',
  to: string,
): Promise<RekeyReport> {
  const configured = role === 'hss' ? config.hss.kek : config.phlr.kek;
  const file = join(config.dataDir, role, 'secrets.json');
  let stored: Record<string, unknown> = {};
  if (existsSync(file)) {
    try {
      stored = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch {
      throw new SimcredError('SIMCRED_CONFIG_INVALID', `${file} is not valid JSON`);
    }
  }
  const current = configured ?? (typeof stored.kek === 'string' ? stored.kek : undefined);
  if (current === undefined) {
    throw new SimcredError(
      'SIMCRED_CONFIG_INVALID',
      `${role}.kek is not set and ${file} holds no key-encryption key: nothing to rotate from`,
    );
  }
  const from = loadKeyEncryptionKey(current, `${role}.kek`);
  const next = loadKeyEncryptionKey(to, '--to');
  const store =
    role === 'hss'
      ? await HssStore.open(roleDatabase(config, 'hss'))
      : await PhlrStore.open(roleDatabase(config, 'phlr'));
  let counts: { resealed: number; alreadyNew: number };
  try {
    counts = await resealSubscribers(store.resealable(), from, next);
  } finally {
    await store.close();
  }
  let nextStep: string;
  if (configured === undefined) {
    // Written whole then renamed: a crash leaves the old file or the new, never half of one.
    const temporary = `${file}.${process.pid}.tmp`;
    writeFileSync(temporary, JSON.stringify({ ...stored, kek: to.trim() }), { mode: 0o600 });
    renameSync(temporary, file);
    nextStep = `${file} now names the new key; start the ${role}`;
  } else {
    nextStep = `set ${role}.kek (SIMCRED_${role.toUpperCase()}__KEK) to the new key, then start the ${role}`;
  }
  return { role, from: from.description, to: next.description, ...counts, next: nextStep };
}
