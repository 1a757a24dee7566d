import { createServer, type IncomingMessage, type Server } from 'node:http';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import {
  buildName,
  caExtensions,
  issueCertificate,
  issuerFromCertificate,
  ocspSignerExtensions,
  parseSpki,
  randomSerial,
  toPem,
  type Issuer,
} from '../../src/pki/certificates.js';
import type { PkiManifest } from '../../src/pki/layout.js';
import assert from 'node:assert/strict';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertID } from '@peculiar/asn1-ocsp';
import { buildOcspRequest, type BuiltRequest } from '../../src/ocsp/client.js';
import { parseRequest, signResponse } from '../../src/ocsp/responder/engine.js';
import { IssuerIndex, type IssuerSource, type ServedIssuer } from '../../src/ocsp/responder/issuers.js';
import { createLogger, type Logger } from '../../src/log/logger.js';
import { runCli, lastJsonLine, tempDir } from '../helpers/cli.js';

/** A logger that swallows output but lets a test read what was logged. */
export function captureLogger(): { logger: Logger; text: () => string } {
  let logged = '';
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      logged += chunk.toString();
      done();
    },
  });
  return { logger: createLogger({ name: 'ocsp-test', level: 'debug', destination }), text: () => logged };
}

export interface TestPki {
  dir: string;
  cleanup: () => void;
  manifest: PkiManifest;
  path: (rel: string) => string;
  pem: (rel: string) => string;
  deviceCa: string;
  deviceCaKey: KeyObject;
  manufacturerRoot: string;
  operatorCa: string;
  packageSigner: string;
  devices: { dsimId: string; certPath: string; pem: string }[];
}

/** A real PKI made by the simcred CLI: `pki init` and `devices manufacture --count N`. */
export async function makePki(count = 3): Promise<TestPki> {
  const tmp = tempDir('simcred-ocsp-');
  const dir = join(tmp.path, 'pki');
  const init = await runCli(['pki', 'init', '--dir', dir, '--json']);
  if (init.code !== 0) throw new Error(`pki init failed: ${init.stderr}`);
  const made = await runCli(['devices', 'manufacture', '--dir', dir, '--count', String(count), '--json']);
  if (made.code !== 0) throw new Error(`devices manufacture failed: ${made.stderr}`);
  const devices = lastJsonLine<{ devices: { dsimId: string; certificate: string }[] }>(made.stdout).devices;
  const manifest = JSON.parse(readFileSync(join(dir, 'pki.json'), 'utf8')) as PkiManifest;
  const path = (rel: string) => join(dir, rel);
  const pem = (rel: string) => readFileSync(path(rel), 'utf8');
  return {
    dir,
    cleanup: tmp.cleanup,
    manifest,
    path,
    pem,
    deviceCa: pem(manifest.manufacturer.deviceCa.cert),
    deviceCaKey: (await import('node:crypto')).createPrivateKey(pem(manifest.manufacturer.deviceCa.key)),
    manufacturerRoot: pem(manifest.manufacturer.root.cert),
    operatorCa: pem(manifest.operator.operatorCa.cert),
    packageSigner: pem(manifest.operator.packageSigner.cert),
    devices: devices.map((d) => ({
      dsimId: d.dsimId,
      certPath: d.certificate,
      pem: readFileSync(d.certificate, 'utf8'),
    })),
  };
}

/** The device CA as the responder serves it, with its delegated OCSP signer. */
export function deviceCaDelegate(pki: TestPki): IssuerSource {
  return {
    name: 'device-ca',
    certPem: pki.deviceCa,
    signerCertPem: pki.pem(pki.manifest.manufacturer.deviceCaOcsp.cert),
    signerKeyPem: pki.pem(pki.manifest.manufacturer.deviceCaOcsp.key),
  };
}

export function listDevices(dir: string): string[] {
  return readdirSync(join(dir, 'devices'));
}

/** A certificate + key made here, for negative tests (foreign CAs, signers without authority). */
export interface MadeCert {
  pem: string;
  keyPem: string;
  key: KeyObject;
  issuer: Issuer;
}

export function makeCert(options: {
  cn: string;
  issuer?: Issuer;
  ca?: boolean;
  ocspSigner?: boolean;
  notAfter?: Date;
}): MadeCert {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const subject = buildName([['2.5.4.3', options.cn]]);
  const spki = parseSpki(publicKey.export({ format: 'der', type: 'spki' }));
  const self: Issuer = { name: subject, keyId: Buffer.alloc(20), privateKey };
  const der = issueCertificate(
    {
      serial: randomSerial(),
      subject,
      spki,
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: options.notAfter ?? new Date(Date.now() + 86_400_000),
      extensions: options.ca ? caExtensions(0) : options.ocspSigner ? ocspSignerExtensions() : [],
    },
    options.issuer ?? self,
  );
  return {
    pem: toPem(der),
    keyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    key: privateKey,
    issuer: issuerFromCertificate(der, privateKey),
  };
}

export function issuerOf(pem: string, key: KeyObject): Issuer {
  return issuerFromCertificate(
    new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64')),
    key,
  );
}

export function writeText(path: string, text: string): string {
  writeFileSync(path, text);
  return path;
}

/**
 * A plain HTTP server whose handler gets the raw request body (for crafted OCSP responses), on a free
 * port unless `port` is given (a test standing in for a running system's responder on its own port).
 */
export async function rawServer(
  handler: (body: Buffer, req: IncomingMessage) => { status?: number; type?: string; body: Buffer },
  port = 0,
): Promise<{ url: string; close: () => Promise<void>; server: Server }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const out = handler(Buffer.concat(chunks), req);
      res.writeHead(out.status ?? 200, { 'content-type': out.type ?? 'application/ocsp-response' });
      res.end(out.body);
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}`,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * A nonce'd request for `certificate` under the device CA, and the responder engine's signed "good"
 * answer to it, in memory (no HTTP): parsed against `served`, signed by `signer` (default the same).
 */
export function goodAnswer(
  pki: TestPki,
  certificate: string,
  served: ServedIssuer,
  signer: ServedIssuer = served,
): { built: BuiltRequest; der: Buffer } {
  const built = buildOcspRequest({ certificate, issuer: pki.deviceCa });
  const parsed = parseRequest(built.der, new IssuerIndex([served]));
  assert.ok(parsed.ok, 'the responder parses the request');
  const der = signResponse({
    issuer: signer,
    certIds: parsed.certIds,
    statuses: [{ status: 'good' }],
    now: new Date(),
    validitySeconds: 3600,
    ...(parsed.nonce ? { nonce: parsed.nonce } : {}),
  }).der;
  return { built, der };
}

/** What a crafted responder gets for each request: the issuer asked about and the parsed request. */
export interface CraftContext {
  issuer: ServedIssuer;
  parsed: Extract<ReturnType<typeof parseRequest>, { ok: true }>;
}

/** A crafted responder's answer: the bytes it sends for a request. */
export type Craft = (ctx: CraftContext) => Buffer;

/**
 * A genuinely signed "good" answer about another serial number (the last octet flipped): the client
 * must refuse it with SIMCRED_OCSP_CERTID_MISMATCH.
 */
export const aboutAnotherSerial: Craft = ({ issuer, parsed }) => {
  const id = AsnConvert.parse(parsed.certIds[0]!, CertID);
  const serial = new Uint8Array(id.serialNumber.slice(0));
  serial[serial.length - 1] = serial[serial.length - 1]! ^ 0xff;
  id.serialNumber = serial.buffer;
  return signResponse({
    issuer,
    certIds: [id],
    statuses: [{ status: 'good' }],
    now: new Date(),
    validitySeconds: 3600,
    ...(parsed.nonce ? { nonce: parsed.nonce } : {}),
  }).der;
};
