import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig, type SimcredConfig } from '../config/index.js';
import { configuredUrls } from '../system/wiring.js';
import {
  ProcessGroup,
  pickPorts,
  portEnvironment,
  waitHealthy,
  type BenchPorts,
  type RoleSpec,
  type ServerProcess,
} from './processes.js';

/** Roles a benchmark can start, each as `simcred serve …` in its own process. */
export type ClusterRole =
  | 'ocsp'
  | 'hss'
  | 'phlr'
  | 'registration-1'
  | 'registration-2'
  | 'provisioning-1'
  | 'provisioning-2'
  | 'credentialing'
  | 'portal';

export const ALL_ROLES: ClusterRole[] = [
  'ocsp',
  'hss',
  'phlr',
  'registration-1',
  'registration-2',
  'provisioning-1',
  'provisioning-2',
  'credentialing',
];

/** A work folder (data + PKI) with its ports picked and the config every child will load. */
export interface BenchWorkspace {
  dataDir: string;
  config: SimcredConfig;
  ports: BenchPorts;
  env: Record<string, string>;
  urls: ReturnType<typeof configuredUrls>;
  /** Removes the folder unless it was given by the caller. */
  cleanup(): void;
}

/**
 * A fresh data folder (a temporary one unless `dir` is given, which is then kept) and free ports;
 * `extraEnv` (e.g. SIMCRED_DATABASE__*) goes to the config and to every child.
 *
 * @example
 *   const ws = await benchWorkspace(); try { … } finally { ws.cleanup(); }
 */
export async function benchWorkspace(
  dir?: string,
  extraEnv: Record<string, string> = {},
): Promise<BenchWorkspace> {
  const dataDir = dir ? resolve(dir) : mkdtempSync(join(tmpdir(), 'simcred-bench-'));
  mkdirSync(dataDir, { recursive: true });
  const ports = await pickPorts();
  const env = { ...portEnvironment(ports), SIMCRED_LOG__LEVEL: 'warn', ...extraEnv };
  const config = loadConfig({ env: { ...process.env, ...env }, overrides: { dataDir } });
  return {
    dataDir,
    config,
    ports,
    env,
    urls: configuredUrls(config),
    cleanup: () => {
      if (!dir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** How `simcred serve` starts one role of the workspace, and the URL it answers on. */
export function roleSpec(ws: BenchWorkspace, role: ClusterRole, nodeFlags: string[] = []): RoleSpec {
  const [base, instance] = role.split('-') as [string, string | undefined];
  if (role === 'ocsp') {
    return {
      name: role,
      url: ws.urls.ocsp,
      nodeFlags,
      args: [
        'serve',
        'ocsp',
        '--dir',
        ws.config.pkiDir,
        '--port',
        String(ws.ports.ocsp),
        '--log-level',
        'warn',
      ],
    };
  }
  const index = instance ? Number(instance) - 1 : 0;
  const url =
    base === 'registration'
      ? ws.urls.registration[index]!
      : base === 'provisioning'
        ? ws.urls.provisioning[index]!
        : ws.urls[base as 'hss' | 'phlr' | 'credentialing' | 'portal'];
  return {
    name: role,
    url,
    nodeFlags,
    args: ['serve', base, '--dir', ws.dataDir, ...(instance ? ['--instance', instance] : [])],
  };
}

/**
 * Starts the given roles as child processes of `group` (all at once) and waits for each to answer.
 * `nodeFlags` go to every child (e.g. --cpu-prof).
 */
export async function startRoles(
  group: ProcessGroup,
  ws: BenchWorkspace,
  roles: ClusterRole[],
  operatorRootPem: string,
  nodeFlags: string[] = [],
): Promise<ServerProcess[]> {
  const started = roles.map((role) => group.start(roleSpec(ws, role, nodeFlags)));
  await waitHealthy(started, operatorRootPem);
  return started;
}

/**
 * Every role in one child process (`simcred up` on the workspace's ports), for comparing deployment
 * shapes: the same roles and wire protocol, without a process switch between hops. With `workers` > 1
 * that process is the primary of a pool (`simcred up --workers N`), each worker serving every role.
 * Returns that one process after every role's URL answers.
 */
export async function startColocated(
  group: ProcessGroup,
  ws: BenchWorkspace,
  operatorRootPem: string,
  nodeFlags: string[] = [],
  workers = 1,
): Promise<ServerProcess[]> {
  const all = group.start({
    name: workers > 1 ? `all roles ×${workers}` : 'all roles',
    url: ws.urls.credentialing,
    nodeFlags,
    args: ['up', '--dir', ws.dataDir, '--workers', String(workers)],
  });
  const urls = [
    ws.urls.credentialing,
    ws.urls.hss,
    ws.urls.phlr,
    ws.urls.ocsp,
    ...ws.urls.registration,
    ...ws.urls.provisioning,
  ];
  await waitHealthy(
    urls.map((url) => ({ ...all, url })),
    operatorRootPem,
  );
  return [all];
}
