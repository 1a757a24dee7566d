/**
 * SyncML DM 1.2 messages in their XML representation (OMA-TS-DM_RepPro-V1_2, OMA-TS-SyncML_RepPro-V1_2),
 * read and written for the provisioning role's OMA DM embodiment (docs/omadm.md). Only what a DM
 * session needs is modelled; any other command is kept by name so the receiver can answer it 406.
 *
 * Reading goes through the project's hardened XML parser (src/crypto/xml-safe.ts): no DTD, no entity,
 * size, depth and node limits. The one DOCTYPE a SyncML message may carry, the public SyncML 1.2 one
 * without an internal subset, is dropped before parsing (nothing is ever fetched); any other refused.
 */
import type { Element } from '@xmldom/xmldom';
import { SimcredError, isSimcredError } from '../../errors/index.js';
import { parseXmlStrict, type XmlLimits } from '../../crypto/xml-safe.js';

export const SYNCML_DM_XML = 'application/vnd.syncml.dm+xml';
export const SYNCML_NS = 'SYNCML:SYNCML1.2';
export const METINF_NS = 'syncml:metinf';

/** Largest message either side accepts (announced as MaxMsgSize in each SyncHdr). */
export const DM_MAX_MESSAGE_CHARS = 16 * 1024;
/** Server messages carry the package (an XML package in base64 is ~10 kB): the device takes more. */
export const DM_MAX_SERVER_MESSAGE_CHARS = 128 * 1024;

const DM_LIMITS: XmlLimits = { maxChars: DM_MAX_SERVER_MESSAGE_CHARS, maxDepth: 12, maxNodes: 4000 };

/** Alert codes (OMA-TS-DM_Protocol-V1_2 §8.7 / DM_RepPro §6.7). */
export const ALERT = { serverInitiated: '1200', clientInitiated: '1201', sessionAbort: '1223' } as const;

export interface Meta {
  format?: string;
  type?: string;
  nextNonce?: string;
  maxMsgSize?: string;
}

export interface Cred {
  meta?: Meta;
  data: string;
}

export interface Item {
  target?: string;
  source?: string;
  meta?: Meta;
  data?: string;
}

export interface SyncHdr {
  sessionId: string;
  msgId: string;
  target: string;
  source: string;
  respUri?: string;
  cred?: Cred;
  meta?: Meta;
}

/** The commands a DM session of ours uses; anything else is 'Other' (answered 406). */
export type Command =
  | { kind: 'Alert'; cmdId: string; data?: string; items: Item[] }
  | { kind: 'Replace' | 'Add' | 'Get' | 'Delete' | 'Exec'; cmdId: string; meta?: Meta; items: Item[] }
  | { kind: 'Results'; cmdId: string; msgRef?: string; cmdRef: string; items: Item[] }
  | {
      kind: 'Status';
      cmdId: string;
      msgRef: string;
      cmdRef: string;
      cmd: string;
      targetRefs: string[];
      sourceRefs: string[];
      chal?: Meta;
      data: string;
      items: Item[];
    }
  | { kind: 'Other'; name: string; cmdId: string };

export interface SyncMlMessage {
  hdr: SyncHdr;
  body: Command[];
  final: boolean;
}

const DOCTYPE =
  /^(\uFEFF?(?:<\?xml[^>]*\?>)?\s*)<!DOCTYPE\s+SyncML\s+PUBLIC\s+"-\/\/SYNCML\/\/DTD SyncML 1\.2\/\/EN"(\s+"[^"<>[\]]*")?\s*>/i;

/**
 * Reads one SyncML DM 1.2 message, or throws: SIMCRED_DM_MESSAGE_TOO_LARGE (over `maxChars` or the
 * parser's limits), SIMCRED_DM_MALFORMED (not well-formed, not SyncML 1.2 / DM 1.2, a required element
 * missing), SIMCRED_XML_DTD_FORBIDDEN (a DOCTYPE other than SyncML 1.2's public one).
 *
 * @example
 *   const message = parseSyncMl(text);
 *   message.hdr.sessionId; // '1'
 */
export function parseSyncMl(text: string, maxChars = DM_MAX_MESSAGE_CHARS): SyncMlMessage {
  if (text.length > maxChars) {
    throw new SimcredError(
      'SIMCRED_DM_MESSAGE_TOO_LARGE',
      `the DM message is larger than ${maxChars} characters`,
    );
  }
  let root: Element;
  try {
    root = parseXmlStrict(text.replace(DOCTYPE, '$1'), { ...DM_LIMITS, maxChars }).documentElement!;
  } catch (err) {
    if (isSimcredError(err) && err.code === 'SIMCRED_XML_TOO_LARGE') {
      throw new SimcredError('SIMCRED_DM_MESSAGE_TOO_LARGE', err.message);
    }
    if (isSimcredError(err) && err.code === 'SIMCRED_XML_MALFORMED') {
      throw new SimcredError('SIMCRED_DM_MALFORMED', err.message);
    }
    throw err;
  }
  if (root.localName !== 'SyncML' || !syncMlNamespace(root.namespaceURI)) {
    throw malformed('the document element is not SyncML (SYNCML:SYNCML1.2)');
  }
  const [hdrEl, bodyEl, ...rest] = children(root);
  if (hdrEl?.localName !== 'SyncHdr' || bodyEl?.localName !== 'SyncBody' || rest.length > 0) {
    throw malformed('SyncML must hold SyncHdr then SyncBody');
  }
  const hdr = readHdr(hdrEl);
  const body: Command[] = [];
  let final = false;
  for (const el of children(bodyEl)) {
    if (final) throw malformed('Final must be the last element of SyncBody');
    if (el.localName === 'Final') final = true;
    else body.push(readCommand(el));
  }
  return { hdr, body, final };
}

function syncMlNamespace(ns: string | null): boolean {
  return ns === null || ns === '' || ns.toUpperCase() === SYNCML_NS;
}

function readHdr(el: Element): SyncHdr {
  const verDtd = text(one(el, 'VerDTD'));
  const verProto = text(one(el, 'VerProto'));
  // DM_RepPro §5.1: VerDTD 1.2 and VerProto DM/1.2 in every DM 1.2 message.
  if (verDtd !== '1.2' || verProto !== 'DM/1.2') {
    throw malformed(`not SyncML DM 1.2 (VerDTD ${verDtd}, VerProto ${verProto})`);
  }
  const respUri = optional(el, 'RespURI');
  const credEl = optional(el, 'Cred');
  const metaEl = optional(el, 'Meta');
  return {
    sessionId: text(one(el, 'SessionID')),
    msgId: text(one(el, 'MsgID')),
    target: text(one(one(el, 'Target'), 'LocURI')),
    source: text(one(one(el, 'Source'), 'LocURI')),
    ...(respUri ? { respUri: text(respUri) } : {}),
    ...(credEl ? { cred: readCred(credEl) } : {}),
    ...(metaEl ? { meta: readMeta(metaEl) } : {}),
  };
}

function readCred(el: Element): Cred {
  const metaEl = optional(el, 'Meta');
  return { ...(metaEl ? { meta: readMeta(metaEl) } : {}), data: text(one(el, 'Data')) };
}

const META_FIELDS: Record<string, keyof Meta> = {
  Format: 'format',
  Type: 'type',
  NextNonce: 'nextNonce',
  MaxMsgSize: 'maxMsgSize',
};

/** Meta's children come from the MetInf DTD (namespace syncml:metinf); the ones we do not use are skipped. */
function readMeta(el: Element): Meta {
  const meta: Meta = {};
  for (const child of children(el)) {
    const field = META_FIELDS[child.localName ?? ''];
    if (field) meta[field] = text(child);
  }
  return meta;
}

function readItem(el: Element): Item {
  const target = optional(el, 'Target');
  const source = optional(el, 'Source');
  const meta = optional(el, 'Meta');
  const data = optional(el, 'Data');
  return {
    ...(target ? { target: text(one(target, 'LocURI')) } : {}),
    ...(source ? { source: text(one(source, 'LocURI')) } : {}),
    ...(meta ? { meta: readMeta(meta) } : {}),
    // Data may hold markup in other DM uses (DevInf); ours is always text.
    ...(data ? { data: data.textContent ?? '' } : {}),
  };
}

function readCommand(el: Element): Command {
  const name = el.localName ?? '';
  const cmdIdEl = optional(el, 'CmdID');
  if (!cmdIdEl) throw malformed(`${name} has no CmdID`);
  const cmdId = text(cmdIdEl);
  const items = () =>
    children(el)
      .filter((c) => c.localName === 'Item')
      .map(readItem);
  switch (name) {
    case 'Alert': {
      const data = optional(el, 'Data');
      return { kind: 'Alert', cmdId, ...(data ? { data: text(data) } : {}), items: items() };
    }
    case 'Replace':
    case 'Add':
    case 'Get':
    case 'Delete':
    case 'Exec': {
      const meta = optional(el, 'Meta');
      return { kind: name, cmdId, ...(meta ? { meta: readMeta(meta) } : {}), items: items() };
    }
    case 'Results': {
      const msgRef = optional(el, 'MsgRef');
      return {
        kind: 'Results',
        cmdId,
        ...(msgRef ? { msgRef: text(msgRef) } : {}),
        cmdRef: text(one(el, 'CmdRef')),
        items: items(),
      };
    }
    case 'Status': {
      const chal = optional(el, 'Chal');
      const chalMeta = chal ? optional(chal, 'Meta') : undefined;
      return {
        kind: 'Status',
        cmdId,
        msgRef: text(one(el, 'MsgRef')),
        cmdRef: text(one(el, 'CmdRef')),
        cmd: text(one(el, 'Cmd')),
        targetRefs: children(el)
          .filter((c) => c.localName === 'TargetRef')
          .map(text),
        sourceRefs: children(el)
          .filter((c) => c.localName === 'SourceRef')
          .map(text),
        ...(chalMeta ? { chal: readMeta(chalMeta) } : {}),
        data: text(one(el, 'Data')),
        items: items(),
      };
    }
    default:
      return { kind: 'Other', name, cmdId };
  }
}

function children(el: Element): Element[] {
  const out: Element[] = [];
  for (let c = el.firstChild; c !== null; c = c.nextSibling) {
    if (c.nodeType === 1) out.push(c as Element);
  }
  return out;
}

function optional(el: Element, name: string): Element | undefined {
  const found = children(el).filter((c) => c.localName === name);
  if (found.length > 1) throw malformed(`${el.localName} holds more than one ${name}`);
  return found[0];
}

function one(el: Element, name: string): Element {
  const found = optional(el, name);
  if (!found) throw malformed(`${el.localName} has no ${name}`);
  return found;
}

function text(el: Element): string {
  if (children(el).length > 0) throw malformed(`${el.localName} must hold text only`);
  return (el.textContent ?? '').trim();
}

function malformed(message: string): SimcredError {
  return new SimcredError('SIMCRED_DM_MALFORMED', message);
}

// ---- writing ----

/**
 * Writes a SyncML DM 1.2 message, elements in the order the SyncML 1.2 DTD requires (every message
 * simcred writes is checked against it with xmllint in test/omadm).
 *
 * @example
 *   const xml = buildSyncMl({ hdr: { sessionId: '1', msgId: '1', target, source }, body: [], final: true });
 */
export function buildSyncMl(message: SyncMlMessage): string {
  const { hdr } = message;
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<SyncML xmlns="${SYNCML_NS}">`,
    '<SyncHdr>',
    '<VerDTD>1.2</VerDTD>',
    '<VerProto>DM/1.2</VerProto>',
    el('SessionID', hdr.sessionId),
    el('MsgID', hdr.msgId),
    `<Target>${el('LocURI', hdr.target)}</Target>`,
    `<Source>${el('LocURI', hdr.source)}</Source>`,
    hdr.respUri !== undefined ? el('RespURI', hdr.respUri) : '',
    hdr.cred ? `<Cred>${meta(hdr.cred.meta)}${el('Data', hdr.cred.data)}</Cred>` : '',
    meta(hdr.meta),
    '</SyncHdr>',
    '<SyncBody>',
    ...message.body.map(command),
    message.final ? '<Final/>' : '',
    '</SyncBody>',
    '</SyncML>',
  ];
  return out.join('');
}

function command(cmd: Command): string {
  switch (cmd.kind) {
    case 'Alert':
      return `<Alert>${el('CmdID', cmd.cmdId)}${cmd.data !== undefined ? el('Data', cmd.data) : ''}${cmd.items.map(item).join('')}</Alert>`;
    case 'Replace':
    case 'Add':
    case 'Get':
    case 'Delete':
    case 'Exec':
      return `<${cmd.kind}>${el('CmdID', cmd.cmdId)}${meta(cmd.meta)}${cmd.items.map(item).join('')}</${cmd.kind}>`;
    case 'Results':
      return `<Results>${el('CmdID', cmd.cmdId)}${cmd.msgRef !== undefined ? el('MsgRef', cmd.msgRef) : ''}${el('CmdRef', cmd.cmdRef)}${cmd.items.map(item).join('')}</Results>`;
    case 'Status':
      return [
        '<Status>',
        el('CmdID', cmd.cmdId),
        el('MsgRef', cmd.msgRef),
        el('CmdRef', cmd.cmdRef),
        el('Cmd', cmd.cmd),
        ...cmd.targetRefs.map((t) => el('TargetRef', t)),
        ...cmd.sourceRefs.map((s) => el('SourceRef', s)),
        cmd.chal ? `<Chal>${meta(cmd.chal)}</Chal>` : '',
        el('Data', cmd.data),
        ...cmd.items.map(item),
        '</Status>',
      ].join('');
    case 'Other':
      return `<${cmd.name}>${el('CmdID', cmd.cmdId)}</${cmd.name}>`;
  }
}

function item(it: Item): string {
  return [
    '<Item>',
    it.target !== undefined ? `<Target>${el('LocURI', it.target)}</Target>` : '',
    it.source !== undefined ? `<Source>${el('LocURI', it.source)}</Source>` : '',
    meta(it.meta),
    it.data !== undefined ? el('Data', it.data) : '',
    '</Item>',
  ].join('');
}

/** MetInf DTD order: Format, Type, …, NextNonce, MaxMsgSize. */
function meta(m: Meta | undefined): string {
  if (!m) return '';
  const fields: [string, string | undefined][] = [
    ['Format', m.format],
    ['Type', m.type],
    ['NextNonce', m.nextNonce],
    ['MaxMsgSize', m.maxMsgSize],
  ];
  const inner = fields
    .filter(([, v]) => v !== undefined)
    .map(([name, v]) => `<${name} xmlns="${METINF_NS}">${escape(v!)}</${name}>`)
    .join('');
  return inner === '' ? '' : `<Meta>${inner}</Meta>`;
}

function el(name: string, value: string): string {
  return `<${name}>${escape(value)}</${name}>`;
}

function escape(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A Status answering `cmd` of message `msgRef`. */
export function statusFor(
  cmdId: string,
  msgRef: string,
  ref: { cmdId: string; name: string },
  data: string,
  extra: Partial<Extract<Command, { kind: 'Status' }>> = {},
): Extract<Command, { kind: 'Status' }> {
  return {
    kind: 'Status',
    cmdId,
    msgRef,
    cmdRef: ref.cmdId,
    cmd: ref.name,
    targetRefs: [],
    sourceRefs: [],
    data,
    items: [],
    ...extra,
  };
}

/** The element name of a command, as a Status's Cmd names it. */
export function commandName(cmd: Command): string {
  return cmd.kind === 'Other' ? cmd.name : cmd.kind;
}
