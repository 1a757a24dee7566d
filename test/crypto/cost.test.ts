// The public-key cost of the package and of proof of possession, counted (never timed): each operation
// must do what it claims, with exactly the public-key operations the crypto floor accounts for
// (docs/benchmarks.md). The time each takes is measured by `simcred bench e2e`, whose crypto floor times
// every one of them on the demo PKI's keys; a test asserts nothing about time.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  clearCertificateCaches,
  inspectPackage,
  openPackage,
  sealPackage,
  signProofOfPossession,
  verifyProofOfPossession,
} from '../../src/crypto/index.js';
import {
  countByKind,
  countOperations,
  installOperationCounter,
  type OperationCounts,
} from '../helpers/crypto-operations.js';
import { buildFixture, CREDENTIALS } from './fixture.js';

const f = await buildFixture();
const deviceNonce = Buffer.alloc(32, 0xd1);
const none: OperationCounts = { sign: 0, verify: 0, keygen: 0, ecdh: 0, other: 0 };
const counted = (counts: Partial<OperationCounts>): OperationCounts => ({ ...none, ...counts });

before(() => installOperationCounter());

async function count<T>(work: () => Promise<T> | T): Promise<{ result: T; counts: OperationCounts }> {
  const { result, operations } = await countOperations(async () => work());
  return { result, counts: countByKind(operations) };
}

const devices = [
  // EC: ECDH-ES+A256KW, an ephemeral key and one key agreement each side; RSA: RSA-OAEP-256 ("other").
  { name: 'EC P-256', keys: f.deviceEc, seal: { keygen: 1, ecdh: 1 }, open: { ecdh: 1 } },
  { name: 'RSA-2048', keys: f.deviceRsa, seal: { other: 1 }, open: { other: 1 } },
] as const;

function sealFor(device: (typeof devices)[number]['keys']) {
  return sealPackage({
    credentials: CREDENTIALS,
    dsimId: 'dsim-cost',
    deviceNonce,
    devicePublicKey: device.publicKey,
    operatorSigningKey: f.signer.key,
    operatorChainPem: [f.signer.pem, f.operatorCa.pem],
    ttlSeconds: 3600,
  });
}

for (const device of devices) {
  test(`${device.name}: the package costs what the floor counts, and only the device can read it`, async () => {
    // HSS (step 5): sealed to the device key, signed with the operator key.
    const sealed = await count(() => sealFor(device.keys));
    assert.deepEqual(sealed.counts, counted({ sign: 1, ...device.seal }));
    const jws = sealed.result;

    // Credentialing server (step 5): the signature, and the x5c links signer → CA → root until memoised.
    clearCertificateCaches();
    const cold = await count(() => inspectPackage(jws, { operatorRoots: [f.operatorRoot.pem] }));
    assert.deepEqual(cold.counts, counted({ verify: 3 }));
    assert.equal(cold.result.dsimId, 'dsim-cost');
    const warm = await count(() => inspectPackage(jws, { operatorRoots: [f.operatorRoot.pem] }));
    assert.deepEqual(warm.counts, counted({ verify: 1 }));

    // Device (step 11), cold as a device opens one package in its life: it reads the credentials.
    clearCertificateCaches();
    const opened = await count(() =>
      openPackage(jws, {
        operatorRoots: [f.operatorRoot.pem],
        dsimId: 'dsim-cost',
        deviceNonce,
        devicePrivateKey: device.keys.privateKey,
      }),
    );
    assert.deepEqual(opened.counts, counted({ verify: 3, ...device.open }));
    for (const [field, value] of Object.entries(CREDENTIALS)) {
      assert.equal(opened.result.credentials[field as keyof typeof CREDENTIALS], value, field);
    }

    // Another device's key cannot open it.
    const other = device.keys === f.deviceEc ? f.deviceRsa : f.deviceEc;
    await assert.rejects(
      openPackage(jws, {
        operatorRoots: [f.operatorRoot.pem],
        dsimId: 'dsim-cost',
        deviceNonce,
        devicePrivateKey: other.privateKey,
      }),
      { code: 'SIMCRED_PACKAGE_DECRYPT_FAILED' },
    );
  });

  test(`${device.name}: proof of possession, one signature and one verification, bound to its input`, async () => {
    const input = { challenge: Buffer.alloc(32, 1), sessionNonce: Buffer.alloc(32, 2), dsimId: 'dsim-cost' };
    const signed = await count(() => signProofOfPossession(device.keys.privateKey, input));
    assert.deepEqual(signed.counts, counted({ sign: 1 }));
    const verified = await count(() => verifyProofOfPossession(device.keys.publicKey, input, signed.result));
    assert.deepEqual(verified.counts, counted({ verify: 1 }));
    assert.equal(verified.result, true);
    assert.equal(
      verifyProofOfPossession(device.keys.publicKey, { ...input, dsimId: 'dsim-other' }, signed.result),
      false,
    );
    assert.equal(
      verifyProofOfPossession(
        device.keys.publicKey,
        { ...input, challenge: Buffer.alloc(32, 3) },
        signed.result,
      ),
      false,
    );
  });
}
