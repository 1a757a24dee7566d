import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  BasicOCSPResponse,
  OCSPRequest,
  OCSPResponse,
  OCSPResponseStatus,
  Request,
  TBSRequest,
  id_pkix_ocsp_nonce,
} from '@peculiar/asn1-ocsp';
import { Extension } from '@peculiar/asn1-x509';
import { buildOcspRequest, checkCertificateStatus, requireGood } from '../../src/ocsp/client.js';
import { startOcspResponder, type OcspResponder } from '../../src/ocsp/responder/server.js';
import { certificateDer, certificateInfo } from '../../src/ocsp/asn1.js';
import { CaStore } from '../../src/pki/store.js';
import { CLI, runCli } from '../helpers/cli.js';
import { captureLogger, makeCert, makePki, type TestPki } from './fixture.js';

let pki: TestPki;
let responder: OcspResponder;
const log = captureLogger();
/** The responder's clock: the real one moved on by what the test adds (its clients keep the real one). */
let clockAheadMs = 0;

before(async () => {
  pki = await makePki(3);
  responder = await startOcspResponder({
    pkiDir: pki.dir,
    port: 0,
    logger: log.logger,
    bodyLimit: 8 * 1024,
    generationCheckMs: 200,
    clock: () => new Date(Date.now() + clockAheadMs),
  });
});
after(async () => {
  await responder?.close();
  pki?.cleanup();
});

const post = (body: Uint8Array, type = 'application/ocsp-request') =>
  fetch(responder.url, { method: 'POST', body, headers: { 'content-type': type } });

async function ocspStatus(res: Response): Promise<OCSPResponseStatus> {
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/ocsp-response');
  return AsnConvert.parse(Buffer.from(await res.arrayBuffer()), OCSPResponse).responseStatus;
}

function withNonce(der: Buffer, nonce: Uint8Array): Buffer {
  const req = AsnConvert.parse(der, OCSPRequest);
  req.tbsRequest.requestExtensions = [
    new Extension({
      extnID: id_pkix_ocsp_nonce,
      extnValue: new OctetString(AsnConvert.serialize(new OctetString(nonce))),
    }),
  ];
  return Buffer.from(AsnConvert.serialize(req));
}

test('POST and GET, SHA-1 and SHA-256 CertIDs, both issuing CAs, from one responder', async () => {
  const device = pki.devices[0]!;
  const viaPost = await requireGood({ certificate: device.pem, issuer: pki.deviceCa, url: responder.url });
  assert.equal(viaPost.status, 'good');
  assert.ok(viaPost.nextUpdate!.getTime() - viaPost.thisUpdate.getTime() === 3600_000);
  const viaGet = await checkCertificateStatus({
    certificate: device.pem,
    issuer: pki.deviceCa,
    url: responder.url,
    method: 'GET',
    nonce: false,
  });
  assert.equal(viaGet.status, 'good');
  const sha256 = await checkCertificateStatus({
    certificate: device.pem,
    issuer: pki.deviceCa,
    url: `${responder.url}/ocsp`,
    hash: 'sha256',
  });
  assert.equal(sha256.status, 'good');
  const operator = await checkCertificateStatus({
    certificate: pki.packageSigner,
    issuer: pki.operatorCa,
    url: responder.url,
  });
  assert.equal(operator.status, 'good');
  // A certificate the CA never issued (same issuer name/key in the CertID) is unknown.
  const foreign = makeCert({ cn: 'not issued here' });
  const unknown = await checkCertificateStatus({
    certificate: foreign.pem,
    issuer: pki.deviceCa,
    url: responder.url,
  });
  assert.equal(unknown.status, 'unknown');
});

test('several certificates in one request get one SingleResponse each, nonce echoed', async () => {
  const first = buildOcspRequest({ certificate: pki.devices[0]!.pem, issuer: pki.deviceCa, nonce: false });
  const requestList = pki.devices.map(
    (d) =>
      new Request({
        reqCert: buildOcspRequest({ certificate: d.pem, issuer: pki.deviceCa, nonce: false }).certId,
      }),
  );
  const req = new OCSPRequest({ tbsRequest: new TBSRequest({ requestList }) });
  const nonce = Buffer.alloc(32, 7);
  const der = withNonce(Buffer.from(AsnConvert.serialize(req)), nonce);
  const res = await post(der);
  assert.equal(res.headers.get('cache-control'), 'no-cache');
  const body = AsnConvert.parse(Buffer.from(await res.arrayBuffer()), OCSPResponse);
  assert.equal(body.responseStatus, OCSPResponseStatus.successful);
  const basic = AsnConvert.parse(body.responseBytes!.response.buffer, BasicOCSPResponse);
  assert.equal(basic.tbsResponseData.responses.length, pki.devices.length);
  assert.ok(basic.tbsResponseData.responderID.byKey, 'ResponderID byKey');
  assert.equal(basic.certs?.length, 1, 'the delegated signer certificate is included');
  const echoed = basic.tbsResponseData.responseExtensions!.find((e) => e.extnID === id_pkix_ocsp_nonce)!;
  assert.deepEqual(
    Buffer.from(echoed.extnValue.buffer),
    Buffer.from(AsnConvert.serialize(new OctetString(nonce))),
  );
  assert.ok(first.der.length > 0);
});

test('bad input gets OCSP errors or 4xx, and the responder keeps serving', async () => {
  const good = buildOcspRequest({ certificate: pki.devices[1]!.pem, issuer: pki.deviceCa, nonce: false });
  // nonce of 33 octets: malformedRequest (RFC 8954); 32 is fine
  assert.equal(
    await ocspStatus(await post(withNonce(good.der, Buffer.alloc(33, 1)))),
    OCSPResponseStatus.malformedRequest,
  );
  assert.equal(
    await ocspStatus(await post(withNonce(good.der, Buffer.alloc(32, 1)))),
    OCSPResponseStatus.successful,
  );
  // garbage and truncated DER
  assert.equal(
    await ocspStatus(await post(Buffer.from('not an ocsp request at all'))),
    OCSPResponseStatus.malformedRequest,
  );
  assert.equal(
    await ocspStatus(await post(good.der.subarray(0, good.der.length - 5))),
    OCSPResponseStatus.malformedRequest,
  );
  assert.equal(await ocspStatus(await fetch(`${responder.url}/AAAA`)), OCSPResponseStatus.malformedRequest);
  assert.equal(await ocspStatus(await fetch(`${responder.url}/MAA%3D`)), OCSPResponseStatus.malformedRequest);
  assert.equal((await fetch(`${responder.url}/%%%`)).status, 400); // not even a URL
  // an issuer this responder does not serve
  const foreignCa = makeCert({ cn: 'foreign CA', ca: true });
  const foreignLeaf = makeCert({ cn: 'foreign leaf', issuer: foreignCa.issuer });
  const other = buildOcspRequest({ certificate: foreignLeaf.pem, issuer: foreignCa.pem });
  assert.equal(await ocspStatus(await post(other.der)), OCSPResponseStatus.unauthorized);
  // HTTP misuse: the JSON error contract
  let res = await post(good.der, 'application/json');
  assert.equal(res.status, 415);
  assert.equal(((await res.json()) as { code: string }).code, 'SIMCRED_UNSUPPORTED_MEDIA_TYPE');
  res = await post(Buffer.alloc(20_000, 0x30));
  assert.equal(res.status, 413);
  assert.equal(((await res.json()) as { code: string }).code, 'SIMCRED_BODY_TOO_LARGE');
  res = await fetch(responder.url, { method: 'DELETE' });
  assert.ok(res.status === 404 || res.status === 405);
  // still serving
  assert.equal(
    (await requireGood({ certificate: pki.devices[1]!.pem, issuer: pki.deviceCa, url: responder.url }))
      .status,
    'good',
  );
  assert.ok(responder.stats.errors.malformedRequest >= 4);
  assert.ok(responder.stats.errors.unauthorized >= 1);
  assert.doesNotMatch(log.text(), /PRIVATE KEY|privateKey/);
});

test('nonce-less responses and statuses are cached (RFC 5019 headers), and dropped after a revocation', async () => {
  const device = pki.devices[2]!;
  // Nonce'd answers are signed afresh each time, but the status is read from the CA store once.
  await requireGood({ certificate: device.pem, issuer: pki.deviceCa, url: responder.url });
  const statusHitsBefore = responder.stats.statusHits;
  await requireGood({ certificate: device.pem, issuer: pki.deviceCa, url: responder.url });
  assert.equal(responder.stats.statusHits, statusHitsBefore + 1);
  const req = buildOcspRequest({ certificate: device.pem, issuer: pki.deviceCa, nonce: false });
  const url = `${responder.url}/${encodeURIComponent(req.der.toString('base64'))}`;
  const first = await fetch(url);
  const hitsBefore = responder.stats.cacheHits;
  const second = await fetch(url);
  assert.equal(responder.stats.cacheHits, hitsBefore + 1);
  const cc = second.headers.get('cache-control')!;
  assert.match(cc, /^max-age=\d+, public, no-transform, must-revalidate$/);
  assert.ok(Number(/max-age=(\d+)/.exec(cc)![1]) > 3500);
  assert.ok(second.headers.get('etag'));
  assert.ok(second.headers.get('last-modified'));
  assert.ok(second.headers.get('expires'));
  assert.deepEqual(Buffer.from(await first.arrayBuffer()), Buffer.from(await second.arrayBuffer()));

  const revoke = await runCli([
    'pki',
    'revoke',
    '--dir',
    pki.dir,
    '--dsim',
    device.dsimId,
    '--reason',
    'keyCompromise',
  ]);
  assert.equal(revoke.code, 0, revoke.stderr);
  // The responder re-reads the revocations at most every 200 ms: its clock moves past that at once.
  clockAheadMs += 200;
  const after = await checkCertificateStatus({
    certificate: device.pem,
    issuer: pki.deviceCa,
    url: responder.url,
    method: 'GET',
    nonce: false,
  });
  assert.equal(after.status, 'revoked');
  assert.equal(after.reason, 1);
  await assert.rejects(
    requireGood({ certificate: device.pem, issuer: pki.deviceCa, url: responder.url }),
    (e: { code?: string }) => e.code === 'SIMCRED_OCSP_REVOKED',
  );
});

test('serve ocsp --revocation-check 0: a revocation is in the very next answer, nonce or not', async () => {
  const device = pki.devices[1]!;
  const store = await CaStore.open(pki.dir);
  const served = spawn(
    process.execPath,
    [CLI, 'serve', 'ocsp', '--dir', pki.dir, '--port', '0', '--revocation-check', '0', '--log-level', 'warn'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      served.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /listening on (http:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      served.once('exit', (code) => reject(new Error(`serve ocsp exited (${code}): ${out}`)));
    });
    // Both answers kept: the status (nonce'd) and a pre-signed nonce-less response.
    await requireGood({ certificate: device.pem, issuer: pki.deviceCa, url });
    const plain = { certificate: device.pem, issuer: pki.deviceCa, url, nonce: false } as const;
    assert.equal((await checkCertificateStatus(plain)).status, 'good');
    // Revoked in the CA store a few milliseconds after those answers: with the default 200 ms
    // between checks both would still be served from memory.
    await store.revoke('device-ca', certificateInfo(certificateDer(device.pem)).serialHex, new Date(), 1);
    await assert.rejects(
      requireGood({ certificate: device.pem, issuer: pki.deviceCa, url }),
      (e: { code?: string }) => e.code === 'SIMCRED_OCSP_REVOKED',
    );
    assert.equal((await checkCertificateStatus(plain)).status, 'revoked');
  } finally {
    served.kill('SIGTERM');
    await store.close();
  }
});
