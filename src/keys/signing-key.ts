import { createPublicKey, KeyObject, sign } from 'node:crypto';
import { SimcredError } from '../errors/index.js';
import { isPkcs11Uri, parsePkcs11Uri, Pkcs11UriError } from './pkcs11-uri.js';
import { Pkcs11Error, Pkcs11Token } from './pkcs11-token.js';

/** Seconds a caller waits before retrying after the token failed to sign. */
export const KEY_STORE_RETRY_AFTER_SECONDS = 5;

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
    throw new SimcredError(
      'SIMCRED_CRYPTO_KEY_UNSUPPORTED',
      `${source}: operator keys are EC P-256 or RSA, not ${type}`,
    );
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

/**
 * A P-256 key in a PKCS#11 token, named by its RFC 7512 URI; the token signs. Opening fails with
 * SIMCRED_CONFIG_INVALID (a malformed URI) or SIMCRED_KEY_STORE_UNAVAILABLE (no library, token, PIN
 * or key); a signature the token does not make fails with SIMCRED_KEY_STORE_UNAVAILABLE (503 and
 * Retry-After), so the request that needed it is refused whole and may be retried.
 */
export function tokenSigningKey(uriText: string, env: NodeJS.ProcessEnv = process.env): SigningKey {
  const source = uriText.replace(/[?&]pin-value=[^&]*/i, '');
  let token: Pkcs11Token;
  let privateKey: ReturnType<Pkcs11Token['privateKey']>;
  let publicKey: KeyObject;
  try {
    const uri = parsePkcs11Uri(uriText);
    token = Pkcs11Token.open(uri, env);
    privateKey = token.privateKey(uri);
    publicKey = token.publicKey(uri);
  } catch (err) {
    throw tokenError(err, source);
  }
  return {
    asymmetricKeyType: 'ec',
    publicKey,
    source,
    inToken: true,
    sign(data, dsaEncoding) {
      let signature: Buffer;
      try {
        signature = token.signEcdsaSha256(privateKey, data);
      } catch (err) {
        throw new SimcredError(
          'SIMCRED_KEY_STORE_UNAVAILABLE',
          `the PKCS#11 token did not sign with ${source}: ${(err as Error).message.split('\n')[0]}`,
          { retryAfter: KEY_STORE_RETRY_AFTER_SECONDS, cause: err },
        );
      }
      return dsaEncoding === 'der' ? p1363ToDer(signature) : signature;
    },
  };
}

/** A token fault as the SimcredError a CLI prints (its message names the URI, never a PIN). */
function tokenError(err: unknown, source: string): unknown {
  if (err instanceof Pkcs11UriError)
    return new SimcredError('SIMCRED_CONFIG_INVALID', `${source}: ${err.message}`, { cause: err });
  if (err instanceof Pkcs11Error)
    return new SimcredError('SIMCRED_KEY_STORE_UNAVAILABLE', err.message, {
      retryAfter: KEY_STORE_RETRY_AFTER_SECONDS,
      cause: err,
    });
  return err;
}

/**
 * A KeyObject as a SigningKey (embedding and tests hand KeyObjects); a SigningKey as it is.
 *
 * @example
 *   const signer = asSigningKey(operatorSigningKey); // KeyObject or SigningKey
 */
export function asSigningKey(key: KeyObject | SigningKey, source = 'in-memory key'): SigningKey {
  if (!(key instanceof KeyObject)) return key;
  if (key.type !== 'private')
    throw new SimcredError('SIMCRED_CRYPTO_KEY_UNSUPPORTED', 'a signing key must be a private key');
  return fileSigningKey(key, source);
}

/**
 * Fails closed when a key is not the one its certificate certifies (a token key under the wrong
 * label, a certificate replaced): SIMCRED_CONFIG_INVALID naming both, never the key.
 *
 * @example
 *   checkKeyMatchesCertificate(signer, cert.publicKey, 'operator/package-signer.crt.pem');
 */
export function checkKeyMatchesCertificate(
  signer: SigningKey,
  certificatePublicKey: KeyObject,
  certificateName: string,
): void {
  const spki = (k: KeyObject) => k.export({ format: 'der', type: 'spki' });
  if (!spki(signer.publicKey).equals(spki(certificatePublicKey))) {
    throw new SimcredError(
      'SIMCRED_CONFIG_INVALID',
      `the key ${signer.source} does not match the certificate ${certificateName}`,
    );
  }
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
