import type { Command } from 'commander';
import { commonConfig, untilSignal, withCommonOptions, type CommonOptions } from '../cli/system-commands.js';
import { action } from '../cli/run.js';
import { createLogger } from '../log/logger.js';
import { startPhlr } from '../system/roles.js';

/**
 * `simcred serve phlr`: the preliminary HLR alone, on config.ports.phlr.
 *
 * @example
 *   registerPhlrCommands(serve);
 */
export function registerPhlrCommands(serve: Command): void {
  withCommonOptions(
    serve
      .command('phlr')
      .description(
        'run the preliminary HLR alone: AKA on preliminary credentials, access grants for registration',
      ),
  ).action(
    action(async (options: CommonOptions) => {
      const config = commonConfig(options);
      const logger = createLogger({ name: 'phlr', level: config.log.level });
      const server = await startPhlr(config, logger);
      process.stdout.write(`phlr listening on ${server.url}\n`);
      await untilSignal(() => server.close());
    }),
  );
}
