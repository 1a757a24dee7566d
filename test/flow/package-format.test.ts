// The package format through the whole flow (docs/crypto.md §6b): the factory image says which formats
// a device opens, the deployment's credentialing.packageFormats says which it prefers, the credentialing
// server asks the HSS for the first the device takes, and the device opens it (or refuses a format it
// did not declare).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFleet } from '../../src/device/fleet.js';
import { manufactureDevices } from '../../src/pki/index.js';
import { choosePackageFormat } from '../../src/credentialing/credentialing-subsystem.js';
import { SimcredError } from '../../src/errors/index.js';
import { startTestSystem, type TestSystem } from './harness.js';

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

test('devices that open XML get XML packages (EC and RSA), the others JOSE; all attach', async () => {
  const t = await startTestSystem({ credentialing: { packageFormats: ['xml', 'jose'] } });
  try {
    const xmlOnly = [
      ...(await manufacture(t, 3, 'ec', ['xml'])),
      ...(await manufacture(t, 2, 'rsa', ['xml'])),
    ];
    const both = await manufacture(t, 2, 'ec', ['jose', 'xml']);
    const undeclared = await manufacture(t, 2, 'ec');
    const dsimIds = [...xmlOnly, ...both, ...undeclared];
    const summary = await t.register(dsimIds);
    assert.equal(summary.registered, dsimIds.length);
    const report = await runFleet({ pkiDir: t.config.pkiDir, dsimIds, concurrency: 4 });
    assert.deepEqual(
      report.outcomes.filter((o) => !o.ok).map((o) => o.error),
      [],
    );
    for (const dsimId of dsimIds) {
      const subscriber = (await t.subscriber(dsimId))!;
      assert.equal(subscriber.state, 'active', `${dsimId} did not attach`);
      const expected = undeclared.includes(dsimId) ? 'jose' : 'xml';
      assert.equal(subscriber.package.startsWith('<') ? 'xml' : 'jose', expected, dsimId);
    }
    // A module refuses, before any check, a package in a format its image does not declare.
    const device = await t.device(xmlOnly[0]!);
    const jose = (await t.subscriber(undeclared[0]!))!.package;
    await assert.rejects(
      device.module.installPackage(jose, {
        deviceNonce: Buffer.alloc(32),
        operatorRoots: [],
        checkSigner: async () => undefined,
      }),
      (e: unknown) => e instanceof SimcredError && e.code === 'SIMCRED_PACKAGE_FORMAT_UNSUPPORTED',
    );
  } finally {
    await t.close();
  }
});
