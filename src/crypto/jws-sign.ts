/**
 * The signing half of a compact JWS (RFC 7515 §7.1), done here rather than by jose because jose signs
 * only with a KeyObject or CryptoKey, and an operator key in a PKCS#11 token is neither. The bytes are
 * what jose's CompactSign makes: BASE64URL(UTF8(JSON of the protected header)) '.' BASE64URL(payload)
 * '.' BASE64URL(signature), ES256 as r‖s (RFC 7518 §3.4), PS256 with a 32-byte salt (§3.5).
 * Verification stays with jose.
 */
import { SimcredError } from '../errors/index.js';
import type { SigningKey } from '../keys/signing-key.js';

/** The JWS algorithms an operator key signs with (algorithms.ts allow-lists where each is used). */
export type OperatorJwsAlgorithm = 'ES256' | 'PS256';

/**
 * Signs `payload` under `protectedHeader` (which must name its alg) and returns the compact JWS.
 *
 * @example
 *   const jws = signCompactJws({ alg: 'ES256', typ: 'simcred-package+jws', x5c }, payload, signer);
 */
export function signCompactJws(
  protectedHeader: { alg: OperatorJwsAlgorithm } & Record<string, unknown>,
  payload: Uint8Array,
  signer: SigningKey,
): string {
  const alg = protectedHeader.alg;
  const wanted = alg === 'ES256' ? 'ec' : 'rsa';
  if (signer.asymmetricKeyType !== wanted) {
    throw new SimcredError('SIMCRED_CRYPTO_KEY_UNSUPPORTED', `${alg} needs an ${wanted.toUpperCase()} key`);
  }
  const signingInput = `${Buffer.from(JSON.stringify(protectedHeader), 'utf8').toString('base64url')}.${Buffer.from(
    payload.buffer,
    payload.byteOffset,
    payload.byteLength,
  ).toString('base64url')}`;
  const data = Buffer.from(signingInput, 'ascii');
  const signature =
    alg === 'ES256' ? signer.sign(data, 'ieee-p1363') : signer.sign(data, 'der', { pss: true });
  return `${signingInput}.${signature.toString('base64url')}`;
}
