import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import graphene from 'graphene-pk11';
import { kekId, openSecret, sealSecret } from '../../src/crypto/index.js';
import {
  loadKeyEncryptionKey,
  loadOperatorVariant,
  memoryKek,
  tokenKek,
  type KeyEncryptionKey,
} from '../../src/keys/key-encryption.js';
import { Pkcs11Token } from '../../src/keys/pkcs11-token.js';
import { resealSubscribers, type SealedSecrets } from '../../src/keys/rekey.js';
import { makeSoftHsmToken, type ThrowawayToken } from '../helpers/softhsm.js';

const k = Buffer.from('465b5ce8b199b49faa5f0a2ee238a6bc', 'hex');
const context = 'k:001010123456789';
const failed = (pattern?: RegExp) => (err: unknown) => {
  const e = err as { code?: string; message: string };
  assert.equal(e.code, 'SIMCRED_SECRET_DECRYPT_FAILED', e.message);
  if (pattern) assert.match(e.message, pattern);
  return true;
};

/** Flips one byte of a sealed record's ciphertext. */
function tamper(sealed: string): string {
  const [v, id, iv, body] = sealed.split('.') as [string, string, string, string];
  const bytes = Buffer.from(body, 'base64url');
  bytes[3]! ^= 0x01;
  return `${v}.${id}.${iv}.${bytes.toString('base64url')}`;
}

/** What every KEK must do, whichever holds the key. */
function behavesAsAKek(make: () => KeyEncryptionKey) {
  it('round-trips with a fresh IV each time, in the documented format', () => {
    const kek = make();
    const a = kek.seal(k, context);
    const b = kek.seal(k, context);
    assert.notEqual(a, b);
    assert.match(a, /^sb[12]\.[0-9a-f]{8}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{43}$/);
    assert.ok(a.startsWith(`${kek.header}.`));
    assert.ok(!a.includes(k.toString('hex')) && !a.includes(k.toString('base64url')));
    assert.deepEqual(kek.open(a, context), k);
  });

  it('refuses an altered record, another context and a malformed one', () => {
    const kek = make();
    const sealed = kek.seal(k, context);
    assert.throws(() => kek.open(tamper(sealed), context), failed(/authentication failed/));
    assert.throws(() => kek.open(sealed, 'opc:001010123456789'), failed(/authentication failed/));
    assert.throws(() => kek.open('sb2.0000', context), failed(/unknown format/));
    // The header is authenticated: a record relabelled with another version is refused too.
    const other = sealed.startsWith('sb1') ? `sb2${sealed.slice(3)}` : `sb1${sealed.slice(3)}`;
    assert.throws(() => kek.open(other, context), failed());
  });
}

describe('a key-encryption key in memory (file or config)', () => {
  const key = randomBytes(32);
  behavesAsAKek(() => memoryKek(key));

  it('reads and writes the sb1 records existing stores hold', () => {
    const kek = memoryKek(key);
    assert.equal(kek.header, `sb1.${kekId(key)}`);
    assert.deepEqual(kek.open(sealSecret(k, { kek: key, context }), context), k);
    assert.deepEqual(openSecret(kek.seal(k, context), { kek: key, context }), k);
    assert.equal(loadKeyEncryptionKey(key.toString('hex'), 'hss.kek').header, kek.header);
  });

  it('refuses another memory key’s record, naming both keys', () => {
    const other = memoryKek(randomBytes(32));
    assert.throws(
      () => other.open(memoryKek(key).seal(k, context), context),
      failed(new RegExp(`sealed by the key-encryption key ${kekId(key)}.*not by the key-encryption key`)),
    );
  });
});

describe('a key-encryption key in a SoftHSM token', () => {
  let token: ThrowawayToken;
  let opened: Pkcs11Token;
  const kekUri = () => `${token.uri};object=unit-kek`;

  before(() => {
    token = makeSoftHsmToken('kek-unit');
    // Another token for the wrong-PIN case, made before the library reads the token list.
    execFileSync(
      'softhsm2-util',
      ['--init-token', '--free', '--label', 'kek-wrong-pin', '--pin', '2468', '--so-pin', '1357'],
      { env: { ...process.env, ...token.env }, stdio: 'ignore' },
    );
    opened = Pkcs11Token.open(token.uri, token.env);
    opened.generateAes256Key('unit-kek', Buffer.from([1]));
    opened.generateAes256Key('unit-kek-2', Buffer.from([2]));
  });
  after(() => token.remove());

  behavesAsAKek(() => tokenKek(kekUri(), 'hss.kek', token.env));

  it('names its key by a check value the token computes: sb2, stable, not the label', () => {
    const kek = tokenKek(kekUri(), 'hss.kek', token.env);
    assert.match(kek.header, /^sb2\.[0-9a-f]{8}$/);
    assert.equal(tokenKek(`${token.uri};id=%01`, 'hss.kek', token.env).header, kek.header);
    assert.notEqual(tokenKek(`${token.uri};object=unit-kek-2`, 'hss.kek', token.env).header, kek.header);
    assert.equal(kek.inToken, true);
    assert.equal(loadKeyEncryptionKey(kekUri(), 'hss.kek', token.env).header, kek.header);
  });

  it('a record sealed by one KEK is refused by every other, which names who sealed it', () => {
    const inToken = tokenKek(kekUri(), 'hss.kek', token.env);
    const inToken2 = tokenKek(`${token.uri};object=unit-kek-2`, 'hss.kek', token.env);
    const inMemory = memoryKek(randomBytes(32));
    const byToken = inToken.seal(k, context);
    const byMemory = inMemory.seal(k, context);
    assert.throws(() => inMemory.open(byToken, context), failed(/sealed by the PKCS#11 token key/));
    assert.throws(() => inToken2.open(byToken, context), failed(/sealed by the PKCS#11 token key/));
    assert.throws(
      () => inToken.open(byMemory, context),
      failed(/held in memory.*not by the PKCS#11 token key/),
    );
    // openSecret (the sb1 reader) says what an sb2 record needs.
    assert.throws(() => openSecret(byToken, { kek: randomBytes(32), context }), failed(/PKCS#11 token/));
  });

  it('refuses a key that can leave the token, a missing key, a bad URI and a wrong PIN, never naming the PIN', () => {
    opened.generateAes256Key('unit-kek-3', Buffer.from([3]));
    // An exportable AES key made beside it, as a careless ceremony might.
    const session = (opened as unknown as { session: graphene.Session }).session;
    session.generateKey(graphene.MechanismEnum.AES_KEY_GEN, {
      keyType: graphene.KeyType.AES,
      class: graphene.ObjectClass.SECRET_KEY,
      valueLen: 32,
      token: true,
      private: true,
      sensitive: false,
      extractable: true,
      encrypt: true,
      decrypt: true,
      label: 'unit-exportable',
      id: Buffer.from([9]),
    });
    const unavailable = (pattern: RegExp) => (err: unknown) => {
      const e = err as { code?: string; message: string };
      assert.equal(e.code, 'SIMCRED_KEY_STORE_UNAVAILABLE', e.message);
      assert.match(e.message, pattern);
      assert.ok(!e.message.includes(token.pin) && !e.message.includes('9999'), e.message);
      return true;
    };
    assert.throws(
      () => tokenKek(`${token.uri};object=unit-exportable`, 'hss.kek', token.env),
      unavailable(/^hss\.kek: .*not sensitive and non-extractable/),
    );
    assert.throws(
      () => tokenKek(`${token.uri};object=absent`, 'phlr.kek', token.env),
      unavailable(/^phlr\.kek: no secret key/),
    );
    assert.throws(
      () =>
        tokenKek('pkcs11:token=kek-wrong-pin;object=x', 'hss.kek', {
          ...token.env,
          SIMCRED_PKCS11_PIN: '9999',
        }),
      unavailable(/CKR_PIN_INCORRECT/),
    );
    assert.throws(
      () => tokenKek(`${token.uri};object=x?pin-value=${token.pin}`, 'hss.kek', token.env),
      (err: Error) => {
        assert.equal((err as { code?: string }).code, 'SIMCRED_CONFIG_INVALID');
        assert.ok(!err.message.includes(token.pin));
        return true;
      },
    );
  });

  it('a token that logged out answers SIMCRED_KEY_STORE_UNAVAILABLE (retry later), then works again after a new login', () => {
    const kek = tokenKek(kekUri(), 'hss.kek', token.env);
    const sealed = kek.seal(k, context);
    (opened as unknown as { session: graphene.Session }).session.logout();
    assert.throws(
      () => kek.open(sealed, context),
      (err: { code?: string; status?: number; retryAfter?: number }) =>
        err.code === 'SIMCRED_KEY_STORE_UNAVAILABLE' && err.status === 503 && err.retryAfter! > 0,
    );
    assert.deepEqual(kek.open(sealed, context), k);
    assert.deepEqual(kek.open(kek.seal(k, context), context), k);
  });

  it('reads OP from a private data object; a hex OP stays as it was', () => {
    const op = randomBytes(16);
    opened.createDataObject('unit-op', op);
    assert.deepEqual(loadOperatorVariant(`${token.uri};object=unit-op;type=data`, 'hss.op', token.env), op);
    assert.deepEqual(loadOperatorVariant(op.toString('hex'), 'hss.op'), op);
    assert.throws(() => loadOperatorVariant('00', 'hss.op'), { code: 'SIMCRED_CONFIG_INVALID' });
    assert.throws(() => loadOperatorVariant(`${token.uri};object=unit-kek;type=data`, 'hss.op', token.env), {
      code: 'SIMCRED_KEY_STORE_UNAVAILABLE',
    });
  });

  it('rotation re-seals every pair from a memory KEK to the token KEK; the old key no longer opens them; a rerun finds nothing to do', async () => {
    const old = memoryKek(randomBytes(32));
    const next = tokenKek(kekUri(), 'hss.kek', token.env);
    const rows = new Map<string, SealedSecrets>();
    const secrets = new Map<string, Buffer>();
    for (let i = 0; i < 1203; i++) {
      const id = `0010100000${String(i).padStart(5, '0')}`;
      const secret = randomBytes(16);
      secrets.set(id, secret);
      rows.set(id, { id, kSealed: old.seal(secret, `k:${id}`), opcSealed: old.seal(secret, `opc:${id}`) });
    }
    const store = {
      async sealedSecretsAfter(afterId: string, limit: number) {
        return [...rows.values()].filter((r) => r.id > afterId).slice(0, limit);
      },
      async replaceSealedSecrets(from: SealedSecrets, to: { kSealed: string; opcSealed: string }) {
        const row = rows.get(from.id);
        if (row?.kSealed !== from.kSealed || row.opcSealed !== from.opcSealed) return false;
        rows.set(from.id, { id: from.id, ...to });
        return true;
      },
    };
    assert.deepEqual(await resealSubscribers(store, old, next), { resealed: 1203, alreadyNew: 0 });
    for (const row of rows.values()) {
      assert.deepEqual(next.open(row.kSealed, `k:${row.id}`), secrets.get(row.id));
      assert.deepEqual(next.open(row.opcSealed, `opc:${row.id}`), secrets.get(row.id));
      assert.throws(() => old.open(row.kSealed, `k:${row.id}`), failed(/PKCS#11 token key/));
    }
    assert.deepEqual(await resealSubscribers(store, old, next), { resealed: 0, alreadyNew: 1203 });
    await assert.rejects(resealSubscribers(store, next, next), { code: 'SIMCRED_CLI_ARGUMENT' });
  });
});
