import { createPublicKey, sign, type KeyObject } from 'node:crypto';
import { isPkcs11Uri, parsePkcs11Uri } from './pkcs11-uri.js';
import { Pkcs11Token } from './pkcs11-token.js';

/** How an ECDSA signature is encoded: DER (X.509, OCSP) or r‖s (JOSE, XML-DSig). */
export type DsaEncoding = 'der' | 'ieee-p1363';

/**
 * An operator private key that signs but never shows itself: a PEM file's key (the embedded
 * default) or a key in a PKCS#11 token. Every signature is SHA-256 based (the flow's only hash).
 *
 * @example
 *   const signer = loadSigningKey(config.keys.packageSigner ?? 'pki/operator/package-signer.key.pem');
 *   const signature = signer.sign(tbs, 'der');
 */
export interface SigningKey {
  /** 'ec' (P-256) or 'rsa', as KeyObject.asymmetricKeyType says. */
  readonly asymmetricKeyType: 'ec' | 'rsa';
  readonly publicKey: KeyObject;
  /** Where the key lives: a file path or a pkcs11: URI. Safe to log; never the key. */
  readonly source: string;
  /** Whether the key is in a token (it cannot be exported, copied or handed to a library as a KeyObject). */
  readonly inToken: boolean;
  /** SHA-256 signature; RSA keys sign RSASSA-PSS when `pss` is set, else PKCS#1 v1.5. */
  sign(data: Uint8Array, dsaEncoding: DsaEncoding, options?: { pss?: boolean }): Buffer;
}

/** A key held as a Node KeyObject (from a PEM file). */
export function fileSigningKey(privateKey: KeyObject, source: string): SigningKey {
  const type = privateKey.asymmetricKeyType;
  if (type !== 'ec' && type !== 'rsa')
    throw new Error(`${source}: operator keys are EC P-256 or RSA, not ${type}`);
  return {
    asymmetricKeyType: type,
    publicKey: createPublicKey(privateKey),
    source,
    inToken: false,
    sign(data, dsaEncoding, options = {}) {
      if (type === 'rsa' && options.pss) {
        return sign('sha256', data, {
          key: privateKey,
          padding: 6 /* RSA_PKCS1_PSS_PADDING */,
          saltLength: 32,
        });
      }
      return sign('sha256', data, { key: privateKey, dsaEncoding });
    },
  };
}

/** An ECDSA r‖s signature as the DER SEQUENCE { r INTEGER, s INTEGER } that X.509 and OCSP carry. */
export function p1363ToDer(signature: Buffer): Buffer {
  const half = signature.length / 2;
  const integer = (bytes: Buffer) => {
    let i = 0;
    while (i < bytes.length - 1 && bytes[i] === 0) i++;
    const value = bytes.subarray(i);
    const body = value[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), value]) : value;
    return Buffer.concat([Buffer.from([0x02, body.length]), body]);
  };
  const content = Buffer.concat([integer(signature.subarray(0, half)), integer(signature.subarray(half))]);
  return Buffer.concat([Buffer.from([0x30, content.length]), content]);
}

/** A P-256 key in a PKCS#11 token, named by its RFC 7512 URI; the token signs. */
export function tokenSigningKey(uriText: string, env: NodeJS.ProcessEnv = process.env): SigningKey {
  const uri = parsePkcs11Uri(uriText);
  const token = Pkcs11Token.open(uri, env);
  const privateKey = token.privateKey(uri);
  const publicKey = token.publicKey(uri);
  return {
    asymmetricKeyType: 'ec',
    publicKey,
    source: uriText.replace(/[?&]pin-value=[^&]*/i, ''),
    inToken: true,
    sign(data, dsaEncoding) {
      const signature = token.signEcdsaSha256(privateKey, data);
      return dsaEncoding === 'der' ? p1363ToDer(signature) : signature;
    },
  };
}

/** A signing key from a file path (PKCS#8 PEM, via `loadFile`) or a `pkcs11:` URI. */
export function loadSigningKey(
  reference: string,
  loadFile: (path: string) => KeyObject,
  env: NodeJS.ProcessEnv = process.env,
): SigningKey {
  return isPkcs11Uri(reference)
    ? tokenSigningKey(reference, env)
    : fileSigningKey(loadFile(reference), reference);
}
