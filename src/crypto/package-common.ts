/**
 * What both credential package formats share (DESIGN §3): the content and its validation, the seal-side
 * checks of the inputs, the operator chain with its package-signer role check, expiry, and the device
 * certificate's DSIM_ID fence. The JOSE package (package.ts) and the XML package (xml-package.ts) call
 * these so that both verify exactly alike.
 */
import { KeyObject, randomUUID } from 'node:crypto';
import { z } from 'zod';
import * as x509 from './x509.js';
import { SimcredError, type ErrorCode } from '../errors/index.js';
import type { KeyKind } from './algorithms.js';
import {
  parseCertificates,
  verifyChain,
  type CertificateInput,
  MAX_CHAIN_CERTIFICATES,
} from './certificates.js';
import { certificateFacts } from './certificate-facts.js';
import { keyKind, toPublicKey, type PublicKeyInput } from './encoding.js';
import { checkDsimId, DEVICE_NONCE_MAX_BYTES, DEVICE_NONCE_MIN_BYTES } from './session-nonce.js';
import { fileSigningKey, type SigningKey } from '../keys/signing-key.js';

/** Longest package lifetime a seal accepts (30 days). */
export const MAX_PACKAGE_TTL_SECONDS = 30 * 24 * 3600;
/** Default slack, seconds, on `exp` and certificate validity checks. */
export const DEFAULT_CLOCK_TOLERANCE_SECONDS = 60;
/** SAN URI prefix binding a DSIM_ID in a device certificate (DESIGN §3). */
export const DSIM_URN_PREFIX = 'urn:simcred:dsim:';
/** id-kp-documentSigning (RFC 9336), which the operator's package-signing certificate carries. */
export const PACKAGE_SIGNER_EKU = '1.3.6.1.5.5.7.3.36';

/** The subscription a package carries (DESIGN §3): hex strings are lower-case on output. */
export interface Credentials {
  /** 6–15 digits (ITU-T E.212). */
  imsi: string;
  /** 128-bit subscriber key, 32 hex digits. */
  k: string;
  /** 128-bit OPc, 32 hex digits. */
  opc: string;
  /** 16-bit AMF, 4 hex digits. */
  amf: string;
  /** 48-bit initial SQN, 12 hex digits. */
  sqn: string;
  /** Home PLMN, MCC ‖ MNC: 5 or 6 digits. */
  plmn: string;
}

const hex = (digits: number) =>
  z
    .string()
    .regex(new RegExp(`^[0-9a-fA-F]{${digits}}$`))
    .transform((s) => s.toLowerCase());
/** The credential fields and their formats, shared by both package formats' schemas. */
export const credentialsShape = {
  imsi: z.string().regex(/^[0-9]{6,15}$/),
  k: hex(32),
  opc: hex(32),
  amf: hex(4),
  sqn: hex(12),
  plmn: z.string().regex(/^[0-9]{5,6}$/),
};
export const credentialsSchema = z.object(credentialsShape).strict();

/** What a seal of either format takes besides its format-specific options. */
export interface SealInput {
  credentials: Credentials;
  dsimId: string;
  /** The device nonce of step 3 (16–64 bytes). */
  deviceNonce: Uint8Array;
  /** The device's public key, or CERT_dsim; with a certificate, a DSIM_ID bound in it must match. */
  devicePublicKey: PublicKeyInput;
  /**
   * The operator package-signing key (EC P-256, or RSA): a private KeyObject, or a SigningKey (a file's,
   * or one in a PKCS#11 token, which signs there).
   */
  operatorSigningKey: KeyObject | SigningKey;
  /** PEM: the signer certificate first, then the operator CA(s). */
  operatorChainPem: string[];
  ttlSeconds: number;
  /** Defaults to a random UUID; pass a stored one to re-seal the same package idempotently. */
  packageId?: string;
  now?: Date;
}

/** The checked inputs of a seal, as both formats use them. */
export interface CheckedSealInput {
  credentials: Credentials;
  packageId: string;
  deviceKey: KeyObject;
  deviceKind: KeyKind;
  signerKind: KeyKind;
  /** The operator signing key, whatever form it was given in. */
  signer: SigningKey;
  /** The operator chain, signer first. */
  chain: x509.X509Certificate[];
  iat: number;
  exp: number;
}

/**
 * The seal-side checks of both formats: credentials (errors name the field, never the value),
 * DSIM_ID, device nonce length, ttl, package id, the device certificate's DSIM_ID, the key kinds, and
 * that the operator signing key matches the first certificate of its chain.
 *
 * @example
 *   const checked = checkSealInput(input); // throws SimcredError on any bad input
 */
export function checkSealInput(input: SealInput): CheckedSealInput {
  const parsed = credentialsSchema.safeParse(input.credentials);
  if (!parsed.success) {
    // Never echo the values: the input holds K and OPc.
    const fields = [...new Set(parsed.error.issues.map((i) => String(i.path[0] ?? '?')))].join(', ');
    throw new SimcredError('SIMCRED_BAD_REQUEST', `credentials malformed: ${fields}`);
  }
  checkDsimId(input.dsimId);
  const n = input.deviceNonce;
  if (!(n instanceof Uint8Array) || n.length < DEVICE_NONCE_MIN_BYTES || n.length > DEVICE_NONCE_MAX_BYTES) {
    throw new SimcredError('SIMCRED_BAD_REQUEST', 'the device nonce must be 16–64 bytes');
  }
  if (
    !Number.isInteger(input.ttlSeconds) ||
    input.ttlSeconds <= 0 ||
    input.ttlSeconds > MAX_PACKAGE_TTL_SECONDS
  ) {
    throw new SimcredError(
      'SIMCRED_BAD_REQUEST',
      `ttlSeconds must be an integer in 1..${MAX_PACKAGE_TTL_SECONDS}`,
    );
  }
  const packageId = input.packageId ?? randomUUID();
  if (typeof packageId !== 'string' || packageId.length === 0 || packageId.length > 128) {
    throw new SimcredError('SIMCRED_BAD_REQUEST', 'the package id must be 1–128 characters');
  }

  checkDeviceCertificateBinding(input.devicePublicKey, input.dsimId);
  const deviceKey = toPublicKey(input.devicePublicKey);
  const deviceKind = keyKind(deviceKey);
  const signer = operatorSigner(input.operatorSigningKey);
  const signerKind = keyKind(signer.publicKey);
  const chain = parseCertificates(input.operatorChainPem);
  if (chain.length === 0 || chain.length > MAX_CHAIN_CERTIFICATES) {
    throw new SimcredError(
      'SIMCRED_CONFIG_INVALID',
      `the operator chain must hold 1–${MAX_CHAIN_CERTIFICATES} certificates`,
    );
  }
  const signerSpki = Buffer.from(chain[0]!.publicKey.rawData);
  const keySpki = publicSpkiOf(signer);
  if (!signerSpki.equals(keySpki)) {
    throw new SimcredError(
      'SIMCRED_CONFIG_INVALID',
      'the operator signing key does not match the signer certificate',
    );
  }
  const iat = Math.floor((input.now ?? new Date()).getTime() / 1000);
  return {
    credentials: parsed.data,
    packageId,
    deviceKey,
    deviceKind,
    signerKind,
    signer,
    chain,
    iat,
    exp: iat + input.ttlSeconds,
  };
}

export interface VerifyPackageOptions {
  /** Operator trust roots (PEM or parsed). */
  operatorRoots: readonly CertificateInput[];
  now?: Date;
  /** Slack on `exp` and certificate validity, seconds (default 60). */
  clockToleranceSeconds?: number;
}

/**
 * The presented operator chain (signer first) to one of `operatorRoots`, then the signer's role: a
 * package-signing certificate only. Returns the verified path. Throws SIMCRED_PACKAGE_CHAIN_INVALID.
 *
 * @example
 *   const chain = await verifyOperatorChain(presented, { operatorRoots: [rootPem] });
 */
export async function verifyOperatorChain(
  presented: x509.X509Certificate[],
  options: VerifyPackageOptions,
  /** What is signed (a package, a transfer statement) and the code a bad chain gets. */
  kind: { what: string; code: ErrorCode } = { what: 'package', code: 'SIMCRED_PACKAGE_CHAIN_INVALID' },
): Promise<x509.X509Certificate[]> {
  const chain = await verifyChain(presented, {
    roots: parseCertificates(options.operatorRoots),
    now: options.now ?? new Date(),
    clockToleranceSeconds: options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS,
    leafKeyUsage: x509.KeyUsageFlags.digitalSignature,
    code: kind.code,
  });
  requirePackageSigner(chain[0]!, kind);
  return chain;
}

/** SIMCRED_PACKAGE_EXPIRED once `now − tolerance ≥ exp`. */
export function checkNotExpired(exp: number, options: VerifyPackageOptions): void {
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const slack = options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS;
  if (now - slack >= exp) fail('SIMCRED_PACKAGE_EXPIRED', 'the package has expired');
}

export function fail(code: ErrorCode, message: string, cause?: unknown): never {
  throw new SimcredError(code, message, cause === undefined ? {} : { cause });
}

/** What a server may learn about a package: its binding and signer, never its content. */
export interface PackageInfo {
  packageId: string;
  dsimId: string;
  /** Base64url, as carried. */
  deviceNonce: string;
  /** Seconds since the epoch. */
  iat: number;
  exp: number;
  /** The operator certificate that signed the package; check it at the OCSP responder. */
  signerCertificate: x509.X509Certificate;
  /** Its issuer (the OCSP CertID needs the issuer's name and key). */
  issuerCertificate: x509.X509Certificate;
  /** The verified path, signer → trust anchor. */
  chain: x509.X509Certificate[];
  /** Key management of the sealed content: a JWE alg (ECDH-ES+A256KW, RSA-OAEP-256) or an XML Encryption URI. */
  keyManagement: string;
}

/** Logged or serialised, a certificate should read as its name and serial, not 5 kB of ASN.1 tree. */
export function withCompactJson(info: PackageInfo): PackageInfo {
  Object.defineProperty(info, 'toJSON', {
    enumerable: false,
    value: () => ({
      packageId: info.packageId,
      dsimId: info.dsimId,
      iat: info.iat,
      exp: info.exp,
      keyManagement: info.keyManagement,
      signer: { subject: info.signerCertificate.subject, serialNumber: info.signerCertificate.serialNumber },
      issuer: { subject: info.issuerCertificate.subject, serialNumber: info.issuerCertificate.serialNumber },
    }),
  });
  return info;
}

const publicSpkis = new WeakMap<SigningKey, Buffer>();

/** The SubjectPublicKeyInfo of a private key's public half (memoised: the operator key signs every package). */
function publicSpkiOf(signer: SigningKey): Buffer {
  let spki = publicSpkis.get(signer);
  if (spki === undefined) {
    spki = signer.publicKey.export({ format: 'der', type: 'spki' });
    publicSpkis.set(signer, spki);
  }
  return spki;
}

/** KeyObjects handed in (embedding, tests) wrapped once each, so a seal costs no extra key work. */
const wrappedKeys = new WeakMap<KeyObject, SigningKey>();

function operatorSigner(key: KeyObject | SigningKey): SigningKey {
  if (!(key instanceof KeyObject)) return key;
  let signer = wrappedKeys.get(key);
  if (signer === undefined) {
    keyKind(key); // SIMCRED_CRYPTO_KEY_UNSUPPORTED for anything but EC P-256 / RSA ≥ 2048
    if (key.type !== 'private') {
      throw new SimcredError(
        'SIMCRED_CRYPTO_KEY_UNSUPPORTED',
        'the operator signing key must be a private key',
      );
    }
    signer = fileSigningKey(key, 'operator signing key');
    wrappedKeys.set(key, signer);
  }
  return signer;
}

/**
 * With a device certificate as the seal key, a DSIM_ID it binds (SAN URI urn:simcred:dsim:<id>,
 * DESIGN §3) must be the one the package is for — a last fence against sealing to the wrong device.
 */
function checkDeviceCertificateBinding(input: PublicKeyInput, dsimId: string): void {
  let cert: x509.X509Certificate | undefined;
  try {
    if (input instanceof x509.X509Certificate) cert = input;
    else if (typeof input === 'string' && input.includes('CERTIFICATE-----'))
      cert = new x509.X509Certificate(input);
    else if (typeof input === 'object' && 'raw' in input && Buffer.isBuffer(input.raw)) {
      cert = new x509.X509Certificate(input.raw);
    }
  } catch (cause) {
    throw new SimcredError('SIMCRED_CRYPTO_KEY_UNSUPPORTED', 'the device certificate cannot be read', {
      cause,
    });
  }
  if (cert === undefined) return;
  let sanUris: string[];
  try {
    sanUris = certificateFacts(cert).sanUris;
  } catch (cause) {
    throw new SimcredError('SIMCRED_CRYPTO_KEY_UNSUPPORTED', 'the device certificate cannot be read', {
      cause,
    });
  }
  const bound = sanUris
    .filter((uri) => uri.startsWith(DSIM_URN_PREFIX))
    .map((uri) => uri.slice(DSIM_URN_PREFIX.length));
  if (bound.length > 0 && !bound.includes(dsimId)) {
    throw new SimcredError(
      'SIMCRED_PACKAGE_BINDING_MISMATCH',
      'the device certificate binds another DSIM_ID',
    );
  }
}

/**
 * Only the operator's package signer may sign a package: its certificate must carry
 * id-kp-documentSigning and no server, client or OCSP purpose — the operator CA also certifies
 * TLS and OCSP keys that third parties (provisioning, registration servers) hold.
 */
function requirePackageSigner(signer: x509.X509Certificate, kind: { what: string; code: ErrorCode }): void {
  const eku = signer.getExtension(x509.ExtendedKeyUsageExtension);
  const usages = (eku?.usages ?? []).map(String);
  const foreign = [
    x509.ExtendedKeyUsage.serverAuth,
    x509.ExtendedKeyUsage.clientAuth,
    x509.ExtendedKeyUsage.ocspSigning,
  ];
  if (
    !usages.includes(PACKAGE_SIGNER_EKU) ||
    usages.some((u) => foreign.includes(u as x509.ExtendedKeyUsage))
  ) {
    throw new SimcredError(kind.code, `the ${kind.what} is not signed by a package-signing certificate`);
  }
}
