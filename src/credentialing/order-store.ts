import { sql, type ColumnType, type Generated, type Kysely } from 'kysely';
import { randomToken } from '../crypto/digest.js';
import { autoIncrementKey, retryConflicts, transact, type Migrations } from '../storage/index.js';

/**
 * Orders and webhooks in the credentialing server's database (issue 14). An order is a registration
 * batch: `registrations.order_id` names the order a device's current registration came from, and its
 * per-state counts are one GROUP BY over the (order_id, state) index. Webhook deliveries are an outbox
 * filled from the ordered audit feed with a cursor per webhook (docs/architecture.md says why).
 */
export interface OrderTables {
  orders: {
    seq: Generated<number>;
    id: string;
    created_at: string;
    placed_by: string;
    label: string | null;
    cancelled_at: string | null;
    /** The newest audit event id when the order was placed: a webhook for the order starts there. */
    feed_position: number;
    /** Who may ask for its devices' re-provisioning (migration 0007). */
    reprovision_policy: ColumnType<ReprovisionPolicy, ReprovisionPolicy | undefined, ReprovisionPolicy>;
  };
  webhooks: {
    id: string;
    url: string;
    secret: string;
    order_id: string | null;
    source: 'api' | 'config';
    /** The last audit event id this webhook's deliveries were made from. */
    position: number;
    created_at: string;
  };
  webhook_deliveries: {
    id: Generated<number>;
    webhook_id: string;
    event_id: number;
    dsim_id: string;
    /** The notification's JSON, fixed when the delivery is made, so every attempt sends the same bytes. */
    body: string;
    state: 'pending' | 'delivered' | 'dead';
    attempts: number;
    due_at: string;
    claim: string | null;
    last_error: string | null;
    last_attempt_at: string | null;
    created_at: string;
    delivered_at: string | null;
  };
  registrations: { dsim_id: string; state: string; order_id: string | null; generation: number };
}

export const orderMigrations: Migrations = {
  '0006_orders_and_webhooks': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('orders')
        .addColumn('seq', 'integer', (c) => autoIncrementKey(db, c))
        .addColumn('id', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('placed_by', 'text', (c) => c.notNull())
        .addColumn('label', 'text')
        .addColumn('cancelled_at', 'text')
        .addColumn('feed_position', 'bigint', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.alterTable('registrations').addColumn('order_id', 'text').execute();
      await db.schema
        .createIndex('registrations_order')
        .on('registrations')
        .columns(['order_id', 'state'])
        .execute();
      await db.schema.alterTable('audit_events').addColumn('order_id', 'text').execute();
      await db.schema
        .createTable('webhooks')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('secret', 'text', (c) => c.notNull())
        .addColumn('order_id', 'text')
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('position', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('webhook_deliveries')
        .addColumn('id', 'integer', (c) => autoIncrementKey(db, c))
        .addColumn('webhook_id', 'text', (c) => c.notNull())
        .addColumn('event_id', 'bigint', (c) => c.notNull())
        .addColumn('dsim_id', 'text', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('due_at', 'text', (c) => c.notNull())
        .addColumn('claim', 'text')
        .addColumn('last_error', 'text')
        .addColumn('last_attempt_at', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('delivered_at', 'text')
        .execute();
      // One webhook's deliveries of one event: a page made twice (two instances) cannot double them.
      await db.schema
        .createIndex('webhook_deliveries_event')
        .on('webhook_deliveries')
        .columns(['webhook_id', 'event_id'])
        .unique()
        .execute();
      // The claim's "no earlier pending delivery of this device" check, and the due scan.
      await db.schema
        .createIndex('webhook_deliveries_device')
        .on('webhook_deliveries')
        .columns(['webhook_id', 'dsim_id', 'state', 'id'])
        .execute();
      await db.schema
        .createIndex('webhook_deliveries_due')
        .on('webhook_deliveries')
        .columns(['state', 'due_at'])
        .execute();
    },
  },
};

export interface OrderRow {
  seq: number;
  id: string;
  createdAt: Date;
  placedBy: string;
  label: string | null;
  cancelledAt: Date | null;
  feedPosition: number;
  reprovisionPolicy: ReprovisionPolicy;
  counts: Record<string, number>;
}

/**
 * Who may ask for re-provisioning of an order's devices: nobody; the operator (`simcred operator
 * reprovision`, the default); or also the device itself after a factory reset (each level allows the
 * ones before it).
 */
export type ReprovisionPolicy = 'never' | 'operator' | 'device';

/** A fresh opaque order id: `ord_` and 16 random bytes. */
export function newOrderId(): string {
  return `ord_${randomToken(16)}`;
}

/** The orders: created per batch, listed, counted, cancelled. */
export class OrderStore {
  constructor(private readonly db: Kysely<OrderTables>) {}

  async create(
    order: { id: string; placedBy: string; label: string | null; reprovisionPolicy?: ReprovisionPolicy },
    now: Date,
  ): Promise<void> {
    await this.db
      .insertInto('orders')
      .values({
        id: order.id,
        created_at: now.toISOString(),
        placed_by: order.placedBy,
        label: order.label,
        cancelled_at: null,
        feed_position: await newestEventId(this.db),
        reprovision_policy: order.reprovisionPolicy ?? 'operator',
      })
      .execute();
  }

  async find(id: string): Promise<OrderRow | undefined> {
    const row = await this.db.selectFrom('orders').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return undefined;
    return { ...fromOrderRow(row), counts: (await this.counts([id])).get(id) ?? {} };
  }

  /** Newest first, `limit` orders with seq below `before`, with their counts. */
  async list(before: number | undefined, limit: number): Promise<OrderRow[]> {
    let query = this.db.selectFrom('orders').selectAll().orderBy('seq', 'desc').limit(limit);
    if (before !== undefined) query = query.where('seq', '<', before);
    const rows = await query.execute();
    const counts = await this.counts(rows.map((r) => r.id));
    return rows.map((r) => ({ ...fromOrderRow(r), counts: counts.get(r.id) ?? {} }));
  }

  /** Devices per state of each order: one GROUP BY on the (order_id, state) index. */
  private async counts(ids: string[]): Promise<Map<string, Record<string, number>>> {
    const out = new Map<string, Record<string, number>>();
    if (ids.length === 0) return out;
    const rows = await this.db
      .selectFrom('registrations')
      .select(['order_id', 'state', sql<number>`count(*)`.as('n')])
      .where('order_id', 'in', ids)
      .groupBy(['order_id', 'state'])
      .execute();
    for (const r of rows) {
      const counts = out.get(r.order_id!) ?? {};
      counts[r.state] = Number(r.n);
      out.set(r.order_id!, counts);
    }
    return out;
  }

  /** Marks the order cancelled (the first cancellation's time stays). */
  async markCancelled(id: string, now: Date): Promise<void> {
    await this.db
      .updateTable('orders')
      .set({ cancelled_at: now.toISOString() })
      .where('id', '=', id)
      .where('cancelled_at', 'is', null)
      .execute();
  }

  /** The order's devices after `afterDsimId`, in DSIM_ID order (pages of a cancellation). */
  async devices(
    id: string,
    afterDsimId: string,
    limit: number,
  ): Promise<{ dsimId: string; state: string; generation: number }[]> {
    const rows = await this.db
      .selectFrom('registrations')
      .select(['dsim_id', 'state', 'generation'])
      .where('order_id', '=', id)
      .where('dsim_id', '>', afterDsimId)
      .orderBy('dsim_id')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ dsimId: r.dsim_id, state: r.state, generation: Number(r.generation) }));
  }
}

function fromOrderRow(row: {
  seq: number;
  id: string;
  created_at: string;
  placed_by: string;
  label: string | null;
  cancelled_at: string | null;
  feed_position: number;
  reprovision_policy: ReprovisionPolicy;
}): Omit<OrderRow, 'counts'> {
  return {
    seq: Number(row.seq),
    id: row.id,
    createdAt: new Date(row.created_at),
    placedBy: row.placed_by,
    label: row.label,
    cancelledAt: row.cancelled_at === null ? null : new Date(row.cancelled_at),
    feedPosition: Number(row.feed_position),
    reprovisionPolicy: row.reprovision_policy,
  };
}

/** The newest audit event's id (0: none yet). */
async function newestEventId(db: Kysely<OrderTables>): Promise<number> {
  const row = await (db as unknown as Kysely<{ audit_events: { id: number } }>)
    .selectFrom('audit_events')
    .select(sql<number | null>`max(id)`.as('id'))
    .executeTakeFirst();
  return Number(row?.id ?? 0);
}

export interface WebhookRow {
  id: string;
  url: string;
  secret: string;
  orderId: string | null;
  source: 'api' | 'config';
  position: number;
  createdAt: Date;
}

export interface ClaimedDelivery {
  id: number;
  webhookId: string;
  eventId: number;
  dsimId: string;
  body: string;
  attempts: number;
  createdAt: Date;
}

export interface DeliveryRow {
  id: number;
  webhookId: string;
  eventId: number;
  dsimId: string;
  state: 'pending' | 'delivered' | 'dead';
  attempts: number;
  lastError: string | null;
  lastAttemptAt: Date | null;
  dueAt: Date;
  createdAt: Date;
  deliveredAt: Date | null;
}

/** Webhooks and their outbox of deliveries. */
export class WebhookStore {
  constructor(private readonly db: Kysely<OrderTables>) {}

  /**
   * A new webhook starts after the newest audit event (it is sent what happens from now on), or at
   * `startAfter` (a webhook for one order: from when the order was placed).
   */
  async add(
    webhook: { id: string; url: string; secret: string; orderId: string | null; source: 'api' | 'config' },
    now: Date,
    startAfter?: number,
  ): Promise<WebhookRow> {
    const position = startAfter ?? (await newestEventId(this.db));
    await this.db
      .insertInto('webhooks')
      .values({
        id: webhook.id,
        url: webhook.url,
        secret: webhook.secret,
        order_id: webhook.orderId,
        source: webhook.source,
        position,
        created_at: now.toISOString(),
      })
      // A config webhook is added by every instance that starts: the first one's row stays, with
      // the secret and URL of the config (the id is derived from them).
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
    return (await this.find(webhook.id))!;
  }

  async find(id: string): Promise<WebhookRow | undefined> {
    const row = await this.db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? fromWebhookRow(row) : undefined;
  }

  async list(): Promise<WebhookRow[]> {
    const rows = await this.db
      .selectFrom('webhooks')
      .selectAll()
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(fromWebhookRow);
  }

  /** Deliveries per state of each webhook. */
  async deliveryCounts(): Promise<Map<string, Record<string, number>>> {
    const rows = await this.db
      .selectFrom('webhook_deliveries')
      .select(['webhook_id', 'state', sql<number>`count(*)`.as('n')])
      .groupBy(['webhook_id', 'state'])
      .execute();
    const out = new Map<string, Record<string, number>>();
    for (const r of rows) {
      const counts = out.get(r.webhook_id) ?? {};
      counts[r.state] = Number(r.n);
      out.set(r.webhook_id, counts);
    }
    return out;
  }

  /** Removes the webhook and its deliveries; false if there was none. */
  async remove(id: string): Promise<boolean> {
    return transact(this.db, async (trx) => {
      const removed = await trx.deleteFrom('webhooks').where('id', '=', id).executeTakeFirst();
      await trx.deleteFrom('webhook_deliveries').where('webhook_id', '=', id).execute();
      return Number(removed.numDeletedRows) === 1;
    });
  }

  /** Config webhooks no longer in the config are removed (with their deliveries). */
  async removeConfigWebhooksExcept(keep: string[]): Promise<void> {
    const gone = (await this.list()).filter((w) => w.source === 'config' && !keep.includes(w.id));
    for (const w of gone) await this.remove(w.id);
  }

  /**
   * The webhook's deliveries made from audit events up to `to`, and its cursor moved from `from` to
   * `to`, in one transaction. Conditional: if another instance moved the cursor first, nothing is
   * written and false comes back (its deliveries stand), so no event is made into two deliveries.
   */
  async expand(
    webhookId: string,
    from: number,
    to: number,
    deliveries: { eventId: number; dsimId: string; body: string }[],
    now: Date,
  ): Promise<boolean> {
    return transact(this.db, async (trx) => {
      const moved = await trx
        .updateTable('webhooks')
        .set({ position: to })
        .where('id', '=', webhookId)
        .where('position', '=', from)
        .executeTakeFirst();
      if (Number(moved.numUpdatedRows) !== 1) return false;
      for (let i = 0; i < deliveries.length; i += 200) {
        await trx
          .insertInto('webhook_deliveries')
          .values(
            deliveries.slice(i, i + 200).map((d) => ({
              webhook_id: webhookId,
              event_id: d.eventId,
              dsim_id: d.dsimId,
              body: d.body,
              state: 'pending' as const,
              attempts: 0,
              due_at: now.toISOString(),
              created_at: now.toISOString(),
            })),
          )
          .execute();
      }
      return true;
    });
  }

  /**
   * Claims up to `limit` due deliveries for `leaseMs`: only the oldest pending delivery of each
   * (webhook, device), so a later event of a device is never sent before an earlier one is
   * acknowledged or dead. The claim is a conditional update (still due, still pending), so of several
   * instances sharing the database each delivery goes to one at a time; a crashed sender's lease lapses.
   */
  async claim(now: Date, leaseMs: number, limit: number): Promise<ClaimedDelivery[]> {
    const at = now.toISOString();
    // A read first: the poll that finds nothing due takes no write lock.
    const due = await this.db
      .selectFrom('webhook_deliveries as d')
      .select('d.id')
      .where('d.state', '=', 'pending')
      .where('d.due_at', '<=', at)
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('webhook_deliveries as e')
              .select('e.id')
              .whereRef('e.webhook_id', '=', 'd.webhook_id')
              .whereRef('e.dsim_id', '=', 'd.dsim_id')
              .where('e.state', '=', 'pending')
              .whereRef('e.id', '<', 'd.id'),
          ),
        ),
      )
      .orderBy('d.id')
      .limit(limit)
      .execute();
    if (due.length === 0) return [];
    const claim = randomToken(16);
    // Two claimers' multi-row updates may meet in a deadlock on PostgreSQL: the loser runs again.
    await retryConflicts(() =>
      this.db
        .updateTable('webhook_deliveries')
        .set((eb) => ({
          claim,
          due_at: new Date(now.getTime() + leaseMs).toISOString(),
          attempts: eb('attempts', '+', 1),
          last_attempt_at: at,
        }))
        .where(
          'id',
          'in',
          due.map((r) => r.id),
        )
        .where('state', '=', 'pending')
        .where('due_at', '<=', at)
        .execute(),
    );
    const rows = await this.db
      .selectFrom('webhook_deliveries')
      .select(['id', 'webhook_id', 'event_id', 'dsim_id', 'body', 'attempts', 'created_at'])
      .where('claim', '=', claim)
      .orderBy('id')
      .execute();
    return rows.map((r) => ({
      id: Number(r.id),
      webhookId: r.webhook_id,
      eventId: Number(r.event_id),
      dsimId: r.dsim_id,
      body: r.body,
      attempts: Number(r.attempts),
      createdAt: new Date(r.created_at),
    }));
  }

  /**
   * The next delivery of one (webhook, device), claimed as {@link claim} would, once the one before it
   * was acknowledged: a device's burst of events goes out one after the other without waiting for
   * the next round. Undefined when it has none pending, or its next one is not due (or taken).
   */
  async claimNext(
    webhookId: string,
    dsimId: string,
    now: Date,
    leaseMs: number,
  ): Promise<ClaimedDelivery | undefined> {
    const at = now.toISOString();
    const head = await this.db
      .selectFrom('webhook_deliveries')
      .select(['id', 'webhook_id', 'event_id', 'dsim_id', 'body', 'attempts', 'created_at', 'due_at'])
      .where('webhook_id', '=', webhookId)
      .where('dsim_id', '=', dsimId)
      .where('state', '=', 'pending')
      .orderBy('id')
      .limit(1)
      .executeTakeFirst();
    if (!head || head.due_at > at) return undefined;
    const taken = await this.db
      .updateTable('webhook_deliveries')
      .set((eb) => ({
        claim: randomToken(16),
        due_at: new Date(now.getTime() + leaseMs).toISOString(),
        attempts: eb('attempts', '+', 1),
        last_attempt_at: at,
      }))
      .where('id', '=', head.id)
      .where('state', '=', 'pending')
      .where('due_at', '<=', at)
      .executeTakeFirst();
    if (Number(taken.numUpdatedRows) !== 1) return undefined;
    return {
      id: Number(head.id),
      webhookId: head.webhook_id,
      eventId: Number(head.event_id),
      dsimId: head.dsim_id,
      body: head.body,
      attempts: Number(head.attempts) + 1,
      createdAt: new Date(head.created_at),
    };
  }

  /** Acknowledged (a 2xx): delivered, never sent again. */
  async delivered(ids: number[], now: Date): Promise<void> {
    if (ids.length === 0) return;
    await retryConflicts(() =>
      this.db
        .updateTable('webhook_deliveries')
        .set({ state: 'delivered', delivered_at: now.toISOString(), claim: null, last_error: null })
        .where('id', 'in', ids)
        .where('state', '=', 'pending')
        .execute(),
    );
  }

  /** Failed: due again at `dueAt`, or dead (given up; still listed). */
  async failed(id: number, error: string, next: { dueAt: Date } | 'dead'): Promise<void> {
    await this.db
      .updateTable('webhook_deliveries')
      .set(
        next === 'dead'
          ? { state: 'dead', claim: null, last_error: error }
          : { due_at: next.dueAt.toISOString(), claim: null, last_error: error },
      )
      .where('id', '=', id)
      .where('state', '=', 'pending')
      .execute();
  }

  /**
   * Forgets delivered deliveries acknowledged before `before` (the outbox would otherwise grow with
   * every event forever); pending and dead ones stay until their webhook is removed.
   */
  async pruneDelivered(before: Date): Promise<void> {
    await this.db
      .deleteFrom('webhook_deliveries')
      .where('state', '=', 'delivered')
      .where('delivered_at', '<', before.toISOString())
      .execute();
  }

  /** Newest first; `failed`: not delivered and failed at least once. */
  async deliveries(options: {
    failed: boolean;
    webhookId?: string;
    before?: number;
    limit: number;
  }): Promise<DeliveryRow[]> {
    let query = this.db
      .selectFrom('webhook_deliveries')
      .select([
        'id',
        'webhook_id',
        'event_id',
        'dsim_id',
        'state',
        'attempts',
        'last_error',
        'last_attempt_at',
        'due_at',
        'created_at',
        'delivered_at',
      ])
      .orderBy('id', 'desc')
      .limit(options.limit);
    if (options.failed) query = query.where('state', '!=', 'delivered').where('last_error', 'is not', null);
    if (options.webhookId) query = query.where('webhook_id', '=', options.webhookId);
    if (options.before !== undefined) query = query.where('id', '<', options.before);
    const rows = await query.execute();
    return rows.map((r) => ({
      id: Number(r.id),
      webhookId: r.webhook_id,
      eventId: Number(r.event_id),
      dsimId: r.dsim_id,
      state: r.state,
      attempts: Number(r.attempts),
      lastError: r.last_error,
      lastAttemptAt: r.last_attempt_at === null ? null : new Date(r.last_attempt_at),
      dueAt: new Date(r.due_at),
      createdAt: new Date(r.created_at),
      deliveredAt: r.delivered_at === null ? null : new Date(r.delivered_at),
    }));
  }
}

function fromWebhookRow(row: OrderTables['webhooks']): WebhookRow {
  return {
    id: row.id,
    url: row.url,
    secret: row.secret,
    orderId: row.order_id,
    source: row.source,
    position: Number(row.position),
    createdAt: new Date(row.created_at),
  };
}
