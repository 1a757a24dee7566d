import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { SimcredError } from '../errors/index.js';
import { SESSION_NONCE_HMAC } from './algorithms.js';
import { fromBase64url, lengthPrefixed, utf8 } from './encoding.js';

/** Domain-separation label of the registration-session nonce (DESIGN §2 step 3). */
export const SESSION_NONCE_LABEL = 'simcred/v1/session';
/** Registration nonce length (DESIGN §2 step 0b: a fresh random 32-byte value). */
export const REGISTRATION_NONCE_BYTES = 32;
/** Session nonce length (HMAC-SHA-256 output). */
export const SESSION_NONCE_BYTES = 32;
/** Accepted device nonce lengths; devices should use 32 random bytes. */
export const DEVICE_NONCE_MIN_BYTES = 16;
export const DEVICE_NONCE_MAX_BYTES = 64;
/** Accepted DSIM_ID length in UTF-8 bytes. */
export const DSIM_ID_MAX_BYTES = 256;

export interface SessionNonceInput {
  /** The 32-byte registration nonce the registration server gave the device (step 2). */
  registrationNonce: Uint8Array;
  dsimId: string;
  /** The device's fresh nonce for this session (16–64 bytes). */
  deviceNonce: Uint8Array;
}

/**
 * A fresh random nonce: 32 bytes, for registration nonces (step 0b), device nonces (step 3) and
 * challenges (step 4).
 *
 * @example
 *   const deviceNonce = randomNonce();
 */
export function randomNonce(bytes = 32): Buffer {
  return randomBytes(bytes);
}

/** @internal Validates the inputs and returns the HMAC message, or throws SIMCRED_BAD_REQUEST. */
export function sessionNonceMessage(input: Pick<SessionNonceInput, 'dsimId' | 'deviceNonce'>): Buffer {
  const dsimId = checkDsimId(input.dsimId);
  const n = input.deviceNonce;
  if (!(n instanceof Uint8Array) || n.length < DEVICE_NONCE_MIN_BYTES || n.length > DEVICE_NONCE_MAX_BYTES) {
    throw new SimcredError(
      'SIMCRED_BAD_REQUEST',
      `the device nonce must be ${DEVICE_NONCE_MIN_BYTES}–${DEVICE_NONCE_MAX_BYTES} bytes`,
    );
  }
  return lengthPrefixed(utf8(SESSION_NONCE_LABEL), dsimId, n);
}

/** @internal A DSIM_ID as its UTF-8 bytes, checked non-empty and at most DSIM_ID_MAX_BYTES. */
export function checkDsimId(dsimId: string): Buffer {
  if (typeof dsimId !== 'string' || dsimId.length === 0) {
    throw new SimcredError('SIMCRED_BAD_REQUEST', 'the DSIM_ID must be a non-empty string');
  }
  const bytes = utf8(dsimId);
  if (bytes.length > DSIM_ID_MAX_BYTES) {
    throw new SimcredError('SIMCRED_BAD_REQUEST', `the DSIM_ID is longer than ${DSIM_ID_MAX_BYTES} bytes`);
  }
  return bytes;
}

/**
 * The registration-session nonce, DESIGN §2 step 3:
 * sessionNonce = HMAC-SHA-256(key = registrationNonce,
 *                             u16(18) ‖ "simcred/v1/session" ‖ u16(len) ‖ DSIM_ID (UTF-8) ‖ u16(len) ‖ deviceNonce)
 * where u16 is a 16-bit big-endian length (see {@link lengthPrefixed}). The device computes it; the
 * authentication subsystem (step 4) recomputes it with {@link verifySessionNonce}. Throws
 * SIMCRED_BAD_REQUEST on a registration nonce that is not 32 bytes, a device nonce outside 16–64 bytes,
 * or an empty / over-long / ill-formed DSIM_ID.
 *
 * @example
 *   const sessionNonce = computeSessionNonce({ registrationNonce, dsimId: 'dsim-0001', deviceNonce });
 *   toBase64url(sessionNonce); // 43 characters, sent in step 3
 */
export function computeSessionNonce(input: SessionNonceInput): Buffer {
  const key = input.registrationNonce;
  if (!(key instanceof Uint8Array) || key.length !== REGISTRATION_NONCE_BYTES) {
    throw new SimcredError(
      'SIMCRED_BAD_REQUEST',
      `the registration nonce must be ${REGISTRATION_NONCE_BYTES} bytes`,
    );
  }
  return createHmac(SESSION_NONCE_HMAC, key).update(sessionNonceMessage(input)).digest();
}

/**
 * Authentication subsystem, DESIGN §2 step 4: recomputes the session nonce and compares it with the
 * presented one in constant time (crypto.timingSafeEqual after a length check, so a short value is
 * rejected without an exception). The presented nonce may be raw bytes or its base64url text.
 * Returns false — never throws — on anything the device supplied that is wrong or malformed (nonce,
 * DSIM_ID, device nonce); throws SIMCRED_BAD_REQUEST only if the stored registration nonce is not
 * 32 bytes, which is a server-side fault.
 *
 * @example
 *   if (!verifySessionNonce({ registrationNonce, dsimId, deviceNonce, sessionNonce: body.sessionNonce })) {
 *     throw new SimcredError('SIMCRED_...', 'session nonce mismatch');
 *   }
 */
export function verifySessionNonce(
  input: SessionNonceInput & { sessionNonce: Uint8Array | string },
): boolean {
  if (
    !(input.registrationNonce instanceof Uint8Array) ||
    input.registrationNonce.length !== REGISTRATION_NONCE_BYTES
  ) {
    throw new SimcredError(
      'SIMCRED_BAD_REQUEST',
      `the registration nonce must be ${REGISTRATION_NONCE_BYTES} bytes`,
    );
  }
  let presented: Uint8Array;
  let expected: Buffer;
  try {
    presented =
      typeof input.sessionNonce === 'string'
        ? fromBase64url(input.sessionNonce, 'sessionNonce')
        : input.sessionNonce;
    expected = computeSessionNonce(input);
  } catch {
    return false;
  }
  if (!(presented instanceof Uint8Array) || presented.length !== expected.length) return false;
  return timingSafeEqual(presented, expected);
}
