import { newRequestId, withRequestId } from '../log/context.js';

/**
 * Runs a drain (an outbox sender, a feed tail) soon when kicked: one run at a time, and kicks that
 * arrive during a run ask for exactly one more after it, so a burst of commits becomes one or two
 * runs instead of one each. A failed run is reported, never thrown: the next kick or poll tries again.
 * Each run has a request id of its own (`<name>-<uuid>`, in its log lines and its calls to peers),
 * not the id of the request whose commit kicked it.
 *
 * @example
 *   const loop = new CoalescedRun(() => this.drain(), (err) => log.warn({ err }, 'drain failed'));
 *   store.onCommit(() => loop.kick()); … loop.stop(); await loop.idle();
 */
export class CoalescedRun {
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly run: () => Promise<unknown>,
    private readonly onError: (err: unknown) => void,
    /** What the runs' request ids start with. */
    private readonly name = 'job',
  ) {}

  /** Run soon (now if idle; once more after the current run if not). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await withRequestId(newRequestId(this.name), () => this.run().catch(this.onError));
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.running = undefined;
    });
  }

  /** No runs after the current one. */
  stop(): void {
    this.stopped = true;
  }

  /** Waits for the run under way, if any (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }
}
