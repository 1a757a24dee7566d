import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { CompactSign, decodeProtectedHeader } from 'jose';
import { inspectPackage, sealPackage } from '../../src/crypto/index.js';
import {
  deviceKeySha256,
  signTransferStatement,
  transferConfirmationMessage,
  verifyTransferStatement,
  type SignTransferStatementInput,
} from '../../src/crypto/transfer-statement.js';
import { rejectsWith } from '../helpers/assert.js';
import { buildFixture, CREDENTIALS } from './fixture.js';

const f = await buildFixture();
const roots = [f.operatorRoot.pem];
const transferId = `trf_${'A'.repeat(22)}`;

const input = (over: Partial<SignTransferStatementInput> = {}): SignTransferStatementInput => ({
  transferId,
  dsimId: 'DSIM0000000000000001',
  devicePublicKey: f.deviceEc.publicKey,
  newOperatorRoot: f.foreignRoot.pem,
  newRegistrationServers: ['https://registration.b.example'],
  newServers: { ocsp: 'http://ocsp.b.example', hss: 'https://hss.b.example' },
  confirmUrl: 'https://credentialing.a.example',
  signingKey: f.signer.key,
  signerChainPem: [f.signer.pem, f.operatorCa.pem],
  ttlSeconds: 3600,
  ...over,
});
const verify = (jws: string, over: { dsimId?: string; now?: Date } = {}) =>
  verifyTransferStatement(jws, {
    operatorRoots: roots,
    dsimId: over.dsimId ?? 'DSIM0000000000000001',
    devicePublicKey: f.deviceEc.publicKey,
    ...(over.now ? { now: over.now } : {}),
  });

test('a statement round-trips: typ, x5c, the claims, B’s root, the signer for the OCSP check', async () => {
  const jws = await signTransferStatement(input());
  const header = decodeProtectedHeader(jws);
  assert.equal(header.typ, 'simcred-transfer+jws');
  assert.equal(header.alg, 'ES256');
  assert.equal(header.x5c?.length, 2);
  const verified = await verify(jws);
  assert.equal(verified.claims.transferId, transferId);
  assert.equal(verified.claims.deviceKeySha256, deviceKeySha256(f.deviceEc.publicKey));
  assert.equal(
    verified.claims.deviceKeySha256,
    createHash('sha256')
      .update(f.deviceEc.publicKey.export({ format: 'der', type: 'spki' }))
      .digest('hex'),
  );
  assert.ok(Buffer.from(verified.newOperatorRoot.rawData).equals(Buffer.from(f.foreignRoot.cert.rawData)));
  assert.equal(verified.signerCertificate.subject, f.signer.cert.subject);
  assert.equal(verified.issuerCertificate.subject, f.operatorCa.cert.subject);
  assert.equal(verified.claims.exp - verified.claims.iat, 3600);
});

test('a statement never passes as a package, nor a package as a statement (each its own typ)', async () => {
  const statement = await signTransferStatement(input());
  await rejectsWith(inspectPackage(statement, { operatorRoots: roots }), 'SIMCRED_PACKAGE_MALFORMED', /typ/);
  const pkg = await sealPackage({
    credentials: CREDENTIALS,
    dsimId: 'DSIM0000000000000001',
    deviceNonce: Buffer.alloc(32, 1),
    devicePublicKey: f.deviceEc.publicKey,
    operatorSigningKey: f.signer.key,
    operatorChainPem: [f.signer.pem, f.operatorCa.pem],
    ttlSeconds: 3600,
  });
  await rejectsWith(verify(pkg), 'SIMCRED_TRANSFER_STATEMENT_INVALID', /typ/);
});

test('refused: a foreign chain, a TLS key of the same CA, an expired signer, a re-signed payload naming no CA root', async () => {
  await rejectsWith(
    verify(
      await signTransferStatement(
        input({ signingKey: f.foreignSigner.key, signerChainPem: [f.foreignSigner.pem, f.foreignCa.pem] }),
      ),
    ),
    'SIMCRED_TRANSFER_STATEMENT_INVALID',
  );
  await rejectsWith(
    verify(
      await signTransferStatement(
        input({ signingKey: f.tlsSigner.key, signerChainPem: [f.tlsSigner.pem, f.operatorCa.pem] }),
      ),
    ),
    'SIMCRED_TRANSFER_STATEMENT_INVALID',
    /package-signing/,
  );
  await rejectsWith(
    verify(
      await signTransferStatement(
        input({ signingKey: f.expiredSigner.key, signerChainPem: [f.expiredSigner.pem, f.operatorCa.pem] }),
      ),
    ),
    'SIMCRED_TRANSFER_STATEMENT_INVALID',
  );
  // The operator's own key signing a payload whose new root is an intermediate, not a root.
  const genuine = await signTransferStatement(input());
  const payload = JSON.parse(Buffer.from(genuine.split('.')[1]!, 'base64url').toString()) as Record<
    string,
    unknown
  >;
  payload.newOperatorRoot = Buffer.from(f.operatorCa.cert.rawData).toString('base64');
  const resigned = await new CompactSign(Buffer.from(JSON.stringify(payload)))
    .setProtectedHeader(decodeProtectedHeader(genuine) as { alg: string })
    .sign(f.signer.key);
  await rejectsWith(verify(resigned), 'SIMCRED_TRANSFER_STATEMENT_INVALID', /self-signed CA/);
  // Nor will signing take one.
  await rejectsWith(
    signTransferStatement(input({ newOperatorRoot: f.operatorCa.pem })),
    'SIMCRED_BAD_REQUEST',
  );
});

test('bound to one device and one time: another DSIM_ID, another key, past exp', async () => {
  const jws = await signTransferStatement(input());
  await rejectsWith(verify(jws, { dsimId: 'DSIM0000000000000002' }), 'SIMCRED_TRANSFER_BINDING_MISMATCH');
  await rejectsWith(
    verifyTransferStatement(jws, {
      operatorRoots: roots,
      dsimId: 'DSIM0000000000000001',
      devicePublicKey: f.deviceEc2.publicKey,
    }),
    'SIMCRED_TRANSFER_BINDING_MISMATCH',
  );
  await rejectsWith(
    verify(jws, { now: new Date(Date.now() + 2 * 3600_000) }),
    'SIMCRED_TRANSFER_STATEMENT_EXPIRED',
  );
});

test('the confirmation bytes: length-prefixed label, transfer id, DSIM_ID, package id', () => {
  const message = transferConfirmationMessage({ transferId, dsimId: 'DSIM0000000000000001', packageId: 'p' });
  const label = 'simcred/v1/transfer-confirmation';
  const expected = Buffer.concat(
    [label, transferId, 'DSIM0000000000000001', 'p'].map((s) => {
      const bytes = Buffer.from(s, 'utf8');
      const length = Buffer.alloc(2);
      length.writeUInt16BE(bytes.length);
      return Buffer.concat([length, bytes]);
    }),
  );
  assert.ok(message.equals(expected));
});
