// `simcred package seal|open` as a user runs them, on a PKI folder of `simcred pki init` with one EC
// and one RSA device: both formats round-trip, xmlsec1 verifies the XML package the command wrote, and
// bad input ends in the CLI contract's one error line with its code.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lastJsonLine, runCli, tempDir, type CliResult } from '../helpers/cli.js';
import { readFactoryImage } from '../../src/pki/index.js';
import type { ErrorCode } from '../../src/errors/index.js';

const CREDENTIALS = {
  imsi: '001010123456789',
  k: '465b5ce8b199b49faa5f0a2ee238a6bc',
  opc: 'cd63cb71954a9f4e48a5994e37a02baf',
  amf: '8000',
  sqn: '000000000020',
  plmn: '00101',
};
const nonce = Buffer.alloc(32, 7).toString('base64url');

const tmp = tempDir('simcred-package-cli-');
const pki = join(tmp.path, 'pki');
const devices: Record<'ec' | 'rsa', string> = { ec: '', rsa: '' };
const device = (kind: 'ec' | 'rsa', file: string) => join(pki, 'devices', devices[kind], file);

function ok(r: CliResult): Record<string, unknown> {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return lastJsonLine(r.stdout);
}
/** The CLI contract's one error line, ending in this code, and nothing on stdout. */
function assertOneLineError(r: CliResult, code: ErrorCode): void {
  assert.notEqual(r.code, 0, r.stdout);
  assert.equal(r.stdout, '');
  assert.match(r.stderr.trim(), new RegExp(`^simcred: error: .*\\(${code}\\)$`));
}
function request(kind: 'ec' | 'rsa', over: Record<string, unknown> = {}): string {
  return writeText(
    `request-${kind}.json`,
    JSON.stringify({ credentials: CREDENTIALS, dsimId: devices[kind], deviceNonce: nonce, ...over }),
  );
}
function writeText(name: string, text: string): string {
  const path = join(tmp.path, name);
  writeFileSync(path, text);
  return path;
}
const seal = (kind: 'ec' | 'rsa', format: string, out: string, deviceFile = device(kind, 'device.crt.pem')) =>
  runCli([
    'package',
    'seal',
    '--pki',
    pki,
    '--device',
    deviceFile,
    '--format',
    format,
    '--in',
    request(kind),
    '--out',
    out,
  ]);
const open = (kind: 'ec' | 'rsa', file: string, ...extra: string[]) =>
  runCli([
    'package',
    'open',
    '--pki',
    pki,
    '--device-key',
    device(kind, 'device.key.pem'),
    '--in',
    file,
    ...extra,
  ]);

before(async () => {
  const init = await runCli(['pki', 'init', '--dir', pki]);
  assert.equal(init.code, 0, init.stderr);
  for (const kind of ['ec', 'rsa'] as const) {
    const folder = join(pki, 'devices');
    const before = new Set(existsSync(folder) ? readdirSync(folder) : []);
    const r = await runCli(['devices', 'manufacture', '--dir', pki, '--count', '1', '--key', kind]);
    assert.equal(r.code, 0, r.stderr);
    devices[kind] = readdirSync(join(pki, 'devices')).find((d) => !before.has(d))!;
    assert.ok(readFactoryImage(pki, devices[kind]));
  }
});
after(() => tmp.cleanup());

for (const kind of ['ec', 'rsa'] as const) {
  for (const format of ['xml', 'jose'] as const) {
    test(`${kind.toUpperCase()} device, ${format}: package seal then package open gives the credentials back`, async () => {
      const out = join(tmp.path, `${kind}.${format}`);
      const sealed = ok(await seal(kind, format, out));
      assert.equal(sealed.format, format);
      assert.equal(sealed.dsimId, devices[kind]);
      const text = readFileSync(out, 'utf8');
      assert.equal(text.startsWith('<'), format === 'xml');
      const opened = ok(await open(kind, out));
      assert.equal(opened.format, format);
      assert.equal(opened.packageId, sealed.packageId);
      assert.deepEqual(opened.credentials, CREDENTIALS);
      ok(await open(kind, out, '--dsim', devices[kind], '--device-nonce', nonce));
      if (format === 'xml') {
        const root = join(pki, 'operator', 'root.crt.pem');
        const v = spawnSync('xmlsec1', ['--verify', '--trusted-pem', root, out], { encoding: 'utf8' });
        assert.equal(v.status, 0, v.stderr);
      }
    });
  }
}

test('package open: another device, another nonce, a tampered or hostile package are refused with their codes', async () => {
  const out = join(tmp.path, 'bad.xml');
  ok(await seal('ec', 'xml', out));
  const xml = readFileSync(out, 'utf8');
  assertOneLineError(await open('rsa', out), 'SIMCRED_PACKAGE_DECRYPT_FAILED');
  assertOneLineError(await open('ec', out, '--dsim', devices.rsa), 'SIMCRED_PACKAGE_BINDING_MISMATCH');
  assertOneLineError(
    await open('ec', out, '--device-nonce', Buffer.alloc(32, 8).toString('base64url')),
    'SIMCRED_PACKAGE_BINDING_MISMATCH',
  );
  assertOneLineError(
    await open('ec', writeText('tampered.xml', xml.replace('<IssuedAt>', '<IssuedAt>2'))),
    'SIMCRED_PACKAGE_SIGNATURE_INVALID',
  );
  assertOneLineError(
    await open('ec', writeText('dtd.xml', `<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>${xml}`)),
    'SIMCRED_XML_DTD_FORBIDDEN',
  );
  assertOneLineError(await open('ec', writeText('junk.xml', '<CredentialPackage')), 'SIMCRED_XML_MALFORMED');
});

test('package seal: bad input is refused before anything is written', async () => {
  const out = join(tmp.path, 'never.xml');
  // An RSA device's XML package needs its certificate (xml-encryption writes it into KeyInfo).
  assertOneLineError(
    await seal('rsa', 'xml', out, device('rsa', 'device.key.pem')),
    'SIMCRED_CRYPTO_KEY_UNSUPPORTED',
  );
  assertOneLineError(
    await runCli([
      'package',
      'seal',
      '--pki',
      pki,
      '--device',
      device('ec', 'device.crt.pem'),
      '--in',
      request('ec', { credentials: { ...CREDENTIALS, k: 'zz' } }),
      '--out',
      out,
    ]),
    'SIMCRED_BAD_REQUEST',
  );
  assertOneLineError(
    await runCli([
      'package',
      'seal',
      '--pki',
      pki,
      '--device',
      device('ec', 'device.crt.pem'),
      '--in',
      writeText('not.json', '{'),
      '--out',
      out,
    ]),
    'SIMCRED_CLI_ARGUMENT',
  );
  // The device certificate binds another DSIM_ID than the request names.
  assertOneLineError(
    await seal('ec', 'xml', out, device('rsa', 'device.crt.pem')),
    'SIMCRED_PACKAGE_BINDING_MISMATCH',
  );
  assert.throws(() => readFileSync(out));
});
