import { readFileSync } from 'node:fs';
import { SimcredError, isSimcredError } from '../errors/index.js';

/**
 * Wraps a command's action: a failure prints one line naming the error code and exits non-zero,
 * never a stack trace (set SIMCRED_DEBUG=1 to see one).
 */
export function action<A extends unknown[]>(
  fn: (...args: A) => Promise<void> | void,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      reportAndExit(err);
    }
  };
}

/**
 * Prints the one-line error of the CLI's contract (`simcred: error: MESSAGE (SIMCRED_…)`) and exits:
 * 2 for a mistake the user can fix, 1 for SIMCRED_INTERNAL (a bug).
 */
export function reportAndExit(err: unknown): never {
  if (process.env.SIMCRED_DEBUG) console.error(err);
  const error = toCliError(err);
  const message =
    error.code === 'SIMCRED_INTERNAL' && !isSimcredError(err)
      ? `unexpected error: ${error.message}`
      : error.message;
  process.stderr.write(`simcred: error: ${oneLine(message)} (${error.code})\n`);
  process.exit(error.code === 'SIMCRED_INTERNAL' ? 1 : 2);
}

/** Folds a message onto one line (the contract's error line). */
export function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').trim();
}

/** What each errno of a file operation means to the user. */
const FILE_ERRORS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a folder',
  ENOTDIR: 'a part of the path is not a folder',
  EEXIST: 'already exists',
  ENOSPC: 'no space left on the device',
  EROFS: 'read-only file system',
  EMFILE: 'too many open files',
  ENAMETOOLONG: 'name too long',
  ELOOP: 'too many symbolic links',
};

/**
 * Any thrown value as a SimcredError. A file operation's failure (a Node error naming its path) is the
 * user's to fix, so it maps to SIMCRED_FILE_NOT_FOUND or SIMCRED_IO; anything else unknown is a bug.
 */
export function toCliError(err: unknown): SimcredError {
  if (isSimcredError(err)) return err;
  const e = err as Partial<NodeJS.ErrnoException> | null;
  if (e && typeof e.path === 'string' && typeof e.code === 'string') {
    if (e.code === 'ENOENT')
      return new SimcredError('SIMCRED_FILE_NOT_FOUND', `${e.path}: no such file or folder`);
    const reason = FILE_ERRORS[e.code];
    if (reason !== undefined) return new SimcredError('SIMCRED_IO', `${e.path}: ${reason}`);
  }
  return new SimcredError('SIMCRED_INTERNAL', err instanceof Error ? err.message : String(err), {
    cause: err,
  });
}

/**
 * Reads a file named on the command line (`-` is stdin): a missing file is SIMCRED_FILE_NOT_FOUND,
 * any other failure SIMCRED_IO, each naming the option and the path.
 *
 * @example
 *   const text = readInputFile('--file', options.file).toString('utf8');
 */
export function readInputFile(option: string, path: string): Buffer {
  try {
    return readFileSync(path === '-' ? 0 : path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new SimcredError('SIMCRED_FILE_NOT_FOUND', `${option} ${path}: no such file`);
    throw new SimcredError(
      'SIMCRED_IO',
      `${option} ${path}: cannot read (${(code && FILE_ERRORS[code]) ?? (err as Error).message})`,
    );
  }
}

/** Parses a strictly positive integer option, or throws a CLI argument error naming the option. */
export function positiveInt(name: string, value: string | undefined, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined || !/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw new SimcredError(
      'SIMCRED_CLI_ARGUMENT',
      `${name} must be an integer from 1 to ${max}, got ${JSON.stringify(value)}`,
    );
  }
  return Number(value);
}

/** `--reprovision POLICY`: who may re-provision an order's devices (undefined when not given). */
export function reprovisionPolicy(value: string | undefined): 'never' | 'operator' | 'device' | undefined {
  if (value === undefined || value === 'never' || value === 'operator' || value === 'device') return value;
  throw new SimcredError(
    'SIMCRED_CLI_ARGUMENT',
    `--reprovision must be never, operator or device, got ${JSON.stringify(value)}`,
  );
}

/** The help text of `--reprovision POLICY`. */
export const REPROVISION_OPTION_HELP =
  "who may later re-provision the order's devices: never, operator (default) or device (also after a factory reset)";

/** With --json, a command prints exactly one JSON object as its last line. */
export function printJsonLine(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}
