// `simcred pki init` writes operator/tls/<role>.chain.pem (leaf, then the operator CA) for every TLS
// role, and that is what the role presents: a peer that trusts only the operator root can verify it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { join } from 'node:path';
import { loadTlsIdentity } from '../../src/http/index.js';
import { TLS_ROLES, initPki, readManifest, tlsChainPath } from '../../src/pki/index.js';
import { lastJsonLine, runCli, tempDir } from '../helpers/cli.js';

/** Whether a TLS client that trusts only `root` accepts a server presenting `cert` (127.0.0.1). */
async function clientAccepts(
  cert: string,
  key: string,
  root: string,
): Promise<{ ok: boolean; error?: string }> {
  const server = tls.createServer({ cert, key }, (socket) => socket.end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const { port } = server.address() as AddressInfo;
    return await new Promise((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca: [root] }, () => {
        resolve({ ok: socket.authorized });
        socket.destroy();
      });
      socket.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, error: err.code }));
    });
  } finally {
    server.close();
  }
}

describe('TLS chain files (operator/tls/<role>.chain.pem)', () => {
  const tmp = tempDir('simcred-chain-');
  const dir = join(tmp.path, 'pki');
  const file = (relative: string) => join(dir, relative);

  before(async () => {
    await initPki(dir);
  });
  after(() => tmp.cleanup());

  test('each TLS role has its leaf then the operator CA, and openssl verifies the leaf with it', () => {
    const manifest = readManifest(dir);
    const operatorCa = readFileSync(file(manifest.operator.operatorCa.cert), 'utf8');
    for (const role of TLS_ROLES) {
      const paths = manifest.operator.tls[role];
      assert.equal(tlsChainPath(paths), `operator/tls/${role}.chain.pem`);
      const chainFile = file(tlsChainPath(paths));
      const chain = readFileSync(chainFile, 'utf8');
      assert.equal(chain, readFileSync(file(paths.cert), 'utf8') + operatorCa);
      assert.equal(statSync(chainFile).mode & 0o777, 0o644);
      const pems = chain.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)!;
      assert.equal(pems.length, 2);
      assert.equal(new X509Certificate(pems[0]!).subject, `O=simcred demo operator\nCN=simcred-${role}`);
      assert.ok(new X509Certificate(pems[0]!).checkIssued(new X509Certificate(pems[1]!)));
      // The root alone is trusted; the CA comes only from the chain file.
      const r = spawnSync(
        'openssl',
        ['verify', '-CAfile', file(manifest.operator.root.cert), '-untrusted', chainFile, file(paths.cert)],
        { encoding: 'utf8' },
      );
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    }
  });

  test('a client trusting only the operator root verifies a role that presents its chain, not its bare leaf', async () => {
    const manifest = readManifest(dir);
    const root = readFileSync(file(manifest.operator.root.cert), 'utf8');
    const identity = loadTlsIdentity(dir, 'hss');
    assert.equal(identity.cert, readFileSync(file(tlsChainPath(manifest.operator.tls.hss)), 'utf8'));
    assert.deepEqual(await clientAccepts(identity.cert, identity.key, root), { ok: true });
    const leafOnly = readFileSync(file(manifest.operator.tls.hss.cert), 'utf8');
    const refused = await clientAccepts(leafOnly, identity.key, root);
    assert.equal(refused.ok, false);
    assert.equal(refused.error, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  test('init is idempotent for chains, restores a missing one and repairs a stale one', async () => {
    const manifest = readManifest(dir);
    const hssChain = file(tlsChainPath(manifest.operator.tls.hss));
    const ocspChain = file(tlsChainPath(manifest.operator.tls.ocsp));
    const before = readFileSync(hssChain, 'utf8');
    assert.deepEqual((await initPki(dir)).created, []);
    assert.equal(readFileSync(hssChain, 'utf8'), before);

    rmSync(hssChain);
    writeFileSync(ocspChain, readFileSync(file(manifest.operator.tls.ocsp.cert)));
    assert.deepEqual((await initPki(dir)).created.sort(), [hssChain, ocspChain].sort());
    assert.equal(readFileSync(hssChain, 'utf8'), before);
    assert.equal(readFileSync(ocspChain, 'utf8').match(/BEGIN CERTIFICATE/g)?.length, 2);
  });

  test('`pki init --json` names each chain file', async () => {
    const r = await runCli(['pki', 'init', '--dir', dir, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = lastJsonLine<{ tls: Record<string, { cert: string; key: string; chain: string }> }>(r.stdout);
    assert.deepEqual(Object.keys(out.tls).sort(), [...TLS_ROLES].sort());
    for (const role of TLS_ROLES) assert.equal(out.tls[role]!.chain, file(`operator/tls/${role}.chain.pem`));
  });
});
