import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_PKCS11_MODULE } from '../../src/keys/pkcs11-token.js';

/** A SoftHSM token of its own for one test file, in a temporary folder (Debian's softhsm2). */
export interface ThrowawayToken {
  /** `pkcs11:token=LABEL` (add `;object=…` to name a key). */
  uri: string;
  label: string;
  pin: string;
  /** SOFTHSM2_CONF and SIMCRED_PKCS11_PIN: give it to every process that opens the token. */
  env: Record<string, string>;
  /** The token's folder (SoftHSM's object store): what a search for key material must also cover. */
  dir: string;
  modulePath: string;
  /** OpenSC's pkcs11-tool on this token, logged in, with `args` after (e.g. `--list-objects`): its stdout. */
  pkcs11Tool(...args: string[]): string;
  remove(): void;
}

/**
 * Makes a fresh SoftHSM token. SoftHSM reads SOFTHSM2_CONF when the library is initialised, so the
 * test process sets it before the first token is opened (this sets process.env too).
 *
 * @example
 *   const token = makeSoftHsmToken('keys');
 *   const key = tokenSigningKey(`${token.uri};object=signer`, token.env);
 */
export function makeSoftHsmToken(label = 'simcred-test'): ThrowawayToken {
  const dir = mkdtempSync(join(tmpdir(), 'simcred-softhsm-'));
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens);
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  const pin =
    '4321' +
    Math.floor(Math.random() * 1e6)
      .toString()
      .padStart(6, '0');
  const env = { SOFTHSM2_CONF: conf, SIMCRED_PKCS11_PIN: pin };
  execFileSync(
    'softhsm2-util',
    ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', `${pin}9`],
    {
      env: { ...process.env, ...env },
      stdio: 'ignore',
    },
  );
  if (process.env.SOFTHSM2_CONF && process.env.SOFTHSM2_CONF !== conf) {
    throw new Error('one SoftHSM configuration per test process: SOFTHSM2_CONF is already set');
  }
  process.env.SOFTHSM2_CONF = conf;
  return {
    uri: `pkcs11:token=${label}`,
    label,
    pin,
    env,
    dir,
    modulePath: DEFAULT_PKCS11_MODULE,
    pkcs11Tool: (...args) =>
      execFileSync(
        'pkcs11-tool',
        ['--module', DEFAULT_PKCS11_MODULE, '--token-label', label, '--login', '--pin', pin, ...args],
        { env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
      ),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
