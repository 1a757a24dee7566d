// DESIGN §4.6 with the database as the dependency: PostgreSQL restarted under a running fleet (every
// role's store on it). While it is down every role answers 503 + Retry-After with
// SIMCRED_DEPENDENCY_UNAVAILABLE, never a 500, and keeps running; once it is back every device
// completes, each with one IMSI, and the outboxes drain.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { runFleet, type FleetReport } from '../../src/device/fleet.js';
import { PeerClient, clientTls, loadTlsIdentity } from '../../src/http/index.js';
import { startPostgres, type ThrowawayPostgres } from '../helpers/postgres.js';
import { untilWithin as until } from '../helpers/webhook-receiver.js';
import { startTestSystem, type TestSystem } from './harness.js';

const DEVICES = 24;

describe('PostgreSQL restarted under a running fleet', { concurrency: false }, () => {
  let postgres: ThrowawayPostgres;
  let t: TestSystem;
  let sql: pg.Client | undefined;

  before(async () => {
    postgres = await startPostgres();
    t = await startTestSystem({ database: { kind: 'postgres', url: postgres.url } });
  });
  after(async () => {
    await sql?.end();
    await t?.close();
    postgres?.stop();
  });

  it('503 + Retry-After while it is down, every device completes once it is back, nothing lost', async () => {
    const devices = await t.manufacture(DEVICES);
    await t.register(devices);
    let done = 0;
    const fleet: Promise<FleetReport> = runFleet({
      pkiDir: t.config.pkiDir,
      dsimIds: devices,
      concurrency: 6,
      // The devices wait out the outage on Retry-After (capped so the test does not idle).
      maxAttempts: 200,
      maxRetryDelayMs: 300,
      onDeviceDone: () => void done++,
    });
    await until('a few devices done', () => done >= 4);

    postgres.halt();
    // An operator's request and a device's request reach roles whose database is gone.
    const operator = new PeerClient({
      tls: clientTls(loadTlsIdentity(t.config.pkiDir, 'portal')),
      connections: 1,
    });
    const device = new PeerClient({ tls: { ca: [t.system.pki.operator.root.pem] }, connections: 1 });
    try {
      const answers = [
        await operator.send(
          `${t.system.urls.credentialing}/v1/operator/devices/${devices.at(-1)!}`,
          'GET',
          undefined,
          '',
        ),
        await device.send(
          `${t.system.urls.credentialing}/v1/sessions`,
          'POST',
          JSON.stringify({
            dsimId: devices.at(-1)!,
            deviceNonce: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
            sessionNonce: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
          }),
          'application/json',
        ),
      ];
      for (const answer of answers) {
        assert.equal(answer.statusCode, 503, answer.text);
        assert.ok(Number(answer.headers['retry-after']) > 0, 'Retry-After');
        assert.equal((JSON.parse(answer.text) as { code: string }).code, 'SIMCRED_DEPENDENCY_UNAVAILABLE');
      }
    } finally {
      await operator.close();
      await device.close();
    }
    const doneWhileDown = done;
    postgres.resume();

    const report = await fleet;
    const failed = report.outcomes.filter((o) => !o.ok);
    assert.deepEqual(
      failed.map((o) => `${o.dsimId} ${o.error?.code} ${o.error?.message}`),
      [],
    );
    assert.ok(doneWhileDown < DEVICES, 'the outage met devices still onboarding');
    assert.ok(
      report.outcomes.some((o) => o.retries > 0),
      'some device met the outage and retried',
    );
    const imsis = new Set(report.outcomes.map((o) => o.imsi));
    assert.equal(imsis.size, DEVICES, 'one IMSI per device');

    sql = new pg.Client({ connectionString: postgres.url });
    await sql.connect();
    const count = async (query: string) => Number((await sql!.query<{ n: string }>(query)).rows[0]!.n);
    assert.equal(await count('select count(*) as n from hss.subscribers'), DEVICES);
    assert.equal(await count('select count(distinct imsi) as n from hss.subscribers'), DEVICES);
    assert.equal(await count(`select count(*) as n from hss.subscribers where state = 'active'`), DEVICES);
    // Nothing left half-done: every registration completed (or attached), the background loops
    // (peer-action sender, attach follower) resumed and drained what they owed.
    await until(
      'every device completed and attached at the credentialing server',
      async () =>
        (await count(`select count(*) as n from credentialing.registrations where state <> 'completed'`)) ===
          0 &&
        (await count(`select count(*) as n from credentialing.audit_events where event = 'attached'`)) ===
          DEVICES,
    );
    await until(
      'the peer actions drained',
      async () => (await count('select count(*) as n from credentialing.peer_actions')) === 0,
    );
    assert.doesNotMatch(t.logs(), /"msg":"request failed"/, 'no request failed as a 500');
  });
});
