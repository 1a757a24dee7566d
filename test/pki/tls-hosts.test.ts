// `simcred pki init --host ROLE=NAME,…`: each role's real host names and addresses in its TLS
// certificate's subjectAltName, loopback kept; a change of names re-issues only that role's leaf, for
// its kept key, and rewrites its chain file.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isSimcredError } from '../../src/errors/index.js';
import {
  TLS_ROLES,
  initPki,
  parseTlsHosts,
  readManifest,
  tlsChainPath,
  tlsName,
} from '../../src/pki/index.js';
import { lastJsonLine, runCli, tempDir } from '../helpers/cli.js';

function refused(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return isSimcredError(err) ? err.code : String(err);
  }
  return 'accepted';
}

test('names: IPv4, IPv6 (canonical, brackets allowed) and DNS names (lower case); anything else refused', () => {
  assert.deepEqual(tlsName('10.0.0.5'), { ip: '10.0.0.5' });
  assert.deepEqual(tlsName('[2001:DB8:0:0::5]'), { ip: '2001:db8::5' });
  assert.deepEqual(tlsName('::ffff:1.2.3.4'), { ip: '::ffff:102:304' });
  assert.deepEqual(tlsName('Cred.Example.COM.'), { dns: 'cred.example.com' });
  for (const bad of [
    '',
    'under_score.example',
    '-lead.example',
    'a..b',
    '1.2.3',
    'fe80::1%eth0',
    'x'.repeat(64),
  ]) {
    assert.equal(
      refused(() => tlsName(bad)),
      'SIMCRED_CLI_ARGUMENT',
      bad,
    );
  }
  assert.deepEqual(parseTlsHosts(['credentialing=a.example,hss=10.0.0.1', 'credentialing=10.0.0.2']), {
    credentialing: ['a.example', '10.0.0.2'],
    hss: ['10.0.0.1'],
  });
  for (const bad of ['nosuchrole=a.example', 'credentialing', 'credentialing=', '=a.example']) {
    assert.equal(
      refused(() => parseTlsHosts([bad])),
      'SIMCRED_CLI_ARGUMENT',
      bad,
    );
  }
});

describe('pki init --host', () => {
  const tmp = tempDir('simcred-hosts-pki-');
  const dir = join(tmp.path, 'pki');
  const file = (relative: string) => join(dir, relative);
  const leaf = (role: (typeof TLS_ROLES)[number]) =>
    new X509Certificate(readFileSync(file(readManifest(dir).operator.tls[role].cert)));
  after(() => tmp.cleanup());

  test('puts the names in the role certificate, besides localhost and 127.0.0.1; other roles loopback only', async () => {
    const r = await runCli([
      'pki',
      'init',
      '--dir',
      dir,
      '--host',
      'credentialing=cred.example.com,credentialing=10.0.0.5',
      '--host',
      'hss=[2001:db8::5]',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lastJsonLine<{ reissued: string[] }>(r.stdout).reissued, []);
    const credentialing = leaf('credentialing');
    for (const host of ['cred.example.com', 'localhost']) assert.equal(credentialing.checkHost(host), host);
    for (const ip of ['10.0.0.5', '127.0.0.1']) assert.equal(credentialing.checkIP(ip), ip);
    assert.equal(leaf('hss').checkIP('2001:db8::5'), '2001:db8::5');
    assert.equal(leaf('hss').checkHost('cred.example.com'), undefined);
    assert.equal(leaf('provisioning').subjectAltName, 'DNS:localhost, IP Address:127.0.0.1');
  });

  test('the same names again, in another order, and a run without --host change nothing', async () => {
    const before = TLS_ROLES.map((role) => leaf(role).raw);
    const again = await initPki(dir, new Date(), {
      hosts: { credentialing: ['10.0.0.5', 'CRED.example.com'], hss: ['2001:db8:0::5'] },
    });
    assert.deepEqual(again.reissued, []);
    assert.deepEqual(again.created, []);
    assert.deepEqual((await initPki(dir)).reissued, []);
    assert.deepEqual(
      TLS_ROLES.map((role) => leaf(role).raw),
      before,
    );
  });

  test('other names re-issue that role alone, for its kept key, and rewrite its chain file', async () => {
    const manifest = readManifest(dir);
    const paths = manifest.operator.tls.credentialing;
    const keyBefore = readFileSync(file(paths.key), 'utf8');
    const old = leaf('credentialing');
    const hssBefore = leaf('hss').raw;
    const result = await initPki(dir, new Date(), { hosts: { credentialing: ['lb.example.com'] } });
    assert.deepEqual(result.reissued, [file(paths.cert)]);
    const renewed = leaf('credentialing');
    assert.notEqual(renewed.serialNumber, old.serialNumber);
    assert.equal(readFileSync(file(paths.key), 'utf8'), keyBefore, 'key kept');
    assert.ok(renewed.publicKey.equals(old.publicKey));
    assert.equal(renewed.checkHost('lb.example.com'), 'lb.example.com');
    assert.equal(renewed.checkHost('cred.example.com'), undefined, 'the old name is gone');
    assert.equal(renewed.checkIP('10.0.0.5'), undefined);
    const operatorCa = readFileSync(file(manifest.operator.operatorCa.cert), 'utf8');
    assert.equal(
      readFileSync(file(tlsChainPath(paths)), 'utf8'),
      readFileSync(file(paths.cert), 'utf8') + operatorCa,
    );
    assert.ok(renewed.verify(new X509Certificate(operatorCa).publicKey));
    assert.ok(leaf('hss').raw.equals(hssBefore), 'a role not named keeps its certificate');
  });

  test('an unknown role or a bad name is refused before anything is written', async () => {
    for (const host of ['nosuchrole=a.example', 'hss=not a name']) {
      const r = await runCli(['pki', 'init', '--dir', join(tmp.path, 'other'), '--host', host]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr.trim().split('\n').at(-1)!, /\(SIMCRED_CLI_ARGUMENT\)$/, r.stderr);
    }
    assert.equal(existsSync(join(tmp.path, 'other')), false);
  });
});
