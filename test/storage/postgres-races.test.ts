// Every store operation that is idempotent or conditional, raced on a real PostgreSQL: two store
// instances opened on the same schema stand for two worker processes (simcred up --workers 2) or
// two hosts. SQLite's BEGIN IMMEDIATE serialises writers; PostgreSQL's READ COMMITTED does not, so
// each operation must decide its race in the database itself (docs/storage.md).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DatabaseConfig } from '../../src/storage/index.js';
import { HssStore, type Subscriber } from '../../src/hss/store.js';
import { CredentialingStore } from '../../src/credentialing/store.js';
import { RegistrationStore } from '../../src/registration/store.js';
import { PhlrStore } from '../../src/phlr/store.js';
import { ProvisioningStore } from '../../src/provisioning/store.js';
import { openPortalStore } from '../../src/portal/store.js';
import { Lease } from '../../src/portal/leases.js';
import { isSimcredError } from '../../src/errors/index.js';
import { startPostgres, type ThrowawayPostgres } from '../helpers/postgres.js';

/** How many racers each operation gets, spread over the store instances. */
const RACERS = 16;

function settled<T>(results: PromiseSettledResult<T>[]): { values: T[]; errors: unknown[] } {
  return {
    values: results
      .filter((r): r is PromiseFulfilledResult<T> => r.status === 'fulfilled')
      .map((r) => r.value),
    errors: results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason),
  };
}

/** Runs `racers` calls at once, round-robin over the instances; every call must succeed. */
async function race<S, T>(
  instances: S[],
  racers: number,
  call: (s: S, i: number) => Promise<T>,
): Promise<T[]> {
  const { values, errors } = settled(
    await Promise.allSettled(
      Array.from({ length: racers }, (_, i) => call(instances[i % instances.length]!, i)),
    ),
  );
  assert.deepEqual(errors.map(String), [], 'no racer may fail');
  return values;
}

describe('store operations raced on PostgreSQL', { concurrency: false }, () => {
  let postgres: ThrowawayPostgres;
  let schemaSeq = 0;
  /** A fresh schema per test: its stores start empty. */
  const database = (): DatabaseConfig => ({
    kind: 'postgres',
    url: postgres.url,
    schema: `race_${++schemaSeq}`,
  });

  before(async () => {
    postgres = await startPostgres();
  });
  after(() => postgres?.stop());

  const subscriberFor =
    (dsimId: string, generation: number) =>
    (imsi: string): Subscriber => ({
      imsi,
      dsimId,
      generation,
      deviceKeyDigest: 'digest',
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

  it('HSS createSubscriber: one subscriber and one IMSI per (DSIM_ID, generation), the others get it', async () => {
    const db = database();
    const stores = [await HssStore.open(db), await HssStore.open(db)];
    try {
      const devices = ['DSIM00000000000000R1', 'DSIM00000000000000R2', 'DSIM00000000000000R3'];
      const results = await race(stores, RACERS * devices.length, (s, i) => {
        const dsimId = devices[i % devices.length]!;
        return s.createSubscriber(dsimId, 1, allocation, subscriberFor(dsimId, 1));
      });
      for (const dsimId of devices) {
        const mine = results.filter((r) => r !== 'exhausted' && r.subscriber.dsimId === dsimId);
        assert.equal(mine.filter((r) => r !== 'exhausted' && r.created).length, 1, `${dsimId}: created once`);
        assert.equal(new Set(mine.map((r) => (r === 'exhausted' ? '' : r.subscriber.imsi))).size, 1);
      }
      assert.equal(await stores[0]!.countSubscribers(), devices.length);
      // No IMSI consumed by a loser: the next allocation takes the next index of the range.
      const next = await stores[1]!.createSubscriber(
        'DSIM00000000000000R4',
        1,
        allocation,
        subscriberFor('DSIM00000000000000R4', 1),
      );
      assert.ok(next !== 'exhausted');
      assert.equal(next.subscriber.imsi, allocation.imsiOf(devices.length));
    } finally {
      for (const s of stores) await s.close();
    }
  });

  const allocation = {
    capacity: 1000,
    imsiOf: (i: number) => `00101${String(i).padStart(10, '0')}`,
    reusableBefore: new Date(0),
  };

  it('HSS: released IMSIs reused once each, first attach once, AKA SEQs distinct, a challenge answered once', async () => {
    const db = database();
    const stores = [await HssStore.open(db), await HssStore.open(db)];
    try {
      const t0 = new Date('2026-12-01T12:00:00Z');
      const old = ['DSIM00000000000000Q1', 'DSIM00000000000000Q2', 'DSIM00000000000000Q3'];
      for (const id of old) await stores[0]!.createSubscriber(id, 1, allocation, subscriberFor(id, 1));
      // Concurrent releases of the same device: released once.
      const releases = await race(stores, RACERS, (s, i) =>
        s.releaseSubscriber(old[i % old.length]!, 'revoked', t0),
      );
      assert.equal(releases.filter((r) => r.outcome === 'released').length, old.length);
      assert.equal((await stores[0]!.releasedImsis()).length, old.length);

      // New devices race for the quarantined IMSIs: each is taken by one of them only.
      const reuse = { ...allocation, reusableBefore: new Date(t0.getTime() + 1) };
      const fresh = Array.from({ length: 8 }, (_, i) => `DSIM0000000000000N${String(i).padStart(2, '0')}`);
      const made = await race(stores, fresh.length * 4, (s, i) => {
        const id = fresh[i % fresh.length]!;
        return s.createSubscriber(id, 1, reuse, subscriberFor(id, 1));
      });
      const imsis = new Map<string, string>();
      for (const r of made) {
        assert.ok(r !== 'exhausted');
        const seen = imsis.get(r.subscriber.dsimId);
        if (seen) assert.equal(r.subscriber.imsi, seen, 'one IMSI per device');
        imsis.set(r.subscriber.dsimId, r.subscriber.imsi);
      }
      assert.equal(new Set(imsis.values()).size, fresh.length, 'no IMSI shared');
      assert.deepEqual(await stores[0]!.releasedImsis(), [], 'every quarantined IMSI taken once');

      // The first attach, raced: one attach event.
      const imsi = imsis.get(fresh[0]!)!;
      const firsts = await race(stores, RACERS, (s) => s.markActive(imsi, t0));
      assert.equal(firsts.filter(Boolean).length, 1);
      assert.equal((await stores[1]!.attachEventsAfter(0, 100)).length, 1);

      // AKA: every challenge its own SEQ (the first ones raced on a subscriber without AKA state).
      const seqs = await race(stores, RACERS, (s, i) =>
        s.aka.nextChallenge(imsi, (seq) => ({
          pending: {
            rand: Buffer.alloc(16, i),
            xres: Buffer.alloc(8, i),
            expiresAt: new Date(t0.getTime() + 60_000),
          },
          result: seq,
        })),
      );
      assert.deepEqual(
        [...seqs].sort((a, b) => a - b),
        Array.from({ length: RACERS }, (_, i) => i + 1),
      );
      // The pending challenge is answered (taken) once.
      const taken = await race(stores, RACERS, (s) => s.aka.takePending(imsi, t0));
      assert.equal(taken.filter((p) => p !== undefined).length, 1);
    } finally {
      for (const s of stores) await s.close();
    }
  });

  it('credentialing: overlapping batches never deadlock; a session opens once; each step moves once', async () => {
    const db = database();
    const stores = [await CredentialingStore.open(db), await CredentialingStore.open(db)];
    try {
      const t0 = new Date('2026-12-01T12:00:00Z');
      const later = new Date(t0.getTime() + 3_600_000);
      const ids = Array.from({ length: 300 }, (_, i) => `DSIM00000000000${String(i).padStart(5, '0')}`);
      const batch = (list: string[], tag: number) =>
        list.map((dsimId) => ({
          dsimId,
          registrationNonce: `nonce-${tag}-${dsimId}`,
          registrationServer: 'https://registration.example',
          expiresAt: later,
        }));
      // Overlapping batches in opposite orders (and one naming a device twice) from both instances.
      await race(stores, 8, (s, i) => {
        const list = i % 2 === 0 ? ids : [...ids].reverse();
        return s.saveRegistrations(batch(i === 3 ? [...list, ids[0]!] : list, i), t0);
      });
      assert.equal((await stores[0]!.countByState()).registered, ids.length);

      // One device, many sessions at once: one opens.
      const dsimId = ids[0]!;
      const opened = await race(stores, RACERS, (s, i) =>
        s.openSession(
          dsimId,
          {
            sessionId: `session-${i}`,
            deviceNonce: `device-nonce-${i}`,
            sessionNonce: 'session-nonce',
            challenge: 'challenge',
            expiresAt: later,
          },
          t0,
        ),
      );
      assert.equal(opened.filter((o) => o === 'opened').length, 1);
      assert.ok(opened.every((o) => o === 'opened' || o === 'busy'));
      const { sessionId } = (await stores[0]!.find(dsimId))!;
      const referral = {
        deviceCertificate: 'cert',
        provisioningServer: 'https://provisioning.example',
        ticketDigest: 'ticket',
        ticketExpiresAt: later,
        imsi: '001010000000001',
        packageId: 'package',
        package: 'sealed',
      };
      const referred = await race(stores, RACERS, (s) => s.markReferred(dsimId, sessionId!, referral, t0));
      assert.equal(referred.filter(Boolean).length, 1);
      const registration = { dsimId, registrationServers: ['https://registration.example'] };
      const delivered = await race(stores, RACERS, (s) => s.markDelivered(registration, 'p', t0));
      assert.equal(delivered.filter(Boolean).length, 1);
      const completed = await race(stores, RACERS, (s) =>
        s.markCompleted(dsimId, referral.imsi, t0, 'https://hss'),
      );
      assert.equal(completed.filter(Boolean).length, 1);
      const trail = (await stores[1]!.auditTrail(dsimId)).map((e) => e.event);
      for (const event of ['session-opened', 'delivered', 'completed'])
        assert.equal(trail.filter((e) => e === event).length, 1, event);
      // One retirement queued, not one per racer.
      assert.equal((await stores[0]!.pendingPeerActions()).filter((a) => a.dsimId === dsimId).length, 1);

      // The expiry sweep of both instances and late devices: each registration expires once.
      const past = new Date(later.getTime() + 1);
      await race<CredentialingStore, unknown>(stores, 8, (s, i) =>
        i % 2 === 0 ? s.expireDue(past, 100) : s.markExpired(ids[i]!, past),
      );
      const expiredEvents = (await stores[0]!.auditEventsAfter(0, 10_000)).filter(
        (e) => e.event === 'expired',
      );
      assert.equal(
        new Set(expiredEvents.map((e) => e.dsimId)).size,
        expiredEvents.length,
        'expired once each',
      );
    } finally {
      for (const s of stores) await s.close();
    }
  });

  it('credentialing outboxes: each peer action and each webhook delivery claimed once, a feed page recorded once', async () => {
    const db = database();
    const stores = [await CredentialingStore.open(db), await CredentialingStore.open(db)];
    try {
      const t0 = new Date('2026-12-01T12:00:00Z');
      const ids = Array.from({ length: 60 }, (_, i) => `DSIM00000000000${String(i).padStart(5, '0')}`);
      await stores[0]!.queuePeerActions(
        ids.map((dsimId) => ({ kind: 'retire' as const, dsimId, target: 'https://registration.example' })),
        t0,
      );
      // Rounds of racing claimers until nothing is left: a loser gets nothing, never a taken one.
      const claimed: number[] = [];
      for (let round = 0; round < 20; round++) {
        const got = (await race(stores, RACERS, (s) => s.claimPeerActions(t0, 60_000, 7))).flat();
        if (got.length === 0) break;
        claimed.push(...got.map((a) => a.id));
      }
      assert.equal(new Set(claimed).size, claimed.length, 'no action claimed twice');
      assert.equal(claimed.length, ids.length);

      // Audit events, then one webhook's page expanded from the same cursor by every racer: once.
      for (const dsimId of ids) await stores[0]!.audit(dsimId, 'registered', null, t0);
      const hook = await stores[0]!.webhooks.add(
        {
          id: 'whk_RACERACERACERACERACERA',
          url: 'https://ops.example/h',
          secret: 's'.repeat(16),
          orderId: null,
          source: 'config',
        },
        t0,
        0,
      );
      await race(stores, 4, (s) =>
        s.webhooks.add(
          { id: hook.id, url: hook.url, secret: 's'.repeat(16), orderId: null, source: 'config' },
          t0,
          0,
        ),
      );
      const events = await stores[0]!.auditEventsAfter(0, 1000);
      const last = events.at(-1)!.id;
      const deliveries = events.map((e) => ({ eventId: e.id, dsimId: e.dsimId, body: '{}' }));
      const expanded = await race(stores, RACERS, (s) => s.webhooks.expand(hook.id, 0, last, deliveries, t0));
      assert.equal(expanded.filter(Boolean).length, 1);
      const sent: number[] = [];
      for (let round = 0; round < 20; round++) {
        const got = (await race(stores, RACERS, (s) => s.webhooks.claim(t0, 60_000, 10))).flat();
        if (got.length === 0) break;
        sent.push(...got.map((d) => d.id));
      }
      assert.equal(new Set(sent).size, sent.length, 'no delivery claimed twice');
      assert.equal(sent.length, ids.length);

      // A peer's feed page, recorded by both instances at once from the same cursor: once.
      const page = ids.map((dsimId) => ({ dsimId, event: 'attached', detail: null }));
      const recorded = await race(stores, RACERS, (s) => s.recordFeedPage('hss', 0, 5, page, t0));
      assert.equal(recorded.filter(Boolean).length, 1);
      const attached = (await stores[1]!.auditEventsAfter(0, 10_000)).filter((e) => e.event === 'attached');
      assert.equal(attached.length, 0, 'no audit for devices this server did not register');
      assert.equal(await stores[1]!.feedCursor('hss'), 5);
    } finally {
      for (const s of stores) await s.close();
    }
  });

  it('enrollment group: a cap admits exactly its number of devices, a device counts once', async () => {
    const db = database();
    const stores = [await CredentialingStore.open(db), await CredentialingStore.open(db)];
    try {
      const cap = 5;
      await stores[0]!.groups().create({
        id: 'grp_race',
        name: 'race',
        caSubject: 'CN=ca',
        caSha256: 'a'.repeat(64),
        dsimPattern: null,
        cap,
        registrationServers: ['https://registration.example'],
        active: true,
        orderId: 'ord_race',
        createdAt: new Date(),
      });
      const results = await Promise.allSettled(
        Array.from({ length: RACERS * 2 }, (_, i) =>
          stores[i % 2]!.groups().admit(
            'grp_race',
            `DSIM0000000000000G${String(i % 12).padStart(2, '0')}`,
            new Date(),
          ),
        ),
      );
      const { errors } = settled(results);
      assert.ok(
        errors.every((e) => isSimcredError(e) && e.code === 'SIMCRED_GROUP_CAP_REACHED'),
        errors.map(String).join(', '),
      );
      assert.equal((await stores[1]!.groups().find('grp_race'))!.admitted, cap);
    } finally {
      for (const s of stores) await s.close();
    }
  });

  it('registration, provisioning and PHLR upserts: overlapping pushes in any order, no deadlock, one row each', async () => {
    const [r, p, h] = [database(), database(), database()];
    const registration = [await RegistrationStore.open(r), await RegistrationStore.open(r)];
    const provisioning = [await ProvisioningStore.open(p), await ProvisioningStore.open(p)];
    const phlr = [await PhlrStore.open(h), await PhlrStore.open(h)];
    try {
      const ids = Array.from({ length: 400 }, (_, i) => `DSIM00000000000${String(i).padStart(5, '0')}`);
      const records = (list: string[]) =>
        list.map((dsimId) => ({
          dsimId,
          registrationNonce: 'n',
          credentialingUrl: 'https://credentialing.example',
          expiresAt: new Date('2027-01-01T00:00:00Z'),
        }));
      await race(registration, 8, (s, i) =>
        s.upsert(records(i % 2 === 0 ? ids : [...ids].reverse().concat(ids.slice(0, 3))), { owner: 'cs' }),
      );
      await race(registration, 8, (s, i) =>
        s.withdraw(
          i % 2 === 0 ? ids.slice(0, 200) : ids.slice(100, 300).reverse(),
          { owner: 'cs' },
          { used: true },
        ),
      );
      assert.equal((await registration[0]!.find(ids[150]!))!.used, true);
      assert.equal((await registration[0]!.find(ids[350]!))!.used, false);

      await race(provisioning, RACERS, (s, i) =>
        s.saveReferral({
          dsimId: ids[0]!,
          ticketDigest: `ticket-${i}`,
          credentialingUrl: 'https://credentialing.example',
          expiresAt: new Date('2027-01-01T00:00:00Z'),
        }),
      );
      assert.ok(await provisioning[1]!.findReferral(ids[0]!));

      const subscribers = ids.map((dsimId, i) => ({
        pimsi: `00199${String(i).padStart(10, '0')}`,
        dsimId,
        kSealed: 'k',
        opcSealed: 'opc',
      }));
      const added = await race(phlr, 6, (s, i) =>
        s.importSubscribers(i % 2 === 0 ? subscribers : [...subscribers].reverse(), 1000),
      );
      assert.equal(
        added.reduce((a, b) => a + b, 0),
        ids.length,
        'each subscriber added once',
      );
      assert.equal(await phlr[0]!.countSubscribers(), ids.length);
    } finally {
      for (const s of [...registration, ...provisioning, ...phlr]) await s.close();
    }
  });

  it('portal: one lease holder at a time', async () => {
    const db = database();
    const dbs = [await openPortalStore(db), await openPortalStore(db)];
    try {
      const leases = Array.from(
        { length: RACERS },
        (_, i) => new Lease({ db: dbs[i % 2]!, name: 'feed', ttlSeconds: 60 }),
      );
      const held = await race(leases, RACERS, (l) => l.acquire());
      assert.equal(held.filter(Boolean).length, 1);
    } finally {
      for (const d of dbs) await d.destroy();
    }
  });
});
