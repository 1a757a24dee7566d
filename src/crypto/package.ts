import * as x509 from './x509.js';
import { CompactEncrypt, compactDecrypt, compactVerify, decodeProtectedHeader, errors } from 'jose';
import { z } from 'zod';
import { SimcredError, type ErrorCode } from '../errors/index.js';
import {
  PACKAGE_CONTENT_ENCRYPTION,
  PACKAGE_CONTENT_ENCRYPTIONS,
  PACKAGE_KEY_MANAGEMENT_ALGORITHM,
  PACKAGE_SIGNATURE_ALGORITHM,
  PACKAGE_SIGNATURE_ALGORITHMS,
} from './algorithms.js';
import { certificatePublicKey, parseCertificateBase64, MAX_CHAIN_CERTIFICATES } from './certificates.js';
import { fromBase64url, toBase64url } from './encoding.js';
import { deviceKeyKind, isExternalDeviceKey, type DevicePrivateKey } from './device-key.js';
import { decryptEcdhEsJwe } from './jwe-ecdh-es.js';
import { signCompactJws } from './jws-sign.js';
import { checkDsimId } from './session-nonce.js';
import {
  checkNotExpired,
  checkSealInput,
  credentialsShape,
  fail,
  verifyOperatorChain,
  withCompactJson,
  type Credentials,
  type PackageInfo,
  type SealInput,
  type VerifyPackageOptions,
} from './package-common.js';

export {
  DEFAULT_CLOCK_TOLERANCE_SECONDS,
  DSIM_URN_PREFIX,
  MAX_PACKAGE_TTL_SECONDS,
  PACKAGE_SIGNER_EKU,
} from './package-common.js';
export type { Credentials, PackageInfo, VerifyPackageOptions } from './package-common.js';

/** JWS `typ` of a credential package (DESIGN §3). */
export const PACKAGE_TYPE = 'simcred-package+jws';
/** JWE `cty` of the sealed credentials. */
export const CREDENTIALS_CONTENT_TYPE = 'simcred-credentials+json';
/** Largest package accepted, in characters (a package is about 3–5 kB). */
export const MAX_PACKAGE_CHARS = 64 * 1024;

const sealedContentSchema = z
  .object({ ...credentialsShape, iat: z.number().int().nonnegative(), exp: z.number().int().positive() })
  .strict();

const payloadSchema = z.object({
  v: z.literal(1),
  jti: z.string().min(1).max(128),
  dsimId: z.string().min(1).max(256),
  deviceNonce: z.string().min(1).max(128),
  iat: z.number().int().nonnegative(),
  exp: z.number().int().positive(),
  credentials: z.string().min(1).max(MAX_PACKAGE_CHARS),
});
type PackagePayload = z.infer<typeof payloadSchema>;

/** The private header parameters that bind the JWE to its package (covered by the JWE's AAD). */
interface SealedHeaderBinding {
  /** DSIM_ID. */
  'simcred-dsim': string;
  /** Device nonce, base64url. */
  'simcred-dn': string;
  /** Package id (= the JWS payload's jti). */
  'simcred-jti': string;
}

/** The operator key signs with ES256 (EC P-256) or PS256 (RSA); the chain goes into x5c as base64 DER. */
export type SealPackageInput = SealInput;

/**
 * HSS, DESIGN §2 step 5 and §3: seals {IMSI, K, OPc, AMF, SQN, PLMN, iat, exp} to the device key as a
 * compact JWE (ECDH-ES+A256KW / A256GCM for EC P-256, RSA-OAEP-256 / A256GCM for RSA), whose protected
 * header — authenticated as AAD — also carries the DSIM_ID, device nonce and package id; then signs
 * {v, jti, dsimId, deviceNonce, iat, exp, credentials: <JWE>} as a compact JWS (ES256, typ
 * "simcred-package+jws", x5c = operatorChainPem as base64 DER). Returns the JWS. Throws
 * SIMCRED_BAD_REQUEST on malformed inputs, SIMCRED_CRYPTO_KEY_UNSUPPORTED on a device or operator key
 * that is not EC P-256 / RSA ≥ 2048, SIMCRED_PACKAGE_BINDING_MISMATCH if a given device certificate binds
 * another DSIM_ID, SIMCRED_CONFIG_INVALID if the signing key does not match the first certificate.
 *
 * @example
 *   const jws = await sealPackage({ credentials: { imsi, k, opc, amf: '8000', sqn: '000000000020', plmn },
 *     dsimId, deviceNonce, devicePublicKey: deviceCertPem, operatorSigningKey, operatorChainPem: [signerPem, caPem],
 *     ttlSeconds: 86400 });
 */
export async function sealPackage(input: SealPackageInput): Promise<string> {
  const { credentials, packageId, deviceKey, deviceKind, signerKind, signer, chain, iat, exp } =
    checkSealInput(input);
  const deviceNonce = toBase64url(input.deviceNonce);
  const binding: SealedHeaderBinding = {
    'simcred-dsim': input.dsimId,
    'simcred-dn': deviceNonce,
    'simcred-jti': packageId,
  };
  const content = { ...credentials, iat, exp };
  const jwe = await new CompactEncrypt(Buffer.from(JSON.stringify(content), 'utf8'))
    .setProtectedHeader({
      alg: PACKAGE_KEY_MANAGEMENT_ALGORITHM[deviceKind],
      enc: PACKAGE_CONTENT_ENCRYPTION,
      cty: CREDENTIALS_CONTENT_TYPE,
      ...binding,
    })
    .encrypt(deviceKey);

  const payload: PackagePayload = {
    v: 1,
    jti: packageId,
    dsimId: input.dsimId,
    deviceNonce,
    iat,
    exp,
    credentials: jwe,
  };
  // Signed by the SigningKey (a file's or a token's), the bytes jose's CompactSign would make.
  return signCompactJws(
    {
      alg: PACKAGE_SIGNATURE_ALGORITHM[signerKind],
      typ: PACKAGE_TYPE,
      x5c: chain.map((c) => Buffer.from(c.rawData).toString('base64')),
    },
    Buffer.from(JSON.stringify(payload), 'utf8'),
    signer,
  );
}

/**
 * Provisioning and credentialing servers, DESIGN §2 steps 8–10 and §3: checks a package without
 * opening it — size and shape, allow-listed JWS alg, x5c chain to one of `operatorRoots` (signatures,
 * validity, CA constraints, signer keyUsage digitalSignature), the operator signature, the payload's
 * fields, `exp` (unless allowExpired), and that the sealed JWE's protected header names the same
 * DSIM_ID, device nonce and package id with allow-listed algorithms. Returns the binding and the signer
 * certificate with its issuer (for the caller's OCSP check) — never K or OPc, which it cannot read.
 * Throws SimcredError SIMCRED_PACKAGE_MALFORMED, …_SIGNATURE_INVALID, …_CHAIN_INVALID, …_EXPIRED,
 * …_BINDING_MISMATCH or SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED.
 *
 * @example
 *   const info = await inspectPackage(jws, { operatorRoots: [operatorRootPem] });
 *   if (info.dsimId !== referral.dsimId) throw ...;
 *   await ocsp.check(info.signerCertificate, info.issuerCertificate);
 */
export async function inspectPackage(
  jws: string,
  options: VerifyPackageOptions & { allowExpired?: boolean },
): Promise<PackageInfo> {
  const verified = await verifyPackageEnvelope(jws, options);
  if (!options.allowExpired) checkNotExpired(verified.payload.exp, options);
  return verified.info;
}

export interface OpenPackageOptions extends VerifyPackageOptions {
  /** The device's own DSIM_ID. */
  dsimId: string;
  /** The device nonce it sent in step 3. */
  deviceNonce: Uint8Array;
  /** SK_dsim: in memory, or in a TPM (which computes the ECDH shared secret). */
  devicePrivateKey: DevicePrivateKey;
}

/**
 * Device (trusted module), DESIGN §2 step 11: verifies the package exactly as {@link inspectPackage}
 * does, checks that it carries the device's own DSIM_ID and device nonce (SIMCRED_PACKAGE_BINDING_MISMATCH)
 * and has not expired (SIMCRED_PACKAGE_EXPIRED), then decrypts the JWE with SK_dsim
 * (SIMCRED_PACKAGE_DECRYPT_FAILED on any failure: another device's package, tampered ciphertext, wrong
 * key) and checks the decrypted content (SIMCRED_PACKAGE_MALFORMED). Credentials are returned only
 * when every check has passed. The OCSP check of `signerCertificate` (step 11) is the caller's.
 *
 * @example
 *   const { credentials, signerCertificate, issuerCertificate, packageId } = await openPackage(jws, {
 *     operatorRoots: [factory.trustRoots.operator], dsimId, deviceNonce, devicePrivateKey });
 */
export async function openPackage(
  jws: string,
  options: OpenPackageOptions,
): Promise<{
  credentials: Credentials;
  packageId: string;
  exp: number;
  signerCertificate: x509.X509Certificate;
  issuerCertificate: x509.X509Certificate;
}> {
  const { payload, info } = await verifyPackageEnvelope(jws, options);
  if (payload.dsimId !== options.dsimId) {
    fail('SIMCRED_PACKAGE_BINDING_MISMATCH', 'the package is for another DSIM_ID');
  }
  if (
    !(options.deviceNonce instanceof Uint8Array) ||
    payload.deviceNonce !== toBase64url(options.deviceNonce)
  ) {
    fail('SIMCRED_PACKAGE_BINDING_MISMATCH', 'the package does not carry this session’s device nonce');
  }
  checkNotExpired(payload.exp, options);

  const key = options.devicePrivateKey;
  let plaintext: Uint8Array;
  try {
    const kind = deviceKeyKind(key);
    // A key in a TPM: Z from the TPM, the rest (KDF, unwrap, AES-GCM) as jose does it (jwe-ecdh-es.ts).
    plaintext = isExternalDeviceKey(key)
      ? await decryptEcdhEsJwe(payload.credentials, key)
      : (
          await compactDecrypt(payload.credentials, key, {
            keyManagementAlgorithms: [PACKAGE_KEY_MANAGEMENT_ALGORITHM[kind]],
            contentEncryptionAlgorithms: [...PACKAGE_CONTENT_ENCRYPTIONS],
          })
        ).plaintext;
  } catch (cause) {
    if (cause instanceof SimcredError && cause.code.startsWith('SIMCRED_TPM_')) throw cause;
    return fail(
      'SIMCRED_PACKAGE_DECRYPT_FAILED',
      'the sealed credentials cannot be decrypted with this device key',
      cause,
    );
  }
  let content: z.infer<typeof sealedContentSchema>;
  try {
    content = sealedContentSchema.parse(JSON.parse(Buffer.from(plaintext).toString('utf8')));
  } catch {
    // No cause: a zod error would quote the decrypted values.
    return fail('SIMCRED_PACKAGE_MALFORMED', 'the decrypted credentials are malformed');
  } finally {
    if (plaintext instanceof Uint8Array) plaintext.fill(0);
  }
  if (content.iat !== payload.iat || content.exp !== payload.exp) {
    fail('SIMCRED_PACKAGE_MALFORMED', 'the sealed and signed validity periods differ');
  }
  const { imsi, k, opc, amf, sqn, plmn } = content;
  return {
    credentials: { imsi, k, opc, amf, sqn, plmn },
    packageId: payload.jti,
    exp: payload.exp,
    signerCertificate: info.signerCertificate,
    issuerCertificate: info.issuerCertificate,
  };
}

/** Everything inspectPackage and openPackage share: shape, chain, signature, payload, JWE header. */
async function verifyPackageEnvelope(
  jws: string,
  options: VerifyPackageOptions,
): Promise<{ payload: PackagePayload; info: PackageInfo }> {
  const { payloadBytes, chain } = await verifySignedByPackageSigner(jws, {
    ...options,
    typ: PACKAGE_TYPE,
    maxChars: MAX_PACKAGE_CHARS,
    what: 'package',
    codes: {
      malformed: 'SIMCRED_PACKAGE_MALFORMED',
      chain: 'SIMCRED_PACKAGE_CHAIN_INVALID',
      signature: 'SIMCRED_PACKAGE_SIGNATURE_INVALID',
    },
  });
  const signerCertificate = chain[0]!;
  let payload: PackagePayload;
  try {
    payload = payloadSchema.parse(JSON.parse(Buffer.from(payloadBytes).toString('utf8')));
    checkDsimId(payload.dsimId);
    fromBase64url(payload.deviceNonce, 'deviceNonce');
  } catch (cause) {
    return fail('SIMCRED_PACKAGE_MALFORMED', 'the package payload is malformed', cause);
  }
  if (payload.iat > payload.exp) fail('SIMCRED_PACKAGE_MALFORMED', 'the package iat is after its exp');

  let sealedHeader: ReturnType<typeof decodeProtectedHeader>;
  try {
    if (payload.credentials.split('.').length !== 5) throw new Error('not a compact JWE');
    sealedHeader = decodeProtectedHeader(payload.credentials);
  } catch (cause) {
    return fail('SIMCRED_PACKAGE_MALFORMED', 'the sealed credentials are not a compact JWE', cause);
  }
  const binding = sealedHeader as Partial<Record<keyof SealedHeaderBinding, unknown>>;
  if (
    binding['simcred-dsim'] !== payload.dsimId ||
    binding['simcred-dn'] !== payload.deviceNonce ||
    binding['simcred-jti'] !== payload.jti
  ) {
    fail('SIMCRED_PACKAGE_BINDING_MISMATCH', 'the sealed credentials are bound to another package');
  }
  if (
    typeof sealedHeader.alg !== 'string' ||
    !Object.values<string>(PACKAGE_KEY_MANAGEMENT_ALGORITHM).includes(sealedHeader.alg) ||
    typeof sealedHeader.enc !== 'string' ||
    !PACKAGE_CONTENT_ENCRYPTIONS.includes(sealedHeader.enc)
  ) {
    fail(
      'SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED',
      'the sealed credentials use an algorithm that is not allowed',
    );
  }
  if (sealedHeader.cty !== CREDENTIALS_CONTENT_TYPE) {
    fail('SIMCRED_PACKAGE_MALFORMED', 'the sealed credentials have the wrong content type');
  }
  const info = withCompactJson({
    packageId: payload.jti,
    dsimId: payload.dsimId,
    deviceNonce: payload.deviceNonce,
    iat: payload.iat,
    exp: payload.exp,
    signerCertificate,
    issuerCertificate: chain[1]!,
    chain,
    keyManagement: sealedHeader.alg as string,
  });
  return { payload, info };
}

/** What {@link verifySignedByPackageSigner} checks a JWS against, and the codes its kind reports. */
export interface SignedByPackageSignerOptions extends VerifyPackageOptions {
  /** The JWS `typ` this kind of document must carry (a package is never taken for another kind). */
  typ: string;
  maxChars: number;
  /** The document's name in messages ('package', 'transfer statement'). */
  what: string;
  codes: { malformed: ErrorCode; chain: ErrorCode; signature: ErrorCode };
}

/**
 * The checks every JWS signed by the operator's package signer passes (a credential package, a
 * transfer statement): compact form and size, allow-listed alg, `typ`, x5c chain to one of
 * `operatorRoots` (signatures, validity, CA constraints, leaf keyUsage digitalSignature), a
 * package-signing certificate (id-kp-documentSigning, no TLS or OCSP purpose), then the signature.
 * Returns the verified payload bytes and the path signer → trust anchor; the OCSP check of the
 * signer is the caller's.
 *
 * @example
 *   const { payloadBytes, chain } = await verifySignedByPackageSigner(jws, { operatorRoots, typ: PACKAGE_TYPE,
 *     maxChars: MAX_PACKAGE_CHARS, what: 'package', codes: { malformed, chain, signature } });
 */
export async function verifySignedByPackageSigner(
  jws: string,
  options: SignedByPackageSignerOptions,
): Promise<{ payloadBytes: Uint8Array; chain: x509.X509Certificate[] }> {
  const { what, codes } = options;
  if (typeof jws !== 'string' || jws.length > options.maxChars || jws.split('.').length !== 3) {
    fail(codes.malformed, `the ${what} is not a compact JWS`);
  }
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(jws);
  } catch (cause) {
    return fail(codes.malformed, `the ${what} header is not readable`, cause);
  }
  if (typeof header.alg !== 'string') fail(codes.malformed, `the ${what} header has no alg`);
  if (!PACKAGE_SIGNATURE_ALGORITHMS.includes(header.alg)) {
    fail('SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED', `the ${what} signature algorithm is not allowed`);
  }
  if (header.typ !== options.typ) fail(codes.malformed, `the ${what} typ is wrong`);
  const x5c: unknown = header.x5c;
  if (!Array.isArray(x5c) || x5c.length === 0 || x5c.length > MAX_CHAIN_CERTIFICATES) {
    fail(codes.malformed, `the ${what} x5c is missing or malformed`);
  }
  const presented = (x5c as unknown[]).map((c) => parseCertificateBase64(c as string, codes.malformed));
  const chain = await verifyOperatorChain(presented, options, { what, code: codes.chain });
  const signerCertificate = chain[0]!;
  try {
    const { payload } = await compactVerify(jws, certificatePublicKey(signerCertificate), {
      algorithms: [...PACKAGE_SIGNATURE_ALGORITHMS],
    });
    return { payloadBytes: payload, chain };
  } catch (cause) {
    if (cause instanceof errors.JWSSignatureVerificationFailed) {
      return fail(codes.signature, 'the operator signature does not verify', cause);
    }
    if (cause instanceof SimcredError) throw cause;
    return fail(codes.signature, `the ${what} signature cannot be verified`, cause);
  }
}
