import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { percentile, runFleet } from '../device/fleet.js';
import { loadTlsIdentity } from '../http/index.js';
import { OperatorClient } from '../portal/operator-client.js';
import { initPki, loadPki } from '../pki/index.js';
import { ALL_ROLES, benchWorkspace, startRoles } from './cluster.js';
import { manufactureFleet, registerFleet } from './e2e.js';
import { ProcessGroup, cpuMsByProcess, machineInfo, round, type MachineInfo } from './processes.js';

export type NotifyPhase = 'start' | 'manufacture' | 'register' | 'onboard' | 'drain';

export interface NotifyOptions {
  devices: number;
  /** Devices onboarding at once. */
  concurrency: number;
  /** Work folder (kept); default a temporary one, removed afterwards. */
  dir?: string;
  onPhase?(phase: NotifyPhase, total: number): void;
  onProgress?(phase: NotifyPhase, done: number): void;
}

export interface NotifyResult {
  bench: 'notify';
  machine: MachineInfo;
  devices: number;
  concurrency: number;
  provisioned: number;
  /** State changes notified (distinct event ids received), and how many came more than once. */
  events: number;
  duplicates: number;
  /** Fleet phase (steps 1–12 with attach), ms, and its onboardings/s: the pace events are made at. */
  onboardMs: number;
  onboardingsPerSecond: number;
  /** Events received per second, from the first event's time to the last receipt. */
  eventsPerSecond: number;
  /** From the audit event's time (its `at`) to its receipt at the local receiver, ms. */
  lagMs: { p50: number; p95: number; p99: number; max: number };
  /** The same, per state: where the lag comes from. */
  lagByState: { state: string; count: number; p50: number; p99: number }[];
  /** From the fleet's end to the last notification's receipt: what was still queued, ms. */
  drainMs: number;
  /** The credentialing server's CPU during the fleet and drain, per notification, ms (it also runs the flow). */
  credentialingCpuMs: number;
  /** Every notification verified (signature, timestamp, no replay). */
  refused: number;
}

/**
 * Notification throughput and lag at end-to-end speed: every role its own `simcred serve` process, a
 * webhook to a receiver in this process (the receiver helper verifying every delivery), a fleet of
 * freshly manufactured devices through steps 1–12. Each device makes 6 state changes (registered …
 * attached), each notified once the credentialing server commits it.
 *
 * @example
 *   console.log(formatNotify(await runNotifyBench({ devices: 1000, concurrency: 64 })));
 */
export async function runNotifyBench(options: NotifyOptions): Promise<NotifyResult> {
  const ws = await benchWorkspace(options.dir);
  const group = new ProcessGroup(ws.env);
  const arrivals: { eventId: number; state: string; lagMs: number; at: number; receivedAt: number }[] = [];
  let refused = 0;
  let receiverWorker: Worker | undefined;
  try {
    await initPki(ws.config.pkiDir);
    const pki = await loadPki(ws.config.pkiDir);
    options.onPhase?.('start', ALL_ROLES.length);
    const servers = await startRoles(group, ws, ALL_ROLES, pki.operator.root.pem);
    const credentialing = servers.find((s) => s.name === 'credentialing')!;

    // The receiver runs in a worker thread (notify-receiver.ts): its clock of receipt is not held up
    // by the devices' crypto in this thread.
    const secret = randomBytes(32).toString('base64url');
    receiverWorker = new Worker(new URL('./notify-receiver.js', import.meta.url), { workerData: { secret } });
    const port = await new Promise<number>((resolve, reject) => {
      receiverWorker!.once('error', reject);
      receiverWorker!.on(
        'message',
        (m: {
          port?: number;
          refused?: string;
          eventId?: number;
          state?: string;
          at?: number;
          receivedAt?: number;
        }) => {
          if (m.port !== undefined) resolve(m.port);
          else if (m.refused !== undefined) refused++;
          else
            arrivals.push({
              eventId: m.eventId!,
              state: m.state!,
              at: m.at!,
              receivedAt: m.receivedAt!,
              lagMs: m.receivedAt! - m.at!,
            });
        },
      );
    });
    const receiverUrl = `http://127.0.0.1:${port}/simcred`;
    const orders = new OperatorClient(loadTlsIdentity(ws.config.pkiDir, 'portal'));
    try {
      await orders.addWebhook(ws.urls.credentialing, { url: receiverUrl, secret });
    } finally {
      await orders.close();
    }

    const fleet = await manufactureFleet(ws, options);
    const operator = new OperatorClient(loadTlsIdentity(ws.config.pkiDir, 'portal'));
    const cpuBefore = sum(cpuMsByProcess(credentialing.pid));
    let fleetEnd: number;
    let report: Awaited<ReturnType<typeof runFleet>>;
    try {
      await registerFleet(ws, fleet, { ...options, label: 'bench notify' });
      let done = 0;
      options.onPhase?.('onboard', fleet.length);
      report = await runFleet({
        pkiDir: ws.config.pkiDir,
        dsimIds: fleet.map((d) => d.dsimId),
        ocspOptions: { clockSkewSeconds: ws.config.ocsp.clockSkewSeconds },
        concurrency: options.concurrency,
        maxRetryDelayMs: 2000,
        onDeviceDone: () => options.onProgress?.('onboard', ++done),
      });
      fleetEnd = Date.now();

      // Every state change the feed holds must arrive. 'attached' is recorded from the HSS's feed a
      // moment after each attach, so the feed is counted again until it holds every device's.
      const provisionedNow = report.outcomes.filter((o) => o.ok).length;
      const stateEvents = async () => {
        let count = 0;
        let attached = 0;
        for (let after = 0; ;) {
          const page = await operator.events(ws.urls.credentialing, after, { limit: 1000 });
          if (page.events.length === 0) return { count, attached };
          count += page.events.filter((e) => e.state !== null).length;
          attached += page.events.filter((e) => e.state === 'attached').length;
          after = page.next;
        }
      };
      let expected = await stateEvents();
      options.onPhase?.('drain', expected.count);
      for (;;) {
        const received = new Set(arrivals.map((a) => a.eventId)).size;
        options.onProgress?.('drain', received);
        if (received >= expected.count && expected.attached >= provisionedNow) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
        if (expected.attached < provisionedNow || received >= expected.count) expected = await stateEvents();
      }
    } finally {
      await operator.close();
    }
    const cpuMs = sum(cpuMsByProcess(credentialing.pid)) - cpuBefore;

    const firsts = new Map<number, (typeof arrivals)[number]>();
    for (const a of arrivals) if (!firsts.has(a.eventId)) firsts.set(a.eventId, a);
    const unique = [...firsts.values()];
    const lags = unique.map((a) => a.lagMs);
    const first = Math.min(...unique.map((a) => a.at));
    const last = Math.max(...unique.map((a) => a.receivedAt));
    const provisioned = report.outcomes.filter((o) => o.ok).length;
    return {
      bench: 'notify',
      machine: machineInfo(),
      devices: fleet.length,
      concurrency: options.concurrency,
      provisioned,
      events: unique.length,
      duplicates: arrivals.length - unique.length,
      onboardMs: Math.round(report.elapsedMs),
      onboardingsPerSecond: round((provisioned / report.elapsedMs) * 1000, 1),
      eventsPerSecond: round((unique.length / Math.max(1, last - first)) * 1000, 1),
      lagMs: {
        p50: percentile(lags, 50),
        p95: percentile(lags, 95),
        p99: percentile(lags, 99),
        max: Math.max(...lags),
      },
      lagByState: [...new Set(unique.map((a) => a.state))].map((state) => {
        const of = unique.filter((a) => a.state === state).map((a) => a.lagMs);
        return { state, count: of.length, p50: percentile(of, 50), p99: percentile(of, 99) };
      }),
      drainMs: Math.max(0, last - fleetEnd),
      credentialingCpuMs: round(cpuMs / Math.max(1, unique.length), 3),
      refused,
    };
  } finally {
    if (receiverWorker) {
      const worker = receiverWorker;
      const exited = new Promise((resolve) => worker.once('exit', resolve));
      worker.postMessage({ close: true });
      await exited;
    }
    await group.close();
    ws.cleanup();
  }
}

function sum(byProcess: Map<unknown, number>): number {
  let total = 0;
  for (const ms of byProcess.values()) total += ms;
  return total;
}

export function formatNotify(r: NotifyResult): string {
  return [
    '',
    `simcred bench notify — ${r.devices} devices, concurrency ${r.concurrency} (${r.machine.cpus} CPUs, ${r.machine.model})`,
    `  onboarded ${r.provisioned} in ${(r.onboardMs / 1000).toFixed(1)} s: ${r.onboardingsPerSecond} onboardings/s`,
    `  notified ${r.events} state changes (${r.duplicates} duplicates, ${r.refused} refused): ${r.eventsPerSecond} events/s`,
    `  lag from state change to receipt: p50 ${r.lagMs.p50} ms, p95 ${r.lagMs.p95} ms, p99 ${r.lagMs.p99} ms, max ${r.lagMs.max} ms`,
    ...r.lagByState.map(
      (s) => `    ${s.state.padEnd(14)} ${String(s.count).padStart(7)}  p50 ${s.p50} ms, p99 ${s.p99} ms`,
    ),
    `  last notification ${r.drainMs} ms after the fleet's end; credentialing CPU ${r.credentialingCpuMs} ms per notification (flow included)`,
    '',
  ].join('\n');
}
