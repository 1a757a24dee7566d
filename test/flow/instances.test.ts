import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isSimcredError } from '../../src/errors/index.js';
import { startRole } from '../../src/system/roles.js';
import { startTestSystem } from './harness.js';

function rejectedCodes(results: PromiseSettledResult<unknown>[]): string[] {
  return results
    .filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    .map((r) => (isSimcredError(r.reason) ? r.reason.code : String(r.reason)));
}

function fulfilled<T>(results: PromiseSettledResult<T>[]): T[] {
  return results.filter((r): r is PromiseFulfilledResult<T> => r.status === 'fulfilled').map((r) => r.value);
}

/** DESIGN §4.2: exactly once under concurrent requests and several credentialing instances sharing one database. */
test('two credentialing instances on one database: one session, one referral, one IMSI', async () => {
  const t = await startTestSystem();
  const second = await startRole(t.config, 'credentialing', 1, t.logger, {
    ocsp: t.system.urls.ocsp,
    hss: t.system.urls.hss,
    provisioning: t.system.urls.provisioning,
  });
  try {
    const [dsimId] = await t.manufacture(1);
    await t.register([dsimId!]);
    const { agent } = await t.device(dsimId!);
    const viaFirst = await agent.lookupRegistration();
    const viaSecond = { ...viaFirst, credentialingUrl: second.url };

    // The same device opens a session at both instances at once: one wins.
    const opened = await Promise.allSettled([agent.openSession(viaFirst), agent.openSession(viaSecond)]);
    assert.deepEqual(rejectedCodes(opened), ['SIMCRED_SESSION_IN_PROGRESS']);
    const [session] = fulfilled(opened);

    // Its proof reaches both instances at once (a load balancer retry): one referral.
    const proofs = await Promise.allSettled([
      agent.proveSession(viaFirst, session!),
      agent.proveSession(viaSecond, session!),
    ]);
    assert.equal(fulfilled(proofs).length, 1, `proofs: ${rejectedCodes(proofs).join(', ')}`);
    assert.deepEqual(rejectedCodes(proofs), ['SIMCRED_SESSION_UNKNOWN']);
    const [referral] = fulfilled(proofs);

    // The ticket it got is the one the provisioning server holds; the receipt may reach either instance.
    const pkg = await agent.collectPackage(referral!);
    const installed = await agent.install(pkg, session!.deviceNonce);
    await agent.sendReceipt(viaSecond, session!.deviceNonce);
    const subscriber = (await t.subscriber(dsimId!))!;
    assert.equal(installed.imsi, subscriber.imsi, 'one DSIM_ID, one IMSI');
    for (const via of [viaFirst, viaSecond]) {
      await assert.rejects(agent.openSession(via), { code: 'SIMCRED_REGISTRATION_USED' });
    }
    assert.equal((await t.operator.deviceState(second.url, dsimId!)).state, 'completed');
  } finally {
    await second.close();
    await t.close();
  }
});
