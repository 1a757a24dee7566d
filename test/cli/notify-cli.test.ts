// `simcred operator orders …` and `simcred operator webhooks …` against a live system on loopback, as
// an operator runs them (the built CLI in a child process).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lastJsonLine, runCli, tempDir } from '../helpers/cli.js';
import { startTestSystem, type TestSystem } from '../flow/harness.js';

let t: TestSystem;
const work = tempDir('simcred-notify-cli-');
let env: Record<string, string>;
const cli = (...args: string[]) => runCli([...args, '--dir', t.config.dataDir], { env });

before(async () => {
  // Retries a second apart at least: the failed deliveries stay pending (not yet dead after the 50
  // attempts a delivery gets) however slowly a loaded machine runs the CLI calls below.
  t = await startTestSystem({ notify: { retryBaseMs: 1000, retryMaxMs: 5000 } });
  env = { SIMCRED_PORTS__CREDENTIALING: new URL(t.system.urls.credentialing).port, SIMCRED_DEBUG: '' };
});
after(async () => {
  await t.close();
  work.cleanup();
});

test('operator register --label, orders list|show|cancel, webhooks add|list|deliveries|remove', async () => {
  const dsimIds = await t.manufacture(3);
  const file = join(work.path, 'devices.ndjson');
  writeFileSync(
    file,
    dsimIds
      .map((dsimId) => JSON.stringify({ dsimId, registrationServer: t.system.urls.registration[0] }))
      .join('\n'),
  );

  // A webhook first (to a closed loopback port: every delivery fails, and shows as failed).
  const added = await cli('operator', 'webhooks', 'add', 'http://127.0.0.1:9/hook');
  assert.equal(added.code, 0, added.stderr);
  const [, webhookId] = /^webhook (whk_\S+) → http:\/\/127\.0\.0\.1:9\/hook$/m.exec(added.stdout)!;
  const [, secret] = /^secret (\S+)$/m.exec(added.stdout)!;
  assert.match(secret!, /^[A-Za-z0-9_-]{43}$/);
  const refused = await cli('operator', 'webhooks', 'add', 'http://192.0.2.7/hook');
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /^simcred: error: .*https.*\(SIMCRED_WEBHOOK_URL_REFUSED\)\n$/);

  const registered = await cli('operator', 'register', '--file', file, '--label', 'PO-4711');
  assert.equal(registered.code, 0, registered.stderr);
  const [, orderId] = /^order (ord_\S+)$/m.exec(registered.stdout)!;

  const list = await cli('operator', 'orders', 'list');
  assert.equal(list.code, 0, list.stderr);
  assert.match(
    list.stdout,
    new RegExp(`^${orderId}\\s+open\\s+\\S+\\s+3 devices\\s+PO-4711\\s+\\(registered 3\\)$`, 'm'),
  );
  const listJson = lastJsonLine<{ orders: { id: string; devices: number }[] }>(
    (await cli('operator', 'orders', 'list', '--json')).stdout,
  );
  assert.deepEqual(
    listJson.orders.map((o) => [o.id, o.devices]),
    [[orderId, 3]],
  );
  const shown = await cli('operator', 'orders', 'show', orderId!);
  assert.equal(shown.code, 0, shown.stderr);
  assert.deepEqual(lastJsonLine(shown.stdout).counts, { registered: 3 });

  const webhooks = await cli('operator', 'webhooks', 'list');
  assert.match(
    webhooks.stdout,
    new RegExp(`^${webhookId}\\s+api\\s+http://127\\.0\\.0\\.1:9/hook\\s+pending \\d+`, 'm'),
  );
  assert.ok(!webhooks.stdout.includes(secret!), 'the secret is shown once only');

  // The three 'registered' notifications fail (nobody listens on port 9) and are listed as failed.
  let failed = '';
  while (!/unreachable/.test(failed)) {
    failed = (await cli('operator', 'webhooks', 'deliveries', '--failed')).stdout;
  }
  assert.match(
    failed,
    new RegExp(
      `${webhookId}\\s+event \\d+\\s+DSIM[0-9A-F]{16}\\s+pending\\s+attempts \\d+\\s+last error unreachable: \\S+\\s+next \\S+`,
    ),
  );
  const deliveries = lastJsonLine<{ deliveries: { state: string }[] }>(
    (await cli('operator', 'webhooks', 'deliveries', '--json', '--webhook', webhookId!)).stdout,
  );
  assert.equal(deliveries.deliveries.length, 3);

  const cancelled = await cli('operator', 'orders', 'cancel', orderId!, '--reason', 'test');
  assert.equal(cancelled.code, 0, cancelled.stderr);
  const outcome = lastJsonLine<{ revoked: number; pastDelivery: number; order: { state: string } }>(
    cancelled.stdout,
  );
  assert.deepEqual([outcome.revoked, outcome.pastDelivery, outcome.order.state], [3, 0, 'cancelled']);

  const removed = await cli('operator', 'webhooks', 'remove', webhookId!);
  assert.equal(removed.code, 0, removed.stderr);
  assert.deepEqual(lastJsonLine(removed.stdout), { id: webhookId, removed: true });
  const again = await cli('operator', 'webhooks', 'remove', webhookId!);
  assert.match(again.stderr, /\(SIMCRED_WEBHOOK_UNKNOWN\)\n$/);
  const unknown = await cli('operator', 'orders', 'show', 'ord_AAAAAAAAAAAAAAAAAAAAAA');
  assert.match(unknown.stderr, /\(SIMCRED_ORDER_UNKNOWN\)\n$/);
  assert.ok(!t.logs().includes(secret!), 'the secret never reaches a log line');
});
