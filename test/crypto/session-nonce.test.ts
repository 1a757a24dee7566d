import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import {
  computeSessionNonce,
  fromBase64url,
  lengthPrefixed,
  toBase64url,
  verifySessionNonce,
} from '../../src/crypto/index.js';

const registrationNonce = Buffer.alloc(32, 0x11);
const deviceNonce = Buffer.alloc(32, 0x22);
const dsimId = 'dsim-0001';

test('session nonce is deterministic and follows the documented byte encoding', () => {
  const a = computeSessionNonce({ registrationNonce, dsimId, deviceNonce });
  const b = computeSessionNonce({ registrationNonce, dsimId, deviceNonce });
  assert.equal(a.length, 32);
  assert.deepEqual(a, b);
  // Independent re-derivation of docs/crypto.md's encoding.
  const label = Buffer.from('simcred/v1/session');
  const id = Buffer.from(dsimId);
  const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
  const message = Buffer.concat([u16(label.length), label, u16(id.length), id, u16(32), deviceNonce]);
  assert.deepEqual(a, createHmac('sha256', registrationNonce).update(message).digest());
  // Frozen test vector (docs/crypto.md).
  assert.equal(a.toString('hex'), 'df7bce00386f3a9802f2f6b2288184a844c35cd43b65924ba6a1a43e59996f66');
});

test('session nonce differs per DSIM_ID, device nonce and registration nonce', () => {
  const base = computeSessionNonce({ registrationNonce, dsimId, deviceNonce });
  const others = [
    computeSessionNonce({ registrationNonce, dsimId: 'dsim-0002', deviceNonce }),
    computeSessionNonce({ registrationNonce, dsimId, deviceNonce: Buffer.alloc(32, 0x23) }),
    computeSessionNonce({ registrationNonce: Buffer.alloc(32, 0x12), dsimId, deviceNonce }),
  ];
  for (const other of others) assert.notDeepEqual(other, base);
});

test('the length-prefixed encoding is unambiguous', () => {
  assert.notDeepEqual(
    lengthPrefixed(Buffer.from('ab'), Buffer.from('c')),
    lengthPrefixed(Buffer.from('a'), Buffer.from('bc')),
  );
  // A DSIM_ID that "absorbs" the start of the device nonce yields another nonce.
  const nonce = Buffer.alloc(17, 0x41); // 'AAAA…'
  const a = computeSessionNonce({ registrationNonce, dsimId: 'dsimA', deviceNonce: nonce });
  const b = computeSessionNonce({
    registrationNonce,
    dsimId: 'dsim',
    deviceNonce: Buffer.concat([Buffer.from('A'), nonce]),
  });
  assert.notDeepEqual(a, b);
});

test('verifySessionNonce accepts the right value (bytes or base64url) and rejects the rest', () => {
  const good = computeSessionNonce({ registrationNonce, dsimId, deviceNonce });
  const input = { registrationNonce, dsimId, deviceNonce };
  assert.equal(verifySessionNonce({ ...input, sessionNonce: good }), true);
  assert.equal(verifySessionNonce({ ...input, sessionNonce: toBase64url(good) }), true);

  const flipped = Buffer.from(good);
  flipped[31]! ^= 1;
  assert.equal(verifySessionNonce({ ...input, sessionNonce: flipped }), false);
  assert.equal(verifySessionNonce({ ...input, sessionNonce: good.subarray(0, 31) }), false);
  assert.equal(verifySessionNonce({ ...input, sessionNonce: Buffer.concat([good, Buffer.alloc(1)]) }), false);
  assert.equal(verifySessionNonce({ ...input, sessionNonce: Buffer.alloc(0) }), false);
  assert.equal(verifySessionNonce({ ...input, sessionNonce: 'not base64url!' }), false);
  assert.equal(verifySessionNonce({ ...input, dsimId: 'dsim-0002', sessionNonce: good }), false);
  assert.equal(verifySessionNonce({ ...input, deviceNonce: Buffer.alloc(3), sessionNonce: good }), false);
  assert.equal(verifySessionNonce({ ...input, dsimId: '', sessionNonce: good }), false);
  assert.throws(
    () => verifySessionNonce({ ...input, registrationNonce: Buffer.alloc(16), sessionNonce: good }),
    { code: 'SIMCRED_BAD_REQUEST' },
  );
});

test('input checks: lengths, ill-formed DSIM_ID, strict base64url', () => {
  assert.throws(() => computeSessionNonce({ registrationNonce: Buffer.alloc(31), dsimId, deviceNonce }), {
    code: 'SIMCRED_BAD_REQUEST',
  });
  assert.throws(() => computeSessionNonce({ registrationNonce, dsimId, deviceNonce: Buffer.alloc(15) }), {
    code: 'SIMCRED_BAD_REQUEST',
  });
  assert.throws(() => computeSessionNonce({ registrationNonce, dsimId: 'x\ud800', deviceNonce }), {
    code: 'SIMCRED_BAD_REQUEST',
  });
  assert.deepEqual(fromBase64url('-_8'), Buffer.from([0xfb, 0xff]));
  assert.throws(() => fromBase64url('-_8='), { code: 'SIMCRED_BAD_REQUEST' });
  assert.throws(() => fromBase64url('+/8'), { code: 'SIMCRED_BAD_REQUEST' });
  assert.throws(() => fromBase64url('-_9'), { code: 'SIMCRED_BAD_REQUEST' }); // non-canonical trailing bits
});
