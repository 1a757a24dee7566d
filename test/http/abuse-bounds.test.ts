// The request bounds of the device-facing servers (time, header and body size, connections per
// address) and the rate-limit hooks on a device route, on real sockets over loopback. Clients bind
// 127.0.0.x to stand for different addresses (Linux routes all of 127/8 to the loopback device).
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Agent, request } from 'undici';
import { createLogger } from '../../src/log/logger.js';
import {
  createHttpServer,
  listen,
  mountRoute,
  undeclaredErrors,
  type ServerLimits,
} from '../../src/http/index.js';
import { RequestLimiter, limitDeviceRoutes, type AbuseLimitSettings } from '../../src/http/rate-limit.js';
import { phlrChallenge, phlrResponse } from '../../src/protocol/phlr.js';
import { openDatabase } from '../../src/storage/index.js';
import { RateLimitStore, createRateLimitTable } from '../../src/storage/rate-limits.js';
import { tempDir } from '../helpers/cli.js';
import { ManualClock } from '../helpers/clock.js';

const logger = createLogger({ name: 'test', level: 'silent' });

const LIMITS: ServerLimits = {
  requestTimeoutMs: 400,
  headersTimeoutMs: 400,
  idleTimeoutMs: 60_000,
  maxHeaderBytes: 4096,
  deviceBodyLimit: 1024,
  connectionsPerAddress: 2,
};

/** Writes raw bytes from `localAddress` and reads everything until the server closes. */
function raw(port: number, text: string, localAddress = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress }, () => socket.write(text));
    let answer = '';
    socket.on('data', (chunk) => (answer += chunk.toString()));
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
  });
}

/** An open connection from `localAddress`; resolves once connected, with whether the server closed it unanswered. */
function hold(port: number, localAddress: string): Promise<{ socket: Socket; closed: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress }, () => {
      let answer = '';
      socket.on('data', (chunk) => (answer += chunk.toString()));
      resolve({ socket, closed: new Promise((done) => socket.on('close', () => done(answer))) });
    });
    socket.on('error', reject);
  });
}

describe('request bounds of a device-facing server', () => {
  let app: FastifyInstance;
  let port: number;
  before(async () => {
    app = createHttpServer({ logger, limits: LIMITS, bodyLimit: 64 * 1024 });
    mountRoute(app, phlrChallenge, async () => ({ rand: '00'.repeat(16), autn: '00'.repeat(16) }));
    // A server-to-server route keeps the server's own, larger limit.
    app.post('/peer', async (req) => ({ bytes: JSON.stringify(req.body).length }));
    const url = await listen(app, { host: '127.0.0.1', port: 0 });
    port = Number(new URL(url).port);
  });
  after(() => app.close());

  it('headers over maxHeaderBytes: 431 SIMCRED_HEADERS_TOO_LARGE, connection closed', async () => {
    const answer = await raw(port, `GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(8000)}\r\n\r\n`);
    assert.match(answer, /^HTTP\/1\.1 431 /);
    assert.match(answer, /"code":"SIMCRED_HEADERS_TOO_LARGE"/);
  });

  it('a device request whose body does not arrive in time: 408 SIMCRED_REQUEST_TIMEOUT, connection closed', async () => {
    // Headers promise a body that never comes.
    const answer = await raw(
      port,
      'POST /v1/aka/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{"pimsi"',
    );
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.match(answer, /"code":"SIMCRED_REQUEST_TIMEOUT"/);
  });

  it('headers that do not arrive in time: 408 SIMCRED_REQUEST_TIMEOUT on any route', async () => {
    const answer = await raw(port, 'POST /peer HTTP/1.1\r\nHost: x\r\n');
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.match(answer, /"code":"SIMCRED_REQUEST_TIMEOUT"/);
  });

  it('a device route body over deviceBodyLimit: 413; a peer route keeps the server limit', async () => {
    const big = JSON.stringify({ pimsi: '001010000000001', pad: 'a'.repeat(2000) });
    const device = await request(`http://127.0.0.1:${port}/v1/aka/challenge`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: big,
    });
    assert.equal(device.statusCode, 413);
    assert.equal(((await device.body.json()) as { code: string }).code, 'SIMCRED_BODY_TOO_LARGE');
    const peer = await request(`http://127.0.0.1:${port}/peer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: big,
    });
    assert.equal(peer.statusCode, 200);
    await peer.body.dump();
  });

  it('one address holds at most connectionsPerAddress connections; other addresses still connect', async () => {
    const first = await hold(port, '127.0.0.5');
    const second = await hold(port, '127.0.0.5');
    const third = await hold(port, '127.0.0.5');
    assert.equal(await third.closed, '', 'the third connection is closed unanswered');
    // Another address is not affected, and the two held connections still serve.
    const other = await raw(
      port,
      'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      '127.0.0.6',
    );
    assert.match(other, /^HTTP\/1\.1 (200|404) /);
    second.socket.write('GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(await second.closed, /^HTTP\/1\.1 (200|404) /);
    first.socket.destroy();
    assert.deepEqual(undeclaredErrors(app), []);
  });
});

describe('rate limits on a device route', () => {
  const dir = tempDir('simcred-abuse-');
  let app: FastifyInstance;
  let url: string;
  let db: Awaited<ReturnType<typeof openDatabase<never>>>;
  const agents = new Map<string, Agent>();
  const clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
  const settings: AbuseLimitSettings = {
    enabled: true,
    perAddress: { requests: 20, windowSeconds: 60 },
    perIdentity: { requests: 20, windowSeconds: 60 },
    perIdentityAndAddress: { requests: 10, windowSeconds: 60 },
    akaChallenges: { requests: 6, windowSeconds: 60 },
    akaChallengesPerAddress: { requests: 3, windowSeconds: 60 },
    denyCacheEntries: 1000,
  };
  let served = 0;

  before(async () => {
    db = await openDatabase<never>(
      { kind: 'sqlite', file: join(dir.path, 'phlr.db') },
      { '0001_rate_limits': { up: createRateLimitTable } },
    );
    app = createHttpServer({ logger });
    limitDeviceRoutes(app, {
      settings,
      limiter: new RequestLimiter({
        store: new RateLimitStore(db),
        denyCacheEntries: 1000,
        clock: clock.now,
      }),
    });
    mountRoute(app, phlrChallenge, async () => {
      served++;
      return { rand: '00'.repeat(16), autn: '00'.repeat(16) };
    });
    mountRoute(app, phlrResponse, async () => ({ grant: 'a.b.c', expiresAt: new Date().toISOString() }));
    url = await listen(app, { host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await app.close();
    await Promise.all([...agents.values()].map((a) => a.close()));
    await db.destroy();
    dir.cleanup();
  });

  const send = async (from: string, path: string, body: object) => {
    let agent = agents.get(from);
    if (!agent) agents.set(from, (agent = new Agent({ localAddress: from })));
    const answer = await request(`${url}${path}`, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const parsed = (await answer.body.json()) as { code?: string };
    return { status: answer.statusCode, code: parsed.code };
  };

  const challenge = async (from: string, pimsi: string) => {
    let agent = agents.get(from);
    if (!agent) agents.set(from, (agent = new Agent({ localAddress: from })));
    const answer = await request(`${url}/v1/aka/challenge`, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ pimsi }),
    });
    const body = (await answer.body.json()) as { code?: string; message?: string };
    return {
      status: answer.statusCode,
      code: body.code,
      message: body.message,
      retryAfter: answer.headers['retry-after'],
    };
  };

  it('a stranger asking new challenges for a PIMSI is throttled; the device at another address still gets its challenge', async () => {
    const pimsi = '001010000000042';
    for (let i = 0; i < 3; i++) assert.equal((await challenge('127.0.0.3', pimsi)).status, 200);
    const refused = await challenge('127.0.0.3', pimsi);
    assert.equal(refused.status, 429);
    assert.equal(refused.code, 'SIMCRED_AKA_THROTTLED');
    assert.match(refused.message!, /PIMSI 001010000000042/);
    assert.ok(Number(refused.retryAfter) >= 1, 'Retry-After in seconds');
    const servedBefore = served;
    for (let i = 0; i < 50; i++) assert.equal((await challenge('127.0.0.3', pimsi)).status, 429);
    assert.equal(served, servedBefore, 'no refused request reached the route');
    // The real device, elsewhere, still has the rest of the PIMSI's allowance.
    assert.equal((await challenge('127.0.0.2', pimsi)).status, 200);
  });

  it('more requests from one address than perAddress: SIMCRED_ADDRESS_RATE_LIMITED, other addresses unaffected', async () => {
    const answers = [];
    for (let i = 0; i < 25; i++) answers.push(await challenge('127.0.0.4', `00101000000${String(1000 + i)}`));
    assert.equal(answers.filter((a) => a.status === 200).length, 20);
    for (const refused of answers.slice(20)) assert.equal(refused.code, 'SIMCRED_ADDRESS_RATE_LIMITED');
    assert.equal((await challenge('127.0.0.7', '001010000009999')).status, 200);
  });

  it('after Retry-After the throttled key is let through again', async () => {
    const refused = await challenge('127.0.0.3', '001010000000042');
    assert.equal(refused.status, 429);
    clock.advance(Number(refused.retryAfter));
    assert.equal((await challenge('127.0.0.3', '001010000000042')).status, 200);
    assert.deepEqual(undeclaredErrors(app), []);
  });

  it('one identity: at most perIdentityAndAddress from one address, perIdentity from all (SIMCRED_IDENTITY_RATE_LIMITED)', async () => {
    const body = { pimsi: '001010000000077', res: '00'.repeat(8) };
    for (let i = 0; i < 10; i++) assert.equal((await send('127.0.0.8', phlrResponse.path, body)).status, 200);
    const fromOne = await send('127.0.0.8', phlrResponse.path, body);
    assert.equal(fromOne.code, 'SIMCRED_IDENTITY_RATE_LIMITED');
    // 11 counted so far; another address gets the rest of the 20.
    for (let i = 0; i < 9; i++) assert.equal((await send('127.0.0.9', phlrResponse.path, body)).status, 200);
    const fromAll = await send('127.0.0.9', phlrResponse.path, body);
    assert.equal(fromAll.code, 'SIMCRED_IDENTITY_RATE_LIMITED');
    // Another PIMSI from the same addresses is not affected.
    assert.equal(
      (await send('127.0.0.9', phlrResponse.path, { ...body, pimsi: '001010000000078' })).status,
      200,
    );
    assert.deepEqual(undeclaredErrors(app), []);
  });
});
