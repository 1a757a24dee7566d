import * as x509 from '../crypto/x509.js';
import { isSimcredError } from '../errors/index.js';
import { PeerClient } from '../http/index.js';
import { ocspStatusChecker, type CertificateStatusChecker } from '../ocsp/checker.js';
import { imageServers, loadFactoryImage, noServersError, registrationServersOf } from '../pki/index.js';
import { DEVICE_STEPS, DeviceAgent, type Delivery, type DeviceStep, type OnboardingResult } from './agent.js';
import { TrustedModule } from './trusted-module.js';
import { openDeviceModule } from './tpm-module.js';

export interface FleetOptions {
  pkiDir: string;
  dsimIds: string[];
  /**
   * Each device reaches the registration server, PHLR, OCSP responder and HSS its factory image
   * names. These override the image's; a version-1 image (which names none) needs all three.
   */
  ocsp?: CertificateStatusChecker;
  /** Overrides the image's servers.phlr (step 1). */
  phlrUrl?: string;
  /** Overrides the image's servers.hss (step 12). */
  hssUrl?: string;
  /** For the OCSP checkers made from the images' servers.ocsp. */
  ocspOptions?: { clockSkewSeconds?: number; timeoutMs?: number };
  /** Devices onboarding at once (with ratePerSecond: at most). */
  concurrency: number;
  /**
   * Open loop: device i is switched on at i / ratePerSecond seconds, whether or not earlier ones are
   * done, as a fleet in the field arrives. Its whole-onboarding latency counts from that moment, so a
   * wait for one of the `concurrency` slots is counted too (no coordinated omission). Without it,
   * closed loop: `concurrency` devices at a time, each next one as soon as one finishes.
   */
  ratePerSecond?: number;
  maxAttempts?: number;
  maxRetryDelayMs?: number;
  /** How each device collects its package: the JSON route (default) or an OMA DM session. */
  delivery?: Delivery;
  /** The local address the fleet's connections come from (devices behind one NAT address). */
  localAddress?: string;
  /** Awaited before device `index` (0-based) begins: a driver may hold the fleet back a moment here. */
  beforeDevice?(index: number): Promise<void> | void;
  /** A device begins (after its switch-on wait, if any). */
  onDeviceStart?(dsimId: string): void;
  onDeviceDone?(ok: boolean): void;
  /**
   * The monotonic time (ms) latencies and the open-loop schedule are read from, and the wait until a
   * device's switch-on: performance.now and a timer when omitted (tests pass their own).
   */
  timer?: FleetTimer;
}

/** A monotonic clock in ms and a way to wait on it. */
export interface FleetTimer {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const REAL_TIMER: FleetTimer = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export interface DeviceOutcome {
  dsimId: string;
  ok: boolean;
  imsi?: string;
  /** Whole onboarding, ms (all attempts). */
  totalMs: number;
  timings: OnboardingResult['timings'];
  attempts: number;
  /** OnboardingResult.retries (0 for a device that failed). */
  retries: number;
  error?: { code: string; message: string };
}

export interface FleetReport {
  outcomes: DeviceOutcome[];
  elapsedMs: number;
}

/**
 * Drives simulated devices through steps 1–12 (attach included), `concurrency` at a time, each with its own trusted
 * module loaded from its factory image, at the servers that image names; devices share one keep-alive HTTPS pool, as devices behind
 * one NAT would share nothing else.
 *
 * @example
 *   const report = await runFleet({ pkiDir, dsimIds, concurrency: 64 });
 */
export async function runFleet(options: FleetOptions): Promise<FleetReport> {
  const timer = options.timer ?? REAL_TIMER;
  const started = timer.now();
  const outcomes: DeviceOutcome[] = [];
  const shared: SharedByRoot = new Map();
  const checkers: CheckerByUrl = new Map();
  const rate = options.ratePerSecond;
  let next = 0;
  const worker = async () => {
    while (next < options.dsimIds.length) {
      const index = next++;
      await options.beforeDevice?.(index);
      let switchedOnAt = timer.now();
      if (rate !== undefined) {
        switchedOnAt = started + (index * 1000) / rate;
        const wait = switchedOnAt - timer.now();
        if (wait > 0) await timer.sleep(wait);
      }
      options.onDeviceStart?.(options.dsimIds[index]!);
      const outcome = await onboardOne(
        options.dsimIds[index]!,
        options,
        shared,
        checkers,
        switchedOnAt,
        timer,
      );
      outcomes.push(outcome);
      options.onDeviceDone?.(outcome.ok);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, worker));
  } finally {
    await Promise.all([...shared.values()].map((s) => s.client.close()));
  }
  return { outcomes, elapsedMs: timer.now() - started };
}

/**
 * What devices with the same burnt-in operator root (PEM) share: one keep-alive connection pool and
 * the root parsed once. Parsing the root is the simulator's cost (a module keeps its anchor ready in
 * its own memory), not the device's: its verification of a package against that root is untouched.
 */
type SharedByRoot = Map<string, { client: PeerClient; operatorRoots: x509.X509Certificate[] }>;
/** One OCSP checker per responder URL. */
type CheckerByUrl = Map<string, CertificateStatusChecker>;

async function onboardOne(
  dsimId: string,
  options: FleetOptions,
  shared: SharedByRoot,
  checkers: CheckerByUrl,
  /** When the device was switched on (timer.now()): its latency counts from here. */
  started: number,
  timer: FleetTimer,
): Promise<DeviceOutcome> {
  try {
    const image = await loadFactoryImage(options.pkiDir, dsimId);
    const operatorRoot = image.image.trustRoots.operator;
    let byRoot = shared.get(operatorRoot);
    if (!byRoot) {
      byRoot = {
        client: new PeerClient({
          tls: { ca: [operatorRoot] },
          connections: 64,
          ...(options.localAddress ? { localAddress: options.localAddress } : {}),
        }),
        operatorRoots: [new x509.X509Certificate(operatorRoot)],
      };
      shared.set(operatorRoot, byRoot);
    }
    const servers = imageServers(image.image);
    const phlrUrl = options.phlrUrl ?? servers.phlr;
    const hssUrl = options.hssUrl ?? servers.hss;
    let ocsp = options.ocsp ?? (servers.ocsp ? checkers.get(servers.ocsp) : undefined);
    if (!ocsp && servers.ocsp) {
      ocsp = ocspStatusChecker({ urls: [servers.ocsp], ...options.ocspOptions });
      checkers.set(servers.ocsp, ocsp);
    }
    if (!phlrUrl || !hssUrl || !ocsp) throw noServersError(image.image);
    const agent = new DeviceAgent({
      module: image.module === 'tpm' ? await openDeviceModule(image) : TrustedModule.fromFactoryImage(image),
      client: byRoot.client,
      registrationServer: image.image.registrationServer,
      registrationServers: registrationServersOf(image.image),
      phlrUrl,
      hssUrl,
      operatorRoots: byRoot.operatorRoots,
      ocsp,
      maxAttempts: options.maxAttempts,
      maxRetryDelayMs: options.maxRetryDelayMs,
      ...(options.delivery ? { delivery: options.delivery } : {}),
    });
    const result = await agent.onboard();
    return {
      dsimId,
      ok: true,
      imsi: result.subscription.imsi,
      totalMs: timer.now() - started,
      timings: result.timings,
      attempts: result.attempts,
      retries: result.retries,
    };
  } catch (err) {
    return {
      dsimId,
      ok: false,
      totalMs: timer.now() - started,
      timings: {},
      attempts: 0,
      retries: 0,
      error: isSimcredError(err)
        ? { code: err.code, message: err.message }
        : { code: 'SIMCRED_INTERNAL', message: err instanceof Error ? err.message : String(err) },
    };
  }
}

/** p-th percentile (0–100) of a list of numbers, nearest rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Per-step count and latency percentiles of the successful onboardings. */
export function stepStatistics(
  outcomes: DeviceOutcome[],
): { step: DeviceStep | 'total'; count: number; p50: number; p95: number; p99: number }[] {
  const ok = outcomes.filter((o) => o.ok);
  const row = (step: DeviceStep | 'total', values: number[]) => ({
    step,
    count: values.length,
    p50: percentile(values, 50),
    p95: percentile(values, 95),
    p99: percentile(values, 99),
  });
  return [
    ...DEVICE_STEPS.map((step) =>
      row(
        step,
        ok.map((o) => o.timings[step]).filter((v): v is number => v !== undefined),
      ),
    ),
    row(
      'total',
      ok.map((o) => o.totalMs),
    ),
  ];
}

/** How many devices failed with each error code. */
export function failureCounts(outcomes: DeviceOutcome[]): Record<string, number> {
  const failures: Record<string, number> = {};
  for (const o of outcomes) if (!o.ok) failures[o.error!.code] = (failures[o.error!.code] ?? 0) + 1;
  return failures;
}
