import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSecret, parseKek } from '../../src/crypto/index.js';
import { runFleet } from '../../src/device/fleet.js';
import { HssStore } from '../../src/hss/store.js';
import { CredentialingStore } from '../../src/credentialing/store.js';
import { loadFactoryImage } from '../../src/pki/index.js';
import { roleDatabase } from '../../src/system/start.js';
import { startTestSystem } from './harness.js';

test('a fleet goes through steps 0b–12 and attaches; secrets never reach a log line', async () => {
  const t = await startTestSystem();
  try {
    const dsimIds = [...(await t.manufacture(30)), ...(await t.manufacture(6, 'rsa'))];
    const summary = await t.register(dsimIds);
    assert.equal(summary.registered, dsimIds.length);
    assert.deepEqual(summary.rejected, []);

    const report = await runFleet({
      pkiDir: t.config.pkiDir,
      dsimIds,
      concurrency: 8,
    });
    assert.deepEqual(
      report.outcomes.filter((o) => !o.ok).map((f) => f.error),
      [],
    );
    assert.equal(new Set(report.outcomes.map((o) => o.imsi)).size, dsimIds.length, 'distinct IMSIs');

    // What the HSS holds agrees with what the modules hold, one subscriber per device.
    const hss = await HssStore.open(roleDatabase(t.config, 'hss'));
    const credentialing = await CredentialingStore.open(roleDatabase(t.config, 'credentialing'));
    const secrets: string[] = [];
    try {
      assert.equal(await hss.countSubscribers(), dsimIds.length);
      assert.equal(await hss.countActiveFor(dsimIds), dsimIds.length, 'every device attached');
      const { kek } = JSON.parse(readFileSync(join(t.config.dataDir, 'hss', 'secrets.json'), 'utf8')) as {
        kek: string;
      };
      for (const outcome of report.outcomes) {
        const subscriber = (await hss.findByDsimId(outcome.dsimId))!;
        assert.equal(subscriber.imsi, outcome.imsi);
        // Step 12's proof: the device attached with its downloaded credentials.
        assert.equal(subscriber.state, 'active', `${outcome.dsimId} did not attach`);
        // K and OPc are sealed at rest, never stored in the clear.
        assert.doesNotMatch(subscriber.kSealed, /^[0-9a-f]{32}$/);
        const k = openSecret(subscriber.kSealed, { kek: parseKek(kek), context: `k:${subscriber.imsi}` });
        const opc = openSecret(subscriber.opcSealed, {
          kek: parseKek(kek),
          context: `opc:${subscriber.imsi}`,
        });
        secrets.push(k.toString('hex'), opc.toString('hex'), k.toString('base64'), opc.toString('base64'));
        const registration = (await credentialing.find(outcome.dsimId))!;
        assert.equal(registration.state, 'completed');
        secrets.push(registration.registrationNonce);
        const image = await loadFactoryImage(t.config.pkiDir, outcome.dsimId);
        const pkcs8 = image.privateKey.export({ format: 'der', type: 'pkcs8' });
        secrets.push(
          pkcs8.toString('base64').slice(40, 100),
          image.image.preliminary.kPimsi,
          image.image.preliminary.opcPimsi,
        );
      }
    } finally {
      await hss.close();
      await credentialing.close();
    }
    const logs = t.logs();
    assert.ok(logs.split('\n').length > 10, 'the roles logged at trace level');
    for (const secret of secrets) assert.ok(!logs.includes(secret), 'a secret appeared in the logs');
  } finally {
    await t.close();
  }
});
