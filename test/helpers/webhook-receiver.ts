import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebhookReceiver, type RefusalReason } from '../../src/notify/receiver.js';
import type { WebhookNotification } from '../../src/protocol/orders.js';

/** Polls `check` every 100 ms until it holds; the test's own timeout bounds the wait. */
export async function until(check: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 100));
}

/** `until` with a bound of its own: fails naming `what` when `probe` does not hold within `timeoutMs`. */
export async function untilWithin(
  what: string,
  probe: () => Promise<boolean> | boolean,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  await until(() => {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    return probe();
  });
}

/**
 * An operator's receiver on loopback: the receiver helper's listener, which can be taken down (its
 * port closed: connections refused) and brought back on the same port.
 */
export class TestReceiver {
  private server: Server | undefined;
  port = 0;
  secret = '';
  receiver: WebhookReceiver | undefined;
  readonly arrivals: WebhookNotification[] = [];
  readonly refusals: RefusalReason[] = [];
  /** Every request as it came: raw body and signature header (for the replay test). */
  readonly raw: { body: string; header: string }[] = [];

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks/simcred`;
  }

  async up(): Promise<void> {
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (c: Buffer) => chunks.push(c));
      request.on('end', () =>
        this.raw.push({
          body: Buffer.concat(chunks).toString('utf8'),
          header: String(request.headers['simcred-signature'] ?? ''),
        }),
      );
      if (!this.receiver) {
        response.writeHead(503).end();
        return;
      }
      this.receiver.listener(
        (n) => void this.arrivals.push(n),
        (reason) => void this.refusals.push(reason),
      )(request, response);
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** A device's states through a whole onboarding, in the order they are notified. */
export const ONBOARDING_STATES = [
  'registered',
  'authenticated',
  'referred',
  'delivered',
  'completed',
  'attached',
];

/** Each device's states in the order they first arrived (a redelivery counts once). */
export function statesByDevice(arrivals: readonly WebhookNotification[]): Map<string, string[]> {
  const byDevice = new Map<string, string[]>();
  for (const n of arrivals) {
    const states = byDevice.get(n.dsimId) ?? [];
    if (!states.includes(n.state)) states.push(n.state);
    byDevice.set(n.dsimId, states);
  }
  return byDevice;
}
