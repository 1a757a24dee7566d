import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { SimcredConfig } from '../config/index.js';
import { choosePackageFormat, type PackageFormat } from '../crypto/index.js';
import { failureCounts, runFleet, stepStatistics, type FleetReport } from '../device/fleet.js';
import type { Delivery } from '../device/agent.js';
import { MODULE_STATE_FILE } from '../device/trusted-module.js';
import { openDeviceModule } from '../device/tpm-module.js';
import { PeerClient, loadTlsIdentity } from '../http/index.js';
import { HssStore } from '../hss/store.js';
import {
  CaStore,
  deviceDir,
  imageServers,
  initPki,
  loadFactoryImage,
  manufactureDevices,
  readFactoryImage,
  type FactoryServers,
} from '../pki/index.js';
import { PortalClient } from '../portal/portal-client.js';
import { OperatorClient } from '../portal/operator-client.js';
import * as portal from '../protocol/portal.js';
import { startSystem, type RunningSystem } from './start.js';
import { configuredUrls, roleDatabase } from './wiring.js';

export interface DemoOptions {
  devices: number;
  concurrency: number;
  logger: Logger;
  onPhase?(phase: 'manufacture' | 'register' | 'onboard', total: number): void;
  onProgress?(phase: 'manufacture' | 'register' | 'onboard', done: number): void;
  /**
   * Called with the summary while the system the demo started still runs (`npm start` keeps it up
   * until Ctrl-C); the system stops when it resolves.
   */
  hold?(summary: DemoSummary, portal: { url: string; logins: DemoLogins }): Promise<void>;
  /** `--notify URL`: a webhook subscribed to the demo's order(s) before the devices start. */
  notify?: { url: string; secret?: string | undefined };
  /**
   * `--package-format`: the fleet gets packages in this format — devices are manufactured opening
   * only it, and a device already made is reused only if the deployment would seal it this format.
   */
  packageFormat?: PackageFormat;
  /** `--delivery`: how the devices collect their packages (JSON route or OMA DM session; json by default). */
  delivery?: Delivery;
}

/** The demo's portal accounts: the owner whose contract holds the fleet, and an operator. */
export interface DemoLogins {
  owner: { email: string; password: string };
  operator: { email: string; password: string };
}

export interface DemoSummary {
  devices: number;
  provisioned: number;
  failed: number;
  distinctImsis: number;
  hssSubscribers: number;
  /** Devices the HSS holds as attached with their downloaded credentials (state 'active'). */
  attached: number;
  /** How the devices collected their packages. */
  delivery: Delivery;
  elapsedMs: number;
  perSecond: number;
  system: 'in-process' | 'running';
  /** The demo owner's contract that holds the fleet (registered through the portal). */
  contractId: string;
  manufactured: number;
  registration: { registered: number; rejected: number; elapsedMs: number };
  steps: ReturnType<typeof stepStatistics>;
  failures: Record<string, number>;
  /** With --notify: the webhooks subscribed (one per order the upload became) and their secret. */
  notify?: {
    url: string;
    secret: string;
    webhooks: { id: string; orderId: string }[];
    /** Notifications acknowledged by the receiver when the summary was made. */
    delivered: number;
  };
}

async function runningSystemAnswers(config: SimcredConfig, operatorRoot: string): Promise<boolean> {
  const client = new PeerClient({ tls: { ca: [operatorRoot] }, timeoutMs: 1000 });
  try {
    const { statusCode } = await client.send(
      `${configuredUrls(config).credentialing}/health`,
      'GET',
      undefined,
      '',
    );
    return statusCode === 200;
  } catch {
    return false;
  } finally {
    await client.close();
  }
}

/**
 * `simcred demo`: N devices that hold no credentials yet (manufactured when there are too few),
 * registered as one streamed batch, then driven through steps 1–12 (attach included) against the
 * running system or one started in this process. The summary is counted from what the modules and
 * the HSS hold.
 */
export async function runDemo(config: SimcredConfig, options: DemoOptions): Promise<DemoSummary> {
  const started = performance.now();
  await initPki(config.pkiDir);
  const urls = configuredUrls(config);
  const operatorRoot = (await loadFactoryRoot(config)) ?? '';
  let system: RunningSystem | undefined;
  const running = operatorRoot !== '' && (await runningSystemAnswers(config, operatorRoot));
  const logins = demoLogins(config);
  if (!running) system = await startSystem(withDemoOperator(config, logins), options.logger);
  const live = system?.urls ?? urls;
  const store = await CaStore.open(config.pkiDir);
  const owner = new PortalClient(live.portal, loadTlsIdentity(config.pkiDir, 'portal').ca[0]!);
  try {
    // Devices still without credentials, whose factory image names this system's servers: one of its
    // registration servers (ca.db knows it), and its PHLR, OCSP responder and HSS (the image does).
    const servers = new Set(live.registration);
    const others: FactoryServers = { phlr: live.phlr, ocsp: live.ocsp, hss: live.hss };
    const fleet: { dsimId: string; registrationServer: string }[] = [];
    for (const d of await store.listDevices()) {
      if (fleet.length >= options.devices) break;
      if (!servers.has(d.registrationServer)) continue;
      if (existsSync(join(deviceDir(config.pkiDir, d.dsimId), MODULE_STATE_FILE))) continue;
      if (!namesServers(config.pkiDir, d.dsimId, others)) continue;
      if (options.packageFormat && !getsFormat(config, d.dsimId, options.packageFormat)) continue;
      fleet.push(d);
    }
    const missing = options.devices - fleet.length;
    if (missing > 0) {
      options.onPhase?.('manufacture', missing);
      const made = await manufactureDevices({
        dir: config.pkiDir,
        count: missing,
        registrationServers: live.registration,
        servers: others,
        ...(options.packageFormat ? { packageFormats: [options.packageFormat] } : {}),
        onProgress: (n) => options.onProgress?.('manufacture', n),
      });
      const assigned = new Map((await store.listDevices()).map((d) => [d.dsimId, d.registrationServer]));
      fleet.push(
        ...made.devices.map((d) => ({ dsimId: d.dsimId, registrationServer: assigned.get(d.dsimId)! })),
      );
    }
    const dsimIds = fleet.map((d) => d.dsimId);

    // Step 0a as an owner makes it: a contract in the portal, and the fleet uploaded to it.
    options.onPhase?.('register', fleet.length);
    const registrationStarted = performance.now();
    await owner.signIn({ ...logins.owner, name: 'Demo fleet owner' });
    const contract = await owner.call(portal.createContract, {
      body: {
        planId: fleetPlan(config, fleet.length),
        billing: {
          name: 'Demo Fleet Ltd',
          address: '1 Demo Street, Testville',
          country: 'GB',
          email: logins.owner.email,
        },
        paymentReference: `DEMO-${new Date().toISOString().slice(0, 10)}`,
      },
    });
    let sent = 0;
    const upload = await owner.upload(
      contract.id,
      (function* () {
        for (const device of fleet) {
          yield JSON.stringify(device);
          if (++sent % 1000 === 0) options.onProgress?.('register', sent);
        }
      })(),
      'demo-fleet.ndjson',
    );
    options.onProgress?.('register', fleet.length);
    const registration = {
      registered: upload.accepted,
      rejected: upload.rejectedCount,
      elapsedMs: Math.round(performance.now() - registrationStarted),
    };

    const notify = options.notify
      ? await subscribeDemoOrders(config, live.credentialing, `contract ${contract.id}`, options.notify)
      : undefined;

    options.onPhase?.('onboard', fleet.length);
    const onboardStarted = performance.now();
    let done = 0;
    const report: FleetReport = await runFleet({
      pkiDir: config.pkiDir,
      dsimIds,
      // Each device finds the servers through its factory image.
      ocspOptions: { clockSkewSeconds: config.ocsp.clockSkewSeconds, timeoutMs: config.ocsp.timeoutMs },
      concurrency: options.concurrency,
      maxRetryDelayMs: 2000,
      ...(options.delivery ? { delivery: options.delivery } : {}),
      onDeviceDone: () => options.onProgress?.('onboard', ++done),
    });
    const onboardMs = performance.now() - onboardStarted;
    if (notify) {
      // Every onboarded device makes 6 state changes (registered … attached): give the receiver a
      // moment to have them before the summary (and, without --keep-running, the system's stop;
      // what is still owed then stays in the outbox for the next start).
      const provisioned = report.outcomes.filter((o) => o.ok).length;
      notify.delivered = await notificationsDelivered(config, live.credentialing, notify, provisioned * 6);
    }

    // Count from what the modules and the HSS hold, not from the driver's tally.
    const imsis: string[] = [];
    for (const dsimId of dsimIds) {
      const module = await openDeviceModule(await loadFactoryImage(config.pkiDir, dsimId));
      if (module.subscription) imsis.push(module.subscription.imsi);
    }
    const { hssSubscribers, attached } = await hssFleetCounts(config, dsimIds);
    const failures = failureCounts(report.outcomes);
    const summary: DemoSummary = {
      devices: fleet.length,
      provisioned: imsis.length,
      failed: fleet.length - imsis.length,
      distinctImsis: new Set(imsis).size,
      hssSubscribers,
      attached,
      delivery: options.delivery ?? 'json',
      elapsedMs: Math.round(performance.now() - started),
      perSecond: Math.round((imsis.length / onboardMs) * 1000 * 10) / 10,
      system: running ? 'running' : 'in-process',
      contractId: contract.id,
      manufactured: Math.max(missing, 0),
      registration,
      steps: stepStatistics(report.outcomes),
      failures,
      ...(notify ? { notify } : {}),
    };
    await options.hold?.(summary, { url: live.portal, logins });
    return summary;
  } finally {
    await owner.close();
    await store.close();
    await system?.close();
  }
}

/**
 * The demo's portal logins, made once per data folder (`<dataDir>/demo/logins.json`, readable by its
 * owner only) so that `npm start` prints the same ones each time.
 */
function demoLogins(config: SimcredConfig): DemoLogins {
  const dir = join(config.dataDir, 'demo');
  const file = join(dir, 'logins.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as DemoLogins;
  const password = () => randomBytes(15).toString('base64url');
  const logins: DemoLogins = {
    owner: { email: 'owner@demo.simcred.example', password: password() },
    operator: { email: 'operator@demo.simcred.example', password: password() },
  };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(file, `${JSON.stringify(logins, null, 2)}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'operator-password'), `${logins.operator.password}\n`, { mode: 0o600 });
  return logins;
}

/** The configuration with the demo operator among the portal's operator accounts. */
function withDemoOperator(config: SimcredConfig, logins: DemoLogins): SimcredConfig {
  const operator = {
    email: logins.operator.email,
    passwordFile: join(config.dataDir, 'demo', 'operator-password'),
    name: 'Demo operator',
  };
  return { ...config, portal: { ...config.portal, operators: [...config.portal.operators, operator] } };
}

/** The smallest plan of the catalogue that holds the fleet (the largest if none does). */
function fleetPlan(config: SimcredConfig, devices: number): string {
  const plans = [...config.portal.plans].sort((a, b) => a.maxDevices - b.maxDevices);
  return (plans.find((p) => p.maxDevices >= devices) ?? plans.at(-1)!).id;
}

/** Whether a device's factory image names these servers; an unreadable image names none. */
function namesServers(pkiDir: string, dsimId: string, live: FactoryServers): boolean {
  let image: Partial<FactoryServers>;
  try {
    image = imageServers(readFactoryImage(pkiDir, dsimId));
  } catch {
    return false;
  }
  return image.phlr === live.phlr && image.ocsp === live.ocsp && image.hss === live.hss;
}

/** Whether the deployment's preference would give this device a package in `format`. */
function getsFormat(config: SimcredConfig, dsimId: string, format: PackageFormat): boolean {
  try {
    const image = readFactoryImage(config.pkiDir, dsimId);
    return choosePackageFormat(config.credentialing.packageFormats, image.packageFormats) === format;
  } catch {
    return false;
  }
}

async function loadFactoryRoot(config: SimcredConfig): Promise<string | undefined> {
  try {
    return loadTlsIdentity(config.pkiDir, 'portal').ca[0];
  } catch {
    return undefined;
  }
}

/** What the HSS holds for a fleet: subscribers, and those that attached with their new credentials. */
export async function hssFleetCounts(
  config: SimcredConfig,
  dsimIds: string[],
): Promise<{ hssSubscribers: number; attached: number }> {
  const hss = await HssStore.open(roleDatabase(config, 'hss'));
  try {
    return {
      hssSubscribers: await hss.countSubscribersFor(dsimIds),
      attached: await hss.countActiveFor(dsimIds),
    };
  } finally {
    await hss.close();
  }
}

/**
 * The demo's `--notify URL`: the portal registers an upload in chunks, each an order labelled with
 * the contract; each of those orders gets the webhook, all with one secret. An order's webhook is
 * sent its events from the order's start, so subscribing after the upload misses nothing.
 */
async function subscribeDemoOrders(
  config: SimcredConfig,
  credentialingUrl: string,
  label: string,
  notify: { url: string; secret?: string | undefined },
): Promise<NonNullable<DemoSummary['notify']>> {
  const client = new OperatorClient(loadTlsIdentity(config.pkiDir, 'portal'));
  try {
    const secret = notify.secret ?? randomBytes(32).toString('base64url');
    const webhooks: { id: string; orderId: string }[] = [];
    for (let before: number | undefined; ;) {
      const page = await client.listOrders(credentialingUrl, { limit: 1000, ...(before ? { before } : {}) });
      for (const order of page.orders.filter((o) => o.label === label)) {
        const { webhook } = await client.addWebhook(credentialingUrl, {
          url: notify.url,
          secret,
          orderId: order.id,
        });
        webhooks.push({ id: webhook.id, orderId: order.id });
      }
      // The contract was made just now: its orders are among the newest.
      if (page.next === null || webhooks.length > 0) break;
      before = page.next;
    }
    return { url: notify.url, secret, webhooks, delivered: 0 };
  } finally {
    await client.close();
  }
}

/** Waits (up to 15 s) until the demo's webhooks have `expected` deliveries acknowledged; returns how many. */
async function notificationsDelivered(
  config: SimcredConfig,
  credentialingUrl: string,
  notify: NonNullable<DemoSummary['notify']>,
  expected: number,
): Promise<number> {
  const client = new OperatorClient(loadTlsIdentity(config.pkiDir, 'portal'));
  const ids = new Set(notify.webhooks.map((w) => w.id));
  const deadline = Date.now() + 15_000;
  try {
    for (;;) {
      const { webhooks } = await client.listWebhooks(credentialingUrl);
      const delivered = webhooks.filter((w) => ids.has(w.id)).reduce((sum, w) => sum + w.delivered, 0);
      if (delivered >= expected || Date.now() > deadline) return delivered;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    await client.close();
  }
}
