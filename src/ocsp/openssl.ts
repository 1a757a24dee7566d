import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { SimcredError } from '../errors/index.js';

/** One line of an `openssl ca` / `openssl ocsp -index` database. */
export interface OpensslIndexEntry {
  /** Serial as hex (any case, no 0x). */
  serialHex: string;
  notAfter: Date;
  subject: string;
  revokedAt?: Date;
  /** CRLReason name as openssl spells it (keyCompromise, unspecified, …). */
  reason?: string;
}

/** Writes index.txt: status, expiry, revocation[,reason], serial, file, DN, tab-separated. */
export function writeOpensslIndex(path: string, entries: OpensslIndexEntry[]): void {
  const lines = entries.map((e) => {
    const serial = e.serialHex.toUpperCase().replace(/^(00)+(?=.)/, '');
    const revoked = e.revokedAt ? `${utcTime(e.revokedAt)}${e.reason ? `,${e.reason}` : ''}` : '';
    return [
      e.revokedAt ? 'R' : 'V',
      utcTime(e.notAfter),
      revoked,
      serial.length % 2 ? `0${serial}` : serial,
      'unknown',
      e.subject,
    ].join('\t');
  });
  writeFileSync(path, `${lines.join('\n')}\n`);
  writeFileSync(`${path}.attr`, 'unique_subject = no\n');
}

function utcTime(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, '').slice(2, 14)}Z`;
}

/** A free loopback port (openssl ocsp cannot listen on port 0 and report it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export function opensslVersion(): string | undefined {
  const r = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

export interface OpensslResponder {
  url: string;
  process: ChildProcess;
  close(): Promise<void>;
}

/** Starts `openssl ocsp` as a responder and waits until it accepts connections. */
export async function startOpensslResponder(options: {
  index: string;
  ca: string;
  rsigner: string;
  rkey: string;
  port?: number;
  nmin?: number;
  extraArgs?: string[];
}): Promise<OpensslResponder> {
  const port = options.port ?? (await freePort());
  const args = ['ocsp', '-index', options.index, '-port', String(port), '-rsigner', options.rsigner];
  args.push('-rkey', options.rkey, '-CA', options.ca, '-nmin', String(options.nmin ?? 60));
  args.push(...(options.extraArgs ?? []));
  const child = spawn('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Wait for its "ACCEPT" line: a probe connection would wedge the single-threaded responder.
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 5000);
    const onData = () => {
      if (/ACCEPT|waiting for OCSP client/.test(stderr)) {
        clearTimeout(timer);
        child.stderr!.off('data', onData);
        resolve(true);
      }
    };
    child.stderr!.on('data', onData);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (!ready) {
    child.kill();
    throw new SimcredError('SIMCRED_INTERNAL', `openssl ocsp did not start: ${stderr.trim()}`);
  }
  return {
    url: `http://127.0.0.1:${port}`,
    process: child,
    close: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
