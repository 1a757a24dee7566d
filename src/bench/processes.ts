import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SimcredError } from '../errors/index.js';
import { PeerClient } from '../http/index.js';
import { freePort } from '../ocsp/openssl.js';

/** The built CLI this process runs from (dist/src/cli/main.js). */
export const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** Ports of every role, picked free up front and handed to each child by SIMCRED_PORTS__* variables. */
export interface BenchPorts {
  credentialing: number;
  registration: number[];
  provisioning: number[];
  hss: number;
  phlr: number;
  ocsp: number;
  portal: number;
}

/**
 * Free loopback ports for every role, all distinct.
 *
 * @example
 *   const ports = await pickPorts();
 */
export async function pickPorts(): Promise<BenchPorts> {
  const taken = new Set<number>();
  const one = async (): Promise<number> => {
    for (;;) {
      const port = await freePort();
      if (!taken.has(port)) {
        taken.add(port);
        return port;
      }
    }
  };
  return {
    credentialing: await one(),
    registration: [await one(), await one()],
    provisioning: [await one(), await one()],
    hss: await one(),
    phlr: await one(),
    ocsp: await one(),
    portal: await one(),
  };
}

/** The environment that makes `simcred serve …` use these ports (config's SIMCRED_* overrides). */
export function portEnvironment(ports: BenchPorts): Record<string, string> {
  return {
    SIMCRED_PORTS__CREDENTIALING: String(ports.credentialing),
    SIMCRED_PORTS__REGISTRATION: JSON.stringify(ports.registration),
    SIMCRED_PORTS__PROVISIONING: JSON.stringify(ports.provisioning),
    SIMCRED_PORTS__HSS: String(ports.hss),
    SIMCRED_PORTS__PHLR: String(ports.phlr),
    SIMCRED_PORTS__OCSP: String(ports.ocsp),
    SIMCRED_PORTS__PORTAL: String(ports.portal),
  };
}

/** One server role in its own process group. */
export interface ServerProcess {
  /** e.g. "registration-2". */
  name: string;
  pid: number;
  url: string;
  child: ChildProcess;
  /** Text the process wrote to stderr (the last 8 KiB), for error messages. */
  stderr(): string;
}

/** What a child role is: `simcred serve ROLE …` arguments and the URL it will answer on. */
export interface RoleSpec {
  name: string;
  args: string[];
  url: string;
  /** Extra node flags (e.g. --cpu-prof). */
  nodeFlags?: string[];
}

/**
 * The child processes of one benchmark: every one started in its own process group and killed
 * (SIGTERM, then SIGKILL) on `close()`, on this process's exit, and on Ctrl-C.
 */
export class ProcessGroup {
  private readonly processes: ServerProcess[] = [];
  private readonly onExit = () => this.killNow('SIGKILL');

  constructor(private readonly env: Record<string, string>) {
    process.on('exit', this.onExit);
  }

  get list(): readonly ServerProcess[] {
    return this.processes;
  }

  /** Starts `node CLI serve …` detached (its own process group), stdout ignored, stderr kept. */
  start(spec: RoleSpec): ServerProcess {
    const child = spawn(process.execPath, [...(spec.nodeFlags ?? []), CLI, ...spec.args], {
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-8192);
    });
    if (child.pid === undefined) {
      throw new SimcredError('SIMCRED_INTERNAL', `cannot start ${spec.name}`);
    }
    const started: ServerProcess = {
      name: spec.name,
      pid: child.pid,
      url: spec.url,
      child,
      stderr: () => stderr,
    };
    this.processes.push(started);
    return started;
  }

  /** Signals every process group that is still running. */
  private killNow(signal: NodeJS.Signals): void {
    for (const p of this.processes) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) continue;
      try {
        process.kill(-p.pid, signal);
      } catch {
        // already gone
      }
    }
  }

  /** SIGTERM to every group, SIGKILL to any still there after `graceMs`; resolves when all exited. */
  async close(graceMs = 3000): Promise<void> {
    const exited = this.processes.map(
      (p) =>
        new Promise<void>((resolve) => {
          if (p.child.exitCode !== null || p.child.signalCode !== null) resolve();
          else p.child.once('exit', () => resolve());
        }),
    );
    this.killNow('SIGTERM');
    const timer = setTimeout(() => this.killNow('SIGKILL'), graceMs);
    await Promise.all(exited);
    clearTimeout(timer);
    process.off('exit', this.onExit);
  }
}

/**
 * Waits until every server, the OCSP responder included, answers GET /health with 200, failing
 * early with its stderr when one exits.
 */
export async function waitHealthy(
  servers: readonly ServerProcess[],
  operatorRootPem: string,
  timeoutMs = 30_000,
): Promise<void> {
  const client = new PeerClient({ tls: { ca: [operatorRootPem] }, timeoutMs: 1000, connections: 1 });
  const deadline = Date.now() + timeoutMs;
  try {
    await Promise.all(
      servers.map(async (server) => {
        for (;;) {
          if (server.child.exitCode !== null || server.child.signalCode !== null) {
            throw new SimcredError(
              'SIMCRED_INTERNAL',
              `${server.name} exited during start-up: ${server.stderr().trim().slice(-600)}`,
            );
          }
          try {
            const { statusCode } = await client.send(`${server.url}/health`, 'GET', undefined, '');
            if (statusCode === 200) return;
          } catch {
            // not listening yet
          }
          if (Date.now() > deadline) {
            throw new SimcredError(
              'SIMCRED_INTERNAL',
              `${server.name} did not answer within ${timeoutMs} ms`,
            );
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      }),
    );
  } finally {
    await client.close();
  }
}

let clockTicks: number | undefined;
/** Clock ticks per second of /proc/<pid>/stat (getconf CLK_TCK; 100 on Linux in practice). */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** A process and every process below it (a `simcred up --workers N` primary and its workers). */
export function processTree(root: number): number[] {
  const parents = new Map<number, number[]>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return [root];
  }
  for (const name of entries) {
    try {
      const parent = Number(statFields(readFileSync(`/proc/${name}/stat`, 'utf8'))[1]);
      parents.set(parent, [...(parents.get(parent) ?? []), Number(name)]);
    } catch {
      // exited meanwhile
    }
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) tree.push(...(parents.get(tree[i]!) ?? []));
  return tree;
}

/** The fields of /proc/<pid>/stat after "(comm)": state is [0], ppid [1], utime [11], stime [12]. */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/**
 * CPU time (user + system, all threads) a process and its descendants have used so far, ms, from
 * /proc/<pid>/stat (a descendant that exited meanwhile is not counted); for 'self', this process alone.
 *
 * @example
 *   const before = processCpuMs(child.pid);
 */
export function processCpuMs(pid: number | 'self'): number {
  let total = 0;
  for (const ms of cpuMsByProcess(pid).values()) total += ms;
  return total;
}

/** processCpuMs for each process of the tree, by pid (a pool's primary and each worker). */
export function cpuMsByProcess(pid: number | 'self'): Map<number | 'self', number> {
  const byPid = new Map<number | 'self', number>();
  // This process's own children are the servers it measures, not part of it.
  for (const one of pid === 'self' ? ['self' as const] : processTree(pid)) {
    try {
      const fields = statFields(readFileSync(`/proc/${one}/stat`, 'utf8'));
      byPid.set(one, ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicksPerSecond());
    } catch {
      if (one === pid) throw new SimcredError('SIMCRED_INTERNAL', `no process ${pid}`);
    }
  }
  return byPid;
}

/**
 * Peak resident set size (VmHWM) of a process, MiB, from /proc/<pid>/status; of its largest
 * descendant when that is larger (each worker of a pool is its own process); for 'self', this process
 * alone; 0 if unreadable.
 */
export function peakRssMiB(pid: number | 'self'): number {
  let peak = 0;
  for (const one of pid === 'self' ? ['self' as const] : processTree(pid)) {
    try {
      const status = readFileSync(`/proc/${one}/status`, 'utf8');
      const kb = /^VmHWM:\s+(\d+)\s+kB/m.exec(status)?.[1];
      if (kb) peak = Math.max(peak, Math.round((Number(kb) / 1024) * 10) / 10);
    } catch {
      // exited meanwhile
    }
  }
  return peak;
}

/** Resident set size (VmRSS) of one process now, MiB; 0 if unreadable. */
export function residentMiB(pid: number): number {
  try {
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Math.round((Number(kb) / 1024) * 10) / 10 : 0;
  } catch {
    return 0;
  }
}

/** The machine the figures come from. */
export interface MachineInfo {
  cpus: number;
  model: string;
  memoryGiB: number;
  loadAverage: [number, number, number];
  node: string;
}

export function machineInfo(): MachineInfo {
  let model = 'unknown';
  let memoryGiB = 0;
  try {
    model = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? model;
    const kb = /^MemTotal:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1];
    memoryGiB = kb ? Math.round((Number(kb) / 1024 / 1024) * 10) / 10 : 0;
  } catch {
    // not Linux
  }
  let loadAverage: [number, number, number] = [0, 0, 0];
  try {
    const [a, b, c] = readFileSync('/proc/loadavg', 'utf8').split(' ').map(Number);
    loadAverage = [a ?? 0, b ?? 0, c ?? 0];
  } catch {
    // not Linux
  }
  let cpus = 0;
  try {
    cpus = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  } catch {
    cpus = 0;
  }
  return { cpus, model, memoryGiB, loadAverage, node: process.version };
}

/** Rounds to `digits` decimals. */
export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
