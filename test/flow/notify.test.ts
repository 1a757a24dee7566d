// Notifications (issue 14): every device state change reaches the operator's webhook, signed, at least
// once and in order per device, while the receiver is down for part of the run and the credentialing
// server restarts; the receiver helper refuses forged, stale and replayed deliveries. Real roles on
// loopback, a real HTTP receiver; no timing assertions (waits are bounded by the test's timeout).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { runFleet } from '../../src/device/fleet.js';
import { loadTlsIdentity } from '../../src/http/index.js';
import { OperatorClient } from '../../src/portal/operator-client.js';
import { WebhookReceiver } from '../../src/notify/receiver.js';
import { signatureHeader } from '../../src/notify/signature.js';
import type { deviceEvents } from '../../src/protocol/credentialing.js';
import type { ResponseOf } from '../../src/protocol/route.js';
import { rejectsWith } from '../helpers/assert.js';
import { restartCredentialing, startTestSystem, type TestSystem } from './harness.js';
import { ONBOARDING_STATES, TestReceiver, statesByDevice, until } from '../helpers/webhook-receiver.js';
import { benchWorkspace } from '../../src/bench/cluster.js';
import { initPki, manufactureDevices } from '../../src/pki/index.js';
import { lastJsonLine, runCli, startUp } from '../helpers/cli.js';
import type { DemoSummary } from '../../src/system/demo.js';

type FeedEvent = ResponseOf<typeof deviceEvents>['events'][number];

describe('notifications to a webhook', () => {
  let t: TestSystem;
  let orders: OperatorClient;
  const receiver = new TestReceiver();
  const restarted: { close(): Promise<void> }[] = [];
  const url = () => t.system.urls.credentialing;

  before(async () => {
    // Short backoff so that a receiver back up is retried soon; many attempts, so none dies here.
    t = await startTestSystem({
      notify: { retryBaseMs: 50, retryMaxMs: 500, timeoutMs: 3000, maxAttempts: 10_000 },
    });
    orders = new OperatorClient(loadTlsIdentity(t.config.pkiDir, 'portal'));
    await receiver.up();
  });
  after(async () => {
    await receiver.down();
    await orders.close();
    for (const server of restarted) await server.close();
    await t.close();
  });

  /** Every event of the feed, from the start. */
  async function feed(): Promise<FeedEvent[]> {
    const events: FeedEvent[] = [];
    for (let after = 0; ;) {
      const page = await t.operator.events(url(), after, { limit: 1000 });
      events.push(...page.events);
      if (page.events.length === 0) return events;
      after = page.next;
    }
  }

  test('a fleet: every state change of every device arrives, in order per device, across a receiver outage and a credentialing restart', async () => {
    const { webhook, secret } = await orders.addWebhook(url(), { url: receiver.url });
    assert.match(secret, /^[A-Za-z0-9_-]{43}$/, 'a generated secret, shown once');
    receiver.secret = secret;
    receiver.receiver = new WebhookReceiver({ secret });
    const listed = await orders.listWebhooks(url());
    assert.equal(listed.webhooks.length, 1);
    assert.ok(!JSON.stringify(listed).includes(secret), 'the secret is never listed');

    const dsimIds = await t.manufacture(36);
    const first = await t.operator.registerDevices(
      url(),
      dsimIds
        .slice(0, 18)
        .map((dsimId, i) => ({ dsimId, registrationServer: t.system.urls.registration[i % 2]! })),
      undefined,
      { label: 'batch A' },
    );
    const second = await t.operator.registerDevices(
      url(),
      dsimIds
        .slice(18)
        .map((dsimId, i) => ({ dsimId, registrationServer: t.system.urls.registration[i % 2]! })),
      undefined,
      { label: 'batch B' },
    );
    assert.match(first.orderId!, /^ord_/);
    assert.notEqual(first.orderId, second.orderId);

    // Receiver up: the first third onboards.
    const onboard = async (ids: string[]) => {
      const report = await runFleet({ pkiDir: t.config.pkiDir, dsimIds: ids, concurrency: 6 });
      assert.deepEqual(
        report.outcomes.filter((o) => !o.ok).map((o) => o.error),
        [],
      );
    };
    await onboard(dsimIds.slice(0, 12));

    // Receiver down: the second third onboards; deliveries fail and wait, visibly.
    await receiver.down();
    await onboard(dsimIds.slice(12, 24));
    await until(async () => (await orders.deliveries(url(), { failed: true })).deliveries.length > 0);
    const failed = (await orders.deliveries(url(), { failed: true })).deliveries[0]!;
    assert.equal(failed.state, 'pending');
    assert.ok(failed.attempts >= 1);
    assert.match(failed.lastError!, /unreachable/);
    assert.ok(failed.nextAttemptAt !== null);

    // The credentialing server restarts while deliveries are owed: they are in its database.
    restarted.push(await restartCredentialing(t));

    // Receiver back: the last third onboards; everything owed arrives.
    await receiver.up();
    await onboard(dsimIds.slice(24));

    const expected = new Map<string, number[]>();
    await until(async () => {
      const events = (await feed()).filter((e) => e.state !== null);
      expected.clear();
      for (const e of events) expected.set(e.dsimId, [...(expected.get(e.dsimId) ?? []), e.id]);
      const attached = events.filter((e) => e.state === 'attached').length;
      const arrived = new Set(receiver.arrivals.map((n) => n.eventId));
      return attached === dsimIds.length && events.every((e) => arrived.has(e.id));
    });

    assert.deepEqual(receiver.refusals, [], 'every delivery verified');
    // In order per device: a device's events, by first arrival, are its feed order.
    const firstArrival = new Map<string, number[]>();
    const seen = new Set<number>();
    for (const n of receiver.arrivals) {
      if (seen.has(n.eventId)) continue;
      seen.add(n.eventId);
      firstArrival.set(n.dsimId, [...(firstArrival.get(n.dsimId) ?? []), n.eventId]);
    }
    for (const dsimId of dsimIds) {
      assert.deepEqual(firstArrival.get(dsimId), expected.get(dsimId), `${dsimId}: every event, in order`);
    }
    assert.deepEqual(statesByDevice(receiver.arrivals).get(dsimIds[0]!), ONBOARDING_STATES);
    // Each notification names its order, as the feed does.
    for (const n of receiver.arrivals) {
      assert.equal(n.orderId, dsimIds.indexOf(n.dsimId) < 18 ? first.orderId : second.orderId);
      assert.equal(n.webhookId, webhook.id);
    }
    const listedAfter = (await orders.listWebhooks(url())).webhooks[0]!;
    assert.equal(listedAfter.pending, 0);
    assert.equal(listedAfter.dead, 0);
    assert.ok(listedAfter.delivered >= expected.size * 6);
  });

  test('the receiver helper refuses a forged signature, a stale timestamp and a replayed delivery', async () => {
    const secret = 'an operator secret of some length';
    // A captured real delivery, verified as it came.
    const captured = receiver.raw.find((r) => r.header.startsWith('t='))!;
    const live = receiver.receiver!;
    assert.equal(live.verify(captured.body, captured.header).ok, false, 'seen before');
    assert.deepEqual(live.verify(captured.body, captured.header), { ok: false, reason: 'replayed' });

    const now = 1_800_000_000;
    const helper = new WebhookReceiver({ secret, now: () => now * 1000 });
    const body = JSON.stringify({
      eventId: 7,
      dsimId: 'DSIM00000000000000AA',
      state: 'failed',
      event: 'failed',
      at: new Date(now * 1000).toISOString(),
      orderId: null,
      detail: 'SIMCRED_OCSP_REVOKED',
      webhookId: 'whk_AAAAAAAAAAAAAAAAAAAAAA',
    });
    const good = signatureHeader(secret, now, body);
    assert.equal(helper.verify(body, good).ok, true);
    assert.deepEqual(helper.verify(body, good), { ok: false, reason: 'replayed' });
    // Forged: another secret, an altered body, a made-up signature.
    assert.deepEqual(helper.verify(body, signatureHeader('not the secret at all!', now, body)), {
      ok: false,
      reason: 'signature-mismatch',
    });
    assert.deepEqual(
      helper.verify(body.replace('failed', 'completed'), signatureHeader(secret, now + 1, body)),
      {
        ok: false,
        reason: 'signature-mismatch',
      },
    );
    assert.deepEqual(helper.verify(body, `t=${now},v1=${'0'.repeat(64)}`), {
      ok: false,
      reason: 'signature-mismatch',
    });
    // Stale and future timestamps, correctly signed; the tolerance's edge passes.
    assert.deepEqual(helper.verify(body, signatureHeader(secret, now - 301, body)), {
      ok: false,
      reason: 'timestamp-outside-tolerance',
    });
    assert.deepEqual(helper.verify(body, signatureHeader(secret, now + 301, body)), {
      ok: false,
      reason: 'timestamp-outside-tolerance',
    });
    assert.equal(helper.verify(body, signatureHeader(secret, now - 300, body)).ok, true);
    assert.deepEqual(helper.verify(body, undefined), { ok: false, reason: 'signature-missing' });
    assert.deepEqual(helper.verify(body, 'v1=abc'), { ok: false, reason: 'signature-malformed' });
    const notJson = 'not json';
    assert.deepEqual(helper.verify(notJson, signatureHeader(secret, now, notJson)), {
      ok: false,
      reason: 'body-invalid',
    });

    // Over HTTP: the listener answers a forged delivery 400 with its reason and never hands it on.
    const before = receiver.arrivals.length;
    const forged = await fetch(receiver.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'simcred-signature': captured.header },
      body: captured.body.replace(/"state":"[a-z]+"/, '"state":"revoked"'),
    });
    assert.equal(forged.status, 400);
    assert.deepEqual(await forged.json(), { reason: 'signature-mismatch' });
    const replayed = await fetch(receiver.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'simcred-signature': captured.header },
      body: captured.body,
    });
    assert.equal(replayed.status, 400);
    assert.deepEqual(await replayed.json(), { reason: 'replayed' });
    assert.equal(receiver.arrivals.length, before);
    receiver.refusals.length = 0;
  });

  test('orders: listed with counts that match, shown, cancelled (only undelivered devices revoked), appended to', async () => {
    const dsimIds = await t.manufacture(6);
    const devices = dsimIds.map((dsimId, i) => ({
      dsimId,
      registrationServer: t.system.urls.registration[i % 2]!,
    }));
    const placed = await t.operator.registerDevices(url(), devices.slice(0, 5), undefined, {
      label: 'to cancel',
    });
    const orderId = placed.orderId!;
    // A webhook for this order alone, added after the order was placed: it gets the order's events from its start.
    const orderSecret = 'the secret of one order';
    const hook = await orders.addWebhook(url(), { url: receiver.url, orderId, secret: orderSecret });
    assert.equal(hook.webhook.orderId, orderId);
    // The receiver now knows both webhooks' secrets (as while rotating one).
    const firstSecret = receiver.secret;
    receiver.receiver = new WebhookReceiver({ secret: [firstSecret, orderSecret] });
    const viaOrderHook = () => receiver.arrivals.filter((n) => n.webhookId === hook.webhook.id);

    // Two devices onboard; three wait at step 2.
    const report = await runFleet({ pkiDir: t.config.pkiDir, dsimIds: dsimIds.slice(0, 2), concurrency: 2 });
    assert.ok(report.outcomes.every((o) => o.ok));
    const shown = await orders.showOrder(url(), orderId);
    assert.equal(shown.state, 'open');
    assert.equal(shown.label, 'to cancel');
    assert.equal(shown.placedBy, 'simcred-portal');
    assert.equal(shown.devices, 5);
    assert.deepEqual(shown.counts, { completed: 2, registered: 3 });

    // Appending: the sixth device joins the same order.
    const appended = await t.operator.registerDevices(url(), devices.slice(5), undefined, { order: orderId });
    assert.equal(appended.orderId, orderId);
    assert.deepEqual((await orders.showOrder(url(), orderId)).counts, { completed: 2, registered: 4 });

    const listed = await orders.listOrders(url(), { limit: 1000 });
    const row = listed.orders.find((o) => o.id === orderId)!;
    assert.deepEqual(row.counts, { completed: 2, registered: 4 });
    assert.equal(listed.orders[0]!.id, orderId, 'newest first');
    assert.ok(
      listed.orders.some(
        (o) => o.label === 'batch A' && o.state === 'completed' && o.counts.completed === 18,
      ),
    );
    const paged = await orders.listOrders(url(), { limit: 1 });
    assert.equal(paged.orders.length, 1);
    const nextPage = await orders.listOrders(url(), { limit: 1, before: paged.next! });
    assert.notEqual(nextPage.orders[0]!.id, paged.orders[0]!.id);

    const cancelled = await orders.cancelOrder(url(), orderId, 'customer withdrew');
    assert.equal(cancelled.revoked, 4);
    assert.equal(cancelled.pastDelivery, 2);
    assert.equal(cancelled.alreadyRevoked, 0);
    assert.equal(cancelled.order.state, 'cancelled');
    assert.deepEqual(cancelled.order.counts, { completed: 2, revoked: 4 });
    for (const dsimId of dsimIds.slice(0, 2))
      assert.equal(
        (await t.operator.deviceState(url(), dsimId)).state,
        'completed',
        'delivered devices keep theirs',
      );
    const again = await orders.cancelOrder(url(), orderId);
    assert.deepEqual([again.revoked, again.alreadyRevoked, again.pastDelivery], [0, 4, 2]);
    await rejectsWith(
      t.operator.registerDevices(url(), devices.slice(5), undefined, { order: orderId }),
      'SIMCRED_ORDER_CANCELLED',
    );
    await rejectsWith(orders.showOrder(url(), 'ord_AAAAAAAAAAAAAAAAAAAAAA'), 'SIMCRED_ORDER_UNKNOWN');
    await rejectsWith(orders.cancelOrder(url(), 'ord_AAAAAAAAAAAAAAAAAAAAAA'), 'SIMCRED_ORDER_UNKNOWN');

    // A revoked device registered again in a new batch moves to the new order.
    const moved = await t.operator.registerDevices(url(), [devices[2]!], undefined, {
      label: 'second chance',
    });
    assert.equal(moved.registered, 1);
    assert.deepEqual((await orders.showOrder(url(), orderId)).counts, { completed: 2, revoked: 3 });
    assert.deepEqual((await orders.showOrder(url(), moved.orderId!)).counts, { registered: 1 });
    // The feed names each event's order at the time it happened.
    const trail = (await feed()).filter((e) => e.dsimId === dsimIds[2] && e.state !== null);
    assert.deepEqual(
      trail.map((e) => [e.state, e.orderId]),
      [
        ['registered', orderId],
        ['revoked', orderId],
        ['registered', moved.orderId],
      ],
    );

    // The order's webhook got its revocations, and nothing of other orders.
    await until(
      () =>
        new Set(
          viaOrderHook()
            .filter((n) => n.state === 'revoked')
            .map((n) => n.dsimId),
        ).size === 4,
    );
    const orderBodies = viaOrderHook();
    assert.ok(orderBodies.every((b) => b.orderId === orderId));
    assert.equal(
      new Set(orderBodies.filter((b) => b.state === 'registered').map((b) => b.dsimId)).size,
      6,
      'from the order start, though added later',
    );
    assert.deepEqual(receiver.refusals, []);
    await orders.removeWebhook(url(), hook.webhook.id);
  });

  test('webhook URLs: https, http to loopback only; unknown ids refused', async () => {
    await rejectsWith(
      orders.addWebhook(url(), { url: 'http://192.0.2.7/hook' }),
      'SIMCRED_WEBHOOK_URL_REFUSED',
    );
    await rejectsWith(
      orders.addWebhook(url(), { url: 'ftp://example.net/hook' }),
      'SIMCRED_WEBHOOK_URL_REFUSED',
    );
    await rejectsWith(
      orders.addWebhook(url(), { url: 'https://user:pw@example.net/hook' }),
      'SIMCRED_WEBHOOK_URL_REFUSED',
    );
    await rejectsWith(
      orders.addWebhook(url(), { url: 'https://example.net/hook', orderId: 'ord_AAAAAAAAAAAAAAAAAAAAAA' }),
      'SIMCRED_ORDER_UNKNOWN',
    );
    const https = await orders.addWebhook(url(), {
      url: 'https://ops.example.net/hook',
      secret: 'given secret 0123456789',
    });
    assert.equal(https.secret, 'given secret 0123456789');
    const loopback = await orders.addWebhook(url(), { url: 'http://localhost:9/hook' });
    await orders.removeWebhook(url(), https.webhook.id);
    await orders.removeWebhook(url(), loopback.webhook.id);
    await rejectsWith(orders.removeWebhook(url(), https.webhook.id), 'SIMCRED_WEBHOOK_UNKNOWN');
  });

  test('no secret in any log line', () => {
    const logs = t.logs();
    assert.ok(!logs.includes('given secret 0123456789'));
    assert.ok(receiver.receiver !== undefined);
  });
});

test('config webhooks; a delivery the receiver keeps refusing is dead after maxAttempts, and listed', async () => {
  const refusing = createServer((_request, response) => response.writeHead(500).end());
  await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
  const port = (refusing.address() as AddressInfo).port;
  const t = await startTestSystem({
    notify: {
      webhooks: [{ url: `http://127.0.0.1:${port}/hook`, secret: 'a configured secret' }],
      maxAttempts: 3,
      retryBaseMs: 20,
      retryMaxMs: 40,
    },
  });
  const orders = new OperatorClient(loadTlsIdentity(t.config.pkiDir, 'portal'));
  try {
    const [webhook] = (await orders.listWebhooks(t.system.urls.credentialing)).webhooks;
    assert.equal(webhook!.source, 'config');
    const [dsimId] = await t.manufacture(1);
    await t.register([dsimId!]);
    await until(async () => (await orders.listWebhooks(t.system.urls.credentialing)).webhooks[0]!.dead === 1);
    const { deliveries } = await orders.deliveries(t.system.urls.credentialing, { failed: true });
    assert.equal(deliveries.length, 1);
    assert.equal(deliveries[0]!.state, 'dead');
    assert.equal(deliveries[0]!.attempts, 3);
    assert.equal(deliveries[0]!.lastError, 'HTTP 500');
    assert.equal(deliveries[0]!.nextAttemptAt, null);
    assert.equal(deliveries[0]!.dsimId, dsimId);
    assert.ok(!t.logs().includes('a configured secret'), 'the secret is never logged');
  } finally {
    await orders.close();
    await t.close();
    await new Promise<void>((resolve) => refusing.close(() => resolve()));
  }
});

test('simcred up --workers 2: two processes share the outbox; every state change once at least, in order per device', async () => {
  const ws = await benchWorkspace();
  await initPki(ws.config.pkiDir);
  const env = { ...ws.env, SIMCRED_NOTIFY__RETRY_BASE_MS: '50', SIMCRED_NOTIFY__RETRY_MAX_MS: '500' };
  const { child, exited } = await startUp(['--dir', ws.dataDir, '--workers', '2'], env);
  const receiver = new TestReceiver();
  const orders = new OperatorClient(loadTlsIdentity(ws.config.pkiDir, 'portal'));
  const operator = new OperatorClient(loadTlsIdentity(ws.config.pkiDir, 'portal'));
  try {
    await receiver.up();
    const { secret } = await orders.addWebhook(ws.urls.credentialing, { url: receiver.url });
    receiver.receiver = new WebhookReceiver({ secret });
    const made = await manufactureDevices({
      dir: ws.config.pkiDir,
      count: 16,
      registrationServers: ws.urls.registration,
      servers: { phlr: ws.urls.phlr, ocsp: ws.urls.ocsp, hss: ws.urls.hss },
      workers: 0,
    });
    const dsimIds = made.devices.map((d) => d.dsimId);
    await operator.registerDevices(
      ws.urls.credentialing,
      dsimIds.map((dsimId, i) => ({ dsimId, registrationServer: ws.urls.registration[i % 2]! })),
    );
    const report = await runFleet({ pkiDir: ws.config.pkiDir, dsimIds, concurrency: 8 });
    assert.ok(report.outcomes.every((o) => o.ok));
    const expected = new Map<string, number[]>();
    await until(async () => {
      const events: FeedEvent[] = [];
      for (let after = 0; ;) {
        const page = await operator.events(ws.urls.credentialing, after, { limit: 1000 });
        if (page.events.length === 0) break;
        events.push(...page.events.filter((e) => e.state !== null));
        after = page.next;
      }
      expected.clear();
      for (const e of events) expected.set(e.dsimId, [...(expected.get(e.dsimId) ?? []), e.id]);
      const arrived = new Set(receiver.arrivals.map((n) => n.eventId));
      return (
        events.filter((e) => e.state === 'attached').length === dsimIds.length &&
        events.every((e) => arrived.has(e.id))
      );
    });
    const firstArrival = new Map<string, number[]>();
    const seen = new Set<number>();
    for (const n of receiver.arrivals) {
      if (seen.has(n.eventId)) continue;
      seen.add(n.eventId);
      firstArrival.set(n.dsimId, [...(firstArrival.get(n.dsimId) ?? []), n.eventId]);
    }
    for (const dsimId of dsimIds) assert.deepEqual(firstArrival.get(dsimId), expected.get(dsimId), dsimId);
    assert.deepEqual(receiver.refusals, []);
  } finally {
    await orders.close();
    await operator.close();
    await receiver.down();
    process.kill(-child.pid!, 'SIGTERM');
    await exited;
    ws.cleanup();
  }
});

test("simcred demo --notify: the demo order's every state change reaches the receiver, verified", async () => {
  const ws = await benchWorkspace();
  const receiver = new TestReceiver();
  const secret = 'the demo receiver secret';
  receiver.receiver = new WebhookReceiver({ secret });
  try {
    await receiver.up();
    const r = await runCli(
      [
        'demo',
        '--devices',
        '5',
        '--dir',
        ws.dataDir,
        '--notify',
        receiver.url,
        '--notify-secret',
        secret,
        '--json',
      ],
      { env: ws.env },
    );
    assert.equal(r.code, 0, r.stderr);
    const summary = lastJsonLine<DemoSummary>(r.stdout);
    assert.equal(summary.notify!.webhooks.length, 1);
    assert.equal(summary.notify!.delivered, 30);
    assert.match(
      r.stdout,
      /notifications to http:\/\/127\.0\.0\.1:\d+\/hooks\/simcred: whk_\S+ \(order ord_\S+\); 30 delivered/,
    );
    const orderId = summary.notify!.webhooks[0]!.orderId;
    for (const n of receiver.arrivals) assert.equal(n.orderId, orderId);
    const byDevice = statesByDevice(receiver.arrivals);
    assert.equal(byDevice.size, 5);
    for (const states of byDevice.values()) assert.deepEqual(states, ONBOARDING_STATES);
    assert.deepEqual(receiver.refusals, []);
  } finally {
    await receiver.down();
    ws.cleanup();
  }
});
