import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { PeerClient, clientTls, loadTlsIdentity, type RunningServer } from '../../src/http/index.js';
import { attachChallenge, issueCredentials } from '../../src/protocol/hss.js';
import { startRole } from '../../src/system/roles.js';
import { DeviceAgent } from '../../src/device/agent.js';
import { expectRefusal } from '../helpers/assert.js';
import { forgeDeviceCertificate } from './forgery.js';
import { startTestSystem, type TestSystem } from './harness.js';

/**
 * The HSS's refusals about keys (step 5 and step 12): a device key it cannot seal a package to, and
 * K/OPc at rest that its key-encryption key cannot open (the HSS restarted with another KEK).
 */
describe('refusals of the HSS about keys', () => {
  let t: TestSystem;
  let devices: string[];
  let next = 0;
  const fresh = () => devices[next++]!;
  let hssPort: number;
  /** Callers of the HSS of the moment, made anew with each HSS (see restartHss). */
  let credentialing: PeerClient;
  let device: PeerClient;
  /** HSS processes started by a test; closed with the system. */
  const restarted: RunningServer[] = [];

  before(async () => {
    t = await startTestSystem({ registration: { ttlSeconds: 3600 } });
    devices = await t.manufacture(6);
    await t.register(devices);
    hssPort = Number(new URL(t.system.urls.hss).port);
    newClients();
  });
  after(async () => {
    await credentialing.close();
    await device.close();
    for (const server of restarted) await server.close();
    await t.close();
  });

  function newClients(): void {
    credentialing = new PeerClient({ tls: clientTls(loadTlsIdentity(t.config.pkiDir, 'credentialing')) });
    device = new PeerClient({ tls: { ca: [t.system.pki.operator.root.pem] } });
  }

  /** Step 5 as the credentialing server asks it. */
  const issue = (dsimId: string, deviceCertificate: string) =>
    credentialing.send(
      `${t.system.urls.hss}${issueCredentials.path}`,
      'POST',
      JSON.stringify({
        dsimId,
        generation: 1,
        deviceCertificate,
        deviceNonce: randomBytes(32).toString('base64url'),
      }),
      'application/json',
    );

  /**
   * Replaces the HSS on its port by one reading the same store with the key-encryption key `kek` (its
   * own, from <dataDir>/hss/secrets.json, when omitted). The callers start afresh: a keep-alive
   * connection to the HSS that stopped would fail the next request as a retryable outage, which is not
   * what these tests are about.
   */
  async function restartHss(kek?: string): Promise<void> {
    await credentialing.close();
    await device.close();
    await (restarted.pop() ?? t.system.servers.hss).close();
    newClients();
    const config = { ...t.config, ports: { ...t.config.ports, hss: hssPort } };
    if (kek !== undefined) config.hss = { ...t.config.hss, kek };
    restarted.push(await startRole(config, 'hss', 1, t.logger));
  }

  test('a device key that is neither EC P-256 nor RSA ≥ 2048, rightly bound to its DSIM_ID: SIMCRED_CRYPTO_KEY_UNSUPPORTED, and no IMSI', async () => {
    const keys: [string, KeyObject][] = [
      ['EC P-384', generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey],
      ['Ed25519', generateKeyPairSync('ed25519').privateKey],
      ['RSA-1024', generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey],
    ];
    for (const [kind, key] of keys) {
      const dsimId = fresh();
      // Issued by the genuine device CA for this DSIM_ID: only the key's type is wrong.
      const forged = await forgeDeviceCertificate(t.config.pkiDir, dsimId, undefined, key);
      const answered = await issue(dsimId, forged.certificateChain[0]!);
      expectRefusal(answered, 'SIMCRED_CRYPTO_KEY_UNSUPPORTED', /unsupported key/);
      assert.equal(await t.subscriber(dsimId), undefined, `${kind}: no IMSI was allocated`);
    }
  });

  test('K/OPc sealed under another key-encryption key: SIMCRED_SECRET_DECRYPT_FAILED at attach and at issue; the right KEK opens them again', async () => {
    const dsimId = fresh();
    const { agent, module, image } = await t.device(dsimId);
    const onboarded = await agent.onboard();
    const imsi = onboarded.subscription.imsi;

    await restartHss(randomBytes(32).toString('hex'));
    const challenged = await device.send(
      `${t.system.urls.hss}${attachChallenge.path}`,
      'POST',
      JSON.stringify({ imsi }),
      'application/json',
    );
    expectRefusal(challenged, 'SIMCRED_SECRET_DECRYPT_FAILED');
    // A retry of step 5 with a new device nonce re-seals the stored K/OPc: they must open first.
    expectRefusal(await issue(dsimId, module.certificateChain[0]!), 'SIMCRED_SECRET_DECRYPT_FAILED');
    // Neither refusal names a secret: the answer says only that the sealed secret cannot be opened.
    assert.doesNotMatch(challenged.text, /[0-9a-f]{32}/i);
    const subscriber = await t.subscriber(dsimId);
    assert.equal(subscriber?.imsi, imsi, 'the subscriber is kept, not reallocated');

    // The HSS back with its own KEK (from <dataDir>/hss/secrets.json): the device attaches again.
    await restartHss();
    await DeviceAgent.fromFactoryImage(image, { module, client: device, maxAttempts: 1 }).attach();
    assert.equal((await t.subscriber(dsimId))?.state, 'active');
  });
});
