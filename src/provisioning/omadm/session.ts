/**
 * The provisioning server as an OMA DM 1.2 server (docs/omadm.md): a client-initiated management
 * session delivers the still-encrypted package into the device's ./SimCred/Package node.
 *
 *   Package 1  device → server  Alert 1201 (1200 after a Package 0), Replace ./DevInfo, Cred
 *   Package 2  server → device  Status for each, Replace ./SimCred/Package, RespURI of the session
 *   Package 3  device → server  Status for each (200 for the Replace: delivered)
 *   Package 4  server → device  Status for the header, Final: the session closes
 *
 * Knows nothing of HTTP: it takes a message's text and answers one (processor level).
 */
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { randomToken, tokenDigest } from '../../crypto/digest.js';
import { SimcredError, isSimcredError, type ErrorCode } from '../../errors/index.js';
import { dsimId as dsimIdField } from '../../protocol/fields.js';
import { buildNotification, DM_SERVER_ID, sessionIdText } from '../../protocol/omadm/notification.js';
import { packageItem } from '../../protocol/omadm/simcred-mo.js';
import { sendSms } from '../../protocol/omadm/sms.js';
import {
  DM_MAX_MESSAGE_CHARS,
  buildSyncMl,
  commandName,
  parseSyncMl,
  statusFor,
  type Command,
  type SyncMlMessage,
} from '../../protocol/omadm/syncml.js';
import type { ProvisioningProcessor } from '../processor.js';
import type { ProvisioningStore } from '../store.js';

/** How long the server waits for Package 3 after Package 2. */
export const DM_SESSION_TTL_MS = 5 * 60_000;

/** The commands a device's Package 1 or 3 may carry and this server carries out. */
const SUPPORTED = new Set(['Alert', 'Replace', 'Status', 'Results']);

const AUTH_BASIC = 'syncml:auth-basic';
/** A one-time ticket: 32 bytes, base64url (protocol/provisioning.ts). */
const TICKET = /^[A-Za-z0-9_-]{43}$/;

export interface DmContext {
  /** The RespURI token of an open session (absent for Package 1). */
  sessionToken?: string | undefined;
  /** This server's DM URI as the device reached it (RespURI is built on it). */
  serverUri: string;
}

/**
 * @example
 *   const dm = new DmServer(processor, store, log);
 *   const answer = await dm.handle(package1Xml, { serverUri: 'https://prov.example/v1/omadm' });
 */
export class DmServer {
  constructor(
    private readonly processor: ProvisioningProcessor,
    private readonly store: ProvisioningStore,
    private readonly log: Logger,
    private readonly sessionTtlMs = DM_SESSION_TTL_MS,
  ) {}

  /** One DM message in, the server's answer out (or a SimcredError the HTTP layer answers). */
  async handle(text: string, context: DmContext, now = new Date()): Promise<string> {
    const message = parseSyncMl(text, DM_MAX_MESSAGE_CHARS);
    return buildSyncMl(
      context.sessionToken === undefined
        ? await this.package1(message, context, now)
        : await this.package3(message, context.sessionToken, now),
    );
  }

  /** Package 1 → Package 2: authenticate with the ticket, fetch the package, Replace it into the node. */
  private async package1(message: SyncMlMessage, context: DmContext, now: Date): Promise<SyncMlMessage> {
    const { hdr } = message;
    const reply = (body: Command[]): SyncMlMessage => ({
      hdr: { sessionId: hdr.sessionId, msgId: '1', target: hdr.source, source: hdr.target },
      body,
      final: true,
    });
    const refuse = (status: '401' | '407', code: ErrorCode) => {
      this.log.info({ code }, 'DM session refused');
      return reply([headerStatus(message, '1', status, code)]);
    };

    // OMA-TS-DM_Security §5.3: syncml:auth-basic, Data = B64(username:password); over TLS only. The
    // header is authenticated before any command is looked at (OMA-TS-DM_Protocol §9: 407 + Chal).
    const cred = hdr.cred;
    if (!cred) return refuse('407', 'SIMCRED_DM_CREDENTIALS_INVALID');
    const user = basicCredentials(cred.meta?.type, cred.meta?.format, cred.data);
    const devId = devInfo(message, './DevInfo/DevId');
    if (
      !user ||
      user.name !== devId ||
      !dsimIdField.safeParse(user.name).success ||
      !TICKET.test(user.password)
    ) {
      return refuse('401', 'SIMCRED_DM_CREDENTIALS_INVALID');
    }
    // OMA DM opens a session with Alert 1201 (1200 after a Package 0); Windows' DM client opens it
    // with a device alert (1224) alone ([MS-MDM] §4): any Alert opens it here.
    if (!message.body.some((c) => c.kind === 'Alert')) {
      throw new SimcredError('SIMCRED_DM_MALFORMED', 'Package 1 has no Alert');
    }
    let pkg: string;
    try {
      pkg = await this.processor.fetchForTicket(user.name, user.password, now);
    } catch (err) {
      if (isSimcredError(err) && err.code === 'SIMCRED_TICKET_INVALID') {
        return refuse('401', 'SIMCRED_TICKET_INVALID');
      }
      throw err;
    }

    let cmdId = 1;
    const next = () => String(cmdId++);
    const body: Command[] = [headerStatus(message, next(), '212')];
    // Every command but a Status gets a Status (SyncML RepPro: Status is never answered).
    for (const cmd of message.body) if (cmd.kind !== 'Status') body.push(commandStatus(message, cmd, next()));
    const replaceCmdId = next();
    const { meta, item } = packageItem(pkg);
    body.push({ kind: 'Replace', cmdId: replaceCmdId, meta, items: [item] });

    const token = randomToken();
    await this.store.saveDmSession(
      {
        tokenDigest: tokenDigest(token),
        dsimId: user.name,
        sessionId: hdr.sessionId,
        replaceCmdId,
        expiresAt: new Date(now.getTime() + this.sessionTtlMs),
      },
      now,
    );
    const answer = reply(body);
    answer.hdr.respUri = `${context.serverUri}?session=${token}`;
    answer.hdr.meta = { maxMsgSize: String(DM_MAX_MESSAGE_CHARS) };
    return answer;
  }

  /** Package 3 → Package 4: the device's Status 200 for the Replace is the delivery; the session closes. */
  private async package3(message: SyncMlMessage, token: string, now: Date): Promise<SyncMlMessage> {
    const session = await this.store.takeDmSession(tokenDigest(token), now);
    if (!session || session.sessionId !== message.hdr.sessionId || session.dsimId !== message.hdr.source) {
      throw new SimcredError('SIMCRED_DM_SESSION_UNKNOWN', 'no open DM session for this message');
    }
    const replaceStatus = message.body.find(
      (c): c is Extract<Command, { kind: 'Status' }> =>
        c.kind === 'Status' && c.msgRef === '1' && c.cmdRef === session.replaceCmdId,
    );
    if (replaceStatus?.data === '200') {
      await this.processor.markDelivered(session.dsimId, now);
    } else {
      this.log.info(
        { dsimId: session.dsimId, status: replaceStatus?.data ?? 'none' },
        'DM session closed without delivery',
      );
    }
    let cmdId = 1;
    const body: Command[] = [headerStatus(message, String(cmdId++), '200')];
    for (const cmd of message.body) {
      if (cmd.kind !== 'Status') body.push(commandStatus(message, cmd, String(cmdId++)));
    }
    return {
      hdr: {
        sessionId: message.hdr.sessionId,
        msgId: '2',
        target: message.hdr.source,
        source: message.hdr.target,
      },
      body,
      final: true,
    };
  }

  /**
   * Package 0: wakes a referred device through its SMS address (the loopback stand-in). The digest's
   * password is the referral's ticket digest and its nonce the DSIM_ID (docs/omadm.md); the device
   * answers with a Package 1 carrying Alert 1200 and the returned session id.
   */
  async notify(dsimId: string, smsAddress: string, now = new Date()): Promise<{ sessionId: string }> {
    const referral = await this.processor.findReferral(dsimId);
    if (!referral || referral.expiresAt <= now || referral.deliveredAt) {
      throw new SimcredError('SIMCRED_NOT_FOUND', 'no open referral for this device here');
    }
    const sessionId = randomInt(1, 0x10000);
    const bytes = buildNotification(
      { uiMode: 1, initiator: 1, sessionId, serverId: DM_SERVER_ID, body: Buffer.alloc(0) },
      { password: referral.ticketDigest, nonce: dsimId },
    );
    await sendSms(smsAddress, bytes);
    this.log.info({ dsimId }, 'DM notification sent');
    return { sessionId: sessionIdText(sessionId) };
  }
}

/** The value of a ./DevInfo leaf the device Replaced in Package 1. */
function devInfo(message: SyncMlMessage, uri: string): string | undefined {
  for (const cmd of message.body) {
    if (cmd.kind !== 'Replace') continue;
    const item = cmd.items.find((i) => i.source === uri);
    if (item) return item.data?.trim();
  }
  return undefined;
}

/** syncml:auth-basic's user name and password, or undefined when it is not that scheme or unreadable. */
function basicCredentials(
  type: string | undefined,
  format: string | undefined,
  data: string,
): { name: string; password: string } | undefined {
  if (type !== AUTH_BASIC || (format ?? 'b64') !== 'b64' || !/^[A-Za-z0-9+/]+={0,2}$/.test(data)) {
    return undefined;
  }
  const decoded = Buffer.from(data, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return { name: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Status for the client's SyncHdr; 401/407 carry the auth-basic Chal and the refusal's code. */
function headerStatus(message: SyncMlMessage, cmdId: string, data: string, code?: ErrorCode): Command {
  return statusFor(cmdId, message.hdr.msgId, { cmdId: '0', name: 'SyncHdr' }, data, {
    targetRefs: [message.hdr.target],
    sourceRefs: [message.hdr.source],
    ...(code ? { chal: { format: 'b64', type: AUTH_BASIC }, items: [{ data: code }] } : {}),
  });
}

/** Status for one of the client's commands: 200, or 406 (with our code) for what we do not carry out. */
function commandStatus(message: SyncMlMessage, cmd: Command, cmdId: string): Command {
  const name = commandName(cmd);
  if (SUPPORTED.has(name)) return statusFor(cmdId, message.hdr.msgId, { cmdId: cmd.cmdId, name }, '200');
  const code: ErrorCode = 'SIMCRED_DM_COMMAND_UNSUPPORTED';
  return statusFor(cmdId, message.hdr.msgId, { cmdId: cmd.cmdId, name }, '406', { items: [{ data: code }] });
}
