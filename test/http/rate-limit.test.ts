// The abuse limits' counters (src/storage/rate-limits.ts) and limiter (src/http/rate-limit.ts) on
// SQLite and on a real PostgreSQL: two limiters on one database stand for two instances of a role.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { RequestLimiter, slidingWindowWait, type LimitCheck } from '../../src/http/rate-limit.js';
import { openDatabase, type DatabaseConfig } from '../../src/storage/index.js';
import { RateLimitStore, createRateLimitTable } from '../../src/storage/rate-limits.js';
import { tempDir } from '../helpers/cli.js';
import { ManualClock } from '../helpers/clock.js';
import { startPostgres, type ThrowawayPostgres } from '../helpers/postgres.js';

describe('slidingWindowWait', () => {
  const windowMs = 60_000;
  it('lets a hit within the limit through', () => {
    assert.equal(slidingWindowWait({ windowIndex: 10, hits: 5, previousHits: 0 }, 5, windowMs, 600_000), 0);
  });
  it('refuses the hit over the limit until the next window', () => {
    // 6 hits in window 10 (600–660 s) with a limit of 5: one more fits once 1 − 4/6 of window 11 has passed.
    const wait = slidingWindowWait({ windowIndex: 10, hits: 6, previousHits: 0 }, 5, windowMs, 630_000);
    assert.equal(Math.round(wait), 30_000 + 20_000);
  });
  it('weighs the previous window by how much of it is still inside the sliding window', () => {
    // Half of window 11 gone: 10 previous hits count as 5; with 1 hit now, 6 > 5.
    const count = { windowIndex: 11, hits: 1, previousHits: 10 };
    assert.ok(slidingWindowWait(count, 5, windowMs, 660_000 + 30_000) > 0);
    // Once 1 − 3/10 of the window has passed, 10 × 0.3 + 1 + 1 = 5 fits.
    assert.equal(Math.round(slidingWindowWait(count, 5, windowMs, 660_000 + 30_000)), 12_000);
    assert.equal(slidingWindowWait(count, 6, windowMs, 660_000 + 30_000), 0);
  });
});

const limit = { requests: 5, windowSeconds: 60 };
const check = (subject: string): LimitCheck => ({
  kind: 'identity',
  key: `identity|phlr.challenge|${subject}`,
  limit,
  subject: `PIMSI ${subject}`,
});

async function openCounters(database: DatabaseConfig): Promise<{ db: Kysely<never>; store: RateLimitStore }> {
  const db = await openDatabase<never>(database, { '0001_rate_limits': { up: createRateLimitTable } });
  return { db, store: new RateLimitStore(db) };
}

/** The same behaviour on either dialect. */
function limiterContract(name: string, database: () => DatabaseConfig): void {
  describe(`RequestLimiter on ${name}`, () => {
    let a: Awaited<ReturnType<typeof openCounters>>;
    let b: Awaited<ReturnType<typeof openCounters>>;
    before(async () => {
      const config = database();
      a = await openCounters(config);
      b = await openCounters(config); // a second instance of the role, on the same database
    });
    after(async () => {
      await a?.db.destroy();
      await b?.db.destroy();
    });

    it('two instances count the same requests: the sixth is refused wherever it arrives', async () => {
      const clock = new ManualClock(new Date('2026-01-01T00:00:10Z'));
      const one = new RequestLimiter({ store: a.store, denyCacheEntries: 100, clock: clock.now });
      const two = new RequestLimiter({ store: b.store, denyCacheEntries: 100, clock: clock.now });
      for (let i = 0; i < 5; i++) {
        assert.equal(await (i % 2 ? two : one).check([check('shared')]), undefined, `request ${i + 1}`);
      }
      const refused = await two.check([check('shared')]);
      assert.equal(refused?.check.kind, 'identity');
      // 6 hits at 10 s into the window: one more fits 1 − 4/6 into the next window, 70 s later.
      assert.equal(refused?.retryAfterSeconds, 70);
      // The first instance has not seen a refusal: it learns it from the database (a seventh hit).
      assert.equal((await one.check([check('shared')]))?.check.kind, 'identity');
    });

    it('requests raced on both instances: exactly the limit gets through', async () => {
      const clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
      const limiters = [a, b].map(
        (s) => new RequestLimiter({ store: s.store, denyCacheEntries: 100, clock: clock.now }),
      );
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) => limiters[i % 2]!.check([check('raced')])),
      );
      assert.equal(results.filter((r) => r === undefined).length, limit.requests);
      const row = (await a.store.list()).find((r) => r.key === check('raced').key);
      assert.equal(row?.hits, 40, 'no hit lost');
    });

    it('a refused key is refused from the deny cache without a database write', async () => {
      const clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
      const limiter = new RequestLimiter({ store: a.store, denyCacheEntries: 100, clock: clock.now });
      for (let i = 0; i < 6; i++) await limiter.check([check('cached')]);
      const before = (await a.store.list()).find((r) => r.key === check('cached').key)!.hits;
      for (let i = 0; i < 100; i++) assert.ok(await limiter.check([check('cached')]));
      const afterFlood = (await a.store.list()).find((r) => r.key === check('cached').key)!.hits;
      assert.equal(afterFlood, before, 'the flood did not reach the database');
      // Once Retry-After has passed, the key is counted again and let through.
      clock.advance((await limiter.check([check('cached')]))!.retryAfterSeconds);
      assert.equal(await limiter.check([check('cached')]), undefined);
    });

    it('checks of one request are one statement; the address refusal is named first', async () => {
      const clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
      const limiter = new RequestLimiter({ store: a.store, denyCacheEntries: 100, clock: clock.now });
      const address: LimitCheck = {
        kind: 'address',
        key: 'address|phlr.challenge|192.0.2.1',
        limit: { requests: 1, windowSeconds: 10 },
        subject: 'client address 192.0.2.1',
      };
      assert.equal(await limiter.check([address, check('both')]), undefined);
      const refused = await limiter.check([address, check('both')]);
      assert.equal(refused?.check.kind, 'address');
    });

    it('counters whose windows are over are pruned', async () => {
      const now = Date.parse('2026-01-01T00:00:00Z');
      await a.store.hit([{ key: 'identity|x|old', windowMs: 1000 }], now);
      assert.ok((await a.store.list()).some((r) => r.key === 'identity|x|old'));
      await a.store.prune(now + 3000);
      assert.ok(!(await a.store.list()).some((r) => r.key === 'identity|x|old'));
    });
  });
}

const sqlite = tempDir('simcred-rate-limit-');
after(() => sqlite.cleanup());
limiterContract('SQLite', () => ({ kind: 'sqlite', file: join(sqlite.path, 'counters.db') }));

let postgres: ThrowawayPostgres | undefined;
before(async () => {
  postgres = await startPostgres();
});
after(() => postgres?.stop());
limiterContract('PostgreSQL', () => ({ kind: 'postgres', url: postgres!.url, schema: 'phlr' }));
