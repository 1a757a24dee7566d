import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isSimcredError } from '../../src/errors/index.js';
import { startRole } from '../../src/system/roles.js';
import { startTestSystem, type TestSystem } from './harness.js';

/** DESIGN §4.6: a dependency down gives a retryable 503, leaves nothing half-done, and the flow completes once it is back. */
describe('dependencies down', () => {
  let t: TestSystem;
  let devices: string[];
  /** Roles restarted by a test stay up for the next ones; closed with the system. */
  const restarted: { close(): Promise<void> }[] = [];
  before(async () => {
    t = await startTestSystem();
    devices = await t.manufacture(2);
    await t.register(devices);
  });
  after(async () => {
    for (const server of restarted) await server.close();
    await t.close();
  });

  function isRetryable(err: unknown): boolean {
    assert.ok(isSimcredError(err), String(err));
    assert.equal(err.status, 503);
    assert.ok((err.retryAfter ?? 0) > 0, 'Retry-After');
    return true;
  }

  test('HSS down: 503, no IMSI, then success once it is back', async () => {
    const dsimId = devices[0]!;
    const { agent } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const port = Number(new URL(t.system.urls.hss).port);
    await t.system.servers.hss.close();
    const session = await agent.openSession(registration);
    await assert.rejects(agent.proveSession(registration, session), isRetryable);
    const state = await t.operator.deviceState(t.system.urls.credentialing, dsimId);
    assert.equal(state.state, 'registered', 'the session was undone');
    restarted.push(
      await startRole({ ...t.config, ports: { ...t.config.ports, hss: port } }, 'hss', 1, t.logger),
    );
    const result = await agent.onboard();
    assert.equal(result.subscription.imsi, (await t.subscriber(dsimId))!.imsi);
  });

  test('provisioning server down: 503 at delivery, then a new session succeeds with the same IMSI', async () => {
    const dsimId = devices[1]!;
    const { agent } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const session = await agent.openSession(registration);
    const referral = await agent.proveSession(registration, session);
    const imsi = (await t.subscriber(dsimId))!.imsi;
    const index = t.system.urls.provisioning.indexOf(referral.provisioningUrl);
    const port = Number(new URL(referral.provisioningUrl).port);
    await t.system.servers.provisioning[index]!.close();
    await assert.rejects(agent.collectPackage(referral), isRetryable);
    restarted.push(
      await startRole(
        {
          ...t.config,
          ports: {
            ...t.config.ports,
            provisioning: t.config.ports.provisioning.map((p, i) => (i === index ? port : p)),
          },
        },
        'provisioning',
        index + 1,
        t.logger,
      ),
    );
    // The device starts over and gets a fresh referral.
    const result = await agent.onboard();
    assert.equal(result.subscription.imsi, imsi, 'one DSIM_ID, one IMSI');
    assert.equal((await t.operator.deviceState(t.system.urls.credentialing, dsimId)).state, 'completed');
  });
});
