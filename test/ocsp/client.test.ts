import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { BasicOCSPResponse, OCSPResponse } from '@peculiar/asn1-ocsp';
import type { CertificateStatus } from '../../src/pki/store.js';
import { checkCertificateStatus, requireGood, type CheckOptions } from '../../src/ocsp/client.js';
import { ERROR_RESPONSES, parseRequest, signResponse } from '../../src/ocsp/responder/engine.js';
import { IssuerIndex, prepareIssuer, type IssuerSource } from '../../src/ocsp/responder/issuers.js';
import { freePort } from '../../src/ocsp/openssl.js';
import {
  aboutAnotherSerial,
  deviceCaDelegate,
  issuerOf,
  makeCert,
  makePki,
  rawServer,
  type Craft,
  type TestPki,
} from './fixture.js';

let pki: TestPki;
let device: string;
let realSigner: IssuerSource;

before(async () => {
  pki = await makePki(1);
  device = pki.devices[0]!.pem;
  realSigner = deviceCaDelegate(pki);
});
after(() => pki?.cleanup());

/** A responder that answers every request with bytes crafted by `craft`. */
async function crafted(source: IssuerSource, craft: Craft) {
  const issuer = prepareIssuer(source);
  const index = new IssuerIndex([issuer]);
  return rawServer((body) => {
    const parsed = parseRequest(body, index);
    if (!parsed.ok) throw new Error(`test responder could not parse: ${parsed.reason}`);
    return { body: craft({ issuer, parsed }) };
  });
}

const honest =
  (status: CertificateStatus = { status: 'good' }, shift = 0, validitySeconds = 3600): Craft =>
  ({ issuer, parsed }) =>
    signResponse({
      issuer,
      certIds: parsed.certIds,
      statuses: parsed.certIds.map(() => status),
      now: new Date(Date.now() + shift),
      validitySeconds,
      ...(parsed.nonce ? { nonce: parsed.nonce } : {}),
    }).der;

async function expectCode(
  craft: Craft,
  code: string,
  source: IssuerSource = realSigner,
  extra: Partial<CheckOptions> = {},
) {
  const server = await crafted(source, craft);
  try {
    await assert.rejects(
      checkCertificateStatus({ certificate: device, issuer: pki.deviceCa, url: server.url, ...extra }),
      (e: { code?: string; message?: string }) => {
        assert.equal(e.code, code, e.message);
        return true;
      },
    );
  } finally {
    await server.close();
  }
}

test('an honest crafted response passes: the harness itself is sound', async () => {
  const server = await crafted(realSigner, honest());
  try {
    assert.equal(
      (await requireGood({ certificate: device, issuer: pki.deviceCa, url: server.url })).status,
      'good',
    );
  } finally {
    await server.close();
  }
});

test('bad signature: one flipped byte → SIMCRED_OCSP_BAD_SIGNATURE', async () => {
  await expectCode((ctx) => {
    const resp = AsnConvert.parse(honest()(ctx), OCSPResponse);
    const basic = AsnConvert.parse(resp.responseBytes!.response.buffer, BasicOCSPResponse);
    const sig = new Uint8Array(basic.signature.slice(0));
    sig[sig.length - 3] = sig[sig.length - 3]! ^ 0x01;
    basic.signature = sig.buffer;
    resp.responseBytes!.response = new OctetString(AsnConvert.serialize(basic));
    return Buffer.from(AsnConvert.serialize(resp));
  }, 'SIMCRED_OCSP_BAD_SIGNATURE');
});

test('unauthorised signers → SIMCRED_OCSP_UNAUTHORIZED_SIGNER', async () => {
  // signed by an OCSP-signing certificate from a foreign CA
  const foreignCa = makeCert({ cn: 'foreign CA', ca: true });
  const foreignSigner = makeCert({ cn: 'foreign OCSP', issuer: foreignCa.issuer, ocspSigner: true });
  await expectCode(honest(), 'SIMCRED_OCSP_UNAUTHORIZED_SIGNER', {
    name: 'device-ca',
    certPem: pki.deviceCa,
    signerCertPem: foreignSigner.pem,
    signerKeyPem: foreignSigner.keyPem,
  });
  // issued by the right CA but without id-kp-OCSPSigning
  const caIssuer = issuerOf(pki.deviceCa, pki.deviceCaKey);
  const noEku = makeCert({ cn: 'no eku', issuer: caIssuer });
  await expectCode(honest(), 'SIMCRED_OCSP_UNAUTHORIZED_SIGNER', {
    name: 'device-ca',
    certPem: pki.deviceCa,
    signerCertPem: noEku.pem,
    signerKeyPem: noEku.keyPem,
  });
  // a proper delegated signer, but expired
  const expired = makeCert({
    cn: 'expired',
    issuer: caIssuer,
    ocspSigner: true,
    notAfter: new Date(Date.now() - 7200_000),
  });
  await expectCode(honest(), 'SIMCRED_OCSP_UNAUTHORIZED_SIGNER', {
    name: 'device-ca',
    certPem: pki.deviceCa,
    signerCertPem: expired.pem,
    signerKeyPem: expired.keyPem,
  });
  // but a delegated signer the CA issued now, and the CA itself, are accepted
  const fresh = makeCert({ cn: 'fresh delegate', issuer: caIssuer, ocspSigner: true });
  for (const source of [
    {
      name: 'device-ca' as const,
      certPem: pki.deviceCa,
      signerCertPem: fresh.pem,
      signerKeyPem: fresh.keyPem,
    },
    {
      name: 'device-ca' as const,
      certPem: pki.deviceCa,
      signerKeyPem: pki.pem(pki.manifest.manufacturer.deviceCa.key),
    },
  ]) {
    const server = await crafted(source, honest());
    try {
      assert.equal(
        (await requireGood({ certificate: device, issuer: pki.deviceCa, url: server.url })).status,
        'good',
      );
    } finally {
      await server.close();
    }
  }
});

test('nonce mismatch: another nonce or none → SIMCRED_OCSP_NONCE_MISMATCH', async () => {
  const other = Buffer.from(AsnConvert.serialize(new OctetString(Buffer.alloc(16, 9))));
  await expectCode(
    ({ issuer, parsed }) =>
      signResponse({
        issuer,
        certIds: parsed.certIds,
        statuses: [{ status: 'good' }],
        nonce: other,
        now: new Date(),
        validitySeconds: 60,
      }).der,
    'SIMCRED_OCSP_NONCE_MISMATCH',
  );
  await expectCode(
    ({ issuer, parsed }) =>
      signResponse({
        issuer,
        certIds: parsed.certIds,
        statuses: [{ status: 'good' }],
        now: new Date(),
        validitySeconds: 60,
      }).der,
    'SIMCRED_OCSP_NONCE_MISMATCH',
  );
});

test('stale: nextUpdate passed, or thisUpdate in the future → SIMCRED_OCSP_STALE', async () => {
  await expectCode(honest({ status: 'good' }, -2 * 3600_000, 3600), 'SIMCRED_OCSP_STALE');
  await expectCode(honest({ status: 'good' }, 600_000), 'SIMCRED_OCSP_STALE');
  // within the skew both are fine
  const server = await crafted(realSigner, honest({ status: 'good' }, 20_000));
  try {
    assert.equal(
      (
        await checkCertificateStatus({
          certificate: device,
          issuer: pki.deviceCa,
          url: server.url,
          clockSkewSeconds: 60,
        })
      ).status,
      'good',
    );
  } finally {
    await server.close();
  }
});

test('a response about another serial → SIMCRED_OCSP_CERTID_MISMATCH', async () => {
  await expectCode(aboutAnotherSerial, 'SIMCRED_OCSP_CERTID_MISMATCH');
});

test('unknown and revoked are statuses; requireGood turns them into errors', async () => {
  const unknown = await crafted(realSigner, honest({ status: 'unknown' }));
  const revokedAt = new Date(Date.now() - 60_000);
  const revoked = await crafted(realSigner, honest({ status: 'revoked', revokedAt, reason: 1 }));
  try {
    assert.equal(
      (await checkCertificateStatus({ certificate: device, issuer: pki.deviceCa, url: unknown.url })).status,
      'unknown',
    );
    await assert.rejects(requireGood({ certificate: device, issuer: pki.deviceCa, url: unknown.url }), {
      code: 'SIMCRED_OCSP_UNKNOWN',
    });
    const r = await checkCertificateStatus({ certificate: device, issuer: pki.deviceCa, url: revoked.url });
    assert.equal(r.status, 'revoked');
    assert.equal(r.reason, 1);
    assert.equal(r.revokedAt!.getTime(), Math.floor(revokedAt.getTime() / 1000) * 1000);
    await assert.rejects(requireGood({ certificate: device, issuer: pki.deviceCa, url: revoked.url }), {
      code: 'SIMCRED_OCSP_REVOKED',
    });
  } finally {
    await unknown.close();
    await revoked.close();
  }
});

test('responder errors, HTTP errors, garbage and unreachable responders each have their code', async () => {
  await expectCode(() => ERROR_RESPONSES.tryLater, 'SIMCRED_OCSP_RESPONDER_ERROR');
  await expectCode(() => ERROR_RESPONSES.unauthorized, 'SIMCRED_OCSP_RESPONDER_ERROR');
  await expectCode(() => Buffer.from('garbage'), 'SIMCRED_OCSP_MALFORMED_RESPONSE');
  const http500 = await rawServer(() => ({ status: 500, body: Buffer.from('oops'), type: 'text/plain' }));
  try {
    await assert.rejects(
      checkCertificateStatus({ certificate: device, issuer: pki.deviceCa, url: http500.url }),
      { code: 'SIMCRED_OCSP_HTTP_ERROR' },
    );
  } finally {
    await http500.close();
  }
  const dead = `http://127.0.0.1:${await freePort()}`;
  await assert.rejects(
    checkCertificateStatus({ certificate: device, issuer: pki.deviceCa, url: dead }),
    (e: { code?: string; status?: number; retryAfter?: number }) => {
      assert.equal(e.code, 'SIMCRED_OCSP_UNREACHABLE');
      assert.equal(e.status, 503);
      assert.ok((e.retryAfter ?? 0) > 0);
      return true;
    },
  );
  // a responder that never answers: timeout → unreachable
  const silent = await rawServer(() => {
    throw new Error('never');
  });
  silent.server.removeAllListeners('request');
  try {
    await assert.rejects(
      checkCertificateStatus({ certificate: device, issuer: pki.deviceCa, url: silent.url, timeoutMs: 300 }),
      { code: 'SIMCRED_OCSP_UNREACHABLE' },
    );
  } finally {
    await silent.close();
  }
  // several responders: a dead one is skipped
  const good = await crafted(realSigner, honest());
  try {
    assert.equal(
      (await requireGood({ certificate: device, issuer: pki.deviceCa, urls: [dead, good.url] })).status,
      'good',
    );
  } finally {
    await good.close();
  }
});
