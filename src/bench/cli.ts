import { writeFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { startProgress, type Progress } from '../cli/progress.js';
import { action, positiveInt, printJsonLine } from '../cli/run.js';
import { SimcredError } from '../errors/index.js';
import { PACKAGE_FORMATS, type PackageFormat } from '../crypto/index.js';
import { DELIVERIES, type Delivery } from '../device/agent.js';
import { renderChart } from './chart.js';
import { formatE2e, runE2eBench, type BenchPhase } from './e2e.js';
import { formatRegister, runRegisterBench } from './register.js';
import { formatNotify, runNotifyBench } from './notify.js';
import { CHAOS_ROLES, chaosHeld, formatChaos, parseChaosRoles, runChaosBench } from './chaos.js';
import { formatPortalUpload, runPortalUploadBench } from './portal-upload.js';
import { DEFAULT_E2E_SIZES, DEFAULT_REGISTER_SIZES, formatScale, runScaleBench } from './scale.js';

/** A progress bar per phase on a terminal (silent otherwise); `label` prefixes the phase name. */
function phasedProgress(label = '') {
  let progress: Progress | undefined;
  return {
    onPhase: (phase: string, total: number) => {
      progress?.stop();
      progress = startProgress(`${label}${phase}`, total);
    },
    onProgress: (_phase: string, done: number) => progress?.update(done),
    stop: () => progress?.stop(),
  };
}

/** Runs a bench with a progress bar per phase, stopped however the run ends. */
async function withProgress<T>(run: (progress: ReturnType<typeof phasedProgress>) => Promise<T>): Promise<T> {
  const progress = phasedProgress();
  try {
    return await run(progress);
  } finally {
    progress.stop();
  }
}

function sizes(name: string, text: string): number[] {
  const list = text.split(',').map((s) => positiveInt(name, s.trim(), 100_000_000));
  if (list.length === 0) throw new SimcredError('SIMCRED_CLI_ARGUMENT', `${name} needs at least one size`);
  return list;
}

function writeChart(file: string | undefined, svg: () => string): void {
  if (!file) return;
  try {
    writeFileSync(file, svg());
  } catch (err) {
    throw new SimcredError('SIMCRED_IO', `cannot write ${file}: ${(err as Error).message}`);
  }
  process.stderr.write(`chart written to ${file}\n`);
}

/**
 * `simcred bench e2e | register | scale` (bench ocsp is src/ocsp/cli.ts). Each prints a table and,
 * with --json, one JSON line last; --chart FILE writes an SVG.
 *
 * @example
 *   registerBenchCommands(program.command('bench'));
 */
export function registerBenchCommands(bench: Command): void {
  bench
    .command('e2e')
    .description(
      'the whole flow for N devices, every role its own process: onboardings/s, latency per step, server CPU vs the crypto floor',
    )
    .requiredOption('--devices <N>', 'number of devices (manufactured fresh)')
    .option('--concurrency <C>', 'devices onboarding at once (with --rate: at most)', '64')
    .option(
      '--rate <R>',
      'open loop: switch on R devices a second, latency counted from each switch-on (default: closed loop at --concurrency)',
    )
    .option(
      '--warmup-devices <N>',
      'onboard N devices first (closed loop) and leave them out of every figure (default: none)',
    )
    .option('--dir <DATA>', 'work folder, kept afterwards (default: a temporary one, removed)')
    .option('--profile-dir <DIR>', 'run every server with node --cpu-prof into DIR and print its top costs')
    .option('--colocated', 'every role in one process (simcred up) instead of one process per role')
    .option(
      '--workers <N>',
      'with --colocated: N processes each serving every role (simcred up --workers N)',
      '1',
    )
    .option('--chart <FILE>', 'write an SVG chart')
    .addOption(
      new Option(
        '--package-format <FORMAT>',
        'credential packages in this format (devices made opening only it)',
      )
        .choices(PACKAGE_FORMATS)
        .default('jose'),
    )
    .addOption(
      new Option('--delivery <HOW>', 'how devices collect their packages: JSON route or OMA DM session')
        .choices(DELIVERIES)
        .default('json'),
    )
    .option(
      '--pkcs11 [URI]',
      "the operator's signing keys (CAs, OCSP signers, package signer) in a PKCS#11 token: a throwaway SoftHSM token, or the token URI names (PIN from SIMCRED_PKCS11_PIN)",
    )
    .option('--json', 'print one JSON line last')
    .action(
      action(
        async (options: {
          devices: string;
          concurrency: string;
          pkcs11?: true | string;
          packageFormat: PackageFormat;
          delivery: Delivery;
          rate?: string;
          warmupDevices?: string;
          dir?: string;
          profileDir?: string;
          colocated?: boolean;
          workers: string;
          chart?: string;
          json?: boolean;
        }) => {
          const result = await withProgress((progress) =>
            runE2eBench({
              devices: positiveInt('--devices', options.devices, 1_000_000),
              concurrency: positiveInt('--concurrency', options.concurrency, 4096),
              ...(options.rate !== undefined ? { rate: positiveInt('--rate', options.rate, 100_000) } : {}),
              ...(options.warmupDevices !== undefined
                ? { warmupDevices: positiveInt('--warmup-devices', options.warmupDevices, 1_000_000) }
                : {}),
              dir: options.dir,
              profileDir: options.profileDir,
              colocated: options.colocated === true,
              workers: positiveInt('--workers', options.workers, 64),
              ...(options.packageFormat !== 'jose' ? { packageFormat: options.packageFormat } : {}),
              ...(options.delivery !== 'json' ? { delivery: options.delivery } : {}),
              ...(options.pkcs11 !== undefined ? { pkcs11: options.pkcs11 } : {}),
              onPhase: (phase: BenchPhase, total) => progress.onPhase(phase, total),
              onProgress: progress.onProgress,
            }),
          );
          process.stdout.write(formatE2e(result));
          writeChart(options.chart, () => renderChart({ e2e: result }));
          if (options.json) printJsonLine(result);
          if (result.failed > 0 || result.attached < result.devices) process.exitCode = 1;
        },
      ),
    );

  bench
    .command('portal-upload')
    .description(
      "a CSV of N devices uploaded through the portal, next to bench register for the same count: wall times, ratio, the portal's peak RSS",
    )
    .requiredOption('--devices <N>', 'number of devices')
    .option('--dir <DATA>', 'work folder, kept afterwards (default: a temporary one, removed)')
    .option(
      '--portal-heap <MiB>',
      "cap the portal's V8 heap (node --max-old-space-size): a file held in memory would not fit",
    )
    .option('--json', 'print one JSON line last')
    .action(
      action(async (options: { devices: string; dir?: string; portalHeap?: string; json?: boolean }) => {
        const result = await withProgress((progress) =>
          runPortalUploadBench({
            devices: positiveInt('--devices', options.devices, 100_000_000),
            dir: options.dir,
            ...(options.portalHeap !== undefined
              ? { portalHeapMiB: positiveInt('--portal-heap', options.portalHeap, 65_536) }
              : {}),
            onPhase: progress.onPhase,
            onProgress: progress.onProgress,
          }),
        );
        process.stdout.write(formatPortalUpload(result));
        if (options.json) printJsonLine(result);
        if (result.accepted < result.devices) process.exitCode = 1;
      }),
    );

  bench
    .command('register')
    .description(
      'one streamed batch of N synthetic devices through the credentialing server to two registration servers: registrations/s, peak RSS',
    )
    .requiredOption('--devices <N>', 'number of devices')
    .option('--dir <DATA>', 'work folder, kept afterwards (default: a temporary one, removed)')
    .option('--chart <FILE>', 'write an SVG chart')
    .option('--json', 'print one JSON line last')
    .action(
      action(async (options: { devices: string; dir?: string; chart?: string; json?: boolean }) => {
        const result = await withProgress((progress) =>
          runRegisterBench({
            devices: positiveInt('--devices', options.devices, 100_000_000),
            dir: options.dir,
            onPhase: progress.onPhase,
            onProgress: progress.onProgress,
          }),
        );
        process.stdout.write(formatRegister(result));
        writeChart(options.chart, () => renderChart({ register: result }));
        if (options.json) printJsonLine(result);
        if (result.registered + result.unchanged < result.devices) process.exitCode = 1;
      }),
    );

  bench
    .command('chaos')
    .description(
      'a fleet through the flow while role processes are SIGKILLed at random moments and restarted: nothing lost, nothing doubled',
    )
    .requiredOption('--devices <N>', 'number of devices (manufactured fresh)')
    .option(
      '--kill <ROLES>',
      `comma-separated roles whose processes are killed (${CHAOS_ROLES.join(', ')})`,
      'credentialing,hss,provisioning,registration,ocsp',
    )
    .option('--every <MS>', 'mean time between kills, ms (each gap 0.5× to 1.5× of it)', '2000')
    .option(
      '--kills <N>',
      'exactly N kills spread over the fleet (each within --every ms of its turn) instead of one every --every ms',
    )
    .option('--concurrency <C>', 'devices onboarding at once', '64')
    .option('--postgres <URL>', "every role's store on this PostgreSQL database (default: SQLite files)")
    .option('--seed <N>', 'seed of the victims and gaps (printed by every run), to repeat a run')
    .option('--dir <DATA>', 'work folder, kept afterwards (default: a temporary one, removed)')
    .option('--json', 'print one JSON line last')
    .action(
      action(
        async (options: {
          devices: string;
          kill: string;
          every: string;
          kills?: string;
          concurrency: string;
          postgres?: string;
          seed?: string;
          dir?: string;
          json?: boolean;
        }) => {
          const result = await withProgress((progress) =>
            runChaosBench({
              devices: positiveInt('--devices', options.devices, 1_000_000),
              kill: parseChaosRoles(options.kill),
              everyMs: positiveInt('--every', options.every, 3_600_000),
              ...(options.kills !== undefined
                ? { kills: positiveInt('--kills', options.kills, 100_000) }
                : {}),
              concurrency: positiveInt('--concurrency', options.concurrency, 4096),
              ...(options.postgres ? { postgresUrl: options.postgres } : {}),
              ...(options.seed !== undefined ? { seed: positiveInt('--seed', options.seed, 2 ** 31) } : {}),
              ...(options.dir ? { dir: options.dir } : {}),
              onPhase: progress.onPhase,
              onProgress: progress.onProgress,
            }),
          );
          process.stdout.write(formatChaos(result));
          if (options.json) printJsonLine(result);
          if (!chaosHeld(result)) process.exitCode = 1;
        },
      ),
    );

  bench
    .command('notify')
    .description(
      'webhook notifications at end-to-end speed: N devices through the flow, every state change to a local receiver: events/s, lag p50/p99',
    )
    .requiredOption('--devices <N>', 'number of devices (manufactured fresh)')
    .option('--concurrency <C>', 'devices onboarding at once', '64')
    .option('--dir <DATA>', 'work folder, kept afterwards (default: a temporary one, removed)')
    .option('--json', 'print one JSON line last')
    .action(
      action(async (options: { devices: string; concurrency: string; dir?: string; json?: boolean }) => {
        const result = await withProgress((progress) =>
          runNotifyBench({
            devices: positiveInt('--devices', options.devices, 1_000_000),
            concurrency: positiveInt('--concurrency', options.concurrency, 4096),
            ...(options.dir ? { dir: options.dir } : {}),
            onPhase: progress.onPhase,
            onProgress: progress.onProgress,
          }),
        );
        process.stdout.write(formatNotify(result));
        if (options.json) printJsonLine(result);
        if (result.provisioned < result.devices || result.refused > 0) process.exitCode = 1;
      }),
    );

  bench
    .command('scale')
    .description('register and e2e at three sizes each: how per-device time and memory grow')
    .option('--register-sizes <LIST>', 'comma-separated sizes', DEFAULT_REGISTER_SIZES.join(','))
    .option('--e2e-sizes <LIST>', 'comma-separated sizes', DEFAULT_E2E_SIZES.join(','))
    .option('--concurrency <C>', 'devices onboarding at once (e2e)', '64')
    .option('--chart <FILE>', 'write an SVG chart')
    .option('--json', 'print one JSON line last')
    .action(
      action(
        async (options: {
          registerSizes: string;
          e2eSizes: string;
          concurrency: string;
          chart?: string;
          json?: boolean;
        }) => {
          let label = '';
          const progress = phasedProgress();
          const hooks = {
            onPhase: (phase: string, total: number) => progress.onPhase(`${label}${phase}`, total),
            onProgress: (phase: string, done: number) => progress.onProgress(phase, done),
          };
          let result;
          try {
            result = await runScaleBench({
              registerSizes: sizes('--register-sizes', options.registerSizes),
              e2eSizes: sizes('--e2e-sizes', options.e2eSizes),
              concurrency: positiveInt('--concurrency', options.concurrency, 4096),
              onRun: (benchName, devices) => {
                label = `${benchName} ${devices} `;
                if (!process.stderr.isTTY) return;
                progress.stop();
                process.stderr.write(`${benchName} ${devices} devices…\n`);
              },
              e2eHooks: hooks,
              registerHooks: hooks,
            });
          } finally {
            progress.stop();
          }
          process.stdout.write(formatScale(result));
          writeChart(options.chart, () => renderChart({ scale: result }));
          if (options.json) printJsonLine(result);
          const bad =
            result.e2e.some((p) => p.provisioned < p.devices) ||
            result.runs.register.some((r) => r.registered + r.unchanged < r.devices);
          if (bad) process.exitCode = 1;
        },
      ),
    );
}
