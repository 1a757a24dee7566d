import type { Command } from 'commander';
import { parseKek } from '../crypto/index.js';
import { SimcredError } from '../errors/index.js';
import { isPkcs11Uri, parsePkcs11Uri } from '../keys/pkcs11-uri.js';
import { rekeyRole } from '../system/rekey.js';
import { formatKek, runKekBench } from '../bench/kek.js';
import { action, positiveInt, printJsonLine } from './run.js';
import { commonConfig, withCommonOptions, type CommonOptions } from './system-commands.js';

/**
 * `simcred hss rekey --to KEK` and `simcred phlr rekey --to KEK`: KEK rotation, e.g. from the key in
 * secrets.json to an AES key in a PKCS#11 token (src/system/rekey.ts). Prints one JSON line. And
 * `simcred bench kek --kek KEK` (src/bench/kek.ts).
 *
 * @example
 *   registerKekCommands(program);
 */
export function registerKekCommands(program: Command): void {
  const bench = program.commands.find((c) => c.name() === 'bench');
  bench
    ?.command('kek')
    .description(
      'K/OPc seal and open with a key-encryption key (a pkcs11: URI or 32 bytes) next to one in memory: µs per call',
    )
    .requiredOption(
      '--kek <KEK>',
      'the key to measure: a pkcs11: URI naming an AES-256 key, or 32 bytes (hex/base64)',
    )
    .option('--calls <N>', 'seals and opens each', '5000')
    .option('--json', 'print one JSON line last')
    .action(
      action((options: { kek: string; calls: string; json?: boolean }) => {
        const result = runKekBench({
          kek: options.kek,
          calls: positiveInt('--calls', options.calls, 10_000_000),
        });
        process.stdout.write(formatKek(result));
        if (options.json) printJsonLine(result);
      }),
    );
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
