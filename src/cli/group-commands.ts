import type { Command } from 'commander';
import { join } from 'node:path';
import { SimcredError } from '../errors/index.js';
import { withOperatorClient } from '../notify/cli.js';
import { readManifest } from '../pki/index.js';
import { configuredUrls } from '../system/wiring.js';
import {
  REPROVISION_OPTION_HELP,
  action,
  positiveInt,
  printJsonLine,
  readInputFile,
  reprovisionPolicy,
} from './run.js';
import { commonConfig, withCommonOptions, type CommonOptions } from './system-commands.js';

/** `simcred operator groups …`: enrollment groups (a device CA enrolled instead of a list of DSIM_IDs). */
export function registerGroupCommands(program: Command): void {
  const operator = program.commands.find((c) => c.name() === 'operator');
  if (!operator) throw new Error('the operator command must be registered first');
  const groups = operator
    .command('groups')
    .description('enrollment groups: admit the devices of a CA without listing them');
  withCommonOptions(
    groups
      .command('add')
      .description(
        'enrol a device CA; its devices are admitted as they turn up, each with its own registration',
      )
      .requiredOption('--name <NAME>', 'a name for the group')
      .option('--ca <FILE>', "the devices' issuing CA certificate, PEM (default: the PKI folder's device CA)")
      .option('--pattern <GLOB>', 'only DSIM_IDs matching this glob (* ? [0-7]), e.g. DSIM00AB*')
      .option('--cap <N>', 'admit at most N devices')
      .option(
        '--registration-server <URL...>',
        'registration servers that admit its devices (default: every configured one)',
      )
      .option('--reprovision <POLICY>', REPROVISION_OPTION_HELP),
  ).action(
    action(
      async (
        options: CommonOptions & {
          name: string;
          ca?: string;
          pattern?: string;
          cap?: string;
          registrationServer?: string[];
          reprovision?: string;
        },
      ) => {
        const cap = options.cap !== undefined ? positiveInt('--cap', options.cap, 100_000_000) : undefined;
        const reprovision = reprovisionPolicy(options.reprovision);
        const config = commonConfig(options);
        const caFile =
          options.ca ?? join(config.pkiDir, readManifest(config.pkiDir).manufacturer.deviceCa.cert);
        const urls = configuredUrls(config);
        await withOperatorClient(options, async (client, credentialingUrl) =>
          printJsonLine(
            await client.createGroup(credentialingUrl, {
              name: options.name,
              caCertificate: readInputFile('--ca', caFile).toString('utf8'),
              ...(options.pattern !== undefined ? { dsimPattern: options.pattern } : {}),
              ...(cap !== undefined ? { cap } : {}),
              registrationServers: options.registrationServer ?? urls.registration,
              ...(reprovision ? { reprovision } : {}),
            }),
          ),
        );
      },
    ),
  );
  withCommonOptions(
    groups.command('list').description('every group, with the devices admitted so far'),
  ).action(
    action(async (options: CommonOptions) => {
      await withOperatorClient(options, async (client, credentialingUrl) =>
        printJsonLine(await client.listGroups(credentialingUrl)),
      );
    }),
  );
  withCommonOptions(
    groups.command('close').description('stop admitting a group’s devices').argument('<GROUP_ID>'),
  ).action(
    action(async (groupId: string, options: CommonOptions) => {
      if (!/^grp_[0-9a-f]{16}$/.test(groupId)) {
        throw new SimcredError(
          'SIMCRED_CLI_ARGUMENT',
          'GROUP_ID is grp_ and 16 hex digits (see operator groups list)',
        );
      }
      await withOperatorClient(options, async (client, credentialingUrl) =>
        printJsonLine(await client.closeGroup(credentialingUrl, groupId)),
      );
    }),
  );
}
