import { constants, sign, verify, type KeyObject } from 'node:crypto';
import { SimcredError } from '../errors/index.js';
import {
  DEVICE_SIGNATURE_ALGORITHMS,
  PSS_SALT_BYTES,
  type DeviceSignatureAlgorithm,
  type KeyKind,
} from './algorithms.js';
import {
  fromBase64url,
  keyKind,
  lengthPrefixed,
  toPublicKey,
  utf8,
  type PublicKeyInput,
} from './encoding.js';
import { checkDsimId, SESSION_NONCE_BYTES } from './session-nonce.js';

/** Domain-separation label of the proof of possession (DESIGN §2 step 4). */
export const POP_LABEL = 'simcred/v1/pop';
/** Accepted challenge lengths; the authentication subsystem should issue 32 random bytes. */
export const CHALLENGE_MIN_BYTES = 16;
export const CHALLENGE_MAX_BYTES = 64;

export interface ProofOfPossessionInput {
  /** The authentication subsystem's random challenge (16–64 bytes). */
  challenge: Uint8Array;
  /** The 32-byte registration-session nonce of step 3. */
  sessionNonce: Uint8Array;
  dsimId: string;
}

export interface ProofOfPossession {
  alg: DeviceSignatureAlgorithm;
  /** ES256: IEEE P1363 r‖s, 64 bytes. PS256 / RS256: the RSA signature, modulus-length bytes. */
  signature: Buffer;
}

/**
 * The exact bytes a device signs to prove possession of SK_dsim (DESIGN §2 step 4):
 * u16(14) ‖ "simcred/v1/pop" ‖ u16(len) ‖ challenge ‖ u16(32) ‖ sessionNonce ‖ u16(len) ‖ DSIM_ID (UTF-8),
 * u16 being a 16-bit big-endian length. Throws SIMCRED_BAD_REQUEST on out-of-range inputs.
 *
 * @example
 *   proofOfPossessionMessage({ challenge, sessionNonce, dsimId: 'dsim-0001' }).length; // 2+14+2+32+2+32+2+9
 */
export function proofOfPossessionMessage(input: ProofOfPossessionInput): Buffer {
  const { challenge, sessionNonce } = input;
  if (
    !(challenge instanceof Uint8Array) ||
    challenge.length < CHALLENGE_MIN_BYTES ||
    challenge.length > CHALLENGE_MAX_BYTES
  ) {
    throw new SimcredError(
      'SIMCRED_BAD_REQUEST',
      `the challenge must be ${CHALLENGE_MIN_BYTES}–${CHALLENGE_MAX_BYTES} bytes`,
    );
  }
  if (!(sessionNonce instanceof Uint8Array) || sessionNonce.length !== SESSION_NONCE_BYTES) {
    throw new SimcredError('SIMCRED_BAD_REQUEST', `the session nonce must be ${SESSION_NONCE_BYTES} bytes`);
  }
  return lengthPrefixed(utf8(POP_LABEL), challenge, sessionNonce, checkDsimId(input.dsimId));
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

/**
 * Device side, DESIGN §2 step 4: signs {@link proofOfPossessionMessage} with SK_dsim. EC P-256 keys sign
 * ES256 (ECDSA SHA-256, IEEE P1363 r‖s); RSA keys sign PS256 (RSA-PSS SHA-256, MGF1-SHA-256, 32-byte
 * salt) unless `alg` asks for another allow-listed one (RS256 for modules without PSS).
 *
 * @example
 *   const { alg, signature } = signProofOfPossession(deviceKey, { challenge, sessionNonce, dsimId });
 *   send({ alg, signature: toBase64url(signature), certificate: certPem });
 */
export function signProofOfPossession(
  privateKey: KeyObject,
  input: ProofOfPossessionInput,
  alg?: DeviceSignatureAlgorithm,
): ProofOfPossession {
  const kind = keyKind(privateKey);
  const chosen = alg ?? DEVICE_SIGNATURE_ALGORITHMS[kind][0];
  if (!algorithmAllowed(kind, chosen)) {
    throw new SimcredError(
      'SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED',
      `${String(chosen)} is not allowed for this key`,
    );
  }
  const signature = sign('sha256', proofOfPossessionMessage(input), signatureOptions(chosen, privateKey));
  return { alg: chosen, signature };
}

/**
 * Authentication subsystem, DESIGN §2 step 4: verifies a proof of possession with the public key of
 * CERT_dsim (pass the certificate itself or its key). The algorithm must be allow-listed for the key's
 * kind (no RSA algorithm on an EC key or the reverse); the signature may be bytes or base64url text.
 * Returns false — never throws — for a wrong, malformed or disallowed proof, so the caller fails closed
 * with its own error code. Checking the certificate chain, DSIM_ID binding and OCSP status is the
 * caller's job.
 *
 * @example
 *   const ok = verifyProofOfPossession(deviceCertPem, { challenge, sessionNonce, dsimId },
 *     { alg: body.alg, signature: body.signature });
 */
export function verifyProofOfPossession(
  publicKey: PublicKeyInput,
  input: ProofOfPossessionInput,
  proof: { alg: string; signature: Uint8Array | string },
): boolean {
  try {
    const key = toPublicKey(publicKey);
    const kind = keyKind(key);
    if (!algorithmAllowed(kind, proof.alg)) return false;
    const signature =
      typeof proof.signature === 'string' ? fromBase64url(proof.signature, 'signature') : proof.signature;
    if (!(signature instanceof Uint8Array)) return false;
    if (proof.alg === 'ES256' && signature.length !== 64) return false;
    return verify('sha256', proofOfPossessionMessage(input), signatureOptions(proof.alg, key), signature);
  } catch {
    return false;
  }
}
