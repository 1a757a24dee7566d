// The webhook outbox's own rules (src/credentialing/order-store.ts), on a real SQLite store: what
// several credentialing instances rely on — one claim at a time, a crashed sender's lease lapsing,
// a device's later event held back until its earlier one is acknowledged, a page expanded once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { CredentialingStore } from '../../src/credentialing/store.js';
import { tempDir } from '../helpers/cli.js';

test('the outbox: a page made once, one claim at a time, leases lapse, order per device held', async () => {
  const dir = tempDir('simcred-outbox-');
  const file = join(dir.path, 'credentialing.db');
  // Two handles on one database file: two credentialing instances.
  const a = await CredentialingStore.open({ kind: 'sqlite', file });
  const b = await CredentialingStore.open({ kind: 'sqlite', file });
  try {
    const t0 = new Date('2026-12-01T12:00:00Z');
    const hook = await a.webhooks.add(
      {
        id: 'whk_AAAAAAAAAAAAAAAAAAAAAA',
        url: 'https://ops.example/h',
        secret: 's'.repeat(16),
        orderId: null,
        source: 'api',
      },
      t0,
    );
    assert.equal(hook.position, 0);
    for (const [dsimId, event] of [
      ['DSIM000000000000000A', 'registered'],
      ['DSIM000000000000000B', 'registered'],
      ['DSIM000000000000000A', 'authenticated'],
    ] as const)
      await a.audit(dsimId, event, null, t0);
    const events = await a.auditEventsAfter(0, 10);
    const deliveries = events.map((e) => ({ eventId: e.id, dsimId: e.dsimId, body: `{"eventId":${e.id}}` }));
    const last = events.at(-1)!.id;

    // Both instances expand the same page from the same cursor: one wins, the other writes nothing.
    assert.equal(await a.webhooks.expand(hook.id, 0, last, deliveries, t0), true);
    assert.equal(await b.webhooks.expand(hook.id, 0, last, deliveries, t0), false);
    assert.equal((await a.webhooks.find(hook.id))!.position, last);

    // A's claim takes the head of each device: A's registered and B's registered, not A's authenticated.
    const claimedByA = await a.webhooks.claim(t0, 30_000, 10);
    assert.deepEqual(
      claimedByA.map((d) => [d.dsimId, d.eventId]),
      [
        ['DSIM000000000000000A', events[0]!.id],
        ['DSIM000000000000000B', events[1]!.id],
      ],
    );
    assert.ok(claimedByA.every((d) => d.attempts === 1));
    // The other instance finds nothing to take meanwhile: leased, or held behind its device's head.
    assert.deepEqual(await b.webhooks.claim(t0, 30_000, 10), []);
    assert.equal(await b.webhooks.claimNext(hook.id, 'DSIM000000000000000A', t0, 30_000), undefined);

    // A acknowledges A's registered, then dies before B's registered is answered.
    await a.webhooks.delivered([claimedByA[0]!.id], t0);
    const next = await a.webhooks.claimNext(hook.id, 'DSIM000000000000000A', t0, 30_000);
    assert.equal(next?.eventId, events[2]!.id, "the device's next event, claimed at once");
    // Once the lease lapses, the other instance takes B's registered (and A's authenticated) again.
    const later = new Date(t0.getTime() + 30_001);
    const retaken = await b.webhooks.claim(later, 30_000, 10);
    assert.deepEqual(
      retaken.map((d) => [d.dsimId, d.eventId, d.attempts]),
      [
        ['DSIM000000000000000B', events[1]!.id, 2],
        ['DSIM000000000000000A', events[2]!.id, 2],
      ].sort((x, y) => Number(x[1]) - Number(y[1])),
    );

    // A failure with a next attempt, then dead: listed as failed with its error.
    await b.webhooks.failed(retaken[0]!.id, 'HTTP 503', { dueAt: new Date(later.getTime() + 1000) });
    await b.webhooks.failed(retaken[1]!.id, 'HTTP 500', 'dead');
    const failed = await b.webhooks.deliveries({ failed: true, limit: 10 });
    assert.deepEqual(failed.map((d) => [d.state, d.lastError]).sort(), [
      ['dead', 'HTTP 500'],
      ['pending', 'HTTP 503'],
    ]);
    // Removing the webhook drops its deliveries.
    assert.equal(await a.webhooks.remove(hook.id), true);
    assert.deepEqual(await a.webhooks.deliveries({ failed: false, limit: 10 }), []);
    assert.equal(await a.webhooks.remove(hook.id), false);
  } finally {
    await a.close();
    await b.close();
    dir.cleanup();
  }
});
