import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { failureCounts, runFleet, stepStatistics } from '../device/fleet.js';
import type { PackageFormat } from '../crypto/index.js';
import type { Delivery } from '../device/agent.js';
import { SimcredError } from '../errors/index.js';
import { PeerClient, clientTls, loadTlsIdentity } from '../http/index.js';
import {
  CaStore,
  initPki,
  loadFactoryImage,
  loadPki,
  manufactureDevices,
  type LoadedPki,
} from '../pki/index.js';
import { OperatorClient } from '../portal/operator-client.js';
import { importSubscribers } from '../protocol/phlr.js';
import { hssFleetCounts } from '../system/demo.js';
import { requestsServed, measureRequestCost, type RequestCost, type RoleEndpoint } from './transport.js';
import { ALL_ROLES, benchWorkspace, startColocated, startRoles, type BenchWorkspace } from './cluster.js';
import { measureCryptoFloor, type CryptoFloor } from './floor.js';
import { makeBenchToken, type BenchToken } from './softhsm.js';
import {
  ProcessGroup,
  machineInfo,
  peakRssMiB,
  cpuMsByProcess,
  round,
  type MachineInfo,
  type ServerProcess,
} from './processes.js';
import { monotonicUs, summariseProfiles, type ProfileSummary, type ProfileWindow } from './profile.js';

export type BenchPhase = 'manufacture' | 'start' | 'register' | 'onboard';

export interface E2eOptions {
  devices: number;
  /** Devices onboarding at once (closed loop), or at most at once with `rate`. */
  concurrency: number;
  /** Open loop: devices switched on per second, latency counted from each one's switch-on (runFleet). */
  rate?: number;
  /**
   * Devices onboarded first (closed loop, at `concurrency`) and not counted: every figure is then of servers whose
   * code V8 has compiled (the first few hundred onboardings of a fresh process are several times slower,
   * which is most of a short run's p99).
   */
  warmupDevices?: number;
  /** Work folder (kept); default a temporary one, removed afterwards. */
  dir?: string;
  /** Write a CPU profile of every server process into this folder (node --cpu-prof) and summarise it. */
  profileDir?: string;
  /** Every role in one process (`simcred up`) instead of one process per role. */
  colocated?: boolean;
  /** With colocated: that many processes each serving every role (`simcred up --workers N`). */
  workers?: number;
  /** The credential package format (devices made opening only it; default: JOSE, as devices without a declaration). */
  packageFormat?: PackageFormat;
  /** How the devices collect their packages (default: the JSON route). */
  delivery?: Delivery;
  /**
   * The operator's signing keys (CAs, OCSP signers, package signer) in a PKCS#11 token: `true` makes a
   * throwaway SoftHSM token; a pkcs11: URI names a token (PIN from SIMCRED_PKCS11_PIN or a file).
   */
  pkcs11?: true | string;
  onPhase?(phase: BenchPhase, total: number): void;
  onProgress?(phase: BenchPhase, done: number): void;
}

export interface ServerFigures {
  name: string;
  /** CPU (user + system) during the fleet phase, ms. */
  cpuMs: number;
  /** With several processes (a pool's primary first, then its workers): each one's part of cpuMs. */
  processes?: { pid: number; cpuMs: number }[];
  cpuMsPerOnboarding: number;
  peakRssMiB: number;
}

export interface E2eResult {
  bench: 'e2e';
  machine: MachineInfo;
  devices: number;
  concurrency: number;
  /** Devices switched on per second (open loop), or null: closed loop at `concurrency`. */
  rate: number | null;
  /** The credential package format of the run. */
  packageFormat: PackageFormat;
  /** How the devices collected their packages. */
  delivery: Delivery;
  /** Where the operator's signing keys were: PEM files (the default) or a PKCS#11 token. */
  keys: 'file' | 'pkcs11';
  /** Devices onboarded before the measured ones, not counted (0: none). */
  warmupDevices: number;
  /** All roles ran in one process (--colocated), or in each of `workers` processes. */
  colocated: boolean;
  workers: number;
  provisioned: number;
  failed: number;
  /** Σ of the provisioned devices' retries (OnboardingResult.retries): each went over steps again. */
  retries: number;
  distinctImsis: number;
  hssSubscribers: number;
  attached: number;
  /** Fleet phase (steps 1–12 with attach), ms. */
  onboardMs: number;
  onboardingsPerSecond: number;
  /** Latency of a device's whole onboarding (all attempts), ms. */
  onboarding: { p50: number; p95: number; p99: number };
  steps: ReturnType<typeof stepStatistics>;
  phasesMs: { manufacture: number; start: number; register: number; onboard: number };
  servers: ServerFigures[];
  /** Σ server CPU during the fleet phase / provisioned devices, ms. */
  serverCpuMsPerOnboarding: number;
  /** This process's CPU per onboarding (simulated devices, their HTTP client and the driver), ms. */
  benchCpuMsPerOnboarding: number;
  floor: CryptoFloor;
  /** serverCpuMsPerOnboarding / floor.serverMs. */
  /**
   * Requests each role answered per onboarding (the OCSP responder, which keeps no count, left out).
   * Not counted with several workers: each counts its own, and /health reaches one of them.
   */
  requests?: { name: string; perOnboarding: number }[];
  /** What those requests cost at least: an empty-handler HTTPS request, times their number. */
  transport?: RequestCost & { requestsPerOnboarding: number; serverFloorMs: number };
  cpuOverFloor: number;
  /** benchCpuMsPerOnboarding / floor.deviceMs. */
  deviceCpuOverFloor: number;
  failures: Record<string, number>;
  profiles?: ProfileSummary[];
}

/**
 * Every role as its own `simcred serve` process on loopback (free ports, SQLite in a fresh data
 * folder), ready for fleets of freshly manufactured devices; `simcred bench scale` runs its sizes
 * one after the other on one cluster.
 *
 * @example
 *   const cluster = await E2eCluster.start({});
 *   try { console.log(formatE2e(await cluster.run({ devices: 1000, concurrency: 64 }))); }
 *   finally { await cluster.close(); }
 */
export class E2eCluster {
  /** When the last fleet ran, so that profiles count that phase only. */
  private fleetWindow: ProfileWindow | undefined;

  private constructor(
    private readonly ws: BenchWorkspace,
    private readonly group: ProcessGroup,
    private readonly servers: ServerProcess[],
    private readonly pki: LoadedPki,
    private readonly startMs: number,
    private readonly profileDir: string | undefined,
    private readonly workers: number,
    private readonly token: BenchToken | undefined,
  ) {}

  static async start(
    options: Pick<E2eOptions, 'dir' | 'profileDir' | 'colocated' | 'workers' | 'onPhase' | 'pkcs11'>,
  ): Promise<E2eCluster> {
    const started = performance.now();
    const workers = options.colocated ? (options.workers ?? 1) : 1;
    // The token's settings go to this process (it manufactures, signing with the device CA) and to
    // every server process; SoftHSM reads them when its library is first loaded.
    const token = options.pkcs11 === true ? makeBenchToken() : undefined;
    if (token) Object.assign(process.env, token.env);
    const tokenUri = token?.uri ?? (typeof options.pkcs11 === 'string' ? options.pkcs11 : undefined);
    let ws: BenchWorkspace;
    try {
      ws = await benchWorkspace(options.dir, token?.env ?? {});
    } catch (err) {
      token?.remove();
      throw err;
    }
    const group = new ProcessGroup(ws.env);
    try {
      await initPki(ws.config.pkiDir, new Date(), tokenUri !== undefined ? { pkcs11: tokenUri } : {});
      const pki = await loadPki(ws.config.pkiDir);
      const profileFlags = options.profileDir
        ? ['--cpu-prof', '--cpu-prof-dir', resolve(options.profileDir)]
        : [];
      if (options.profileDir) mkdirSync(options.profileDir, { recursive: true });
      options.onPhase?.('start', ALL_ROLES.length);
      const servers = options.colocated
        ? await startColocated(group, ws, pki.operator.root.pem, profileFlags, workers)
        : await startRoles(group, ws, ALL_ROLES, pki.operator.root.pem, profileFlags);
      return new E2eCluster(
        ws,
        group,
        servers,
        pki,
        performance.now() - started,
        options.profileDir,
        workers,
        token,
      );
    } catch (err) {
      await group.close();
      ws.cleanup();
      token?.remove();
      throw err;
    }
  }

  /** Manufactures N devices, registers them as one stream, then drives them through steps 1–12. */
  async run(options: Omit<E2eOptions, 'dir' | 'profileDir'>): Promise<E2eResult> {
    const { ws, servers, pki } = this;
    const machine = machineInfo();
    const pkiDir = ws.config.pkiDir;
    let t = performance.now();
    const fleet = await manufactureFleet(ws, options);
    const manufactureMs = performance.now() - t;
    t = performance.now();
    await registerFleet(ws, fleet, options);
    const registerMs = performance.now() - t;

    const dsimIds = fleet.map((d) => d.dsimId);
    // Each worker of a pool counts only its own requests, and /health reaches one of them.
    const endpoints = this.workers > 1 ? [] : roleEndpoints(ws);
    const servedBefore = await requestsServed(endpoints, pki.operator.root.pem);
    const cpuBefore = servers.map((s) => cpuMsByProcess(s.pid));
    const selfBefore = process.cpuUsage();
    const fleetFromUs = monotonicUs();
    let done = 0;
    options.onPhase?.('onboard', dsimIds.length);
    const report = await runFleet({
      pkiDir,
      dsimIds,
      // Each device finds the servers through its factory image.
      ocspOptions: { clockSkewSeconds: ws.config.ocsp.clockSkewSeconds },
      concurrency: options.concurrency,
      ...(options.rate !== undefined ? { ratePerSecond: options.rate } : {}),
      maxRetryDelayMs: 2000,
      ...(options.delivery ? { delivery: options.delivery } : {}),
      onDeviceDone: () => options.onProgress?.('onboard', ++done),
    });
    const cpuAfter = servers.map((s) => cpuMsByProcess(s.pid));
    const self = process.cpuUsage(selfBefore);
    this.fleetWindow = { fromUs: fleetFromUs, toUs: monotonicUs() };
    const onboardMs = report.elapsedMs;

    const ok = report.outcomes.filter((o) => o.ok);
    const provisioned = ok.length;
    const { hssSubscribers, attached } = await hssFleetCounts(ws.config, dsimIds);
    const failures = failureCounts(report.outcomes);

    const perOnboarding = (ms: number) => round(ms / Math.max(1, provisioned), 3);
    const serverFigures: ServerFigures[] = servers.map((s, i) => {
      // A process that started or ended during the fleet (a replaced worker) counts from 0 / to its last reading.
      const processes = [...new Set([...cpuBefore[i]!.keys(), ...cpuAfter[i]!.keys()])].map((pid) => ({
        pid: pid as number,
        cpuMs: round((cpuAfter[i]!.get(pid) ?? cpuBefore[i]!.get(pid)!) - (cpuBefore[i]!.get(pid) ?? 0), 0),
      }));
      const cpuMs = processes.reduce((sum, p) => sum + p.cpuMs, 0);
      return {
        name: s.name,
        cpuMs,
        ...(processes.length > 1 ? { processes } : {}),
        cpuMsPerOnboarding: perOnboarding(cpuMs),
        peakRssMiB: peakRssMiB(s.pid),
      };
    });
    const serverCpuMs = serverFigures.reduce((sum, s) => sum + s.cpuMs, 0);
    const benchCpuMs = (self.user + self.system) / 1000;

    // The health checks that read the counters are counted too: one each.
    const servedAfter = await requestsServed(endpoints, pki.operator.root.pem);
    const requests = endpoints.map((e, i) => ({
      name: e.name,
      perOnboarding: perOnboarding(servedAfter[i]! - servedBefore[i]! - 1),
    }));
    // The floors, measured here after the fleet (warm JIT, same machine, same run): the public-key
    // operations (single thread), and what one HTTPS message costs with an empty handler.
    const floor = measureCryptoFloor(pki, await loadFactoryImage(pkiDir, dsimIds[0]!));
    let transport: E2eResult['transport'];
    if (endpoints.length > 0) {
      const costed = servers.find((s) => s.name === 'registration-1') ?? servers[0]!;
      const requestCost = await measureRequestCost(
        ws.urls.registration[0]!,
        costed.pid,
        pki.operator.root.pem,
      );
      const requestsPerOnboarding = round(
        requests.reduce((sum, r) => sum + r.perOnboarding, 0),
        2,
      );
      transport = {
        ...requestCost,
        requestsPerOnboarding,
        serverFloorMs: round(requestsPerOnboarding * requestCost.serverMs, 3),
      };
    }
    const steps = stepStatistics(report.outcomes);
    const total = steps.find((s) => s.step === 'total')!;
    return {
      bench: 'e2e',
      colocated: this.servers.length === 1,
      workers: this.workers,
      machine,
      devices: dsimIds.length,
      concurrency: options.concurrency,
      rate: options.rate ?? null,
      packageFormat: options.packageFormat ?? 'jose',
      delivery: options.delivery ?? 'json',
      keys: this.pki.operator.packageSigner.keyPath.startsWith('pkcs11:') ? 'pkcs11' : 'file',
      warmupDevices: 0,
      provisioned,
      failed: dsimIds.length - provisioned,
      retries: ok.reduce((sum, o) => sum + o.retries, 0),
      distinctImsis: new Set(ok.map((o) => o.imsi)).size,
      hssSubscribers,
      attached,
      onboardMs: round(onboardMs, 0),
      onboardingsPerSecond: round((provisioned / onboardMs) * 1000, 1),
      onboarding: { p50: round(total.p50, 1), p95: round(total.p95, 1), p99: round(total.p99, 1) },
      steps: steps.map((s) => ({
        ...s,
        p50: round(s.p50, 2),
        p95: round(s.p95, 2),
        p99: round(s.p99, 2),
      })),
      phasesMs: {
        manufacture: round(manufactureMs, 0),
        start: round(this.startMs, 0),
        register: round(registerMs, 0),
        onboard: round(onboardMs, 0),
      },
      servers: serverFigures,
      serverCpuMsPerOnboarding: perOnboarding(serverCpuMs),
      benchCpuMsPerOnboarding: perOnboarding(benchCpuMs),
      floor,
      ...(transport ? { requests, transport } : {}),
      cpuOverFloor: round(serverCpuMs / Math.max(1, provisioned) / floor.serverMs, 2),
      deviceCpuOverFloor: round(benchCpuMs / Math.max(1, provisioned) / floor.deviceMs, 2),
      failures,
    };
  }

  /** Stops every server (waiting for their CPU profiles, if any) and removes a temporary folder. */
  async close(): Promise<ProfileSummary[] | undefined> {
    try {
      await this.group.close(this.profileDir ? 20_000 : 3000);
      return this.profileDir
        ? summariseProfiles(
            this.profileDir,
            new Map(this.servers.map((s) => [s.pid, s.name])),
            this.fleetWindow,
          )
        : undefined;
    } finally {
      this.ws.cleanup();
      this.token?.remove();
    }
  }
}

/** N fresh devices of the workspace's PKI, their factory images naming its servers. */
export async function manufactureFleet(
  ws: BenchWorkspace,
  options: Pick<E2eOptions, 'devices' | 'packageFormat' | 'onPhase' | 'onProgress'>,
): Promise<{ dsimId: string; registrationServer: string }[]> {
  options.onPhase?.('manufacture', options.devices);
  const made = await manufactureDevices({
    dir: ws.config.pkiDir,
    count: options.devices,
    registrationServers: ws.urls.registration,
    servers: { phlr: ws.urls.phlr, ocsp: ws.urls.ocsp, hss: ws.urls.hss },
    ...(options.packageFormat ? { packageFormats: [options.packageFormat] } : {}),
    onProgress: (n) => options.onProgress?.('manufacture', n),
  });
  const mine = new Set(made.devices.map((d) => d.dsimId));
  const store = await CaStore.open(ws.config.pkiDir);
  return (await store.listDevices().finally(() => store.close())).filter((d) => mine.has(d.dsimId));
}

/** The operator registers the fleet as one stream (steps 0a–0b, one order named `label`); the PHLR reads its new subscribers. */
export async function registerFleet(
  ws: BenchWorkspace,
  fleet: { dsimId: string; registrationServer: string }[],
  options: Pick<E2eOptions, 'onPhase' | 'onProgress'> & { label?: string },
): Promise<void> {
  const pkiDir = ws.config.pkiDir;
  const portal = clientTls(loadTlsIdentity(pkiDir, 'portal'));
  const operator = new OperatorClient(loadTlsIdentity(pkiDir, 'portal'));
  const peer = new PeerClient({ tls: portal, timeoutMs: 600_000 });
  try {
    options.onPhase?.('register', fleet.length);
    await operator.registerDevices(
      ws.urls.credentialing,
      (function* () {
        for (const d of fleet) yield d;
      })(),
      (n) => options.onProgress?.('register', n),
      ...(options.label ? [{ label: options.label }] : []),
    );
    // The PHLR reads the factory's new subscribers now, not at the fleet's first unknown PIMSI.
    await peer.call(ws.urls.phlr, importSubscribers, { body: {} });
  } finally {
    await operator.close();
    await peer.close();
  }
}

/**
 * `simcred bench e2e`: one cluster, one fleet of N devices.
 *
 * @example
 *   const r = await runE2eBench({ devices: 1000, concurrency: 64 });
 *   console.log(formatE2e(r));
 */
export async function runE2eBench(options: E2eOptions): Promise<E2eResult> {
  const cluster = await E2eCluster.start(options);
  let result: E2eResult | undefined;
  try {
    const warmupDevices = options.warmupDevices ?? 0;
    if (warmupDevices > 0) {
      // Closed loop (as fast as the servers go): the warm-up is for V8, not a measurement.
      const { rate: _openLoop, ...closedLoop } = options;
      const warmup = await cluster.run({ ...closedLoop, devices: warmupDevices });
      if (warmup.failed > 0) {
        throw new SimcredError('SIMCRED_INTERNAL', `${warmup.failed} of the warm-up devices failed`);
      }
    }
    result = { ...(await cluster.run(options)), warmupDevices };
  } finally {
    const profiles = await cluster.close();
    if (result && profiles) result.profiles = profiles;
  }
  return result;
}

const num = (v: number, width: number, digits = 1) => v.toFixed(digits).padStart(width);

/** The e2e table. */
export function formatE2e(r: E2eResult): string {
  const lines = [
    '',
    `simcred bench e2e — ${r.devices} devices, ${r.rate === null ? `concurrency ${r.concurrency}` : `switched on at ${r.rate}/s (open loop, at most ${r.concurrency} at once)`}${r.warmupDevices > 0 ? ` after ${r.warmupDevices} warm-up devices` : ''}, ${r.packageFormat.toUpperCase()} packages over ${r.delivery === 'omadm' ? 'OMA DM' : 'JSON'}, ${r.workers > 1 ? `every role in each of ${r.workers} worker processes` : r.colocated ? 'every role in one process' : 'every role its own process'}${r.keys === 'pkcs11' ? ', operator signing keys in a PKCS#11 token' : ''}`,
    `  machine: ${r.machine.cpus} × ${r.machine.model}, ${r.machine.memoryGiB} GiB, load average ${r.machine.loadAverage.join(' ')}`,
    `  provisioned ${r.provisioned}, failed ${r.failed}, distinct IMSIs ${r.distinctImsis}, HSS subscribers ${r.hssSubscribers}, attached ${r.attached}`,
    `  ${r.onboardingsPerSecond} onboardings/s (fleet phase ${(r.onboardMs / 1000).toFixed(1)} s; manufacture ${(r.phasesMs.manufacture / 1000).toFixed(1)} s, start ${(r.phasesMs.start / 1000).toFixed(1)} s, register ${(r.phasesMs.register / 1000).toFixed(1)} s)`,
    '',
    `  ${'step'.padEnd(10)}${'count'.padStart(8)}${'p50 ms'.padStart(10)}${'p95 ms'.padStart(10)}${'p99 ms'.padStart(10)}`,
    ...r.steps.map(
      (s) =>
        `  ${s.step.padEnd(10)}${String(s.count).padStart(8)}${num(s.p50, 10)}${num(s.p95, 10)}${num(s.p99, 10)}`,
    ),
    '',
    `  ${'process'.padEnd(16)}${'cpu ms'.padStart(10)}${'ms/onb'.padStart(10)}${'peak MiB'.padStart(10)}`,
    ...r.servers.flatMap((s) => [
      `  ${s.name.padEnd(16)}${num(s.cpuMs, 10, 0)}${num(s.cpuMsPerOnboarding, 10, 3)}${num(s.peakRssMiB, 10)}`,
      ...(s.processes ?? []).map((p) => `    pid ${String(p.pid).padEnd(10)}${num(p.cpuMs, 10, 0)}`),
    ]),
    `  ${'servers'.padEnd(16)}${''.padStart(10)}${num(r.serverCpuMsPerOnboarding, 10, 3)}`,
    `  ${'bench (devices)'.padEnd(16)}${''.padStart(10)}${num(r.benchCpuMsPerOnboarding, 10, 3)}`,
    '',
    '  crypto floor (µs per op, this process, one thread, warm):',
    ...r.floor.operations.map(
      (o) =>
        `    ${o.side.padEnd(7)}${o.role.padEnd(14)}${o.kind.padEnd(7)}×${o.count} ${num(o.microseconds, 8)}  ${o.operation}`,
    ),
    `  server floor ${r.floor.serverMs.toFixed(3)} ms/onboarding; server cpu / floor = ${r.cpuOverFloor}×`,
    '',
    ...(r.requests && r.transport
      ? [
          `  requests answered per onboarding (OCSP not counted): ${r.requests.map((q) => `${q.name} ${q.perOnboarding}`).join(', ')}; ${r.transport.requestsPerOnboarding} in all${r.retries > 0 ? ` (with ${r.retries} retries)` : ''}`,
          `  one HTTPS request with an empty handler (GET /health, keep-alive, 16 at once): ${r.transport.serverMs.toFixed(3)} ms server CPU, ${r.transport.clientMs.toFixed(3)} ms client CPU`,
          `  transport floor ${r.transport.serverFloorMs.toFixed(3)} ms server CPU/onboarding (${r.transport.requestsPerOnboarding} × ${r.transport.serverMs.toFixed(3)}); server cpu / (crypto + transport floor) = ${(r.serverCpuMsPerOnboarding / (r.floor.serverMs + r.transport.serverFloorMs)).toFixed(2)}×`,
        ]
      : [
          '  requests per onboarding and the transport floor: not counted with several workers (each counts its own)',
        ]),
    `  device floor ${r.floor.deviceMs.toFixed(3)} ms/onboarding; bench-process cpu / device floor = ${r.deviceCpuOverFloor}×`,
  ];
  if (Object.keys(r.failures).length > 0) {
    lines.push('', '  failures:', ...Object.entries(r.failures).map(([code, n]) => `    ${code}: ${n}`));
  }
  if (r.profiles) {
    for (const p of r.profiles) {
      lines.push(
        '',
        `  profile ${p.process} (${p.file}): ${(p.totalMs / 1000).toFixed(1)} s of CPU sampled in the fleet phase`,
        '    self time:',
        ...p.top.map((f) => `    ${num(f.percent, 5)}%  ${f.selfMs.toFixed(0).padStart(7)} ms  ${f.name}`),
        '    on the stack (callees included):',
        ...p.inclusive.map(
          (f) => `    ${num(f.percent, 5)}%  ${f.selfMs.toFixed(0).padStart(7)} ms  ${f.name}`,
        ),
      );
    }
  }
  return `${lines.join('\n')}\n\n`;
}

/** Every role that counts its requests, by the names the process table uses. */
function roleEndpoints(ws: BenchWorkspace): RoleEndpoint[] {
  return [
    { name: 'credentialing', url: ws.urls.credentialing },
    ...ws.urls.registration.map((url, i) => ({ name: `registration-${i + 1}`, url })),
    ...ws.urls.provisioning.map((url, i) => ({ name: `provisioning-${i + 1}`, url })),
    { name: 'hss', url: ws.urls.hss },
    { name: 'phlr', url: ws.urls.phlr },
  ];
}
