import type { Command } from 'commander';
import { SimcredError } from '../errors/index.js';
import { loadTlsIdentity } from '../http/index.js';
import type { ResponseOf } from '../protocol/route.js';
import type { listDeliveries, listOrders, listWebhooks, Order } from '../protocol/orders.js';
import { configuredUrls } from '../system/wiring.js';
import { commonConfig, withCommonOptions, type CommonOptions } from '../cli/system-commands.js';
import { action, positiveInt, printJsonLine } from '../cli/run.js';
import { OperatorClient } from '../portal/operator-client.js';

/**
 * `simcred operator orders list|show|cancel` and `simcred operator webhooks add|list|remove|deliveries`:
 * the operator API of orders and notifications, over mutual TLS as the portal (as `operator register`).
 */
export function registerNotifyCommands(program: Command): void {
  const operator = program.commands.find((c) => c.name() === 'operator');
  if (!operator) throw new Error('the operator command must be registered first');

  const orders = operator.command('orders').description('registration batches as orders: list, show, cancel');
  withCommonOptions(
    orders
      .command('list')
      .description('orders, newest first, with their device counts')
      .option('--limit <N>', 'most orders listed', '50')
      .option('--before <CURSOR>', 'the next-page cursor a previous list printed')
      .option('--json', 'print one JSON line'),
  ).action(
    action(async (options: CommonOptions & { limit: string; before?: string; json?: boolean }) => {
      const limit = positiveInt('--limit', options.limit, 1000);
      const before = options.before === undefined ? undefined : positiveInt('--before', options.before);
      await withOperatorClient(options, async (client, url) => {
        const page = await client.listOrders(url, { limit, ...(before ? { before } : {}) });
        if (options.json) printJsonLine(page);
        else process.stdout.write(formatOrders(page));
      });
    }),
  );
  withCommonOptions(
    orders
      .command('show')
      .description("an order's state and device counts (one JSON line)")
      .argument('<ORDER_ID>'),
  ).action(
    action(async (orderId: string, options: CommonOptions) => {
      // Arguments first: a wrong one is refused before the config or the PKI is read.
      const id = orderIdArg(orderId);
      await withOperatorClient(options, async (client, url) =>
        printJsonLine(await client.showOrder(url, id)),
      );
    }),
  );
  withCommonOptions(
    orders
      .command('cancel')
      .description('cancel an order: its devices not yet delivered are revoked (one JSON line)')
      .argument('<ORDER_ID>')
      .option('--reason <TEXT>'),
  ).action(
    action(async (orderId: string, options: CommonOptions & { reason?: string }) => {
      const id = orderIdArg(orderId);
      await withOperatorClient(options, async (client, url) =>
        printJsonLine(await client.cancelOrder(url, id, options.reason)),
      );
    }),
  );

  const webhooks = operator
    .command('webhooks')
    .description('notifications of every device state change, signed, to your URLs');
  withCommonOptions(
    webhooks
      .command('add')
      .description('subscribe a URL (https; http only to loopback); prints its secret once')
      .argument('<URL>')
      .option('--secret <S>', 'the signing secret (16–256 characters; generated when absent)')
      .option('--order <ORDER_ID>', "only this order's devices (from the order's start)")
      .option('--json', 'print one JSON line'),
  ).action(
    action(
      async (
        target: string,
        options: CommonOptions & { secret?: string; order?: string; json?: boolean },
      ) => {
        if (options.secret !== undefined && (options.secret.length < 16 || options.secret.length > 256))
          throw new SimcredError('SIMCRED_CLI_ARGUMENT', '--secret must be 16 to 256 characters');
        const orderId = options.order === undefined ? undefined : orderIdArg(options.order);
        await withOperatorClient(options, async (client, url) => {
          const added = await client.addWebhook(url, {
            url: target,
            ...(options.secret ? { secret: options.secret } : {}),
            ...(orderId ? { orderId } : {}),
          });
          if (options.json) printJsonLine(added);
          else
            process.stdout.write(
              `webhook ${added.webhook.id} → ${added.webhook.url}${added.webhook.orderId ? ` (order ${added.webhook.orderId})` : ''}\n` +
                `secret ${added.secret}\n  (shown this once: keep it where your receiver reads it)\n`,
            );
        });
      },
    ),
  );
  withCommonOptions(
    webhooks
      .command('list')
      .description('every webhook with its pending, dead and delivered counts')
      .option('--json', 'print one JSON line'),
  ).action(
    action(async (options: CommonOptions & { json?: boolean }) => {
      await withOperatorClient(options, async (client, url) => {
        const list = await client.listWebhooks(url);
        if (options.json) printJsonLine(list);
        else process.stdout.write(formatWebhooks(list));
      });
    }),
  );
  withCommonOptions(
    webhooks.command('remove').description('unsubscribe a webhook (one JSON line)').argument('<WEBHOOK_ID>'),
  ).action(
    action(async (webhookId: string, options: CommonOptions) => {
      if (!/^whk_[A-Za-z0-9_-]{16,32}$/.test(webhookId))
        throw new SimcredError(
          'SIMCRED_CLI_ARGUMENT',
          `${JSON.stringify(webhookId)} is not a webhook id (whk_…)`,
        );
      await withOperatorClient(options, async (client, url) =>
        printJsonLine(await client.removeWebhook(url, webhookId)),
      );
    }),
  );
  withCommonOptions(
    webhooks
      .command('deliveries')
      .description('notification deliveries, newest first: attempts, last error, next attempt')
      .option('--failed', 'only those that failed and are not delivered (retrying or dead)')
      .option('--webhook <WEBHOOK_ID>', "only this webhook's")
      .option('--limit <N>', 'most deliveries listed', '50')
      .option('--json', 'print one JSON line'),
  ).action(
    action(
      async (
        options: CommonOptions & { failed?: boolean; webhook?: string; limit: string; json?: boolean },
      ) => {
        const limit = positiveInt('--limit', options.limit, 1000);
        await withOperatorClient(options, async (client, url) => {
          const page = await client.deliveries(url, {
            failed: options.failed ?? false,
            limit,
            ...(options.webhook ? { webhookId: options.webhook } : {}),
          });
          if (options.json) printJsonLine(page);
          else process.stdout.write(formatDeliveries(page));
        });
      },
    ),
  );
}

/** Runs `run` with the operator API's client (the portal's certificate) and the configured credentialing URL. */
export async function withOperatorClient(
  options: CommonOptions,
  run: (client: OperatorClient, credentialingUrl: string) => Promise<void>,
): Promise<void> {
  const config = commonConfig(options);
  const client = new OperatorClient(loadTlsIdentity(config.pkiDir, 'portal'));
  try {
    await run(client, configuredUrls(config).credentialing);
  } finally {
    await client.close();
  }
}

function orderIdArg(value: string): string {
  if (!/^ord_[A-Za-z0-9_-]{22}$/.test(value))
    throw new SimcredError('SIMCRED_CLI_ARGUMENT', `${JSON.stringify(value)} is not an order id (ord_…)`);
  return value;
}

/** "completed 40, revoked 2" in a stable order: the flow's states first, then any other. */
export function formatCounts(counts: Order['counts']): string {
  const order = ['registered', 'authenticating', 'referred', 'delivered', 'completed', 'revoked', 'expired'];
  const names = Object.keys(counts).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  function rank(s: string): number {
    const i = order.indexOf(s);
    return i < 0 ? order.length : i;
  }
  return names.map((s) => `${s} ${counts[s]}`).join(', ') || 'no devices';
}

function formatOrders(page: ResponseOf<typeof listOrders>): string {
  const lines = page.orders.map(
    (o) =>
      `${o.id}  ${o.state.padEnd(9)}  ${o.createdAt}  ${String(o.devices).padStart(8)} devices  ${o.label ?? '-'}  (${formatCounts(o.counts)})`,
  );
  if (page.orders.length === 0) lines.push('no orders');
  if (page.next !== null) lines.push(`more: --before ${page.next}`);
  return `${lines.join('\n')}\n`;
}

function formatWebhooks(list: ResponseOf<typeof listWebhooks>): string {
  const lines = list.webhooks.map(
    (w) =>
      `${w.id}  ${w.source.padEnd(6)}  ${w.url}${w.orderId ? `  order ${w.orderId}` : ''}  pending ${w.pending}, dead ${w.dead}, delivered ${w.delivered}`,
  );
  if (lines.length === 0) lines.push('no webhooks');
  return `${lines.join('\n')}\n`;
}

function formatDeliveries(page: ResponseOf<typeof listDeliveries>): string {
  const lines = page.deliveries.map(
    (d) =>
      `${String(d.id).padStart(8)}  ${d.webhookId}  event ${d.eventId}  ${d.dsimId}  ${d.state.padEnd(9)}  attempts ${d.attempts}` +
      (d.lastError ? `  last error ${d.lastError}` : '') +
      (d.nextAttemptAt ? `  next ${d.nextAttemptAt}` : ''),
  );
  if (lines.length === 0) lines.push('no deliveries');
  if (page.next !== null) lines.push(`more: older than ${page.next}`);
  return `${lines.join('\n')}\n`;
}
