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

export function reportAndExit(err: unknown): never {
  if (process.env.SIMCRED_DEBUG) console.error(err);
  const message = isSimcredError(err)
    ? `${err.message} (${err.code})`
    : `unexpected error: ${err instanceof Error ? err.message : String(err)} (SIMCRED_INTERNAL)`;
  process.stderr.write(`simcred: error: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(isSimcredError(err) && err.code !== 'SIMCRED_INTERNAL' ? 2 : 1);
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

/** With --json, a command prints exactly one JSON object as its last line. */
export function printJsonLine(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}
