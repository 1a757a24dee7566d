import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { HssStore, type ImsiAllocation, type Subscriber } from '../../src/hss/store.js';
import { tempDir } from '../helpers/cli.js';

/**
 * The HSS store's generations (issue 14, re-provisioning): one subscriber per DSIM_ID and
 * generation, releases bounded by a generation, and the old generations ended by the new one's
 * first attach. On a real SQLite file; the flow tests run the same through the roles.
 */
describe('HSS subscribers by generation', () => {
  const dir = tempDir('simcred-hss-');
  let store: HssStore;
  let next = 0;
  const allocation: ImsiAllocation = {
    capacity: 1000,
    imsiOf: (i) => `00101${String(i).padStart(10, '0')}`,
    reusableBefore: new Date(0),
  };
  const build =
    (dsimId: string) =>
    (imsi: string): Subscriber => ({
      imsi,
      dsimId,
      generation: 0,
      deviceKeyDigest: 'key',
      kSealed: 'k',
      opcSealed: 'opc',
      amf: '8000',
      sqn: 0,
      state: 'provisioned',
      suspended: false,
      packageId: '',
      deviceNonce: '',
      package: '',
    });
  const create = async (dsimId: string, generation: number) => {
    const result = await store.createSubscriber(dsimId, generation, allocation, build(dsimId));
    assert.notEqual(result, 'exhausted');
    return result === 'exhausted' ? undefined! : result;
  };
  const fresh = () => `DSIM${String(next++).padStart(16, '0')}`;

  before(async () => {
    store = await HssStore.open({ kind: 'sqlite', file: join(dir.path, 'hss.db') });
  });
  after(async () => {
    await store.close();
    dir.cleanup();
  });

  test('a new generation gets its own IMSI beside the old one; a retry of a generation gets the same', async () => {
    const dsimId = fresh();
    const first = await create(dsimId, 1);
    const second = await create(dsimId, 2);
    assert.notEqual(second.subscriber.imsi, first.subscriber.imsi);
    assert.deepEqual(
      (await create(dsimId, 2)).subscriber.imsi,
      second.subscriber.imsi,
      'a retry of generation 2 allocated another IMSI',
    );
    assert.equal((await store.findByDsimId(dsimId))?.generation, 2, 'the newest generation is found');
    assert.deepEqual(
      (await store.subscribersOf(dsimId)).map((s) => s.generation),
      [1, 2],
    );
  });

  test('a release bounded by a generation never ends a newer one (revoked, then registered again)', async () => {
    const dsimId = fresh();
    const old = await create(dsimId, 1);
    const renewed = await create(dsimId, 2);
    const released = await store.releaseSubscriber(dsimId, 'revoked', new Date(), 1);
    assert.deepEqual(released, { outcome: 'released', imsi: old.subscriber.imsi });
    assert.deepEqual(
      (await store.subscribersOf(dsimId)).map((s) => s.imsi),
      [renewed.subscriber.imsi],
    );
    assert.ok(await store.isReleased(old.subscriber.imsi));
    // Sent again (the outbox is at least once): nothing more to end.
    assert.equal((await store.releaseSubscriber(dsimId, 'revoked', new Date(), 1)).outcome, 'absent');
    // Unbounded (a delete): every generation ends.
    assert.equal((await store.releaseSubscriber(dsimId, 'deleted', new Date())).outcome, 'released');
    assert.deepEqual(await store.subscribersOf(dsimId), []);
  });

  test('two packages sealed for one device nonce at once: the first stored is kept, both get it', async () => {
    const dsimId = fresh();
    const { subscriber } = await create(dsimId, 1);
    const [a, b] = await Promise.all([
      store.replacePackage(subscriber.imsi, 'package-a', 'nonce-1', 'sealed-a'),
      store.replacePackage(subscriber.imsi, 'package-b', 'nonce-1', 'sealed-b'),
    ]);
    assert.deepEqual(a, b, 'both requests answer with one package');
    const stored = await store.findByDsimId(dsimId);
    assert.deepEqual([stored?.packageId, stored?.package], [a.packageId, a.package]);
    // A new session (another nonce) gets its own package.
    assert.deepEqual(await store.replacePackage(subscriber.imsi, 'package-c', 'nonce-2', 'sealed-c'), {
      packageId: 'package-c',
      package: 'sealed-c',
    });
  });

  test("the new generation's first attach ends the older ones in its transaction", async () => {
    const dsimId = fresh();
    const old = await create(dsimId, 1);
    assert.equal(await store.markActive(old.subscriber.imsi, new Date()), true);
    const renewed = await create(dsimId, 2);
    // Until the new one attaches, the old one still serves the device.
    assert.equal((await store.subscribersOf(dsimId)).length, 2);
    assert.equal(await store.markActive(renewed.subscriber.imsi, new Date()), true);
    assert.deepEqual(
      (await store.subscribersOf(dsimId)).map((s) => [s.generation, s.state]),
      [[2, 'active']],
    );
    const quarantined = (await store.releasedImsis()).find((r) => r.imsi === old.subscriber.imsi);
    assert.equal(quarantined?.reason, 'reprovisioned');
  });
});
