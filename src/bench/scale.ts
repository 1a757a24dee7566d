import { E2eCluster, type E2eOptions, type E2eResult } from './e2e.js';
import { machineInfo, round, type MachineInfo } from './processes.js';
import { RegisterCluster, type RegisterOptions, type RegisterResult } from './register.js';

export const DEFAULT_REGISTER_SIZES = [10_000, 100_000, 1_000_000];
export const DEFAULT_E2E_SIZES = [1_000, 5_000, 20_000];

export interface ScaleOptions {
  registerSizes: number[];
  e2eSizes: number[];
  concurrency: number;
  onRun?(bench: 'register' | 'e2e', devices: number): void;
  /** Passed to each run (progress). */
  e2eHooks?: Pick<E2eOptions, 'onPhase' | 'onProgress'>;
  registerHooks?: Pick<RegisterOptions, 'onPhase' | 'onProgress'>;
}

export interface ScalePoint {
  devices: number;
  elapsedMs: number;
  /** Wall time per device, µs. */
  perDeviceUs: number;
  /** Largest peak RSS among the processes, MiB. */
  maxPeakRssMiB: number;
}

export interface ScaleResult {
  bench: 'scale';
  machine: MachineInfo;
  register: (ScalePoint & { registrationsPerSecond: number; peakRssMiB: Record<string, number> })[];
  e2e: (ScalePoint & {
    onboardingsPerSecond: number;
    serverCpuMsPerOnboarding: number;
    p99: number;
    provisioned: number;
  })[];
  /** Largest / smallest size's per-device wall time (1 = flat; the target is ≤ 1.25). */
  growth: {
    registerPerDevice: number;
    e2ePerDevice: number;
    e2eServerCpuPerOnboarding: number;
    registerMemory: number;
    e2eMemory: number;
  };
  runs: { register: RegisterResult[]; e2e: E2eResult[] };
}

/**
 * `simcred bench scale`: register and e2e at three sizes each (one cluster per bench, sizes in the
 * order given); how per-device time and peak memory grow from the first size to the last.
 *
 * @example
 *   const r = await runScaleBench({ registerSizes: [1000, 2000, 4000], e2eSizes: [10, 20, 40], concurrency: 32 });
 */
export async function runScaleBench(options: ScaleOptions): Promise<ScaleResult> {
  const machine = machineInfo();
  // One cluster per bench; the sizes run one after the other on it, so the larger ones meet fuller
  // stores (what a growing deployment sees) and peak RSS is the high-water mark over all of them.
  const register: RegisterResult[] = [];
  if (options.registerSizes.length > 0) {
    const cluster = await RegisterCluster.start({ ...options.registerHooks });
    try {
      for (const devices of options.registerSizes) {
        options.onRun?.('register', devices);
        register.push(await cluster.run({ devices, ...options.registerHooks }));
      }
    } finally {
      await cluster.close();
    }
  }
  const e2e: E2eResult[] = [];
  if (options.e2eSizes.length > 0) {
    const cluster = await E2eCluster.start({ ...options.e2eHooks });
    try {
      for (const devices of options.e2eSizes) {
        options.onRun?.('e2e', devices);
        e2e.push(await cluster.run({ devices, concurrency: options.concurrency, ...options.e2eHooks }));
      }
    } finally {
      await cluster.close();
    }
  }
  const registerPoints = register.map((r) => ({
    devices: r.devices,
    elapsedMs: r.elapsedMs,
    perDeviceUs: round((r.elapsedMs * 1000) / r.devices, 1),
    maxPeakRssMiB: Math.max(...Object.values(r.peakRssMiB)),
    registrationsPerSecond: r.registrationsPerSecond,
    peakRssMiB: r.peakRssMiB,
  }));
  const e2ePoints = e2e.map((r) => ({
    devices: r.devices,
    elapsedMs: r.onboardMs,
    perDeviceUs: round((r.onboardMs * 1000) / Math.max(1, r.provisioned), 1),
    maxPeakRssMiB: Math.max(...r.servers.map((s) => s.peakRssMiB)),
    onboardingsPerSecond: r.onboardingsPerSecond,
    serverCpuMsPerOnboarding: r.serverCpuMsPerOnboarding,
    p99: r.onboarding.p99,
    provisioned: r.provisioned,
  }));
  const ratio = <T>(points: T[], pick: (p: T) => number) =>
    points.length < 2 ? 1 : round(pick(points[points.length - 1]!) / Math.max(1e-9, pick(points[0]!)), 2);
  return {
    bench: 'scale',
    machine,
    register: registerPoints,
    e2e: e2ePoints,
    growth: {
      registerPerDevice: ratio(registerPoints, (p) => p.perDeviceUs),
      e2ePerDevice: ratio(e2ePoints, (p) => p.perDeviceUs),
      e2eServerCpuPerOnboarding: ratio(e2ePoints, (p) => p.serverCpuMsPerOnboarding),
      registerMemory: ratio(registerPoints, (p) => p.maxPeakRssMiB),
      e2eMemory: ratio(e2ePoints, (p) => p.maxPeakRssMiB),
    },
    runs: { register, e2e },
  };
}

/** The scale table. */
export function formatScale(r: ScaleResult): string {
  const n = (v: number, w: number, d = 1) => v.toFixed(d).padStart(w);
  return [
    '',
    `simcred bench scale — machine: ${r.machine.cpus} × ${r.machine.model}, load average ${r.machine.loadAverage.join(' ')}`,
    '',
    `  ${'register N'.padEnd(12)}${'reg/s'.padStart(10)}${'µs/device'.padStart(12)}${'max RSS MiB'.padStart(13)}`,
    ...r.register.map(
      (p) =>
        `  ${String(p.devices).padEnd(12)}${n(p.registrationsPerSecond, 10, 0)}${n(p.perDeviceUs, 12)}${n(p.maxPeakRssMiB, 13)}`,
    ),
    '',
    `  ${'e2e N'.padEnd(12)}${'onb/s'.padStart(10)}${'µs/device'.padStart(12)}${'cpu ms/onb'.padStart(12)}${'p99 ms'.padStart(10)}${'max RSS MiB'.padStart(13)}`,
    ...r.e2e.map(
      (p) =>
        `  ${String(p.devices).padEnd(12)}${n(p.onboardingsPerSecond, 10)}${n(p.perDeviceUs, 12)}${n(p.serverCpuMsPerOnboarding, 12, 2)}${n(p.p99, 10)}${n(p.maxPeakRssMiB, 13)}`,
    ),
    '',
    `  growth largest/smallest: register µs/device ${r.growth.registerPerDevice}×, memory ${r.growth.registerMemory}×; ` +
      `e2e µs/device ${r.growth.e2ePerDevice}×, server cpu/onboarding ${r.growth.e2eServerCpuPerOnboarding}×, memory ${r.growth.e2eMemory}×`,
    '',
    '',
  ].join('\n');
}
