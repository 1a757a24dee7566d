import type { Logger } from 'pino';
import { createHttpServer, listen } from '../http/server.js';
import type { ReadinessReport, Telemetry } from './telemetry.js';

export interface MetricsListener {
  url: string;
  close(): Promise<void>;
}

export interface MetricsListenerOptions {
  host: string;
  port: number;
  logger: Logger;
  telemetry: Telemetry;
  /** The exposition text; the telemetry's own registry when omitted (a pool's primary aggregates its workers'). */
  metrics?: () => Promise<string>;
  /** Readiness; the telemetry's own checks when omitted. */
  ready?: () => Promise<ReadinessReport>;
}

/**
 * A process's operator listener, apart from the roles' ports (plain HTTP, loopback by default):
 * GET /metrics (Prometheus text), GET /livez (the process runs its event loop), GET /readyz (200
 * when every role's store and required peers answer, 503 otherwise or while shutting down).
 *
 * @example
 *   const listener = await startMetricsListener({ host: '127.0.0.1', port: 0, logger, telemetry });
 *   // curl ${listener.url}/metrics
 */
export async function startMetricsListener(options: MetricsListenerOptions): Promise<MetricsListener> {
  const { telemetry } = options;
  const app = createHttpServer({ logger: options.logger });
  const metrics = options.metrics ?? (() => telemetry.registry.metrics());
  const ready = options.ready ?? (() => telemetry.ready());
  app.get('/metrics', async (_request, reply) =>
    reply.type(telemetry.registry.contentType).send(await metrics()),
  );
  app.get('/livez', async () => ({ live: true }));
  app.get('/readyz', async (_request, reply) => {
    const report = await ready();
    return reply.code(report.ready ? 200 : 503).send(report);
  });
  const url = await listen(app, { host: options.host, port: options.port });
  return { url, close: () => app.close() };
}
