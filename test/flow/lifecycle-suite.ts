import { after, before, describe, test } from 'node:test';
/** The PostgreSQL the roles' stores go to; SQLite files in the data folder when undefined. */
type Store = { kind: 'postgres'; url: string } | undefined;
import assert from 'node:assert/strict';
import { PeerClient, clientTls, loadTlsIdentity } from '../../src/http/index.js';
import { HssStore } from '../../src/hss/store.js';
import {
  deleteDevice,
  resumeDevice,
  revokeRegistration,
  suspendDevice,
} from '../../src/protocol/credentialing.js';
import type { RunningServer } from '../../src/http/index.js';
import { startRole } from '../../src/system/roles.js';
import { roleDatabase } from '../../src/system/start.js';
import { ManualClock } from '../helpers/clock.js';
import { rejectsWith } from '../helpers/assert.js';
import { startTestSystem, type TestDevice, type TestSystem } from './harness.js';

const QUARANTINE_SECONDS = 3600;

/**
 * The subscription's life after the first download (issue #14): suspend, resume, delete, revoke
 * after delivery, the IMSI quarantine, and the HSS down while the operator decides. Real roles on
 * loopback; the time the HSS's quarantine reads is a ManualClock the test moves. Run on SQLite
 * (lifecycle.test.ts) and PostgreSQL (lifecycle-postgres.test.ts): `database` gives the store,
 * SQLite files in the data folder when it resolves to undefined.
 */
export function lifecycleSuite(name: string, database: () => Promise<Store>): void {
  describe(name, () => {
    const clock = new ManualClock();
    let t: TestSystem;
    let operator: PeerClient;
    let devices: string[];
    let next = 0;
    let replacementHss: RunningServer | undefined;
    /** The device the delete test ended: its IMSI is the lowest released one. */
    let deleted: (TestDevice & { imsi: string }) | undefined;
    const fresh = () => devices[next++]!;

    before(async () => {
      const store = await database();
      t = await startTestSystem(
        {
          registration: { ttlSeconds: 7 * 24 * 3600 },
          hss: { imsiQuarantineSeconds: QUARANTINE_SECONDS },
          ...(store ? { database: store } : {}),
        },
        { clock: clock.now },
      );
      devices = await t.manufacture(12);
      await t.register(devices);
      operator = new PeerClient({ tls: clientTls(loadTlsIdentity(t.config.pkiDir, 'portal')) });
    });
    after(async () => {
      await operator.close();
      await replacementHss?.close();
      await t.close();
    });

    const url = () => t.system.urls.credentialing;
    const suspend = (dsimId: string, reason?: string) =>
      operator.call(url(), suspendDevice, { params: { dsimId }, body: reason ? { reason } : {} });
    const resume = (dsimId: string) => operator.call(url(), resumeDevice, { params: { dsimId }, body: {} });
    const remove = (dsimId: string) => operator.call(url(), deleteDevice, { params: { dsimId }, body: {} });
    const revoke = (dsimId: string) =>
      operator.call(url(), revokeRegistration, { params: { dsimId }, body: {} });

    /**
     * Waits (bounded) until the audit trail shows `event`: the outbox works in the background.
     * `tick` runs before each look (the outage test moves the clock the outbox's retries are due by).
     */
    async function auditShows(dsimId: string, event: string, tick = () => {}): Promise<string | null> {
      for (let i = 0; i < 300; i++) {
        tick();
        const { audit } = await t.operator.deviceState(url(), dsimId);
        const found = audit.find((e) => e.event === event);
        if (found) return found.detail;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.fail(`the audit trail of ${dsimId} never showed "${event}"`);
    }

    async function onboarded(): Promise<TestDevice & { imsi: string }> {
      const device = await t.device(fresh());
      const result = await device.agent.onboard();
      return { ...device, imsi: result.subscription.imsi };
    }

    async function releasedImsis(): Promise<string[]> {
      const hss = await HssStore.open(roleDatabase(t.config, 'hss'));
      try {
        return (await hss.releasedImsis()).map((r) => r.imsi);
      } finally {
        await hss.close();
      }
    }

    test('suspend → attach refused → resume → attach works; the feed shows suspended and active', async () => {
      const device = await onboarded();
      const dsimId = device.module.dsimId;
      assert.deepEqual(await suspend(dsimId, 'unpaid invoice'), { dsimId, state: 'suspended' });
      assert.equal(await auditShows(dsimId, 'subscriber-suspended'), device.imsi);
      await rejectsWith(device.agent.attach(), 'SIMCRED_SUBSCRIPTION_SUSPENDED');
      assert.deepEqual(await suspend(dsimId), { dsimId, state: 'suspended' }, 'idempotent');

      assert.deepEqual(await resume(dsimId), { dsimId, state: 'completed' });
      assert.equal(await auditShows(dsimId, 'subscriber-resumed'), device.imsi);
      await device.agent.attach();
      assert.deepEqual(await resume(dsimId), { dsimId, state: 'completed' });

      const state = await t.operator.deviceState(url(), dsimId);
      assert.equal(state.state, 'completed');
      assert.equal(state.imsi, device.imsi);
      const feed = await t.operator.events(url(), 0, { limit: 1000 });
      const states = feed.events.filter((e) => e.dsimId === dsimId && e.state !== null).map((e) => e.state);
      assert.deepEqual(states.slice(-2), ['suspended', 'active']);
      assert.equal(
        feed.events.find((e) => e.dsimId === dsimId && e.event === 'suspended')?.detail,
        'unpaid invoice',
      );
    });

    test('delete: the subscriber is ended, attach refused, the IMSI released, the registration final', async () => {
      const device = await onboarded();
      deleted = device;
      const dsimId = device.module.dsimId;
      assert.deepEqual(await remove(dsimId), { dsimId, state: 'deleted' });
      assert.equal(await auditShows(dsimId, 'subscriber-deleted'), device.imsi);
      assert.equal(await t.subscriber(dsimId), undefined, 'the HSS still holds the subscriber');
      assert.ok((await releasedImsis()).includes(device.imsi));
      await rejectsWith(device.agent.attach(), 'SIMCRED_SUBSCRIPTION_ENDED');
      assert.equal((await t.operator.deviceState(url(), dsimId)).state, 'deleted');
      // Idempotent; every other decision on a deleted device is refused, and it is never registered again.
      assert.deepEqual(await remove(dsimId), { dsimId, state: 'deleted' });
      await rejectsWith(suspend(dsimId), 'SIMCRED_SUBSCRIPTION_ENDED');
      await rejectsWith(resume(dsimId), 'SIMCRED_SUBSCRIPTION_ENDED');
      await rejectsWith(revoke(dsimId), 'SIMCRED_SUBSCRIPTION_ENDED');
      const again = await t.register([dsimId]);
      assert.deepEqual(
        again.rejected.map((r) => r.code),
        ['SIMCRED_SUBSCRIPTION_ENDED'],
      );
    });

    test('revoke after attach releases the subscriber; after delivery the package is refused', async () => {
      const device = await onboarded();
      const dsimId = device.module.dsimId;
      assert.deepEqual(await revoke(dsimId), { dsimId, state: 'revoked' });
      assert.equal(await auditShows(dsimId, 'subscriber-released'), device.imsi);
      assert.equal(await t.subscriber(dsimId), undefined);
      await rejectsWith(device.agent.attach(), 'SIMCRED_SUBSCRIPTION_ENDED');
      await rejectsWith(suspend(dsimId), 'SIMCRED_SUBSCRIPTION_ENDED');

      // Delivered (step 9) but not yet installed: revoked, the package cannot be fetched again.
      const late = await t.device(fresh());
      const registration = await late.agent.lookupRegistration();
      const session = await late.agent.openSession(registration);
      const referral = await late.agent.proveSession(registration, session);
      await late.agent.collectPackage(referral);
      const imsi = (await t.subscriber(late.module.dsimId))!.imsi;
      assert.deepEqual(await revoke(late.module.dsimId), { dsimId: late.module.dsimId, state: 'revoked' });
      await rejectsWith(late.agent.collectPackage(referral), 'SIMCRED_REGISTRATION_REVOKED');
      assert.equal(await auditShows(late.module.dsimId, 'subscriber-released'), imsi);
      assert.ok((await releasedImsis()).includes(imsi));
    });

    test('unknown devices and devices without a subscription get their codes', async () => {
      const unknown = 'DSIMFFFFFFFFFFFFFFFF';
      await rejectsWith(suspend(unknown), 'SIMCRED_REGISTRATION_UNKNOWN');
      await rejectsWith(resume(unknown), 'SIMCRED_REGISTRATION_UNKNOWN');
      await rejectsWith(remove(unknown), 'SIMCRED_REGISTRATION_UNKNOWN');
      await rejectsWith(revoke(unknown), 'SIMCRED_REGISTRATION_UNKNOWN');
      const registeredOnly = fresh();
      await rejectsWith(suspend(registeredOnly), 'SIMCRED_SUBSCRIPTION_NOT_PROVISIONED');
      await rejectsWith(resume(registeredOnly), 'SIMCRED_SUBSCRIPTION_NOT_PROVISIONED');
      assert.equal((await t.operator.deviceState(url(), registeredOnly)).state, 'registered');
      // Deleted before it ever called in: it cannot open a session.
      const device = await t.device(registeredOnly);
      const registration = await device.agent.lookupRegistration();
      await remove(registeredOnly);
      await rejectsWith(device.agent.openSession(registration), 'SIMCRED_SUBSCRIPTION_ENDED');
    });

    test('a released IMSI goes to no new subscriber before its quarantine ends, and to the next one after', async () => {
      const released = await releasedImsis();
      assert.ok(released.length >= 3, `released: ${released.join(', ')}`);
      const during = await onboarded();
      assert.ok(!released.includes(during.imsi), `${during.imsi} was reused within its quarantine`);

      clock.advance(QUARANTINE_SECONDS + 1);
      // Released at the same (test) instant: the lowest IMSI first, the deleted device's.
      const oldest = [...released].sort()[0];
      assert.equal(oldest, deleted!.imsi);
      const reused = await onboarded();
      assert.equal(reused.imsi, oldest, 'a released IMSI is allocated first once its quarantine ended');
      assert.ok(!(await releasedImsis()).includes(oldest!));
      // The new subscriber has new keys: it attaches (onboard did); the IMSI's previous holder cannot.
      await reused.agent.attach();
      await rejectsWith(deleted!.agent.attach(), 'SIMCRED_AKA_MAC_FAILURE');
    });

    test('the HSS down: suspend and resume wait in the outbox and are applied once it is back', async () => {
      const device = await onboarded();
      const dsimId = device.module.dsimId;
      const port = Number(new URL(t.system.urls.hss).port);
      await t.system.servers.hss.close();
      assert.deepEqual(await suspend(dsimId), { dsimId, state: 'suspended' });
      assert.equal((await t.operator.deviceState(url(), dsimId)).state, 'suspended');
      replacementHss = await startRole(
        { ...t.config, ports: { ...t.config.ports, hss: port } },
        'hss',
        1,
        t.logger,
        undefined,
        { clock: clock.now },
      );
      // The outbox's retries are due by the test's clock: a minute on at each look, past any backoff
      // (a retry scheduled after one move is due by the next).
      const minuteOn = () => clock.advance(60);
      assert.equal(await auditShows(dsimId, 'subscriber-suspended', minuteOn), device.imsi);
      await rejectsWith(device.agent.attach(), 'SIMCRED_SUBSCRIPTION_SUSPENDED');
      await resume(dsimId);
      await auditShows(dsimId, 'subscriber-resumed', minuteOn);
      await device.agent.attach();
    });

    test('suspended and resumed while the HSS is down: the HSS ends as the operator left it, resumed', async () => {
      const device = await onboarded();
      const dsimId = device.module.dsimId;
      const port = Number(new URL(t.system.urls.hss).port);
      await replacementHss!.close();
      await suspend(dsimId);
      await resume(dsimId);
      replacementHss = await startRole(
        { ...t.config, ports: { ...t.config.ports, hss: port } },
        'hss',
        1,
        t.logger,
        undefined,
        { clock: clock.now },
      );
      const minuteOn = () => clock.advance(60);
      assert.equal(await auditShows(dsimId, 'subscriber-resumed', minuteOn), device.imsi);
      // The suspension was not sent after all: the record had moved on (whichever was retried first).
      assert.equal(await auditShows(dsimId, 'suspend-moot', minuteOn), 'now completed');
      await device.agent.attach();
    });
  });
}
