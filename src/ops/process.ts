import type { Logger } from 'pino';
import type { SimcredConfig } from '../config/index.js';
import { loadTlsIdentity, type RunningServer } from '../http/index.js';
import { TLS_ROLES, type TlsRole } from '../pki/layout.js';
import { startMetricsListener, type MetricsListener } from './metrics-server.js';
import { Telemetry } from './telemetry.js';

/** One process's operations surface: its telemetry, and the metrics listener once started. */
export interface ProcessOperations {
  telemetry: Telemetry;
  /** Starts the metrics listener at the configured address (after the roles, which register first). */
  listen(logger: Logger): Promise<MetricsListener>;
}

/**
 * The telemetry of a role process, from config.operations.
 *
 * @example
 *   const ops = processOperations(config);
 *   const system = await startSystem(config, logger, { telemetry: ops.telemetry });
 *   const metrics = await ops.listen(logger);
 */
export function processOperations(config: SimcredConfig): ProcessOperations {
  const settings = config.operations;
  const telemetry = new Telemetry({
    readinessTimeoutMs: settings.readinessTimeoutMs,
    readinessCacheMs: settings.readinessCacheMs,
  });
  return {
    telemetry,
    listen: (logger) =>
      startMetricsListener({
        host: settings.metricsHost,
        port: settings.metricsPort,
        logger: logger.child({ role: 'metrics' }),
        telemetry,
      }),
  };
}

/** `up --json`'s `metrics`: each role this process serves → its metrics URL. */
export function metricsUrls(telemetry: Telemetry, listener: { url: string }): Record<string, string> {
  return Object.fromEntries(telemetry.roleNames().map((name) => [name, `${listener.url}/metrics`]));
}

/**
 * What SIGHUP changes without a restart: each role's TLS certificate and key (and the
 * client-certificate roots) from the PKI folder the config names, for new connections; open
 * connections keep theirs. Everything else in the config needs a restart (docs/operations.md).
 *
 * @example
 *   reload: async () => reloadLive(commonConfig(options), [server]),
 */
export function reloadLive(config: SimcredConfig, servers: RunningServer[]): void {
  // Read every identity first: a broken PKI folder changes nothing.
  const identities = servers.map((server) =>
    server.reloadTls && (TLS_ROLES as readonly string[]).includes(server.role)
      ? loadTlsIdentity(config.pkiDir, server.role as TlsRole)
      : undefined,
  );
  servers.forEach((server, i) => {
    const identity = identities[i];
    if (identity) server.reloadTls!(identity);
  });
}
