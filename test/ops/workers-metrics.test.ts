import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { benchWorkspace, type BenchWorkspace } from '../../src/bench/cluster.js';
import { PeerClient } from '../../src/http/index.js';
import { initPki, loadPki } from '../../src/pki/index.js';
import { startUp, type RunningUp } from '../helpers/cli.js';

// `simcred up --workers 2`: the primary's metrics listener sums the workers' series.

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('up --workers 2: metrics of the pool', () => {
  let ws: BenchWorkspace;
  let up: RunningUp;
  let metricsUrl: string;

  before(async () => {
    ws = await benchWorkspace();
    await initPki(ws.config.pkiDir);
    const port = await freePort();
    metricsUrl = `http://127.0.0.1:${port}`;
    up = await startUp(['--dir', ws.dataDir, '--workers', '2'], {
      ...ws.env,
      SIMCRED_OPERATIONS__METRICS_PORT: String(port),
    });
  });

  after(async () => {
    try {
      process.kill(-up.child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
    ws?.cleanup();
  });

  it("counts every worker's requests once, and is ready while both workers run", async () => {
    const root = (await loadPki(ws.config.pkiDir)).operator.root.pem;
    const requests = 6;
    for (let i = 0; i < requests; i++) {
      // A new connection each time: the primary hands them to the workers in turn.
      const client = new PeerClient({ tls: { ca: [root] }, connections: 1 });
      try {
        assert.equal((await client.send(`${ws.urls.hss}/health`, 'GET', undefined, '')).statusCode, 200);
      } finally {
        await client.close();
      }
    }
    const plain = new PeerClient();
    try {
      const { text } = await plain.send(`${metricsUrl}/metrics`, 'GET', undefined, '');
      const line = text
        .split('\n')
        .find((l) => l.startsWith('simcred_http_requests_total{') && l.includes('route="hss.health"'));
      assert.ok(line, text.slice(0, 2000));
      assert.equal(Number(line.slice(line.lastIndexOf(' ') + 1)), requests);
      assert.match(text, /^process_cpu_user_seconds_total /m);
      const ready = await plain.send(`${metricsUrl}/readyz`, 'GET', undefined, '');
      assert.equal(ready.statusCode, 200, ready.text);
    } finally {
      await plain.close();
    }
  });
});
