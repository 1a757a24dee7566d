import type { Clock } from '../../src/time/clock.js';

/**
 * A clock that stands still until the test moves it: expiry is decided by the time the test sets,
 * never by how long the machine took.
 *
 * @example
 *   const clock = new ManualClock();
 *   startTestSystem({}, { clock: clock.now });
 *   clock.advance(601); // ten minutes and a second later, at once
 */
export class ManualClock {
  private ms: number;

  constructor(start: Date = new Date()) {
    this.ms = start.getTime();
  }

  /** The time now (a fresh Date each call); pass it where a Clock is wanted. */
  readonly now: Clock = () => new Date(this.ms);

  /** Moves the clock on (never back: the roles' records would see time run backwards). */
  advance(seconds: number): void {
    if (seconds < 0) throw new RangeError('a ManualClock only moves forward');
    this.ms += seconds * 1000;
  }

  /** Moves the clock to a later instant. */
  set(at: Date): void {
    this.advance((at.getTime() - this.ms) / 1000);
  }
}
