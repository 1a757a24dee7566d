// The operator's event feed (credentialing.deviceEvents) and the HSS's feed of first attaches
// (hss.subscriberEvents) that brings 'attached' into it: real roles on loopback, no per-device polling.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PeerClient, clientTls, loadTlsIdentity } from '../../src/http/index.js';
import { revokeCertificate } from '../../src/pki/revoke.js';
import type { TlsRole } from '../../src/pki/index.js';
import { deviceEvents } from '../../src/protocol/credentialing.js';
import { subscriberEvents } from '../../src/protocol/hss.js';
import type { ResponseOf } from '../../src/protocol/route.js';
import { startRole } from '../../src/system/roles.js';
import { expectRefusal, rejectsWith } from '../helpers/assert.js';
import { ManualClock } from '../helpers/clock.js';
import { restartCredentialing, startTestSystem, type TestSystem } from './harness.js';

type FeedEvent = ResponseOf<typeof deviceEvents>['events'][number];

const ONBOARDED = ['registered', 'authenticated', 'referred', 'delivered', 'completed', 'attached'];

describe('the operator event feed', () => {
  let t: TestSystem;
  /** Every event read so far, in feed order, and the cursor after them. */
  const seen: FeedEvent[] = [];
  let cursor = 0;
  const clients: PeerClient[] = [];
  const restarted: { close(): Promise<void> }[] = [];

  before(async () => {
    t = await startTestSystem();
  });
  after(async () => {
    for (const client of clients) await client.close();
    for (const server of restarted) await server.close();
    await t.close();
  });

  const credentialingUrl = () => t.system.urls.credentialing;
  const clientAs = (who: TlsRole | 'device') => {
    const client =
      who === 'device'
        ? new PeerClient({ tls: { ca: [t.system.pki.operator.root.pem] } })
        : new PeerClient({ tls: clientTls(loadTlsIdentity(t.config.pkiDir, who)) });
    clients.push(client);
    return client;
  };

  /** Follows the feed (long polls) until `done` holds for what was read; the test's timeout bounds it. */
  async function follow(done: (events: FeedEvent[]) => boolean): Promise<void> {
    while (!done(seen)) {
      const page = await t.operator.events(credentialingUrl(), cursor, { waitSeconds: 5 });
      for (const event of page.events) {
        assert.ok(event.id > cursor, 'ids grow');
        cursor = event.id;
      }
      assert.equal(page.next, cursor);
      seen.push(...page.events);
    }
  }
  const statesOf = (dsimId: string) =>
    seen.filter((e) => e.dsimId === dsimId && e.state !== null).map((e) => e.state);
  const lastOf = (dsimId: string) => seen.filter((e) => e.dsimId === dsimId && e.state !== null).at(-1);
  const attachedCount = (dsimId: string) =>
    seen.filter((e) => e.dsimId === dsimId && e.event === 'attached').length;

  test('a fleet onboards: each device shows registered → … → attached, in order', async () => {
    const fleet = await t.manufacture(4);
    await t.register(fleet);
    await Promise.all(fleet.map(async (dsimId) => (await t.device(dsimId)).agent.onboard()));
    await follow(() => fleet.every((d) => attachedCount(d) === 1));
    for (const dsimId of fleet) {
      assert.deepEqual(statesOf(dsimId), ONBOARDED, dsimId);
      const subscriber = await t.subscriber(dsimId);
      const attached = seen.find((e) => e.dsimId === dsimId && e.event === 'attached')!;
      assert.equal(attached.detail, subscriber!.imsi, 'the attached event names the IMSI');
      // Events that change no state are in the feed too, with a null state.
      assert.ok(seen.some((e) => e.dsimId === dsimId && e.event === 'session-opened' && e.state === null));
    }
  });

  test('a revoked device and one whose certificate the OCSP responder says is revoked', async () => {
    const [revoked, refused] = await t.manufacture(2);
    await t.register([revoked!, refused!]);
    await t.operator.revoke(credentialingUrl(), revoked!, 'contract cancelled');
    await revokeCertificate(t.config.pkiDir, { dsimId: refused! }, 'keyCompromise');
    await rejectsWith((await t.device(refused!)).agent.onboard(), 'SIMCRED_OCSP_REVOKED');
    await follow(() => lastOf(revoked!)?.state === 'revoked' && lastOf(refused!)?.state === 'failed');
    assert.deepEqual(statesOf(revoked!), ['registered', 'revoked']);
    assert.equal(lastOf(revoked!)!.detail, 'contract cancelled');
    assert.deepEqual(statesOf(refused!), ['registered', 'failed']);
    assert.equal(lastOf(refused!)!.detail, 'SIMCRED_OCSP_REVOKED');
  });

  test('a long poll answers with the event written while it waits', async () => {
    await follow((events) => events.length > 0);
    // Catch up: the poll below waits at the end of the feed.
    for (;;) {
      const page = await t.operator.events(credentialingUrl(), cursor, { limit: 1000 });
      if (page.events.length === 0) break;
      seen.push(...page.events);
      cursor = page.next;
    }
    // Two: devices are manufactured round-robin over the two registration servers, as t.register assigns them.
    const pair = await t.manufacture(2);
    const dsimId = pair[0]!;
    const waiting = t.operator.events(credentialingUrl(), cursor, { waitSeconds: 25 });
    await t.register(pair);
    const page = await waiting;
    // Answered with the event (a wait that ran out would answer none); a late peer-action event of an
    // earlier test may come with it.
    assert.deepEqual(
      page.events.filter((e) => e.dsimId === dsimId).map((e) => [e.event, e.state]),
      [['registered', 'registered']],
    );
    seen.push(...page.events);
    cursor = page.next;
  });

  test('paging with a limit reads every event once, in id order', async () => {
    const whole = await t.operator.events(credentialingUrl(), 0, { limit: 1000 });
    assert.ok(whole.events.length > 10);
    const paged: FeedEvent[] = [];
    let after = 0;
    for (;;) {
      const page = await t.operator.events(credentialingUrl(), after, { limit: 3 });
      assert.ok(page.events.length <= 3);
      if (page.events.length === 0) {
        assert.equal(page.next, after, 'an empty page keeps the cursor');
        break;
      }
      paged.push(...page.events);
      after = page.next;
    }
    assert.deepEqual(
      paged.slice(0, whole.events.length).map((e) => e.id),
      whole.events.map((e) => e.id),
    );
    const ids = paged.map((e) => e.id);
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => a - b),
    );
    assert.equal(new Set(ids).size, ids.length);
  });

  test('a bad query is SIMCRED_BAD_REQUEST; only the portal may read the feed', async () => {
    const portal = clientAs('portal');
    for (const query of [
      'after=-1',
      'limit=0',
      'limit=1001',
      'waitSeconds=99',
      'after=abc',
      'limit=1e3',
      'waitSeconds=2.5',
      'after=1&after=2',
      'surprise=1',
    ]) {
      const answer = await portal.send(
        `${credentialingUrl()}${deviceEvents.path}?${query}`,
        'GET',
        undefined,
        'application/json',
      );
      expectRefusal(answer, 'SIMCRED_BAD_REQUEST', /query/);
    }
    const get = (client: PeerClient, url: string) => client.send(url, 'GET', undefined, 'application/json');
    const feed = `${credentialingUrl()}${deviceEvents.path}?after=0`;
    expectRefusal(await get(clientAs('device'), feed), 'SIMCRED_UNAUTHENTICATED_PEER');
    expectRefusal(await get(clientAs('provisioning'), feed), 'SIMCRED_FORBIDDEN_PEER');
    const attaches = `${t.system.urls.hss}${subscriberEvents.path}?after=0`;
    expectRefusal(await get(clientAs('portal'), attaches), 'SIMCRED_FORBIDDEN_PEER');
    expectRefusal(await get(clientAs('device'), attaches), 'SIMCRED_UNAUTHENTICATED_PEER');
    expectRefusal(await get(clientAs('credentialing'), `${attaches}&waitSeconds=26`), 'SIMCRED_BAD_REQUEST');
  });

  test('attached survives an HSS restart and a credentialing restart: none lost, none twice', async () => {
    const [first, second, third] = await t.manufacture(3);
    await t.register([first!, second!, third!]);
    await (await t.device(first!)).agent.onboard();
    await follow(() => attachedCount(first!) === 1);

    // The HSS goes away and comes back on its port; meanwhile the follower backs off.
    const hssPort = Number(new URL(t.system.urls.hss).port);
    await t.system.servers.hss.close();
    const hss = await startRole(
      { ...t.config, ports: { ...t.config.ports, hss: hssPort } },
      'hss',
      1,
      t.logger,
    );
    restarted.push(hss);
    await (await t.device(second!)).agent.onboard();
    await follow(() => attachedCount(second!) === 1);

    // The credentialing server restarts: its follower resumes from the cursor in its database.
    restarted.push(await restartCredentialing(t));
    await (await t.device(third!)).agent.onboard();
    // In feed order: had the cursor been lost, the earlier attaches would come again before this one.
    await follow(() => attachedCount(third!) === 1);
    const everyAttach = seen.filter((e) => e.event === 'attached').map((e) => e.dsimId);
    assert.equal(new Set(everyAttach).size, everyAttach.length, 'no attach recorded twice');
    for (const dsimId of [first!, second!, third!]) assert.deepEqual(statesOf(dsimId), ONBOARDED);
  });
});

test('a registration that expires is an event: the feed shows expired', async () => {
  const clock = new ManualClock();
  const t = await startTestSystem({ registration: { ttlSeconds: 3600 } }, { clock: clock.now });
  try {
    const [dsimId] = await t.manufacture(1);
    await t.register([dsimId!]);
    clock.advance(3601);
    // The sweep runs before each read of the feed (and on its own every few seconds).
    const page = await t.operator.events(t.system.urls.credentialing, 0);
    assert.deepEqual(
      page.events.map((e) => [e.dsimId, e.state]),
      [
        [dsimId, 'registered'],
        [dsimId, 'expired'],
      ],
    );
    assert.equal((await t.operator.deviceState(t.system.urls.credentialing, dsimId!)).state, 'expired');
    // The device that shows up late is refused as before.
    const { agent } = await t.device(dsimId!);
    const registration = await agent.lookupRegistration().catch(() => undefined);
    if (registration) await rejectsWith(agent.openSession(registration), 'SIMCRED_REGISTRATION_EXPIRED');
  } finally {
    await t.close();
  }
});
