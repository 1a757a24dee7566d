/**
 * A device key that this process cannot read (held in a TPM): the two private-key operations the
 * trusted module needs of SK_dsim, done where the key is. Code that takes a device private key takes
 * either a node KeyObject (the software module, the fast default) or one of these.
 */
import type { KeyObject } from 'node:crypto';
import { SimcredError } from '../errors/index.js';
import { DEVICE_SIGNATURE_ALGORITHMS, type DeviceSignatureAlgorithm } from './algorithms.js';
import { keyKind } from './encoding.js';

export interface ExternalDeviceKey {
  /** Only EC P-256 device keys live outside the process (a TPM's ECDSA and ECDH_ZGen). */
  readonly kind: 'ec-p256';
  /** ES256 (ECDSA P-256 over SHA-256 of `message`), the signature as IEEE P1363 r‖s (64 bytes). */
  signEs256(message: Uint8Array): Promise<Buffer>;
  /** The ECDH shared secret Z (x-coordinate, 32 bytes) with a peer's uncompressed P-256 point. */
  ecdhZ(peerPoint: Uint8Array): Promise<Buffer>;
}

/** SK_dsim as the module holds it: in memory, or in a TPM. */
export type DevicePrivateKey = KeyObject | ExternalDeviceKey;

/**
 * True for a key held outside the process.
 *
 * @example
 *   if (isExternalDeviceKey(key)) z = await key.ecdhZ(point);
 */
export function isExternalDeviceKey(key: DevicePrivateKey): key is ExternalDeviceKey {
  return typeof (key as Partial<ExternalDeviceKey>).ecdhZ === 'function';
}

/** The kind of a device key, wherever it is. */
export function deviceKeyKind(key: DevicePrivateKey): 'ec-p256' | 'rsa' {
  return isExternalDeviceKey(key) ? key.kind : keyKind(key);
}

/**
 * ES256 with an external key, after the same allow-list check signDeviceMessage makes.
 *
 * @example
 *   const { alg, signature } = await signDeviceMessageWith(tpmKey, lookupProofMessage({ challenge, dsimId }));
 */
export async function signDeviceMessageWith(
  key: ExternalDeviceKey,
  message: Buffer,
): Promise<{ alg: DeviceSignatureAlgorithm; signature: Buffer }> {
  const alg = DEVICE_SIGNATURE_ALGORITHMS[key.kind][0];
  if (alg !== 'ES256') {
    throw new SimcredError('SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED', `${alg} is not allowed for this key`);
  }
  return { alg, signature: await key.signEs256(message) };
}
