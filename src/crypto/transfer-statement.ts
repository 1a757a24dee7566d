import { createHash, KeyObject } from 'node:crypto';
import { z } from 'zod';
import { SimcredError } from '../errors/index.js';
import * as x509 from './x509.js';
import { PACKAGE_SIGNATURE_ALGORITHM } from './algorithms.js';
import {
  MAX_CHAIN_CERTIFICATES,
  parseCertificateBase64,
  parseCertificates,
  type CertificateInput,
} from './certificates.js';
import { keyKind, lengthPrefixed, toPublicKey, utf8, type PublicKeyInput } from './encoding.js';
import { DEFAULT_CLOCK_TOLERANCE_SECONDS, verifySignedByPackageSigner } from './package.js';
import { checkDsimId } from './session-nonce.js';
import { signCompactJws } from './jws-sign.js';
import { asSigningKey, type SigningKey } from '../keys/signing-key.js';

/**
 * Operator change (issue 14, docs/architecture.md "Operator change"): operator A's signed word that a
 * device may take operator B's root as its trust anchor for credentials — after FIDO Device
 * Onboard's ownership voucher extension, where the current owner signs the next owner's key into
 * the voucher. Signed by A's package signer (the key the device already checks packages against),
 * so the device needs no new trust to judge it; its own `typ` keeps it from ever passing as a package.
 */
export const TRANSFER_STATEMENT_TYPE = 'simcred-transfer+jws';
/** Largest statement accepted, in characters (B's root and chain make about 4 kB). */
export const MAX_TRANSFER_STATEMENT_CHARS = 32 * 1024;
/** Longest lifetime signTransferStatement accepts (30 days): a device may be off for a while. */
export const MAX_TRANSFER_TTL_SECONDS = 30 * 24 * 3600;

const url = z.url({ protocol: /^https?$/ }).max(2048);
const httpsUrl = z.url({ protocol: /^https$/ }).max(2048);

const payloadSchema = z
  .object({
    v: z.literal(1),
    transferId: z.string().regex(/^trf_[A-Za-z0-9_-]{16,64}$/),
    dsimId: z.string().min(1).max(256),
    /** SHA-256 of the device key's SubjectPublicKeyInfo (DER), hex: the statement binds one device. */
    deviceKeySha256: z.string().regex(/^[0-9a-f]{64}$/),
    /** B's operator root certificate, base64 DER. */
    newOperatorRoot: z.string().min(100).max(12_000),
    newRegistrationServers: z.array(httpsUrl).min(1).max(8),
    /** What the factory image's `servers` named for A: B's OCSP responder and home network (HSS). */
    newServers: z.object({ ocsp: url, hss: httpsUrl }).strict(),
    /** A's credentialing server, where the device confirms once B's credential is installed. */
    confirmUrl: httpsUrl,
    iat: z.number().int().nonnegative(),
    exp: z.number().int().positive(),
  })
  .strict();

/** What a transfer statement says (its payload). */
export type TransferStatementClaims = z.infer<typeof payloadSchema>;

export interface SignTransferStatementInput {
  transferId: string;
  dsimId: string;
  /**
   * The device's certificate or key — or, as the HSS holds it, the SHA-256 of its
   * SubjectPublicKeyInfo (hex): one of the two.
   */
  devicePublicKey?: PublicKeyInput;
  deviceKeySha256?: string;
  /** B's operator root (PEM, or parsed). */
  newOperatorRoot: CertificateInput;
  newRegistrationServers: string[];
  newServers: { ocsp: string; hss: string };
  confirmUrl: string;
  /** A's package-signing key: a private KeyObject, or a SigningKey (a file's or a PKCS#11 token's). */
  signingKey: KeyObject | SigningKey;
  /** PEM: the package signer first, then A's operator CA(s). */
  signerChainPem: string[];
  ttlSeconds: number;
  now?: Date;
}

/**
 * Signs a transfer statement as a compact JWS (ES256/PS256 by key kind, typ "simcred-transfer+jws",
 * x5c = the package signer's chain). Throws SIMCRED_BAD_REQUEST on malformed inputs (B's root not a
 * CA certificate, URLs, ttl), SIMCRED_CONFIG_INVALID if the key does not match the first certificate.
 *
 * @example
 *   const jws = await signTransferStatement({ transferId, dsimId, devicePublicKey: deviceCertPem,
 *     newOperatorRoot: bRootPem, newRegistrationServers: [bRegistration], newServers: { ocsp, hss },
 *     confirmUrl, signingKey, signerChainPem: [signerPem, caPem], ttlSeconds: 7 * 86400 });
 */
export async function signTransferStatement(input: SignTransferStatementInput): Promise<string> {
  checkDsimId(input.dsimId);
  if (
    !Number.isInteger(input.ttlSeconds) ||
    input.ttlSeconds <= 0 ||
    input.ttlSeconds > MAX_TRANSFER_TTL_SECONDS
  ) {
    throw new SimcredError(
      'SIMCRED_BAD_REQUEST',
      `ttlSeconds must be an integer in 1..${MAX_TRANSFER_TTL_SECONDS}`,
    );
  }
  const newRoot = requireRootCertificate(input.newOperatorRoot, 'SIMCRED_BAD_REQUEST');
  const chain = parseCertificates(input.signerChainPem);
  if (chain.length === 0 || chain.length > MAX_CHAIN_CERTIFICATES) {
    throw new SimcredError(
      'SIMCRED_CONFIG_INVALID',
      `the signer chain must hold 1–${MAX_CHAIN_CERTIFICATES} certificates`,
    );
  }
  if (input.signingKey instanceof KeyObject && input.signingKey.type !== 'private') {
    throw new SimcredError('SIMCRED_CONFIG_INVALID', 'the signing key does not match the signer certificate');
  }
  const signer = asSigningKey(input.signingKey, 'transfer signing key');
  const spki = signer.publicKey.export({ format: 'der', type: 'spki' });
  if (!spki.equals(Buffer.from(chain[0]!.publicKey.rawData))) {
    throw new SimcredError('SIMCRED_CONFIG_INVALID', 'the signing key does not match the signer certificate');
  }
  const iat = Math.floor((input.now ?? new Date()).getTime() / 1000);
  const parsed = payloadSchema.safeParse({
    v: 1,
    transferId: input.transferId,
    dsimId: input.dsimId,
    deviceKeySha256:
      input.deviceKeySha256 ??
      (input.devicePublicKey !== undefined ? deviceKeySha256(input.devicePublicKey) : ''),
    newOperatorRoot: Buffer.from(newRoot.rawData).toString('base64'),
    newRegistrationServers: input.newRegistrationServers,
    newServers: input.newServers,
    confirmUrl: input.confirmUrl,
    iat,
    exp: iat + input.ttlSeconds,
  } satisfies TransferStatementClaims);
  if (!parsed.success) {
    const fields = [...new Set(parsed.error.issues.map((i) => String(i.path[0] ?? '?')))].join(', ');
    throw new SimcredError('SIMCRED_BAD_REQUEST', `transfer statement fields malformed: ${fields}`);
  }
  return signCompactJws(
    {
      alg: PACKAGE_SIGNATURE_ALGORITHM[keyKind(signer.publicKey)],
      typ: TRANSFER_STATEMENT_TYPE,
      x5c: chain.map((c) => Buffer.from(c.rawData).toString('base64')),
    },
    Buffer.from(JSON.stringify(parsed.data), 'utf8'),
    signer,
  );
}

export interface VerifyTransferStatementOptions {
  /** The operator roots the device trusts for credentials NOW (A's): only its current operator may hand it on. */
  operatorRoots: readonly CertificateInput[];
  /** The device's own DSIM_ID and key (certificate, or public key). */
  dsimId: string;
  devicePublicKey: PublicKeyInput;
  now?: Date;
  clockToleranceSeconds?: number;
}

/** A verified transfer statement: its claims, B's root parsed, and A's signer for the OCSP check. */
export interface VerifiedTransferStatement {
  claims: TransferStatementClaims;
  newOperatorRoot: x509.X509Certificate;
  signerCertificate: x509.X509Certificate;
  issuerCertificate: x509.X509Certificate;
}

/**
 * Device (trusted module) side: a strict check, each step failing closed — compact JWS of the
 * transfer `typ` with an allow-listed alg, x5c chain to one of the roots the device trusts now,
 * signed by a package-signing certificate (not a TLS or OCSP key of the same PKI), the signature,
 * the payload's shape, B's root a self-signed CA certificate, this DSIM_ID and this device key, and
 * `exp`. The OCSP check of `signerCertificate` is the caller's, as for packages.
 * Throws SIMCRED_TRANSFER_STATEMENT_INVALID, …_EXPIRED, SIMCRED_TRANSFER_BINDING_MISMATCH or
 * SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED.
 *
 * @example
 *   const { claims, newOperatorRoot, signerCertificate, issuerCertificate } = await verifyTransferStatement(jws,
 *     { operatorRoots: [aRoot], dsimId, devicePublicKey: deviceCertPem });
 *   await ocsp.requireGood(signerCertificate, issuerCertificate);
 */
export async function verifyTransferStatement(
  jws: string,
  options: VerifyTransferStatementOptions,
): Promise<VerifiedTransferStatement> {
  const { payloadBytes, chain } = await verifySignedByPackageSigner(jws, {
    operatorRoots: options.operatorRoots,
    ...(options.now ? { now: options.now } : {}),
    ...(options.clockToleranceSeconds !== undefined
      ? { clockToleranceSeconds: options.clockToleranceSeconds }
      : {}),
    typ: TRANSFER_STATEMENT_TYPE,
    maxChars: MAX_TRANSFER_STATEMENT_CHARS,
    what: 'transfer statement',
    codes: {
      malformed: 'SIMCRED_TRANSFER_STATEMENT_INVALID',
      chain: 'SIMCRED_TRANSFER_STATEMENT_INVALID',
      signature: 'SIMCRED_TRANSFER_STATEMENT_INVALID',
    },
  });
  let claims: TransferStatementClaims;
  try {
    claims = payloadSchema.parse(JSON.parse(Buffer.from(payloadBytes).toString('utf8')));
    checkDsimId(claims.dsimId);
  } catch (cause) {
    throw new SimcredError(
      'SIMCRED_TRANSFER_STATEMENT_INVALID',
      'the transfer statement payload is malformed',
      {
        cause,
      },
    );
  }
  if (claims.iat > claims.exp) {
    throw new SimcredError(
      'SIMCRED_TRANSFER_STATEMENT_INVALID',
      'the transfer statement iat is after its exp',
    );
  }
  const newOperatorRoot = requireRootCertificate(
    claims.newOperatorRoot,
    'SIMCRED_TRANSFER_STATEMENT_INVALID',
  );
  if (claims.dsimId !== options.dsimId) {
    throw new SimcredError(
      'SIMCRED_TRANSFER_BINDING_MISMATCH',
      'the transfer statement is for another DSIM_ID',
    );
  }
  if (claims.deviceKeySha256 !== deviceKeySha256(options.devicePublicKey)) {
    throw new SimcredError(
      'SIMCRED_TRANSFER_BINDING_MISMATCH',
      'the transfer statement is for another device key',
    );
  }
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const slack = options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS;
  if (now - slack >= claims.exp) {
    throw new SimcredError('SIMCRED_TRANSFER_STATEMENT_EXPIRED', 'the transfer statement has expired');
  }
  return { claims, newOperatorRoot, signerCertificate: chain[0]!, issuerCertificate: chain[1]! };
}

/**
 * SHA-256 of a device key's SubjectPublicKeyInfo (DER), hex — what a transfer statement binds.
 *
 * @example
 *   deviceKeySha256(deviceCertificatePem); // '3f2a…'
 */
export function deviceKeySha256(key: PublicKeyInput): string {
  const spki = toPublicKey(key).export({ format: 'der', type: 'spki' });
  return createHash('sha256').update(spki).digest('hex');
}

/** A self-signed CA certificate (basicConstraints cA): only a root may become the device's anchor. */
function requireRootCertificate(
  input: CertificateInput,
  code: 'SIMCRED_BAD_REQUEST' | 'SIMCRED_TRANSFER_STATEMENT_INVALID',
): x509.X509Certificate {
  const root =
    typeof input === 'string' && !input.includes('-----BEGIN')
      ? parseCertificateBase64(input, code)
      : parseCertificates([input], code)[0]!;
  const basic = root.getExtension(x509.BasicConstraintsExtension);
  if (!basic?.ca || root.subject !== root.issuer) {
    throw new SimcredError(code, 'the new operator root is not a self-signed CA certificate');
  }
  return root;
}

/** Domain-separation label of the device's transfer confirmation. */
export const TRANSFER_CONFIRMATION_LABEL = 'simcred/v1/transfer-confirmation';

/**
 * The bytes a device signs (src/crypto/device-signature.ts) to tell its old operator that the new
 * operator's credential is installed: u16‖label ‖ u16‖transferId ‖ u16‖DSIM_ID ‖ u16‖packageId.
 *
 * @example
 *   const { alg, signature } = signDeviceMessage(key, transferConfirmationMessage({ transferId, dsimId, packageId }));
 */
export function transferConfirmationMessage(input: {
  transferId: string;
  dsimId: string;
  packageId: string;
}): Buffer {
  return lengthPrefixed(
    utf8(TRANSFER_CONFIRMATION_LABEL),
    utf8(input.transferId),
    checkDsimId(input.dsimId),
    utf8(input.packageId),
  );
}
