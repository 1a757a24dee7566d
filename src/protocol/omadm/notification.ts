/**
 * The Package 0 notification message of OMA-TS-DM_Notification-V1_2 §6 (the server-initiated trigger):
 *
 *   digest (128 bits) | version (10) | ui-mode (2) | initiator (1) | future-use (27) | sessionid (16)
 *   | length-identifier (8) | server-identifier | trigger-body
 *
 * digest = H(B64(H(server-identifier:password)):nonce:B64(H(trigger-hdr ‖ trigger-body))), H = MD5
 * (§6.2). MD5 is what the specification fixes for this digest; the notification only wakes a device,
 * which then authenticates the session itself with its one-time ticket over TLS (docs/omadm.md).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { SimcredError } from '../../errors/index.js';

/** version field for DM 1.2 (§6.1: "12" = 1.2). */
const VERSION_1_2 = 12;
const DIGEST_BYTES = 16;
const FIXED_HDR_BYTES = 8; // version..length-identifier

/** ui-mode (§6.1): 0 not specified, 1 background, 2 informative, 3 user interaction. */
export type UiMode = 0 | 1 | 2 | 3;

export interface Notification {
  uiMode: UiMode;
  /** 0: client-initiated, 1: server-initiated (§6.1 initiator). */
  initiator: 0 | 1;
  /** 0–65535; the device's Package 1 carries it as its SessionID (in hex). */
  sessionId: number;
  serverId: string;
  body: Buffer;
}

export interface NotificationSecret {
  /** The server's password for this device (docs/omadm.md: the ticket digest). */
  password: string;
  /** The nonce the device and the server share (docs/omadm.md: the DSIM_ID). */
  nonce: string;
}

const md5 = (data: string | Buffer) => createHash('md5').update(data).digest();

function digestOf(serverId: string, secret: NotificationSecret, notification: Buffer): Buffer {
  const credentials = md5(`${serverId}:${secret.password}`).toString('base64');
  return md5(`${credentials}:${secret.nonce}:${md5(notification).toString('base64')}`);
}

/**
 * Builds a Package 0 message.
 *
 * @example
 *   const bytes = buildNotification({ uiMode: 1, initiator: 1, sessionId: 0x1a2b, serverId, body: Buffer.alloc(0) },
 *     { password, nonce: dsimId });
 */
export function buildNotification(n: Notification, secret: NotificationSecret): Buffer {
  const serverId = Buffer.from(n.serverId, 'utf8');
  if (serverId.length > 255) throw new Error('server identifier longer than 255 bytes');
  const hdr = Buffer.alloc(FIXED_HDR_BYTES);
  // 10 bits version, 2 bits ui-mode, 1 bit initiator, 27 bits future use (0): the first 40 bits.
  const first16 = (VERSION_1_2 << 6) | (n.uiMode << 4) | (n.initiator << 3);
  hdr.writeUInt16BE(first16, 0);
  hdr.writeUInt16BE(n.sessionId, 5);
  hdr.writeUInt8(serverId.length, 7);
  const notification = Buffer.concat([hdr, serverId, n.body]);
  return Buffer.concat([digestOf(n.serverId, secret, notification), notification]);
}

/**
 * Reads a Package 0 message and checks its digest, or throws SIMCRED_DM_NOTIFICATION_INVALID (short,
 * not version 1.2, another server identifier than `expectedServerId`, or a digest that does not verify).
 *
 * @example
 *   const { sessionId } = verifyNotification(bytes, 'simcred-provisioning', { password, nonce: dsimId });
 */
export function verifyNotification(
  bytes: Buffer,
  expectedServerId: string,
  secret: NotificationSecret,
): Notification {
  if (bytes.length < DIGEST_BYTES + FIXED_HDR_BYTES) throw invalid('the notification is truncated');
  const digest = bytes.subarray(0, DIGEST_BYTES);
  const notification = bytes.subarray(DIGEST_BYTES);
  const first16 = notification.readUInt16BE(0);
  if (first16 >> 6 !== VERSION_1_2) throw invalid('the notification is not DM 1.2');
  const idLength = notification.readUInt8(7);
  if (notification.length < FIXED_HDR_BYTES + idLength) throw invalid('the notification is truncated');
  const serverId = notification.subarray(FIXED_HDR_BYTES, FIXED_HDR_BYTES + idLength).toString('utf8');
  if (serverId !== expectedServerId) throw invalid('the notification names another DM server');
  // §6.2: the digest is checked before anything in the notification is acted on.
  if (!timingSafeEqual(digest, digestOf(serverId, secret, notification))) {
    throw invalid('the notification digest does not verify');
  }
  return {
    uiMode: ((first16 >> 4) & 0b11) as UiMode,
    initiator: ((first16 >> 3) & 1) as 0 | 1,
    sessionId: notification.readUInt16BE(5),
    serverId,
    body: Buffer.from(notification.subarray(FIXED_HDR_BYTES + idLength)),
  };
}

function invalid(message: string): SimcredError {
  return new SimcredError('SIMCRED_DM_NOTIFICATION_INVALID', message);
}

/** The DM server identifier simcred's provisioning servers use (the ServerID of the device's DM account). */
export const DM_SERVER_ID = 'simcred-provisioning';

/** A Package 0's session id as the SyncHdr SessionID of the session it starts. */
export function sessionIdText(sessionId: number): string {
  return sessionId.toString(16).toUpperCase();
}
