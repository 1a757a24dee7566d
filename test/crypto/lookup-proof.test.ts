// The step-2 lookup proof input (src/crypto/lookup-proof.ts) against docs/crypto.md's byte layout and
// its frozen vector (test/crypto/vectors/lookup-proof.json).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, verify, type JsonWebKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { signDeviceMessage, verifyDeviceMessage } from '../../src/crypto/device-signature.js';
import { LOOKUP_PROOF_LABEL, lookupProofMessage } from '../../src/crypto/lookup-proof.js';
import { proofOfPossessionMessage } from '../../src/crypto/index.js';
import { SimcredError } from '../../src/errors/index.js';

interface Vector {
  dsimId: string;
  challengeHex: string;
  messageHex: string;
  privateKeyJwk: JsonWebKey;
  alg: 'ES256';
  signature: string;
}

const vector = JSON.parse(readFileSync('test/crypto/vectors/lookup-proof.json', 'utf8')) as Vector;
const challenge = Buffer.from(vector.challengeHex, 'hex');
const privateKey = createPrivateKey({ key: vector.privateKeyJwk, format: 'jwk' });
const { d: _d, ...publicJwk } = vector.privateKeyJwk;
const publicKey = createPublicKey({ key: publicJwk, format: 'jwk' });

test('the message is the documented layout, byte for byte (frozen vector)', () => {
  const message = lookupProofMessage({ challenge, dsimId: vector.dsimId });
  assert.equal(message.toString('hex'), vector.messageHex);
  // Independent re-derivation of docs/crypto.md: u16(30) ‖ label ‖ u16(40) ‖ challenge ‖ u16(20) ‖ DSIM_ID.
  const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
  const label = Buffer.from('simcred/v1/registration-lookup', 'ascii');
  const id = Buffer.from(vector.dsimId, 'utf8');
  assert.equal(LOOKUP_PROOF_LABEL, label.toString());
  assert.deepEqual(
    message,
    Buffer.concat([u16(label.length), label, u16(challenge.length), challenge, u16(id.length), id]),
  );
  assert.equal(message.length, 96);
});

test("the vector's signature verifies (ECDSA P-256, SHA-256, r ‖ s), and a fresh one does too", () => {
  const message = Buffer.from(vector.messageHex, 'hex');
  const signature = Buffer.from(vector.signature, 'base64url');
  assert.equal(signature.length, 64);
  // Straight node:crypto, not simcred's wrapper: what an independent verifier does.
  assert.ok(verify('sha256', message, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature));
  assert.ok(verifyDeviceMessage(publicKey, message, { alg: vector.alg, signature: vector.signature }));
  const fresh = signDeviceMessage(privateKey, lookupProofMessage({ challenge, dsimId: vector.dsimId }));
  assert.equal(fresh.alg, 'ES256');
  assert.ok(verifyDeviceMessage(publicKey, message, fresh));
});

test('the signature is bound to the challenge, the DSIM_ID and the construction', () => {
  const proof = { alg: vector.alg, signature: vector.signature };
  const otherChallenge = Buffer.from(challenge);
  otherChallenge[39] = otherChallenge[39]! ^ 1;
  assert.equal(
    verifyDeviceMessage(
      publicKey,
      lookupProofMessage({ challenge: otherChallenge, dsimId: vector.dsimId }),
      proof,
    ),
    false,
  );
  assert.equal(
    verifyDeviceMessage(publicKey, lookupProofMessage({ challenge, dsimId: 'DSIM0123456789ABCDEE' }), proof),
    false,
  );
  // Its own label: never the step-4 proof input, even over the same challenge and DSIM_ID.
  const pop = proofOfPossessionMessage({ challenge, sessionNonce: Buffer.alloc(32), dsimId: vector.dsimId });
  assert.notEqual(pop.subarray(0, 32).toString('hex'), vector.messageHex.slice(0, 64));
  assert.equal(verifyDeviceMessage(publicKey, pop, proof), false);
});

test('a challenge outside 16–128 bytes is refused', () => {
  for (const length of [15, 129]) {
    assert.throws(
      () => lookupProofMessage({ challenge: Buffer.alloc(length), dsimId: vector.dsimId }),
      (err: unknown) => err instanceof SimcredError && err.code === 'SIMCRED_BAD_REQUEST',
    );
  }
});
