import { Option, type Command } from 'commander';
import cluster from 'node:cluster';
import { loadConfig, type SimcredConfig } from '../config/index.js';
import { SimcredError } from '../errors/index.js';
import { PACKAGE_FORMATS, type PackageFormat } from '../crypto/index.js';
import { DELIVERIES, type Delivery } from '../device/agent.js';
import { loadTlsIdentity } from '../http/index.js';
import { createLogger } from '../log/logger.js';
import { OperatorClient } from '../portal/operator-client.js';
import { runDemo, type DemoLogins, type DemoSummary } from '../system/demo.js';
import {
  SERVABLE_ROLES,
  readPasswordFile,
  startPortal,
  startRole,
  type ServableRole,
} from '../system/roles.js';
import { AccountService } from '../portal/accounts.js';
import { openPortalStore } from '../portal/store.js';
import { roleDatabase } from '../system/wiring.js';
import { email as emailField } from '../protocol/portal.js';
import { startSystem, type RunningSystem } from '../system/start.js';
import { serveAsWorker, startWorkers } from '../system/workers.js';
import { configuredUrls } from '../system/wiring.js';
import { startProgress, type Progress } from './progress.js';
import { metricsUrls, processOperations, reloadLive } from '../ops/process.js';
import { serveUntilSignal } from '../ops/signals.js';
import type { RunningServer } from '../http/index.js';
import {
  REPROVISION_OPTION_HELP,
  action,
  oneLine,
  positiveInt,
  printJsonLine,
  readInputFile,
  reprovisionPolicy,
} from './run.js';

export interface CommonOptions {
  dir?: string;
  config?: string;
}

/** --dir and --config, as every command that loads the config takes them. */
export function withCommonOptions(command: Command): Command {
  return command
    .option('--dir <DATA>', 'data folder (SQLite files, demo PKI)')
    .option('--config <FILE>', 'JSON config file (SIMCRED_* environment variables override it)');
}

export function commonConfig(options: CommonOptions): SimcredConfig {
  return loadConfig({
    file: options.config,
    env: process.env,
    overrides: options.dir ? { dataDir: options.dir } : {},
  });
}

/** Stops cleanly on Ctrl-C / SIGTERM. */
export function untilSignal(close: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void close().then(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

export function registerSystemCommands(program: Command, serve: Command): void {
  const withCommon = withCommonOptions;

  withCommon(
    program
      .command('up')
      .description('start every role on loopback (embedded default); Ctrl-C stops')
      .option('--workers <N>', 'processes serving every role on the same ports (one per core)', '1')
      .option('--json', "print one JSON line with each role's URL once every role listens"),
  ).action(
    action(async (options: CommonOptions & { workers: string; json?: boolean }) => {
      const workers = positiveInt('--workers', options.workers, 64);
      const config = commonConfig(options);
      const logger = createLogger({ name: 'simcred', level: config.log.level });
      if (cluster.isWorker) return serveAsWorker(config, logger);
      let urls: RunningSystem['urls'];
      let close: () => Promise<void>;
      let metrics: Record<string, string>;
      let reload: (() => Promise<void>) | undefined;
      let onDraining: (() => void) | undefined;
      const graceMs = config.operations.shutdownGraceMs;
      if (workers > 1) {
        const pool = await startWorkers(config, workers, logger);
        ({ urls, metrics } = pool);
        close = () => pool.close(graceMs);
        onDraining = () => pool.startDraining();
        reload = async () => pool.reload();
      } else {
        const ops = processOperations(config);
        const system = await startSystem(config, logger, { telemetry: ops.telemetry });
        const listener = await ops.listen(logger).catch(async (err: unknown) => {
          await system.close();
          throw err;
        });
        urls = system.urls;
        metrics = metricsUrls(ops.telemetry, listener);
        close = async () => {
          await system.close();
          await listener.close();
        };
        onDraining = () => {
          ops.telemetry.startDraining();
          for (const server of [...systemServers(system), system.servers.ocsp]) server.holdIdleConnections();
        };
        reload = async () => reloadLive(commonConfig(options), systemServers(system));
      }
      const rows: [string, string][] = [
        ['credentialing', urls.credentialing],
        ...urls.registration.map((url, i): [string, string] => [`registration-${i + 1}`, url]),
        ...urls.provisioning.map((url, i): [string, string] => [`provisioning-${i + 1}`, url]),
        ['hss', urls.hss],
        ['phlr', urls.phlr],
        ['ocsp', urls.ocsp],
        ['portal', urls.portal],
        ['metrics', Object.values(metrics)[0] ?? ''],
      ];
      if (options.json) {
        // For scripts: every role listens by now; the line holds each role's URL.
        printJsonLine({ ...urls, metrics });
      } else {
        process.stdout.write(
          `simcred up — data in ${config.dataDir}${workers > 1 ? `, ${workers} worker processes` : ''}\n`,
        );
        for (const [role, url] of rows) process.stdout.write(`  ${role.padEnd(16)} ${url}\n`);
        process.stdout.write('Ctrl-C stops every role.\n');
      }
      await serveUntilSignal({ close, graceMs, logger, onDraining, reload });
    }),
  );

  withCommon(
    program
      .command('demo')
      .description('drive a fleet of simulated devices through steps 0–12 and print a summary')
      .requiredOption('--devices <N>', 'number of devices')
      .option('--concurrency <C>', 'devices onboarding at once', '32')
      .option(
        '--keep-running',
        'after the summary, keep every role and the portal up until Ctrl-C (npm start)',
      )
      .option('--notify <URL>', "subscribe a webhook to the demo's order (its secret is printed)")
      .option('--notify-secret <S>', 'the webhook secret for --notify (generated when absent)')
      .addOption(
        new Option(
          '--package-format <FORMAT>',
          'credential packages in this format: devices that open only it',
        ).choices(PACKAGE_FORMATS),
      )
      .addOption(
        new Option('--delivery <HOW>', 'how devices collect their packages: JSON route or OMA DM session')
          .choices(DELIVERIES)
          .default('json'),
      )
      .option('--json', 'print one JSON line last'),
  ).action(
    action(
      async (
        options: CommonOptions & {
          devices: string;
          concurrency: string;
          json?: boolean;
          keepRunning?: boolean;
          notify?: string;
          notifySecret?: string;
          packageFormat?: PackageFormat;
          delivery: Delivery;
        },
      ) => {
        const devices = positiveInt('--devices', options.devices, 10_000_000);
        const concurrency = positiveInt('--concurrency', options.concurrency, 4096);
        const config = commonConfig(options);
        const logger = createLogger({
          name: 'simcred',
          level: config.log.level === 'info' ? 'warn' : config.log.level,
        });
        let progress: Progress | undefined;
        const summary = await runDemo(config, {
          devices,
          concurrency,
          logger,
          ...(options.notify ? { notify: { url: options.notify, secret: options.notifySecret } } : {}),
          ...(options.packageFormat ? { packageFormat: options.packageFormat } : {}),
          delivery: options.delivery,
          onPhase: (phase, total) => {
            progress?.stop();
            progress = startProgress(phase, total);
          },
          onProgress: (_phase, done) => progress?.update(done),
          ...(options.keepRunning
            ? {
                hold: async (held, portal) => {
                  progress?.stop();
                  process.stdout.write(formatDemoSummary(held) + formatPortalLogins(held, portal));
                  if (options.json) printJsonLine(held);
                  await untilSignal(async () => undefined);
                },
              }
            : {}),
        });
        progress?.stop();
        if (!options.keepRunning) {
          process.stdout.write(formatDemoSummary(summary));
          if (options.json) printJsonLine(summary);
        }
        if (summary.failed > 0 || summary.attached < summary.devices) process.exitCode = 1;
      },
    ),
  );

  for (const role of SERVABLE_ROLES) {
    withCommon(
      serve
        .command(role)
        .description(`run the ${role} server alone (peers at the configured URLs)`)
        .option('--instance <N>', 'which of several registration/provisioning servers (1-based)', '1'),
    ).action(
      action(async (options: CommonOptions & { instance: string }) => {
        const config = commonConfig(options);
        const logger = createLogger({ name: role, level: config.log.level });
        const ops = processOperations(config);
        const server = await startRole(
          config,
          role as ServableRole,
          positiveInt('--instance', options.instance, 64),
          logger,
          undefined,
          { telemetry: ops.telemetry },
        );
        const listener = await ops.listen(logger).catch(async (err: unknown) => {
          await server.close();
          throw err;
        });
        process.stdout.write(`${role} listening on ${server.url}\n`);
        process.stdout.write(`${role} metrics on ${listener.url}/metrics\n`);
        await serveRole(server, listener, ops.telemetry, options, logger);
      }),
    );
  }

  withCommon(
    serve.command('portal').description('run the contract portal alone: browser front end and API'),
  ).action(
    action(async (options: CommonOptions) => {
      const config = commonConfig(options);
      const logger = createLogger({ name: 'portal', level: config.log.level });
      const ops = processOperations(config);
      const server = await startPortal(config, logger, undefined, { telemetry: ops.telemetry });
      const listener = await ops.listen(logger).catch(async (err: unknown) => {
        await server.close();
        throw err;
      });
      process.stdout.write(`portal listening on ${server.url}\n`);
      process.stdout.write(`portal metrics on ${listener.url}/metrics\n`);
      await serveRole(server, listener, ops.telemetry, options, logger);
    }),
  );

  const portal = program.command('portal').description("the contract portal's accounts");
  withCommon(
    portal
      .command('add-operator')
      .description('create an operator console account, or set its password (owners sign up in the browser)')
      .requiredOption('--email <EMAIL>', "the operator's sign-in e-mail")
      .requiredOption('--password-file <FILE>', 'file whose first line is the password (12–256 characters)')
      .option('--name <NAME>', 'name shown in the console', 'Operator'),
  ).action(
    action(async (options: CommonOptions & { email: string; passwordFile: string; name: string }) => {
      const email = emailField.safeParse(options.email);
      if (!email.success) throw new SimcredError('SIMCRED_CLI_ARGUMENT', '--email must be an e-mail address');
      const password = readPasswordFile(options.passwordFile, '--password-file');
      const config = commonConfig(options);
      const db = await openPortalStore(roleDatabase(config, 'portal'));
      try {
        const accounts = new AccountService({
          db,
          clock: () => new Date(),
          sessionTtlSeconds: config.portal.sessionTtlSeconds,
          loginAttempts: config.portal.loginAttempts,
          loginWindowSeconds: config.portal.loginWindowSeconds,
        });
        const account = await accounts.ensureOperator({ email: email.data, password, name: options.name });
        printJsonLine(account);
      } finally {
        await db.destroy();
      }
    }),
  );

  const operator = program
    .command('operator')
    .description(
      "the operator's API: register, inspect, revoke, suspend, resume, delete devices; enrollment groups",
    );
  withCommon(
    operator
      .command('register')
      .description(
        'register devices from an NDJSON file of {"dsimId","registrationServer"} lines (- for stdin)',
      )
      .requiredOption('--file <FILE>', 'NDJSON device list')
      .option('--label <TEXT>', 'a label for the order the batch becomes')
      .option('--order <ORDER_ID>', 'add the batch to this existing order')
      .option('--reprovision <POLICY>', REPROVISION_OPTION_HELP)
      .option('--json', 'print one JSON line last'),
  ).action(
    action(
      async (
        options: CommonOptions & {
          file: string;
          label?: string;
          order?: string;
          reprovision?: string;
          json?: boolean;
        },
      ) => {
        const reprovision = reprovisionPolicy(options.reprovision);
        const config = commonConfig(options);
        const { devices, fileLines } = readDeviceList(options.file);
        const client = new OperatorClient(loadTlsIdentity(config.pkiDir, 'portal'));
        const progress = startProgress('register', devices.length);
        try {
          const sent = await client.registerDevices(
            configuredUrls(config).credentialing,
            devices,
            (n) => progress.update(n),
            {
              ...(options.label ? { label: options.label } : {}),
              ...(options.order ? { order: options.order } : {}),
              ...(reprovision ? { reprovision } : {}),
            },
          );
          progress.stop();
          // The server numbers the devices it was sent; the user knows the lines of their file.
          const summary = { ...sent, rejected: sent.rejected.map((r) => atFileLine(r, fileLines)) };
          if (options.json) printJsonLine(summary);
          else process.stdout.write(formatRegisterSummary(summary));
        } finally {
          progress.stop();
          await client.close();
        }
      },
    ),
  );
  withCommon(
    operator.command('state').description("a device's state and audit trail").argument('<DSIM_ID>'),
  ).action(
    action(async (dsimId: string, options: CommonOptions) => {
      const config = commonConfig(options);
      const client = new OperatorClient(loadTlsIdentity(config.pkiDir, 'portal'));
      try {
        printJsonLine(await client.deviceState(configuredUrls(config).credentialing, dsimId));
      } finally {
        await client.close();
      }
    }),
  );
  withCommon(
    operator
      .command('revoke')
      .description('revoke a registration at any step (after delivery the HSS subscriber is released)')
      .argument('<DSIM_ID>')
      .option('--reason <TEXT>'),
  ).action(
    action(async (dsimId: string, options: CommonOptions & { reason?: string }) => {
      const config = commonConfig(options);
      const client = new OperatorClient(loadTlsIdentity(config.pkiDir, 'portal'));
      try {
        printJsonLine(await client.revoke(configuredUrls(config).credentialing, dsimId, options.reason));
      } finally {
        await client.close();
      }
    }),
  );
}

/** `serve ROLE` until SIGTERM: drain within the grace, SIGHUP reloads the role's certificate. */
export async function serveRole(
  server: RunningServer,
  listener: { close(): Promise<void> },
  telemetry: { startDraining(): void },
  options: CommonOptions,
  logger: ReturnType<typeof createLogger>,
): Promise<void> {
  const config = commonConfig(options);
  await serveUntilSignal({
    close: async () => {
      await server.close();
      await listener.close();
    },
    graceMs: config.operations.shutdownGraceMs,
    logger,
    onDraining: () => {
      telemetry.startDraining();
      server.holdIdleConnections();
    },
    reload: async () => reloadLive(commonConfig(options), [server]),
  });
}

/** Every role server of a system that has a TLS identity to reload. */
function systemServers(system: RunningSystem): RunningServer[] {
  const s = system.servers;
  return [s.hss, s.phlr, s.credentialing, ...s.registration, ...s.provisioning, s.portal];
}

interface Rejection {
  line: number;
  code: string;
  message: string;
}

/**
 * The NDJSON device list of `operator register` (`-` is stdin), each device with the line of the
 * file it came from; a line that is not JSON stops the command before anything is sent.
 */
function readDeviceList(file: string): {
  devices: { dsimId: string; registrationServer: string }[];
  fileLines: number[];
} {
  const devices: { dsimId: string; registrationServer: string }[] = [];
  const fileLines: number[] = [];
  readInputFile('--file', file)
    .toString('utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.trim()) return;
      try {
        devices.push(JSON.parse(line) as { dsimId: string; registrationServer: string });
      } catch {
        throw new SimcredError('SIMCRED_CLI_ARGUMENT', `${file} line ${i + 1} is not JSON`);
      }
      fileLines.push(i + 1);
    });
  return { devices, fileLines };
}

/** A rejection of the n-th device sent, renumbered to its line in the file (message included). */
function atFileLine(rejection: Rejection, fileLines: number[]): Rejection {
  const line = fileLines[rejection.line - 1] ?? rejection.line;
  const message = rejection.message.replace(new RegExp(`^line ${rejection.line}\\b`), `line ${line}`);
  return { ...rejection, line, message };
}

/** `operator register` without --json: the counts, then one line per rejection with its reason. */
export function formatRegisterSummary(summary: {
  registered: number;
  unchanged: number;
  rejected: Rejection[];
  orderId?: string | null;
}): string {
  const lines = [
    `registered ${summary.registered}, unchanged ${summary.unchanged}, rejected ${summary.rejected.length}`,
    ...(summary.orderId ? [`order ${summary.orderId}`] : []),
  ];
  if (summary.rejected.length > 0) {
    const width = Math.max(...summary.rejected.map((r) => r.code.length));
    lines.push(`  ${'line'.padStart(6)}  ${'code'.padEnd(width)}  reason`);
    for (const r of summary.rejected) {
      const reason = r.message.replace(new RegExp(`^line ${r.line}:\\s*`), '');
      lines.push(`  ${String(r.line).padStart(6)}  ${r.code.padEnd(width)}  ${oneLine(reason)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** The demo's summary table (counts from the modules and the HSS; latency per device step). */
/** Where to look at the demo fleet in the browser, and who to sign in as. */
function formatPortalLogins(s: DemoSummary, portal: { url: string; logins: DemoLogins }): string {
  const { owner, operator } = portal.logins;
  return [
    `The demo fleet is contract ${s.contractId} in the portal: ${portal.url}`,
    `  owner     ${owner.email}  password ${owner.password}`,
    `  operator  ${operator.email}  password ${operator.password}`,
    '  (the browser will warn about the demo operator CA; the logins are kept in the data folder, demo/logins.json)',
    'Every role and the portal keep running; Ctrl-C stops them.',
    '',
  ].join('\n');
}

export function formatDemoSummary(s: DemoSummary): string {
  const ms = (v: number) => v.toFixed(1).padStart(9);
  const lines = [
    '',
    `simcred demo — ${s.devices} devices (${s.system} system${s.manufactured ? `, ${s.manufactured} manufactured` : ''})`,
    `  registered ${s.registration.registered} through the portal (contract ${s.contractId}) in ${s.registration.elapsedMs} ms` +
      (s.registration.rejected ? `, ${s.registration.rejected} rejected` : ''),
    `  provisioned ${s.provisioned}, failed ${s.failed}, distinct IMSIs ${s.distinctImsis}, HSS subscribers ${s.hssSubscribers}, attached ${s.attached}`,
    `  ${s.perSecond} onboardings/s, ${(s.elapsedMs / 1000).toFixed(1)} s in all, delivery over ${s.delivery === 'omadm' ? 'OMA DM' : 'JSON'}`,
    '',
    `  ${'step'.padEnd(10)}${'count'.padStart(8)}${'p50 ms'.padStart(10)}${'p95 ms'.padStart(10)}${'p99 ms'.padStart(10)}`,
    ...s.steps.map(
      (r) => `  ${r.step.padEnd(10)}${String(r.count).padStart(8)} ${ms(r.p50)} ${ms(r.p95)} ${ms(r.p99)}`,
    ),
  ];
  if (s.notify) {
    lines.push(
      '',
      `  notifications to ${s.notify.url}: ${s.notify.webhooks.map((w) => `${w.id} (order ${w.orderId})`).join(', ')}; ${s.notify.delivered} delivered`,
      `  webhook secret ${s.notify.secret}`,
    );
  }
  if (Object.keys(s.failures).length > 0) {
    lines.push('', '  failures:', ...Object.entries(s.failures).map(([code, n]) => `    ${code}: ${n}`));
  }
  return `${lines.join('\n')}\n\n`;
}
