import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { WebhookReceiver } from '../notify/receiver.js';

/**
 * The receiver of `simcred bench notify`, in a worker thread of its own: the bench process also runs
 * the simulated devices, whose crypto would otherwise hold up the receiver's event loop and count as
 * notification lag. Posts `{ port }` once listening, then `{ eventId, state, at, receivedAt }` per
 * verified notification and `{ refused }` per refused one.
 */
const { secret } = workerData as { secret: string };
const receiver = new WebhookReceiver({ secret });
const server = createServer(
  receiver.listener(
    (n) => {
      parentPort!.postMessage({
        eventId: n.eventId,
        state: n.state,
        at: Date.parse(n.at),
        receivedAt: Date.now(),
      });
    },
    (reason) => parentPort!.postMessage({ refused: reason }),
  ),
);
server.listen(0, '127.0.0.1', () =>
  parentPort!.postMessage({ port: (server.address() as AddressInfo).port }),
);
parentPort!.on('message', (message: { close?: boolean }) => {
  if (message.close) {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  }
});
