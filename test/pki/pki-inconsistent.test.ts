import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initPki, readManifest } from '../../src/pki/index.js';
import { runCli, tempDir } from '../helpers/cli.js';

/** SIMCRED_PKI_INCONSISTENT through the CLI, as an operator meets it: a PKI folder that was tampered with. */
describe('simcred pki init over an inconsistent PKI folder', () => {
  const tmp = tempDir('simcred-pki-inconsistent-');
  const fresh = async (name: string) => {
    const dir = join(tmp.path, name);
    await initPki(dir);
    return { dir, manifest: readManifest(dir) };
  };
  const oneLineError = /^simcred: error: [^\n]*\(SIMCRED_PKI_INCONSISTENT\)\n$/;

  after(() => tmp.cleanup());

  test('a certificate whose key is missing', async () => {
    const { dir, manifest } = await fresh('missing-key');
    rmSync(join(dir, manifest.operator.root.key));
    const r = await runCli(['pki', 'init', '--dir', dir]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, oneLineError);
    assert.match(r.stderr, /is missing/);
  });

  test('a certificate that does not match its key', async () => {
    const { dir, manifest } = await fresh('other-key');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(
      join(dir, manifest.manufacturer.deviceCa.key),
      privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    const r = await runCli(['pki', 'init', '--dir', dir]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, oneLineError);
    assert.match(r.stderr, /does not match its key/);
  });

  test('a manifest that is not JSON', async () => {
    const { dir } = await fresh('bad-manifest');
    writeFileSync(join(dir, 'pki.json'), '{ not json');
    const r = await runCli(['devices', 'manufacture', '--dir', dir, '--count', '1']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^simcred: error: [^\n]*\(SIMCRED_PKI_INCONSISTENT\)\n$/);
  });
});
