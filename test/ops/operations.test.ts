import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { benchWorkspace, type BenchWorkspace } from '../../src/bench/cluster.js';
import { runFleet, type FleetReport } from '../../src/device/fleet.js';
import { PeerClient, clientTls, loadTlsIdentity } from '../../src/http/index.js';
import { withRequestId } from '../../src/log/context.js';
import { CaStore, initPki, loadPki } from '../../src/pki/index.js';
import { manufactureDevices } from '../../src/pki/manufacture.js';
import { OperatorClient } from '../../src/portal/operator-client.js';
import { importSubscribers } from '../../src/protocol/phlr.js';
import { startUp, type RunningUp } from '../helpers/cli.js';

// Operations (issue 16) against `simcred up` as a real child process: its metrics listener, a
// request id followed through every role's log, and SIGTERM in the middle of a fleet.

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Sums the samples of one metric whose labels include `match`. */
function sample(text: string, name: string, match: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const labels = /\{(.*)\}/.exec(line)?.[1] ?? '';
    if (Object.entries(match).every(([k, v]) => labels.includes(`${k}="${v}"`))) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sum;
}

describe('operations: metrics, request ids, SIGTERM', { concurrency: false }, () => {
  let ws: BenchWorkspace;
  let up: RunningUp;
  let metricsUrl: string;
  let pkiDir: string;

  before(async () => {
    ws = await benchWorkspace();
    pkiDir = ws.config.pkiDir;
    await initPki(pkiDir);
    const metricsPort = await freePort();
    metricsUrl = `http://127.0.0.1:${metricsPort}`;
    up = await startUp(['--dir', ws.dataDir], {
      ...ws.env,
      SIMCRED_LOG__LEVEL: 'debug',
      SIMCRED_OPERATIONS__METRICS_PORT: String(metricsPort),
      SIMCRED_OPERATIONS__SHUTDOWN_GRACE_MS: '60000',
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

  /** Manufactures and registers `count` devices; their DSIM_IDs. */
  async function devices(count: number): Promise<string[]> {
    const made = await manufactureDevices({
      dir: pkiDir,
      count,
      registrationServers: ws.urls.registration,
      servers: { phlr: ws.urls.phlr, ocsp: ws.urls.ocsp, hss: ws.urls.hss },
    });
    const mine = new Set(made.devices.map((d) => d.dsimId));
    const store = await CaStore.open(pkiDir);
    const fleet = (await store.listDevices().finally(() => store.close())).filter((d) => mine.has(d.dsimId));
    const operator = new OperatorClient(loadTlsIdentity(pkiDir, 'portal'));
    const peer = new PeerClient({ tls: clientTls(loadTlsIdentity(pkiDir, 'portal')) });
    try {
      await operator.registerDevices(ws.urls.credentialing, fleet, () => undefined);
      await peer.call(ws.urls.phlr, importSubscribers, { body: {} });
    } finally {
      await operator.close();
      await peer.close();
    }
    return fleet.map((d) => d.dsimId);
  }

  const fleet = (dsimIds: string[], onDeviceDone?: () => void): Promise<FleetReport> =>
    runFleet({
      pkiDir,
      dsimIds,
      ocspOptions: { clockSkewSeconds: ws.config.ocsp.clockSkewSeconds },
      concurrency: 8,
      maxRetryDelayMs: 500,
      maxAttempts: 3,
      ...(onDeviceDone ? { onDeviceDone } : {}),
    });

  const scrape = async (path: string) => {
    const client = new PeerClient();
    try {
      return await client.send(`${metricsUrl}${path}`, 'GET', undefined, '');
    } finally {
      await client.close();
    }
  };

  it('after a small fleet, the onboardings counted in the metrics equal the HSS subscribers', async () => {
    const report = await fleet(await devices(12));
    assert.equal(report.outcomes.filter((o) => o.ok).length, 12);
    const { text, headers } = await scrape('/metrics');
    assert.match(String(headers['content-type']), /^text\/plain/);
    const completed = sample(text, 'simcred_onboardings', { role: 'credentialing', state: 'completed' });
    const subscribers = sample(text, 'simcred_hss_subscribers', { role: 'hss' });
    assert.equal(completed, 12);
    assert.equal(subscribers, completed);
    assert.equal(sample(text, 'simcred_hss_subscribers', { role: 'hss', state: 'active' }), 12);
    // Every role of the process answered requests and is counted under its own name.
    for (const role of ['credentialing', 'registration-1', 'hss', 'phlr', 'ocsp']) {
      assert.ok(sample(text, 'simcred_http_requests_total', { role }) > 0, role);
    }
    assert.ok(
      sample(text, 'simcred_http_requests_total', {
        role: 'credentialing',
        route: 'credentialing.openSession',
        status: '200',
      }) >= 12,
    );
    assert.ok(sample(text, 'simcred_http_request_duration_seconds_count', { role: 'hss' }) > 0);
    assert.ok(sample(text, 'simcred_ocsp_responses_total', { role: 'ocsp', status: 'good' }) >= 12);
    assert.equal(sample(text, 'simcred_batch_backlog', { role: 'credentialing' }), 0);
    assert.match(text, /^process_cpu_user_seconds_total /m);
    const ready = await scrape('/readyz');
    assert.equal(ready.statusCode, 200, ready.text);
    const report2 = JSON.parse(ready.text) as { roles: Record<string, Record<string, string>> };
    assert.equal(report2.roles.credentialing?.hss, 'ok');
    assert.equal(report2.roles.credentialing?.store, 'ok');
    assert.equal(report2.roles.credentialing?.ocsp, 'ok');
    assert.equal(report2.roles.portal?.credentialing, 'ok');
    assert.equal(report2.roles['provisioning-2']?.store, 'ok');
    assert.equal((await scrape('/livez')).statusCode, 200);
  });

  it("one device's request id is in the logs of every role its onboarding reaches", async () => {
    const [dsimId] = await devices(1);
    const id = `trace-${process.pid}-1`;
    const report = await withRequestId(id, () => fleet([dsimId!]));
    assert.ok(report.outcomes[0]!.ok);
    const lines = up
      .stderr()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { reqId?: string; role?: string });
    const roles = new Set(lines.filter((l) => l.reqId === id).map((l) => l.role));
    for (const role of ['phlr', 'registration-1', 'credentialing', 'ocsp', 'hss']) {
      assert.ok(roles.has(role), `${role} logged the request id (${[...roles].join(', ')})`);
    }
    assert.ok(
      [...roles].some((r) => r?.startsWith('provisioning-')),
      'a provisioning server logged it',
    );
    // An ill-formed id is not taken: the server answers under an id of its own.
    const client = new PeerClient({ tls: { ca: [(await loadPki(pkiDir)).operator.root.pem] } });
    try {
      const ok = await client.send(`${ws.urls.hss}/health`, 'GET', undefined, '', undefined, {
        'x-request-id': 'mine-1',
      });
      assert.equal(ok.headers['x-request-id'], 'mine-1');
      const bad = await client.send(`${ws.urls.hss}/health`, 'GET', undefined, '', undefined, {
        'x-request-id': 'a b',
      });
      assert.notEqual(bad.headers['x-request-id'], 'a b');
      assert.match(String(bad.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    } finally {
      await client.close();
    }
  });

  it('SIGTERM mid-fleet: no request in flight is dropped, and the process exits 0', async () => {
    const dsimIds = await devices(40);
    // Every error undici meets, by code: a request cut off by the server shows as a socket error.
    const errors: string[] = [];
    const onError = (message: unknown) => {
      const error = (message as { error?: { code?: string; cause?: { code?: string } } }).error;
      errors.push(error?.code ?? error?.cause?.code ?? 'unknown');
    };
    subscribe('undici:request:error', onError);
    let done = 0;
    let signalled = false;
    try {
      await fleet(dsimIds, () => {
        if (++done === 10 && !signalled) {
          signalled = true;
          process.kill(up.child.pid!, 'SIGTERM');
        }
      });
    } finally {
      unsubscribe('undici:request:error', onError);
    }
    assert.ok(signalled);
    assert.equal(await up.exited, 0, up.stderr().slice(-2000));
    const cut = errors.filter((code) => code !== 'ECONNREFUSED');
    assert.deepEqual(cut, [], `requests cut off: ${cut.join(', ')}`);
    assert.match(up.stderr(), /"msg":"stopped"/);
    assert.doesNotMatch(up.stderr(), /shutdown grace over/);
  });
});
