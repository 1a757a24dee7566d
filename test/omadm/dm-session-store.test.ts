// The provisioning store's OMA DM sessions (migration 0002_dm_sessions), one contract on SQLite and on
// PostgreSQL: a session is taken once, an expired one is not found, and expired rows are dropped.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ProvisioningStore } from '../../src/provisioning/store.js';
import type { DatabaseConfig } from '../../src/storage/index.js';
import { tempDir } from '../helpers/cli.js';
import { startPostgres, type ThrowawayPostgres } from '../helpers/postgres.js';

function contract(name: string, database: () => DatabaseConfig) {
  describe(`DM sessions on ${name}`, () => {
    it('a session is taken once, before it expires; expired rows are dropped when a session opens', async () => {
      const store = await ProvisioningStore.open(database());
      try {
        const now = new Date('2026-01-01T00:00:00Z');
        const session = (token: string, ttlMs: number) => ({
          tokenDigest: token,
          dsimId: 'DSIM0000000000000001',
          sessionId: '1A2B',
          replaceCmdId: '4',
          expiresAt: new Date(now.getTime() + ttlMs),
        });
        await store.saveDmSession(session('live', 60_000), now);
        await store.saveDmSession(session('stale', 1_000), now);
        const taken = await store.takeDmSession('live', now);
        assert.deepEqual(taken, session('live', 60_000));
        assert.equal(await store.takeDmSession('live', now), undefined, 'taken once');
        const later = new Date(now.getTime() + 2_000);
        assert.equal(await store.takeDmSession('stale', later), undefined, 'expired');
        await store.saveDmSession(session('other', 1_000), now);
        await store.saveDmSession(session('next', 60_000), later);
        assert.equal(await store.takeDmSession('other', now), undefined, 'dropped as expired');
        assert.ok(await store.takeDmSession('next', later));
      } finally {
        await store.close();
      }
    });
  });
}

const dir = tempDir('simcred-dm-store-');
after(() => dir.cleanup());
contract('SQLite', () => ({ kind: 'sqlite', file: join(dir.path, 'provisioning.db') }));

let postgres: ThrowawayPostgres;
before(async () => {
  postgres = await startPostgres();
});
after(() => postgres?.stop());
contract('PostgreSQL', () => ({ kind: 'postgres', url: postgres.url, schema: 'provisioning' }));
