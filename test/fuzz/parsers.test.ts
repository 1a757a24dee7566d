// The parser fuzz targets at a small budget (the long run: `npm run fuzz`, docs/fuzzing.md), and the
// findings they made, as fixed examples.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isSimcredError } from '../../src/errors/index.js';
import { buildOcspRequest } from '../../src/ocsp/client.js';
import { certificateInfo } from '../../src/ocsp/asn1.js';
import { parseRequest, signResponse } from '../../src/ocsp/responder/engine.js';
import { IssuerIndex, loadIssuersFromPki, prepareIssuer } from '../../src/ocsp/responder/issuers.js';
import { verifyOcspResponse } from '../../src/ocsp/verify.js';
import { encodeTlv, readTlv } from './der.js';
import { runTarget, seedFromEnvironment, type FuzzTarget } from './harness.js';
import { startFuzzContext, type FuzzContext } from './context.js';
import { parserTargets } from './parsers.js';

/** Inputs per target in `npm test`; FUZZ_RUNS overrides. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 300);

describe('fuzz: parsers of outside input', () => {
  let ctx: FuzzContext;
  let targets: FuzzTarget[];
  before(async () => {
    ctx = await startFuzzContext();
    targets = await parserTargets(ctx);
  });
  after(async () => {
    await ctx.close();
  });

  for (const name of [
    'der-certificate',
    'device-chain',
    'ocsp-request',
    'ocsp-request-roundtrip',
    'ocsp-response',
    'jose-package',
    'xml-package',
    'receipt',
    'ndjson',
    'aka-usim',
    'aka-network',
  ]) {
    test(name, async (t) => {
      const target = targets.find((x) => x.name === name);
      assert.ok(target, `target ${name} exists`);
      const seed = seedFromEnvironment();
      t.diagnostic(`seed ${seed} (FUZZ_SEED=${seed} replays)`);
      const summary = await runTarget(target, { runs: RUNS, seed });
      assert.deepEqual(summary.failures, [], JSON.stringify(summary.failures, null, 2));
      assert.equal(summary.inputs, RUNS);
    });
  }

  describe('what the fuzzers found, as fixed examples', () => {
    function ocspFixture() {
      const served = loadIssuersFromPki(ctx.config.pkiDir).map(prepareIssuer);
      const deviceCa = served.find((s) => s.name === 'device-ca')!;
      const built = buildOcspRequest({
        certificate: ctx.devices[0]!.certificatePem,
        issuer: deviceCa.cert.der,
      });
      const parsed = parseRequest(built.der, new IssuerIndex(served));
      assert.ok(parsed.ok);
      const response = signResponse({
        issuer: deviceCa,
        certIds: parsed.certIds,
        statuses: [{ status: 'good' }],
        now: new Date(),
        validitySeconds: 3600,
        ...(parsed.nonce ? { nonce: parsed.nonce } : {}),
      }).der;
      const verify = (der: Uint8Array) =>
        verifyOcspResponse(der, {
          certId: built.certId,
          issuer: certificateInfo(deviceCa.cert.der),
          ...(built.nonce ? { nonce: built.nonce } : {}),
          now: new Date(),
          clockSkewSeconds: 60,
        });
      return { served, built, response, verify };
    }

    test('the responder answers malformedRequest to a request in BER (indefinite or padded length)', () => {
      const { served, built } = ocspFixture();
      const root = readTlv(built.der, 0, true).tlv;
      const indefinite = encodeTlv(root, (e) => (e === root ? 'indefinite' : 'der'));
      const padded = encodeTlv(root, (e) => (e === root.children![0] ? 'long-form-padded' : 'der'));
      for (const ber of [indefinite, padded]) {
        const parsed = parseRequest(ber, new IssuerIndex(served));
        assert.equal(parsed.ok, false);
        assert.equal(!parsed.ok && parsed.error, 'malformedRequest');
      }
      assert.equal(parseRequest(built.der, new IssuerIndex(served)).ok, true, 'the DER request still parses');
    });

    test('the strict client refuses a signed response re-encoded in BER outside the signed part', () => {
      const { response, verify } = ocspFixture();
      assert.equal(verify(response).status, 'good');
      const root = readTlv(response, 0, true).tlv;
      const ber = encodeTlv(root, (e) => (e === root ? 'long-form-padded' : 'der'));
      assert.throws(() => verify(ber), { code: 'SIMCRED_OCSP_MALFORMED_RESPONSE' });
    });

    test("a response whose delegated signer's key does not import is refused with an OCSP code, not thrown raw", () => {
      const { response, verify } = ocspFixture();
      // The named curve in the delegated signer's SubjectPublicKeyInfo (in the certs field, outside the
      // signed part): its key bits, and so the ResponderID byKey, still match, but no key imports.
      const prime256v1 = Buffer.from('06082a8648ce3d030107', 'hex');
      const at = response.lastIndexOf(prime256v1);
      assert.ok(at > 0);
      const damaged = Buffer.from(response);
      damaged[at + prime256v1.length - 1] = 0x7f; // 1.2.840.10045.3.1.127: no such curve
      assert.throws(
        () => verify(damaged),
        (err: unknown) => isSimcredError(err) && err.code.startsWith('SIMCRED_OCSP_'),
      );
    });
  });
});
