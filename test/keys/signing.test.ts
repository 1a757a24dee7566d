import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { CompactSign, compactVerify } from 'jose';
import { signCompactJws } from '../../src/crypto/jws-sign.js';
import { inspectAnyPackage, sealPackageAs } from '../../src/crypto/index.js';
import { fileSigningKey, tokenSigningKey, type SigningKey } from '../../src/keys/signing-key.js';
import { initPki, TOKEN_KEYS } from '../../src/pki/init.js';
import { loadPki, manufactureDevices, type LoadedPki } from '../../src/pki/index.js';
import { checkCertificateStatus } from '../../src/ocsp/client.js';
import { startOcspResponder } from '../../src/ocsp/responder/server.js';
import { loadConfig } from '../../src/config/index.js';
import { packageSigningKey } from '../../src/system/roles.js';
import { createLogger } from '../../src/log/logger.js';
import { tempDir } from '../helpers/cli.js';
import { makeSoftHsmToken, type ThrowawayToken } from '../helpers/softhsm.js';

const credentials = {
  imsi: '001010123456789',
  k: '000102030405060708090a0b0c0d0e0f',
  opc: '0f0e0d0c0b0a09080706050403020100',
  amf: '8000',
  sqn: '000000000020',
  plmn: '00101',
};

describe('operator signing keys in a PKCS#11 token (SoftHSM)', () => {
  let token: ThrowawayToken;
  let dir: { path: string; cleanup: () => void };
  let pki: LoadedPki;

  before(async () => {
    token = makeSoftHsmToken('signing-unit');
    process.env.SIMCRED_PKCS11_PIN = token.pin;
    dir = tempDir('simcred-token-pki-');
    await initPki(dir.path, new Date(), { pkcs11: token.uri });
    pki = await loadPki(dir.path);
  });
  after(() => {
    dir?.cleanup();
    token?.remove();
    delete process.env.SIMCRED_PKCS11_PIN;
  });

  it('pki init --pkcs11 names every CA, OCSP and package signer key by URI, and running it again keeps them', async () => {
    const keys = [
      pki.manufacturer.root,
      pki.manufacturer.deviceCa,
      pki.manufacturer.deviceCaOcsp,
      pki.operator.root,
      pki.operator.operatorCa,
      pki.operator.operatorCaOcsp,
      pki.operator.packageSigner,
    ];
    assert.deepEqual(
      keys.map((k) =>
        new URLSearchParams(k.keyPath.replace(/^pkcs11:/, '').replace(/;/g, '&')).get('object'),
      ),
      Object.values(TOKEN_KEYS).map((k) => k.label),
    );
    for (const key of keys) {
      const signer = key.signingKey();
      assert.equal(signer.inToken, true);
      assert.ok(key.certificate.publicKey.equals(signer.publicKey));
      // The key cannot be had as a KeyObject.
      assert.throws(() => key.privateKey(), { code: 'SIMCRED_CONFIG_INVALID' });
    }
    // The TLS keys stay files.
    assert.doesNotMatch(pki.operator.tls.hss.keyPath, /^pkcs11:/);
    // Certificates chain: the roots signed themselves in the token, the issuing CAs their leaves.
    assert.ok(pki.operator.packageSigner.certificate.verify(pki.operator.operatorCa.certificate.publicKey));
    assert.ok(pki.manufacturer.deviceCa.certificate.verify(pki.manufacturer.root.certificate.publicKey));
    const again = await initPki(dir.path, new Date(), { pkcs11: token.uri });
    assert.deepEqual(again.created, []);
  });

  it('the device CA in the token issues device certificates (in this thread, no workers)', async () => {
    const made = await manufactureDevices({ dir: dir.path, count: 3, workers: 4 });
    assert.equal(made.count, 3);
    const device = await import('../../src/pki/index.js').then((m) =>
      m.loadFactoryImage(dir.path, made.devices[0]!.dsimId),
    );
    assert.ok(device.certificate.verify(pki.manufacturer.deviceCa.certificate.publicKey));
  });

  it('a package signed in the token is the JWS jose would make, and both formats verify', async () => {
    const signer = pki.operator.packageSigner.signingKey();
    const device = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    for (const format of ['jose', 'xml'] as const) {
      const text = await sealPackageAs(format, {
        credentials,
        dsimId: 'DSIM0123456789ABCDEF',
        deviceNonce: Buffer.alloc(32, 7),
        devicePublicKey: device.publicKey,
        operatorSigningKey: signer,
        operatorChainPem: [pki.operator.packageSigner.pem, pki.operator.operatorCa.pem],
        ttlSeconds: 3600,
      });
      const info = await inspectAnyPackage(text, { operatorRoots: [pki.operator.root.pem] });
      assert.equal(info.dsimId, 'DSIM0123456789ABCDEF');
    }
    // Byte for byte what jose makes, but for the (randomised) ECDSA signature, which verifies.
    const file = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const header = { alg: 'ES256' as const, typ: 'x', x5c: ['AAAA'] };
    const payload = Buffer.from('{"a":1}');
    const ours = signCompactJws(header, payload, fileSigningKey(file.privateKey, 'test'));
    const theirs = await new CompactSign(payload).setProtectedHeader(header).sign(file.privateKey);
    assert.equal(ours.split('.').slice(0, 2).join('.'), theirs.split('.').slice(0, 2).join('.'));
    await compactVerify(ours, file.publicKey);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pss = signCompactJws({ alg: 'PS256' }, payload, fileSigningKey(rsa.privateKey, 'test'));
    await compactVerify(pss, rsa.publicKey);
    assert.throws(() => signCompactJws({ alg: 'PS256' }, payload, signer), {
      code: 'SIMCRED_CRYPTO_KEY_UNSUPPORTED',
    });
  });

  it('config keys.packageSigner: a token key its certificate does not certify stops the start (fail closed)', () => {
    const config = loadConfig({
      overrides: {
        dataDir: dir.path,
        keys: { packageSigner: pki.operator.operatorCa.keyPath },
      },
    });
    assert.throws(() => packageSigningKey(config, pki), {
      code: 'SIMCRED_CONFIG_INVALID',
      message: /does not match the certificate/,
    });
    assert.throws(
      () =>
        loadConfig({
          overrides: { keys: { packageSigner: `${token.uri};object=x?pin-value=1234` } },
        }),
      { code: 'SIMCRED_CONFIG_INVALID' },
    );
    const fine = loadConfig({ overrides: { dataDir: dir.path } });
    assert.equal(packageSigningKey(fine, pki).inToken, true);
  });

  it('the OCSP responder signs with the delegated signers in the token', async () => {
    const responder = await startOcspResponder({
      pkiDir: dir.path,
      port: 0,
      logger: createLogger({ name: 'ocsp', level: 'silent' }),
    });
    try {
      const status = await checkCertificateStatus({
        certificate: pki.operator.packageSigner.der,
        issuer: pki.operator.operatorCa.der,
        url: responder.url,
      });
      assert.equal(status.status, 'good');
    } finally {
      await responder.close();
    }
  });

  it('a token that cannot be opened or does not sign: SIMCRED_KEY_STORE_UNAVAILABLE, never the PIN', () => {
    assert.throws(() => tokenSigningKey('pkcs11:token=no-such-token;object=k'), {
      code: 'SIMCRED_KEY_STORE_UNAVAILABLE',
    });
    assert.throws(() => tokenSigningKey(`${token.uri};object=no-such-key`), {
      code: 'SIMCRED_KEY_STORE_UNAVAILABLE',
    });
    assert.throws(() => tokenSigningKey('pkcs11:token=t;library-version=1'), {
      code: 'SIMCRED_CONFIG_INVALID',
    });
    // A key removed from the token after the start: the next signature fails, retryably.
    const opened = tokenSigningKey(`${token.uri};object=simcred-package-signer`);
    deleteKey('simcred-package-signer');
    let failure: unknown;
    try {
      opened.sign(Buffer.from('tbs'), 'der');
    } catch (err) {
      failure = err;
    }
    assert.ok(failure, 'the token signed with a deleted key');
    assert.equal((failure as { code?: string }).code, 'SIMCRED_KEY_STORE_UNAVAILABLE');
    assert.equal((failure as { retryAfter?: number }).retryAfter, 5);
    assert.doesNotMatch(String((failure as Error).message), new RegExp(token.pin));
  });

  it('an OCSP signer gone from the token: the responder answers tryLater, not a 500', async () => {
    const responder = await startOcspResponder({
      pkiDir: dir.path,
      port: 0,
      logger: createLogger({ name: 'ocsp', level: 'silent' }),
    });
    try {
      deleteKey('simcred-operator-ca-ocsp');
      await assert.rejects(
        checkCertificateStatus({
          certificate: pki.operator.packageSigner.der,
          issuer: pki.operator.operatorCa.der,
          url: responder.url,
        }),
        { code: 'SIMCRED_OCSP_RESPONDER_ERROR', message: /tryLater/ },
      );
    } finally {
      await responder.close();
    }
  });

  function deleteKey(label: string): void {
    token.pkcs11Tool('--delete-object', '--type', 'privkey', '--label', label);
  }

  it('file keys stay as they were: a PEM key is a SigningKey that signs with node:crypto', () => {
    const key: SigningKey = fileSigningKey(
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
      'f',
    );
    assert.equal(key.inToken, false);
    assert.throws(() => fileSigningKey(generateKeyPairSync('ed25519').privateKey, 'f'), {
      code: 'SIMCRED_CRYPTO_KEY_UNSUPPORTED',
    });
    assert.ok(new X509Certificate(pki.operator.root.pem).verify(pki.operator.root.signingKey().publicKey));
  });
});
