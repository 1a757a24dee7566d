// The operator's authorisation hook (issue 14): asked after every check of step 4, it allows, denies
// or chooses a plan; a hook that times out, errors or answers nonsense fails closed (503). The hook
// here is a real HTTPS server on loopback with its own certificate (made by OpenSSL) that requires
// the credentialing server's client certificate.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { startTestSystem, type TestSystem } from './harness.js';
import { rejectsWith } from '../helpers/assert.js';
import { tempDir } from '../helpers/cli.js';

/** What the hook answers next: a decision, a status with a body, or nothing at all. */
type Behaviour = { status: number; body: string } | 'silent';

describe("the operator's authorisation hook at step 4", () => {
  let t: TestSystem;
  let hook: Server;
  let behaviour: Behaviour = { status: 200, body: '{"decision":"allow"}' };
  const asked: { body: Record<string, unknown>; clientSubject: string }[] = [];
  const work = tempDir('simcred-hook-');
  let devices: string[];
  let next = 0;

  before(async () => {
    const key = join(work.path, 'hook.key');
    const cert = join(work.path, 'hook.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=hook.operator.example',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    // The operator root is made with the system: until it is known, no client is authorised.
    hook = createServer(
      { key: readFileSync(key), cert: readFileSync(cert), requestCert: true, rejectUnauthorized: false },
      (request, response) => {
        const socket = request.socket as TLSSocket;
        if (!socket.authorized) {
          response.writeHead(401).end();
          return;
        }
        let text = '';
        request.on('data', (chunk: Buffer) => (text += chunk.toString()));
        request.on('end', () => {
          asked.push({
            body: JSON.parse(text),
            clientSubject: String(socket.getPeerCertificate().subject.CN ?? ''),
          });
          if (behaviour === 'silent') return; // never answers: the credentialing server's timeout decides
          response.writeHead(behaviour.status, { 'content-type': 'application/json' }).end(behaviour.body);
        });
      },
    );
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    const port = (hook.address() as AddressInfo).port;
    t = await startTestSystem({
      credentialing: {
        authorisationHook: {
          url: `https://127.0.0.1:${port}/authorise`,
          timeoutMs: 500,
          caFile: cert,
          plans: ['iot-basic', 'iot-premium'],
        },
      },
    });
    // From now on the hook accepts only clients under the operator root (the credentialing server).
    hook.setSecureContext({
      key: readFileSync(key),
      cert: readFileSync(cert),
      ca: t.system.pki.operator.root.pem,
    });
    devices = await t.manufacture(8);
    await t.register(devices);
  });
  after(async () => {
    hook?.closeAllConnections();
    await new Promise((resolve) => hook?.close(resolve));
    await t?.close();
    work.cleanup();
  });

  /** Steps 1–4 of a fresh device: the proof the hook is asked about last. */
  async function prove(): Promise<{ dsimId: string; proving: Promise<unknown> }> {
    const dsimId = devices[next++]!;
    const { agent } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const session = await agent.openSession(registration);
    return { dsimId, proving: agent.proveSession(registration, session) };
  }

  const lastAudit = async (dsimId: string) =>
    (await t.operator.deviceState(t.system.urls.credentialing, dsimId)).audit.at(-1);

  test('allow with a plan: the device goes on, the plan is in its audit trail; the hook saw who asks and about whom', async () => {
    behaviour = { status: 200, body: '{"decision":"allow","plan":"iot-premium"}' };
    const { dsimId, proving } = await prove();
    await proving;
    const state = await t.operator.deviceState(t.system.urls.credentialing, dsimId);
    assert.equal(state.state, 'referred');
    const authenticated = state.audit.find((e) => e.event === 'authenticated');
    assert.equal(authenticated?.detail, 'plan:iot-premium');
    const request = asked.at(-1)!;
    assert.equal(request.body.dsimId, dsimId);
    assert.match(String(request.body.orderId), /^ord_/, 'the order the device was registered in');
    assert.match(String((request.body.device as { subject: string }).subject), new RegExp(dsimId));
    assert.match(String((request.body.device as { sha256: string }).sha256), /^[0-9a-f]{64}$/);
    assert.match(request.clientSubject, /credentialing/);
  });

  test('deny: SIMCRED_AUTHORISATION_DENIED with its reason; the session fails, nothing is issued', async () => {
    behaviour = { status: 200, body: '{"decision":"deny","reason":"contract suspended"}' };
    const { dsimId, proving } = await prove();
    await rejectsWith(proving, 'SIMCRED_AUTHORISATION_DENIED', /contract suspended/);
    assert.deepEqual(
      { event: (await lastAudit(dsimId))?.event, detail: (await lastAudit(dsimId))?.detail },
      { event: 'failed', detail: 'SIMCRED_AUTHORISATION_DENIED' },
    );
    assert.equal(await t.subscriber(dsimId), undefined, 'the HSS allocated an IMSI');
  });

  test('fails closed: no answer in time, HTTP 500, not JSON, an unknown field or a plan not listed are 503 with Retry-After', async () => {
    const failures: Behaviour[] = [
      'silent',
      { status: 500, body: '{}' },
      { status: 200, body: 'allow' },
      { status: 200, body: '{"decision":"allow","extra":true}' },
      { status: 200, body: '{"decision":"allow","plan":"unlimited"}' },
    ];
    for (const failure of failures) {
      behaviour = failure;
      const { dsimId, proving } = await prove();
      await assert.rejects(proving, (err: { code?: string; status?: number; retryAfter?: number }) => {
        assert.equal(err.code, 'SIMCRED_AUTHORISATION_UNAVAILABLE', JSON.stringify(failure));
        assert.equal(err.status, 503);
        assert.ok((err.retryAfter ?? 0) > 0, 'Retry-After');
        return true;
      });
      assert.equal((await lastAudit(dsimId))?.detail, 'SIMCRED_AUTHORISATION_UNAVAILABLE');
      assert.equal(await t.subscriber(dsimId), undefined, 'the HSS allocated an IMSI');
    }
  });

  test('the device that was refused for now onboards once the hook answers again', async () => {
    behaviour = 'silent';
    const { dsimId, proving } = await prove();
    await rejectsWith(proving, 'SIMCRED_AUTHORISATION_UNAVAILABLE');
    behaviour = { status: 200, body: '{"decision":"allow"}' };
    const { agent } = await t.device(dsimId);
    const result = await agent.onboard();
    assert.match(result.subscription.imsi, /^\d{15}$/);
  });
});
