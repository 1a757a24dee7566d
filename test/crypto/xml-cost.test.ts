// The XML package's public-key cost, counted (never timed), as cost.test.ts counts the JOSE package's:
// the same operations on each side (docs/crypto.md §9), so the crypto floor holds for either format.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { clearCertificateCaches } from '../../src/crypto/index.js';
import { inspectXmlPackage, openXmlPackage, sealXmlPackage } from '../../src/crypto/xml-package.js';
import {
  countByKind,
  countOperations,
  installOperationCounter,
  type OperationCounts,
} from '../helpers/crypto-operations.js';
import { buildFixture, CREDENTIALS, deviceRsaCertificatePem } from './fixture.js';

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
  // EC: ECDH-ES, an ephemeral key and one key agreement each side; RSA: rsa-oaep-mgf1p ("other").
  {
    name: 'EC P-256',
    dsimId: 'dsim-ec-0001',
    certificate: f.deviceEcCertPem,
    key: f.deviceEc.privateKey,
    seal: { keygen: 1, ecdh: 1 },
    open: { ecdh: 1 },
  },
  {
    name: 'RSA-2048',
    dsimId: 'dsim-rsa-0001',
    certificate: await deviceRsaCertificatePem(f),
    key: f.deviceRsa.privateKey,
    seal: { other: 1 },
    open: { other: 1 },
  },
] as const;

for (const device of devices) {
  test(`${device.name}: the XML package costs what the JOSE package costs`, async () => {
    const sealed = await count(() =>
      sealXmlPackage({
        credentials: CREDENTIALS,
        dsimId: device.dsimId,
        deviceNonce,
        devicePublicKey: device.certificate,
        operatorSigningKey: f.signer.key,
        operatorChainPem: [f.signer.pem, f.operatorCa.pem],
        ttlSeconds: 3600,
      }),
    );
    assert.deepEqual(sealed.counts, counted({ sign: 1, ...device.seal }));

    clearCertificateCaches();
    const cold = await count(() => inspectXmlPackage(sealed.result, { operatorRoots: [f.operatorRoot.pem] }));
    assert.deepEqual(cold.counts, counted({ verify: 3 }));
    const warm = await count(() => inspectXmlPackage(sealed.result, { operatorRoots: [f.operatorRoot.pem] }));
    assert.deepEqual(warm.counts, counted({ verify: 1 }));

    clearCertificateCaches();
    const opened = await count(() =>
      openXmlPackage(sealed.result, {
        operatorRoots: [f.operatorRoot.pem],
        dsimId: device.dsimId,
        deviceNonce,
        devicePrivateKey: device.key,
      }),
    );
    assert.deepEqual(opened.counts, counted({ verify: 3, ...device.open }));
    assert.deepEqual(opened.result.credentials, CREDENTIALS);
  });
}
