import { loadPki, initPki } from '../pki/index.js';
import { PortalClient } from '../portal/portal-client.js';
import * as portal from '../protocol/portal.js';
import { benchWorkspace, startRoles } from './cluster.js';
import { ProcessGroup, machineInfo, peakRssMiB, residentMiB, round, type MachineInfo } from './processes.js';
import { runRegisterBench, syntheticDevices, type RegisterResult } from './register.js';

export interface PortalUploadOptions {
  devices: number;
  dir?: string;
  /** Caps the portal's V8 heap (node --max-old-space-size), MiB: an upload held in memory would fail. */
  portalHeapMiB?: number;
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
  /** The portal's V8 heap cap, MiB (null: node's default). */
  portalHeapMiB: number | null;
  /**
   * The portal's resident memory as the upload went on: the largest RSS seen in each tenth of the
   * upload's wall time (rows are read at a steady rate, so a tenth of the time is about a tenth of
   * the file). Flat when the file is streamed; rising all along when something is kept per row.
   */
  portalRssByTenth: { untilSeconds: number; rssMiB: number }[];
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
      ['registration-1', 'registration-2', 'credentialing'],
      pki.operator.root.pem,
    );
    // The bench's file must fit the portal's upload limit (16 MiB by default, about 200,000 rows).
    ws.env.SIMCRED_PORTAL__UPLOAD_LIMIT_BYTES = String(
      Math.min(1024 ** 3, Math.max(16 * 1024 ** 2, options.devices * 128)),
    );
    const heapFlags = options.portalHeapMiB ? [`--max-old-space-size=${options.portalHeapMiB}`] : [];
    const [portalProcess] = await startRoles(group, ws, ['portal'], pki.operator.root.pem, heapFlags);
    servers.push(portalProcess!);
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
      // (time since start, RSS) every 200 ms: how the portal's memory moves while it reads the file.
      const samples: { ms: number; rssMiB: number }[] = [];
      const sample = () =>
        samples.push({ ms: performance.now() - started, rssMiB: residentMiB(portalProcess!.pid) });
      const sampler = setInterval(sample, 200);
      const started = performance.now();
      const answer = await owner
        .upload(
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
        )
        .finally(() => clearInterval(sampler));
      const elapsedMs = performance.now() - started;
      sample();
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
        portalHeapMiB: options.portalHeapMiB ?? null,
        portalRssByTenth: byTenth(samples, elapsedMs),
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

/** The largest sample in each tenth of `elapsedMs`. */
function byTenth(
  samples: { ms: number; rssMiB: number }[],
  elapsedMs: number,
): { untilSeconds: number; rssMiB: number }[] {
  return Array.from({ length: 10 }, (_, i) => {
    const from = (i * elapsedMs) / 10;
    const until = ((i + 1) * elapsedMs) / 10;
    const inside = samples.filter((s) => s.ms > from && s.ms <= until + (i === 9 ? Infinity : 0));
    return { untilSeconds: round(until / 1000, 1), rssMiB: Math.max(0, ...inside.map((s) => s.rssMiB)) };
  });
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
    `  the portal's RSS during the upload${r.portalHeapMiB ? ` (its V8 heap capped at ${r.portalHeapMiB} MiB)` : ''}`,
    `  ${'upload time'.padEnd(28)}${'RSS MiB'.padStart(14)}`,
    ...r.portalRssByTenth.map(
      ({ untilSeconds, rssMiB }) =>
        `  ${`≤ ${untilSeconds.toFixed(1)} s`.padEnd(28)}${rssMiB.toFixed(1).padStart(14)}`,
    ),
    '',
    '',
  ].join('\n');
}
