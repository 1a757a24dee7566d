/**
 * Opening the package's JWE (ECDH-ES+A256KW / A256GCM) when the device key is not in this process (a
 * TPM computes Z; RFC 7518 §4.6). jose does the whole of it for a KeyObject but cannot take Z from
 * outside, so the steps after the key agreement are written here on node:crypto, the same bytes jose
 * derives: Concat KDF (RFC 7518 §4.6.2, the single-step KDF of xml-key-agreement.ts with JOSE's
 * OtherInfo), AES-256 key unwrap (RFC 3394), AES-256-GCM with the protected header as AAD (RFC 7516
 * §5.2). test/crypto/jwe-ecdh-es.test.ts opens jose's own JWEs this way.
 */
import { createDecipheriv } from 'node:crypto';
import { PACKAGE_CONTENT_ENCRYPTION, PACKAGE_KEY_MANAGEMENT_ALGORITHM } from './algorithms.js';
import type { ExternalDeviceKey } from './device-key.js';
import { fromBase64url } from './encoding.js';
import {
  AES256_KEY_BYTES,
  aesKeyUnwrap,
  concatKdf,
  GCM_IV_BYTES,
  GCM_TAG_BYTES,
} from './xml-key-agreement.js';

const ALG = PACKAGE_KEY_MANAGEMENT_ALGORITHM['ec-p256'];
/** Header parameters the package JWE may carry (what sealPackage writes; `apu`/`apv` as RFC 7518 allows). */
const KNOWN_HEADER = new Set([
  'alg',
  'enc',
  'cty',
  'epk',
  'apu',
  'apv',
  'simcred-dsim',
  'simcred-dn',
  'simcred-jti',
]);

/**
 * Decrypts a compact JWE sealed with ECDH-ES+A256KW / A256GCM to `key`. Throws (a plain Error) on
 * anything wrong — header, point, unwrap, tag; the caller maps every failure to one code, as it does
 * for jose's.
 *
 * @example
 *   const plaintext = await decryptEcdhEsJwe(payload.credentials, tpmKey);
 */
export async function decryptEcdhEsJwe(jwe: string, key: ExternalDeviceKey): Promise<Buffer> {
  const parts = jwe.split('.');
  if (parts.length !== 5) throw new Error('not a compact JWE');
  const [protectedB64, encryptedKeyB64, ivB64, ciphertextB64, tagB64] = parts as [
    string,
    string,
    string,
    string,
    string,
  ];
  const header = JSON.parse(fromBase64url(protectedB64).toString('utf8')) as Record<string, unknown>;
  if (typeof header !== 'object' || header === null) throw new Error('header is not an object');
  // A JWE with parameters this code does not implement (zip, crit, …) is refused, as jose refuses them.
  for (const name of Object.keys(header)) if (!KNOWN_HEADER.has(name)) throw new Error(`header ${name}`);
  if (header.alg !== ALG || header.enc !== PACKAGE_CONTENT_ENCRYPTION) throw new Error('algorithm');
  const epk = header.epk as Record<string, unknown> | undefined;
  if (
    !epk ||
    epk.kty !== 'EC' ||
    epk.crv !== 'P-256' ||
    typeof epk.x !== 'string' ||
    typeof epk.y !== 'string'
  ) {
    throw new Error('epk');
  }
  const x = fromBase64url(epk.x);
  const y = fromBase64url(epk.y);
  if (x.length !== 32 || y.length !== 32) throw new Error('epk');
  const z = await key.ecdhZ(Buffer.concat([Buffer.of(4), x, y]));
  const kek = concatKdf(z, AES256_KEY_BYTES, joseOtherInfo(ALG, header.apu, header.apv, AES256_KEY_BYTES));
  z.fill(0);
  let cek: Buffer;
  try {
    cek = aesKeyUnwrap(kek, fromBase64url(encryptedKeyB64));
  } finally {
    kek.fill(0);
  }
  try {
    if (cek.length !== AES256_KEY_BYTES) throw new Error('content key length');
    const iv = fromBase64url(ivB64);
    const tag = fromBase64url(tagB64);
    if (iv.length !== GCM_IV_BYTES || tag.length !== GCM_TAG_BYTES) throw new Error('iv or tag length');
    const decipher = createDecipheriv('aes-256-gcm', cek, iv, { authTagLength: GCM_TAG_BYTES });
    decipher.setAAD(Buffer.from(protectedB64, 'ascii'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(fromBase64url(ciphertextB64)), decipher.final()]);
  } finally {
    cek.fill(0);
  }
}

/**
 * RFC 7518 §4.6.2 OtherInfo: AlgorithmID ‖ PartyUInfo ‖ PartyVInfo ‖ SuppPubInfo, each of the first
 * three as a 32-bit big-endian length then the bytes, SuppPubInfo the key length in bits (32-bit).
 *
 * @example
 *   joseOtherInfo('ECDH-ES+A256KW', undefined, undefined, 32);
 */
export function joseOtherInfo(alg: string, apu: unknown, apv: unknown, keyBytes: number): Buffer {
  const field = (bytes: Buffer) => Buffer.concat([u32(bytes.length), bytes]);
  const party = (value: unknown) => {
    if (value === undefined) return Buffer.alloc(0);
    if (typeof value !== 'string') throw new Error('apu/apv');
    return fromBase64url(value);
  };
  return Buffer.concat([
    field(Buffer.from(alg, 'ascii')),
    field(party(apu)),
    field(party(apv)),
    u32(keyBytes * 8),
  ]);
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value);
  return b;
}
