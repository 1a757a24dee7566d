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
