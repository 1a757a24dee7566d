import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isSimcredError } from '../../src/errors/index.js';
import { startRole } from '../../src/system/roles.js';
import * as x509 from '../../src/crypto/x509.js';
import { DeviceAgent } from '../../src/device/agent.js';
import { ocspStatusChecker, type CertificateStatusChecker } from '../../src/ocsp/checker.js';
import { startOcspResponder } from '../../src/ocsp/index.js';
import { freePort } from '../../src/ocsp/openssl.js';
import { loadFactoryImage } from '../../src/pki/index.js';
import { TrustedModule } from '../../src/device/trusted-module.js';
import { startTestSystem, type TestSystem } from './harness.js';
import { rejectsWith } from '../helpers/assert.js';

/** DESIGN §4.6: a dependency down gives a retryable 503, leaves nothing half-done, and the flow completes once it is back. */
describe('dependencies down', () => {
  let t: TestSystem;
  let devices: string[];
  /** Roles restarted by a test stay up for the next ones; closed with the system. */
  const restarted: { close(): Promise<void> }[] = [];
  before(async () => {
    t = await startTestSystem();
    devices = await t.manufacture(4);
    await t.register(devices);
  });
  after(async () => {
    for (const server of restarted) await server.close();
    await t.close();
  });

  function isRetryable(err: unknown): boolean {
    assert.ok(isSimcredError(err), String(err));
    assert.equal(err.status, 503);
    assert.ok((err.retryAfter ?? 0) > 0, 'Retry-After');
    return true;
  }

  test('HSS down: 503, no IMSI, then success once it is back', async () => {
    const dsimId = devices[0]!;
    const { agent } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const port = Number(new URL(t.system.urls.hss).port);
    await t.system.servers.hss.close();
    const session = await agent.openSession(registration);
    await assert.rejects(agent.proveSession(registration, session), isRetryable);
    const state = await t.operator.deviceState(t.system.urls.credentialing, dsimId);
    assert.equal(state.state, 'registered', 'the session was undone');
    restarted.push(
      await startRole({ ...t.config, ports: { ...t.config.ports, hss: port } }, 'hss', 1, t.logger),
    );
    const result = await agent.onboard();
    assert.equal(result.subscription.imsi, (await t.subscriber(dsimId))!.imsi);
  });

  test('provisioning server down: 503 at delivery, then a new session succeeds with the same IMSI', async () => {
    const dsimId = devices[1]!;
    const { agent } = await t.device(dsimId);
    const registration = await agent.lookupRegistration();
    const session = await agent.openSession(registration);
    const referral = await agent.proveSession(registration, session);
    const imsi = (await t.subscriber(dsimId))!.imsi;
    const index = t.system.urls.provisioning.indexOf(referral.provisioningUrl);
    const port = Number(new URL(referral.provisioningUrl).port);
    await t.system.servers.provisioning[index]!.close();
    await assert.rejects(agent.collectPackage(referral), isRetryable);
    restarted.push(
      await startRole(
        {
          ...t.config,
          ports: {
            ...t.config.ports,
            provisioning: t.config.ports.provisioning.map((p, i) => (i === index ? port : p)),
          },
        },
        'provisioning',
        index + 1,
        t.logger,
      ),
    );
    // The device starts over and gets a fresh referral.
    const result = await agent.onboard();
    assert.equal(result.subscription.imsi, imsi, 'one DSIM_ID, one IMSI');
    assert.equal((await t.operator.deviceState(t.system.urls.credentialing, dsimId)).state, 'completed');
  });

  test('OCSP unreachable for the device at step 11 (after the registration was used): it retries with the same package', async () => {
    const dsimId = devices[2]!;
    const { image, module } = await t.device(dsimId);
    // The device's own responder URL is down when it installs, and comes up once the device has
    // met it down (not on a timer: a slow machine could otherwise reach step 11 after it is up).
    const port = await freePort();
    const direct = ocspStatusChecker({ urls: [`http://127.0.0.1:${port}`], timeoutMs: 1000 });
    let responder: { close(): Promise<void> } | undefined;
    let checks = 0;
    const ocsp: CertificateStatusChecker = {
      async requireGood(certificate, issuer) {
        checks++;
        try {
          await direct.requireGood(certificate, issuer);
        } catch (err) {
          if (!responder) {
            responder = await startOcspResponder({
              pkiDir: t.config.pkiDir,
              host: '127.0.0.1',
              port,
              logger: t.logger,
            });
            restarted.push(responder);
          }
          throw err;
        }
      },
    };
    const agent = new DeviceAgent({
      module,
      client: t.deviceClient,
      registrationServer: image.image.registrationServer,
      phlrUrl: t.system.urls.phlr,
      hssUrl: t.system.urls.hss,
      operatorRoots: [new x509.X509Certificate(image.image.trustRoots.operator)],
      ocsp,
      maxAttempts: 10,
      maxRetryDelayMs: 200,
    });
    const result = await agent.onboard();
    assert.ok(result.attempts > 1, 'the install was retried');
    assert.ok(responder, 'the device met its responder down first');
    assert.equal(checks, 2, 'one refused check, then one good');
    assert.equal(result.subscription.imsi, (await t.subscriber(dsimId))!.imsi);
    assert.equal((await t.operator.deviceState(t.system.urls.credentialing, dsimId)).state, 'completed');
  });

  test('a device that restarts after step 9 resumes from its module with the same ticket and package', async () => {
    const dsimId = devices[3]!;
    const image = await loadFactoryImage(t.config.pkiDir, dsimId);
    const agentWith = (module: TrustedModule, ocspUrl: string) =>
      new DeviceAgent({
        module,
        client: t.deviceClient,
        registrationServer: image.image.registrationServer,
        phlrUrl: t.system.urls.phlr,
        hssUrl: t.system.urls.hss,
        operatorRoots: [new x509.X509Certificate(image.image.trustRoots.operator)],
        ocsp: ocspStatusChecker({ urls: [ocspUrl], timeoutMs: 1000 }),
        maxAttempts: 1,
      });
    // First life: the package is delivered (the registration is now used), then the device dies at step 11.
    const deadResponder = `http://127.0.0.1:${await freePort()}`;
    await assert.rejects(
      agentWith(TrustedModule.fromFactoryImage(image), deadResponder).onboard(),
      isRetryable,
    );
    assert.equal((await t.operator.deviceState(t.system.urls.credentialing, dsimId)).state, 'delivered');
    // Second life: a new module instance reads its sealed storage and finishes.
    const module = TrustedModule.fromFactoryImage(image);
    const result = await agentWith(module, t.system.urls.ocsp).onboard();
    assert.equal(result.subscription.imsi, (await t.subscriber(dsimId))!.imsi);
    assert.equal((await t.operator.deviceState(t.system.urls.credentialing, dsimId)).state, 'completed');
    assert.equal(module.loadProgress(), undefined, 'the progress record is gone once done');
  });
  test('a registration server down during a batch: the summary says so, and a re-run pushes every stored registration', async () => {
    const url = t.system.urls.registration[1]!;
    const port = Number(new URL(url).port);
    // Three chunks, so a push is in flight while the next chunk is stored.
    const batch = Array.from({ length: 2500 }, (_, i) => ({
      dsimId: `DSIM${(0xbeef000000000000n + BigInt(i)).toString(16).toUpperCase()}`,
      registrationServer: url,
    }));
    await t.system.servers.registration[1]!.close();
    await rejectsWith(
      t.operator.registerDevices(t.system.urls.credentialing, batch),
      'SIMCRED_DEPENDENCY_UNAVAILABLE',
    );

    restarted.push(
      await startRole(
        { ...t.config, ports: { ...t.config.ports, registration: [t.config.ports.registration[0]!, port] } },
        'registration',
        2,
        t.logger,
      ),
    );
    const repaired = await t.operator.registerDevices(t.system.urls.credentialing, batch);
    assert.equal(repaired.registered, batch.length, 'every stored, unpushed registration is pushed');
    const again = await t.operator.registerDevices(t.system.urls.credentialing, batch);
    assert.deepEqual([again.registered, again.unchanged], [0, batch.length]);
  });
});
