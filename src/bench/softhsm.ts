import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimcredError } from '../errors/index.js';
import { PIN_ENV } from '../keys/pkcs11-token.js';

/** A SoftHSM token of the bench's own, in a temporary folder: what `bench e2e --pkcs11` signs with. */
export interface BenchToken {
  /** `pkcs11:token=simcred-bench`. */
  uri: string;
  /** SOFTHSM2_CONF and the PIN, for every process that opens the token. */
  env: Record<string, string>;
  remove(): void;
}

/**
 * Makes a fresh SoftHSM token (Debian's softhsm2: `softhsm2-util --init-token`) in a folder of its
 * own. SoftHSM reads SOFTHSM2_CONF when its library is initialised, so the caller sets the env before
 * any token is opened in its process.
 *
 * @example
 *   const token = makeBenchToken();
 *   Object.assign(process.env, token.env);
 */
export function makeBenchToken(label = 'simcred-bench'): BenchToken {
  const dir = mkdtempSync(join(tmpdir(), 'simcred-bench-softhsm-'));
  mkdirSync(join(dir, 'tokens'));
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(
    conf,
    `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );
  const pin = randomBytes(8).toString('hex');
  const env = { SOFTHSM2_CONF: conf, [PIN_ENV]: pin };
  try {
    execFileSync(
      'softhsm2-util',
      ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', randomBytes(8).toString('hex')],
      { env: { ...process.env, ...env }, stdio: 'ignore' },
    );
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw new SimcredError(
      'SIMCRED_KEY_STORE_UNAVAILABLE',
      `cannot make a SoftHSM token (is Debian's softhsm2 installed?): ${(err as Error).message.split('\n')[0]}`,
    );
  }
  return { uri: `pkcs11:token=${label}`, env, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
