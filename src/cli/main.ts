#!/usr/bin/env node
import { Command } from 'commander';
import { registerPkiCommands } from '../pki/cli.js';
import { registerOcspCommands } from '../ocsp/cli.js';
import { registerAkaCommands } from '../aka/cli.js';
import { registerPhlrCommands } from '../phlr/cli.js';
import { registerBenchCommands } from '../bench/cli.js';
import { registerSystemCommands } from './system-commands.js';
import { reportAndExit } from './run.js';

/** Builds the `simcred` command tree; each module adds its own commands. */
export function buildProgram(): Command {
  const program = new Command('simcred')
    .description('Downloadable USIM credentials over the air: every role of the simcred system')
    .version('0.1.0')
    .showHelpAfterError(false)
    .configureOutput({
      outputError: (text, write) => write(`simcred: ${text.replace(/^error: /, 'error: ')}`),
    });
  program.exitOverride((err) => {
    // commander's own usage errors (unknown option, missing argument): one line, non-zero exit.
    process.exit(err.exitCode === 0 ? 0 : 2);
  });
  const serve = program.command('serve').description('run one role as a server');
  const bench = program
    .command('bench')
    .description('measure throughput and latency (prints a table; --json for one line)');
  registerPkiCommands(program);
  registerOcspCommands(program, serve, bench);
  registerAkaCommands(program);
  registerSystemCommands(program, serve);
  registerPhlrCommands(serve);
  registerBenchCommands(bench);
  return program;
}

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => reportAndExit(err));
