import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { SimcredError } from '../errors/index.js';
import { withOperatorClient } from '../notify/cli.js';
import { runDevices, type DevicesRunSummary } from '../system/devices-run.js';
import { startProgress, type Progress } from './progress.js';
import { action, oneLine, positiveInt, printJsonLine } from './run.js';
import { commonConfig, withCommonOptions, type CommonOptions } from './system-commands.js';

/** The operator API's lifecycle routes, by the command that calls each. */
const LIFECYCLE = {
  suspend: "suspend a delivered device's subscription (attach refused)",
  resume: 'resume a suspended subscription (attach works again)',
  delete: "end a device's subscription for good (HSS subscriber deleted, IMSI quarantined)",
  reprovision:
    'give a device a fresh registration: it goes through the flow again at its next check-in and gets a new subscription; the old one ends once the new one is in use',
} as const;

/**
 * `simcred operator suspend|resume|delete <DSIM_ID>` (added to the `operator` group) and `simcred
 * devices run` (added to the `devices` group).
 */
export function registerLifecycleCommands(program: Command): void {
  const operator = program.commands.find((c) => c.name() === 'operator');
  const devices = program.commands.find((c) => c.name() === 'devices');
  if (!operator || !devices) throw new Error('the operator and devices command groups come first');

  for (const [name, description] of Object.entries(LIFECYCLE)) {
    withCommonOptions(
      operator
        .command(name)
        .description(description)
        .argument('<DSIM_ID>')
        .option('--reason <TEXT>', 'kept in the audit trail'),
    ).action(
      action(async (dsimId: string, options: CommonOptions & { reason?: string }) => {
        await withOperatorClient(options, async (client, url) =>
          printJsonLine(await client.lifecycle(url, name as keyof typeof LIFECYCLE, dsimId, options.reason)),
        );
      }),
    );
  }

  withCommonOptions(
    operator
      .command('transfer')
      .description(
        "hand a delivered device over to another operator: a transfer statement naming the new operator's root and servers, signed by this operator's package signer, for the device to follow",
      )
      .argument('<DSIM_ID>')
      .requiredOption('--to-root <FILE>', "the new operator's root certificate (PEM file)")
      .requiredOption(
        '--to-registration <URL...>',
        "the new operator's registration server(s), where the device registers next",
      )
      .requiredOption('--to-ocsp <URL>', "the new operator's OCSP responder")
      .requiredOption('--to-hss <URL>', "the new operator's home network (HSS), where the device attaches")
      .option('--reason <TEXT>', 'kept in the audit trail'),
  ).action(
    action(
      async (
        dsimId: string,
        options: CommonOptions & {
          toRoot: string;
          toRegistration: string[];
          toOcsp: string;
          toHss: string;
          reason?: string;
        },
      ) => {
        const toOperatorRoot = readTextFile(options.toRoot, '--to-root');
        await withOperatorClient(options, async (client, url) =>
          printJsonLine(
            await client.transfer(url, dsimId, {
              toOperatorRoot,
              toRegistrationServers: options.toRegistration,
              toServers: { ocsp: options.toOcsp, hss: options.toHss },
              ...(options.reason ? { reason: options.reason } : {}),
            }),
          ),
        );
      },
    ),
  );

  withCommonOptions(
    devices
      .command('run')
      .description(
        'drive simulated devices against the running `simcred up` of --dir: steps 1–12; a device that holds a credential checks in (onboards again if re-provisioned) and attaches',
      )
      .option('--dsim <ID>', 'run this one device')
      .option('--count <N>', 'run the next N registered devices not yet onboarded (default 1)')
      .option('--concurrency <C>', 'devices onboarding at once', '16')
      .option('--json', 'print one JSON line last'),
  ).action(
    action(
      async (
        options: CommonOptions & { dsim?: string; count?: string; concurrency: string; json?: boolean },
      ) => {
        if (options.dsim !== undefined && options.count !== undefined) {
          throw new SimcredError('SIMCRED_CLI_ARGUMENT', 'give --dsim or --count, not both');
        }
        if (options.dsim !== undefined && !/^DSIM[0-9A-F]{16}$/.test(options.dsim)) {
          throw new SimcredError(
            'SIMCRED_CLI_ARGUMENT',
            `--dsim must be DSIM followed by 16 upper-case hex digits, got ${JSON.stringify(options.dsim)}`,
          );
        }
        const count = options.count === undefined ? 1 : positiveInt('--count', options.count, 100_000);
        const concurrency = positiveInt('--concurrency', options.concurrency, 4096);
        const config = commonConfig(options);
        let progress: Progress | undefined;
        const summary = await runDevices(config, {
          ...(options.dsim !== undefined ? { dsimId: options.dsim } : { count }),
          concurrency,
          onPhase: (phase, total) => {
            progress?.stop();
            progress = startProgress(phase === 'select' ? 'finding' : 'devices', total);
          },
          onProgress: (done) => progress?.update(done),
        }).finally(() => progress?.stop());
        if (summary.devices === 0) {
          process.stderr.write(
            'simcred: no registered device waits to onboard (register some with `simcred operator register`)\n',
          );
        }
        if (options.json) printJsonLine(summary);
        else process.stdout.write(formatDevicesRun(summary));
        if (summary.failed > 0) process.exitCode = 1;
      },
    ),
  );
}

/** A small text file named on the command line (a certificate), with the option's name in the error. */
function readTextFile(file: string, option: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new SimcredError(
      missing ? 'SIMCRED_FILE_NOT_FOUND' : 'SIMCRED_IO',
      `${option}: cannot read ${file}${missing ? ': no such file' : ''}`,
    );
  }
}

/** The table of `devices run`: one row per device, then the counts. */
export function formatDevicesRun(s: DevicesRunSummary): string {
  const lines = [
    `  ${'DSIM_ID'.padEnd(20)}  ${'action'.padEnd(7)}  ${'result'.padEnd(8)}  ${'IMSI'.padEnd(15)}  ${'ms'.padStart(7)}  error`,
    ...s.results.map((r) =>
      `  ${r.dsimId.padEnd(20)}  ${r.action.padEnd(7)}  ${(r.ok ? 'attached' : 'failed').padEnd(8)}  ${(r.imsi ?? '-').padEnd(15)}  ${String(r.ms).padStart(7)}  ${r.error ? `${r.error.code}: ${oneLine(r.error.message)}` : ''}`.trimEnd(),
    ),
    `devices ${s.devices}: onboarded ${s.onboarded}, re-provisioned ${s.reprovisioned}, attached only ${s.attached}, failed ${s.failed} (${(s.elapsedMs / 1000).toFixed(1)} s)`,
  ];
  return `${lines.join('\n')}\n`;
}
