// A device key outside the process (a TPM's, src/device/tpm-module.ts) opens packages by supplying
// only Z: the KDF, unwrap and decryption after it must give jose's (and the XML path's) bytes exactly.
// Here Z comes from node:crypto, so the two paths meet on the same key; test/device/tpm-module.test.ts
// does the same with Z from a real TPM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffieHellman, type KeyObject } from 'node:crypto';
import { CompactEncrypt } from 'jose';
import {
  openAnyPackage,
  sealPackageAs,
  signReceipt,
  verifyReceipt,
  type ExternalDeviceKey,
} from '../../src/crypto/index.js';
import { decryptEcdhEsJwe } from '../../src/crypto/jwe-ecdh-es.js';
import { p256KeyOfPoint } from '../../src/crypto/xml-key-agreement.js';
import { signDeviceMessage } from '../../src/crypto/device-signature.js';
import { buildFixture, CREDENTIALS } from './fixture.js';

const f = await buildFixture();
const nonce = Buffer.alloc(32, 0x5a);

/** An "external" key whose operations are node:crypto's on a key this test holds. */
function externalKey(privateKey: KeyObject, calls = { z: 0 }): ExternalDeviceKey {
  return {
    kind: 'ec-p256',
    signEs256: async (message) => signDeviceMessage(privateKey, Buffer.from(message)).signature,
    ecdhZ: async (point) => {
      calls.z += 1;
      return diffieHellman({ privateKey, publicKey: p256KeyOfPoint(point) });
    },
  };
}

for (const format of ['jose', 'xml'] as const) {
  test(`${format}: the Z-only path opens what the KeyObject path opens, and refuses what it refuses`, async () => {
    const pkg = await sealPackageAs(format, {
      credentials: CREDENTIALS,
      dsimId: 'dsim-z',
      deviceNonce: nonce,
      devicePublicKey: f.deviceEc.publicKey,
      operatorSigningKey: f.signer.key,
      operatorChainPem: [f.signer.pem, f.operatorCa.pem],
      ttlSeconds: 3600,
    });
    const options = { operatorRoots: [f.operatorRoot.pem], dsimId: 'dsim-z', deviceNonce: nonce };
    const calls = { z: 0 };
    const software = await openAnyPackage(pkg, { ...options, devicePrivateKey: f.deviceEc.privateKey });
    const external = await openAnyPackage(pkg, {
      ...options,
      devicePrivateKey: externalKey(f.deviceEc.privateKey, calls),
    });
    assert.deepEqual(external.credentials, CREDENTIALS);
    assert.deepEqual(external, software);
    assert.equal(calls.z, 1, 'one key agreement, by the external key');
    // Another device's key: the same refusal as in software.
    await assert.rejects(
      openAnyPackage(pkg, { ...options, devicePrivateKey: externalKey(f.deviceEc2.privateKey) }),
      { code: 'SIMCRED_PACKAGE_DECRYPT_FAILED' },
    );
  });
}

test('decryptEcdhEsJwe: jose JWEs with and without apu/apv; tampering and unknown headers refused', async () => {
  const key = externalKey(f.deviceEc.privateKey);
  const plain = Buffer.from('{"imsi":"001010000000001"}');
  const plainJwe = await new CompactEncrypt(plain)
    .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', cty: 'x' })
    .encrypt(f.deviceEc.publicKey);
  assert.deepEqual(await decryptEcdhEsJwe(plainJwe, key), plain);
  const withParties = await new CompactEncrypt(plain)
    .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM' })
    .setKeyManagementParameters({ apu: Buffer.from('Alice'), apv: Buffer.from('Bob') })
    .encrypt(f.deviceEc.publicKey);
  assert.deepEqual(await decryptEcdhEsJwe(withParties, key), plain);

  const parts = plainJwe.split('.');
  const flip = (i: number) => {
    const bytes = Buffer.from(parts[i]!, 'base64url');
    bytes[0]! ^= 1;
    return parts.map((p, j) => (j === i ? bytes.toString('base64url') : p)).join('.');
  };
  for (const i of [1, 2, 3, 4]) await assert.rejects(decryptEcdhEsJwe(flip(i), key));
  // A parameter the path does not implement is refused before any key agreement.
  const unknown = await new CompactEncrypt(plain)
    .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', 'x-ext': 1 })
    .encrypt(f.deviceEc.publicKey);
  await assert.rejects(decryptEcdhEsJwe(unknown, key), /header x-ext/);
  const direct = await new CompactEncrypt(plain)
    .setProtectedHeader({ alg: 'ECDH-ES', enc: 'A256GCM' })
    .encrypt(f.deviceEc.publicKey);
  await assert.rejects(decryptEcdhEsJwe(direct, key), /algorithm/);
});

test('a receipt signed by an external key verifies as a software one does', async () => {
  const claims = { dsimId: 'DSIM0123456789ABCDEF', packageId: 'p-1', deviceNonce: nonce };
  const receipt = await signReceipt(externalKey(f.deviceEc.privateKey), claims);
  const verified = await verifyReceipt(receipt, f.deviceEc.publicKey, claims);
  assert.equal(verified.packageId, 'p-1');
  await assert.rejects(verifyReceipt(receipt, f.deviceEc2.publicKey, claims), {
    code: 'SIMCRED_RECEIPT_INVALID',
  });
});
