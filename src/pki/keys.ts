import { createPrivateKey, generateKeyPair, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { isAbsolute, join } from 'node:path';
import { SimcredError } from '../errors/index.js';
import { isPkcs11Uri } from '../keys/pkcs11-uri.js';
import { checkKeyMatchesCertificate, loadSigningKey, type SigningKey } from '../keys/signing-key.js';
import { readText } from '../storage/files.js';

/** Device key types; CAs and servers are always EC P-256. */
export const KEY_TYPES = ['ec', 'rsa'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

export interface KeyPair {
  publicKey: KeyObject;
  privateKey: KeyObject;
}

const generateKeyPairAsync = promisify(generateKeyPair);

/**
 * A fresh key pair: EC P-256 (default) or RSA-2048 (e = 65537).
 * Async so RSA generation, which takes tens of milliseconds, runs on libuv's pool.
 *
 * @example
 *   const { privateKey, publicKey } = await newKeyPair('rsa');
 */
export async function newKeyPair(type: KeyType = 'ec'): Promise<KeyPair> {
  return type === 'ec'
    ? generateKeyPairAsync('ec', { namedCurve: 'P-256' })
    : generateKeyPairAsync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
}

/** Synchronous EC P-256 key pair: ~60 µs, cheaper than a round trip through the thread pool. */
export function newEcKeyPairSync(): KeyPair {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' });
}

/** A key pair straight in its file encodings (SPKI DER, PKCS#8 PEM): no KeyObject round trips. */
export interface EncodedKeyPair {
  spkiDer: Buffer;
  pkcs8Pem: string;
}

export function newEncodedEcKeyPairSync(): EncodedKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ec', {
    namedCurve: 'P-256',
    publicKeyEncoding: { type: 'spki', format: 'der' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { spkiDer: publicKey, pkcs8Pem: privateKey };
}

export function newEncodedKeyPair(type: KeyType): Promise<EncodedKeyPair> {
  return new Promise((resolvePromise, reject) => {
    const done = (err: Error | null, publicKey: Buffer, privateKey: string) =>
      err ? reject(err) : resolvePromise({ spkiDer: publicKey, pkcs8Pem: privateKey });
    const publicKeyEncoding = { type: 'spki', format: 'der' } as const;
    const privateKeyEncoding = { type: 'pkcs8', format: 'pem' } as const;
    if (type === 'ec') {
      generateKeyPair('ec', { namedCurve: 'P-256', publicKeyEncoding, privateKeyEncoding }, done);
    } else {
      generateKeyPair(
        'rsa',
        { modulusLength: 2048, publicExponent: 0x10001, publicKeyEncoding, privateKeyEncoding },
        done,
      );
    }
  });
}

export function privateKeyPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

export function publicKeySpki(key: KeyObject): Buffer {
  return key.export({ type: 'spki', format: 'der' });
}

/**
 * Reads a PKCS#8 PEM private key file as a KeyObject.
 *
 * @example
 *   const signer = loadPrivateKey('/data/pki/operator/package-signer.key.pem');
 */
export function loadPrivateKey(path: string): KeyObject {
  const pem = readText(path);
  try {
    return createPrivateKey(pem);
  } catch (err) {
    throw new SimcredError('SIMCRED_PKI_INCONSISTENT', `${path} is not a PEM private key`, { cause: err });
  }
}

export function parseKeyType(value: string): KeyType {
  if ((KEY_TYPES as readonly string[]).includes(value)) return value as KeyType;
  throw new SimcredError(
    'SIMCRED_CLI_ARGUMENT',
    `--key must be one of ${KEY_TYPES.join(', ')}, got ${JSON.stringify(value)}`,
  );
}

/**
 * A PKI key by its reference in pki.json or config: a PKCS#8 PEM file (relative to the PKI folder)
 * or a `pkcs11:` URI of a key in a token. When the certificate is given, the key must be the one it
 * certifies (SIMCRED_CONFIG_INVALID otherwise: fail closed at start, not at the first signature).
 *
 * @example
 *   const signer = loadPkiSigningKey('/data/pki', 'pkcs11:token=simcred;object=simcred-package-signer', cert);
 */
export function loadPkiSigningKey(
  pkiDir: string,
  reference: string,
  certificate?: { publicKey: KeyObject; name: string },
): SigningKey {
  const resolved = isPkcs11Uri(reference) || isAbsolute(reference) ? reference : join(pkiDir, reference);
  const signer = loadSigningKey(resolved, loadPrivateKey);
  if (certificate) checkKeyMatchesCertificate(signer, certificate.publicKey, certificate.name);
  return signer;
}
