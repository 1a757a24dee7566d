import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceAgent } from '../../src/device/agent.js';
import { TrustedModule } from '../../src/device/trusted-module.js';
import { loadFactoryImage, manufactureDevices, registrationServersOf } from '../../src/pki/index.js';
import { RegistrationStore } from '../../src/registration/store.js';
import { roleDatabase } from '../../src/system/wiring.js';
import { rejectsWith } from '../helpers/assert.js';
import { startTestSystem, type TestSystem } from './harness.js';

/**
 * Several registration servers per device (issue 15): the factory image lists them in order, the
 * device tries them in turn and uses the first that knows it, a server that is down passes it on,
 * and the operator may register a device at more than one. Real roles on loopback (two
 * registration servers), plus an address where nothing listens.
 */
describe('several registration servers per device', () => {
  let t: TestSystem;
  /** A loopback port nothing listens on: a registration server that is down. */
  const down = 'https://127.0.0.1:9';

  before(async () => {
    t = await startTestSystem();
  });
  after(() => t.close());

  /** Devices listing `perDevice` of `servers`, each starting at its own round-robin place. */
  async function manufacture(count: number, servers: string[], perDevice: number) {
    const made = await manufactureDevices({
      dir: t.config.pkiDir,
      count,
      registrationServers: servers,
      registrationServersPerDevice: perDevice,
      servers: { phlr: t.system.urls.phlr, ocsp: t.system.urls.ocsp, hss: t.system.urls.hss },
      workers: 0,
    });
    return Promise.all(
      made.devices.map(async ({ dsimId }) => {
        const image = await loadFactoryImage(t.config.pkiDir, dsimId);
        return { dsimId, image, listed: registrationServersOf(image.image) };
      }),
    );
  }

  const agentOf = (image: Awaited<ReturnType<typeof loadFactoryImage>>) =>
    DeviceAgent.fromFactoryImage(image, {
      module: TrustedModule.fromFactoryImage(image, { persist: false }),
      client: t.deviceClient,
      maxAttempts: 1,
    });

  async function recordAt(server: string, dsimId: string) {
    const index = t.system.urls.registration.indexOf(server);
    const store = await RegistrationStore.open(roleDatabase(t.config, `registration-${index + 1}`));
    try {
      return await store.find(dsimId);
    } finally {
      await store.close();
    }
  }

  test('the first server does not know the device: the next one that does answers, and it onboards', async () => {
    const [device] = await manufacture(1, t.system.urls.registration, 2);
    assert.equal(device!.listed.length, 2);
    const [first, second] = device!.listed as [string, string];
    await t.operator.registerDevices(t.system.urls.credentialing, [
      { dsimId: device!.dsimId, registrationServer: second },
    ]);
    assert.equal(await recordAt(first, device!.dsimId), undefined, 'the first server was sent the record');
    const result = await agentOf(device!.image).onboard();
    assert.equal((await t.subscriber(device!.dsimId))?.imsi, result.subscription.imsi);
  });

  test('a server that is down passes the device on to the next', async () => {
    const devices = await manufacture(2, [down, t.system.urls.registration[0]!], 2);
    // Consecutive devices start at consecutive places: one of the two lists the dead one first.
    const device = devices.find((d) => d.listed[0] === down)!;
    await t.operator.registerDevices(t.system.urls.credentialing, [
      { dsimId: device.dsimId, registrationServer: t.system.urls.registration[0]! },
    ]);
    const result = await agentOf(device.image).onboard();
    assert.ok(result.subscription.imsi);
  });

  test('registered at several servers: each gets the record, and each retires it once used', async () => {
    const [device] = await manufacture(1, t.system.urls.registration, 2);
    const [first, second] = device!.listed as [string, string];
    await t.operator.registerDevices(t.system.urls.credentialing, [
      { dsimId: device!.dsimId, registrationServer: second, alsoAt: [first] },
    ]);
    const atFirst = await recordAt(first, device!.dsimId);
    const atSecond = await recordAt(second, device!.dsimId);
    assert.ok(atFirst && atSecond);
    assert.equal(atFirst.registrationNonce, atSecond.registrationNonce);
    await agentOf(device!.image).onboard();
    for (let i = 0; i < 100; i++) {
      const { audit } = await t.operator.deviceState(t.system.urls.credentialing, device!.dsimId);
      if (audit.filter((e) => e.event === 'retired').length === 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await recordAt(first, device!.dsimId))?.used, true);
    assert.equal((await recordAt(second, device!.dsimId))?.used, true);
  });

  test('no server knows the device: unknown; every server down: a retryable 503', async () => {
    const [unlisted] = await manufacture(1, t.system.urls.registration, 2);
    await rejectsWith(agentOf(unlisted!.image).lookupRegistration(), 'SIMCRED_REGISTRATION_UNKNOWN');
    const [stranded] = await manufacture(1, [down, 'https://127.0.0.1:1'], 2);
    await rejectsWith(agentOf(stranded!.image).lookupRegistration(), 'SIMCRED_DEPENDENCY_UNAVAILABLE');
  });
});
