/**
 * The parts of the XML package's encryption that no maintained Node XML library covers (xml-encryption
 * 6 does RSA key transport and AES-GCM, but has no key agreement): XML Encryption 1.1 ECDH-ES (§5.6.4)
 * with the ConcatKDF (§5.4.1, NIST SP 800-56A §5.8.1 single-step KDF over SHA-256), AES-256 key wrap
 * (RFC 3394) and the AES-256-GCM content layout of §5.2.4. Every primitive is node:crypto's; only the
 * byte layouts are written here, and each is checked against a published vector in
 * test/crypto/xml-key-agreement.test.ts.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';

/** AES-GCM IV length of XML Encryption 1.1 §5.2.4 (96 bits). */
export const GCM_IV_BYTES = 12;
/** AES-GCM tag length of XML Encryption 1.1 §5.2.4 (128 bits). */
export const GCM_TAG_BYTES = 16;
/** Content and key-encryption keys: AES-256. */
export const AES256_KEY_BYTES = 32;
/** RFC 3394 §2.2.3.1 default initial value. */
const KEY_WRAP_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');

/**
 * NIST SP 800-56A single-step KDF with SHA-256: K(i) = SHA-256(counter_i (32-bit big-endian, from 1) ‖
 * Z ‖ OtherInfo), output the first `keyBytes` of K(1) ‖ K(2) ‖ …  — the ConcatKDF of RFC 7518 §4.6.2
 * and XML Encryption 1.1 §5.4.1 alike (they differ only in how OtherInfo is built).
 *
 * @example
 *   concatKdf(sharedSecret, 32, xmlConcatKdfOtherInfo(params));
 */
export function concatKdf(z: Uint8Array, keyBytes: number, otherInfo: Uint8Array): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 1; blocks.length * 32 < keyBytes; i++) {
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(i);
    blocks.push(createHash('sha256').update(counter).update(z).update(otherInfo).digest());
  }
  return Buffer.concat(blocks).subarray(0, keyBytes);
}

/** The ConcatKDFParams attributes (XML Encryption 1.1 §5.4.1): hex bit strings, the first octet the number of padding bits. */
export interface ConcatKdfParams {
  algorithmId: string;
  partyUInfo: string;
  partyVInfo: string;
}

/**
 * OtherInfo = AlgorithmID ‖ PartyUInfo ‖ PartyVInfo, each attribute hex-decoded with its leading
 * padding-bit count removed (§5.4.1; only whole octets, i.e. a leading "00", are accepted). An empty
 * attribute contributes nothing. Returns undefined for a malformed attribute.
 *
 * @example
 *   xmlConcatKdfOtherInfo({ algorithmId: '00414243', partyUInfo: '', partyVInfo: '00' }); // <Buffer 41 42 43>
 */
export function xmlConcatKdfOtherInfo(params: ConcatKdfParams): Buffer | undefined {
  const parts: Buffer[] = [];
  for (const value of [params.algorithmId, params.partyUInfo, params.partyVInfo]) {
    if (value === '') continue;
    if (!/^00(?:[0-9A-Fa-f]{2})*$/.test(value)) return undefined;
    parts.push(Buffer.from(value.slice(2), 'hex'));
  }
  return Buffer.concat(parts);
}

/** The bit-string attribute of `bytes`: "00" (no padding bits) then hex. */
export function toBitStringHex(bytes: Uint8Array): string {
  return `00${Buffer.from(bytes).toString('hex').toUpperCase()}`;
}

/** AES-256 key wrap, RFC 3394 (OpenSSL's id-aes256-wrap). */
export function aesKeyWrap(kek: Uint8Array, key: Uint8Array): Buffer {
  const cipher = createCipheriv('id-aes256-wrap', kek, KEY_WRAP_IV);
  return Buffer.concat([cipher.update(key), cipher.final()]);
}

/** AES-256 key unwrap, RFC 3394; throws if the integrity check fails. */
export function aesKeyUnwrap(kek: Uint8Array, wrapped: Uint8Array): Buffer {
  const decipher = createDecipheriv('id-aes256-wrap', kek, KEY_WRAP_IV);
  return Buffer.concat([decipher.update(wrapped), decipher.final()]);
}

/** AES-256-GCM as XML Encryption 1.1 §5.2.4 lays it out: IV (12) ‖ ciphertext ‖ tag (16), no AAD. */
export function aesGcmEncrypt(key: Uint8Array, plaintext: Uint8Array): Buffer {
  const iv = randomBytes(GCM_IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]);
}

/** The inverse of {@link aesGcmEncrypt}; throws if the tag does not verify. */
export function aesGcmDecrypt(key: Uint8Array, data: Uint8Array): Buffer {
  if (data.length < GCM_IV_BYTES + GCM_TAG_BYTES) throw new Error('AES-GCM data too short');
  const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, GCM_IV_BYTES), {
    authTagLength: GCM_TAG_BYTES,
  });
  decipher.setAuthTag(data.subarray(data.length - GCM_TAG_BYTES));
  return Buffer.concat([
    decipher.update(data.subarray(GCM_IV_BYTES, data.length - GCM_TAG_BYTES)),
    decipher.final(),
  ]);
}

/** An uncompressed P-256 point (0x04 ‖ X ‖ Y, 65 bytes), the dsig11:PublicKey of an ECKeyValue. */
export function p256PointOf(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: 'jwk' });
  return Buffer.concat([
    Buffer.from([4]),
    Buffer.from(jwk.x as string, 'base64url'),
    Buffer.from(jwk.y as string, 'base64url'),
  ]);
}

/** A P-256 public key from an uncompressed point; node:crypto refuses a point off the curve. */
export function p256KeyOfPoint(point: Uint8Array): KeyObject {
  if (point.length !== 65 || point[0] !== 4) throw new Error('not an uncompressed P-256 point');
  return createPublicKey({
    format: 'jwk',
    key: {
      kty: 'EC',
      crv: 'P-256',
      x: Buffer.from(point.subarray(1, 33)).toString('base64url'),
      y: Buffer.from(point.subarray(33)).toString('base64url'),
    },
  });
}

/**
 * Sender side of ECDH-ES (XML Encryption 1.1 §5.6.4): a fresh ephemeral P-256 key, Z = ECDH(ephemeral,
 * recipient), KEK = ConcatKDF(Z, 32, OtherInfo(params)), the content key wrapped under the KEK.
 *
 * @example
 *   const { originatorPoint, wrappedKey } = ecdhEsWrapKey(cek, deviceKey, params);
 */
export function ecdhEsWrapKey(
  contentKey: Uint8Array,
  recipient: KeyObject,
  params: ConcatKdfParams,
): { originatorPoint: Buffer; wrappedKey: Buffer } {
  const otherInfo = xmlConcatKdfOtherInfo(params);
  if (otherInfo === undefined) throw new Error('malformed ConcatKDF parameters');
  const ephemeral = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const z = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: recipient });
  const kek = concatKdf(z, AES256_KEY_BYTES, otherInfo);
  z.fill(0);
  try {
    return { originatorPoint: p256PointOf(ephemeral.publicKey), wrappedKey: aesKeyWrap(kek, contentKey) };
  } finally {
    kek.fill(0);
  }
}

/**
 * Recipient side: Z = ECDH(own private key, originator point), the same KEK, the content key unwrapped.
 * Throws on an invalid point or a failed unwrap (the caller maps both to one error code).
 */
export function ecdhEsUnwrapKey(
  wrappedKey: Uint8Array,
  originatorPoint: Uint8Array,
  recipient: KeyObject,
  params: ConcatKdfParams,
): Buffer {
  const otherInfo = xmlConcatKdfOtherInfo(params);
  if (otherInfo === undefined) throw new Error('malformed ConcatKDF parameters');
  const z = diffieHellman({ privateKey: recipient, publicKey: p256KeyOfPoint(originatorPoint) });
  return ecdhEsUnwrapKeyWithZ(wrappedKey, z, params);
}

/**
 * The recipient side after the key agreement, for a Z computed elsewhere (a TPM's ECDH_ZGen): the
 * KEK from Z and the ConcatKDF parameters, the content key unwrapped. Zeroes Z.
 *
 * @example
 *   const contentKey = ecdhEsUnwrapKeyWithZ(wrappedKey, await tpmKey.ecdhZ(originatorPoint), params);
 */
export function ecdhEsUnwrapKeyWithZ(wrappedKey: Uint8Array, z: Buffer, params: ConcatKdfParams): Buffer {
  const otherInfo = xmlConcatKdfOtherInfo(params);
  if (otherInfo === undefined) {
    z.fill(0);
    throw new Error('malformed ConcatKDF parameters');
  }
  const kek = concatKdf(z, AES256_KEY_BYTES, otherInfo);
  z.fill(0);
  try {
    return aesKeyUnwrap(kek, wrappedKey);
  } finally {
    kek.fill(0);
  }
}
