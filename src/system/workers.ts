import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { SimcredConfig } from '../config/index.js';
import { SimcredError, isSimcredError, type ErrorCode } from '../errors/index.js';
import { AggregatorRegistry } from 'prom-client';
import { startSystem, type RunningSystem } from './start.js';
import { startMetricsListener } from '../ops/metrics-server.js';
import { processOperations, reloadLive } from '../ops/process.js';
import { Telemetry } from '../ops/telemetry.js';

/** What a worker tells the primary once every role of it listens. */
interface ReadyMessage {
  simcredWorkerReady: true;
  urls: RunningSystem['urls'];
  /** The roles it serves, as its metrics name them. */
  roles: string[];
}

function isReady(message: unknown): message is ReadyMessage {
  return (message as Partial<ReadyMessage> | null)?.simcredWorkerReady === true;
}

/** What a worker tells the primary when its roles cannot start: the primary reports it, once. */
interface FailedMessage {
  simcredWorkerFailed: { code: ErrorCode; message: string };
}

function isFailed(message: unknown): message is FailedMessage {
  return typeof (message as Partial<FailedMessage> | null)?.simcredWorkerFailed === 'object';
}

export interface WorkerPool {
  urls: RunningSystem['urls'];
  /** Each role → the primary's metrics URL, which sums every worker's series (prom-client's AggregatorRegistry). */
  metrics: Record<string, string>;
  /** SIGTERM arrived: /readyz answers 503 from now on. */
  startDraining(): void;
  /** SIGHUP to every worker: each reloads its roles' certificates. */
  reload(): void;
  /** SIGTERM to every worker (each closes its roles), SIGKILL after `graceMs`; resolves when all exited. */
  close(graceMs?: number): Promise<void>;
}

/** Restarts of crashed workers allowed per minute before the pool gives up on replacing them. */
const MAX_RESTARTS_PER_MINUTE = 10;

/**
 * `simcred up --workers N`: every role in each of N processes (node:cluster), all on the same ports
 * (the primary accepts and hands connections to the workers in turn) and the same stores. Every role
 * keeps its state in its database, so any worker can answer any request of a flow; what is kept in
 * memory is only caches. One process per core is how a Node service uses a machine's cores.
 *
 * The first worker starts alone: it creates the demo PKI, generates the role secrets and migrates
 * every store, which must happen once. The others start when it is ready. A worker that dies is
 * replaced (at most MAX_RESTARTS_PER_MINUTE a minute). Fixed ports are required: with port 0 every
 * worker would pick its own.
 *
 * @example
 *   if (cluster.isPrimary) { const pool = await startWorkers(config, 2, logger); … await pool.close(); }
 *   else await serveAsWorker(config, logger);
 */
export async function startWorkers(
  config: SimcredConfig,
  workers: number,
  logger: Logger,
): Promise<WorkerPool> {
  // Every port `up` listens on, the portal's included: with port 0 each worker would pick its own.
  if (Object.values(config.ports).flat().includes(0)) {
    throw new SimcredError('SIMCRED_CLI_ARGUMENT', '--workers needs fixed ports (no port 0 in the config)');
  }
  const running = new Set<Worker>();
  let closing = false;
  const restarts: number[] = [];

  const fork = (): Promise<{ worker: Worker; urls: RunningSystem['urls']; roles: string[] }> =>
    new Promise((resolve, reject) => {
      const worker = cluster.fork();
      running.add(worker);
      let ready = false;
      const onMessage = (message: unknown) => {
        if (isFailed(message)) {
          // The worker's own reason (a port in use, a bad PKI folder …), not "a worker exited".
          worker.off('exit', onEarlyExit);
          worker.off('message', onMessage);
          reject(new SimcredError(message.simcredWorkerFailed.code, message.simcredWorkerFailed.message));
          return;
        }
        if (!isReady(message)) return;
        ready = true;
        worker.off('exit', onEarlyExit);
        worker.off('message', onMessage);
        resolve({ worker, urls: message.urls, roles: message.roles });
      };
      const onEarlyExit = (code: number | null) => {
        worker.off('message', onMessage);
        reject(new SimcredError('SIMCRED_INTERNAL', `a worker exited during start-up (code ${code})`));
      };
      worker.on('message', onMessage);
      worker.once('exit', onEarlyExit);
      worker.once('exit', (code, signal) => {
        running.delete(worker);
        // A worker that never started fails the start instead of being replaced.
        if (closing || !ready) return;
        const now = Date.now();
        while (restarts.length > 0 && restarts[0]! < now - 60_000) restarts.shift();
        if (restarts.length >= MAX_RESTARTS_PER_MINUTE) {
          logger.error(
            { pid: worker.process.pid, code, signal },
            'worker died; too many restarts, not replaced',
          );
          return;
        }
        restarts.push(now);
        logger.error({ pid: worker.process.pid, code, signal }, 'worker died; starting another');
        fork().catch((err: unknown) => {
          // Stopped while it started (the pool is closing): nothing went wrong.
          if (!closing) logger.error({ err }, 'replacement worker failed to start');
        });
      });
    });

  const close = async (graceMs = 10_000): Promise<void> => {
    closing = true;
    const exited = [...running].map(
      (w) => new Promise<void>((resolve) => (w.isDead() ? resolve() : w.once('exit', () => resolve()))),
    );
    for (const w of running) w.process.kill('SIGTERM');
    const timer = setTimeout(() => {
      for (const w of running) w.process.kill('SIGKILL');
    }, graceMs);
    await Promise.all(exited);
    clearTimeout(timer);
  };

  let draining = false;
  let listener: { url: string; close(): Promise<void> } | undefined;
  try {
    const first = await fork();
    await Promise.all(Array.from({ length: workers - 1 }, fork));
    // The primary serves no role: its metrics listener asks every worker for its registry and sums
    // them; it is ready while every worker runs (each worker's own checks are its roles' business).
    const aggregator = new AggregatorRegistry();
    listener = await startMetricsListener({
      host: config.operations.metricsHost,
      port: config.operations.metricsPort,
      logger: logger.child({ role: 'metrics' }),
      telemetry: new Telemetry({ processMetrics: false }),
      metrics: () => aggregator.clusterMetrics(),
      ready: async () => {
        const ready = !draining && !closing && running.size === workers;
        const state = draining ? 'shutting down' : `${running.size} of ${workers} workers running`;
        return { ready, roles: { pool: { workers: ready ? 'ok' : state } } };
      },
    });
    const url = `${listener.url}/metrics`;
    return {
      urls: first.urls,
      metrics: Object.fromEntries(first.roles.map((role) => [role, url])),
      startDraining: () => void (draining = true),
      reload: () => {
        for (const w of running) w.process.kill('SIGHUP');
      },
      close: async (graceMs?: number) => {
        await close(graceMs);
        await listener?.close();
      },
    };
  } catch (err) {
    await close(2000);
    await listener?.close();
    throw err;
  }
}

/**
 * A worker's part: every role in this process; tells the primary when they listen, and closes them
 * when the primary sends SIGTERM. Ctrl-C reaches every process of the terminal's group, so a worker
 * ignores SIGINT and lets the primary stop it.
 */
export async function serveAsWorker(config: SimcredConfig, logger: Logger): Promise<void> {
  process.on('SIGINT', () => undefined);
  let system: RunningSystem;
  const ops = processOperations(config);
  // The primary's AggregatorRegistry asks for this registry over IPC; constructing one here is what
  // installs the worker's side of that exchange (prom-client's cluster.js).
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([ops.telemetry.registry]);
  try {
    system = await startSystem(config, logger.child({ worker: cluster.worker?.id }), {
      telemetry: ops.telemetry,
    });
  } catch (err) {
    if (!isSimcredError(err) || err.code === 'SIMCRED_INTERNAL') throw err;
    // The primary prints the one error line; this worker leaves quietly (its roles are closed).
    const failed: FailedMessage = { simcredWorkerFailed: { code: err.code, message: err.message } };
    await new Promise<void>((resolve) => process.send?.(failed, undefined, {}, () => resolve()) ?? resolve());
    process.exitCode = 2;
    cluster.worker?.disconnect();
    return;
  }
  const ready: ReadyMessage = {
    simcredWorkerReady: true,
    urls: system.urls,
    roles: ops.telemetry.roleNames(),
  };
  // SIGHUP from the primary: this worker's roles present the PKI folder's certificates anew.
  process.on('SIGHUP', () => {
    try {
      const s = system.servers;
      const servers = [s.hss, s.phlr, s.credentialing, ...s.registration, ...s.provisioning, s.portal];
      // The certificate files are read anew from the PKI folder; the folder itself stays.
      reloadLive(config, servers);
    } catch (err) {
      logger.error({ err }, 'reload failed; the previous certificates stay');
    }
  });
  process.send?.(ready);
  // The primary's SIGTERM may come on top of one sent to the whole process group: the handler stays,
  // so a second one cannot kill the worker halfway through closing.
  await new Promise<void>((resolve) => process.on('SIGTERM', () => resolve()));
  const s = system.servers;
  for (const server of [
    s.ocsp,
    s.hss,
    s.phlr,
    s.credentialing,
    ...s.registration,
    ...s.provisioning,
    s.portal,
  ]) {
    server.holdIdleConnections();
  }
  await system.close();
  // The IPC channel to the primary would keep this process alive.
  cluster.worker?.disconnect();
}
