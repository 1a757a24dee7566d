// The "crypto floor" of one onboarding: public-key operations counted on WebCrypto (which jose and
// @peculiar/x509 use), and ms/op of sealPackage / inspectPackage / openPackage. Timing is reported
// with t.diagnostic, never asserted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  certificateStats,
  clearCertificateCaches,
  inspectPackage,
  openPackage,
  parseCertificates,
  sealPackage,
  signProofOfPossession,
  verifyProofOfPossession,
} from '../../src/crypto/index.js';
import { buildFixture, CREDENTIALS } from './fixture.js';

const f = await buildFixture();
const roots = parseCertificates([f.operatorRoot.pem]);
const deviceNonce = Buffer.alloc(32, 0xd1);
const ITERATIONS = Number(process.env.SIMCRED_CRYPTO_BENCH_ITERATIONS ?? 500);

type Op =
  | 'sign'
  | 'verify'
  | 'deriveBits'
  | 'deriveKey'
  | 'encrypt'
  | 'decrypt'
  | 'generateKey'
  | 'wrapKey'
  | 'unwrapKey';
const OPS: Op[] = [
  'sign',
  'verify',
  'deriveBits',
  'deriveKey',
  'encrypt',
  'decrypt',
  'generateKey',
  'wrapKey',
  'unwrapKey',
];
const counts = new Map<string, number>();
const subtle = webcrypto.subtle as unknown as Record<Op, (...args: unknown[]) => Promise<unknown>>;
for (const op of OPS) {
  const original = subtle[op].bind(webcrypto.subtle);
  subtle[op] = (...args: unknown[]) => {
    const alg = args[0] as string | { name: string };
    const name = `${op}:${typeof alg === 'string' ? alg : alg.name}`;
    counts.set(name, (counts.get(name) ?? 0) + 1);
    return original(...args);
  };
}
/** WebCrypto calls (jose, key generation) plus native certificate-signature checks (chain links). */
async function countOps(run: () => Promise<unknown>): Promise<string> {
  counts.clear();
  const links = certificateStats.linkVerifications;
  await run();
  const linkChecks = certificateStats.linkVerifications - links;
  if (linkChecks > 0) counts.set('verify:certificate-link', linkChecks);
  return [...counts].map(([k, v]) => `${k}×${v}`).join(', ');
}

const devices = [
  ['EC P-256', f.deviceEc],
  ['RSA-2048', f.deviceRsa],
] as const;

function sealFor(device: (typeof devices)[number][1]) {
  return sealPackage({
    credentials: CREDENTIALS,
    dsimId: 'dsim-bench',
    deviceNonce,
    devicePublicKey: device.publicKey,
    operatorSigningKey: f.signer.key,
    operatorChainPem: [f.signer.pem, f.operatorCa.pem],
    ttlSeconds: 3600,
  });
}

test('public-key operations per package (counted on WebCrypto and the chain verifier)', async (t) => {
  for (const [name, device] of devices) {
    let jws = '';
    t.diagnostic(`${name} sealPackage (HSS): ${await countOps(async () => (jws = await sealFor(device)))}`);
    clearCertificateCaches();
    const cold = await countOps(() => inspectPackage(jws, { operatorRoots: [f.operatorRoot.pem] }));
    t.diagnostic(`${name} inspectPackage (server, cold): ${cold}`);
    assert.match(cold, /verify:ECDSA×1/);
    assert.match(cold, /verify:certificate-link×2/);
    const warm = await countOps(() => inspectPackage(jws, { operatorRoots: [f.operatorRoot.pem] }));
    t.diagnostic(`${name} inspectPackage (server, warm chain memo): ${warm}`);
    assert.doesNotMatch(warm, /certificate-link/);
    clearCertificateCaches();
    const opened = await countOps(() => openPackage(jws, openOptions(device)));
    t.diagnostic(`${name} openPackage (device, cold): ${opened}`);
    assert.match(opened, /verify:ECDSA×1/);
    assert.match(opened, /verify:certificate-link×2/);
  }
});

function openOptions(device: (typeof devices)[number][1]) {
  return {
    operatorRoots: [f.operatorRoot.pem],
    dsimId: 'dsim-bench',
    deviceNonce,
    devicePrivateKey: device.privateKey,
  };
}

async function timeIt(run: () => Promise<unknown> | unknown): Promise<number> {
  for (let i = 0; i < Math.min(20, ITERATIONS); i++) await run(); // warm-up
  const start = performance.now();
  for (let i = 0; i < ITERATIONS; i++) await run();
  return (performance.now() - start) / ITERATIONS;
}

test(`cost: ms/op over ${ITERATIONS} iterations (reported, not asserted)`, async (t) => {
  for (const [name, device] of devices) {
    const jws = await sealFor(device);
    const seal = await timeIt(() => sealFor(device));
    const inspect = await timeIt(() => inspectPackage(jws, { operatorRoots: roots }));
    const openWarm = await timeIt(() => openPackage(jws, openOptions(device)));
    const openCold = await timeIt(() => {
      clearCertificateCaches(); // a device opens one package in its life: nothing is memoised
      return openPackage(jws, openOptions(device));
    });
    const popInput = {
      challenge: Buffer.alloc(32, 1),
      sessionNonce: Buffer.alloc(32, 2),
      dsimId: 'dsim-bench',
    };
    const proof = signProofOfPossession(device.privateKey, popInput);
    const popSign = await timeIt(() => signProofOfPossession(device.privateKey, popInput));
    const popVerify = await timeIt(() => verifyProofOfPossession(device.publicKey, popInput, proof));
    t.diagnostic(
      `${name}: sealPackage ${seal.toFixed(3)} ms/op, inspectPackage ${inspect.toFixed(3)} ms/op, ` +
        `openPackage ${openCold.toFixed(3)} ms/op cold (${openWarm.toFixed(3)} warm), PoP sign ${popSign.toFixed(3)} ms/op, PoP verify ${popVerify.toFixed(3)} ms/op, ` +
        `package ${jws.length} chars`,
    );
  }
});
