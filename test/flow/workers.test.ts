import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { benchWorkspace, type BenchWorkspace } from '../../src/bench/cluster.js';
import { processTree } from '../../src/bench/processes.js';
import { startUp } from '../helpers/cli.js';
import { PeerClient, clientTls, loadTlsIdentity } from '../../src/http/index.js';
import { initPki, loadPki } from '../../src/pki/index.js';
import { PortalBrowser } from '../portal/api-client.js';
import { expectRefusal } from '../helpers/assert.js';

// `simcred up --workers 2`: one primary, two workers each serving every role on the same ports.
// The whole flow through such a pool is in test/bench (bench e2e --colocated --workers 2).

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Alive means not yet reaped and not a zombie. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  return true;
}

describe('simcred up --workers 2', { concurrency: false }, () => {
  let ws: BenchWorkspace;
  let pool: ChildProcess;
  let root: string;
  let exited: Promise<number | null>;
  let stderr: () => string;

  before(async () => {
    ws = await benchWorkspace();
    await initPki(ws.config.pkiDir);
    root = (await loadPki(ws.config.pkiDir)).operator.root.pem;
    ({ child: pool, exited, stderr } = await startUp(['--dir', ws.dataDir, '--workers', '2'], ws.env));
  });

  after(async () => {
    try {
      process.kill(-pool.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
    ws?.cleanup();
  });

  const health = async (url: string) => {
    // A new connection each time: the primary hands connections to the workers in turn.
    const client = new PeerClient({ tls: { ca: [root] }, timeoutMs: 2000, connections: 1 });
    try {
      return (await client.send(`${url}/health`, 'GET', undefined, '')).statusCode;
    } finally {
      await client.close();
    }
  };

  it("every worker's portal counts the same failed sign-ins: new connections, spread over both, lock the account", async () => {
    // A new browser is a new connection; the primary hands them to the workers in turn.
    const browser = () => new PortalBrowser(ws.urls.portal, root);
    const email = `workers-${process.pid}@example.com`;
    const password = 'a long enough password';
    const owner = browser();
    try {
      assert.equal(
        (await owner.signIn('/api/v1/accounts', { email, password, name: 'Workers' })).statusCode,
        200,
      );
    } finally {
      await owner.close();
    }
    for (let i = 0; i < 6; i++) {
      const b = browser();
      try {
        const answer = await b.post('/api/v1/session', { email, password: i < 5 ? `wrong ${i}` : password });
        expectRefusal(answer, i < 5 ? 'SIMCRED_LOGIN_FAILED' : 'SIMCRED_RATE_LIMITED');
      } finally {
        await b.close();
      }
    }
  });

  it('runs a primary and two workers; a worker that dies is replaced and the roles keep answering', async () => {
    const workers = processTree(pool.pid!).slice(1);
    assert.equal(workers.length, 2);
    process.kill(workers[0]!, 'SIGKILL');
    const replaced = await until('a replacement worker', () => {
      const children = processTree(pool.pid!).slice(1);
      return children.length === 2 && !children.includes(workers[0]!) ? children : undefined;
    });
    assert.ok(replaced.includes(workers[1]!), 'the other worker kept running');
    // Several new connections per role: whichever worker gets one, it answers.
    for (const url of [ws.urls.credentialing, ws.urls.hss, ws.urls.phlr, ...ws.urls.registration]) {
      for (let i = 0; i < 3; i++) assert.equal(await health(url), 200, url);
    }
  });

  it('SIGTERM to the primary stops every worker, which close their roles and exit', async () => {
    const everyone = processTree(pool.pid!);
    assert.equal(everyone.length, 3);
    // A long poll of the HSS's attach feed waits in a worker as SIGTERM arrives (as the credentialing
    // server's own follower does): it must be answered before the HSS's store closes, not read from a
    // closed store.
    const follower = new PeerClient({
      tls: clientTls(loadTlsIdentity(ws.config.pkiDir, 'credentialing')),
      timeoutMs: 30_000,
      connections: 1,
    });
    const waiting = follower.send(
      `${ws.urls.hss}/v1/subscribers/events?after=999999&waitSeconds=25`,
      'GET',
      undefined,
      '',
    );
    await new Promise((r) => setTimeout(r, 500));
    process.kill(pool.pid!, 'SIGTERM');
    const answer = await waiting.finally(() => follower.close());
    assert.equal(answer.statusCode, 200, answer.text);
    assert.equal(await exited, 0);
    await until('every worker gone', () => (everyone.some(alive) ? undefined : true));
    assert.doesNotMatch(stderr(), /database connection is not open/);
  });
});
