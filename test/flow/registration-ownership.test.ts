import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PeerClient } from '../../src/http/index.js';
import { readManifest } from '../../src/pki/index.js';
import { pushRegistrations, withdrawRegistrations } from '../../src/protocol/registration.js';
import { isSimcredError } from '../../src/errors/index.js';
import { tempDir } from '../helpers/cli.js';
import { untilWithin } from '../helpers/webhook-receiver.js';
import { startTestSystem, type TestSystem } from './harness.js';

/**
 * A TLS client certificate under the operator CA, made by OpenSSL (a peer no one here wrote), with
 * the subject given: another credentialing server's (another O) or the same server's renewed one
 * (same subject, a new key).
 */
function credentialingCertificate(pkiDir: string, dir: string, name: string, subject: string) {
  const manifest = readManifest(pkiDir);
  const caCert = join(pkiDir, manifest.operator.operatorCa.cert);
  const caKey = join(pkiDir, manifest.operator.operatorCa.key!);
  const key = join(dir, `${name}.key.pem`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt.pem`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(
    ext,
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth,serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n',
  );
  execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  execFileSync('openssl', ['req', '-new', '-key', key, '-subj', subject, '-out', csr]);
  execFileSync(
    'openssl',
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      caCert,
      '-CAkey',
      caKey,
      '-CAcreateserial',
      '-days',
      '2',
      '-sha256',
      '-extfile',
      ext,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  return new PeerClient({
    tls: {
      ca: [readFileSync(join(pkiDir, manifest.operator.root.cert), 'utf8')],
      cert: readFileSync(cert, 'utf8') + readFileSync(caCert, 'utf8'),
      key: readFileSync(key, 'utf8'),
    },
  });
}

describe('registration records belong to the credentialing server that pushed them', () => {
  let t: TestSystem;
  let certs: ReturnType<typeof tempDir>;
  let other: PeerClient;
  let renewed: PeerClient;
  before(async () => {
    t = await startTestSystem();
    certs = tempDir('simcred-owner-certs-');
    other = credentialingCertificate(
      t.config.pkiDir,
      certs.path,
      'other',
      '/O=another operator/CN=simcred-credentialing',
    );
    // The genuine server's subject (as `simcred pki init` names it), with a fresh key: a renewal.
    renewed = credentialingCertificate(
      t.config.pkiDir,
      certs.path,
      'renewed',
      '/O=simcred demo operator/CN=simcred-credentialing',
    );
  });
  after(async () => {
    await other?.close();
    await renewed?.close();
    await t?.close();
    certs?.cleanup();
  });

  test('a second credentialing server can neither replace nor withdraw it; the first still can', async () => {
    // Devices 0 and 2: both made for the first registration server (round-robin at manufacture).
    const [dsimId, , second, , squatted] = await t.manufacture(5);
    await t.register([dsimId!]);
    const registrationServer = t.system.urls.registration[0]!;
    const device = await t.device(dsimId!);
    const grant = await device.agent.accessGrant();
    const genuine = await device.agent.lookupRegistration(grant);
    assert.equal(genuine.credentialingUrl, t.system.urls.credentialing);

    // The other server pushes its own record for the device: a nonce it knows, a route to itself.
    const forged = {
      dsimId: dsimId!,
      registrationNonce: 'A'.repeat(43),
      credentialingUrl: 'https://127.0.0.1:1/',
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      generation: 9,
    };
    const pushed = await other.call(registrationServer, pushRegistrations, {
      body: { registrations: [forged] },
    });
    assert.deepEqual(pushed, { stored: 0, refused: [dsimId] });
    const withdrawn = await other.call(registrationServer, withdrawRegistrations, {
      body: { dsimIds: [dsimId!] },
    });
    assert.deepEqual(withdrawn, { withdrawn: 0, refused: [dsimId] });
    const retired = await other.call(registrationServer, withdrawRegistrations, {
      body: { dsimIds: [dsimId!], used: true },
    });
    assert.deepEqual(retired, { withdrawn: 0, refused: [dsimId] });

    // The device still gets the first server's registration, unchanged, and onboards through it.
    const after = await device.agent.lookupRegistration(await device.agent.accessGrant());
    assert.deepEqual(after, genuine);
    const onboarded = await device.agent.onboard();
    assert.match(onboarded.subscription.imsi, /^\d{15}$/);
    // Delivery made the first server retire its record (its own, so the registration server agreed).
    await untilWithin('the delivered device’s record retired', async () => {
      try {
        await device.agent.lookupRegistration(await device.agent.accessGrant());
        return false;
      } catch (err) {
        if (isSimcredError(err) && err.code === 'SIMCRED_REGISTRATION_USED') return true;
        throw err;
      }
    });

    // A record the other server pushed first is its own: the genuine server's renewed certificate
    // (same subject, same CA, new key) cannot take it, and the other server can withdraw it.
    const its = { ...forged, dsimId: second!, generation: 1 };
    assert.deepEqual(
      await other.call(registrationServer, pushRegistrations, { body: { registrations: [its] } }),
      { stored: 1 },
    );
    assert.deepEqual(
      await renewed.call(registrationServer, withdrawRegistrations, { body: { dsimIds: [second!] } }),
      { withdrawn: 0, refused: [second] },
    );
    assert.deepEqual(
      await other.call(registrationServer, withdrawRegistrations, { body: { dsimIds: [second!] } }),
      {
        withdrawn: 1,
      },
    );
    // The renewed certificate is the same owner as the one it renews: the genuine server's records stay its own.
    await t.register([second!]);
    const secondDevice = await t.device(second!);
    await untilWithin('the second device registered', async () => {
      try {
        const record = await secondDevice.agent.lookupRegistration();
        return record.credentialingUrl === t.system.urls.credentialing;
      } catch (err) {
        if (isSimcredError(err) && err.code === 'SIMCRED_REGISTRATION_UNKNOWN') return false;
        throw err;
      }
    });
    assert.deepEqual(
      await renewed.call(registrationServer, withdrawRegistrations, { body: { dsimIds: [second!] } }),
      { withdrawn: 1 },
    );

    // A record pushed first by the other server stays its own when the genuine one registers the
    // device: the genuine server is told, logs it and keeps the registration unpushed.
    assert.deepEqual(
      await other.call(registrationServer, pushRegistrations, {
        body: { registrations: [{ ...forged, dsimId: squatted! }] },
      }),
      { stored: 1 },
    );
    await t.register([squatted!]);
    await untilWithin('the genuine server told of the refusal', () =>
      t.logs().includes('the registration server keeps these devices as another credentialing server'),
    );
    const squattedDevice = await t.device(squatted!);
    assert.equal((await squattedDevice.agent.lookupRegistration()).credentialingUrl, forged.credentialingUrl);
  });
});
