#!/usr/bin/env node
// The `simcred` executable: parses the command line with the tree src/cli/program.ts builds.
import { buildProgram } from './program.js';
import { reportAndExit } from './run.js';

// Whatever escapes a command's own handling still ends as the contract's one line, not a stack trace.
process.on('uncaughtException', (err) => reportAndExit(err));
process.on('unhandledRejection', (err) => reportAndExit(err));

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => reportAndExit(err));
