import type { Command } from 'commander';
import { parseKek } from '../crypto/index.js';
import { SimcredError } from '../errors/index.js';
import { isPkcs11Uri, parsePkcs11Uri } from '../keys/pkcs11-uri.js';
import { rekeyRole } from '../system/rekey.js';
import { action, printJsonLine } from './run.js';
import { commonConfig, withCommonOptions, type CommonOptions } from './system-commands.js';

/**
 * `simcred hss rekey --to KEK` and `simcred phlr rekey --to KEK`: KEK rotation, e.g. from the key in
 * secrets.json to an AES key in a PKCS#11 token (src/system/rekey.ts). Prints one JSON line.
 *
 * @example
 *   registerKekCommands(program);
 */
export function registerKekCommands(program: Command): void {
  for (const role of ['hss', 'phlr'] as const) {
    const group =
      program.commands.find((c) => c.name() === role) ??
      program.command(role).description(`the ${role === 'hss' ? 'HSS' : 'preliminary HLR'}'s keys at rest`);
    withCommonOptions(
      group
        .command('rekey')
        .description(
          `re-seal every subscriber's K/OPc under a new key-encryption key (run with the ${role} stopped)`,
        )
        .requiredOption(
          '--to <KEK>',
          'the new key: a pkcs11: URI naming an AES-256 key in a token, or 32 bytes (hex/base64)',
        ),
    ).action(
      action(async (options: CommonOptions & { to: string }) => {
        checkNewKek(options.to);
        printJsonLine(await rekeyRole(commonConfig(options), role, options.to));
      }),
    );
  }
}

/** --to must be a pkcs11: URI or a 32-byte key; the message never repeats the value (it may be a key). */
function checkNewKek(value: string): void {
  try {
    if (isPkcs11Uri(value.trim())) parsePkcs11Uri(value.trim());
    else parseKek(value, '--to');
  } catch (err) {
    throw new SimcredError(
      'SIMCRED_CLI_ARGUMENT',
      `--to must be a pkcs11: URI naming an AES-256 key or a 32-byte key (hex/base64): ${(err as Error).message}`,
    );
  }
}
