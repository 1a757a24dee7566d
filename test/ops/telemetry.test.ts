import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type PeerCertificate } from 'node:tls';
import { describe, it } from 'node:test';
import { loadTlsIdentity, startRoleServer } from '../../src/http/index.js';
import { PeerClient } from '../../src/http/client.js';
import { acceptedRequestId, currentRequestId, withRequestId } from '../../src/log/context.js';
import { createLogger } from '../../src/log/logger.js';
import { METRICS, Telemetry } from '../../src/ops/telemetry.js';
import { initPki } from '../../src/pki/index.js';
import { tempDir } from '../helpers/cli.js';

const silent = createLogger({ name: 'test', level: 'silent' });

describe('request ids', () => {
  it('takes a well-formed incoming id and refuses long or odd ones', () => {
    assert.equal(acceptedRequestId('dev-1234.a:b'), 'dev-1234.a:b');
    assert.equal(acceptedRequestId('x'.repeat(128)), 'x'.repeat(128));
    for (const bad of ['', 'x'.repeat(129), 'a b', 'a\nb', 'a"b', '{}', undefined, 42, ['a']]) {
      assert.equal(acceptedRequestId(bad), undefined, String(bad));
    }
  });

  it('is the current id inside withRequestId and its async continuations only', async () => {
    assert.equal(currentRequestId(), undefined);
    await withRequestId('job-1', async () => {
      await new Promise((r) => setImmediate(r));
      assert.equal(currentRequestId(), 'job-1');
    });
    assert.equal(currentRequestId(), undefined);
  });
});

describe('telemetry', () => {
  it('is not ready while a check fails or while draining; answers are reused for the cache time', async () => {
    let now = 0;
    let storeUp = false;
    const telemetry = new Telemetry({ processMetrics: false, readinessCacheMs: 1000, now: () => now });
    telemetry.role('hss').readyWhen('store', async () => {
      if (!storeUp) throw new Error('store down');
    });
    const first = await telemetry.ready();
    assert.equal(first.ready, false);
    assert.equal(first.roles.hss?.store, 'store down');
    storeUp = true;
    assert.equal((await telemetry.ready()).ready, false, 'reused within the cache time');
    now = 1000;
    assert.equal((await telemetry.ready()).ready, true);
    telemetry.startDraining();
    const draining = await telemetry.ready();
    assert.equal(draining.ready, false);
    assert.equal(draining.roles.hss?.draining, 'shutting down');
  });

  it('a store count that fails leaves its series out and is counted', async () => {
    const telemetry = new Telemetry({ processMetrics: false });
    telemetry.role('hss').count('hssSubscribers', async () => ({ provisioned: 2, active: 3 }));
    telemetry.role('credentialing').count('onboardings', async () => {
      throw new Error('database gone');
    });
    const text = await telemetry.registry.metrics();
    // The error counter is read alongside the gauges: a failure shows from the next scrape on.
    const next = await telemetry.registry.metrics();
    assert.match(text, /^simcred_hss_subscribers\{role="hss",state="active"\} 3$/m);
    assert.doesNotMatch(text, /^simcred_onboardings\{/m);
    assert.match(
      next,
      /^simcred_metrics_collect_errors_total\{role="credentialing",metric="simcred_onboardings"\} 1$/m,
    );
  });

  it('docs/operations.md lists every metric with its labels', () => {
    const doc = readFileSync('docs/operations.md', 'utf8');
    for (const metric of Object.values(METRICS)) {
      const row = doc.split('\n').find((line) => line.startsWith(`| \`${metric.name}\``));
      assert.ok(row, `${metric.name} is documented`);
      assert.ok(row.includes(metric.labels.join(', ')), `${metric.name}: labels ${metric.labels.join(', ')}`);
    }
  });
});

describe('SIGHUP certificate reload', () => {
  it('new connections get the new certificate; an open connection keeps working', async () => {
    const dir = tempDir();
    try {
      await initPki(dir.path);
      const hss = loadTlsIdentity(dir.path, 'hss');
      const phlr = loadTlsIdentity(dir.path, 'phlr');
      const server = await startRoleServer({
        role: 'hss',
        host: '127.0.0.1',
        port: 0,
        logger: silent,
        tls: hss,
        mount: () => undefined,
      });
      const client = new PeerClient({ tls: { ca: hss.ca }, connections: 1 });
      try {
        const port = Number(new URL(server.url).port);
        const subject = () =>
          new Promise<string>((resolve, reject) => {
            const socket = connect({ host: '127.0.0.1', port, ca: hss.ca, servername: 'localhost' }, () => {
              const cert: PeerCertificate = socket.getPeerCertificate();
              socket.end();
              resolve(String(cert.subject.CN));
            });
            socket.once('error', reject);
          });
        assert.equal(await subject(), 'simcred-hss');
        assert.equal((await client.send(`${server.url}/health`, 'GET', undefined, '')).statusCode, 200);
        server.reloadTls!(phlr);
        assert.equal(await subject(), 'simcred-phlr');
        // The kept-alive connection made before the reload still answers.
        assert.equal((await client.send(`${server.url}/health`, 'GET', undefined, '')).statusCode, 200);
      } finally {
        await client.close();
        await server.close();
      }
    } finally {
      dir.cleanup();
    }
  });
});
