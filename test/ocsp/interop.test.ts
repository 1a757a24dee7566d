import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { checkCertificateStatus, requireGood } from '../../src/ocsp/client.js';
import { certificateDer, certificateInfo } from '../../src/ocsp/asn1.js';
import { startOpensslResponder, writeOpensslIndex } from '../../src/ocsp/openssl.js';
import { startOcspResponder, type OcspResponder } from '../../src/ocsp/responder/server.js';
import { lastJsonLine, runCli } from '../helpers/cli.js';
import { captureLogger, makePki, writeText, type TestPki } from './fixture.js';

let pki: TestPki;
let responder: OcspResponder;

before(async () => {
  pki = await makePki(2);
  responder = await startOcspResponder({ pkiDir: pki.dir, port: 0, logger: captureLogger().logger });
});
after(async () => {
  await responder?.close();
  pki?.cleanup();
});

function openssl(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

test('openssl ocsp as client against our responder: good, then revoked without a restart', async () => {
  const device = pki.devices[0]!;
  const issuer = pki.path(pki.manifest.manufacturer.deviceCa.cert);
  const root = pki.path(pki.manifest.manufacturer.root.cert);
  const ask = () =>
    openssl([
      'ocsp',
      '-issuer',
      issuer,
      '-cert',
      device.certPath,
      '-url',
      responder.url,
      '-CAfile',
      root,
      '-resp_text',
    ]);
  let r = await ask();
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /Response verify OK/);
  assert.match(r.out, new RegExp(`${device.certPath.replace(/[/.]/g, '\\$&')}: good`));
  assert.match(r.out, /OCSP Nonce/);

  const revoke = await runCli([
    'pki',
    'revoke',
    '--dir',
    pki.dir,
    '--dsim',
    device.dsimId,
    '--reason',
    'keyCompromise',
  ]);
  assert.equal(revoke.code, 0, revoke.stderr);
  r = await ask();
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /Response verify OK/);
  assert.match(r.out, /: revoked/);
  assert.match(r.out, /Reason: keyCompromise/);

  // the operator CA's certificates are served by the same responder, with its own delegated signer
  r = await openssl([
    'ocsp',
    '-issuer',
    pki.path(pki.manifest.operator.operatorCa.cert),
    '-cert',
    pki.path(pki.manifest.operator.packageSigner.cert),
    '-url',
    responder.url,
    '-CAfile',
    pki.path(pki.manifest.operator.root.cert),
    '-no_nonce',
  ]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /Response verify OK/);
  assert.match(r.out, /: good/);
});

test('our client and `simcred ocsp check` against openssl ocsp as responder', async () => {
  const [a, b] = pki.devices as [TestPki['devices'][0], TestPki['devices'][0]];
  const info = (pem: string) => certificateInfo(certificateDer(pem));
  const index = join(pki.dir, '..', 'index.txt');
  writeOpensslIndex(index, [
    { serialHex: info(a.pem).serialHex, notAfter: info(a.pem).notAfter, subject: '/CN=a' },
    {
      serialHex: info(b.pem).serialHex,
      notAfter: info(b.pem).notAfter,
      subject: '/CN=b',
      revokedAt: new Date(Date.now() - 3600_000),
      reason: 'superseded',
    },
  ]);
  const server = await startOpensslResponder({
    index,
    ca: pki.path(pki.manifest.manufacturer.deviceCa.cert),
    rsigner: pki.path(pki.manifest.manufacturer.deviceCaOcsp.cert),
    rkey: pki.path(pki.manifest.manufacturer.deviceCaOcsp.key),
    nmin: 5,
  });
  try {
    const good = await requireGood({ certificate: a.pem, issuer: pki.deviceCa, url: server.url });
    assert.equal(good.status, 'good');
    assert.ok(good.nextUpdate);
    const revoked = await checkCertificateStatus({
      certificate: b.pem,
      issuer: pki.deviceCa,
      url: server.url,
    });
    assert.equal(revoked.status, 'revoked');
    assert.equal(revoked.reason, 4);
    // SHA-256 CertID too (openssl answers with the request's CertID)
    const sha = await checkCertificateStatus({
      certificate: a.pem,
      issuer: pki.deviceCa,
      url: server.url,
      hash: 'sha256',
    });
    assert.equal(sha.status, 'good');

    const issuerFile = pki.path(pki.manifest.manufacturer.deviceCa.cert);
    const cli = await runCli([
      'ocsp',
      'check',
      '--cert',
      a.certPath,
      '--issuer',
      issuerFile,
      '--url',
      server.url,
      '--json',
    ]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(lastJsonLine(cli.stdout).status, 'good');
    const bad = await runCli([
      'ocsp',
      'check',
      '--cert',
      b.certPath,
      '--issuer',
      issuerFile,
      '--url',
      server.url,
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /^simcred: error: .*\(SIMCRED_OCSP_REVOKED\)\n$/);
    // openssl's response is nonce-less for a nonce-less request, and ours rejects a wrong issuer
    const wrongIssuer = writeText(join(pki.dir, '..', 'wrong.pem'), pki.operatorCa);
    const mismatch = await runCli([
      'ocsp',
      'check',
      '--cert',
      a.certPath,
      '--issuer',
      wrongIssuer,
      '--url',
      server.url,
    ]);
    assert.notEqual(mismatch.code, 0);
    assert.match(mismatch.stderr, /SIMCRED_OCSP_/);
  } finally {
    await server.close();
  }
});
