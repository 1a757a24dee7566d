import type { Logger } from 'pino';
import { isSimcredError } from '../errors/index.js';
import type { Clock } from '../time/clock.js';
import type { CredentialingStore } from './store.js';
import { newRequestId, withRequestId } from '../log/context.js';

export interface RegistrationExpiryOptions {
  store: CredentialingStore;
  log: Logger;
  clock: Clock;
  /** How often registrations past their expiry are looked for (default 10 s). */
  sweepMs?: number;
}

/** Registrations expired per transaction. */
const SWEEP_BATCH = 1000;

/**
 * Makes expiry an event: a registration past its expiry becomes 'expired' with its audit event
 * (which the operator's feed shows) when this sweep finds it, not only when its device shows up late.
 * The sweep runs every `sweepMs` and before each read of the feed, so a reader never sees a
 * registration as live that has expired by the server's clock. Expiry itself is decided by the
 * injected clock.
 *
 * @example
 *   const expiry = new RegistrationExpiry({ store, log, clock });
 *   expiry.start(); … await expiry.stop();
 */
export class RegistrationExpiry {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(private readonly options: RegistrationExpiryOptions) {}

  start(): void {
    this.timer = setInterval(() => {
      withRequestId(newRequestId('expiry'), () => this.sweep()).catch((err: unknown) => {
        this.options.log.warn({ code: isSimcredError(err) ? err.code : 'unknown' }, 'expiry sweep failed');
      });
    }, this.options.sweepMs ?? 10_000);
    this.timer.unref();
  }

  /** Expires what is due now; concurrent calls share one sweep. Returns how many expired. */
  sweep(): Promise<number> {
    this.running ??= (async () => {
      let total = 0;
      for (;;) {
        const n = await this.options.store.expireDue(this.options.clock(), SWEEP_BATCH);
        total += n;
        if (n < SWEEP_BATCH) return total;
      }
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }
}
