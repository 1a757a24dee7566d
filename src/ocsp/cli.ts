import { Option, type Command } from 'commander';
import type { LevelWithSilent } from 'pino';
import { action, positiveInt, printJsonLine, readInputFile } from '../cli/run.js';
import { SimcredError } from '../errors/index.js';
import { createLogger } from '../log/logger.js';
import { commonConfig } from '../cli/system-commands.js';
import { listenAddress, ocspSignerKeys } from '../system/wiring.js';
import { certificateDer, parseCertificateInfo } from './asn1.js';
import { runOcspBench, formatBenchTable } from './bench.js';
import { aiaOcspUrls, checkCertificateStatus } from './client.js';
import { DEFAULT_OCSP_PORT, startOcspResponder } from './responder/server.js';
import { startMetricsListener } from '../ops/metrics-server.js';
import { serveUntilSignal } from '../ops/signals.js';
import { Telemetry } from '../ops/telemetry.js';

/** `simcred serve ocsp`, `simcred ocsp check` and `simcred bench ocsp`. */
export function registerOcspCommands(program: Command, serve: Command, bench: Command): void {
  serve
    .command('ocsp')
    .description('run the OCSP responder (RFC 6960 / RFC 5019) for every issuing CA of a PKI folder')
    .option('--dir <dir>', 'PKI folder (made by `simcred pki init`); required unless --config names it')
    .option(
      '--config <FILE>',
      'JSON config file: the PKI folder, listen address (listen.ocsp or host), port (ports.ocsp), revocation check and log level come from it unless given here',
    )
    .option('--host <host>', 'address to listen on (default 127.0.0.1)')
    .option('--port <port>', `port to listen on (default ${DEFAULT_OCSP_PORT})`)
    .option('--validity <seconds>', 'nextUpdate − thisUpdate in seconds', '3600')
    .option(
      '--revocation-check <ms>',
      'how often at most revocations are re-read; kept statuses and pre-signed answers are at most this stale (0: every request; default 200)',
    )
    .addOption(new Option('--log-level <level>', 'log level (default info)').choices(LOG_LEVELS))
    .option(
      '--metrics-host <host>',
      'address of the metrics listener (docs/operations.md; default 127.0.0.1)',
    )
    .option('--metrics-port <port>', 'port of the metrics listener (0: a free one; the default)')
    .option('--shutdown-grace <ms>', 'on SIGTERM, how long requests in flight may take (default 10000)')
    .action(
      action(
        async (opts: {
          dir?: string;
          config?: string;
          host?: string;
          port?: string;
          validity: string;
          revocationCheck?: string;
          logLevel?: string;
          metricsHost?: string;
          metricsPort?: string;
          shutdownGrace?: string;
        }) => {
          if (opts.dir === undefined && opts.config === undefined) {
            throw new SimcredError(
              'SIMCRED_CLI_ARGUMENT',
              'give the PKI folder (--dir) or a config (--config)',
            );
          }
          const config = opts.config ? commonConfig({ config: opts.config }) : undefined;
          const port =
            opts.port === undefined
              ? (config?.ports.ocsp ?? DEFAULT_OCSP_PORT)
              : opts.port === '0'
                ? 0
                : positiveInt('--port', opts.port, 65535);
          const revocationCheck =
            opts.revocationCheck === undefined
              ? (config?.ocsp.revocationCheckMs ?? 200)
              : opts.revocationCheck === '0'
                ? 0
                : positiveInt('--revocation-check', opts.revocationCheck, 60_000);
          // Flags first, then the config's operations section, then the defaults (as for every role).
          const metricsHost = opts.metricsHost ?? config?.operations.metricsHost ?? '127.0.0.1';
          const metricsPort =
            opts.metricsPort === undefined
              ? (config?.operations.metricsPort ?? 0)
              : opts.metricsPort === '0'
                ? 0
                : positiveInt('--metrics-port', opts.metricsPort, 65535);
          const graceMs =
            opts.shutdownGrace === undefined
              ? (config?.operations.shutdownGraceMs ?? 10_000)
              : positiveInt('--shutdown-grace', opts.shutdownGrace, 600_000);
          const telemetry = new Telemetry();
          const level = (opts.logLevel ?? config?.log.level ?? 'info') as LevelWithSilent;
          const logger = createLogger({ name: 'ocsp', level });
          const responder = await startOcspResponder({
            pkiDir: opts.dir ?? config!.pkiDir,
            host: opts.host ?? (config ? listenAddress(config, 'ocsp') : '127.0.0.1'),
            port,
            logger,
            telemetry: telemetry.role('ocsp'),
            validitySeconds: positiveInt('--validity', opts.validity),
            ...(config ? { signerKeys: ocspSignerKeys(config) } : {}),
            generationCheckMs: revocationCheck,
          });
          const listener = await startMetricsListener({
            host: metricsHost,
            port: metricsPort,
            logger: logger.child({ role: 'metrics' }),
            telemetry,
          }).catch(async (err: unknown) => {
            await responder.close();
            throw err;
          });
          console.log(`OCSP responder listening on ${responder.url}`);
          console.log(`ocsp metrics on ${listener.url}/metrics`);
          await serveUntilSignal({
            close: async () => {
              await responder.close();
              await listener.close();
            },
            graceMs,
            logger,
            onDraining: () => {
              telemetry.startDraining();
              responder.holdIdleConnections();
            },
          });
        },
      ),
    );

  program
    .command('ocsp')
    .description('OCSP client')
    .command('check')
    .description('ask an OCSP responder about a certificate and verify the answer strictly')
    .requiredOption('--cert <file>', 'certificate to check (PEM or DER)')
    .requiredOption('--issuer <file>', 'its issuing CA certificate (PEM or DER)')
    .option(
      '--url <url>',
      'responder URL, repeatable (tried in order); required unless the certificate names one in its ' +
        "AIA extension (the demo PKI's certificates do not)",
      collect,
      [],
    )
    .option('--no-nonce', 'do not send a nonce (accept a cached response)')
    .option('--get', 'use HTTP GET (RFC 5019) instead of POST')
    .option('--clock-skew <seconds>', 'tolerated clock skew', '60')
    .option('--timeout <ms>', 'request timeout', '5000')
    .option('--json', 'print one JSON object as the last line')
    .action(
      action(
        async (opts: {
          cert: string;
          issuer: string;
          url: string[];
          nonce: boolean;
          get?: boolean;
          clockSkew: string;
          timeout: string;
          json?: boolean;
        }) => {
          const clockSkewSeconds =
            opts.clockSkew === '0' ? 0 : positiveInt('--clock-skew', opts.clockSkew, 86_400);
          const timeoutMs = positiveInt('--timeout', opts.timeout);
          const certificate = readCertificate('--cert', opts.cert);
          const issuer = readCertificate('--issuer', opts.issuer);
          for (const url of opts.url) {
            if (!URL.canParse(url) || !['http:', 'https:'].includes(new URL(url).protocol)) {
              throw new SimcredError(
                'SIMCRED_CLI_ARGUMENT',
                `--url must be an http(s) URL, got ${JSON.stringify(url)}`,
              );
            }
          }
          const urls = opts.url.length > 0 ? opts.url : aiaOcspUrls(certificate);
          if (urls.length === 0) {
            throw new SimcredError(
              'SIMCRED_CLI_USAGE',
              `--url is required: ${opts.cert} names no OCSP responder (it has no AIA OCSP URL)`,
            );
          }
          const result = await checkCertificateStatus({
            certificate,
            issuer,
            urls,
            nonce: opts.nonce,
            method: opts.get ? 'GET' : 'POST',
            clockSkewSeconds,
            timeoutMs,
          });
          const out = {
            status: result.status,
            ...(result.revokedAt ? { revokedAt: result.revokedAt.toISOString() } : {}),
            ...(result.reason !== undefined ? { reason: result.reason } : {}),
            thisUpdate: result.thisUpdate.toISOString(),
            ...(result.nextUpdate ? { nextUpdate: result.nextUpdate.toISOString() } : {}),
            producedAt: result.producedAt.toISOString(),
          };
          if (opts.json) printJsonLine(out);
          else
            console.log(
              `${opts.cert}: ${result.status}${out.revokedAt ? ` (revoked at ${out.revokedAt})` : ''}`,
            );
          if (result.status === 'revoked') {
            throw new SimcredError('SIMCRED_OCSP_REVOKED', `certificate revoked at ${out.revokedAt ?? '?'}`);
          }
          if (result.status === 'unknown') {
            throw new SimcredError('SIMCRED_OCSP_UNKNOWN', 'the responder does not know this certificate');
          }
        },
      ),
    );

  bench
    .command('ocsp')
    .description('requests/s and p99 of our OCSP responder against `openssl ocsp` on the same PKI')
    .option('--dir <dir>', 'PKI folder to use (default: a fresh temporary one)')
    .option('--seconds <s>', 'duration of each run', '5')
    .option('--connections <n>', 'concurrent connections', '16')
    .option('--warmup <s>', 'seconds of the same load before each run, not counted (0: none)', '2')
    .option('--json', 'print one JSON object as the last line')
    .action(
      action(
        async (opts: {
          dir?: string;
          seconds: string;
          warmup: string;
          connections: string;
          json?: boolean;
        }) => {
          const result = await runOcspBench({
            ...(opts.dir ? { pkiDir: opts.dir } : {}),
            seconds: positiveInt('--seconds', opts.seconds, 600),
            warmupSeconds: opts.warmup === '0' ? 0 : positiveInt('--warmup', opts.warmup, 600),
            connections: positiveInt('--connections', opts.connections, 1000),
            log: (line) => process.stderr.write(`${line}\n`),
          });
          console.log(formatBenchTable(result));
          if (opts.json) printJsonLine(result);
        },
      ),
    );
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * A certificate file given on the command line, as DER: one X.509 certificate in PEM or DER, and
 * nothing after it; anything else is SIMCRED_CERT_INVALID naming the option and the file.
 */
function readCertificate(option: string, path: string): Buffer {
  const bytes = readInputFile(option, path);
  let der: Buffer;
  try {
    der = certificateDer(bytes);
    parseCertificateInfo(der);
  } catch {
    throw new SimcredError(
      'SIMCRED_CERT_INVALID',
      `${option} ${path} is not an X.509 certificate (PEM or DER)`,
    );
  }
  if (derLength(der) !== der.length) {
    throw new SimcredError('SIMCRED_CERT_INVALID', `${option} ${path} has bytes after its certificate`);
  }
  return der;
}

/** Length of the DER element at the start of `der` (tag, length and content), or -1 if unreadable. */
function derLength(der: Buffer): number {
  if (der.length < 2) return -1;
  const first = der[1]!;
  if (first < 0x80) return 2 + first;
  const octets = first & 0x7f;
  if (octets === 0 || octets > 4 || der.length < 2 + octets) return -1;
  let length = 0;
  for (let i = 0; i < octets; i++) length = length * 256 + der[2 + i]!;
  return 2 + octets + length;
}
