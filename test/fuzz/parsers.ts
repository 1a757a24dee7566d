// Fuzz targets for every parser of outside input that runs in process: DER certificates and chains,
// OCSP requests (responder) and responses (strict client), the JOSE package and the receipt, NDJSON
// batches, and AKA messages. Each is a named {arbitrary, run}; see harness.ts for the properties' frame.
import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { CompactSign, decodeProtectedHeader } from 'jose';
import { parseCertificateBase64 } from '../../src/crypto/certificates.js';
import { toBase64url } from '../../src/crypto/encoding.js';
import { inspectPackage, openPackage, sealPackage } from '../../src/crypto/package.js';
import { inspectXmlPackage, openXmlPackage, sealXmlPackage } from '../../src/crypto/xml-package.js';
import { signReceipt, verifyReceipt } from '../../src/crypto/receipt.js';
import type { ErrorCode } from '../../src/errors/index.js';
import { ndjsonLines } from '../../src/http/ndjson.js';
import { Milenage } from '../../src/aka/milenage.js';
import { computeAuts } from '../../src/aka/sqn.js';
import { Usim } from '../../src/aka/usim.js';
import { generateVector, verifyAuts, verifyRes } from '../../src/aka/vectors.js';
import { buildOcspRequest } from '../../src/ocsp/client.js';
import { certificateInfo, serialKey } from '../../src/ocsp/asn1.js';
import { parseRequest, signResponse } from '../../src/ocsp/responder/engine.js';
import { IssuerIndex, loadIssuersFromPki, prepareIssuer } from '../../src/ocsp/responder/issuers.js';
import { verifyOcspResponse } from '../../src/ocsp/verify.js';
import { parseDeviceChain, verifyDeviceChain } from '../../src/pki/device-chain.js';
import { derFault, derInputs, type DerInput } from './der.js';
import { Finding, acceptsOrRefuses, defineTarget, type FuzzTarget } from './harness.js';
import { derOfPem, type FuzzContext } from './context.js';

const OCSP_CLIENT_CODES: ErrorCode[] = [
  'SIMCRED_OCSP_MALFORMED_RESPONSE',
  'SIMCRED_OCSP_RESPONDER_ERROR',
  'SIMCRED_OCSP_BAD_SIGNATURE',
  'SIMCRED_OCSP_UNAUTHORIZED_SIGNER',
  'SIMCRED_OCSP_NONCE_MISMATCH',
  'SIMCRED_OCSP_STALE',
  'SIMCRED_OCSP_CERTID_MISMATCH',
];
const PACKAGE_CODES: ErrorCode[] = [
  'SIMCRED_PACKAGE_MALFORMED',
  'SIMCRED_PACKAGE_SIGNATURE_INVALID',
  'SIMCRED_PACKAGE_CHAIN_INVALID',
  'SIMCRED_PACKAGE_BINDING_MISMATCH',
  'SIMCRED_PACKAGE_EXPIRED',
  'SIMCRED_PACKAGE_DECRYPT_FAILED',
  'SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED',
  'SIMCRED_CRYPTO_KEY_UNSUPPORTED',
];

const XML_PACKAGE_CODES: ErrorCode[] = [
  ...PACKAGE_CODES,
  'SIMCRED_XML_MALFORMED',
  'SIMCRED_XML_DTD_FORBIDDEN',
  'SIMCRED_XML_TOO_LARGE',
  'SIMCRED_XML_SIGNATURE_NOT_SINGLE',
  'SIMCRED_XML_SIGNATURE_WRAPPED',
];

/** A parser that accepted bytes that are not strict DER (the edge must refuse them). */
function requireStrict(accepted: boolean, bytes: Uint8Array, what: string): void {
  const fault = accepted ? derFault(bytes) : undefined;
  if (fault !== undefined) {
    throw new Finding(
      'crash',
      `${what} accepted non-DER input (${fault}: ${Buffer.from(bytes).toString('hex').slice(0, 64)}…)`,
    );
  }
}

/** Base64 text as a device or a header carries it: the input's bytes, or some other text. */
const textOf = (input: DerInput): string => input.bytes.toString('base64');

export async function parserTargets(ctx: FuzzContext): Promise<FuzzTarget[]> {
  const pki = ctx.system.pki;
  const [ecDevice, rsaDevice] = ctx.devices as [(typeof ctx.devices)[0], (typeof ctx.devices)[0]];
  const deviceCaDer = pki.manufacturer.deviceCa.der;
  const leafDers = ctx.devices.map((d) => derOfPem(d.certificatePem));
  const validCertificates = [
    ...leafDers,
    deviceCaDer,
    pki.manufacturer.root.der,
    pki.operator.packageSigner.der,
  ];
  const certificateInputs = derInputs(validCertificates);

  // --- DER certificates and chains -------------------------------------------------------------
  const derCertificate = defineTarget<DerInput>({
    name: 'der-certificate',
    covers:
      'one DER certificate as a device sends it (parseDeviceChain) and as a package x5c carries it (parseCertificateBase64): valid, damaged, BER-not-DER and random bytes',
    arbitrary: certificateInputs,
    async run(input) {
      const text = textOf(input);
      const device = await acceptsOrRefuses(() => parseDeviceChain([text]), ['SIMCRED_CERT_INVALID']);
      requireStrict(device, input.bytes, 'parseDeviceChain');
      const x5c = await acceptsOrRefuses(
        () => parseCertificateBase64(text, 'SIMCRED_PACKAGE_MALFORMED'),
        ['SIMCRED_PACKAGE_MALFORMED'],
      );
      requireStrict(x5c, input.bytes, 'parseCertificateBase64');
      if (input.kind === 'valid' && !(device && x5c))
        throw new Finding('crash', 'a valid certificate was refused');
    },
  });

  const chainElement = fc.oneof(
    certificateInputs.map(textOf),
    fc.constantFrom(...validCertificates.map((d) => d.toString('base64'))),
    fc.string({ maxLength: 64 }),
    fc.base64String({ maxLength: 256 }),
  );
  const deviceChain = defineTarget<string[]>({
    name: 'device-chain',
    covers:
      'a device certificate chain (base64 DER, leaf first) through parseDeviceChain and verifyDeviceChain against the manufacturer roots',
    arbitrary: fc.oneof(
      fc.array(chainElement, { maxLength: 6 }),
      fc.tuple(chainElement, fc.constant(deviceCaDer.toString('base64'))).map((c) => [...c]),
    ),
    async run(chain) {
      let parsed: ReturnType<typeof parseDeviceChain> | undefined;
      await acceptsOrRefuses(() => (parsed = parseDeviceChain(chain)), ['SIMCRED_CERT_INVALID']);
      if (parsed === undefined) return;
      for (const text of chain) requireStrict(true, Buffer.from(text, 'base64'), 'parseDeviceChain');
      const chainOk = await acceptsOrRefuses(
        () => verifyDeviceChain(parsed!, { roots: ctx.manufacturerRoots, now: new Date() }),
        ['SIMCRED_CERT_UNTRUSTED', 'SIMCRED_CERT_INVALID'],
      );
      // Strict DER has one encoding per certificate: a verified chain starts with a manufactured leaf, byte for byte.
      if (chainOk && !leafDers.some((leaf) => leaf.toString('base64') === chain[0])) {
        throw new Finding('crash', 'a chain verified whose leaf is no manufactured device certificate');
      }
    },
  });

  // --- OCSP requests (responder) and responses (strict client) ---------------------------------
  const served = loadIssuersFromPki(ctx.config.pkiDir).map(prepareIssuer);
  const index = new IssuerIndex(served);
  const deviceCaServed = served.find((s) => s.name === 'device-ca')!;
  const leafPems = ctx.devices.map((d) => d.certificatePem);
  const requestSamples = leafPems.flatMap((pem) =>
    (['sha1', 'sha256'] as const).flatMap((hash) =>
      [true, false].map((nonce) =>
        buildOcspRequest({ certificate: pem, issuer: deviceCaServed.cert.der, nonce, hash }),
      ),
    ),
  );
  const ocspRequest = defineTarget<DerInput>({
    name: 'ocsp-request',
    covers:
      'a DER OCSPRequest at the responder (parseRequest): built requests, damaged, BER-not-DER and random bytes',
    arbitrary: derInputs(requestSamples.map((r) => r.der)),
    async run(input) {
      let parsed: ReturnType<typeof parseRequest>;
      try {
        parsed = parseRequest(input.bytes, index);
      } catch (err) {
        throw new Finding('crash', `parseRequest threw ${String(err)}`, { cause: err });
      }
      requireStrict(parsed.ok, input.bytes, 'parseRequest');
      if (input.kind === 'valid' && !parsed.ok)
        throw new Finding('crash', `a built request was refused: ${parsed.reason}`);
    },
  });

  const ocspRequestRoundTrip = defineTarget<{
    device: number;
    nonce: Uint8Array | false;
    hash: 'sha1' | 'sha256';
  }>({
    name: 'ocsp-request-roundtrip',
    covers:
      'buildOcspRequest → parseRequest: the serial and the nonce come back as built, for any 1–32 octet nonce',
    arbitrary: fc.record({
      device: fc.nat(leafPems.length - 1),
      nonce: fc.oneof(fc.constant(false as const), fc.uint8Array({ minLength: 1, maxLength: 32 })),
      hash: fc.constantFrom('sha1' as const, 'sha256' as const),
    }),
    async run({ device, nonce, hash }) {
      const built = buildOcspRequest({
        certificate: leafPems[device]!,
        issuer: deviceCaServed.cert.der,
        nonce,
        hash,
      });
      const parsed = parseRequest(built.der, index);
      if (!parsed.ok) throw new Finding('crash', `round trip refused: ${parsed.reason}`);
      const serial = serialKey(
        new Uint8Array(certificateInfo(derOfPem(leafPems[device]!)).asn.tbsCertificate.serialNumber),
      );
      if (parsed.serials.length !== 1 || parsed.serials[0] !== serial)
        throw new Finding('crash', 'serial changed');
      const nonceBack = parsed.nonce === undefined ? undefined : Buffer.from(parsed.nonce).toString('hex');
      const nonceSent = built.nonce === undefined ? undefined : built.nonce.toString('hex');
      if (nonceBack !== nonceSent) throw new Finding('crash', 'nonce changed');
    },
  });

  const issuerInfo = certificateInfo(deviceCaDer);
  const responseSamples = requestSamples.map((built) => {
    const parsed = parseRequest(built.der, index);
    if (!parsed.ok) throw new Error('fixture: the responder refused a built request');
    const statuses = [{ status: 'good' as const }];
    return {
      built,
      der: signResponse({
        issuer: deviceCaServed,
        certIds: parsed.certIds,
        statuses,
        now: new Date(),
        validitySeconds: 7 * 24 * 3600,
        ...(parsed.nonce ? { nonce: parsed.nonce } : {}),
      }).der,
    };
  });
  const ocspResponse = defineTarget<{ sample: number; input: DerInput }>({
    name: 'ocsp-response',
    covers:
      'a DER OCSPResponse at the strict client (verifyOcspResponse): signed answers, damaged, BER-not-DER and random bytes',
    arbitrary: fc
      .nat(responseSamples.length - 1)
      .chain((sample) => derInputs([responseSamples[sample]!.der]).map((input) => ({ sample, input }))),
    async run({ sample, input }) {
      const { built } = responseSamples[sample]!;
      const ok = await acceptsOrRefuses(
        () =>
          verifyOcspResponse(input.bytes, {
            certId: built.certId,
            issuer: issuerInfo,
            ...(built.nonce ? { nonce: built.nonce } : {}),
            now: new Date(),
            clockSkewSeconds: 300,
          }),
        OCSP_CLIENT_CODES,
      );
      requireStrict(ok, input.bytes, 'verifyOcspResponse');
      if (input.kind === 'valid' && !ok) throw new Finding('crash', 'a signed good answer was refused');
    },
  });

  // --- the JOSE package and the receipt ----------------------------------------------------------
  const signer = pki.operator.packageSigner;
  const operatorChainPem = [signer.pem, pki.operator.operatorCa.pem];
  const deviceNonce = randomBytes(32);
  const packages = await Promise.all(
    [ecDevice, rsaDevice].map(async (device) => ({
      device,
      jws: await sealPackage({
        credentials: {
          imsi: '001010123456789',
          k: '465b5ce8b199b49faa5f0a2ee238a6bc',
          opc: 'cd63cb71954a9f4e48a5994e37a02baf',
          amf: '8000',
          sqn: '000000000020',
          plmn: '00101',
        },
        dsimId: device.image.dsimId,
        deviceNonce,
        devicePublicKey: device.certificatePem,
        operatorSigningKey: signer.privateKey(),
        operatorChainPem,
        ttlSeconds: 7 * 24 * 3600,
      }),
    })),
  );
  const signerKey = signer.privateKey();
  const packageTarget = defineTarget<JwsInput>({
    name: 'jose-package',
    covers:
      'a credential package (compact JWS) at the provisioning / credentialing check (inspectPackage) and at the device (openPackage, EC and RSA): valid, damaged text, headers re-signed with the operator key (x5c BER / damaged, alg, typ … replaced), random JWS-shaped text',
    arbitrary: jwsInputs(packages.map((p) => p.jws)),
    async run(input) {
      const jws = await materialize(input, signerKey);
      const inspected = await acceptsOrRefuses(
        () => inspectPackage(jws, { operatorRoots: [ctx.operatorRoot] }),
        PACKAGE_CODES,
      );
      for (const { device, jws: valid } of packages) {
        const opened = await acceptsOrRefuses(
          () =>
            openPackage(jws, {
              operatorRoots: [ctx.operatorRoot],
              dsimId: device.image.dsimId,
              deviceNonce,
              devicePrivateKey: device.privateKey,
            }),
          PACKAGE_CODES,
        );
        if (opened && !inspected)
          throw new Finding('crash', 'the device opened a package the server check refused');
        if (jws === valid && !opened) throw new Finding('crash', 'the device refused its own valid package');
      }
      if (inspected) x5cMustBeStrict(jws);
    },
  });

  // --- the XML package (docs/crypto.md §6b) ------------------------------------------------------
  const xmlPackages = await Promise.all(
    [ecDevice, rsaDevice].map(async (device) => ({
      device,
      xml: await sealXmlPackage({
        credentials: {
          imsi: '001010123456789',
          k: '465b5ce8b199b49faa5f0a2ee238a6bc',
          opc: 'cd63cb71954a9f4e48a5994e37a02baf',
          amf: '8000',
          sqn: '000000000020',
          plmn: '00101',
        },
        dsimId: device.image.dsimId,
        deviceNonce,
        devicePublicKey: device.certificatePem,
        operatorSigningKey: signer.privateKey(),
        operatorChainPem,
        ttlSeconds: 7 * 24 * 3600,
      }),
    })),
  );
  const xmlPackageTarget = defineTarget<string>({
    name: 'xml-package',
    covers:
      'an XML credential package at the server check (inspectXmlPackage) and at the device (openXmlPackage, EC and RSA): valid, characters replaced / cut / appended, hostile prologues (DTD, entities, PIs), random text',
    arbitrary: xmlInputs(xmlPackages.map((p) => p.xml)),
    async run(xml) {
      const inspected = await acceptsOrRefuses(
        () => inspectXmlPackage(xml, { operatorRoots: [ctx.operatorRoot] }),
        XML_PACKAGE_CODES,
      );
      for (const { device, xml: valid } of xmlPackages) {
        const opened = await acceptsOrRefuses(
          () =>
            openXmlPackage(xml, {
              operatorRoots: [ctx.operatorRoot],
              dsimId: device.image.dsimId,
              deviceNonce,
              devicePrivateKey: device.privateKey,
            }),
          XML_PACKAGE_CODES,
        );
        if (opened && !inspected)
          throw new Finding('crash', 'the device opened a package the server check refused');
        if (xml === valid && !opened) throw new Finding('crash', 'the device refused its own valid package');
      }
    },
  });

  const receiptExpected = { dsimId: ecDevice.image.dsimId, packageId: 'pkg-1', deviceNonce };
  const receipt = await signReceipt(ecDevice.privateKey, receiptExpected);
  // The key as the credentialing server holds it after step 4 (parsing the certificate is not the target).
  const devicePublicKey = createPublicKey(ecDevice.privateKey);
  const receiptClaims = fc.record(
    {
      v: fc.oneof(fc.constant(1), fc.jsonValue()),
      dsimId: fc.oneof(fc.constant(receiptExpected.dsimId), fc.string({ maxLength: 24 })),
      packageId: fc.oneof(fc.constant('pkg-1'), fc.string({ maxLength: 8 })),
      deviceNonce: fc.oneof(fc.constant(toBase64url(deviceNonce)), fc.base64String({ maxLength: 48 })),
      status: fc.oneof(fc.constant('installed'), fc.string({ maxLength: 10 })),
      iat: fc.oneof(fc.nat(), fc.jsonValue()),
    },
    { requiredKeys: [] },
  );
  const receiptTarget = defineTarget<JwsInput>({
    name: 'receipt',
    covers:
      'a device receipt (compact JWS) at the credentialing server (verifyReceipt): valid, damaged, re-signed with the device key under other headers or other claims, random',
    arbitrary: fc.oneof(
      jwsInputs([receipt]),
      receiptClaims.map((claims) => ({
        header: { alg: 'ES256', typ: 'simcred-receipt+jws' },
        payload: Buffer.from(JSON.stringify(claims)).toString('base64url'),
      })),
    ),
    async run(input) {
      const text = await materialize(input, ecDevice.privateKey);
      const ok = await acceptsOrRefuses(
        () => verifyReceipt(text, devicePublicKey, receiptExpected),
        ['SIMCRED_RECEIPT_INVALID'],
      );
      if (text === receipt && !ok) throw new Finding('crash', 'a valid receipt was refused');
    },
  });

  // --- NDJSON batches ----------------------------------------------------------------------------
  const ndjson = defineTarget<{ lines: string[]; bytes: Uint8Array; cuts: number[]; limit: number }>({
    name: 'ndjson',
    covers:
      'NDJSON batch framing (ndjsonLines): any text cut into any chunks gives the same lines as in one piece (UTF-8 split anywhere), lines round-trip, only SIMCRED_BODY_TOO_LARGE',
    arbitrary: fc.record({
      lines: fc.array(
        fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => s.replace(/\n/g, '')),
        { maxLength: 20 },
      ),
      bytes: fc.uint8Array({ maxLength: 400 }),
      cuts: fc.array(fc.nat(500), { maxLength: 8 }),
      limit: fc.constantFrom(16, 64, 16 * 1024),
    }),
    async run({ lines, bytes, cuts, limit }) {
      // Round trip: lines joined with \n, cut anywhere, come back trimmed, blank ones skipped, numbered.
      const text = Buffer.from(lines.join('\n'), 'utf8');
      const expected = lines
        .map((l, i) => ({ lineNumber: i + 1, text: l.trim() }))
        .filter((l) => l.text.length > 0);
      const back = await collect(text, cuts, 16 * 1024);
      if (back.kind === 'lines' && JSON.stringify(back.lines) !== JSON.stringify(expected)) {
        throw new Finding(
          'crash',
          `lines changed: ${JSON.stringify(back.lines)} vs ${JSON.stringify(expected)}`,
        );
      }
      // Random bytes: the chunking does not change the answer (nor whether it is too large, when in one piece).
      const whole = await collect(bytes, [], limit);
      const pieces = await collect(bytes, cuts, limit);
      if (
        whole.kind === 'lines' &&
        pieces.kind === 'lines' &&
        JSON.stringify(whole) !== JSON.stringify(pieces)
      ) {
        throw new Finding('crash', 'chunking changed the lines');
      }
    },
  });

  // --- AKA messages ------------------------------------------------------------------------------
  const k = Buffer.from('465b5ce8b199b49faa5f0a2ee238a6bc', 'hex');
  const opc = Buffer.from('cd63cb71954a9f4e48a5994e37a02baf', 'hex');
  const milenage = new Milenage(k, opc);
  const block = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b));
  const akaUsim = defineTarget<{
    rand: Buffer;
    autn: Buffer | null;
    sqn: number;
    flip: number | null;
    seqMs: number;
  }>({
    name: 'aka-usim',
    covers:
      'RAND/AUTN at the USIM (Usim.authenticate): random AUTN → MAC failure, a network vector → RES = XRES or a sync failure whose AUTS the network opens to SQN_MS, any flipped AUTN bit → MAC failure',
    arbitrary: fc.record({
      rand: block,
      autn: fc.option(block, { freq: 3 }),
      sqn: fc.nat(2 ** 40),
      flip: fc.option(fc.nat(127), { freq: 2 }),
      seqMs: fc.nat(2 ** 30),
    }),
    async run({ rand, autn, sqn, flip, seqMs }) {
      const usim = new Usim({ k, opc });
      if (seqMs > 0) {
        // Bring the USIM to some SQN_MS first with a genuine vector.
        usim.authenticate(
          rand,
          generateVector({ k, opc, sqn: seqMs * 32, amf: Buffer.from('8000', 'hex'), rand }).autn,
        );
      }
      if (autn !== null) {
        await acceptsOrRefuses(() => usim.authenticate(rand, autn), ['SIMCRED_AKA_MAC_FAILURE']);
        return;
      }
      const vector = generateVector({ k, opc, sqn, amf: Buffer.from('8000', 'hex'), rand });
      const sent = Buffer.from(vector.autn);
      if (flip !== null) sent[flip >> 3]! ^= 1 << (flip & 7);
      let answer: ReturnType<Usim['authenticate']>;
      try {
        answer = usim.authenticate(rand, sent);
      } catch (err) {
        if (flip === null) throw new Finding('crash', 'a genuine vector was refused', { cause: err });
        await acceptsOrRefuses(() => Promise.reject(err), ['SIMCRED_AKA_MAC_FAILURE']);
        return;
      }
      if (flip !== null) throw new Finding('crash', 'a flipped AUTN was accepted');
      if (answer.kind === 'success') verifyRes(vector.xres, answer.res);
      else if (verifyAuts({ k, opc, rand, auts: answer.auts }) !== usim.sqnMs)
        throw new Finding('crash', 'AUTS does not open to SQN_MS');
    },
  });

  const akaNetwork = defineTarget<{
    rand: Buffer;
    res: Uint8Array;
    auts: Uint8Array;
    sqnMs: number;
    state: unknown;
  }>({
    name: 'aka-network',
    covers:
      'RES and AUTS at the network (verifyRes, verifyAuts) and a stored USIM state (Usim.fromStorage): random values refused with their codes only, computeAuts → verifyAuts round trip',
    arbitrary: fc.record({
      rand: block,
      res: fc.uint8Array({ maxLength: 20 }),
      auts: fc.uint8Array({ maxLength: 20 }),
      sqnMs: fc.nat(2 ** 47),
      state: fc.oneof(
        fc.jsonValue(),
        fc.record({
          version: fc.oneof(fc.constant(1), fc.jsonValue()),
          k: fc.oneof(fc.constant(k.toString('hex')), fc.string()),
          opc: fc.oneof(fc.constant(opc.toString('hex')), fc.string()),
          sqn: fc.oneof(
            fc.record({
              indBits: fc.jsonValue(),
              delta: fc.jsonValue(),
              ageLimit: fc.jsonValue(),
              seqMs: fc.jsonValue(),
            }),
            fc.jsonValue(),
          ),
        }),
      ),
    }),
    async run({ rand, res, auts, sqnMs, state }) {
      const xres = milenage.f2345(rand).res;
      await acceptsOrRefuses(() => verifyRes(xres, Buffer.from(res)), ['SIMCRED_AKA_RES_MISMATCH']);
      await acceptsOrRefuses(
        () => verifyAuts({ k, opc, rand, auts: Buffer.from(auts) }),
        ['SIMCRED_AKA_AUTS_INVALID'],
      );
      if (verifyAuts({ k, opc, rand, auts: computeAuts(milenage, rand, sqnMs) }) !== sqnMs) {
        throw new Finding('crash', 'AUTS round trip changed SQN_MS');
      }
      await acceptsOrRefuses(() => Usim.fromStorage(state), ['SIMCRED_AKA_STATE_INVALID']);
    },
  });

  return [
    derCertificate,
    deviceChain,
    ocspRequest,
    ocspRequestRoundTrip,
    ocspResponse,
    packageTarget,
    xmlPackageTarget,
    receiptTarget,
    ndjson,
    akaUsim,
    akaNetwork,
  ];
}

/** A package or receipt whose x5c (if any) holds only strict DER: what the server check accepted. */
function x5cMustBeStrict(jws: string): void {
  const x5c = (decodeProtectedHeader(jws).x5c ?? []) as string[];
  for (const text of x5c) requireStrict(true, Buffer.from(text, 'base64'), 'inspectPackage x5c');
}

/** Compact-JWS text with a few characters replaced, removed, or cut. */
function damagedText(jws: string): fc.Arbitrary<string> {
  const alphabet = fc.constantFrom(...'ABCabc012-_.=+/ !{}"'.split(''));
  return fc.oneof(
    fc.array(fc.tuple(fc.nat(jws.length - 1), alphabet), { minLength: 1, maxLength: 4 }).map((edits) => {
      const chars = jws.split('');
      for (const [at, c] of edits) chars[at] = c;
      return chars.join('');
    }),
    fc.nat(jws.length - 1).map((at) => jws.slice(0, at)),
    fc.tuple(fc.nat(jws.length - 1), fc.nat(40)).map(([at, n]) => jws.slice(0, at) + jws.slice(at + n)),
    fc.string({ maxLength: 20 }).map((s) => jws + s),
  );
}

/** Compact-JWS text as sent, or a header and payload to be signed with the genuine key first. */
type JwsInput = { text: string } | { header: Record<string, unknown>; payload: string };

async function materialize(input: JwsInput, key: KeyObject): Promise<string> {
  if ('text' in input) return input.text;
  try {
    return await new CompactSign(Buffer.from(input.payload, 'base64url'))
      .setProtectedHeader(input.header as { alg: string })
      .sign(key);
  } catch {
    // jose will not sign this header (no usable alg): send it with the genuine signature part instead.
    return `${Buffer.from(JSON.stringify(input.header)).toString('base64url')}.${input.payload}.AAAA`;
  }
}

/** Inputs derived from valid compact JWS texts, and JWS-shaped or random text. */
function jwsInputs(valid: readonly string[]): fc.Arbitrary<JwsInput> {
  const text = (a: fc.Arbitrary<string>) => a.map((t) => ({ text: t }));
  return fc.oneof(
    { weight: 1, arbitrary: text(fc.constantFrom(...valid)) },
    { weight: 3, arbitrary: text(fc.constantFrom(...valid).chain(damagedText)) },
    { weight: 3, arbitrary: fc.constantFrom(...valid).chain(remadeHeader) },
    { weight: 1, arbitrary: text(fc.string({ maxLength: 300 })) },
    {
      weight: 1,
      arbitrary: text(
        fc
          .array(fc.base64String({ maxLength: 200 }), { minLength: 1, maxLength: 6 })
          .map((parts) =>
            parts.map((p) => p.replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_')).join('.'),
          ),
      ),
    },
  );
}

/**
 * The same payload under a changed protected header, to be signed again with the genuine key: the
 * checks behind the signature (typ, alg, x5c contents, including x5c certificates that are BER but not
 * DER) are what answers.
 */
function remadeHeader(jws: string): fc.Arbitrary<JwsInput> {
  const [headerPart, payload] = jws.split('.') as [string, string];
  const header = JSON.parse(Buffer.from(headerPart, 'base64url').toString('utf8')) as Record<string, unknown>;
  const x5c = (header.x5c ?? []) as string[];
  const x5cEdits = x5c.length
    ? fc.nat(x5c.length - 1).chain((i) =>
        derInputs([Buffer.from(x5c[i]!, 'base64')]).map((input) => {
          const next = [...x5c];
          next[i] = input.bytes.toString('base64');
          return { ...header, x5c: next };
        }),
      )
    : fc.constant(header);
  const fieldEdits = fc
    .tuple(fc.constantFrom('typ', 'alg', 'x5c', 'cty', 'crit', 'kid', 'b64', 'jwk'), fc.jsonValue())
    .map(([field, value]) => ({ ...header, [field]: value }));
  return fc.oneof(x5cEdits, fieldEdits).map((h) => ({ header: h, payload }));
}

async function collect(
  bytes: Uint8Array,
  cuts: number[],
  limit: number,
): Promise<{ kind: 'lines'; lines: { lineNumber: number; text: string }[] } | { kind: 'too-large' }> {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < bytes.byteLength))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const at of [...points, bytes.byteLength]) {
    chunks.push(Buffer.from(bytes.subarray(from, at)));
    from = at;
  }
  async function* source() {
    yield* chunks;
  }
  const lines: { lineNumber: number; text: string }[] = [];
  try {
    for await (const line of ndjsonLines(source(), limit)) lines.push(line);
  } catch (err) {
    await acceptsOrRefuses(() => Promise.reject(err), ['SIMCRED_BODY_TOO_LARGE']);
    return { kind: 'too-large' };
  }
  return { kind: 'lines', lines };
}

/** XML package text: valid, damaged as damagedText does, behind a hostile prologue, or random. */
function xmlInputs(valid: readonly string[]): fc.Arbitrary<string> {
  const prologues = fc.constantFrom(
    '<!DOCTYPE CredentialPackage [<!ENTITY e "x">]>',
    '<!DOCTYPE CredentialPackage SYSTEM "http://127.0.0.1:9/x.dtd">',
    '<?xml-stylesheet href="x"?>',
    '<?xml version="1.0"?><!-- c -->',
    '\uFEFF',
  );
  return fc.oneof(
    { weight: 1, arbitrary: fc.constantFrom(...valid) },
    { weight: 4, arbitrary: fc.constantFrom(...valid).chain(damagedText) },
    { weight: 1, arbitrary: fc.tuple(prologues, fc.constantFrom(...valid)).map(([p, v]) => p + v) },
    { weight: 1, arbitrary: fc.string({ maxLength: 300 }).map((t) => `<${t}`) },
  );
}
