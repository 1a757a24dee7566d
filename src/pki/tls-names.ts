import { isIPv4, isIPv6 } from 'node:net';
import { SimcredError } from '../errors/index.js';
import { TLS_ROLES, type TlsRole } from './layout.js';

/** The names every TLS leaf carries: a connection to them never leaves the machine. */
export const LOOPBACK_DNS_NAMES = ['localhost'] as const;
export const LOOPBACK_IP_ADDRESSES = ['127.0.0.1'] as const;

/** A role's subjectAltName: DNS names and IP addresses, in the order the certificate lists them. */
export interface TlsNames {
  dns: string[];
  ip: string[];
}

/** Host names and addresses per role, as `pki init --host` gives them. */
export type TlsHostNames = Partial<Record<TlsRole, string[]>>;

// RFC 1123 §2.1 labels; a last label of digits only would read as an IPv4 address (RFC 3696 §2).
const DNS_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * One host name or address, normalised: an IPv4 or IPv6 address (brackets allowed) in its canonical
 * form, or a DNS name in lower case. Anything else is SIMCRED_CLI_ARGUMENT.
 *
 * @example
 *   tlsName('[::FFFF:1.2.3.4]'); // { ip: '::ffff:102:304' }
 *   tlsName('Cred.Example.COM.'); // { dns: 'cred.example.com' }
 */
export function tlsName(value: string): { dns: string } | { ip: string } {
  const bare = value.startsWith('[') && value.endsWith(']') ? value.slice(1, -1) : value;
  if (isIPv4(bare)) return { ip: bare };
  // The WHATWG URL parser prints an IPv6 address in its canonical (RFC 5952) form.
  if (isIPv6(bare) && !bare.includes('%')) return { ip: new URL(`https://[${bare}]/`).hostname.slice(1, -1) };
  const dns = value.toLowerCase().replace(/\.$/, '');
  const labels = dns.split('.');
  if (dns.length === 0 || dns.length > 253 || !labels.every((l) => DNS_LABEL.test(l))) {
    throw new SimcredError(
      'SIMCRED_CLI_ARGUMENT',
      `--host: ${JSON.stringify(value)} is neither a DNS name nor an IP address`,
    );
  }
  if (/^\d+$/.test(labels.at(-1)!)) {
    throw new SimcredError(
      'SIMCRED_CLI_ARGUMENT',
      `--host: ${JSON.stringify(value)} is not an IP address, and a DNS name cannot end in digits`,
    );
  }
  return { dns };
}

/**
 * `--host ROLE=NAME[,ROLE=NAME…]` (the option may repeat; a role may come several times): each
 * role's names, normalised. An unknown role or a bad name is SIMCRED_CLI_ARGUMENT.
 *
 * @example
 *   parseTlsHosts(['credentialing=cred.example.com,credentialing=10.0.0.5', 'hss=hss.internal']);
 *   // { credentialing: ['cred.example.com', '10.0.0.5'], hss: ['hss.internal'] }
 */
export function parseTlsHosts(values: readonly string[]): TlsHostNames {
  const hosts: TlsHostNames = {};
  for (const entry of values.flatMap((v) => v.split(','))) {
    const at = entry.indexOf('=');
    const role = entry.slice(0, at).trim();
    const name = entry.slice(at + 1).trim();
    if (at < 0 || name === '') {
      throw new SimcredError(
        'SIMCRED_CLI_ARGUMENT',
        `--host takes ROLE=NAME[,ROLE=NAME…], got ${JSON.stringify(entry)}`,
      );
    }
    if (!(TLS_ROLES as readonly string[]).includes(role)) {
      throw new SimcredError(
        'SIMCRED_CLI_ARGUMENT',
        `--host: unknown role ${JSON.stringify(role)} (one of ${TLS_ROLES.join(', ')})`,
      );
    }
    const parsed = tlsName(name);
    (hosts[role as TlsRole] ??= []).push('ip' in parsed ? parsed.ip : parsed.dns);
  }
  return hosts;
}

/**
 * A role's subjectAltName for the names given: loopback first (kept so that local tools and health
 * checks on the machine itself still verify), then the given names sorted, each once, so that the
 * same set gives the same certificate extension whatever the order it was typed in.
 *
 * @example
 *   tlsNames(['lb.example.com', '10.0.0.5']); // { dns: ['localhost', 'lb.example.com'], ip: ['127.0.0.1', '10.0.0.5'] }
 */
export function tlsNames(names: readonly string[] = []): TlsNames {
  const dns = new Set<string>(LOOPBACK_DNS_NAMES);
  const ip = new Set<string>(LOOPBACK_IP_ADDRESSES);
  for (const name of [...names].sort()) {
    const parsed = tlsName(name);
    if ('ip' in parsed) ip.add(parsed.ip);
    else dns.add(parsed.dns);
  }
  return { dns: [...dns], ip: [...ip] };
}
