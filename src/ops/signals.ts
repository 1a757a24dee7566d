import type { Logger } from 'pino';
import { newRequestId, withRequestId } from '../log/context.js';

export interface ServeOptions {
  /** Stops accepting, lets in-flight requests finish, closes the stores (every role's close). */
  close(): Promise<void>;
  /** How long close may take before the process exits anyway (config operations.shutdownGraceMs). */
  graceMs: number;
  logger: Logger;
  /** Called first on SIGTERM/SIGINT: /readyz turns 503 so load balancers stop sending. */
  onDraining?(): void;
  /** SIGHUP: re-read what can change without a restart (the roles' TLS certificates and keys). */
  reload?(): Promise<void>;
  /** Exits the process once the grace is over (process.exit; tests pass their own). */
  exit?(code: number): void;
}

/**
 * Serves until SIGTERM or SIGINT, then closes within the grace: the roles stop accepting
 * connections, requests in flight are answered, the stores close, and the promise resolves (the
 * CLI then exits 0). If closing outlasts the grace, the process exits 0 anyway with a warning: the
 * stores are transactional, so what was not committed is as if never sent. SIGHUP calls `reload`
 * (one at a time); a failed reload is logged and the old settings stay.
 *
 * @example
 *   await serveUntilSignal({ close: () => server.close(), graceMs: 10_000, logger });
 */
export function serveUntilSignal(options: ServeOptions): Promise<void> {
  const { logger } = options;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let reloading: Promise<void> | undefined;
  const onHup = () => {
    if (!options.reload || reloading) return;
    reloading = withRequestId(newRequestId('reload'), async () => {
      try {
        await options.reload!();
        logger.info('reloaded: TLS certificates and keys');
      } catch (err) {
        logger.error({ err }, 'reload failed; the previous settings stay');
      } finally {
        reloading = undefined;
      }
    });
  };
  process.on('SIGHUP', onHup);
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      // A second signal while closing changes nothing (Ctrl-C reaches the whole process group).
      process.on('SIGINT', ignore);
      process.on('SIGTERM', ignore);
      options.onDraining?.();
      logger.info({ signal, graceMs: options.graceMs }, 'shutting down: finishing requests in flight');
      const timer = setTimeout(() => {
        logger.warn({ graceMs: options.graceMs }, 'shutdown grace over: exiting with work still open');
        exit(0);
      }, options.graceMs);
      timer.unref();
      void options
        .close()
        .catch((err: unknown) => logger.error({ err }, 'closing failed'))
        .finally(() => {
          clearTimeout(timer);
          process.off('SIGHUP', onHup);
          logger.info('stopped');
          resolve();
        });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

function ignore(): void {}
