import { Command, type CommanderError } from 'commander';
import { registerPkiCommands } from '../pki/cli.js';
import { registerOcspCommands } from '../ocsp/cli.js';
import { registerAkaCommands } from '../aka/cli.js';
import { registerPhlrCommands } from '../phlr/cli.js';
import { registerBenchCommands } from '../bench/cli.js';
import type { ErrorCode } from '../errors/index.js';
import { registerSystemCommands } from './system-commands.js';
import { registerLifecycleCommands } from './lifecycle-commands.js';
import { oneLine } from './run.js';
import { registerNotifyCommands } from '../notify/cli.js';
import { registerGroupCommands } from './group-commands.js';
import { registerPackageCommands } from './package-commands.js';
import { registerDeployCommands } from './deploy-commands.js';
import { registerKekCommands } from './kek-commands.js';

/**
 * Builds the `simcred` command tree; each module adds its own commands. Building runs nothing:
 * src/cli/main.ts parses the real command line, and tests walk the tree.
 *
 * @example
 *   await buildProgram().parseAsync(process.argv);
 */
export function buildProgram(): Command {
  const program = new Command('simcred')
    .description('Downloadable USIM credentials over the air: every role of the simcred system')
    .version('0.1.0')
    .showHelpAfterError(false);
  const serve = program.command('serve').description('run one role as a server');
  const bench = program
    .command('bench')
    .description('measure throughput and latency (prints a table; --json for one line)');
  registerPkiCommands(program);
  registerOcspCommands(program, serve, bench);
  registerAkaCommands(program);
  registerSystemCommands(program, serve);
  registerLifecycleCommands(program);
  registerPhlrCommands(serve);
  registerBenchCommands(bench);
  registerNotifyCommands(program);
  registerGroupCommands(program);
  registerPackageCommands(program);
  registerDeployCommands(program);
  registerKekCommands(program);
  for (const command of allCommands(program)) {
    // commander's own message is printed by usageErrorAndExit, as the contract's one line.
    command.configureOutput({ outputError: () => undefined });
    command.exitOverride((err) => usageErrorAndExit(command, err));
  }
  return program;
}

/** A command and every command under it, depth first. */
export function allCommands(command: Command): Command[] {
  return [command, ...command.commands.flatMap((sub) => allCommands(sub))];
}

/** `pki init` for that subcommand, '' for the program itself. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** A value the parser refused is an argument error; every other parser error is a usage error. */
const PARSER_CODES: Record<string, ErrorCode> = {
  'commander.invalidArgument': 'SIMCRED_CLI_ARGUMENT',
};

/**
 * commander's end of parsing: help and --version exit 0; any parser error (unknown command or option,
 * missing command, option or argument, too many arguments, a value outside its choices) prints one
 * line ending in its code, naming the command and where its usage is shown, and exits 2.
 */
function usageErrorAndExit(command: Command, err: CommanderError): never {
  if (err.exitCode === 0) process.exit(0);
  const path = commandPath(command);
  const where = path ? `${path}: ` : '';
  const commands = command.commands.map((c) => c.name()).join(', ');
  // commander.help with an error: a group run without a known subcommand (`simcred serve`, `simcred
  // help nonsense`); commander has printed the group's help above.
  const unknown = command.args.find(
    (arg) => arg !== 'help' && !command.commands.some((c) => c.name() === arg),
  );
  const message =
    err.code === 'commander.help'
      ? `${where}${unknown === undefined ? 'missing command' : `unknown command '${unknown}'`}: one of ${commands}`
      : `${where}${oneLine(err.message.replace(/^error: /, '')).replace(/\.$/, '')}; see \`simcred ${path ? `${path} ` : ''}--help\``;
  const code = PARSER_CODES[err.code] ?? 'SIMCRED_CLI_USAGE';
  process.stderr.write(`simcred: error: ${message} (${code})\n`);
  process.exit(2);
}
