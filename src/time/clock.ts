/**
 * Where a role reads the time for its expiry decisions (grants, registrations, sessions, tickets,
 * challenges). Production uses the real clock; tests pass their own to set the time explicitly
 * instead of sleeping past a TTL.
 *
 * @example
 *   const clock: Clock = systemClock;
 *   const expiresAt = new Date(clock().getTime() + ttlSeconds * 1000);
 */
export type Clock = () => Date;

/** The machine's clock. */
export const systemClock: Clock = () => new Date();
