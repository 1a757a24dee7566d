// The package format through the whole flow (docs/crypto.md §6b): the factory image says which formats
// a device opens, the deployment's credentialing.packageFormats says which it prefers, the credentialing
// server asks the HSS for the first the device takes, and the device opens it (or refuses a format it
// did not declare).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFleet } from '../../src/device/fleet.js';
import { manufactureDevices } from '../../src/pki/index.js';
import { SimcredError } from '../../src/errors/index.js';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { choosePackageFormat, sealPackage } from '../../src/crypto/index.js';
import { rejectsWith } from '../helpers/assert.js';
import { startTestSystem, type TestSystem } from './harness.js';
import { lastJsonLine, runCli, tempDir } from '../helpers/cli.js';
import { loadConfig } from '../../src/config/index.js';
import { HssStore } from '../../src/hss/store.js';
import { roleDatabase } from '../../src/system/start.js';

async function manufacture(
  t: TestSystem,
  count: number,
  keyType: 'ec' | 'rsa',
  packageFormats?: ('jose' | 'xml')[],
) {
  const { urls } = t.system;
  const result = await manufactureDevices({
    dir: t.config.pkiDir,
    count,
    keyType,
    registrationServers: urls.registration,
    servers: { phlr: urls.phlr, ocsp: urls.ocsp, hss: urls.hss },
    workers: 0,
    ...(packageFormats ? { packageFormats } : {}),
  });
  return result.devices.map((d) => d.dsimId);
}

test('choosePackageFormat: the deployment order decides among what the device opens; nothing in common is refused', () => {
  assert.equal(choosePackageFormat(['jose', 'xml'], ['xml', 'jose']), 'jose');
  assert.equal(choosePackageFormat(['xml', 'jose'], ['jose', 'xml']), 'xml');
  assert.equal(choosePackageFormat(['jose', 'xml'], ['xml']), 'xml');
  assert.equal(
    choosePackageFormat(['xml', 'jose'], undefined),
    'jose',
    'an image without formats opens JOSE',
  );
  assert.equal(choosePackageFormat(undefined, undefined), 'jose');
  assert.throws(
    () => choosePackageFormat(['xml'], undefined),
    (e: unknown) => e instanceof SimcredError && e.code === 'SIMCRED_PACKAGE_FORMAT_UNSUPPORTED',
  );
});

test('a deployment sealing XML only: XML devices (EC and RSA) get XML packages and attach; a device that opens only JOSE is refused at step 4', async () => {
  const t = await startTestSystem({ credentialing: { packageFormats: ['xml'] } });
  try {
    const xmlOnly = [
      ...(await manufacture(t, 3, 'ec', ['xml'])),
      ...(await manufacture(t, 2, 'rsa', ['xml'])),
    ];
    const both = await manufacture(t, 2, 'ec', ['jose', 'xml']);
    const joseOnly = await manufacture(t, 1, 'ec');
    const dsimIds = [...xmlOnly, ...both, ...joseOnly];
    const summary = await t.register(dsimIds);
    assert.equal(summary.registered, dsimIds.length);
    const report = await runFleet({ pkiDir: t.config.pkiDir, dsimIds, concurrency: 4 });
    const failed = report.outcomes.filter((o) => !o.ok);
    assert.deepEqual(
      failed.map((o) => o.dsimId),
      joseOnly,
      JSON.stringify(failed.map((o) => o.error)),
    );
    assert.equal(failed[0]!.error!.code, 'SIMCRED_PACKAGE_FORMAT_UNSUPPORTED');
    const rootPem = join(t.config.dataDir, 'operator-root.pem');
    writeFileSync(rootPem, t.system.pki.operator.root.pem);
    for (const dsimId of [...xmlOnly, ...both]) {
      const subscriber = (await t.subscriber(dsimId))!;
      assert.equal(subscriber.state, 'active', `${dsimId} did not attach`);
      assert.ok(subscriber.package.startsWith('<CredentialPackage'), dsimId);
      // Debian's xmlsec1 verifies the signature of every XML package the HSS made.
      const file = join(t.config.dataDir, `${dsimId}.xml`);
      writeFileSync(file, subscriber.package);
      const verified = spawnSync('xmlsec1', ['--verify', '--trusted-pem', rootPem, file], {
        encoding: 'utf8',
      });
      assert.equal(verified.status, 0, verified.stderr);
    }
    // Refused before the HSS was asked: no IMSI for the JOSE-only device.
    assert.equal(await t.subscriber(joseOnly[0]!), undefined);

    // A module refuses, before any check, a package in a format its image does not declare.
    const jose = await sealPackage({
      credentials: {
        imsi: '001010000000001',
        k: '00'.repeat(16),
        opc: '11'.repeat(16),
        amf: '8000',
        sqn: '000000000000',
        plmn: '00101',
      },
      dsimId: xmlOnly[0]!,
      deviceNonce: Buffer.alloc(32, 1),
      devicePublicKey: readDeviceCertificate(t, xmlOnly[0]!),
      operatorSigningKey: t.system.pki.operator.packageSigner.privateKey(),
      operatorChainPem: [t.system.pki.operator.packageSigner.pem, t.system.pki.operator.operatorCa.pem],
      ttlSeconds: 60,
    });
    const device = await t.device(xmlOnly[0]!);
    await rejectsWith(
      device.module.installPackage(jose, {
        deviceNonce: Buffer.alloc(32, 1),
        operatorRoots: [],
        checkSigner: async () => undefined,
      }),
      'SIMCRED_PACKAGE_FORMAT_UNSUPPORTED',
    );
    // Hostile XML reaches the module's checks and is refused; the module installs nothing.
    const genuine = (await t.subscriber(xmlOnly[0]!))!.package;
    const options = {
      deviceNonce: Buffer.alloc(32, 1),
      operatorRoots: [],
      checkSigner: async () => undefined,
    };
    await rejectsWith(
      device.module.installPackage(
        `<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>${genuine}`,
        options,
      ),
      'SIMCRED_XML_DTD_FORBIDDEN',
    );
    await rejectsWith(device.module.installPackage(genuine.slice(0, 200), options), 'SIMCRED_XML_MALFORMED');
    assert.equal(device.module.subscription, undefined);
  } finally {
    await t.close();
  }
});

function readDeviceCertificate(t: TestSystem, dsimId: string): string {
  return readFileSync(join(t.config.pkiDir, 'devices', dsimId, 'device.crt.pem'), 'utf8');
}

test('simcred demo --package-format xml: every device provisioned with an XML package and attached', async () => {
  const dir = tempDir('simcred-demo-xml-');
  try {
    const result = await runCli(
      [
        'demo',
        '--devices',
        '6',
        '--dir',
        dir.path,
        '--concurrency',
        '3',
        '--package-format',
        'xml',
        '--json',
      ],
      {
        env: {
          SIMCRED_PORTS__CREDENTIALING: '0',
          SIMCRED_PORTS__REGISTRATION: '[0,0]',
          SIMCRED_PORTS__PROVISIONING: '[0,0]',
          SIMCRED_PORTS__HSS: '0',
          SIMCRED_PORTS__OCSP: '0',
          SIMCRED_PORTS__PHLR: '0',
          SIMCRED_PORTS__PORTAL: '0',
        },
      },
    );
    assert.equal(result.code, 0, result.stderr);
    const summary = lastJsonLine<Record<string, number>>(result.stdout);
    assert.equal(summary.provisioned, 6);
    assert.equal(summary.attached, 6);
    const hss = await HssStore.open(roleDatabase(loadConfig({ overrides: { dataDir: dir.path } }), 'hss'));
    try {
      const dsimIds = readdirSync(join(dir.path, 'pki', 'devices'));
      assert.equal(dsimIds.length, 6);
      const formats: string[] = [];
      for (const dsimId of dsimIds) {
        const subscriber = (await hss.findByDsimId(dsimId))!;
        formats.push(subscriber.package.startsWith('<CredentialPackage') ? 'xml' : 'jose');
      }
      assert.deepEqual(formats, Array(6).fill('xml'));
    } finally {
      await hss.close();
    }
  } finally {
    dir.cleanup();
  }
});
