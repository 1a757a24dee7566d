import { pino, type Logger, type LevelWithSilent } from 'pino';
import { currentRequestId } from './context.js';

export type { Logger };

/**
 * Field names that hold secrets. Code never logs them on purpose; redaction is the second fence
 * (DESIGN §4.3: K, OPc, private keys and nonces never appear in logs).
 */
export const SECRET_FIELDS = [
  'k',
  'opc',
  'op',
  'kPimsi',
  'opcPimsi',
  'privateKey',
  'key',
  'registrationNonce',
  'sessionNonce',
  'deviceNonce',
  'ticket',
  'kek',
  'password',
  'authorization',
  // A webhook's signing secret (issue 14).
  'secret',
];

/**
 * @example
 *   const log = createLogger({ name: 'ocsp', level: 'info' });
 */
export function createLogger(options: {
  name: string;
  level?: LevelWithSilent;
  destination?: NodeJS.WritableStream;
}): Logger {
  const paths = SECRET_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`]);
  return pino(
    {
      name: options.name,
      level: options.level ?? 'info',
      // Every line written while a request (or a background job) runs carries its id (src/log/context.ts).
      mixin: () => {
        const reqId = currentRequestId();
        return reqId === undefined ? {} : { reqId };
      },
      redact: { paths: [...paths, 'req.headers.authorization', 'req.headers.cookie'], censor: '[redacted]' },
    },
    // Synchronous: simcred logs little (no per-request lines), and a log line written before an error
    // must reach stderr before the CLI's closing error line, not be flushed after it at exit.
    (options.destination as pino.DestinationStream | undefined) ?? pino.destination({ dest: 2, sync: true }),
  );
}
