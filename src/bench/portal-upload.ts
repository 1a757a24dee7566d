import { loadPki, initPki } from '../pki/index.js';
import { PortalClient } from '../portal/portal-client.js';
import * as portal from '../protocol/portal.js';
import { benchWorkspace, startRoles } from './cluster.js';
import { ProcessGroup, machineInfo, peakRssMiB, round, type MachineInfo } from './processes.js';
import { runRegisterBench, syntheticDevices, type RegisterResult } from './register.js';

export interface PortalUploadOptions {
  devices: number;
  dir?: string;
  onPhase?(phase: 'start' | 'upload' | 'register', total: number): void;
  onProgress?(phase: 'upload' | 'register', done: number): void;
}

export interface PortalUploadResult {
  bench: 'portal-upload';
  machine: MachineInfo;
  devices: number;
  accepted: number;
  rejected: number;
  /** Wall time of the one upload request, from its first byte sent to the finished upload's answer. */
  elapsedMs: number;
  rowsPerSecond: number;
  /** `simcred bench register` for the same count: the operator API without the portal. */
  register: Pick<RegisterResult, 'elapsedMs' | 'registrationsPerSecond' | 'registered'>;
  /** Upload wall time ÷ register wall time. */
  ratio: number;
  /** Peak RSS (VmHWM) per process during the upload, MiB. */
  peakRssMiB: Record<string, number>;
}

/**
 * `simcred bench portal-upload`: an owner uploads a CSV of N synthetic devices to a contract through
 * the portal (its own `simcred serve portal` process, with the credentialing server and two
 * registration servers), streamed from this process; then `bench register` for the same count, for
 * the ratio. Reports the portal's peak RSS: a file of any size must not be held in memory.
 *
 * @example
 *   const r = await runPortalUploadBench({ devices: 100_000 });
 */
export async function runPortalUploadBench(options: PortalUploadOptions): Promise<PortalUploadResult> {
  const machine = machineInfo();
  const ws = await benchWorkspace(options.dir);
  const group = new ProcessGroup(ws.env);
  let upload: Omit<PortalUploadResult, 'register' | 'ratio' | 'machine' | 'bench'>;
  try {
    await initPki(ws.config.pkiDir);
    const pki = await loadPki(ws.config.pkiDir);
    options.onPhase?.('start', 4);
    const servers = await startRoles(
      group,
      ws,
      ['registration-1', 'registration-2', 'credentialing', 'portal'],
      pki.operator.root.pem,
    );
    const owner = new PortalClient(ws.urls.portal, pki.operator.root.pem);
    try {
      await owner.signIn({ email: 'bench@owner.example', password: 'bench owner password', name: 'Bench' });
      const contract = await owner.call(portal.createContract, {
        body: {
          planId: 'm2m-fleet',
          billing: {
            name: 'Bench Ltd',
            address: '1 Bench Road',
            country: 'GB',
            email: 'bench@owner.example',
          },
          paymentReference: 'BENCH-1',
        },
      });
      options.onPhase?.('upload', options.devices);
      const started = performance.now();
      const answer = await owner.upload(
        contract.id,
        (function* () {
          yield 'dsim_id,registration_server';
          let n = 0;
          for (const d of syntheticDevices(options.devices, ws.urls.registration)) {
            yield `${d.dsimId},${d.registrationServer}`;
            if (++n % 1000 === 0) options.onProgress?.('upload', n);
          }
        })(),
        'bench.csv',
        'text/csv',
      );
      const elapsedMs = performance.now() - started;
      const peak: Record<string, number> = {};
      for (const s of servers) peak[s.name] = peakRssMiB(s.pid);
      peak.bench = peakRssMiB('self');
      upload = {
        devices: options.devices,
        accepted: answer.accepted,
        rejected: answer.rejectedCount,
        elapsedMs: round(elapsedMs, 0),
        rowsPerSecond: round((answer.accepted / elapsedMs) * 1000, 0),
        peakRssMiB: peak,
      };
    } finally {
      await owner.close();
    }
  } finally {
    await group.close();
    ws.cleanup();
  }
  const register = await runRegisterBench({
    devices: options.devices,
    ...(options.onPhase ? { onPhase: options.onPhase } : {}),
    onProgress: (_phase, done) => options.onProgress?.('register', done),
  });
  return {
    bench: 'portal-upload',
    machine,
    ...upload,
    register: {
      elapsedMs: register.elapsedMs,
      registrationsPerSecond: register.registrationsPerSecond,
      registered: register.registered,
    },
    ratio: round(upload.elapsedMs / register.elapsedMs, 2),
  };
}

/** The portal-upload table. */
export function formatPortalUpload(r: PortalUploadResult): string {
  return [
    '',
    `simcred bench portal-upload — a CSV of ${r.devices} devices uploaded by an owner through the portal`,
    `  machine: ${r.machine.cpus} × ${r.machine.model}, ${r.machine.memoryGiB} GiB, load average ${r.machine.loadAverage.join(' ')}`,
    `  accepted ${r.accepted}, rejected ${r.rejected}`,
    '',
    `  ${'path'.padEnd(44)}${'seconds'.padStart(10)}${'devices/s'.padStart(12)}`,
    `  ${'portal upload (CSV → portal → operator API)'.padEnd(44)}${(r.elapsedMs / 1000).toFixed(1).padStart(10)}${String(r.rowsPerSecond).padStart(12)}`,
    `  ${'bench register (NDJSON → operator API)'.padEnd(44)}${(r.register.elapsedMs / 1000).toFixed(1).padStart(10)}${String(r.register.registrationsPerSecond).padStart(12)}`,
    `  portal ÷ register: ${r.ratio}`,
    '',
    `  ${'process (during the upload)'.padEnd(28)}${'peak RSS MiB'.padStart(14)}`,
    ...Object.entries(r.peakRssMiB).map(
      ([name, mib]) => `  ${name.padEnd(28)}${mib.toFixed(1).padStart(14)}`,
    ),
    '',
    '',
  ].join('\n');
}
