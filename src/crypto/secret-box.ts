import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { SimcredError } from '../errors/index.js';
import { SECRET_BOX_CIPHER } from './algorithms.js';
import { fromBase64url, lengthPrefixed, utf8 } from './encoding.js';

/** Format version prefix of a sealed secret: sealed in this process under a KEK held in memory. */
export const SECRET_BOX_VERSION = 'sb1';
/** The same format sealed in a PKCS#11 token by an AES key that never leaves it (src/keys/key-encryption.ts). */
export const SECRET_BOX_TOKEN_VERSION = 'sb2';
/** Domain-separation label in the AAD. */
export const SECRET_BOX_LABEL = 'simcred/v1/secret-box';
export const KEK_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Largest secret sealed (K and OPc are 16 bytes each). */
export const MAX_SECRET_BYTES = 4096;

/**
 * Reads a 32-byte key-encryption key from configuration text: 64 hex digits, or base64 / base64url
 * (43–44 characters), optionally prefixed "hex:" or "base64:". Throws SIMCRED_CONFIG_INVALID naming the
 * setting — never echoing the value — if it is not exactly 32 bytes.
 *
 * @example
 *   const kek = parseKek(process.env.SIMCRED_HSS_KEK ?? '', 'hss.kek');
 */
export function parseKek(value: string, setting = 'kek'): Buffer {
  const text = typeof value === 'string' ? value.trim() : '';
  let kek: Buffer | undefined;
  if (/^(hex:)?[0-9a-fA-F]{64}$/.test(text)) kek = Buffer.from(text.replace(/^hex:/, ''), 'hex');
  else {
    const b64 = text.replace(/^base64:/, '');
    if (/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(b64)) {
      kek = Buffer.from(b64.replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_'), 'base64url');
    }
  }
  if (kek === undefined || kek.length !== KEK_BYTES) {
    throw new SimcredError(
      'SIMCRED_CONFIG_INVALID',
      `${setting} must be a ${KEK_BYTES}-byte key: 64 hex digits or 43/44 base64 characters`,
    );
  }
  return kek;
}

/**
 * A short public identifier of a KEK: the first 4 bytes of SHA-256("simcred/v1/kek-id" ‖ KEK), hex.
 * Sealed secrets carry it so a key ring can pick the right KEK during rotation and so a wrong KEK is
 * reported as such.
 *
 * @example
 *   kekId(kek); // e.g. '9f3c01ab'
 */
export function kekId(kek: Uint8Array): string {
  checkKek(kek);
  return createHash('sha256').update('simcred/v1/kek-id').update(kek).digest().subarray(0, 4).toString('hex');
}

function checkKek(kek: Uint8Array): void {
  if (!(kek instanceof Uint8Array) || kek.length !== KEK_BYTES) {
    throw new SimcredError('SIMCRED_CONFIG_INVALID', `the key-encryption key must be ${KEK_BYTES} bytes`);
  }
}

/** The AAD of a sealed secret: u16‖label ‖ u16‖header ("sb1.<kekId>" or "sb2.<kekId>") ‖ u16‖context. */
export function secretBoxAad(header: string, context: string): Buffer {
  return lengthPrefixed(utf8(SECRET_BOX_LABEL), utf8(header), utf8(context));
}
const aadFor = secretBoxAad;

/**
 * The parts of a sealed secret of either version, or undefined when it is not one (no key involved:
 * which key sealed it is public, in the header).
 */
export function parseSealedSecret(
  sealed: string,
): { version: string; kekId: string; header: string; iv: Buffer; body: Buffer } | undefined {
  const parts = typeof sealed === 'string' ? sealed.split('.') : [];
  if (parts.length !== 4) return undefined;
  const [version, id, ivText, bodyText] = parts as [string, string, string, string];
  if (version !== SECRET_BOX_VERSION && version !== SECRET_BOX_TOKEN_VERSION) return undefined;
  if (!/^[0-9a-f]{8}$/.test(id)) return undefined;
  try {
    const iv = fromBase64url(ivText, 'iv');
    const body = fromBase64url(bodyText, 'ciphertext');
    if (iv.length !== IV_BYTES || body.length < TAG_BYTES) return undefined;
    return { version, kekId: id, header: `${version}.${id}`, iv, body };
  } catch {
    return undefined;
  }
}

/** Bytes of a sealed secret's IV and GCM tag. */
export const SECRET_BOX_IV_BYTES = IV_BYTES;
export const SECRET_BOX_TAG_BYTES = TAG_BYTES;

/**
 * Encryption at rest of K / OPc (DESIGN §2 step 5, §4.3): AES-256-GCM under a 32-byte KEK with a random
 * 96-bit IV. `context` names the record (e.g. "imsi:001010000000001:k") and is authenticated as AAD,
 * so a ciphertext copied to another row or field does not decrypt. Output:
 * "sb1.<kekId>.<base64url(IV)>.<base64url(ciphertext ‖ 16-byte tag)>", where
 * AAD = u16‖"simcred/v1/secret-box" ‖ u16‖"sb1.<kekId>" ‖ u16‖context (u16 = 16-bit big-endian length).
 *
 * @example
 *   const stored = sealSecret(Buffer.from(k, 'hex'), { kek, context: `imsi:${imsi}:k` });
 */
export function sealSecret(plaintext: Uint8Array, options: { kek: Uint8Array; context: string }): string {
  checkKek(options.kek);
  if (!(plaintext instanceof Uint8Array) || plaintext.length > MAX_SECRET_BYTES) {
    throw new SimcredError('SIMCRED_BAD_REQUEST', `a secret must be at most ${MAX_SECRET_BYTES} bytes`);
  }
  const header = `${SECRET_BOX_VERSION}.${kekId(options.kek)}`;
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(SECRET_BOX_CIPHER, options.kek, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aadFor(header, options.context));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return `${header}.${iv.toString('base64url')}.${body.toString('base64url')}`;
}

/**
 * Opens a {@link sealSecret} string. `kek` may be one key or a key ring (current and retired KEKs);
 * the one whose id the string names is used. Throws SIMCRED_SECRET_DECRYPT_FAILED — with no detail of
 * the content — if the string is malformed, names an unknown KEK, or fails authentication (other
 * context, altered byte, wrong key).
 *
 * @example
 *   const k = openSecret(row.k_sealed, { kek: [currentKek, previousKek], context: `imsi:${imsi}:k` });
 */
export function openSecret(
  sealed: string,
  options: { kek: Uint8Array | readonly Uint8Array[]; context: string },
): Buffer {
  const fail = (why: string, cause?: unknown): never => {
    throw new SimcredError('SIMCRED_SECRET_DECRYPT_FAILED', `sealed secret cannot be opened: ${why}`, {
      cause,
    });
  };
  const ring = options.kek instanceof Uint8Array ? [options.kek] : [...options.kek];
  const parts = typeof sealed === 'string' ? sealed.split('.') : [];
  if (parts[0] === SECRET_BOX_TOKEN_VERSION && parts.length === 4)
    return fail(
      'sealed in a PKCS#11 token (sb2): configure the token key, not a key-encryption key in a file',
    );
  if (parts.length !== 4 || parts[0] !== SECRET_BOX_VERSION) return fail('unknown format');
  const [version, id, ivText, bodyText] = parts as [string, string, string, string];
  const kek = ring.find((key) => kekId(key) === id);
  if (kek === undefined) return fail('sealed under a key-encryption key that is not configured');
  let iv: Buffer;
  let body: Buffer;
  try {
    iv = fromBase64url(ivText, 'iv');
    body = fromBase64url(bodyText, 'ciphertext');
  } catch (cause) {
    return fail('unknown format', cause);
  }
  if (iv.length !== IV_BYTES || body.length < TAG_BYTES) return fail('unknown format');
  try {
    const decipher = createDecipheriv(SECRET_BOX_CIPHER, kek, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(aadFor(`${version}.${id}`, options.context));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]);
  } catch (cause) {
    return fail('authentication failed (wrong key, wrong record or altered data)', cause);
  }
}
