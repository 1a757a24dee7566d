import type { Command } from 'commander';
import { commonConfig, serveRole, withCommonOptions, type CommonOptions } from '../cli/system-commands.js';
import { processOperations } from '../ops/process.js';
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
      const ops = processOperations(config);
      const server = await startPhlr(config, logger, { telemetry: ops.telemetry });
      const listener = await ops.listen(logger).catch(async (err: unknown) => {
        await server.close();
        throw err;
      });
      process.stdout.write(`phlr listening on ${server.url}\n`);
      process.stdout.write(`phlr metrics on ${listener.url}/metrics\n`);
      await serveRole(server, listener, ops.telemetry, options, logger);
    }),
  );
}
