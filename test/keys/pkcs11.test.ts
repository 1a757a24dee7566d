import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { verify } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { formatPkcs11Uri, parsePkcs11Uri, Pkcs11UriError } from '../../src/keys/pkcs11-uri.js';
import { Pkcs11Error, Pkcs11Token, resolvePin } from '../../src/keys/pkcs11-token.js';
import { tokenSigningKey } from '../../src/keys/signing-key.js';
import { makeSoftHsmToken, type ThrowawayToken } from '../helpers/softhsm.js';

describe('pkcs11: URIs (RFC 7512)', () => {
  it('parses path and query attributes, percent-decoding the id to bytes', () => {
    const uri = parsePkcs11Uri(
      'pkcs11:token=The%20Token;object=package-signer;id=%01%a2;type=private?module-path=/usr/lib/x.so&pin-source=file:/run/pin',
    );
    assert.deepEqual(uri, {
      token: 'The Token',
      object: 'package-signer',
      id: Buffer.from([0x01, 0xa2]),
      type: 'private',
      modulePath: '/usr/lib/x.so',
      pinSource: 'file:/run/pin',
    });
    assert.deepEqual(parsePkcs11Uri(formatPkcs11Uri(uri)), uri);
  });

  it('refuses what it does not understand rather than matching more keys than meant', () => {
    for (const bad of [
      'file:/x',
      'pkcs11:library-version=1',
      'pkcs11:object=a;object=b',
      'pkcs11:type=bogus',
      'pkcs11:id=%zz',
      'pkcs11:token',
    ]) {
      assert.throws(() => parsePkcs11Uri(bad), Pkcs11UriError, bad);
    }
  });

  it('takes the PIN from pin-source or the environment, never from a pin-value', () => {
    assert.throws(
      () => resolvePin(parsePkcs11Uri('pkcs11:token=t?pin-value=1234'), {}),
      (err: Error) => !err.message.includes('1234'),
    );
    assert.equal(resolvePin({}, { SIMCRED_PKCS11_PIN: '9999' }), '9999');
    assert.throws(() => resolvePin({}, {}), Pkcs11Error);
  });
});

describe('a P-256 key in SoftHSM', () => {
  let token: ThrowawayToken;
  before(() => {
    token = makeSoftHsmToken('keys-unit');
    // A second token beside the first, never logged in to (a logged-in token is reused for the
    // process); made before the library is loaded, which is when SoftHSM reads its tokens.
    execFileSync(
      'softhsm2-util',
      ['--init-token', '--free', '--label', 'keys-other', '--pin', '2468', '--so-pin', '1357'],
      {
        env: { ...process.env, ...token.env },
        stdio: 'ignore',
      },
    );
  });
  after(() => token.remove());

  it('is generated non-extractable in the token and signs there, in both encodings', () => {
    const opened = Pkcs11Token.open(token.uri, token.env);
    const { publicKey } = opened.generateEcP256KeyPair('unit-signer', Buffer.from([1]));
    const signer = tokenSigningKey(`${token.uri};object=unit-signer;type=private`, token.env);
    assert.equal(signer.inToken, true);
    assert.deepEqual(
      signer.publicKey.export({ format: 'der', type: 'spki' }),
      publicKey.export({ format: 'der', type: 'spki' }),
    );
    const data = Buffer.from('tbs bytes');
    assert.ok(verify('sha256', data, { key: publicKey, dsaEncoding: 'der' }, signer.sign(data, 'der')));
    assert.ok(
      verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signer.sign(data, 'ieee-p1363')),
    );
    assert.ok(
      !verify(
        'sha256',
        Buffer.from('other'),
        { key: publicKey, dsaEncoding: 'der' },
        signer.sign(data, 'der'),
      ),
    );
    // pkcs11-tool (OpenSC) sees the key, and that it cannot be read out.
    const listing = token.pkcs11Tool('--list-objects');
    assert.match(
      listing,
      /Private Key Object; EC[\s\S]*label:\s+unit-signer[\s\S]*Access:\s+sensitive, always sensitive, never extractable/,
    );
    assert.throws(() => opened.generateEcP256KeyPair('unit-signer', Buffer.from([2])), Pkcs11Error);
  });

  it('refuses a wrong PIN and an unknown key with messages that carry neither PIN', () => {
    assert.throws(() => tokenSigningKey(`${token.uri};object=missing`, token.env), /no private key/);
    // A second token beside the first (a fresh one: a logged-in token is reused for the process).
    execFileSync(
      'softhsm2-util',
      ['--init-token', '--free', '--label', 'keys-other', '--pin', '2468', '--so-pin', '1357'],
      {
        env: { ...process.env, ...token.env },
        stdio: 'ignore',
      },
    );
    assert.throws(
      () => Pkcs11Token.open('pkcs11:token=keys-other', { ...token.env, SIMCRED_PKCS11_PIN: '8642' }),
      (err: Error) =>
        err instanceof Pkcs11Error && /CKR_PIN_INCORRECT/.test(err.message) && !err.message.includes('8642'),
    );
    assert.throws(
      () => Pkcs11Token.open('pkcs11:token=no-such-token', token.env),
      /no PKCS#11 token matches/,
    );
  });

  it('seals with AES-256-GCM in the token and refuses a tampered box', () => {
    const opened = Pkcs11Token.open(token.uri, token.env);
    opened.generateAes256Key('unit-kek', Buffer.from([3]));
    const key = opened.secretKey({ object: 'unit-kek' });
    const iv = Buffer.alloc(12, 5);
    const box = opened.encryptAesGcm(key, iv, Buffer.from('aad'), Buffer.from('K and OPc'));
    assert.equal(opened.decryptAesGcm(key, iv, Buffer.from('aad'), box).toString(), 'K and OPc');
    box[0]! ^= 1;
    assert.throws(() => opened.decryptAesGcm(key, iv, Buffer.from('aad'), box));
  });
});
