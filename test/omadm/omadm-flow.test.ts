// OMA DM 1.2 delivery end to end (docs/omadm.md): the provisioning server as a DM server, the device's
// DM client, Package 0 over the loopback SMS stand-in, every exchanged message checked against the
// SyncML 1.2 DTD with Debian's xmllint, the published example messages as test vectors, and each bad
// DM input refused with its own code while the device keeps its state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tokenDigest } from '../../src/crypto/digest.js';
import { DeviceAgent } from '../../src/device/agent.js';
import { runFleet } from '../../src/device/fleet.js';
import { TrustedModule } from '../../src/device/trusted-module.js';
import { PeerClient, clientTls, loadTlsIdentity } from '../../src/http/index.js';
import { loadFactoryImage, manufactureDevices } from '../../src/pki/index.js';
import { DM_SERVER_ID, verifyNotification } from '../../src/protocol/omadm/notification.js';
import { openSmsInbox } from '../../src/protocol/omadm/sms.js';
import {
  SYNCML_DM_XML,
  buildSyncMl,
  parseSyncMl,
  type Command,
  type SyncMlMessage,
} from '../../src/protocol/omadm/syncml.js';
import { omadmNotify } from '../../src/protocol/provisioning.js';
import { expectRefusal, rejectsWith } from '../helpers/assert.js';
import { tempDir } from '../helpers/cli.js';
import { startTestSystem, type TestSystem } from '../flow/harness.js';

const FIXTURES = 'test/omadm/fixtures';

/** Every message valid against the SyncML 1.2 DTD (with MetInf 1.2), as Debian's xmllint judges. */
function assertDtdValid(messages: string[]): void {
  assert.ok(messages.length > 0);
  const dir = tempDir('simcred-dtd-');
  try {
    const files = messages.map((xml, i) => {
      const file = join(dir.path, `message-${i}.xml`);
      writeFileSync(file, xml);
      return file;
    });
    const run = spawnSync(
      'xmllint',
      ['--noout', '--nonet', '--dtdvalid', join(FIXTURES, 'syncml-1.2.dtd'), ...files],
      { encoding: 'utf8' },
    );
    assert.equal(run.status, 0, `xmllint: ${run.stderr}`);
  } finally {
    dir.cleanup();
  }
}

async function manufacture(t: TestSystem, count: number, packageFormats: ('jose' | 'xml')[]) {
  const { urls } = t.system;
  const result = await manufactureDevices({
    dir: t.config.pkiDir,
    count,
    keyType: 'ec',
    registrationServers: urls.registration,
    servers: { phlr: urls.phlr, ocsp: urls.ocsp, hss: urls.hss },
    workers: 0,
    packageFormats,
  });
  return result.devices.map((d) => d.dsimId);
}

/** A device that collects over OMA DM, with every DM message it sends or receives captured. */
async function dmDevice(t: TestSystem, dsimId: string, captured: string[]) {
  const image = await loadFactoryImage(t.config.pkiDir, dsimId);
  const module = TrustedModule.fromFactoryImage(image, { persist: false });
  const agent = DeviceAgent.fromFactoryImage(image, {
    module,
    client: t.deviceClient,
    maxAttempts: 1,
    delivery: 'omadm',
    onDmMessage: (_direction, xml) => captured.push(xml),
  });
  return { module, agent };
}

/** Steps 1–6 by hand: the device holds its referral (ticket and provisioning URL). */
async function referred(agent: DeviceAgent) {
  const registration = await agent.lookupRegistration();
  const session = await agent.openSession(registration);
  const referral = await agent.proveSession(registration, session);
  return { registration, session, referral };
}

const post = (t: TestSystem, url: string, xml: string) =>
  t.deviceClient.send(url, 'POST', xml, SYNCML_DM_XML);

/** A Package 1 of ours, built by hand so tests can bend it. */
function package1(serverUri: string, dsimId: string, ticket: string | undefined, extra: Command[] = []) {
  const message: SyncMlMessage = {
    hdr: {
      sessionId: '1',
      msgId: '1',
      target: serverUri,
      source: dsimId,
      ...(ticket !== undefined
        ? {
            cred: {
              meta: { format: 'b64', type: 'syncml:auth-basic' },
              data: Buffer.from(`${dsimId}:${ticket}`).toString('base64'),
            },
          }
        : {}),
    },
    body: [
      { kind: 'Alert', cmdId: '1', data: '1201', items: [] },
      { kind: 'Replace', cmdId: '2', items: [{ source: './DevInfo/DevId', data: dsimId }] },
      ...extra,
    ],
    final: true,
  };
  return buildSyncMl(message);
}

function headerStatus(message: SyncMlMessage) {
  const status = message.body.find((c) => c.kind === 'Status' && c.cmd === 'SyncHdr');
  assert.ok(status && status.kind === 'Status');
  return status;
}

test('OMA DM delivery: JOSE and XML packages reach devices in a DM session, which attach; every message is valid against the SyncML 1.2 DTD', async () => {
  const t = await startTestSystem({ credentialing: { packageFormats: ['jose', 'xml'] } });
  try {
    const jose = await manufacture(t, 1, ['jose']);
    const xml = await manufacture(t, 1, ['xml']);
    await t.register([...jose, ...xml]);
    const captured: string[] = [];
    for (const dsimId of [...jose, ...xml]) {
      const { agent } = await dmDevice(t, dsimId, captured);
      const result = await agent.onboard();
      assert.match(result.subscription.imsi, /^[0-9]{15}$/);
      assert.equal((await t.subscriber(dsimId))!.state, 'active');
    }
    // Four messages per session: Packages 1, 2, 3 and 4.
    assert.equal(captured.length, 8);
    const package2s = captured.filter((_, i) => i % 4 === 1).map((m) => parseSyncMl(m, 1 << 20));
    const types = package2s.map((m) => {
      const replace = m.body.find((c) => c.kind === 'Replace');
      assert.ok(replace && replace.kind === 'Replace');
      assert.equal(replace.items[0]!.target, './SimCred/Package');
      return replace.meta?.type;
    });
    assert.deepEqual(types, ['application/jose', 'application/vnd.simcred.package+xml']);
    assertDtdValid(captured);

    // A fleet passes the choice on: a few more devices, all over OMA DM.
    const fleet = await manufacture(t, 3, ['xml']);
    await t.register(fleet);
    const report = await runFleet({
      pkiDir: t.config.pkiDir,
      dsimIds: fleet,
      concurrency: 3,
      delivery: 'omadm',
    });
    assert.deepEqual(
      report.outcomes.filter((o) => !o.ok),
      [],
    );
    assert.deepEqual(
      t.system.servers.provisioning.flatMap((s) => s.undeclaredErrors()),
      [],
    );
  } finally {
    await t.close();
  }
});

test('Package 0: the server wakes a referred device over the SMS stand-in; a wrong digest is refused; a valid one starts a session with Alert 1200', async () => {
  const t = await startTestSystem();
  const credentialing = new PeerClient({ tls: clientTls(loadTlsIdentity(t.config.pkiDir, 'credentialing')) });
  const inbox = await openSmsInbox();
  try {
    const [dsimId] = await manufacture(t, 1, ['jose']);
    await t.register([dsimId!]);
    const captured: string[] = [];
    const { agent, module } = await dmDevice(t, dsimId!, captured);
    const { registration, session, referral } = await referred(agent);

    const sent = await credentialing.call(referral.provisioningUrl, omadmNotify, {
      body: { dsimId: dsimId!, smsAddress: inbox.address },
    });
    const bytes = await inbox.next();
    // The device's secret: the digest of its ticket; the nonce: its DSIM_ID (docs/omadm.md).
    const secret = { password: tokenDigest(referral.ticket), nonce: dsimId! };
    assert.throws(
      () => verifyNotification(bytes, DM_SERVER_ID, { ...secret, password: tokenDigest('another ticket') }),
      (e: { code?: string }) => e.code === 'SIMCRED_DM_NOTIFICATION_INVALID',
    );
    const tampered = Buffer.from(bytes);
    tampered[tampered.length - 1]! ^= 1;
    assert.throws(
      () => verifyNotification(tampered, DM_SERVER_ID, secret),
      (e: { code?: string }) => e.code === 'SIMCRED_DM_NOTIFICATION_INVALID',
    );
    assert.throws(
      () => verifyNotification(bytes.subarray(0, 20), DM_SERVER_ID, secret),
      (e: { code?: string }) => e.code === 'SIMCRED_DM_NOTIFICATION_INVALID',
    );
    // Refused notifications changed nothing on the device.
    assert.equal(module.subscription, undefined);
    assert.equal(captured.length, 0);

    const notification = verifyNotification(bytes, DM_SERVER_ID, secret);
    assert.equal(notification.initiator, 1);
    assert.equal(notification.sessionId.toString(16).toUpperCase(), sent.sessionId);
    const pkg = await agent.collectPackage(referral, { sessionId: notification.sessionId });
    const first = parseSyncMl(captured[0]!);
    assert.equal(first.hdr.sessionId, sent.sessionId);
    assert.deepEqual(
      first.body.filter((c) => c.kind === 'Alert').map((c) => (c.kind === 'Alert' ? c.data : '')),
      ['1200'],
    );
    await agent.install(pkg, session.deviceNonce);
    await agent.sendReceipt(registration, session.deviceNonce);
    await agent.attach();
    assert.equal((await t.subscriber(dsimId!))!.state, 'active');
    assertDtdValid(captured);
    // Once delivered, the server sends no Package 0 for the device.
    expectRefusal(
      await credentialing.send(
        `${referral.provisioningUrl}${omadmNotify.path}`,
        'POST',
        JSON.stringify({ dsimId, smsAddress: inbox.address }),
        'application/json',
      ),
      'SIMCRED_NOT_FOUND',
    );
  } finally {
    await inbox.close();
    await credentialing.close();
    await t.close();
  }
});

test('bad DM input: each refused with its own code, and the device keeps its referral and completes afterwards', async () => {
  const t = await startTestSystem();
  try {
    const [dsimId] = await manufacture(t, 1, ['jose']);
    await t.register([dsimId!]);
    const captured: string[] = [];
    const { agent, module } = await dmDevice(t, dsimId!, captured);
    const { registration, session, referral } = await referred(agent);
    const serverUri = `${referral.provisioningUrl}/v1/omadm`;
    const answers: string[] = [];

    // Not XML, not SyncML DM 1.2, a DTD, an oversized message, an unknown session: HTTP errors.
    expectRefusal(await post(t, serverUri, '<SyncML><SyncHdr>'), 'SIMCRED_DM_MALFORMED');
    expectRefusal(
      await post(t, serverUri, package1(serverUri, dsimId!, referral.ticket).replace('DM/1.2', 'DM/1.1')),
      'SIMCRED_DM_MALFORMED',
    );
    expectRefusal(
      await post(t, serverUri, '<?xml version="1.0"?><!DOCTYPE SyncML [<!ENTITY x "y">]><SyncML/>'),
      'SIMCRED_XML_DTD_FORBIDDEN',
    );
    const padding: Command = {
      kind: 'Alert',
      cmdId: '9',
      data: '1226',
      items: [{ data: 'x'.repeat(20_000) }],
    };
    expectRefusal(
      await post(t, serverUri, package1(serverUri, dsimId!, referral.ticket, [padding])),
      'SIMCRED_DM_MESSAGE_TOO_LARGE',
    );
    expectRefusal(
      await post(t, `${serverUri}?session=${'A'.repeat(43)}`, package1(serverUri, dsimId!, referral.ticket)),
      'SIMCRED_DM_SESSION_UNKNOWN',
    );
    expectRefusal(
      await t.deviceClient.send(serverUri, 'POST', '{}', 'application/json'),
      'SIMCRED_UNSUPPORTED_MEDIA_TYPE',
    );

    // Credentials: missing → Status 407 + Chal, unusable → 401 + Chal, a wrong ticket → 401; HTTP 200.
    const refusals: [string | undefined, string, string][] = [
      [undefined, '407', 'SIMCRED_DM_CREDENTIALS_INVALID'],
      ['', '401', 'SIMCRED_DM_CREDENTIALS_INVALID'],
      ['A'.repeat(43), '401', 'SIMCRED_TICKET_INVALID'],
    ];
    for (const [ticket, status, code] of refusals) {
      const answer = await post(t, serverUri, package1(serverUri, dsimId!, ticket));
      assert.equal(answer.statusCode, 200);
      answers.push(answer.text);
      const hdr = headerStatus(parseSyncMl(answer.text));
      assert.equal(hdr.data, status);
      assert.deepEqual(hdr.chal, { format: 'b64', type: 'syncml:auth-basic' });
      assert.deepEqual({ code: hdr.items[0]?.data }, { code });
    }
    // The device's own client turns a refused session into the code.
    const { runDmSession } = await import('../../src/device/omadm-client.js');
    await rejectsWith(
      runDmSession({
        client: t.deviceClient,
        provisioningUrl: referral.provisioningUrl,
        dsimId: dsimId!,
        ticket: 'B'.repeat(43),
      }),
      'SIMCRED_TICKET_INVALID',
    );
    await rejectsWith(
      runDmSession({
        client: t.deviceClient,
        provisioningUrl: referral.provisioningUrl,
        dsimId: dsimId!,
        ticket: 'not a ticket',
      }),
      'SIMCRED_DM_CREDENTIALS_INVALID',
    );
    assert.equal(module.subscription, undefined);

    // An unknown command in Package 1 (and an unsupported one in Package 3): Status 406, the session
    // goes on; the device then completes from the Package 2 it got.
    const unknown: Command = { kind: 'Other', name: 'Frobnicate', cmdId: '3' };
    const answer2 = await post(t, serverUri, package1(serverUri, dsimId!, referral.ticket, [unknown]));
    assert.equal(answer2.statusCode, 200);
    answers.push(answer2.text);
    const package2 = parseSyncMl(answer2.text, 1 << 20);
    const refused = package2.body.find((c) => c.kind === 'Status' && c.cmd === 'Frobnicate');
    assert.ok(refused && refused.kind === 'Status');
    assert.equal(refused.data, '406');
    assert.deepEqual({ code: refused.items[0]?.data }, { code: 'SIMCRED_DM_COMMAND_UNSUPPORTED' });
    const replace = package2.body.find((c) => c.kind === 'Replace');
    assert.ok(replace && replace.kind === 'Replace');
    const package3 = buildSyncMl({
      hdr: { sessionId: '1', msgId: '2', target: package2.hdr.respUri!, source: dsimId! },
      body: [
        {
          kind: 'Status',
          cmdId: '1',
          msgRef: '1',
          cmdRef: '0',
          cmd: 'SyncHdr',
          targetRefs: [],
          sourceRefs: [],
          data: '200',
          items: [],
        },
        {
          kind: 'Status',
          cmdId: '2',
          msgRef: '1',
          cmdRef: replace.cmdId,
          cmd: 'Replace',
          targetRefs: [],
          sourceRefs: [],
          data: '200',
          items: [],
        },
        { kind: 'Get', cmdId: '3', items: [{ target: './DevDetail/SwV' }] },
      ],
      final: true,
    });
    const answer4 = await post(t, package2.hdr.respUri!, package3);
    assert.equal(answer4.statusCode, 200);
    answers.push(answer4.text);
    const package4 = parseSyncMl(answer4.text);
    assert.ok(package4.final);
    const get = package4.body.find((c) => c.kind === 'Status' && c.cmd === 'Get');
    assert.ok(get && get.kind === 'Status');
    assert.deepEqual(
      { data: get.data, code: get.items[0]?.data },
      { data: '406', code: 'SIMCRED_DM_COMMAND_UNSUPPORTED' },
    );
    // The session is closed: a replayed Package 3 finds none.
    expectRefusal(await post(t, package2.hdr.respUri!, package3), 'SIMCRED_DM_SESSION_UNKNOWN');
    assertDtdValid([...answers, package3]);

    const { packageFromItem } = await import('../../src/protocol/omadm/simcred-mo.js');
    const pkg = packageFromItem(replace.meta, replace.items[0]!);
    await agent.install(pkg, session.deviceNonce);
    await agent.sendReceipt(registration, session.deviceNonce);
    await agent.attach();
    assert.equal((await t.subscriber(dsimId!))!.state, 'active');
  } finally {
    await t.close();
  }
});

test('test vectors: the example Package 1 of OMA-TS-DM_Protocol-V1_2 and the first message of [MS-MDM] §4 are parsed and answered', async () => {
  const t = await startTestSystem();
  try {
    const [omaDevice, msDevice] = await manufacture(t, 2, ['jose']);
    await t.register([omaDevice!, msDevice!]);
    const answers: string[] = [];
    const vectors: [string, string, string, string][] = [
      // file, its device id, its server URI, its command ids (Alert, Replace)
      [
        'oma-dm-protocol-1.2-package1.xml',
        'IMEI:493005100592800',
        'http://www.syncml.org/mgmt-server',
        '1,3',
      ],
      ['ms-mdm-4-package1.xml', '{unique device id}', 'https://contoso.com/management-server', '2,3'],
    ];
    for (const [index, [file, theirId, theirServer, cmdIds]] of vectors.entries()) {
      const dsimId = index === 0 ? omaDevice! : msDevice!;
      const published = readFileSync(join(FIXTURES, 'vectors', file), 'utf8');
      const { agent } = await dmDevice(t, dsimId, []);
      const { referral } = await referred(agent);
      const serverUri = `${referral.provisioningUrl}/v1/omadm`;

      // As published: no usable credentials for this server → Status 407/401 with a Chal.
      const asPublished = await post(t, serverUri, published);
      assert.equal(asPublished.statusCode, 200, asPublished.text);
      answers.push(asPublished.text);
      const refused = parseSyncMl(asPublished.text);
      assert.equal(refused.hdr.target, theirId);
      assert.equal(refused.hdr.source, theirServer);
      assert.match(headerStatus(refused).data, /^40[17]$/);
      assert.deepEqual(headerStatus(refused).chal, { format: 'b64', type: 'syncml:auth-basic' });

      // Adapted where it must be ours (the device id, the server URI, our credentials): delivered.
      const cred = `<Cred><Meta><Format xmlns="syncml:metinf">b64</Format><Type xmlns="syncml:metinf">syncml:auth-basic</Type></Meta><Data>${Buffer.from(`${dsimId}:${referral.ticket}`).toString('base64')}</Data></Cred>`;
      const adapted = published
        .split(theirId)
        .join(dsimId)
        .split(theirServer)
        .join(serverUri)
        .replace(/<Cred>[\s\S]*?<\/Cred>/, cred)
        .replace(/(<\/Source>\s*)(<\/SyncHdr>)/, `$1${cred}$2`);
      const answer = await post(t, serverUri, adapted);
      assert.equal(answer.statusCode, 200, answer.text);
      answers.push(answer.text);
      const package2 = parseSyncMl(answer.text, 1 << 20);
      assert.equal(headerStatus(package2).data, '212');
      const statuses = package2.body.flatMap((c) =>
        c.kind === 'Status' && c.cmd !== 'SyncHdr' ? [`${c.cmd}:${c.cmdRef}:${c.data}`] : [],
      );
      const [alertId, replaceId] = cmdIds.split(',');
      assert.deepEqual(statuses, [`Alert:${alertId}:200`, `Replace:${replaceId}:200`]);
      assert.ok(
        package2.body.some((c) => c.kind === 'Replace' && c.items[0]?.target === './SimCred/Package'),
      );
      assert.match(package2.hdr.respUri ?? '', /\?session=/);
    }
    assertDtdValid(answers);
  } finally {
    await t.close();
  }
});
