// Enrollment groups (issue 14): the operator enrols the manufacturer's device CA, with a DSIM_ID
// pattern and a cap, instead of listing devices. 1,000 devices of the group onboard without being
// listed, each with its own registration nonce; a device outside the pattern, one over the cap and
// one whose certificate comes from another (trusted) CA are refused with their codes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import { runFleet } from '../../src/device/fleet.js';
import { CredentialingStore } from '../../src/credentialing/store.js';
import { HssStore } from '../../src/hss/store.js';
import {
  MANUFACTURER_ORG,
  OID,
  buildName,
  caExtensions,
  issueCertificate,
  issuerFromCertificate,
  parseSpki,
  randomSerial,
  signTbs,
  validityFrom,
} from '../../src/pki/certificates.js';
import { deviceTbs, prepareDeviceIssuer } from '../../src/pki/device-certificates.js';
import { loadPrivateKey, readManifest } from '../../src/pki/index.js';
import { lookup, lookupChallenge } from '../../src/protocol/registration.js';
import { admitGroupDevice } from '../../src/protocol/credentialing.js';
import { PeerClient, clientTls, loadTlsIdentity } from '../../src/http/index.js';
import { roleDatabase } from '../../src/system/wiring.js';
import { startTestSystem, type TestSystem } from './harness.js';
import { rejectsWith } from '../helpers/assert.js';

const FLEET = 1000;

describe('enrollment groups: devices of an enrolled CA onboard without being listed', () => {
  let t: TestSystem;
  let inside: string[];
  let outside: string[];
  let deviceCaPem: string;

  before(async () => {
    t = await startTestSystem({ registration: { ttlSeconds: 3600 } });
    // DSIM_IDs are random: those whose first hex digit is F fall outside the pattern DSIM[0-E]*.
    const made = await t.manufacture(FLEET + 120);
    inside = made.filter((id) => id[4] !== 'F');
    outside = made.filter((id) => id[4] === 'F');
    assert.ok(inside.length > FLEET + 2 && outside.length > 2, 'enough devices on each side of the pattern');
    const manifest = readManifest(t.config.pkiDir);
    deviceCaPem = readFileSync(join(t.config.pkiDir, manifest.manufacturer.deviceCa.cert), 'utf8');
  });
  after(async () => {
    await t?.close();
  });

  const credentialingUrl = () => t.system.urls.credentialing;

  test(`${FLEET} devices of the group onboard and attach; one over the cap and one outside the pattern are refused`, async () => {
    const group = await t.operator.createGroup(credentialingUrl(), {
      name: 'meters',
      caCertificate: deviceCaPem,
      dsimPattern: 'DSIM[0-E]*',
      cap: FLEET,
      registrationServers: t.system.urls.registration,
      reprovision: 'device',
    });
    assert.equal(group.admitted, 0);
    assert.match(group.caSubject, /device CA/);
    // The group's order carries the reprovision policy it was created with.
    assert.equal((await t.operator.showOrder(credentialingUrl(), group.orderId)).reprovisionPolicy, 'device');

    const fleet = inside.slice(0, FLEET);
    const report = await runFleet({ pkiDir: t.config.pkiDir, dsimIds: fleet, concurrency: 16 });
    assert.deepEqual(
      report.outcomes.filter((o) => !o.ok).map((o) => o.error),
      [],
    );
    assert.equal(new Set(report.outcomes.map((o) => o.imsi)).size, FLEET, 'distinct IMSIs');

    const listed = (await t.operator.listGroups(credentialingUrl())).groups.find((g) => g.id === group.id)!;
    assert.equal(listed.admitted, FLEET);
    assert.match(group.orderId, /^ord_/);
    const hss = await HssStore.open(roleDatabase(t.config, 'hss'));
    const credentialing = await CredentialingStore.open(roleDatabase(t.config, 'credentialing'));
    try {
      assert.equal(await hss.countActiveFor(fleet), FLEET, 'every admitted device attached');
      // Each was admitted by its group, with a registration nonce of its own.
      const nonces = new Set<string>();
      for (const dsimId of fleet.slice(0, 50)) {
        const registration = (await credentialing.find(dsimId))!;
        assert.equal(registration.state, 'completed');
        assert.equal(registration.orderId, group.orderId, 'the group is its devices’ order');
        nonces.add(registration.registrationNonce);
        const trail = await credentialing.auditTrail(dsimId);
        assert.ok(trail.some((e) => e.event === 'admitted' && e.detail === group.id));
      }
      assert.equal(nonces.size, 50, 'a registration nonce per device');
    } finally {
      await hss.close();
      await credentialing.close();
    }

    const overCap = await t.device(inside[FLEET]!);
    await rejectsWith(overCap.agent.lookupRegistration(), 'SIMCRED_GROUP_CAP_REACHED');
    const outsider = await t.device(outside[0]!);
    await rejectsWith(outsider.agent.lookupRegistration(), 'SIMCRED_GROUP_PATTERN_MISMATCH');
    assert.equal(await t.subscriber(inside[FLEET]!), undefined);
    assert.equal(await t.subscriber(outside[0]!), undefined);
  });

  test('a device whose certificate comes from another CA under the same manufacturer root is not admitted', async () => {
    const dsimId = outside[1]!;
    const device = await t.device(dsimId);
    // A second device CA, issued by the trusted manufacturer root, certifies this device's own key.
    const pkiDir = t.config.pkiDir;
    const manifest = readManifest(pkiDir);
    const root = new X509Certificate(readFileSync(join(pkiDir, manifest.manufacturer.root.cert)));
    const rootIssuer = issuerFromCertificate(
      root.raw,
      loadPrivateKey(join(pkiDir, manifest.manufacturer.root.key)),
    );
    const otherCaKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const validity = validityFrom(new Date(), 1);
    const otherCaDer = issueCertificate(
      {
        serial: randomSerial(),
        subject: buildName([
          [OID.organization, MANUFACTURER_ORG],
          [OID.commonName, 'another device CA'],
        ]),
        spki: parseSpki(createPublicKey(otherCaKey).export({ type: 'spki', format: 'der' })),
        ...validity,
        extensions: caExtensions(0),
      },
      rootIssuer,
    );
    const otherIssuer = issuerFromCertificate(otherCaDer, otherCaKey);
    const deviceIssuer = prepareDeviceIssuer({
      caKeyPem: otherCaKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      issuerNameDer: new Uint8Array(AsnConvert.serialize(otherIssuer.name)),
      issuerKeyId: otherIssuer.keyId,
      notBefore: validity.notBefore.toISOString(),
      notAfter: validity.notAfter.toISOString(),
      keyType: 'ec',
    });
    const serial = randomBytes(16);
    serial[0] = (serial[0]! & 0x3f) | 0x40;
    const spki = createPublicKey(device.image.privateKey).export({ type: 'spki', format: 'der' });
    const leafDer = signTbs(deviceTbs(deviceIssuer, dsimId, serial, spki), otherCaKey);

    // The device's CA is enrolled for the pattern DSIM[0-E]*; enrol it for this device too, so only
    // the CA differs between the two lookups below.
    await t.operator.createGroup(credentialingUrl(), {
      name: 'stragglers',
      caCertificate: deviceCaPem,
      dsimPattern: dsimId,
      registrationServers: t.system.urls.registration,
    });
    const server = device.image.image.registrationServer;
    const lookupWith = async (certificateChain: string[]) => {
      const grant = await device.agent.accessGrant();
      const { challenge } = await t.deviceClient.call(server, lookupChallenge, { body: { dsimId } });
      const signed = device.module.signLookup(Buffer.from(challenge, 'base64url'));
      return t.deviceClient.call(server, lookup, {
        body: { dsimId, grant, challenge, certificateChain, ...signed },
      });
    };
    // Another CA: trusted (the chain verifies) but enrolled by no group, so no registration.
    await rejectsWith(
      lookupWith([leafDer.toString('base64'), Buffer.from(otherCaDer).toString('base64')]),
      'SIMCRED_REGISTRATION_UNKNOWN',
    );
    // Asked directly, as a registration server would, the credentialing server checks the CA itself.
    const registrationPeer = new PeerClient({ tls: clientTls(loadTlsIdentity(pkiDir, 'registration')) });
    try {
      const meters = (await t.operator.listGroups(credentialingUrl())).groups.find(
        (g) => g.name === 'meters',
      )!;
      await rejectsWith(
        registrationPeer.call(credentialingUrl(), admitGroupDevice, {
          params: { groupId: meters.id },
          body: {
            dsimId: inside[FLEET + 2]!,
            certificateChain: (await t.device(inside[FLEET + 2]!)).module.certificateChain
              .slice(0, 1)
              .concat(Buffer.from(otherCaDer).toString('base64')),
            registrationServer: t.system.urls.registration[0]!,
          },
        }),
        'SIMCRED_CERT_UNTRUSTED',
      );
      const otherLeaf = signTbs(deviceTbs(deviceIssuer, inside[FLEET + 2]!, serial, spki), otherCaKey);
      await rejectsWith(
        registrationPeer.call(credentialingUrl(), admitGroupDevice, {
          params: { groupId: meters.id },
          body: {
            dsimId: inside[FLEET + 2]!,
            certificateChain: [otherLeaf.toString('base64'), Buffer.from(otherCaDer).toString('base64')],
            registrationServer: t.system.urls.registration[0]!,
          },
        }),
        'SIMCRED_GROUP_CA_MISMATCH',
      );
    } finally {
      await registrationPeer.close();
    }
    // The same device and key under its own CA: admitted.
    const admitted = await lookupWith(device.module.certificateChain);
    assert.equal(admitted.credentialingUrl, credentialingUrl());
  });

  test('a revoked device is not brought back by its group; a closed group admits no more', async () => {
    const [first, second] = [outside[2]!, outside[3]!];
    const group = await t.operator.createGroup(credentialingUrl(), {
      name: 'late',
      caCertificate: deviceCaPem,
      dsimPattern: 'DSIMF*',
      registrationServers: t.system.urls.registration,
    });
    const device = await t.device(first);
    await device.agent.lookupRegistration();
    await t.operator.revoke(credentialingUrl(), first, 'stolen');
    // The revocation withdraws its record from the registration server (a peer action, retried).
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        await device.agent.lookupRegistration();
      } catch (err) {
        if ((err as { code?: string }).code === 'SIMCRED_REGISTRATION_REVOKED') break;
        throw err;
      }
      assert.ok(Date.now() < deadline, 'the revoked device was still looked up');
      await new Promise((r) => setTimeout(r, 200));
    }
    const closed = await t.operator.closeGroup(credentialingUrl(), group.id);
    assert.equal(closed.active, false);
    // Its CA's other groups do not take this DSIM_ID: refused as outside every pattern.
    await rejectsWith((await t.device(second)).agent.lookupRegistration(), 'SIMCRED_GROUP_PATTERN_MISMATCH');
    await rejectsWith(
      t.operator.closeGroup(credentialingUrl(), 'grp_0000000000000000'),
      'SIMCRED_GROUP_UNKNOWN',
    );
  });

  test('a group needs a CA under a manufacturer root', async () => {
    const operatorCa = readFileSync(
      join(t.config.pkiDir, readManifest(t.config.pkiDir).operator.operatorCa.cert),
      'utf8',
    );
    await rejectsWith(
      t.operator.createGroup(credentialingUrl(), {
        name: 'wrong',
        caCertificate: operatorCa,
        registrationServers: t.system.urls.registration,
      }),
      'SIMCRED_CERT_UNTRUSTED',
    );
    const leaf = (await t.device(inside[FLEET + 1]!)).module.certificateChain[0]!;
    await rejectsWith(
      t.operator.createGroup(credentialingUrl(), {
        name: 'leaf',
        caCertificate: leaf,
        registrationServers: t.system.urls.registration,
      }),
      'SIMCRED_CERT_INVALID',
    );
  });
});
