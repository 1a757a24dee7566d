import type { Command } from 'commander';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { SimcredError } from '../errors/index.js';
import { readManifest } from '../pki/index.js';
import { haproxyConfig, urlEndpoint, type BalancedRole, type Endpoint } from '../system/haproxy.js';
import { configuredUrls } from '../system/wiring.js';
import type { SimcredConfig } from '../config/index.js';
import { action } from './run.js';
import { commonConfig, withCommonOptions, type CommonOptions } from './system-commands.js';

/** Roles an operator may run several instances of behind one public URL. */
const BALANCED = ['credentialing', 'registration', 'provisioning', 'hss', 'ocsp'] as const;
type Balanced = (typeof BALANCED)[number];

/**
 * `simcred deploy haproxy`: the HAProxy configuration of a deployment, from its config (the public
 * URLs HAProxy binds, the ports the instances listen on, the operator root its health checks trust)
 * and the instances' addresses.
 *
 * @example
 *   registerDeployCommands(program);
 */
export function registerDeployCommands(program: Command): void {
  const deploy = program
    .command('deploy')
    .description('configuration for running the roles on several hosts');
  withCommonOptions(
    deploy
      .command('haproxy')
      .description(
        "print an HAProxy config (TCP pass-through, TLS health checks) putting each role's instances behind its public URL (config urls)",
      )
      .requiredOption(
        '--instance <ROLE=HOST[:PORT],…>',
        `an instance of a role (${BALANCED.join(', ')}; registration-N, provisioning-N for the N-th server), at its address and port (default: the config's port); repeatable`,
        (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
      )
      .option('--check-interval <ms>', 'milliseconds between two health checks of an instance', '1000'),
  ).action(
    action(async (options: CommonOptions & { instance: string[]; checkInterval: string }) => {
      const interval = Number(options.checkInterval);
      if (!Number.isInteger(interval) || interval < 100 || interval > 60_000) {
        throw new SimcredError('SIMCRED_CLI_ARGUMENT', '--check-interval must be 100–60000 ms');
      }
      const config = commonConfig(options);
      const roles = balancedRoles(config, options.instance);
      const caFile = join(config.pkiDir, readManifest(config.pkiDir).operator.root.cert);
      process.stdout.write(haproxyConfig(roles, { caFile, checkIntervalMs: interval }));
    }),
  );
}

/**
 * Each role named in `--instance` values with its instances, bound at its public URL.
 *
 * @example
 *   balancedRoles(config, ['credentialing=10.0.1.1,credentialing=10.0.1.2:7401']);
 */
export function balancedRoles(config: SimcredConfig, values: readonly string[]): BalancedRole[] {
  const urls = configuredUrls(config);
  const byName = new Map<string, BalancedRole>();
  for (const entry of values.flatMap((v) => v.split(','))) {
    const match = /^([a-z]+)(?:-(\d+))?=(.+)$/.exec(entry.trim());
    const role = match?.[1] as Balanced | undefined;
    if (!match || !role || !(BALANCED as readonly string[]).includes(role)) {
      throw new SimcredError(
        'SIMCRED_CLI_ARGUMENT',
        `--instance takes ROLE=HOST[:PORT] with ROLE one of ${BALANCED.join(', ')} (registration-N, provisioning-N), got ${JSON.stringify(entry)}`,
      );
    }
    const server = Number(match[2] ?? 1);
    const listed = role === 'registration' || role === 'provisioning';
    if ((match[2] !== undefined && !listed) || server < 1 || (listed && server > config.ports[role].length)) {
      throw new SimcredError(
        'SIMCRED_CLI_ARGUMENT',
        `--instance: no ${role} server ${match[2]} in the config`,
      );
    }
    const port = listed ? config.ports[role][server - 1]! : config.ports[role];
    const publicUrl = listed ? urls[role][server - 1]! : urls[role];
    const name = listed ? `${role}-${server}` : role;
    let balanced = byName.get(name);
    if (!balanced) {
      balanced = {
        name,
        bind: urlEndpoint(publicUrl),
        servers: [],
        health: role === 'ocsp' ? 'http' : 'https',
      };
      byName.set(name, balanced);
    }
    balanced.servers.push(instanceEndpoint(match[3]!, port));
  }
  return [...byName.values()];
}

/** `10.0.1.1`, `10.0.1.1:7401`, `[2001:db8::1]:7401`, `cred-1.internal`: the port defaults to the role's. */
function instanceEndpoint(value: string, defaultPort: number): Endpoint {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(value);
  const plain = /^([^:[\]]+)(?::(\d+))?$/.exec(value);
  const address = bracketed?.[1] ?? (isIP(value) === 6 ? value : plain?.[1]);
  const port = Number((bracketed ?? (isIP(value) === 6 ? undefined : plain))?.[2] ?? defaultPort);
  if (
    !address ||
    (bracketed && isIP(address) !== 6) ||
    !/^[A-Za-z0-9.:-]+$/.test(address) ||
    !Number.isInteger(port) ||
    port < 1 ||
    port > 65535
  ) {
    throw new SimcredError('SIMCRED_CLI_ARGUMENT', `--instance: ${JSON.stringify(value)} is not HOST[:PORT]`);
  }
  return { address, port };
}
