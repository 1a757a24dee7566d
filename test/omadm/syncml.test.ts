// The SyncML DM 1.2 reader and writer (src/protocol/omadm/syncml.ts): what it writes reads back the
// same, and the reader's refusals, each with its code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildSyncMl, parseSyncMl, type SyncMlMessage } from '../../src/protocol/omadm/syncml.js';
import { packageFromItem, packageItem } from '../../src/protocol/omadm/simcred-mo.js';

const message: SyncMlMessage = {
  hdr: {
    sessionId: '1A2B',
    msgId: '1',
    target: 'DSIM0000000000000001',
    source: 'https://prov.example/v1/omadm',
    respUri: 'https://prov.example/v1/omadm?session=abc&x=<y>',
    meta: { maxMsgSize: '16384' },
  },
  body: [
    {
      kind: 'Status',
      cmdId: '1',
      msgRef: '1',
      cmdRef: '0',
      cmd: 'SyncHdr',
      targetRefs: ['https://prov.example/v1/omadm'],
      sourceRefs: ['DSIM0000000000000001'],
      chal: { format: 'b64', type: 'syncml:auth-basic' },
      data: '407',
      items: [{ data: 'SIMCRED_DM_CREDENTIALS_INVALID' }],
    },
    {
      kind: 'Replace',
      cmdId: '2',
      meta: { format: 'b64', type: 't' },
      items: [{ target: './SimCred/Package', data: 'QUJD' }],
    },
    { kind: 'Get', cmdId: '3', items: [{ target: './DevDetail/SwV' }] },
    { kind: 'Other', name: 'Frobnicate', cmdId: '4' },
  ],
  final: true,
};

test('what the writer writes, the reader reads back the same (escaping included)', () => {
  assert.deepEqual(parseSyncMl(buildSyncMl(message)), message);
});

test('the public SyncML 1.2 DOCTYPE is dropped unread; any other DOCTYPE, an entity, malformed or oversized input is refused', () => {
  const xml = buildSyncMl(message);
  const withDoctype = xml.replace(
    '?>',
    '?><!DOCTYPE SyncML PUBLIC "-//SYNCML//DTD SyncML 1.2//EN" "http://www.openmobilealliance.org/tech/DTD/OMA-TS-SyncML_RepPro_DTD-V1_2.dtd">',
  );
  assert.deepEqual(parseSyncMl(withDoctype), message);
  const refused = (text: string, code: string, max?: number) =>
    assert.throws(
      () => parseSyncMl(text, max),
      (e: { code?: string }) => e.code === code,
    );
  refused(withDoctype.replace('.dtd">', '.dtd" [<!ENTITY x "y">]>'), 'SIMCRED_XML_DTD_FORBIDDEN');
  refused(
    xml.replace('<SyncML', '<!DOCTYPE SyncML SYSTEM "file:///etc/passwd"><SyncML'),
    'SIMCRED_XML_DTD_FORBIDDEN',
  );
  refused(xml.slice(0, -10), 'SIMCRED_DM_MALFORMED');
  refused(xml.replace('SYNCML:SYNCML1.2', 'SYNCML:SYNCML1.1'), 'SIMCRED_DM_MALFORMED');
  refused(xml.replace('<MsgID>1</MsgID>', ''), 'SIMCRED_DM_MALFORMED');
  refused(xml.replace('<CmdID>3</CmdID>', ''), 'SIMCRED_DM_MALFORMED');
  refused(xml, 'SIMCRED_DM_MESSAGE_TOO_LARGE', 100);
  const deep = `${'<Item>'.repeat(20)}${'</Item>'.repeat(20)}`;
  refused(
    xml.replace('<Final/>', `<Alert><CmdID>9</CmdID>${deep}</Alert><Final/>`),
    'SIMCRED_DM_MESSAGE_TOO_LARGE',
  );
});

test('./SimCred/Package: JOSE as chr, XML in base64, back byte for byte; another node, Type or a value of the wrong kind refused', () => {
  const jose = 'eyJhbGciOiJFUzI1NiJ9.eyJhIjoxfQ.c2ln';
  const xml = '<CredentialPackage xmlns="urn:simcred:package">é &amp; <![CDATA[x]]></CredentialPackage>';
  for (const pkg of [jose, xml]) {
    const { meta, item } = packageItem(pkg);
    assert.equal(packageFromItem(meta, item), pkg);
  }
  const refused = (fn: () => unknown) =>
    assert.throws(fn, (e: { code?: string }) => e.code === 'SIMCRED_DM_MALFORMED');
  const { meta, item } = packageItem(xml);
  refused(() => packageFromItem(meta, { ...item, target: './SimCred/Other' }));
  refused(() => packageFromItem({ ...meta, type: 'text/plain' }, item));
  refused(() => packageFromItem({ format: 'chr', type: 'application/jose' }, { ...item, data: xml }));
  refused(() => packageFromItem(meta, { ...item, data: Buffer.from(jose).toString('base64') }));
});
