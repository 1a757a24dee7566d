import { failureCounts, runFleet } from '../device/fleet.js';
import { SimcredError } from '../errors/index.js';
import { initPki, loadPki } from '../pki/index.js';
import { hssFleetCounts } from '../system/demo.js';
import { ALL_ROLES, benchWorkspace, roleSpec, type ClusterRole } from './cluster.js';
import { manufactureFleet, registerFleet, type BenchPhase } from './e2e.js';
import {
  ProcessGroup,
  machineInfo,
  round,
  waitHealthy,
  type MachineInfo,
  type ServerProcess,
} from './processes.js';

/** The roles a chaos run may kill: each names every process of that role (both registration servers, …). */
export const CHAOS_ROLES = ['credentialing', 'hss', 'provisioning', 'registration', 'ocsp', 'phlr'] as const;
export type ChaosRole = (typeof CHAOS_ROLES)[number];

export interface ChaosOptions {
  devices: number;
  /** Roles whose processes are SIGKILLed (default: every one the issue names). */
  kill: ChaosRole[];
  /** Mean time between kills, ms; each gap is drawn uniformly from 0.5× to 1.5× of it. */
  everyMs: number;
  /**
   * Exactly this many kills instead, spread over the fleet: the k-th when device k·N/(kills+1) is
   * about to start, after a random 0–everyMs wait while the devices before it are in flight. The fleet
   * holds its next device back until that victim answers again, so every kill lands in the run.
   */
  kills?: number;
  concurrency: number;
  /** Every role's store on this PostgreSQL database (each in its own schema); SQLite files otherwise. */
  postgresUrl?: string;
  /** Work folder (kept); default a temporary one, removed afterwards. */
  dir?: string;
  /** Seeds the choice of victims and gaps, so a failing run can be repeated. */
  seed?: number;
  onPhase?(phase: BenchPhase, total: number): void;
  onProgress?(phase: BenchPhase, done: number): void;
  /** After each kill and restart. */
  onKill?(kill: ChaosKill): void;
}

export interface ChaosKill {
  process: string;
  /** ms after the fleet phase began. */
  atMs: number;
  /** How long the restarted process took to answer /health again, ms. */
  downMs: number;
}

export interface ChaosResult {
  bench: 'chaos';
  machine: MachineInfo;
  database: 'sqlite' | 'postgres';
  devices: number;
  provisioned: number;
  attached: number;
  distinctImsis: number;
  hssSubscribers: number;
  /** SIGKILLs sent (each followed by a restart of the same process). */
  kills: number;
  killsByProcess: Record<string, number>;
  /**
   * Double results: devices given an IMSI another device also got, plus HSS subscribers beyond one
   * per device. 0 in a correct system, however the processes die.
   */
  duplicates: number;
  /** Σ of the devices' retries (each went over steps again after a 503 or a lost connection). */
  retries: number;
  failed: number;
  failures: Record<string, number>;
  /** The first few devices that failed, with their last error (to look them up with `operator state`). */
  failedDevices: { dsimId: string; code: string; message: string }[];
  onboardMs: number;
  seed: number;
}

/** A small seeded generator (mulberry32): the same seed picks the same victims at the same gaps. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The cluster's processes of one chaos role. */
function processesOf(role: ChaosRole): ClusterRole[] {
  return ALL_ROLES.filter((r) => r === role || r.startsWith(`${role}-`));
}

/** Waits until `child` has exited (at once if it already has). */
function exited(server: ServerProcess): Promise<void> {
  return new Promise((resolve) => {
    if (server.child.exitCode !== null || server.child.signalCode !== null) resolve();
    else server.child.once('exit', () => resolve());
  });
}

/**
 * `simcred bench chaos`: every role its own process, a fleet onboarding, and meanwhile a process of
 * the chosen roles SIGKILLed at random moments and started again at once (as a supervisor would).
 * What it must show is that a process dying at any moment loses nothing and doubles nothing: every
 * device provisioned and attached, one IMSI and one HSS subscriber each.
 *
 * @example
 *   const r = await runChaosBench({ devices: 200, kill: ['hss'], everyMs: 1000, concurrency: 32 });
 */
export async function runChaosBench(options: ChaosOptions): Promise<ChaosResult> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const random = seededRandom(seed);
  const database: Record<string, string> = options.postgresUrl
    ? { SIMCRED_DATABASE__KIND: 'postgres', SIMCRED_DATABASE__URL: options.postgresUrl }
    : {};
  const ws = await benchWorkspace(options.dir, database);
  const group = new ProcessGroup(ws.env);
  try {
    await initPki(ws.config.pkiDir);
    const pki = await loadPki(ws.config.pkiDir);
    const root = pki.operator.root.pem;
    options.onPhase?.('start', ALL_ROLES.length);
    const running = new Map<ClusterRole, ServerProcess>();
    for (const role of ALL_ROLES) running.set(role, group.start(roleSpec(ws, role)));
    await waitHealthy([...running.values()], root);

    const fleet = await manufactureFleet(ws, options);
    await registerFleet(ws, fleet, options);
    const dsimIds = fleet.map((d) => d.dsimId);

    const victims = options.kill.flatMap(processesOf);
    const kills: ChaosKill[] = [];
    let fleetDone = false;
    const fleetStarted = performance.now();
    const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
    // Victims go in rounds, each round a fresh shuffle: every process dies once before any twice.
    let shuffled: ClusterRole[] = [];
    const nextVictim = (): ClusterRole => {
      if (shuffled.length === 0) {
        shuffled = [...victims];
        for (let i = shuffled.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
        }
      }
      return shuffled.pop()!;
    };
    /** SIGKILLs the next victim's process group and starts it again; resolves once it answers. */
    const killNext = async () => {
      const role = nextVictim();
      const victim = running.get(role)!;
      const atMs = performance.now() - fleetStarted;
      try {
        process.kill(-victim.pid, 'SIGKILL');
      } catch {
        // already gone: it is started again below all the same
      }
      await exited(victim);
      const restarted = group.start(roleSpec(ws, role));
      running.set(role, restarted);
      await waitHealthy([restarted], root);
      const downMs = performance.now() - fleetStarted - atMs;
      const kill = { process: role, atMs: round(atMs, 0), downMs: round(downMs, 0) };
      kills.push(kill);
      options.onKill?.(kill);
    };
    // One kill at a time: counted kills come from several fleet workers at once, and a second kill of
    // a role whose restart is still starting would kill that restart instead.
    let killing: Promise<void> = Promise.resolve();
    const killOne = () => (killing = killing.then(killNext));
    // Counted kills go with the fleet's progress; otherwise one at a time on a timer until it ends.
    const counted = options.kills !== undefined && victims.length > 0;
    const killAt = new Set(
      counted
        ? Array.from({ length: options.kills! }, (_, k) =>
            Math.floor(((k + 1) * dsimIds.length) / (options.kills! + 1)),
          )
        : [],
    );
    const chaos = (async () => {
      while (!counted && !fleetDone && victims.length > 0) {
        await pause(options.everyMs * (0.5 + random()));
        if (!fleetDone) await killOne();
      }
    })();

    let done = 0;
    options.onPhase?.('onboard', dsimIds.length);
    const report = await runFleet({
      pkiDir: ws.config.pkiDir,
      dsimIds,
      ocspOptions: { clockSkewSeconds: ws.config.ocsp.clockSkewSeconds },
      concurrency: options.concurrency,
      // A device waits out a restart (a few seconds at most) however often it meets one.
      maxAttempts: 200,
      maxRetryDelayMs: 500,
      beforeDevice: async (index) => {
        if (!killAt.has(index)) return;
        await pause(options.everyMs * random());
        await killOne();
      },
      onDeviceDone: () => options.onProgress?.('onboard', ++done),
    }).finally(() => {
      fleetDone = true;
    });
    await chaos;
    const onboardMs = performance.now() - fleetStarted;

    const ok = report.outcomes.filter((o) => o.ok);
    const distinctImsis = new Set(ok.map((o) => o.imsi)).size;
    const { hssSubscribers, attached } = await hssFleetCounts(ws.config, dsimIds);
    const killsByProcess: Record<string, number> = {};
    for (const k of kills) killsByProcess[k.process] = (killsByProcess[k.process] ?? 0) + 1;
    return {
      bench: 'chaos',
      machine: machineInfo(),
      database: options.postgresUrl ? 'postgres' : 'sqlite',
      devices: dsimIds.length,
      provisioned: ok.length,
      attached,
      distinctImsis,
      hssSubscribers,
      kills: kills.length,
      killsByProcess,
      duplicates: ok.length - distinctImsis + Math.max(0, hssSubscribers - dsimIds.length),
      retries: ok.reduce((sum, o) => sum + o.retries, 0),
      failed: dsimIds.length - ok.length,
      failures: failureCounts(report.outcomes),
      failedDevices: report.outcomes
        .filter((o) => !o.ok)
        .slice(0, 10)
        .map((o) => ({ dsimId: o.dsimId, code: o.error!.code, message: o.error!.message })),
      onboardMs: round(onboardMs, 0),
      seed,
    };
  } finally {
    await group.close();
    ws.cleanup();
  }
}

/** Whether a chaos run showed what it must: everything provisioned, attached, counted once. */
export function chaosHeld(r: ChaosResult): boolean {
  return (
    r.provisioned === r.devices &&
    r.attached === r.devices &&
    r.distinctImsis === r.devices &&
    r.hssSubscribers === r.devices &&
    r.duplicates === 0
  );
}

/** The chaos table. */
export function formatChaos(r: ChaosResult): string {
  const row = (name: string, value: string | number, want?: number) =>
    `  ${name.padEnd(16)}${String(value).padStart(8)}${want === undefined ? '' : value === want ? '  ✓' : `  ✗ (want ${want})`}`;
  const lines = [
    '',
    `simcred bench chaos — ${r.devices} devices, every role its own process on ${r.database === 'postgres' ? 'PostgreSQL' : 'SQLite'}, ${r.kills} SIGKILLs (seed ${r.seed})`,
    `  machine: ${r.machine.cpus} × ${r.machine.model}, ${r.machine.memoryGiB} GiB, load average ${r.machine.loadAverage.join(' ')}`,
    `  fleet phase ${(r.onboardMs / 1000).toFixed(1)} s, ${r.retries} retries`,
    '',
    row('provisioned', r.provisioned, r.devices),
    row('attached', r.attached, r.devices),
    row('distinct IMSIs', r.distinctImsis, r.devices),
    row('HSS subscribers', r.hssSubscribers, r.devices),
    row('duplicates', r.duplicates, 0),
    '',
    '  kills:',
    ...Object.entries(r.killsByProcess)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, n]) => `    ${name.padEnd(16)}${String(n).padStart(6)}`),
  ];
  if (Object.keys(r.failures).length > 0) {
    lines.push('', '  failures:', ...Object.entries(r.failures).map(([code, n]) => `    ${code}: ${n}`));
    lines.push(...r.failedDevices.map((f) => `    ${f.dsimId}: ${f.code} ${f.message}`));
  }
  return `${lines.join('\n')}\n\n`;
}

/** Roles named on the command line (comma-separated), each one of CHAOS_ROLES. */
export function parseChaosRoles(text: string): ChaosRole[] {
  const roles = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const role of roles) {
    if (!(CHAOS_ROLES as readonly string[]).includes(role)) {
      throw new SimcredError(
        'SIMCRED_CLI_ARGUMENT',
        `--kill: ${role} is not one of ${CHAOS_ROLES.join(', ')}`,
      );
    }
  }
  if (roles.length === 0) throw new SimcredError('SIMCRED_CLI_ARGUMENT', '--kill needs at least one role');
  return [...new Set(roles)] as ChaosRole[];
}
