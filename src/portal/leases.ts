import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Kysely } from 'kysely';
import { systemClock, type Clock } from '../time/clock.js';
import type { PortalTables } from './store.js';

/**
 * A job only one portal instance on a database may do at a time (following the credentialing
 * event feed): the instance holding the named lease does it and renews it; the others try again
 * now and then and take over once it has expired (its holder died) or was released (stopped).
 * Wall-clock time on purpose: a lease is about processes being alive, not the business clock.
 *
 * @example
 *   const lease = new Lease({ db, name: 'credentialing-feed', ttlSeconds: 60 });
 *   if (await lease.acquire()) { … } // renews when already held
 */
export class Lease {
  /** This process's name in the leases table: host, pid and a random part (pids repeat). */
  readonly holder = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;

  constructor(
    private readonly options: { db: Kysely<PortalTables>; name: string; ttlSeconds: number; clock?: Clock },
  ) {}

  /** Takes the lease if it is free or expired, renews it if held: whether this instance holds it. */
  async acquire(): Promise<boolean> {
    const { db, name, ttlSeconds } = this.options;
    const now = this.now();
    const expiresAt = new Date(now.getTime() + ttlSeconds * 1000).toISOString();
    await db
      .insertInto('leases')
      .values({ name, holder: this.holder, expires_at: expiresAt })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    // One conditional update decides between instances racing for an expired lease.
    const taken = await db
      .updateTable('leases')
      .set({ holder: this.holder, expires_at: expiresAt })
      .where('name', '=', name)
      .where((eb) => eb.or([eb('holder', '=', this.holder), eb('expires_at', '<', now.toISOString())]))
      .executeTakeFirst();
    return Number(taken.numUpdatedRows) > 0;
  }

  /** Lets another instance take over at once (when this one stops). */
  async release(): Promise<void> {
    await this.options.db
      .updateTable('leases')
      .set({ expires_at: new Date(0).toISOString() })
      .where('name', '=', this.options.name)
      .where('holder', '=', this.holder)
      .execute();
  }

  private now(): Date {
    return (this.options.clock ?? systemClock)();
  }
}
