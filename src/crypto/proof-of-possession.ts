import type { KeyObject } from 'node:crypto';
import { SimcredError } from '../errors/index.js';
import type { DeviceSignatureAlgorithm } from './algorithms.js';
import { signDeviceMessage, verifyDeviceMessage } from './device-signature.js';
import { lengthPrefixed, utf8, type PublicKeyInput } from './encoding.js';
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
  return signDeviceMessage(privateKey, proofOfPossessionMessage(input), alg);
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
  let message: Buffer;
  try {
    message = proofOfPossessionMessage(input);
  } catch {
    return false;
  }
  return verifyDeviceMessage(publicKey, message, proof);
}
