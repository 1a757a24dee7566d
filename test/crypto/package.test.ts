import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { CompactSign, decodeProtectedHeader } from 'jose';
import { inspectPackage, openPackage, sealPackage, type SealPackageInput } from '../../src/crypto/index.js';
import { buildFixture, CREDENTIALS } from './fixture.js';

const f = await buildFixture();
const roots = [f.operatorRoot.pem];
const nonceA = Buffer.alloc(32, 0xa1);
const chain = [f.signer.pem, f.operatorCa.pem];

function sealInput(device: { publicKey: KeyObject }, dsimId: string, over: Partial<SealPackageInput> = {}) {
  return {
    credentials: CREDENTIALS,
    dsimId,
    deviceNonce: nonceA,
    devicePublicKey: device.publicKey,
    operatorSigningKey: f.signer.key,
    operatorChainPem: chain,
    ttlSeconds: 3600,
    ...over,
  };
}

const parts = (jws: string) => jws.split('.') as [string, string, string];
const payloadOf = (jws: string) => JSON.parse(Buffer.from(parts(jws)[1], 'base64url').toString());

/** Re-signs a modified payload with the genuine operator key and chain (an insider / key-holder forgery). */
async function resign(jws: string, mutate: (payload: Record<string, unknown>) => void): Promise<string> {
  const payload = payloadOf(jws);
  mutate(payload);
  return new CompactSign(Buffer.from(JSON.stringify(payload)))
    .setProtectedHeader(decodeProtectedHeader(jws) as { alg: string })
    .sign(f.signer.key);
}

for (const [name, device, alg] of [
  ['EC P-256', f.deviceEc, 'ECDH-ES+A256KW'],
  ['RSA-2048', f.deviceRsa, 'RSA-OAEP-256'],
] as const) {
  test(`${name}: seal, inspect and open round-trip`, async () => {
    const jws = await sealPackage(sealInput(device, 'dsim-a'));
    assert.ok(!jws.includes(CREDENTIALS.k) && !jws.includes(CREDENTIALS.opc));
    assert.ok(!Buffer.from(jws).toString('hex').includes(CREDENTIALS.k));
    const header = decodeProtectedHeader(jws);
    assert.equal(header.alg, 'ES256');
    assert.equal(header.typ, 'simcred-package+jws');
    assert.equal(header.x5c?.length, 2);
    const payload = payloadOf(jws);
    assert.ok(!JSON.stringify(payload).includes(CREDENTIALS.k));
    const sealedHeader = decodeProtectedHeader(payload.credentials);
    assert.equal(sealedHeader.alg, alg);
    assert.equal(sealedHeader.enc, 'A256GCM');
    assert.equal(sealedHeader['simcred-dsim'], 'dsim-a');

    const info = await inspectPackage(jws, { operatorRoots: roots });
    assert.equal(info.dsimId, 'dsim-a');
    assert.equal(info.deviceNonce, nonceA.toString('base64url'));
    assert.equal(info.exp - info.iat, 3600);
    assert.equal(info.keyManagement, alg);
    assert.equal(info.signerCertificate.subject, 'CN=Test Package Signer');
    assert.equal(info.issuerCertificate.subject, 'CN=Test Operator CA');
    assert.equal(info.chain.length, 3);
    const json = JSON.stringify(info);
    assert.match(json, /Test Package Signer/);
    assert.ok(json.length < 1000, 'certificates serialise as name and serial');
    for (const secret of [CREDENTIALS.k, CREDENTIALS.opc, CREDENTIALS.k.toUpperCase()]) {
      assert.ok(!json.includes(secret));
      assert.ok(!Object.values(info).some((v) => typeof v === 'string' && v.includes(secret)));
    }

    const opened = await openPackage(jws, {
      operatorRoots: roots,
      dsimId: 'dsim-a',
      deviceNonce: nonceA,
      devicePrivateKey: device.privateKey,
    });
    assert.deepEqual(opened.credentials, CREDENTIALS);
    assert.equal(opened.packageId, info.packageId);
    assert.equal(opened.signerCertificate.subject, 'CN=Test Package Signer');
    assert.equal(opened.issuerCertificate.subject, 'CN=Test Operator CA');
  });
}

const open = (jws: string, over: Record<string, unknown> = {}) =>
  openPackage(jws, {
    operatorRoots: roots,
    dsimId: 'dsim-a',
    deviceNonce: nonceA,
    devicePrivateKey: f.deviceEc.privateKey,
    ...over,
  });

test('tampering is rejected with the right code', async () => {
  const jws = await sealPackage(sealInput(f.deviceEc, 'dsim-a'));
  const [h, p, s] = parts(jws);

  // Payload altered (without the operator key): signature fails.
  const payload = payloadOf(jws);
  payload.dsimId = 'dsim-b';
  const altered = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
  await assert.rejects(open(altered, { dsimId: 'dsim-b' }), { code: 'SIMCRED_PACKAGE_SIGNATURE_INVALID' });
  await assert.rejects(inspectPackage(altered, { operatorRoots: roots }), {
    code: 'SIMCRED_PACKAGE_SIGNATURE_INVALID',
  });

  // Signature altered.
  const sig = Buffer.from(s, 'base64url');
  sig[10]! ^= 0x40;
  await assert.rejects(open(`${h}.${p}.${sig.toString('base64url')}`), {
    code: 'SIMCRED_PACKAGE_SIGNATURE_INVALID',
  });

  // JWE ciphertext altered inside the payload, not re-signed: signature fails.
  const jweParts = payload.credentials.split('.');
  const ct = Buffer.from(jweParts[3], 'base64url');
  ct[0]! ^= 1;
  const tamperedJwe = [...jweParts.slice(0, 3), ct.toString('base64url'), jweParts[4]].join('.');
  const p2 = { ...payloadOf(jws), credentials: tamperedJwe };
  await assert.rejects(open(`${h}.${Buffer.from(JSON.stringify(p2)).toString('base64url')}.${s}`), {
    code: 'SIMCRED_PACKAGE_SIGNATURE_INVALID',
  });

  // ... and re-signed with the genuine operator key: the AEAD tag fails.
  const resigned = await resign(jws, (q) => (q.credentials = tamperedJwe));
  await assert.rejects(open(resigned), { code: 'SIMCRED_PACKAGE_DECRYPT_FAILED' });
  // The server cannot tell (it cannot decrypt) and accepts the envelope.
  await inspectPackage(resigned, { operatorRoots: roots });

  // GCM tag altered and re-signed.
  const tag = Buffer.from(jweParts[4], 'base64url');
  tag[0]! ^= 1;
  const badTag = [...jweParts.slice(0, 4), tag.toString('base64url')].join('.');
  await assert.rejects(open(await resign(jws, (q) => (q.credentials = badTag))), {
    code: 'SIMCRED_PACKAGE_DECRYPT_FAILED',
  });

  // JWE moved into a package for another DSIM_ID (re-signed): the sealed header binding catches it.
  const moved = await resign(jws, (q) => (q.dsimId = 'dsim-b'));
  await assert.rejects(open(moved, { dsimId: 'dsim-b' }), { code: 'SIMCRED_PACKAGE_BINDING_MISMATCH' });
  await assert.rejects(inspectPackage(moved, { operatorRoots: roots }), {
    code: 'SIMCRED_PACKAGE_BINDING_MISMATCH',
  });

  // JWE header binding rewritten to match (re-signed): the AAD no longer matches, decryption fails.
  const jweHeader = JSON.parse(Buffer.from(jweParts[0], 'base64url').toString());
  jweHeader['simcred-dsim'] = 'dsim-b';
  const rebound = [Buffer.from(JSON.stringify(jweHeader)).toString('base64url'), ...jweParts.slice(1)].join(
    '.',
  );
  const reboundPkg = await resign(jws, (q) => {
    q.dsimId = 'dsim-b';
    q.credentials = rebound;
  });
  await assert.rejects(open(reboundPkg, { dsimId: 'dsim-b' }), { code: 'SIMCRED_PACKAGE_DECRYPT_FAILED' });

  // Inner and outer validity periods disagree (re-signed).
  await assert.rejects(open(await resign(jws, (q) => (q.exp = (q.exp as number) + 10))), {
    code: 'SIMCRED_PACKAGE_MALFORMED',
  });

  // Malformed envelopes.
  for (const bad of ['', 'a.b', `${h}.${p}`, `${h}.${p}.${s}.x`, 'x'.repeat(70000), `e30.${p}.${s}`]) {
    await assert.rejects(open(bad), { code: 'SIMCRED_PACKAGE_MALFORMED' });
  }
  const noX5c = await new CompactSign(Buffer.from(JSON.stringify(payloadOf(jws))))
    .setProtectedHeader({ alg: 'ES256', typ: 'simcred-package+jws' })
    .sign(f.signer.key);
  await assert.rejects(open(noX5c), { code: 'SIMCRED_PACKAGE_MALFORMED' });
  const hs256 = await new CompactSign(Buffer.from(JSON.stringify(payloadOf(jws))))
    .setProtectedHeader({ alg: 'HS256', typ: 'simcred-package+jws', x5c: decodeProtectedHeader(jws).x5c! })
    .sign(new Uint8Array(32));
  await assert.rejects(open(hs256), { code: 'SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED' });
});

test('chain to a foreign root, expired or unfit signer, wrong roots: chain invalid', async () => {
  const foreign = await sealPackage(
    sealInput(f.deviceEc, 'dsim-a', {
      operatorSigningKey: f.foreignSigner.key,
      operatorChainPem: [f.foreignSigner.pem, f.foreignCa.pem],
    }),
  );
  await assert.rejects(open(foreign), { code: 'SIMCRED_PACKAGE_CHAIN_INVALID' });
  await assert.rejects(inspectPackage(foreign, { operatorRoots: roots }), {
    code: 'SIMCRED_PACKAGE_CHAIN_INVALID',
  });
  // The foreign CA has the same name as ours; only the signature link tells them apart.
  const good = await sealPackage(sealInput(f.deviceEc, 'dsim-a'));
  await assert.rejects(open(good, { operatorRoots: [f.foreignRoot.pem] }), {
    code: 'SIMCRED_PACKAGE_CHAIN_INVALID',
  });
  // Chain that includes the root itself is fine; chain of the leaf alone is not (CA missing).
  const withRoot = await sealPackage(
    sealInput(f.deviceEc, 'dsim-a', { operatorChainPem: [...chain, f.operatorRoot.pem] }),
  );
  assert.equal((await open(withRoot)).credentials.k, CREDENTIALS.k);
  const leafOnly = await sealPackage(sealInput(f.deviceEc, 'dsim-a', { operatorChainPem: [f.signer.pem] }));
  await assert.rejects(open(leafOnly), { code: 'SIMCRED_PACKAGE_CHAIN_INVALID' });
  // Expired signer certificate.
  const expired = await sealPackage(
    sealInput(f.deviceEc, 'dsim-a', {
      operatorSigningKey: f.expiredSigner.key,
      operatorChainPem: [f.expiredSigner.pem, f.operatorCa.pem],
    }),
  );
  await assert.rejects(open(expired), { code: 'SIMCRED_PACKAGE_CHAIN_INVALID' });
  // Signer without digitalSignature.
  const unfit = await sealPackage(
    sealInput(f.deviceEc, 'dsim-a', {
      operatorSigningKey: f.encipherOnlySigner.key,
      operatorChainPem: [f.encipherOnlySigner.pem, f.operatorCa.pem],
    }),
  );
  await assert.rejects(open(unfit), { code: 'SIMCRED_PACKAGE_CHAIN_INVALID' });
  // A TLS certificate of the same operator CA (held by a third-party server) cannot sign packages.
  const byTlsKey = await sealPackage(
    sealInput(f.deviceEc, 'dsim-a', {
      operatorSigningKey: f.tlsSigner.key,
      operatorChainPem: [f.tlsSigner.pem, f.operatorCa.pem],
    }),
  );
  await assert.rejects(open(byTlsKey), { code: 'SIMCRED_PACKAGE_CHAIN_INVALID' });
  await assert.rejects(inspectPackage(byTlsKey, { operatorRoots: [f.operatorRoot.pem] }), {
    code: 'SIMCRED_PACKAGE_CHAIN_INVALID',
  });
  // x5c swapped for the foreign chain on a package signed by the genuine key: chain fails first.
  const swapped = await new CompactSign(Buffer.from(JSON.stringify(payloadOf(good))))
    .setProtectedHeader({
      ...decodeProtectedHeader(good),
      alg: 'ES256',
      x5c: decodeProtectedHeader(foreign).x5c!,
    })
    .sign(f.signer.key);
  await assert.rejects(open(swapped), { code: 'SIMCRED_PACKAGE_CHAIN_INVALID' });
});

test('package for device A opened by device B; wrong device nonce; expired', async () => {
  // Sealed at a set instant (a whole second, as iat is): expiry is reckoned from it, not from the wall clock.
  const sealedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
  const jws = await sealPackage(sealInput(f.deviceEc, 'dsim-a', { now: sealedAt }));
  // Device B with its own identity: not its package.
  await assert.rejects(open(jws, { dsimId: 'dsim-b', devicePrivateKey: f.deviceEc2.privateKey }), {
    code: 'SIMCRED_PACKAGE_BINDING_MISMATCH',
  });
  // Device B claiming A's identity and nonce: it still cannot decrypt.
  await assert.rejects(open(jws, { devicePrivateKey: f.deviceEc2.privateKey }), {
    code: 'SIMCRED_PACKAGE_DECRYPT_FAILED',
  });
  // An RSA device against an EC-sealed package: key management algorithm not its own.
  await assert.rejects(open(jws, { devicePrivateKey: f.deviceRsa.privateKey }), {
    code: 'SIMCRED_PACKAGE_DECRYPT_FAILED',
  });
  // Wrong device nonce (a package from another session).
  await assert.rejects(open(jws, { deviceNonce: Buffer.alloc(32, 0xa2) }), {
    code: 'SIMCRED_PACKAGE_BINDING_MISMATCH',
  });
  // Expired.
  const later = new Date(sealedAt.getTime() + 3600_000 + 61_000);
  await assert.rejects(open(jws, { now: later }), { code: 'SIMCRED_PACKAGE_EXPIRED' });
  await assert.rejects(inspectPackage(jws, { operatorRoots: roots, now: later }), {
    code: 'SIMCRED_PACKAGE_EXPIRED',
  });
  assert.equal(
    (await inspectPackage(jws, { operatorRoots: roots, now: later, allowExpired: true })).dsimId,
    'dsim-a',
  );
  // Within the clock tolerance it still opens.
  await open(jws, { now: new Date(sealedAt.getTime() + 3600_000 + 30_000) });
});

test('sealPackage input checks', async () => {
  await assert.rejects(
    sealPackage(sealInput(f.deviceEc, 'dsim-a', { credentials: { ...CREDENTIALS, k: 'zz' } })),
    (err: Error & { code?: string }) => {
      assert.equal(err.code, 'SIMCRED_BAD_REQUEST');
      assert.match(err.message, /\bk\b/);
      assert.ok(!err.message.includes(CREDENTIALS.opc));
      return true;
    },
  );
  await assert.rejects(sealPackage(sealInput(f.deviceEc, 'dsim-a', { ttlSeconds: 0 })), {
    code: 'SIMCRED_BAD_REQUEST',
  });
  await assert.rejects(sealPackage(sealInput(f.deviceEc, 'dsim-a', { deviceNonce: Buffer.alloc(4) })), {
    code: 'SIMCRED_BAD_REQUEST',
  });
  await assert.rejects(
    sealPackage(sealInput(f.deviceEc, 'dsim-a', { operatorSigningKey: f.foreignSigner.key })),
    {
      code: 'SIMCRED_CONFIG_INVALID',
    },
  );
  // Sealing to a device certificate: the DSIM_ID bound in it must match.
  const ok = await sealPackage(sealInput(f.deviceEc, 'dsim-ec-0001', { devicePublicKey: f.deviceEcCertPem }));
  assert.equal((await inspectPackage(ok, { operatorRoots: roots })).dsimId, 'dsim-ec-0001');
  await assert.rejects(sealPackage(sealInput(f.deviceEc, 'dsim-a', { devicePublicKey: f.deviceEcCertPem })), {
    code: 'SIMCRED_PACKAGE_BINDING_MISMATCH',
  });
  // Same package id twice → same binding (idempotent re-seal by the HSS).
  const again = await sealPackage(sealInput(f.deviceEc, 'dsim-a', { packageId: 'pkg-42' }));
  assert.equal((await inspectPackage(again, { operatorRoots: roots })).packageId, 'pkg-42');
});
