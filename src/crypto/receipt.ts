import { CompactSign, compactVerify, decodeProtectedHeader } from 'jose';
import { z } from 'zod';
import { SimcredError } from '../errors/index.js';
import { DEVICE_SIGNATURE_ALGORITHMS, type DeviceSignatureAlgorithm } from './algorithms.js';
import { keyKind, toBase64url, toPublicKey, type PublicKeyInput } from './encoding.js';
import { deviceKeyKind, isExternalDeviceKey, type DevicePrivateKey } from './device-key.js';
import { algorithmAllowed } from './device-signature.js';
import { checkDsimId } from './session-nonce.js';

/** JWS `typ` of the device's installation receipt (DESIGN §2 step 12). */
export const RECEIPT_TYPE = 'simcred-receipt+jws';
/** Largest receipt accepted, in characters. */
export const MAX_RECEIPT_CHARS = 8192;

export interface ReceiptClaims {
  v: 1;
  dsimId: string;
  /** The `jti` of the package that was installed. */
  packageId: string;
  /** The device nonce of the session (base64url), so the receipt cannot be replayed into another one. */
  deviceNonce: string;
  status: 'installed';
  /** Seconds since the epoch, device clock. */
  iat: number;
}

const receiptSchema = z.object({
  v: z.literal(1),
  dsimId: z.string().min(1).max(256),
  packageId: z.string().min(1).max(128),
  deviceNonce: z.string().min(1).max(128),
  status: z.literal('installed'),
  iat: z.number().int().nonnegative(),
});

/**
 * Device side, DESIGN §2 step 12: a compact JWS, signed with SK_dsim, saying "package <packageId> for
 * <dsimId> in session <deviceNonce> is installed". Header {alg, typ: "simcred-receipt+jws"}; alg is
 * ES256 for EC P-256 keys, PS256 for RSA (algorithms.ts) unless an allow-listed `alg` is asked for.
 *
 * @example
 *   const receipt = await signReceipt(deviceKey, { dsimId, packageId, deviceNonce });
 */
export async function signReceipt(
  privateKey: DevicePrivateKey,
  claims: { dsimId: string; packageId: string; deviceNonce: Uint8Array; now?: Date },
  alg?: DeviceSignatureAlgorithm,
): Promise<string> {
  const kind = deviceKeyKind(privateKey);
  const chosen = alg ?? DEVICE_SIGNATURE_ALGORITHMS[kind][0];
  if (!algorithmAllowed(kind, chosen)) {
    throw new SimcredError(
      'SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED',
      `${String(chosen)} is not allowed for this key`,
    );
  }
  checkDsimId(claims.dsimId);
  const payload: ReceiptClaims = {
    v: 1,
    dsimId: claims.dsimId,
    packageId: claims.packageId,
    deviceNonce: toBase64url(claims.deviceNonce),
    status: 'installed',
    iat: Math.floor((claims.now ?? new Date()).getTime() / 1000),
  };
  if (isExternalDeviceKey(privateKey)) {
    // A key in a TPM: the JWS signing input of RFC 7515 §5.1 built as jose builds it, signed there.
    const input = `${toBase64url(Buffer.from(JSON.stringify({ alg: chosen, typ: RECEIPT_TYPE })))}.${toBase64url(Buffer.from(JSON.stringify(payload)))}`;
    return `${input}.${toBase64url(await privateKey.signEs256(Buffer.from(input, 'ascii')))}`;
  }
  return new CompactSign(Buffer.from(JSON.stringify(payload)))
    .setProtectedHeader({ alg: chosen, typ: RECEIPT_TYPE })
    .sign(privateKey);
}

/**
 * Credentialing server, DESIGN §2 step 12: verifies a receipt with the device's public key (CERT_dsim
 * or its key, as authenticated in step 4) and checks that it names the expected DSIM_ID, package and
 * device nonce. Throws SIMCRED_RECEIPT_INVALID on any failure (bad signature, disallowed algorithm,
 * wrong type, other device, other package, other session, malformed).
 *
 * @example
 *   const claims = await verifyReceipt(body.receipt, deviceCertPem, { dsimId, packageId, deviceNonce });
 */
export async function verifyReceipt(
  receipt: string,
  publicKey: PublicKeyInput,
  expected: { dsimId: string; packageId: string; deviceNonce: Uint8Array },
): Promise<ReceiptClaims> {
  const fail = (why: string, cause?: unknown): never => {
    throw new SimcredError('SIMCRED_RECEIPT_INVALID', `receipt rejected: ${why}`, { cause });
  };
  if (typeof receipt !== 'string' || receipt.length > MAX_RECEIPT_CHARS) fail('not a compact JWS');
  const key = toPublicKey(publicKey);
  const allowed: readonly string[] = DEVICE_SIGNATURE_ALGORITHMS[keyKind(key)];
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(receipt);
  } catch (cause) {
    return fail('not a compact JWS', cause);
  }
  if (header.typ !== RECEIPT_TYPE) fail('wrong typ');
  let payload: Uint8Array;
  try {
    ({ payload } = await compactVerify(receipt, key, { algorithms: [...allowed] }));
  } catch (cause) {
    return fail('signature does not verify', cause);
  }
  let claims: ReceiptClaims;
  try {
    claims = receiptSchema.parse(JSON.parse(Buffer.from(payload).toString('utf8'))) as ReceiptClaims;
  } catch (cause) {
    return fail('malformed claims', cause);
  }
  if (claims.dsimId !== expected.dsimId) fail('other DSIM_ID');
  if (claims.packageId !== expected.packageId) fail('other package');
  if (claims.deviceNonce !== toBase64url(expected.deviceNonce)) fail('other session');
  return claims;
}
