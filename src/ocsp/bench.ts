import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { SimcredError } from '../errors/index.js';
import { initPki, readManifest } from '../pki/init.js';
import { manufactureDevices } from '../pki/manufacture.js';
import { DEVICES_DIR } from '../pki/layout.js';
import { certificateDer, certificateInfo } from './asn1.js';
import { buildOcspRequest } from './client.js';
import { freePort, opensslVersion, startOpensslResponder, writeOpensslIndex } from './openssl.js';
import { verifyOcspResponse } from './verify.js';
import { processCpuMs } from '../bench/processes.js';

export interface LoadFigures {
  requests: number;
  errors: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /**
   * The responder process's CPU (user + system, /proc) per answered request, µs: what one answer
   * costs it, steadier than req/s on a machine shared with the load generator and other work.
   */
  cpuUsPerRequest: number;
}

export interface BenchResult {
  seconds: number;
  /** Load sent to each responder before each measured run, not counted. */
  warmupSeconds: number;
  connections: number;
  certificates: number;
  openssl: string;
  ours: { nonce: LoadFigures; noNonce: LoadFigures };
  opensslResponder: { nonce: LoadFigures; noNonce: LoadFigures };
  ratio: { nonce: number; noNonce: number };
  /** ours / openssl of the responder CPU per request (below 1: ours costs less). */
  cpuRatio: { nonce: number; noNonce: number };
}

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/**
 * Drives our responder and `openssl ocsp` (both single processes, same PKI, same device
 * certificates, same request bytes) with the same closed-loop concurrent load.
 *
 * @example
 *   const r = await runOcspBench({ seconds: 5, connections: 16 });
 *   console.log(formatBenchTable(r));
 */
export async function runOcspBench(options: {
  pkiDir?: string;
  seconds: number;
  /**
   * Seconds of the same load before each measured run (default 2): a fresh Node process answers at
   * about half its speed until V8 has compiled its hot paths, which a C responder does not need.
   */
  warmupSeconds?: number;
  connections: number;
  certificates?: number;
  log?: (line: string) => void;
}): Promise<BenchResult> {
  const warmupSeconds = options.warmupSeconds ?? 2;
  const log = options.log ?? (() => {});
  const version = opensslVersion();
  if (!version) throw new SimcredError('SIMCRED_INTERNAL', 'openssl is not installed');
  const work = mkdtempSync(join(tmpdir(), 'simcred-ocsp-bench-'));
  const pkiDir = options.pkiDir ?? join(work, 'pki');
  try {
    if (!options.pkiDir) {
      log(`making a PKI and ${options.certificates ?? 20} devices in ${pkiDir}`);
      await initPki(pkiDir);
      await manufactureDevices({ dir: pkiDir, count: options.certificates ?? 20, workers: 0 });
    }
    const manifest = readManifest(pkiDir);
    const caPath = join(pkiDir, manifest.manufacturer.deviceCa.cert);
    const issuerPem = readFileSync(caPath, 'utf8');
    const deviceCerts = readdirSync(join(pkiDir, DEVICES_DIR))
      .slice(0, options.certificates ?? 20)
      .map((id) => certificateDer(readFileSync(join(pkiDir, DEVICES_DIR, id, 'device.crt.pem'), 'utf8')));
    if (deviceCerts.length === 0) throw new SimcredError('SIMCRED_CLI_ARGUMENT', 'the PKI has no devices');
    const indexPath = join(work, 'index.txt');
    writeOpensslIndex(
      indexPath,
      deviceCerts.map((der) => {
        const info = certificateInfo(der);
        return { serialHex: info.serialHex, notAfter: info.notAfter, subject: '/CN=device' };
      }),
    );
    // Same request bytes for both: a pool of nonce requests (fresh nonces) and one nonce-less per cert.
    const nonceRequests = Array.from({ length: 2000 }, (_, i) =>
      buildOcspRequest({ certificate: deviceCerts[i % deviceCerts.length]!, issuer: issuerPem, nonce: true }),
    );
    const plainRequests = deviceCerts.map((der) =>
      buildOcspRequest({ certificate: der, issuer: issuerPem, nonce: false }),
    );

    const port = await freePort();
    const ours = spawn(
      process.execPath,
      [CLI, 'serve', 'ocsp', '--dir', pkiDir, '--port', String(port), '--log-level', 'warn'],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const oursExited = new Promise<void>((r) => ours.once('exit', () => r()));
    await new Promise<void>((resolve, reject) => {
      ours.stdout!.on('data', (d: Buffer) => d.toString().includes('listening') && resolve());
      ours.once('exit', () => reject(new SimcredError('SIMCRED_INTERNAL', 'our responder exited')));
    });
    const openssl = await startOpensslResponder({
      index: indexPath,
      ca: caPath,
      rsigner: join(pkiDir, manifest.manufacturer.deviceCaOcsp.cert),
      rkey: join(pkiDir, manifest.manufacturer.deviceCaOcsp.key),
      nmin: 60,
    });
    try {
      const targets = { ours: `http://127.0.0.1:${port}`, openssl: openssl.url };
      const run = async (name: 'ours' | 'openssl', kind: 'nonce' | 'noNonce') => {
        const reqs = kind === 'nonce' ? nonceRequests : plainRequests;
        // Check one answer strictly first: both must really answer good, signed and nonce-echoed.
        const sample = reqs[0]!;
        const body = await postOnce(targets[name], sample.der);
        const verdict = verifyOcspResponse(body, {
          certId: sample.certId,
          issuer: certificateInfo(certificateDer(issuerPem)),
          ...(sample.nonce ? { nonce: sample.nonce } : {}),
          now: new Date(),
          clockSkewSeconds: 60,
        });
        if (verdict.status !== 'good')
          throw new SimcredError('SIMCRED_INTERNAL', `${name} answered ${verdict.status}`);
        const bodies = reqs.map((r) => r.der);
        if (warmupSeconds > 0) await drive(targets[name], bodies, warmupSeconds, options.connections);
        const pid = name === 'ours' ? ours.pid! : openssl.process.pid!;
        const cpuBefore = processCpuMs(pid);
        const load = await drive(targets[name], bodies, options.seconds, options.connections);
        const figures: LoadFigures = {
          ...load,
          cpuUsPerRequest: round(((processCpuMs(pid) - cpuBefore) * 1000) / Math.max(1, load.requests)),
        };
        log(
          `${name.padEnd(8)} ${kind.padEnd(8)} ${figures.rps.toFixed(0)} req/s p99 ${figures.p99Ms.toFixed(2)} ms`,
        );
        return figures;
      };
      const result: BenchResult = {
        seconds: options.seconds,
        warmupSeconds,
        connections: options.connections,
        certificates: deviceCerts.length,
        openssl: version,
        ours: { nonce: await run('ours', 'nonce'), noNonce: await run('ours', 'noNonce') },
        opensslResponder: { nonce: await run('openssl', 'nonce'), noNonce: await run('openssl', 'noNonce') },
        ratio: { nonce: 0, noNonce: 0 },
        cpuRatio: { nonce: 0, noNonce: 0 },
      };
      for (const kind of ['nonce', 'noNonce'] as const) {
        result.cpuRatio[kind] = round(
          result.ours[kind].cpuUsPerRequest / Math.max(1, result.opensslResponder[kind].cpuUsPerRequest),
        );
      }
      result.ratio.nonce = round(result.ours.nonce.rps / Math.max(1, result.opensslResponder.nonce.rps));
      result.ratio.noNonce = round(
        result.ours.noNonce.rps / Math.max(1, result.opensslResponder.noNonce.rps),
      );
      return result;
    } finally {
      await openssl.close();
      ours.kill('SIGTERM');
      await oursExited;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function postOnce(url: string, der: Buffer): Promise<Buffer> {
  const pool = new Pool(url, { connections: 1 });
  try {
    const res = await pool.request({
      path: '/',
      method: 'POST',
      body: der,
      headers: { 'content-type': 'application/ocsp-request' },
    });
    return Buffer.from(await res.body.arrayBuffer());
  } finally {
    await pool.close();
  }
}

/** Closed loop: `connections` workers each send the next request as soon as the last is answered. */
async function drive(
  url: string,
  bodies: Buffer[],
  seconds: number,
  connections: number,
): Promise<Omit<LoadFigures, 'cpuUsPerRequest'>> {
  const pool = new Pool(url, { connections, pipelining: 1 });
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  const worker = async () => {
    while (performance.now() < end) {
      const body = bodies[next++ % bodies.length]!;
      const t = performance.now();
      try {
        const res = await pool.request({
          path: '/',
          method: 'POST',
          body,
          headers: { 'content-type': 'application/ocsp-request' },
        });
        await res.body.arrayBuffer();
        if (res.statusCode === 200) latencies.push(performance.now() - t);
        else errors++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  const elapsed = (performance.now() - started) / 1000;
  await pool.close();
  latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0);
  return {
    requests: latencies.length,
    errors,
    rps: round(latencies.length / elapsed),
    p50Ms: pct(0.5),
    p99Ms: pct(0.99),
  };
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

export function formatBenchTable(r: BenchResult): string {
  const row = (name: string, f: LoadFigures) =>
    `${name.padEnd(26)} ${f.rps.toFixed(0).padStart(8)} ${f.p50Ms.toFixed(2).padStart(8)} ${f.p99Ms.toFixed(2).padStart(8)} ${f.cpuUsPerRequest.toFixed(0).padStart(10)} ${String(f.errors).padStart(6)}`;
  return [
    `OCSP responders, ${r.connections} connections, ${r.seconds} s each after ${r.warmupSeconds} s of warm-up, ${r.certificates} device certificates (${r.openssl})`,
    `${'responder'.padEnd(26)} ${'req/s'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'CPU µs/req'.padStart(10)} ${'errors'.padStart(6)}`,
    row('simcred, nonce', r.ours.nonce),
    row('openssl ocsp, nonce', r.opensslResponder.nonce),
    row('simcred, no nonce', r.ours.noNonce),
    row('openssl ocsp, no nonce', r.opensslResponder.noNonce),
    `ratio simcred/openssl: nonce ${r.ratio.nonce}×, no nonce ${r.ratio.noNonce}× (req/s); responder CPU per request: nonce ${r.cpuRatio.nonce}×, no nonce ${r.cpuRatio.noNonce}×`,
  ].join('\n');
}
