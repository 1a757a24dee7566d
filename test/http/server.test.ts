import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { SimcredError } from '../../src/errors/index.js';
import { PeerClient, createHttpServer, listen } from '../../src/http/index.js';
import { lookupChallenge, withdrawRegistrations } from '../../src/protocol/registration.js';
import { createLogger } from '../../src/log/logger.js';

test('every failure follows the error contract and the server keeps serving', async () => {
  let logged = '';
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      logged += chunk.toString();
      done();
    },
  });
  const app = createHttpServer({ logger: createLogger({ name: 't', destination }), bodyLimit: 1024 });
  app.post('/echo', async (request) => ({ got: request.body }));
  app.get('/boom', async () => {
    throw new Error('secret detail k=00112233');
  });
  app.get('/db-busy', async () => {
    throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
  });
  app.get('/down', async () => {
    throw new SimcredError('SIMCRED_DEPENDENCY_UNAVAILABLE', 'HSS unavailable', { retryAfter: 7 });
  });
  const url = await listen(app, { host: '127.0.0.1', port: 0 });
  try {
    const post = (body: string, type = 'application/json') =>
      fetch(`${url}/echo`, { method: 'POST', body, headers: { 'content-type': type } });

    let res = await post('{"a":');
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { code: string }).code, 'SIMCRED_BAD_REQUEST');

    res = await post(JSON.stringify({ a: 'x'.repeat(2000) }));
    assert.equal(res.status, 413);
    assert.equal(((await res.json()) as { code: string }).code, 'SIMCRED_BODY_TOO_LARGE');

    res = await post('<a/>', 'application/xml');
    assert.equal(res.status, 415);
    assert.equal(((await res.json()) as { code: string }).code, 'SIMCRED_UNSUPPORTED_MEDIA_TYPE');

    res = await fetch(`${url}/nowhere`);
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { code: string }).code, 'SIMCRED_NOT_FOUND');

    res = await fetch(`${url}/boom`);
    assert.equal(res.status, 500);
    const body = await res.text();
    assert.match(body, /SIMCRED_INTERNAL/);
    assert.doesNotMatch(body, /secret detail|at /);

    res = await fetch(`${url}/db-busy`);
    assert.equal(res.status, 503, 'a database outage is a retryable 503, not a 500');
    assert.equal(((await res.json()) as { code: string }).code, 'SIMCRED_DEPENDENCY_UNAVAILABLE');
    assert.ok(Number(res.headers.get('retry-after')) > 0);

    res = await fetch(`${url}/down`);
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '7');

    res = await post('{"a":1}');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { got: { a: 1 } });
  } finally {
    await app.close();
  }
  assert.match(logged, /request failed/);
});

test('a peer call whose kept-alive connection the peer closed is sent once more; a device call is not', async () => {
  // A peer that drops the first connection after reading a request (as a restarted server drops the
  // sockets of its previous life), then answers on the next one.
  let connections = 0;
  const server = createNetServer((socket) => {
    connections += 1;
    const mine = connections;
    socket.once('data', () => {
      if (mine === 1) return socket.destroy();
      const body = JSON.stringify({ withdrawn: 1 });
      socket.end(
        `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = new PeerClient();
  try {
    const answer = await client.call(url, withdrawRegistrations, {
      body: { dsimIds: ['DSIM0000000000000001'] },
    });
    assert.deepEqual(answer, { withdrawn: 1 });
    assert.equal(connections, 2);
    connections = 0;
    await assert.rejects(
      client.call(url, lookupChallenge, { body: { dsimId: 'DSIM0000000000000001' } }),
      (err: unknown) => err instanceof SimcredError && err.code === 'SIMCRED_DEPENDENCY_UNAVAILABLE',
    );
    assert.equal(connections, 1, 'a device route was sent again');
  } finally {
    await client.close();
    server.close();
  }
});
