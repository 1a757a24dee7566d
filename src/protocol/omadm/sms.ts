/**
 * A stand-in for the SMS bearer of Package 0 (OMA-TS-DM_Notification-V1_2 carries it in a WAP Push
 * over SMS): one UDP datagram on loopback per notification. A device's "SMS address" is
 * `udp://127.0.0.1:<port>`; nothing leaves the machine.
 */
import { createSocket, type Socket } from 'node:dgram';
import { SimcredError } from '../../errors/index.js';

/** The content type a WAP Push of a DM notification carries (OMA-TS-DM_Notification §7). */
export const DM_NOTIFICATION_TYPE = 'application/vnd.syncml.notification';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** Host and port of a loopback SMS address, or SIMCRED_BAD_REQUEST. */
export function parseSmsAddress(address: string): { host: string; port: number } {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw new SimcredError('SIMCRED_BAD_REQUEST', 'the SMS address is not udp://127.0.0.1:<port>');
  }
  const port = Number(url.port);
  if (url.protocol !== 'udp:' || !LOOPBACK.has(url.hostname) || !(port > 0 && port < 65536)) {
    throw new SimcredError('SIMCRED_BAD_REQUEST', 'the SMS address is not udp://127.0.0.1:<port>');
  }
  return {
    host: url.hostname === '[::1]' ? '::1' : url.hostname === 'localhost' ? '127.0.0.1' : url.hostname,
    port,
  };
}

/** Sends one "SMS" (a datagram) to a loopback SMS address. */
export async function sendSms(address: string, payload: Buffer): Promise<void> {
  const { host, port } = parseSmsAddress(address);
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) =>
      socket.send(payload, port, host, (err) => (err ? reject(err) : resolve())),
    );
  } finally {
    socket.close();
  }
}

/** A device's SMS inbox on loopback: its address, and each message as it arrives. */
export interface SmsInbox {
  address: string;
  /** The next message (waits for one). */
  next(): Promise<Buffer>;
  close(): Promise<void>;
}

/**
 * Listens on a free loopback UDP port.
 *
 * @example
 *   const inbox = await openSmsInbox();
 *   const bytes = await inbox.next();
 */
export async function openSmsInbox(): Promise<SmsInbox> {
  const socket: Socket = createSocket('udp4');
  const queued: Buffer[] = [];
  const waiting: ((b: Buffer) => void)[] = [];
  socket.on('message', (msg) => {
    const waiter = waiting.shift();
    if (waiter) waiter(msg);
    else queued.push(msg);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    address: `udp://127.0.0.1:${socket.address().port}`,
    next: () => {
      const first = queued.shift();
      return first ? Promise.resolve(first) : new Promise<Buffer>((resolve) => waiting.push(resolve));
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
