import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { kekId, openSecret, parseKek, sealSecret } from '../../src/crypto/index.js';

const kek = randomBytes(32);
const k = Buffer.from('465b5ce8b199b49faa5f0a2ee238a6bc', 'hex');
const context = 'imsi:001010123456789:k';

test('round-trip, fresh IV each time, documented format', () => {
  const a = sealSecret(k, { kek, context });
  const b = sealSecret(k, { kek, context });
  assert.notEqual(a, b);
  assert.match(a, /^sb1\.[0-9a-f]{8}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{43}$/);
  assert.equal(a.split('.')[1], kekId(kek));
  assert.ok(!a.includes(k.toString('hex')));
  assert.deepEqual(openSecret(a, { kek, context }), k);
  assert.deepEqual(openSecret(b, { kek: [randomBytes(32), kek], context }), k);
});

test('other AAD, flipped byte, wrong KEK, malformed: SIMCRED_SECRET_DECRYPT_FAILED', () => {
  const sealed = sealSecret(k, { kek, context });
  const code = { code: 'SIMCRED_SECRET_DECRYPT_FAILED' };
  assert.throws(() => openSecret(sealed, { kek, context: 'imsi:001010123456780:k' }), code);
  assert.throws(() => openSecret(sealed, { kek, context: 'imsi:001010123456789:opc' }), code);
  const [v, id, iv, body] = sealed.split('.') as [string, string, string, string];
  for (let i = 0; i < Buffer.from(body, 'base64url').length; i += 7) {
    const bytes = Buffer.from(body, 'base64url');
    bytes[i]! ^= 0x01;
    assert.throws(
      () => openSecret(`${v}.${id}.${iv}.${bytes.toString('base64url')}`, { kek, context }),
      code,
    );
  }
  const ivBytes = Buffer.from(iv, 'base64url');
  ivBytes[0]! ^= 0x80;
  assert.throws(
    () => openSecret(`${v}.${id}.${ivBytes.toString('base64url')}.${body}`, { kek, context }),
    code,
  );
  assert.throws(() => openSecret(sealed, { kek: randomBytes(32), context }), code);
  // A wrong KEK that claims the right id (forged header) still fails authentication.
  const other = randomBytes(32);
  assert.throws(() => openSecret(`${v}.${kekId(other)}.${iv}.${body}`, { kek: other, context }), code);
  for (const bad of ['', 'sb1', `sb2.${id}.${iv}.${body}`, `${v}.${id}.${iv}`, `${v}.${id}.!!.${body}`]) {
    assert.throws(() => openSecret(bad, { kek, context }), code);
  }
});

test('parseKek: hex, base64, base64url, prefixes; clear error otherwise, never echoing the value', () => {
  assert.deepEqual(parseKek(kek.toString('hex')), kek);
  assert.deepEqual(parseKek(`hex:${kek.toString('hex').toUpperCase()}`), kek);
  assert.deepEqual(parseKek(kek.toString('base64')), kek);
  assert.deepEqual(parseKek(`base64:${kek.toString('base64')}`), kek);
  assert.deepEqual(parseKek(kek.toString('base64url')), kek);
  for (const bad of [
    '',
    'abcd',
    kek.toString('hex').slice(2),
    randomBytes(16).toString('base64'),
    'x'.repeat(64),
  ]) {
    assert.throws(
      () => parseKek(bad, 'hss.kek'),
      (err: Error & { code?: string }) =>
        err.code === 'SIMCRED_CONFIG_INVALID' &&
        err.message.includes('hss.kek') &&
        (bad === '' || !err.message.includes(bad)),
    );
  }
  assert.throws(() => sealSecret(k, { kek: randomBytes(16), context }), { code: 'SIMCRED_CONFIG_INVALID' });
});
