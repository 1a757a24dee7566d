import { isPkcs11Uri } from '../keys/pkcs11-uri.js';
import {
  X509Certificate,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  randomBytes,
  sign,
  verify,
  type KeyObject,
  type SignKeyObjectInput,
  type VerifyKeyObjectInput,
} from 'node:crypto';
import type { LoadedFactoryImage, LoadedPki } from '../pki/index.js';
import { round } from './processes.js';

/** What one public-key operation is. */
export type FloorOperationKind = 'sign' | 'verify' | 'keygen' | 'ecdh';

/** One public-key operation an onboarding cannot avoid, where it happens and how often. */
export interface FloorOperation {
  side: 'server' | 'device';
  /** The role (or "device") that does it. */
  role: string;
  /** DESIGN §2 step. */
  step: string;
  /** What it is, in the code's words. */
  operation: string;
  /** Where in the code. */
  code: string;
  kind: FloorOperationKind;
  /** Times per onboarding. */
  count: number;
  /** Measured µs per operation (single thread, warm). */
  microseconds: number;
}

export interface CryptoFloor {
  operations: FloorOperation[];
  /** Σ count × µs of the server-side operations, ms per onboarding. */
  serverMs: number;
  /** The same for the device side (devices are simulated in the bench process, not server CPU). */
  deviceMs: number;
  /** Counts per onboarding by side and kind. */
  counts: { server: Record<FloorOperationKind, number>; device: Record<FloorOperationKind, number> };
}

interface Spec extends Omit<FloorOperation, 'microseconds'> {
  run: () => void;
}

/**
 * Times, in this process on one thread after a warm-up, the public-key operations of one onboarding
 * (docs/benchmarks.md lists them; test/bench/floor.test.ts counts the operations of a real onboarding
 * and fails when this list's counts differ): every server-side one with the demo PKI's real keys, and the
 * device side apart. Signatures are over 256 random bytes with SHA-256 (what the JOSE / OCSP / X.509
 * inputs cost to hash is negligible next to the curve arithmetic). Memoised work (a CA link or an OCSP
 * delegate certificate already verified, parsed certificates) is not counted on the server side, which
 * sees them on every request; the device side is counted cold, as a device opens one package in its life.
 *
 * @example
 *   const floor = measureCryptoFloor(await loadPki(pkiDir), await loadFactoryImage(pkiDir, dsimId));
 *   floor.serverMs; // ≈ 1 ms on a 2-core EPYC VM
 */
export function measureCryptoFloor(
  pki: LoadedPki,
  device: LoadedFactoryImage,
  options: { iterations?: number } = {},
): CryptoFloor {
  const message = randomBytes(256);
  type KeyOptions = SignKeyObjectInput & VerifyKeyObjectInput;
  const jose = (key: KeyObject): KeyOptions =>
    key.asymmetricKeyType === 'ec'
      ? { key, dsaEncoding: 'ieee-p1363' as const }
      : { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 };
  const der = (key: KeyObject): KeyOptions => ({ key });
  const signed = (keyOptions: KeyOptions) => sign('sha256', message, keyOptions);
  const verifier = (privateKey: KeyObject, enc: (k: KeyObject) => KeyOptions) => {
    const signature = signed(enc(privateKey));
    const publicKey = publicOf(privateKey);
    return () => {
      if (!verify('sha256', message, enc(publicKey), signature)) throw new Error('floor: verify failed');
    };
  };
  const signer = (privateKey: KeyObject, enc: (k: KeyObject) => KeyOptions) => () => {
    signed(enc(privateKey));
  };
  const link = (certificate: X509Certificate, issuer: X509Certificate) => {
    // Parsed once, as the servers' parse cache and the module's loaded chain have them.
    const cert = new X509Certificate(certificate.raw);
    const key = new X509Certificate(issuer.raw).publicKey;
    return () => {
      if (!cert.verify(key)) throw new Error('floor: link failed');
    };
  };

  const deviceKey = device.privateKey;
  const devicePublic = publicOf(deviceKey);
  const phlrKey = pki.operator.tls.phlr.privateKey();
  // A key in a PKCS#11 token cannot be read: a P-256 key stands in. The floor is node:crypto's cost;
  // what the token adds shows in the servers' CPU over it (docs/benchmarks.md).
  const floorKey = (loaded: LoadedPki['operator']['packageSigner']) =>
    isPkcs11Uri(loaded.keyPath)
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
      : loaded.privateKey();
  const deviceOcspSigner = floorKey(pki.manufacturer.deviceCaOcsp);
  const operatorOcspSigner = floorKey(pki.operator.operatorCaOcsp);
  const packageKey = floorKey(pki.operator.packageSigner);
  const deviceCert = new X509Certificate(device.certificatePem);
  const deviceCa = new X509Certificate(pki.manufacturer.deviceCa.pem);
  const ephemeral = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ecdhPublic = devicePublic.asymmetricKeyType === 'ec' ? devicePublic : ephemeral.publicKey;

  const specs: Spec[] = [
    {
      side: 'server',
      role: 'phlr',
      step: '1',
      operation: 'access grant signature (ES256 JWS)',
      code: 'phlr/grant.ts signGrant',
      kind: 'sign',
      count: 1,
      run: signer(phlrKey, jose),
    },
    {
      side: 'server',
      role: 'registration',
      step: '2',
      operation: 'access grant verification',
      code: 'phlr/grant.ts verifyGrant',
      kind: 'verify',
      count: 1,
      run: verifier(phlrKey, jose),
    },
    {
      side: 'server',
      role: 'registration',
      step: '2',
      operation: 'lookup proof (device signature over the challenge)',
      code: 'registration/processor.ts lookup → verifyDeviceMessage',
      kind: 'verify',
      count: 1,
      run: verifier(deviceKey, jose),
    },
    {
      side: 'server',
      role: 'registration',
      step: '2',
      operation: 'device chain: leaf → device CA link (CA → root memoised)',
      code: 'pki/device-chain.ts verifyDeviceChain',
      kind: 'verify',
      count: 1,
      run: link(deviceCert, deviceCa),
    },
    {
      side: 'server',
      role: 'credentialing',
      step: '4',
      operation: 'proof of possession',
      code: 'authentication-subsystem.ts → verifyProofOfPossession',
      kind: 'verify',
      count: 1,
      run: verifier(deviceKey, jose),
    },
    {
      side: 'server',
      role: 'credentialing',
      step: '4',
      operation: 'device chain: leaf → device CA link (CA → root memoised)',
      code: 'authentication-subsystem.ts → verifyDeviceChain',
      kind: 'verify',
      count: 1,
      run: link(deviceCert, deviceCa),
    },
    {
      side: 'server',
      role: 'credentialing',
      step: '4',
      operation: "OCSP response for CERT_dsim (nonce'd; delegate link memoised)",
      code: 'ocsp/verify.ts verifyOcspResponse',
      kind: 'verify',
      count: 1,
      run: verifier(deviceOcspSigner, der),
    },
    {
      side: 'server',
      role: 'credentialing',
      step: '5',
      operation: 'package signature from the HSS (x5c links memoised)',
      code: 'credentialing-subsystem.ts issueAndRefer → inspectPackage',
      kind: 'verify',
      count: 1,
      run: verifier(packageKey, jose),
    },
    {
      side: 'server',
      role: 'ocsp',
      step: '4, 11',
      operation: "OCSP response signature (nonce'd: CERT_dsim for the server, package signer for the device)",
      code: 'ocsp/responder/engine.ts',
      kind: 'sign',
      count: 2,
      run: signer(deviceOcspSigner, der),
    },
    {
      side: 'server',
      role: 'hss',
      step: '5',
      operation: 'ephemeral P-256 key (ECDH-ES+A256KW)',
      code: 'crypto/package.ts sealPackage (jose)',
      kind: 'keygen',
      count: 1,
      run: () => void generateKeyPairSync('ec', { namedCurve: 'P-256' }),
    },
    {
      side: 'server',
      role: 'hss',
      step: '5',
      operation: 'ECDH with the device key',
      code: 'crypto/package.ts sealPackage (jose)',
      kind: 'ecdh',
      count: 1,
      run: () => void diffieHellman({ privateKey: ephemeral.privateKey, publicKey: ecdhPublic }),
    },
    {
      side: 'server',
      role: 'hss',
      step: '5',
      operation: 'package signature (ES256 JWS, operator key)',
      code: 'crypto/package.ts sealPackage',
      kind: 'sign',
      count: 1,
      run: signer(packageKey, jose),
    },
    {
      side: 'server',
      role: 'credentialing',
      step: '12',
      operation: 'receipt',
      code: 'credentialing-subsystem.ts acceptReceipt → verifyReceipt',
      kind: 'verify',
      count: 1,
      run: verifier(deviceKey, jose),
    },
    {
      side: 'device',
      role: 'device',
      step: '2',
      operation: 'lookup proof signature',
      code: 'device/trusted-module.ts signLookup',
      kind: 'sign',
      count: 1,
      run: signer(deviceKey, jose),
    },
    {
      side: 'device',
      role: 'device',
      step: '4',
      operation: 'proof of possession signature',
      code: 'device/trusted-module.ts signProof',
      kind: 'sign',
      count: 1,
      run: signer(deviceKey, jose),
    },
    {
      side: 'device',
      role: 'device',
      step: '11',
      operation: 'package JWS verification',
      code: 'crypto/package.ts openPackage',
      kind: 'verify',
      count: 1,
      run: verifier(packageKey, jose),
    },
    {
      side: 'device',
      role: 'device',
      step: '11',
      operation: 'x5c links: signer → operator CA → operator root (cold)',
      code: 'crypto/certificates.ts verifyChain',
      kind: 'verify',
      count: 2,
      run: link(pki.operator.packageSigner.certificate, pki.operator.operatorCa.certificate),
    },
    {
      side: 'device',
      role: 'device',
      step: '11',
      operation: 'ECDH to unwrap the content key',
      code: 'crypto/package.ts openPackage (jose)',
      kind: 'ecdh',
      count: 1,
      run: () => void diffieHellman({ privateKey: ephemeral.privateKey, publicKey: ecdhPublic }),
    },
    {
      side: 'device',
      role: 'device',
      step: '11',
      operation: 'OCSP response for the package signer + its delegate certificate (cold)',
      code: 'ocsp/verify.ts verifyOcspResponse',
      kind: 'verify',
      count: 2,
      run: verifier(operatorOcspSigner, der),
    },
    {
      side: 'device',
      role: 'device',
      step: '12',
      operation: 'receipt signature',
      code: 'device/trusted-module.ts → signReceipt',
      kind: 'sign',
      count: 1,
      run: signer(deviceKey, jose),
    },
  ];

  const iterations = options.iterations ?? 200;
  const operations = specs.map(({ run, ...spec }) => ({ ...spec, microseconds: time(run, iterations) }));
  const sum = (side: 'server' | 'device') =>
    round(
      operations
        .filter((o) => o.side === side)
        .reduce((total, o) => total + (o.count * o.microseconds) / 1000, 0),
      3,
    );
  const counts = (side: 'server' | 'device') => {
    const c: Record<FloorOperationKind, number> = { sign: 0, verify: 0, keygen: 0, ecdh: 0 };
    for (const o of operations) if (o.side === side) c[o.kind] += o.count;
    return c;
  };
  return {
    operations,
    serverMs: sum('server'),
    deviceMs: sum('device'),
    counts: { server: counts('server'), device: counts('device') },
  };
}

/** µs per call: the median of 5 rounds after a warm-up round (the machine is shared; the median resists bursts). */
function time(run: () => void, iterations: number): number {
  const perRound = Math.max(1, Math.ceil(iterations / 5));
  for (let i = 0; i < perRound; i++) run();
  const rounds: number[] = [];
  for (let r = 0; r < 5; r++) {
    const started = performance.now();
    for (let i = 0; i < perRound; i++) run();
    rounds.push(((performance.now() - started) * 1000) / perRound);
  }
  rounds.sort((a, b) => a - b);
  return round(rounds[2]!, 1);
}

function publicOf(privateKey: KeyObject): KeyObject {
  return privateKey.type === 'private' ? createPublicKey(privateKey) : privateKey;
}
