import { SimcredError, isSimcredError } from '../errors/index.js';
import type { Order } from '../protocol/orders.js';
import type { OrderRow } from './order-store.js';
import type { CredentialingStore } from './store.js';
import { systemClock, type Clock } from '../time/clock.js';

/**
 * Registration states in which a device is still on its way; an order none of whose devices is in
 * one of them is completed (every other state is final for the order: completed, revoked, expired,
 * and whatever the subscription's life brings after completion).
 */
const IN_FLIGHT = new Set(['registered', 'authenticating', 'referred', 'delivered', 'reprovisioning']);
/** States a cancellation revokes: as the revoke route, anything before delivery. */
const REVOCABLE = new Set(['registered', 'authenticating', 'referred', 'expired']);

/** Devices revoked per page of a cancellation. */
const CANCEL_PAGE = 500;

/** An order row as the operator API shows it: its state derived from its counts. */
export function toOrder(row: OrderRow): Order {
  const devices = Object.values(row.counts).reduce((a, b) => a + b, 0);
  const inFlight = Object.entries(row.counts).some(([state, n]) => n > 0 && IN_FLIGHT.has(state));
  return {
    id: row.id,
    createdAt: row.createdAt.toISOString(),
    placedBy: row.placedBy,
    label: row.label,
    reprovisionPolicy: row.reprovisionPolicy,
    state: row.cancelledAt ? 'cancelled' : inFlight ? 'open' : 'completed',
    cancelledAt: row.cancelledAt?.toISOString() ?? null,
    devices,
    counts: row.counts,
  };
}

/**
 * Orders for the operator API: list, show, cancel. Cancelling revokes each undelivered device through
 * the same path as the revoke route (`revoke`), so each revocation is its own conditional change with
 * its audit event, withdrawal and subscriber release.
 */
export class OrderService {
  constructor(
    private readonly store: CredentialingStore,
    /** The revoke route's processor call; throws SIMCRED_REGISTRATION_USED when delivery won. */
    private readonly revoke: (dsimId: string, reason: string | undefined) => Promise<unknown>,
    private readonly clock: Clock = systemClock,
  ) {}

  async list(before: number | undefined, limit: number): Promise<{ orders: Order[]; next: number | null }> {
    const rows = await this.store.orders.list(before, limit);
    return { orders: rows.map(toOrder), next: rows.length === limit ? rows.at(-1)!.seq : null };
  }

  async show(id: string): Promise<Order> {
    const row = await this.store.orders.find(id);
    if (!row) throw new SimcredError('SIMCRED_ORDER_UNKNOWN', `no order ${id}`);
    return toOrder(row);
  }

  async cancel(
    id: string,
    reason: string | undefined,
  ): Promise<{ order: Order; revoked: number; alreadyRevoked: number; pastDelivery: number }> {
    if (!(await this.store.orders.find(id)))
      throw new SimcredError('SIMCRED_ORDER_UNKNOWN', `no order ${id}`);
    // Cancelled first: a cancellation interrupted half-way shows as cancelled, and is finished by
    // cancelling again.
    await this.store.orders.markCancelled(id, this.clock());
    let revoked = 0;
    let alreadyRevoked = 0;
    let pastDelivery = 0;
    for (let after = ''; ;) {
      const page = await this.store.orders.devices(id, after, CANCEL_PAGE);
      if (page.length === 0) break;
      after = page.at(-1)!.dsimId;
      for (const device of page) {
        if (device.state === 'revoked') alreadyRevoked++;
        // A device being re-provisioned (generation > 1) holds a live subscription: cancelling the
        // order must not end it, as it does not end a delivered device's.
        else if (!REVOCABLE.has(device.state) || device.generation > 1) pastDelivery++;
        else {
          try {
            await this.revoke(device.dsimId, reason ?? `order ${id} cancelled`);
            revoked++;
          } catch (err) {
            // Delivered between the read and the revocation: delivery won, the device keeps it.
            if (!isSimcredError(err) || err.code !== 'SIMCRED_REGISTRATION_USED') throw err;
            pastDelivery++;
          }
        }
      }
    }
    return { order: await this.show(id), revoked, alreadyRevoked, pastDelivery };
  }
}
