import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import graphene from 'graphene-pk11';
import { runFleet } from '../../src/device/fleet.js';
import { DeviceAgent } from '../../src/device/agent.js';
import { PeerClient, clientTls, loadTlsIdentity, type RunningServer } from '../../src/http/index.js';
import { HssStore } from '../../src/hss/store.js';
import { memoryKek, tokenKek } from '../../src/keys/key-encryption.js';
import { Pkcs11Token } from '../../src/keys/pkcs11-token.js';
import { PhlrStore } from '../../src/phlr/store.js';
import { attachChallenge, issueCredentials } from '../../src/protocol/hss.js';
import { startRole } from '../../src/system/roles.js';
import { roleDatabase } from '../../src/system/start.js';
import { parseKek } from '../../src/crypto/index.js';
import { runCli } from '../helpers/cli.js';
import { filesHolding } from '../helpers/key-search.js';
import { makeSoftHsmToken, type ThrowawayToken } from '../helpers/softhsm.js';
import { startTestSystem, type TestSystem } from './harness.js';

function session(token: Pkcs11Token): graphene.Session {
  return (token as unknown as { session: graphene.Session }).session;
}

/**
 * Issue #17: the HSS's key-encryption key and OP, and the PHLR's key-encryption key, in a PKCS#11
 * token (SoftHSM in a temporary folder). Subscribers are issued and attach; nothing under the data
 * folder holds a KEK or OP; a token that fails mid-request is a 503 with nothing half-stored; a
 * store sealed under the file KEK is rotated into the token by `simcred hss rekey`.
 */
describe('key-encryption keys and OP in a PKCS#11 token', () => {
  let token: ThrowawayToken;
  let opened: Pkcs11Token;
  let t: TestSystem;
  const op = randomBytes(16);
  /** The PHLR's KEK, imported into the token (non-extractable from then on) so the test can search for it. */
  const phlrKek = randomBytes(32);
  let uris: { hssKek: string; hssOp: string; phlrKek: string };

  before(async () => {
    token = makeSoftHsmToken('flow-kek');
    process.env.SIMCRED_PKCS11_PIN = token.pin;
    opened = Pkcs11Token.open(token.uri, token.env);
    // Generated in the token: its value exists nowhere else.
    opened.generateAes256Key('simcred-hss-kek', Buffer.from([0x11]));
    session(opened).create({
      class: graphene.ObjectClass.SECRET_KEY,
      keyType: graphene.KeyType.AES,
      token: true,
      private: true,
      sensitive: true,
      extractable: false,
      encrypt: true,
      decrypt: true,
      label: 'simcred-phlr-kek',
      id: Buffer.from([0x12]),
      value: phlrKek,
    });
    opened.createDataObject('simcred-hss-op', op);
    uris = {
      hssKek: `${token.uri};object=simcred-hss-kek`,
      hssOp: `${token.uri};object=simcred-hss-op;type=data`,
      phlrKek: `${token.uri};object=simcred-phlr-kek`,
    };
    t = await startTestSystem({
      hss: { kek: uris.hssKek, op: uris.hssOp },
      phlr: { kek: uris.phlrKek },
    });
  });
  after(async () => {
    await t?.close();
    delete process.env.SIMCRED_PKCS11_PIN;
    token.remove();
  });

  test('devices are issued credentials and attach; every K/OPc is sealed in the token; no KEK or OP under the data folder', async () => {
    const dsimIds = await t.manufacture(6);
    await t.register(dsimIds);
    const report = await runFleet({ pkiDir: t.config.pkiDir, dsimIds, concurrency: 3 });
    assert.deepEqual(
      report.outcomes.filter((o) => !o.ok).map((o) => o.error),
      [],
    );

    const hss = await HssStore.open(roleDatabase(t.config, 'hss'));
    const phlr = await PhlrStore.open(roleDatabase(t.config, 'phlr'));
    try {
      assert.equal(await hss.countActiveFor(dsimIds), dsimIds.length, 'every device attached (AKA worked)');
      const records = [
        ...(await hss.resealable().sealedSecretsAfter('', 1000)),
        ...(await phlr.resealable().sealedSecretsAfter('', 1000)),
      ];
      assert.ok(records.length >= dsimIds.length * 2);
      for (const r of records) {
        assert.match(r.kSealed, /^sb2\./, 'sealed by the token key');
        assert.match(r.opcSealed, /^sb2\./);
      }
    } finally {
      await hss.close();
      await phlr.close();
    }

    // Nothing about the KEKs or OP in the roles' secrets.json (the registration server's own key is
    // there: its lookup-challenge key stays a file key, docs/crypto.md §7).
    for (const role of ['hss', 'phlr']) {
      const file = join(t.config.dataDir, role, 'secrets.json');
      const held = existsSync(file)
        ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>)
        : {};
      assert.deepEqual(Object.keys(held), [], `${file} holds ${Object.keys(held).join(', ')}`);
    }
    assert.deepEqual(filesHolding(t.config.dataDir, phlrKek), [], 'the PHLR KEK is in a file');
    assert.deepEqual(filesHolding(t.config.dataDir, op), [], 'OP is in a file');

    // The keys are listed by opensc, sensitive and never extractable; OP is a private data object.
    const listing = token.pkcs11Tool('--list-objects');
    const block = (label: string) =>
      listing.split(/\n(?=\S)/).find((b) => b.includes(`label:      ${label}`)) ?? '';
    assert.match(
      block('simcred-hss-kek'),
      /Secret Key Object; AES length 32[\s\S]*sensitive, always sensitive, never extractable/,
    );
    assert.match(block('simcred-phlr-kek'), /Secret Key Object; AES length 32[\s\S]*sensitive/);
    assert.doesNotMatch(
      block('simcred-phlr-kek'),
      /Access:.*\bextractable/,
      'the PHLR KEK cannot be exported',
    );
    assert.match(listing, /Data object[\s\S]*label:\s+'?simcred-hss-op/);
  });

  test('a token that fails mid-request: 503 SIMCRED_KEY_STORE_UNAVAILABLE with Retry-After, no IMSI allocated; the next request works', async () => {
    const [dsimId] = await t.manufacture(1);
    const { module } = await t.device(dsimId!);
    const credentialing = new PeerClient({
      tls: clientTls(loadTlsIdentity(t.config.pkiDir, 'credentialing')),
    });
    const issue = () =>
      credentialing.send(
        `${t.system.urls.hss}${issueCredentials.path}`,
        'POST',
        JSON.stringify({
          dsimId,
          generation: 1,
          deviceCertificate: module.certificateChain[0]!,
          deviceNonce: randomBytes(32).toString('base64url'),
        }),
        'application/json',
      );
    try {
      session(opened).logout();
      const refused = await issue();
      assert.equal(refused.statusCode, 503, refused.text);
      assert.equal(JSON.parse(refused.text).code, 'SIMCRED_KEY_STORE_UNAVAILABLE');
      assert.ok(Number(refused.headers['retry-after']) > 0);
      assert.ok(!refused.text.includes(token.pin));
      assert.equal(await t.subscriber(dsimId!), undefined, 'the subscriber was not half-written');

      const issued = await issue();
      assert.equal(issued.statusCode, 200, issued.text);
      const imsi = (JSON.parse(issued.text) as { imsi: string }).imsi;
      assert.equal((await t.subscriber(dsimId!))?.imsi, imsi);

      // The attach route too: refused while the token is out, answered once it is back.
      session(opened).logout();
      const challenge = () =>
        t.deviceClient.send(
          `${t.system.urls.hss}${attachChallenge.path}`,
          'POST',
          JSON.stringify({ imsi }),
          'application/json',
        );
      const out = await challenge();
      assert.equal(out.statusCode, 503, out.text);
      assert.equal(JSON.parse(out.text).code, 'SIMCRED_KEY_STORE_UNAVAILABLE');
      assert.equal((await challenge()).statusCode, 200);
    } finally {
      await credentialing.close();
    }
  });

  test('startup with a wrong PIN or a missing key: a clear error naming the setting, never the PIN', async () => {
    // In a process of its own: this one's login is cached per token.
    const pinFile = join(t.config.dataDir, '..', `pin-${process.pid}`);
    writeFileSync(pinFile, '000000\n');
    const wrongPin = await runCli(['serve', 'hss', '--dir', t.config.dataDir], {
      env: {
        ...token.env,
        SIMCRED_PKCS11_PIN: '',
        SIMCRED_PKCS11_PIN_FILE: pinFile,
        SIMCRED_HSS__KEK: uris.hssKek,
        SIMCRED_PORTS__HSS: '0',
      },
    });
    assert.equal(wrongPin.code, 2, wrongPin.stderr);
    assert.match(
      wrongPin.stderr,
      /simcred: error: hss\.kek: cannot log in to pkcs11:token=flow-kek.*CKR_PIN_INCORRECT.*\(SIMCRED_KEY_STORE_UNAVAILABLE\)/,
    );
    assert.ok(!wrongPin.stderr.includes('000000') && !wrongPin.stderr.includes(token.pin));

    const missing = await runCli(['serve', 'hss', '--dir', t.config.dataDir], {
      env: { ...token.env, SIMCRED_HSS__KEK: `${token.uri};object=no-such-kek`, SIMCRED_PORTS__HSS: '0' },
    });
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(
      missing.stderr,
      /hss\.kek: no secret key in pkcs11:token=flow-kek.*matches .*no-such-kek.*SIMCRED_KEY_STORE_UNAVAILABLE/,
    );
    assert.ok(!missing.stderr.includes(token.pin));
  });

  test('`simcred hss rekey` / `phlr rekey --to pkcs11:…` move file-KEK stores into the token: the search that finds the file KEK before finds none after; every device attaches; the old KEK opens nothing', async () => {
    const files = await startTestSystem();
    const restarted: RunningServer[] = [];
    try {
      const dsimIds = await files.manufacture(3);
      await files.register(dsimIds);
      const devices = [];
      for (const dsimId of dsimIds) {
        const device = await files.device(dsimId);
        await device.agent.onboard();
        devices.push(device);
      }
      const secretsFile = join(files.config.dataDir, 'hss', 'secrets.json');
      const oldKek = parseKek((JSON.parse(readFileSync(secretsFile, 'utf8')) as { kek: string }).kek);
      // Positive control: the same search finds the KEK when it is a file.
      assert.ok(filesHolding(files.config.dataDir, oldKek).includes(secretsFile));

      const hssPort = Number(new URL(files.system.urls.hss).port);
      await files.system.servers.hss.close();
      const rekey = await runCli(['hss', 'rekey', '--dir', files.config.dataDir, '--to', uris.hssKek], {
        env: token.env,
      });
      assert.equal(rekey.code, 0, rekey.stderr);
      const result = JSON.parse(rekey.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
      assert.equal(result.resealed, dsimIds.length);
      assert.equal(result.to, `the PKCS#11 token key ${uris.hssKek}`);
      assert.ok(!rekey.stdout.includes(oldKek.toString('hex')));
      assert.deepEqual(
        filesHolding(files.config.dataDir, oldKek),
        [],
        'the old KEK is gone from the data folder',
      );

      // The HSS starts again from the same data folder, secrets.json now naming the token key.
      restarted.push(
        await startRole(
          { ...files.config, ports: { ...files.config.ports, hss: hssPort } },
          'hss',
          1,
          files.logger,
        ),
      );
      // Each device attaches again with the credentials it downloaded under the file KEK.
      const client = new PeerClient({ tls: { ca: [files.system.pki.operator.root.pem] } });
      try {
        for (const { image, module } of devices) {
          await DeviceAgent.fromFactoryImage(image, { module, client, maxAttempts: 1 }).attach();
        }
      } finally {
        await client.close();
      }
      const hss = await HssStore.open(roleDatabase(files.config, 'hss'));
      try {
        assert.equal(await hss.countActiveFor(dsimIds), dsimIds.length);
        for (const row of await hss.resealable().sealedSecretsAfter('', 100)) {
          assert.match(row.kSealed, /^sb2\./);
          assert.throws(() => memoryKek(oldKek).open(row.kSealed, `k:${row.id}`), {
            code: 'SIMCRED_SECRET_DECRYPT_FAILED',
          });
        }
      } finally {
        await hss.close();
      }

      // The PHLR's store the same way.
      const phlrSecrets = join(files.config.dataDir, 'phlr', 'secrets.json');
      const oldPhlrKek = parseKek((JSON.parse(readFileSync(phlrSecrets, 'utf8')) as { kek: string }).kek);
      await files.system.servers.phlr.close();
      const phlrRekey = await runCli(['phlr', 'rekey', '--dir', files.config.dataDir, '--to', uris.phlrKek], {
        env: token.env,
      });
      assert.equal(phlrRekey.code, 0, phlrRekey.stderr);
      assert.deepEqual(filesHolding(files.config.dataDir, oldPhlrKek), []);
      const phlr = await PhlrStore.open(roleDatabase(files.config, 'phlr'));
      try {
        const rows = await phlr.resealable().sealedSecretsAfter('', 100);
        assert.equal(rows.length, dsimIds.length);
        const inToken = tokenKek(uris.phlrKek, 'phlr.kek', token.env);
        for (const row of rows) {
          assert.equal(inToken.open(row.opcSealed, `opc:${row.id}`).length, 16);
          assert.throws(() => memoryKek(oldPhlrKek).open(row.kSealed, `k:${row.id}`), {
            code: 'SIMCRED_SECRET_DECRYPT_FAILED',
          });
        }
      } finally {
        await phlr.close();
      }
    } finally {
      for (const server of restarted) await server.close();
      await files.close();
    }
  });
});
