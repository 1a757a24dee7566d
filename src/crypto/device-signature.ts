import { constants, sign, verify, type KeyObject } from 'node:crypto';
import { SimcredError } from '../errors/index.js';
import {
  DEVICE_SIGNATURE_ALGORITHMS,
  PSS_SALT_BYTES,
  type DeviceSignatureAlgorithm,
  type KeyKind,
} from './algorithms.js';
import { fromBase64url, keyKind, toPublicKey, type PublicKeyInput } from './encoding.js';

/**
 * Signs bytes with a device key under the allow-listed algorithm for its kind (ES256 for EC P-256,
 * PS256 for RSA unless `alg` picks RS256). Callers build the message with a domain-separation label.
 *
 * @example
 *   const { alg, signature } = signDeviceMessage(deviceKey, lookupProofMessage({ challenge, dsimId }));
 */
export function signDeviceMessage(
  privateKey: KeyObject,
  message: Buffer,
  alg?: DeviceSignatureAlgorithm,
): { alg: DeviceSignatureAlgorithm; signature: Buffer } {
  const kind = keyKind(privateKey);
  const chosen = alg ?? DEVICE_SIGNATURE_ALGORITHMS[kind][0];
  if (!algorithmAllowed(kind, chosen)) {
    throw new SimcredError(
      'SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED',
      `${String(chosen)} is not allowed for this key`,
    );
  }
  return { alg: chosen, signature: sign('sha256', message, signatureOptions(chosen, privateKey)) };
}

/** Verifies a device signature; false (never a throw) for anything wrong, so callers fail closed with their own code. */
export function verifyDeviceMessage(
  publicKey: PublicKeyInput,
  message: Buffer,
  proof: { alg: string; signature: Uint8Array | string },
): boolean {
  try {
    const key = toPublicKey(publicKey);
    if (!algorithmAllowed(keyKind(key), proof.alg)) return false;
    const signature =
      typeof proof.signature === 'string' ? fromBase64url(proof.signature, 'signature') : proof.signature;
    if (proof.alg === 'ES256' && signature.length !== 64) return false;
    return verify('sha256', message, signatureOptions(proof.alg, key), signature);
  } catch {
    return false;
  }
}

/** @internal Node sign/verify options for a device signature algorithm. */
export function signatureOptions(alg: DeviceSignatureAlgorithm, key: KeyObject) {
  switch (alg) {
    case 'ES256':
      return { key, dsaEncoding: 'ieee-p1363' as const };
    case 'PS256':
      return { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT_BYTES };
    case 'RS256':
      return { key, padding: constants.RSA_PKCS1_PADDING };
  }
}

/** @internal True if `alg` is allow-listed for a key of this kind (algorithms.ts). */
export function algorithmAllowed(kind: KeyKind, alg: unknown): alg is DeviceSignatureAlgorithm {
  return (DEVICE_SIGNATURE_ALGORITHMS[kind] as readonly unknown[]).includes(alg);
}
