import type { Clock } from '../time/clock.js';

/**
 * Failed attempts per key (an e-mail address, a client address) in a sliding window: after `limit`
 * failures the key is refused until the oldest falls out of the window. In memory: a restart forgets,
 * which errs towards letting the owner in (the limit is a brake on guessing, not an audit).
 *
 * @example
 *   const limiter = new AttemptLimiter({ limit: 5, windowSeconds: 900, clock: systemClock });
 *   const wait = limiter.retryAfter('ip:127.0.0.1'); // 0 when allowed, else seconds to wait
 */
export class AttemptLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly options: { limit: number; windowSeconds: number; clock: Clock }) {}

  /** Seconds until `key` may try again (0: now). */
  retryAfter(key: string): number {
    const recent = this.recent(key);
    if (recent.length < this.options.limit) return 0;
    const oldest = recent[recent.length - this.options.limit]!;
    const freeAt = oldest + this.options.windowSeconds * 1000;
    return Math.max(1, Math.ceil((freeAt - this.options.clock().getTime()) / 1000));
  }

  fail(key: string): void {
    const recent = this.recent(key);
    recent.push(this.options.clock().getTime());
    this.failures.set(key, recent);
    // Bounded memory under a spray of addresses: drop the oldest keys.
    if (this.failures.size > 100_000) this.failures.delete(this.failures.keys().next().value!);
  }

  reset(key: string): void {
    this.failures.delete(key);
  }

  private recent(key: string): number[] {
    const since = this.options.clock().getTime() - this.options.windowSeconds * 1000;
    return (this.failures.get(key) ?? []).filter((t) => t > since);
  }
}
