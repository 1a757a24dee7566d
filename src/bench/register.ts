import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { loadTlsIdentity } from '../http/index.js';
import { initPki, loadPki } from '../pki/index.js';
import { OperatorClient } from '../portal/operator-client.js';
import { roleDatabase } from '../system/wiring.js';
import { benchWorkspace, startRoles, type BenchWorkspace } from './cluster.js';
import {
  ProcessGroup,
  machineInfo,
  peakRssMiB,
  round,
  type MachineInfo,
  type ServerProcess,
} from './processes.js';

export interface RegisterOptions {
  devices: number;
  /** Work folder (kept); default a temporary one, removed afterwards. */
  dir?: string;
  onPhase?(phase: 'start' | 'register', total: number): void;
  onProgress?(phase: 'register', done: number): void;
}

export interface RegisterResult {
  bench: 'register';
  machine: MachineInfo;
  devices: number;
  registered: number;
  unchanged: number;
  rejected: number;
  /** Rows this batch added to each registration server's store. */
  stored: number[];
  elapsedMs: number;
  registrationsPerSecond: number;
  /** Peak RSS (VmHWM) per process, MiB; "bench" is this process (it generates and streams the batch). */
  peakRssMiB: Record<string, number>;
}

/**
 * N synthetic DSIM_IDs ("DSIM" + 16 upper-case hex digits: a random 8-digit prefix and a counter),
 * round-robin over the registration servers, made one at a time (the batch is never held in memory).
 *
 * @example
 *   for (const d of syntheticDevices(3, ['https://127.0.0.1:7411'])) console.log(d.dsimId);
 */
export function* syntheticDevices(
  count: number,
  registrationServers: string[],
): Generator<{ dsimId: string; registrationServer: string }> {
  const prefix = randomBytes(4).toString('hex').toUpperCase();
  for (let i = 0; i < count; i++) {
    yield {
      dsimId: `DSIM${prefix}${i.toString(16).toUpperCase().padStart(8, '0')}`,
      registrationServer: registrationServers[i % registrationServers.length]!,
    };
  }
}

/**
 * The credentialing server and two registration servers, each its own `simcred serve` process
 * (registration does not check that a device exists, so nothing is manufactured).
 *
 * @example
 *   const cluster = await RegisterCluster.start({});
 *   try { await cluster.run({ devices: 100_000 }); } finally { await cluster.close(); }
 */
export class RegisterCluster {
  private constructor(
    private readonly ws: BenchWorkspace,
    private readonly group: ProcessGroup,
    private readonly servers: ServerProcess[],
  ) {}

  static async start(options: Pick<RegisterOptions, 'dir' | 'onPhase'>): Promise<RegisterCluster> {
    const ws = await benchWorkspace(options.dir);
    const group = new ProcessGroup(ws.env);
    try {
      await initPki(ws.config.pkiDir);
      const pki = await loadPki(ws.config.pkiDir);
      options.onPhase?.('start', 3);
      const servers = await startRoles(
        group,
        ws,
        ['registration-1', 'registration-2', 'credentialing'],
        pki.operator.root.pem,
      );
      return new RegisterCluster(ws, group, servers);
    } catch (err) {
      await group.close();
      ws.cleanup();
      throw err;
    }
  }

  /** Rows each registration server holds. */
  private stored(): number[] {
    return this.ws.urls.registration.map((_, i) => {
      const db = roleDatabase(this.ws.config, `registration-${i + 1}`);
      if (db.kind !== 'sqlite' || !existsSync(db.file)) return 0;
      const sqlite = new Database(db.file, { readonly: true });
      try {
        return (sqlite.prepare('SELECT count(*) AS n FROM registrations').get() as { n: number }).n;
      } finally {
        sqlite.close();
      }
    });
  }

  /** One streamed batch of N synthetic devices, round-robin over the registration servers. */
  async run(options: Omit<RegisterOptions, 'dir'>): Promise<RegisterResult> {
    const { ws, servers } = this;
    const machine = machineInfo();
    const storedBefore = this.stored();
    const operator = new OperatorClient(loadTlsIdentity(ws.config.pkiDir, 'portal'));
    options.onPhase?.('register', options.devices);
    const started = performance.now();
    let summary;
    try {
      summary = await operator.registerDevices(
        ws.urls.credentialing,
        syntheticDevices(options.devices, ws.urls.registration),
        (n) => options.onProgress?.('register', n),
      );
    } finally {
      await operator.close();
    }
    const elapsedMs = performance.now() - started;
    const peak: Record<string, number> = {};
    for (const s of servers) peak[s.name] = peakRssMiB(s.pid);
    peak.bench = peakRssMiB('self');
    const stored = this.stored().map((n, i) => n - storedBefore[i]!);
    return {
      bench: 'register',
      machine,
      devices: options.devices,
      registered: summary.registered,
      unchanged: summary.unchanged,
      rejected: summary.rejected.length,
      stored,
      elapsedMs: round(elapsedMs, 0),
      registrationsPerSecond: round((summary.registered / elapsedMs) * 1000, 0),
      peakRssMiB: peak,
    };
  }

  async close(): Promise<void> {
    try {
      await this.group.close();
    } finally {
      this.ws.cleanup();
    }
  }
}

/**
 * `simcred bench register`: one streamed batch of N synthetic devices through the credentialing
 * server to two registration servers. Reports registrations/s and every process's peak RSS.
 *
 * @example
 *   const r = await runRegisterBench({ devices: 100_000 });
 */
export async function runRegisterBench(options: RegisterOptions): Promise<RegisterResult> {
  const cluster = await RegisterCluster.start(options);
  try {
    return await cluster.run(options);
  } finally {
    await cluster.close();
  }
}

/** The register table. */
export function formatRegister(r: RegisterResult): string {
  return [
    '',
    `simcred bench register — ${r.devices} synthetic devices, one NDJSON stream, credentialing → 2 registration servers`,
    `  machine: ${r.machine.cpus} × ${r.machine.model}, ${r.machine.memoryGiB} GiB, load average ${r.machine.loadAverage.join(' ')}`,
    `  registered ${r.registered}, unchanged ${r.unchanged}, rejected ${r.rejected}; stored ${r.stored.join(' + ')}`,
    `  ${r.registrationsPerSecond} registrations/s (${(r.elapsedMs / 1000).toFixed(1)} s)`,
    '',
    `  ${'process'.padEnd(16)}${'peak RSS MiB'.padStart(14)}`,
    ...Object.entries(r.peakRssMiB).map(
      ([name, mib]) => `  ${name.padEnd(16)}${mib.toFixed(1).padStart(14)}`,
    ),
    '',
    '',
  ].join('\n');
}
