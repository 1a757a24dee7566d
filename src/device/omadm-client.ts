/**
 * The device's OMA DM 1.2 client for delivery (docs/omadm.md): one management session with the
 * provisioning server, Package 1 to Package 4, that leaves the still-encrypted package in the
 * device's ./SimCred/Package node. The client authenticates with syncml:auth-basic over TLS: its
 * DSIM_ID as the user name and its one-time ticket as the password.
 */
import { randomInt } from 'node:crypto';
import { ERROR_CODES, SimcredError, type ErrorCode } from '../errors/index.js';
import type { PeerClient } from '../http/index.js';
import { omadm } from '../protocol/provisioning.js';
import { PACKAGE_NODE, packageFromItem } from '../protocol/omadm/simcred-mo.js';
import { sessionIdText } from '../protocol/omadm/notification.js';
import {
  ALERT,
  DM_MAX_SERVER_MESSAGE_CHARS,
  SYNCML_DM_XML,
  buildSyncMl,
  commandName,
  parseSyncMl,
  statusFor,
  type Command,
  type SyncMlMessage,
} from '../protocol/omadm/syncml.js';

export interface DmSessionOptions {
  client: PeerClient;
  /** The provisioning server's base URL (from the referral). */
  provisioningUrl: string;
  dsimId: string;
  ticket: string;
  /** A session a Package 0 asked for (Alert 1200 with its session id); else client-initiated (1201). */
  notified?: { sessionId: number };
  /** DevInfo the device reports in Package 1. */
  devInfo?: { man: string; mod: string };
  /** Sees every message of the session, as sent and as received (tests validate them with xmllint). */
  onMessage?: (direction: 'sent' | 'received', xml: string) => void;
}

/**
 * Runs one DM session and returns the package the server Replaced into ./SimCred/Package, or throws:
 * the server's HTTP refusal as its SimcredError, SIMCRED_TICKET_INVALID or
 * SIMCRED_DM_CREDENTIALS_INVALID (Status 401/407 for the header), SIMCRED_DM_MALFORMED (an answer
 * that is no DM 1.2 message of this session, or delivers no package).
 *
 * @example
 *   const pkg = await runDmSession({ client, provisioningUrl, dsimId, ticket });
 */
export async function runDmSession(options: DmSessionOptions): Promise<string> {
  const { dsimId } = options;
  const serverUri = `${options.provisioningUrl}${omadm.path}`;
  const sessionId = sessionIdText(options.notified?.sessionId ?? randomInt(1, 0x10000));
  const package1: SyncMlMessage = {
    hdr: {
      sessionId,
      msgId: '1',
      target: serverUri,
      source: dsimId,
      cred: {
        meta: { format: 'b64', type: 'syncml:auth-basic' },
        data: Buffer.from(`${dsimId}:${options.ticket}`, 'utf8').toString('base64'),
      },
      meta: { maxMsgSize: String(DM_MAX_SERVER_MESSAGE_CHARS) },
    },
    body: [
      {
        kind: 'Alert',
        cmdId: '1',
        data: options.notified ? ALERT.serverInitiated : ALERT.clientInitiated,
        items: [],
      },
      {
        kind: 'Replace',
        cmdId: '2',
        items: [
          ['DevId', dsimId],
          ['Man', options.devInfo?.man ?? 'simcred'],
          ['Mod', options.devInfo?.mod ?? 'simulated device'],
          ['DmV', '1.2'],
          ['Lang', 'en'],
        ].map(([leaf, data]) => ({ source: `./DevInfo/${leaf}`, data })),
      },
    ],
    final: true,
  };
  const package2 = await exchange(options, serverUri, package1, sessionId);
  const header = package2.body.find(
    (c): c is Extract<Command, { kind: 'Status' }> =>
      c.kind === 'Status' && c.cmd === 'SyncHdr' && c.cmdRef === '0',
  );
  if (!header) throw malformed('Package 2 has no Status for the SyncHdr');
  if (header.data !== '200' && header.data !== '212') {
    const code = header.items[0]?.data;
    throw new SimcredError(
      code === 'SIMCRED_TICKET_INVALID' ? code : 'SIMCRED_DM_CREDENTIALS_INVALID',
      `the DM server refused the session (Status ${header.data})`,
    );
  }

  // Each command gets its Status; the Replace of ./SimCred/Package is carried out (the node written).
  let pkg: string | undefined;
  let cmdId = 1;
  const statuses: Command[] = [
    statusFor(String(cmdId++), package2.hdr.msgId, { cmdId: '0', name: 'SyncHdr' }, '200', {
      targetRefs: [package2.hdr.target],
      sourceRefs: [package2.hdr.source],
    }),
  ];
  for (const cmd of package2.body) {
    if (cmd.kind === 'Status') continue;
    const ref = { cmdId: cmd.cmdId, name: commandName(cmd) };
    const write = cmd.kind === 'Replace' || cmd.kind === 'Add' ? cmd : undefined;
    const item = write?.items.length === 1 ? write.items[0] : undefined;
    if (write && item?.target === PACKAGE_NODE) {
      pkg = packageFromItem(write.meta, item);
      statuses.push(statusFor(String(cmdId++), package2.hdr.msgId, ref, '200'));
    } else {
      const code: ErrorCode = 'SIMCRED_DM_COMMAND_UNSUPPORTED';
      statuses.push(statusFor(String(cmdId++), package2.hdr.msgId, ref, '406', { items: [{ data: code }] }));
    }
  }
  if (pkg === undefined) throw malformed('Package 2 delivers no package to ./SimCred/Package');
  const respUri = package2.hdr.respUri;
  // The session goes on only with the server the device chose: the RespURI stays on its origin.
  if (!respUri || new URL(respUri).origin !== new URL(serverUri).origin) {
    throw malformed('Package 2 has no RespURI on the provisioning server');
  }
  const package3: SyncMlMessage = {
    hdr: { sessionId, msgId: '2', target: respUri, source: dsimId },
    body: statuses,
    final: true,
  };
  const package4 = await exchange(options, respUri, package3, sessionId);
  if (!package4.final) throw malformed('Package 4 does not close the session');
  return pkg;
}

/** Sends one message and reads the answer: a DM message of this session, or the server's HTTP refusal. */
async function exchange(
  options: DmSessionOptions,
  url: string,
  message: SyncMlMessage,
  sessionId: string,
): Promise<SyncMlMessage> {
  const xml = buildSyncMl(message);
  options.onMessage?.('sent', xml);
  const answer = await options.client.send(url, 'POST', xml, SYNCML_DM_XML);
  if (answer.statusCode >= 400) throw refusal(answer.statusCode, answer.headers, answer.text);
  options.onMessage?.('received', answer.text);
  const reply = parseSyncMl(answer.text, DM_MAX_SERVER_MESSAGE_CHARS);
  if (reply.hdr.sessionId !== sessionId || reply.hdr.target !== options.dsimId) {
    throw malformed('the answer belongs to another DM session');
  }
  return reply;
}

/** The server's error contract body back as its SimcredError; a 5xx without a known code is an outage. */
function refusal(
  status: number,
  headers: Record<string, string | string[] | undefined>,
  text: string,
): SimcredError {
  let body: { code?: string; message?: string } = {};
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    // Not the error contract: judged by the status alone.
  }
  const retryAfter = Number(headers['retry-after'] ?? 2) || 2;
  if (body.code && body.code in ERROR_CODES && (status < 500 || status === 503)) {
    return new SimcredError(body.code as ErrorCode, body.message ?? body.code, { retryAfter });
  }
  return new SimcredError('SIMCRED_DEPENDENCY_UNAVAILABLE', `the DM server answered HTTP ${status}`, {
    retryAfter,
  });
}

function malformed(message: string): SimcredError {
  return new SimcredError('SIMCRED_DM_MALFORMED', message);
}
