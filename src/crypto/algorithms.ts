/**
 * The one place where the credentialing flow's algorithms are allow-listed (DESIGN §3: "algorithms are
 * configuration, not code forks"). Every sign, verify, encrypt and decrypt in src/crypto/ takes its
 * algorithm from here and refuses anything else, so an attacker-chosen `alg` header can never select
 * a weaker or unexpected primitive.
 *
 * Key kinds: device keys are ECDSA P-256 or RSA ≥ 2048 bits (DESIGN §3, PKI); the operator signing key
 * is normally EC P-256, RSA is accepted for operators whose HSM holds RSA keys.
 */

/** The two key kinds the flow knows. */
export type KeyKind = 'ec-p256' | 'rsa';

/** Smallest RSA modulus accepted anywhere in the flow (DESIGN §3: RSA-2048). */
export const MIN_RSA_MODULUS_BITS = 2048;

/**
 * Package JWS (DESIGN §3, "Package (default, JOSE)"), keyed by the kind of the operator signing key.
 * ES256 is the default. PS256 is allowed for RSA operator keys (HSMs that hold RSA keys only); RS256 is
 * not, as the operator chooses its signing stack and needs no PKCS#1 v1.5 legacy.
 */
export const PACKAGE_SIGNATURE_ALGORITHM = { 'ec-p256': 'ES256', rsa: 'PS256' } as const satisfies Record<
  KeyKind,
  string
>;
/** Every `alg` a package JWS may carry. */
export const PACKAGE_SIGNATURE_ALGORITHMS: readonly string[] = Object.values(PACKAGE_SIGNATURE_ALGORITHM);

/**
 * Package JWE key management, keyed by the kind of the device key (DESIGN §3): ECDH-ES+A256KW for EC
 * P-256, RSA-OAEP-256 for RSA. ECDH-ES+A256KW (not bare ECDH-ES) keeps the content key independent of the
 * ECDH output, as RFC 7518 §4.6 recommends when the CEK is random.
 */
export const PACKAGE_KEY_MANAGEMENT_ALGORITHM = {
  'ec-p256': 'ECDH-ES+A256KW',
  rsa: 'RSA-OAEP-256',
} as const satisfies Record<KeyKind, string>;
/** Every `alg` a package JWE may carry. */
export const PACKAGE_KEY_MANAGEMENT_ALGORITHMS: readonly string[] = Object.values(
  PACKAGE_KEY_MANAGEMENT_ALGORITHM,
);

/** Package JWE content encryption (DESIGN §3): AES-256-GCM. */
export const PACKAGE_CONTENT_ENCRYPTION = 'A256GCM';
/** Every `enc` a package JWE may carry. */
export const PACKAGE_CONTENT_ENCRYPTIONS: readonly string[] = [PACKAGE_CONTENT_ENCRYPTION];

/**
 * Proof of possession (DESIGN §2 step 4) and the device's signed receipt (step 12), keyed by the kind
 * of the device key. The first entry is what a device signs with by default.
 * ES256 = ECDSA P-256 / SHA-256, signature as IEEE P1363 r‖s (64 bytes), as JOSE and WebCrypto use.
 * PS256 = RSASSA-PSS / SHA-256, MGF1-SHA-256, salt 32 bytes (the default for RSA devices).
 * RS256 = RSASSA-PKCS1-v1_5 / SHA-256, allowed for RSA devices because many trusted modules (smart-card
 * class secure elements) implement only PKCS#1 v1.5 signing.
 */
export const DEVICE_SIGNATURE_ALGORITHMS = {
  'ec-p256': ['ES256'],
  rsa: ['PS256', 'RS256'],
} as const satisfies Record<KeyKind, readonly string[]>;
export type DeviceSignatureAlgorithm = (typeof DEVICE_SIGNATURE_ALGORITHMS)[KeyKind][number];

/** RSASSA-PSS salt length in bytes (= SHA-256 output length, as JOSE PS256 fixes it). */
export const PSS_SALT_BYTES = 32;

/** Registration-session nonce MAC (DESIGN §2 step 3): HMAC-SHA-256. */
export const SESSION_NONCE_HMAC = 'sha256';

/** Encryption at rest of K / OPc (DESIGN §2 step 5, §4.3): AES-256-GCM, 96-bit IV, 128-bit tag. */
export const SECRET_BOX_CIPHER = 'aes-256-gcm';

/**
 * XML package (DESIGN §3, "interoperable with xmlsec1"; docs/crypto.md §6b): algorithm URIs of XML
 * Signature 1.1 (RFC 6931 for the ECDSA and RSASSA-PSS identifiers) and XML Encryption 1.1. Chosen so
 * that Debian's xmlsec1 1.2 verifies and decrypts what it can: it has ecdsa-sha256, exc-c14n,
 * aes256-gcm, kw-aes256 and rsa-oaep-mgf1p (SHA-1 OAEP digest only; it refuses a SHA-256 DigestMethod
 * there and knows no xmlenc11#rsa-oaep), but neither ECDH-ES nor RSASSA-PSS.
 */
export const XML_ALGORITHMS = {
  /** Exclusive XML canonicalisation 1.0, without comments: SignedInfo and the reference. */
  canonicalization: 'http://www.w3.org/2001/10/xml-exc-c14n#',
  envelopedSignature: 'http://www.w3.org/2000/09/xmldsig#enveloped-signature',
  digest: 'http://www.w3.org/2001/04/xmlenc#sha256',
  /** The content: AES-256-GCM, CipherValue = IV (12) ‖ ciphertext ‖ tag (16) (XML Encryption 1.1 §5.2.4). */
  contentEncryption: 'http://www.w3.org/2009/xmlenc11#aes256-gcm',
  /** RSA devices: the content key under RSAES-OAEP, SHA-1 digest and MGF1-SHA-1 (xmlsec1 1.2's only OAEP). */
  rsaKeyTransport: 'http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p',
  /** The only OAEP DigestMethod accepted with rsa-oaep-mgf1p (also the default when absent). */
  rsaOaepDigest: 'http://www.w3.org/2000/09/xmldsig#sha1',
  /** EC devices: ephemeral-static ECDH on P-256 (XML Encryption 1.1 §5.6.4)… */
  ecdhKeyAgreement: 'http://www.w3.org/2009/xmlenc11#ECDH-ES',
  /** …with the ConcatKDF of NIST SP 800-56A (§5.4.1) over SHA-256… */
  keyDerivation: 'http://www.w3.org/2009/xmlenc11#ConcatKDF',
  /** …giving a key-encryption key that wraps the content key with AES-256 key wrap (RFC 3394). */
  keyWrap: 'http://www.w3.org/2001/04/xmlenc#kw-aes256',
  /** P-256 as XML Signature 1.1's NamedCurve URI. */
  namedCurveP256: 'urn:oid:1.2.840.10045.3.1.7',
} as const;

/** XML package signature, keyed by the kind of the operator signing key (as the JWS's ES256 / PS256). */
export const XML_SIGNATURE_ALGORITHM = {
  'ec-p256': 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256',
  rsa: 'http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1',
} as const satisfies Record<KeyKind, string>;

/** XML package key management, keyed by the kind of the device key. */
export const XML_KEY_MANAGEMENT_ALGORITHM = {
  'ec-p256': XML_ALGORITHMS.ecdhKeyAgreement,
  rsa: XML_ALGORITHMS.rsaKeyTransport,
} as const satisfies Record<KeyKind, string>;
