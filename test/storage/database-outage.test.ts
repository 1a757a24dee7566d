// The one place that tells a database outage from a bug (isDatabaseOutage, src/storage/database.ts)
// fed with what node-postgres really throws: a session the server ends (57P01, as on a restart), a
// transaction whose connection died under it, a server that is gone (refused, or a pooled connection cut). Each becomes a
// 503 SIMCRED_DEPENDENCY_UNAVAILABLE with Retry-After; a unique violation stays a bug (500). The
// pool then recovers by itself once the server is back.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { toSimcredError } from '../../src/http/server.js';
import { isDatabaseOutage, openDatabase } from '../../src/storage/index.js';
import { startPostgres, type ThrowawayPostgres } from '../helpers/postgres.js';

interface Tables {
  things: { id: string };
}

const migrations = {
  '0001_things': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('things')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .execute();
    },
  },
};

async function failure(work: () => Promise<unknown>): Promise<unknown> {
  try {
    await work();
  } catch (err) {
    return err;
  }
  assert.fail('expected a failure');
}

function assertOutage(err: unknown): void {
  assert.ok(isDatabaseOutage(err), `an outage: ${String(err)} (${(err as { code?: string }).code})`);
  const answer = toSimcredError(err);
  assert.equal(answer.code, 'SIMCRED_DEPENDENCY_UNAVAILABLE');
  assert.equal(answer.status, 503);
  assert.ok((answer.retryAfter ?? 0) > 0);
}

describe('PostgreSQL errors as the HTTP answer sees them', { concurrency: false }, () => {
  let postgres: ThrowawayPostgres;
  let db: Kysely<Tables>;
  let admin: pg.Client;

  before(async () => {
    postgres = await startPostgres();
    db = await openDatabase<Tables>({ kind: 'postgres', url: postgres.url, schema: 'outage' }, migrations);
    admin = new pg.Client({ connectionString: postgres.url });
    // The test's own connection dies with the server too (its end is not under test).
    admin.on('error', () => undefined);
    await admin.connect();
  });
  after(async () => {
    await admin?.end().catch(() => undefined);
    await db?.destroy();
    postgres?.stop();
  });

  const pidOf = async (trx: Kysely<Tables>) =>
    Number((await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)).rows[0]!.pid);

  it('a unique violation is a bug, not an outage', async () => {
    await db.insertInto('things').values({ id: 'a' }).execute();
    const err = await failure(() => db.insertInto('things').values({ id: 'a' }).execute());
    assert.equal((err as { code?: string }).code, '23505');
    assert.equal(isDatabaseOutage(err), false);
    assert.equal(toSimcredError(err).code, 'SIMCRED_INTERNAL');
  });

  it('a session the server ends in a transaction (57P01 and what follows) is an outage; the pool recovers', async () => {
    const err = await failure(() =>
      db.transaction().execute(async (trx) => {
        const pid = await pidOf(trx);
        // The server ends this session between two statements, as pg_ctl stop -m fast does to all.
        await admin.query('select pg_terminate_backend($1)', [pid]);
        await new Promise((r) => setTimeout(r, 200));
        await trx.insertInto('things').values({ id: 'b' }).execute();
      }),
    );
    assertOutage(err);
    // Nothing of it was committed, and the next query gets a fresh connection.
    const rows = await db.selectFrom('things').select('id').execute();
    assert.deepEqual(
      rows.map((r) => r.id),
      ['a'],
    );
  });

  it('a server that is gone (a restart under way: refused, or a pooled connection cut) is an outage; back once it is', async () => {
    postgres.halt();
    try {
      assertOutage(await failure(() => db.selectFrom('things').select('id').execute()));
    } finally {
      postgres.resume();
    }
    // A pooled connection from before the restart may still fail one query (as a 503); the pool
    // drops it and the next query connects afresh.
    for (let attempt = 1; ; attempt++) {
      try {
        assert.equal((await db.selectFrom('things').select('id').execute()).length, 1);
        break;
      } catch (err) {
        assertOutage(err);
        assert.ok(attempt < 10, 'the pool recovers');
      }
    }
  });
});
