import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { benchWorkspace, type BenchWorkspace } from '../../src/bench/cluster.js';
import type { DemoSummary } from '../../src/system/demo.js';
import { lastJsonLine, runCli, startUp } from '../helpers/cli.js';
import { startPostgres, type ThrowawayPostgres } from '../helpers/postgres.js';
import { ONBOARDING_STATES, TestReceiver, statesByDevice } from '../helpers/webhook-receiver.js';
import { WebhookReceiver } from '../../src/notify/receiver.js';

// Every role's store on a real PostgreSQL server (each role its own schema on one database): the
// whole flow in one process, then through `simcred up --workers 2`, the deployment PostgreSQL is for.

describe('the flow on PostgreSQL', { concurrency: false }, () => {
  let postgres: ThrowawayPostgres;
  let ws: BenchWorkspace;
  let env: Record<string, string>;
  let sql: pg.Client;

  before(async () => {
    postgres = await startPostgres();
    ws = await benchWorkspace();
    env = { ...ws.env, SIMCRED_DATABASE__KIND: 'postgres', SIMCRED_DATABASE__URL: postgres.url };
    sql = new pg.Client({ connectionString: postgres.url });
    await sql.connect();
  });

  after(async () => {
    await sql?.end();
    ws?.cleanup();
    postgres?.stop();
  });

  const count = async (query: string) => Number((await sql.query<{ n: string }>(query)).rows[0]!.n);

  it('simcred demo: every role in one process, its rows in its own schema', async () => {
    const r = await runCli(['demo', '--devices', '6', '--dir', ws.dataDir, '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const summary = lastJsonLine<DemoSummary>(r.stdout);
    assert.equal(summary.system, 'in-process');
    assert.equal(summary.provisioned, 6);
    assert.equal(summary.distinctImsis, 6);
    assert.equal(summary.attached, 6);
    assert.equal(await count(`select count(*) as n from hss.subscribers where state = 'active'`), 6);
    assert.equal(
      await count(`select count(*) as n from credentialing.registrations where state = 'completed'`),
      6,
    );
    // Used registrations are retired at their registration servers (nonce erased, kept as used;
    // through the outbox, which the credentialing server drains at the latest when it stops): each
    // record still holding its nonce is still owed.
    const liveAtRegistrationServers =
      (await count('select count(*) as n from registration_1.registrations where used = 0')) +
      (await count('select count(*) as n from registration_2.registrations where used = 0'));
    const owed = await count(`select count(*) as n from credentialing.peer_actions where kind = 'retire'`);
    assert.equal(liveAtRegistrationServers, owed);
    assert.equal(
      owed + (await count(`select count(*) as n from credentialing.audit_events where event = 'retired'`)),
      6,
    );
    // The fleet came in through the portal, as one contract of the demo owner, kept in its schema.
    assert.equal(await count('select count(*) as n from portal.contracts'), 1);
    assert.equal(await count(`select count(*) as n from portal.devices where state <> 'pending'`), 6);
    // AKA state of both the PHLR (access) and the HSS (attach), SQN counters as numbers.
    assert.equal(await count('select count(*) as n from phlr.aka_state where seq_he >= 1'), 6);
    assert.equal(await count('select count(*) as n from hss.aka_state where seq_he >= 1'), 6);
  });

  it('simcred up --workers 2 on the same database: a second fleet through the pool, notified', async () => {
    const pool = await startUp(['--dir', ws.dataDir, '--workers', '2'], env);
    // Its notifications to a receiver: the pool's two processes share the outbox on PostgreSQL.
    const receiver = new TestReceiver();
    receiver.receiver = new WebhookReceiver({ secret: 'a secret for postgres' });
    await receiver.up();
    try {
      const r = await runCli(
        [
          'demo',
          '--devices',
          '8',
          '--dir',
          ws.dataDir,
          '--json',
          '--notify',
          receiver.url,
          '--notify-secret',
          'a secret for postgres',
        ],
        { env },
      );
      assert.equal(r.code, 0, r.stderr);
      const summary = lastJsonLine<DemoSummary>(r.stdout);
      assert.equal(summary.system, 'running');
      assert.equal(summary.provisioned, 8);
      assert.equal(summary.distinctImsis, 8);
      assert.equal(summary.attached, 8);
      // Both fleets, IMSIs never shared although two processes allocate them.
      assert.equal(await count('select count(distinct imsi) as n from hss.subscribers'), 14);
      assert.equal(await count(`select count(*) as n from hss.subscribers where state = 'active'`), 14);
      // Every state change of the 8 devices, registered … attached, each in order, verified.
      assert.equal(summary.notify!.delivered, 48);
      const states = statesByDevice(receiver.arrivals);
      assert.equal(states.size, 8);
      for (const seen of states.values()) assert.deepEqual(seen, ONBOARDING_STATES);
      assert.deepEqual(receiver.refusals, []);
      assert.equal(
        await count(`select count(*) as n from credentialing.webhook_deliveries where state = 'delivered'`),
        48,
      );
    } finally {
      await receiver.down();
      process.kill(pool.child.pid!, 'SIGTERM');
      assert.equal(await pool.exited, 0);
    }
  });
});
