import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import { CoalescedRun, lockFeedTail, transact } from '../storage/index.js';
import type { EventHub, PortalEvent } from './events.js';
import type { PortalTables } from './store.js';

/** Events shared through the database: what one instance publishes, every instance pushes. */
export type SharedEvent = Extract<PortalEvent, { type: 'device' | 'upload' }>;

/** How often an instance reads events other instances wrote (its own are read at once). */
const TAIL_MS = 250;
/** Events are kept this long: enough for any live instance to read them (browsers reload on reconnect). */
const KEEP_MS = 10 * 60 * 1000;
const PRUNE_EVERY_MS = 60 * 1000;
const PAGE = 1000;

/**
 * The portal's server push across instances (simcred up --workers, several hosts on one database):
 * a device or upload event is appended to the portal_events table, and every instance tails that
 * table and hands what it reads to its own EventHub, whose browsers see it whatever instance applied
 * the change. Ids are committed in order (lockFeedTail), so a tail by `id > last` misses none.
 *
 * @example
 *   const shared = new SharedEvents({ db, hub, log, onChange: () => contracts.scheduleFunnel() });
 *   await shared.start(); await shared.publish([{ type: 'device', ownerId, data }]);
 */
export class SharedEvents {
  private last = 0;
  private timer: NodeJS.Timeout | undefined;
  private prunedAt = 0;
  /** One read at a time; a kick during a read asks for one more after it. */
  private readonly reader = new CoalescedRun(
    () => this.readAll(),
    (err: unknown) => this.options.log.warn({ err }, 'portal events not read'),
    'portal-events',
  );

  constructor(
    private readonly options: {
      db: Kysely<PortalTables>;
      hub: EventHub;
      log: Logger;
      /** A device or upload changed (the funnel is recomputed). */
      onChange?: () => void;
    },
  ) {}

  /** From the newest event on: what happened before this instance started, its browsers fetch. */
  async start(): Promise<void> {
    const row = await this.options.db
      .selectFrom('portal_events')
      .select((eb) => eb.fn.max('id').as('id'))
      .executeTakeFirst();
    this.last = Number(row?.id ?? 0);
    this.timer = setInterval(() => this.reader.kick(), TAIL_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.reader.stop();
    await this.reader.idle();
  }

  /** Appends events (in one transaction); this instance's browsers get them on the next read, at once. */
  async publish(events: SharedEvent[]): Promise<void> {
    if (events.length === 0) return;
    const at = new Date().toISOString();
    await transact(this.options.db, async (trx) => {
      await lockFeedTail(trx as unknown as Kysely<unknown>, 'portal.portal_events');
      await trx
        .insertInto('portal_events')
        .values(events.map((e) => ({ owner_id: e.ownerId, type: e.type, data: JSON.stringify(e.data), at })))
        .execute();
    });
    this.reader.kick();
  }

  private async readAll(): Promise<void> {
    const { db, hub, onChange } = this.options;
    for (;;) {
      const rows = await db
        .selectFrom('portal_events')
        .selectAll()
        .where('id', '>', this.last)
        .orderBy('id')
        .limit(PAGE)
        .execute();
      for (const row of rows) {
        this.last = Number(row.id);
        hub.publish({ type: row.type, ownerId: row.owner_id, data: JSON.parse(row.data) } as SharedEvent);
      }
      if (rows.length > 0) onChange?.();
      if (rows.length < PAGE) break;
    }
    if (Date.now() - this.prunedAt > PRUNE_EVERY_MS) {
      this.prunedAt = Date.now();
      await db
        .deleteFrom('portal_events')
        .where('at', '<', new Date(Date.now() - KEEP_MS).toISOString())
        .execute();
    }
  }
}
