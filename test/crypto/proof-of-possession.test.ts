import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import {
  proofOfPossessionMessage,
  signProofOfPossession,
  signReceipt,
  toBase64url,
  verifyProofOfPossession,
  verifyReceipt,
} from '../../src/crypto/index.js';
import { buildFixture } from './fixture.js';

const fixture = await buildFixture();
const input = {
  challenge: Buffer.alloc(32, 0xc1),
  sessionNonce: Buffer.alloc(32, 0x5e),
  dsimId: 'dsim-ec-0001',
};

test('the signed message is the documented length-prefixed encoding', () => {
  const m = proofOfPossessionMessage(input);
  assert.equal(
    m.toString('hex'),
    '000e' +
      Buffer.from('simcred/v1/pop').toString('hex') +
      '0020' +
      'c1'.repeat(32) +
      '0020' +
      '5e'.repeat(32) +
      '000c' +
      Buffer.from('dsim-ec-0001').toString('hex'),
  );
});

for (const [name, pair, algs] of [
  ['EC P-256', fixture.deviceEc, ['ES256']],
  ['RSA-2048', fixture.deviceRsa, ['PS256', 'RS256']],
] as const) {
  test(`${name}: sign and verify; wrong key, altered challenge, other DSIM_ID rejected`, () => {
    for (const alg of algs) {
      const proof = signProofOfPossession(pair.privateKey, input, alg);
      assert.equal(proof.alg, alg);
      if (alg === 'ES256') assert.equal(proof.signature.length, 64); // IEEE P1363 r‖s
      assert.equal(verifyProofOfPossession(pair.publicKey, input, proof), true);
      assert.equal(
        verifyProofOfPossession(pair.publicKey, input, { alg, signature: toBase64url(proof.signature) }),
        true,
      );
      const otherKey = pair === fixture.deviceEc ? fixture.deviceEc2.publicKey : fixture.deviceEc.publicKey;
      assert.equal(verifyProofOfPossession(otherKey, input, proof), false);
      const challenge = Buffer.from(input.challenge);
      challenge[0]! ^= 1;
      assert.equal(verifyProofOfPossession(pair.publicKey, { ...input, challenge }, proof), false);
      assert.equal(
        verifyProofOfPossession(pair.publicKey, { ...input, dsimId: 'dsim-ec-0002' }, proof),
        false,
      );
      const sessionNonce = Buffer.from(input.sessionNonce);
      sessionNonce[5]! ^= 1;
      assert.equal(verifyProofOfPossession(pair.publicKey, { ...input, sessionNonce }, proof), false);
    }
    assert.equal(signProofOfPossession(pair.privateKey, input).alg, algs[0]);
  });
}

test('algorithm confusion and malformed proofs are rejected without throwing', () => {
  const proof = signProofOfPossession(fixture.deviceRsa.privateKey, input, 'PS256');
  assert.equal(
    verifyProofOfPossession(fixture.deviceRsa.publicKey, input, { ...proof, alg: 'RS256' }),
    false,
  );
  assert.equal(
    verifyProofOfPossession(fixture.deviceRsa.publicKey, input, { ...proof, alg: 'ES256' }),
    false,
  );
  assert.equal(verifyProofOfPossession(fixture.deviceRsa.publicKey, input, { ...proof, alg: 'none' }), false);
  assert.equal(
    verifyProofOfPossession(fixture.deviceRsa.publicKey, input, { alg: 'PS256', signature: '***' }),
    false,
  );
  assert.equal(
    verifyProofOfPossession(fixture.deviceRsa.publicKey, { ...input, challenge: Buffer.alloc(1) }, proof),
    false,
  );
  const ec = signProofOfPossession(fixture.deviceEc.privateKey, input);
  const der = Buffer.concat([ec.signature, Buffer.alloc(2)]);
  assert.equal(
    verifyProofOfPossession(fixture.deviceEc.publicKey, input, { alg: 'ES256', signature: der }),
    false,
  );
  assert.throws(() => signProofOfPossession(fixture.deviceEc.privateKey, input, 'PS256'), {
    code: 'SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED',
  });
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  assert.throws(() => signProofOfPossession(p384.privateKey, input), {
    code: 'SIMCRED_CRYPTO_KEY_UNSUPPORTED',
  });
  assert.throws(
    () => signProofOfPossession(fixture.deviceEc.privateKey, { ...input, challenge: Buffer.alloc(8) }),
    {
      code: 'SIMCRED_BAD_REQUEST',
    },
  );
});

test('verification with the device certificate (PEM) as the key', () => {
  const proof = signProofOfPossession(fixture.deviceEc.privateKey, input);
  assert.equal(verifyProofOfPossession(fixture.deviceEcCertPem, input, proof), true);
  assert.equal(verifyProofOfPossession(fixture.deviceEcCertPem, { ...input, dsimId: 'x' }, proof), false);
});

test('signed receipt (step 12): EC and RSA; other package, session, device or key rejected', async () => {
  const deviceNonce = Buffer.alloc(32, 7);
  for (const pair of [fixture.deviceEc, fixture.deviceRsa]) {
    const expected = { dsimId: 'dsim-ec-0001', packageId: 'pkg-1', deviceNonce };
    const receipt = await signReceipt(pair.privateKey, expected);
    const claims = await verifyReceipt(receipt, pair.publicKey, expected);
    assert.equal(claims.status, 'installed');
    assert.equal(claims.packageId, 'pkg-1');
    for (const wrong of [
      { ...expected, packageId: 'pkg-2' },
      { ...expected, dsimId: 'dsim-ec-0002' },
      { ...expected, deviceNonce: Buffer.alloc(32, 8) },
    ]) {
      await assert.rejects(verifyReceipt(receipt, pair.publicKey, wrong), {
        code: 'SIMCRED_RECEIPT_INVALID',
      });
    }
    await assert.rejects(verifyReceipt(receipt, fixture.deviceEc2.publicKey, expected), {
      code: /SIMCRED_RECEIPT_INVALID/,
    });
    const [h, p, s] = receipt.split('.');
    const tampered = `${h}.${Buffer.from(Buffer.from(p!, 'base64url').toString().replace('pkg-1', 'pkg-9')).toString('base64url')}.${s}`;
    await assert.rejects(verifyReceipt(tampered, pair.publicKey, { ...expected, packageId: 'pkg-9' }), {
      code: 'SIMCRED_RECEIPT_INVALID',
    });
  }
});
