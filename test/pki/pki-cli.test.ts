import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadFactoryImage, loadPki, openCaStore } from '../../src/pki/index.js';
import { lastJsonLine, runCli, tempDir } from '../helpers/cli.js';

interface CertKey {
  cert: string;
  key: string;
}
interface InitJson {
  dir: string;
  manifest: string;
  manufacturerRoot: CertKey;
  deviceCa: CertKey;
  operatorRoot: CertKey;
  operatorCa: CertKey;
  packageSigner: CertKey;
  ocspSigners: Record<'device-ca' | 'operator-ca', CertKey>;
  tls: Record<string, CertKey>;
  created: string[];
}
interface ManufactureJson {
  dir: string;
  count: number;
  keyType: string;
  devices: { dsimId: string; certificate: string; privateKey: string; factoryImage: string }[];
  elapsedMs: number;
}

function openssl(...args: string[]): { code: number; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

function verify(root: string, intermediate: string, cert: string): void {
  const r = openssl('verify', '-CAfile', root, '-untrusted', intermediate, cert);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /: OK/);
}

function text(cert: string): string {
  return openssl('x509', '-in', cert, '-noout', '-text').out;
}

function assertOneLineError(r: { code: number; stderr: string }, code: string): void {
  assert.notEqual(r.code, 0);
  assert.ok(!r.stderr.includes('    at '), r.stderr);
  assert.match(r.stderr, new RegExp(`^simcred: error: .*\\(${code}\\)\\n$`));
}

describe('simcred pki / devices (CLI, checked with openssl)', () => {
  const tmp = tempDir('simcred-pki-');
  const dir = join(tmp.path, 'pki');
  let init: InitJson;

  before(async () => {
    const started = Date.now();
    const r = await runCli(['pki', 'init', '--dir', dir, '--json']);
    assert.equal(r.code, 0, r.stderr);
    init = lastJsonLine<InitJson>(r.stdout);
    console.log(`# pki init: ${Date.now() - started} ms (including node start-up)`);
  });
  after(() => tmp.cleanup());

  test('init: every certificate verifies with openssl against its root', () => {
    verify(init.manufacturerRoot.cert, init.manufacturerRoot.cert, init.deviceCa.cert);
    verify(init.manufacturerRoot.cert, init.deviceCa.cert, init.ocspSigners['device-ca'].cert);
    verify(init.operatorRoot.cert, init.operatorRoot.cert, init.operatorCa.cert);
    verify(init.operatorRoot.cert, init.operatorCa.cert, init.ocspSigners['operator-ca'].cert);
    verify(init.operatorRoot.cert, init.operatorCa.cert, init.packageSigner.cert);
    for (const { cert } of Object.values(init.tls))
      verify(init.operatorRoot.cert, init.operatorCa.cert, cert);
    const r = openssl('verify', '-CAfile', init.manufacturerRoot.cert, init.manufacturerRoot.cert);
    assert.equal(r.code, 0, r.out);
  });

  test('init: CA, OCSP signer and TLS profiles', () => {
    for (const ca of [init.deviceCa, init.operatorCa]) {
      const t = text(ca.cert);
      assert.match(t, /Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
      assert.match(t, /Key Usage: critical\s+Certificate Sign, CRL Sign/);
      assert.match(t, /Subject Key Identifier/);
      assert.match(t, /Authority Key Identifier/);
    }
    assert.match(text(init.manufacturerRoot.cert), /CA:TRUE, pathlen:1/);
    for (const signer of Object.values(init.ocspSigners)) {
      const t = text(signer.cert);
      assert.match(t, /Extended Key Usage:\s+OCSP Signing/);
      assert.match(t, /OCSP No Check:/);
      assert.doesNotMatch(t, /OCSP No Check: critical/);
      const purpose = openssl('x509', '-in', signer.cert, '-noout', '-purpose').out;
      assert.match(purpose, /OCSP helper : Yes/);
    }
    for (const [role, { cert }] of Object.entries(init.tls)) {
      const t = text(cert);
      assert.match(t, /IP Address:127\.0\.0\.1/);
      assert.match(t, /DNS:localhost/);
      assert.match(t, /TLS Web Server Authentication, TLS Web Client Authentication/);
      assert.match(t, new RegExp(`CN = simcred-${role}`));
      assert.match(t, /ecdsa-with-SHA256/);
    }
  });

  test('init: key files are 0600, certificates 0644', () => {
    const pairs = [
      init.manufacturerRoot,
      init.deviceCa,
      init.operatorRoot,
      init.operatorCa,
      init.packageSigner,
      ...Object.values(init.ocspSigners),
      ...Object.values(init.tls),
    ];
    for (const { cert, key } of pairs) {
      assert.equal(statSync(key).mode & 0o777, 0o600, key);
      assert.equal(statSync(cert).mode & 0o777, 0o644, cert);
    }
  });

  test('init is idempotent: same bytes, nothing created', async () => {
    const before = readFileSync(init.deviceCa.cert);
    const tlsBefore = readFileSync(init.tls.ocsp!.cert);
    const r = await runCli(['pki', 'init', '--dir', dir, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const again = lastJsonLine<InitJson>(r.stdout);
    assert.deepEqual(again.created, []);
    assert.deepEqual(readFileSync(init.deviceCa.cert), before);
    assert.deepEqual(readFileSync(init.tls.ocsp!.cert), tlsBefore);
  });

  test('loadPki reads the folder; certificates recorded for OCSP', async () => {
    const pki = await loadPki(dir);
    assert.equal(
      pki.issuers['device-ca'].ca.certificate.subject,
      pki.manufacturer.deviceCa.certificate.subject,
    );
    assert.equal(pki.operator.packageSigner.privateKey().asymmetricKeyType, 'ec');
    assert.equal(pki.manufacturer.deviceCa.pem, readFileSync(init.deviceCa.cert, 'utf8'));
    const store = await openCaStore(dir);
    try {
      const signer = pki.operator.packageSigner.certificate.serialNumber;
      assert.equal((await store.status('operator-ca', signer)).status, 'good');
      // CA certificates are issued by the roots, which the responder does not answer for.
      assert.equal(
        (await store.status('device-ca', pki.manufacturer.deviceCa.certificate.serialNumber)).status,
        'unknown',
      );
    } finally {
      await store.close();
    }
  });

  test('manufacture 10,000 EC devices; sample verifies with openssl', async (t) => {
    const r = await runCli(['devices', 'manufacture', '--dir', dir, '--count', '10000', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = lastJsonLine<ManufactureJson>(r.stdout);
    t.diagnostic(`10,000 EC devices: ${out.elapsedMs} ms`);
    console.log(`# manufacture 10,000 EC devices: ${out.elapsedMs} ms`);
    assert.equal(out.count, 10000);
    assert.equal(out.devices.length, 10000);
    assert.equal(new Set(out.devices.map((d) => d.dsimId)).size, 10000);
    for (const d of out.devices) assert.match(d.dsimId, /^DSIM[0-9A-F]{16}$/);

    for (const i of [0, 1, 4999, 9999]) {
      const device = out.devices[i]!;
      verify(init.manufacturerRoot.cert, init.deviceCa.cert, device.certificate);
      const t = text(device.certificate);
      assert.match(t, new RegExp(`serialNumber = ${device.dsimId}`));
      assert.match(t, new RegExp(`URI:urn:simcred:dsim:${device.dsimId}`));
      assert.match(t, /Digital Signature, Key Agreement/);
      assert.match(t, /TLS Web Client Authentication/);
      assert.equal(statSync(device.privateKey).mode & 0o777, 0o600);
      const image = await loadFactoryImage(dir, device.dsimId);
      assert.equal(image.image.keyType, 'ec');
      assert.match(image.image.preliminary.pimsi, /^00101\d{10}$/);
      assert.match(image.image.preliminary.kPimsi, /^[0-9a-f]{32}$/);
      assert.ok(image.certificate.checkPrivateKey(image.privateKey));
    }
    const subscribers = readFileSync(join(dir, 'phlr/subscribers.ndjson'), 'utf8').trim().split('\n');
    assert.equal(subscribers.length, 10000);
    const pimsis = subscribers.map((l) => (JSON.parse(l) as { pimsi: string }).pimsi);
    assert.equal(new Set(pimsis).size, 10000);
    assert.equal(statSync(join(dir, 'phlr/subscribers.ndjson')).mode & 0o777, 0o600);
  });

  test('manufacture RSA devices; registration servers round-robin; PIMSIs continue', async (t) => {
    const r = await runCli([
      'devices',
      'manufacture',
      '--dir',
      dir,
      '--count',
      '6',
      '--key',
      'rsa',
      '--registration-server',
      'https://a.example:7411',
      '--registration-server',
      'https://b.example:7411',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = lastJsonLine<ManufactureJson>(r.stdout);
    t.diagnostic(`6 RSA devices: ${out.elapsedMs} ms`);
    assert.equal(out.keyType, 'rsa');
    const servers = new Set<string>();
    for (const device of out.devices) {
      verify(init.manufacturerRoot.cert, init.deviceCa.cert, device.certificate);
      assert.match(text(device.certificate), /rsaEncryption[\s\S]*Digital Signature, Key Encipherment/);
      const image = await loadFactoryImage(dir, device.dsimId);
      servers.add(image.image.registrationServer);
      assert.ok(Number(image.image.preliminary.pimsi.slice(5)) >= 10000);
    }
    assert.deepEqual([...servers].sort(), ['https://a.example:7411', 'https://b.example:7411']);
  });

  test('revoke by DSIM_ID and by serial records status revoked', async () => {
    const made = lastJsonLine<ManufactureJson>(
      (await runCli(['devices', 'manufacture', '--dir', dir, '--count', '2', '--json'])).stdout,
    );
    const dsimId = made.devices[0]!.dsimId;
    const r = await runCli([
      'pki',
      'revoke',
      '--dir',
      dir,
      '--dsim',
      dsimId,
      '--reason',
      'keyCompromise',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = lastJsonLine<{
      dsimId: string;
      issuer: string;
      serial: string;
      reason: string;
      revokedAt: string;
    }>(r.stdout);
    assert.equal(out.dsimId, dsimId);
    assert.equal(out.issuer, 'device-ca');
    assert.equal(out.reason, 'keyCompromise');

    const pki = await loadPki(dir);
    const signerSerial = pki.operator.packageSigner.certificate.serialNumber;
    const r2 = await runCli([
      'pki',
      'revoke',
      '--dir',
      dir,
      '--serial',
      signerSerial,
      '--issuer',
      'operator-ca',
      '--json',
    ]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(lastJsonLine<{ reason: string }>(r2.stdout).reason, 'unspecified');

    const store = await openCaStore(dir);
    try {
      const status = await store.status('device-ca', out.serial);
      assert.equal(status.status, 'revoked');
      assert.equal(status.status === 'revoked' && status.reason, 1);
      assert.equal((await store.status('operator-ca', signerSerial)).status, 'revoked');
      const other = await store.findDevice(made.devices[1]!.dsimId);
      assert.equal((await store.status('device-ca', other!.serialHex)).status, 'good');
    } finally {
      await store.close();
    }
    assertOneLineError(
      await runCli(['pki', 'revoke', '--dir', dir, '--dsim', 'DSIM0000000000000000']),
      'SIMCRED_PKI_UNKNOWN_DEVICE',
    );
    assertOneLineError(
      await runCli(['pki', 'revoke', '--dir', dir, '--dsim', dsimId, '--reason', 'boredom']),
      'SIMCRED_CLI_ARGUMENT',
    );
    assertOneLineError(
      await runCli(['pki', 'revoke', '--dir', dir, '--serial', '0badc0de', '--issuer', 'device-ca']),
      'SIMCRED_PKI_UNKNOWN_CERTIFICATE',
    );
  });

  test('bad arguments: one line, stable code, non-zero exit, no stack', async () => {
    const m = (...args: string[]) => runCli(['devices', 'manufacture', '--dir', dir, ...args]);
    assertOneLineError(await m('--count', '1', '--key', 'dsa'), 'SIMCRED_CLI_ARGUMENT');
    assertOneLineError(await m('--count', '0'), 'SIMCRED_CLI_ARGUMENT');
    assertOneLineError(await m('--count', '1.5'), 'SIMCRED_CLI_ARGUMENT');
    assertOneLineError(await m('--count', '1', '--registration-server', 'not a url'), 'SIMCRED_CLI_ARGUMENT');

    const file = join(tmp.path, 'a-file');
    writeFileSync(file, 'x');
    assertOneLineError(await runCli(['pki', 'init', '--dir', join(file, 'pki')]), 'SIMCRED_IO');
    assertOneLineError(await runCli(['pki', 'init', '--dir', '/proc/simcred-pki']), 'SIMCRED_IO');
    assertOneLineError(
      await runCli(['devices', 'manufacture', '--dir', join(tmp.path, 'empty'), '--count', '1']),
      'SIMCRED_PKI_NOT_INITIALISED',
    );
  });
});
