import { createPublicKey, KeyObject, X509Certificate as NodeX509Certificate } from 'node:crypto';
import * as x509 from './x509.js';
import { certificatePublicKey } from './certificates.js';
import { SimcredError, type ErrorCode } from '../errors/index.js';
import { MIN_RSA_MODULUS_BITS, type KeyKind } from './algorithms.js';

/** Largest field a length-prefixed encoding can hold (the prefix is a 16-bit big-endian integer). */
export const MAX_FIELD_BYTES = 0xffff;

/**
 * Encodes the domain-separated byte strings that the flow's MACs and signatures cover: for each field,
 * its length as a 16-bit big-endian unsigned integer followed by its bytes. The first field is always
 * a UTF-8 label such as "simcred/v1/session", so no construction's input can be read as another's, and
 * the length prefixes make the split unambiguous: ("ab","c") and ("a","bc") encode differently.
 * docs/crypto.md §"Length-prefixed encoding" gives worked bytes.
 *
 * @example
 *   lengthPrefixed(utf8('simcred/v1/session'), utf8('ab'), Buffer.from('c')).toString('hex');
 *   // '0012' + hex('simcred/v1/session') + '0002' + '6162' + '0001' + '63'
 */
export function lengthPrefixed(...fields: Uint8Array[]): Buffer {
  const parts: Buffer[] = [];
  for (const field of fields) {
    if (field.length > MAX_FIELD_BYTES) {
      throw new SimcredError('SIMCRED_BAD_REQUEST', `a field of ${field.length} bytes is too long to encode`);
    }
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16BE(field.length);
    parts.push(prefix, Buffer.from(field.buffer, field.byteOffset, field.length));
  }
  return Buffer.concat(parts);
}

/**
 * Strict UTF-8 encoding: refuses strings that do not survive the round trip (lone surrogates would
 * otherwise all become U+FFFD, making two different identifiers encode alike).
 *
 * @example
 *   utf8('dsim-0001'); // <Buffer 64 73 69 6d 2d 30 30 30 31>
 */
export function utf8(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.toString('utf8') !== value) {
    throw new SimcredError('SIMCRED_BAD_REQUEST', 'a text field is not well-formed Unicode');
  }
  return bytes;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/**
 * Base64url without padding (RFC 4648 §5), the encoding of every binary value in simcred's JSON.
 *
 * @example
 *   toBase64url(Buffer.from([0xfb, 0xff])); // '-_8'
 */
export function toBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64url');
}

/**
 * Strict base64url decoding: only the URL-safe alphabet, no padding, and the canonical encoding
 * (Node's own decoder silently skips bad characters, which would let two strings name one value).
 * Throws SIMCRED_BAD_REQUEST (or the given code) naming the field, never echoing the value.
 *
 * @example
 *   fromBase64url('-_8', 'deviceNonce'); // <Buffer fb ff>
 */
export function fromBase64url(
  value: string,
  field = 'value',
  code: ErrorCode = 'SIMCRED_BAD_REQUEST',
): Buffer {
  if (typeof value !== 'string' || !BASE64URL.test(value) || value.length % 4 === 1) {
    throw new SimcredError(code, `${field} is not base64url`);
  }
  const bytes = Buffer.from(value, 'base64url');
  if (bytes.toString('base64url') !== value) {
    throw new SimcredError(code, `${field} is not canonical base64url`);
  }
  return bytes;
}

/** Anything the flow accepts where a public key is meant: a key, or a certificate carrying one. */
export type PublicKeyInput = KeyObject | NodeX509Certificate | x509.X509Certificate | string;

/**
 * Resolves a public key from a KeyObject (a private key gives its public half), a certificate (Node's
 * or @peculiar/x509's), or PEM text (a certificate or a public key).
 *
 * @example
 *   const key = toPublicKey(fs.readFileSync('device.crt.pem', 'utf8'));
 */
export function toPublicKey(input: PublicKeyInput): KeyObject {
  try {
    if (input instanceof KeyObject) return input.type === 'public' ? input : createPublicKey(input);
    if (input instanceof NodeX509Certificate) return input.publicKey;
    if (input instanceof x509.X509Certificate) return certificatePublicKey(input);
    if (typeof input === 'string') {
      // @peculiar's PEM reader also takes unwrapped base64 lines, which OpenSSL's does not.
      if (input.includes('CERTIFICATE-----')) return certificatePublicKey(new x509.X509Certificate(input));
      return createPublicKey(input);
    }
  } catch (cause) {
    throw new SimcredError('SIMCRED_CRYPTO_KEY_UNSUPPORTED', 'the public key or certificate cannot be read', {
      cause,
    });
  }
  throw new SimcredError('SIMCRED_CRYPTO_KEY_UNSUPPORTED', 'no public key given');
}

/**
 * The flow's kind of a key (EC P-256 or RSA ≥ 2048 bits); anything else is refused with
 * SIMCRED_CRYPTO_KEY_UNSUPPORTED (DESIGN §3: device keys are ECDSA P-256 or RSA-2048).
 *
 * @example
 *   keyKind(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey); // 'ec-p256'
 */
export function keyKind(key: KeyObject): KeyKind {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1') return 'ec-p256';
  if (key.asymmetricKeyType === 'rsa' && (details?.modulusLength ?? 0) >= MIN_RSA_MODULUS_BITS) return 'rsa';
  throw new SimcredError(
    'SIMCRED_CRYPTO_KEY_UNSUPPORTED',
    `unsupported key (${key.asymmetricKeyType ?? key.type}); EC P-256 or RSA ≥ ${MIN_RSA_MODULUS_BITS} bits expected`,
  );
}
