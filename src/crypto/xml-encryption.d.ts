// Types for the two functions of xml-encryption 6 (auth0/node-xml-encryption, plain CommonJS, no types)
// that the XML package uses: RSA key transport with AES-GCM content encryption, and its inverse.
declare module 'xml-encryption' {
  import type { KeyObject } from 'node:crypto';

  export interface EncryptOptions {
    /** The recipient's RSA public key. */
    rsa_pub: string | KeyObject;
    /** The recipient's certificate (PEM), written into the EncryptedKey's KeyInfo as X509Data. */
    pem: string;
    encryptionAlgorithm: string;
    keyEncryptionAlgorithm: string;
    /** OAEP digest: 'sha1' (default), 'sha256' or 'sha512'. */
    keyEncryptionDigest?: string;
    disallowEncryptionWithInsecureAlgorithm?: boolean;
    warnInsecureAlgorithm?: boolean;
  }
  export interface DecryptOptions {
    key: string | KeyObject;
    disallowDecryptionWithInsecureAlgorithm?: boolean;
    warnInsecureAlgorithm?: boolean;
  }
  export function encrypt(
    content: string,
    options: EncryptOptions,
    callback: (error: Error | null, result?: string) => void,
  ): void;
  export function decrypt(
    xml: string,
    options: DecryptOptions,
    callback: (error: Error | null, result?: string) => void,
  ): void;
}
