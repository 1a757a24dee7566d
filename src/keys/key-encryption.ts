import { createHash, randomBytes } from 'node:crypto';
import type graphene from 'graphene-pk11';
import {
  kekId,
  openSecret,
  parseKek,
  parseSealedSecret,
  sealSecret,
  secretBoxAad,
  MAX_SECRET_BYTES,
  SECRET_BOX_TOKEN_VERSION,
  SECRET_BOX_VERSION,
} from '../crypto/secret-box.js';
import { SimcredError } from '../errors/index.js';
import { Pkcs11Error, Pkcs11Token } from './pkcs11-token.js';
import {
  formatPkcs11Uri,
  isPkcs11Uri,
  parsePkcs11Uri,
  Pkcs11UriError,
  type Pkcs11Uri,
} from './pkcs11-uri.js';

/**
 * The key that seals K and OPc (K_PIMSI/OPc_PIMSI at the PHLR) at rest: either a 32-byte key held in
 * memory (from config or <dataDir>/<role>/secrets.json; records "sb1.<id>.…") or an AES-256 key in a
 * PKCS#11 token that never leaves it, every seal and open being one AES-GCM call in the token
 * (records "sb2.<id>.…"). Both use the same AES-256-GCM format and AAD (docs/crypto.md §7); the header
 * says which key sealed a record, so one KEK never mistakes another's records for corrupt data.
 *
 * @example
 *   const kek = loadKeyEncryptionKey(config.hss.kek, 'hss.kek'); // hex, base64 or a pkcs11: URI
 *   const sealed = kek.seal(k, `k:${imsi}`);
 *   const opened = kek.open(sealed, `k:${imsi}`);
 */
export interface KeyEncryptionKey {
  /** "sb1.<kekId>" or "sb2.<kekId>": how every record this key seals begins (public). */
  readonly header: string;
  /** Whether the key is in a PKCS#11 token. */
  readonly inToken: boolean;
  /** Printable: which key this is (its id, or the token key's URI), never key material or a PIN. */
  readonly description: string;
  /** Seals a secret; the context (e.g. "k:<imsi>") is authenticated and must be given to open it. */
  seal(plaintext: Uint8Array, context: string): string;
  /**
   * Opens a record this key sealed. SIMCRED_SECRET_DECRYPT_FAILED when the record is malformed,
   * altered, of another context or sealed by another key (the message says which);
   * SIMCRED_KEY_STORE_UNAVAILABLE (503) when the token does not answer.
   */
  open(sealed: string, context: string): Buffer;
}

/** Retry-After of a token that failed mid-request: a session re-login is tried on the next call. */
const KEY_STORE_RETRY_SECONDS = 2;

function decryptFailed(why: string, cause?: unknown): SimcredError {
  return new SimcredError('SIMCRED_SECRET_DECRYPT_FAILED', `sealed secret cannot be opened: ${why}`, {
    cause,
  });
}

/** What a record's header says about the key that sealed it. */
function sealerOf(header: string): string {
  const [version, id] = header.split('.');
  return version === SECRET_BOX_TOKEN_VERSION
    ? `the PKCS#11 token key ${id}`
    : `the key-encryption key ${id} held in memory (config or secrets.json)`;
}

/** The header of a sealed record, checked to be this key's; throws naming the sealer otherwise. */
function requireSealedBy(kek: KeyEncryptionKey, sealed: string) {
  const parsed = parseSealedSecret(sealed);
  if (!parsed) throw decryptFailed('unknown format');
  if (parsed.header !== kek.header) {
    throw decryptFailed(`sealed by ${sealerOf(parsed.header)}, not by ${kek.description}`);
  }
  return parsed;
}

/**
 * Today's key-encryption key: 32 bytes in memory (the default; existing "sb1" stores stay readable).
 *
 * @example
 *   const kek = memoryKek(parseKek(hex, 'hss.kek'));
 */
export function memoryKek(key: Buffer): KeyEncryptionKey {
  const id = kekId(key);
  const kek: KeyEncryptionKey = {
    header: `${SECRET_BOX_VERSION}.${id}`,
    inToken: false,
    description: `the key-encryption key ${id} held in memory`,
    seal: (plaintext, context) => sealSecret(plaintext, { kek: key, context }),
    open: (sealed, context) => {
      requireSealedBy(kek, sealed);
      return openSecret(sealed, { kek: key, context });
    },
  };
  return kek;
}

/** PKCS#11 return values that mean "this ciphertext does not authenticate", not "the token failed". */
const AUTHENTICATION_FAILURES =
  /CKR_ENCRYPTED_DATA_INVALID|CKR_ENCRYPTED_DATA_LEN_RANGE|CKR_AEAD_DECRYPT_FAILED|CKR_DATA_LEN_RANGE/;

/**
 * An AES-256 key in a PKCS#11 token: each seal and open is one AES-256-GCM operation in the token
 * (the IV is drawn here and given to the token, as PKCS#11 v2.40's CK_GCM_PARAMS allows). The key
 * must be sensitive and non-extractable; its id is a check value the token computes (GCM of a zero
 * block under a zero IV that no record uses), so it names the key, not its label.
 */
class TokenKek implements KeyEncryptionKey {
  readonly inToken = true;
  readonly header: string;
  readonly description: string;
  private key: graphene.Key;
  /** The last call failed in the token: log in and find the key again before the next one. */
  private stale = false;

  constructor(
    private readonly token: Pkcs11Token,
    private readonly keyUri: string,
  ) {
    this.description = `the PKCS#11 token key ${keyUri}`;
    this.key = this.findKey();
    this.header = `${SECRET_BOX_TOKEN_VERSION}.${this.checkId()}`;
  }

  private findKey(): graphene.Key {
    const key = this.token.secretKey(this.keyUri);
    const attributes = key.getAttribute({ sensitive: null, extractable: null, encrypt: null, decrypt: null });
    if (attributes.sensitive !== true || attributes.extractable !== false) {
      throw new Pkcs11Error(
        `${this.keyUri} is not sensitive and non-extractable: a key-encryption key must never leave the token`,
      );
    }
    if (attributes.encrypt !== true || attributes.decrypt !== true) {
      throw new Pkcs11Error(
        `${this.keyUri} is not allowed to encrypt and decrypt (CKA_ENCRYPT, CKA_DECRYPT)`,
      );
    }
    return key;
  }

  private checkId(): string {
    const check = this.token.encryptAesGcm(
      this.key,
      Buffer.alloc(12),
      Buffer.from('simcred/v1/kek-check'),
      Buffer.alloc(16),
    );
    return createHash('sha256')
      .update('simcred/v1/kek-id/pkcs11')
      .update(check)
      .digest()
      .subarray(0, 4)
      .toString('hex');
  }

  private stillAnswers(): boolean {
    try {
      return `${SECRET_BOX_TOKEN_VERSION}.${this.checkId()}` === this.header;
    } catch {
      return false;
    }
  }

  /** Runs one token operation; a token fault is a 503 and the session is renewed before the next. */
  private callToken<T>(operation: () => T): T {
    try {
      if (this.stale) {
        this.token.relogin();
        this.key = this.findKey();
        if (`${SECRET_BOX_TOKEN_VERSION}.${this.checkId()}` !== this.header) {
          throw new Pkcs11Error(`${this.keyUri} now names another key than at start`);
        }
        this.stale = false;
      }
      return operation();
    } catch (err) {
      if (err instanceof SimcredError) throw err;
      this.stale = true;
      const reason = err instanceof Error ? err.message.split('\n')[0] : 'error';
      throw new SimcredError(
        'SIMCRED_KEY_STORE_UNAVAILABLE',
        `the PKCS#11 token holding ${this.keyUri} failed: ${reason}`,
        { retryAfter: KEY_STORE_RETRY_SECONDS, cause: err },
      );
    }
  }

  seal(plaintext: Uint8Array, context: string): string {
    if (!(plaintext instanceof Uint8Array) || plaintext.length > MAX_SECRET_BYTES) {
      throw new SimcredError('SIMCRED_BAD_REQUEST', `a secret must be at most ${MAX_SECRET_BYTES} bytes`);
    }
    const iv = randomBytes(12);
    const body = this.callToken(() =>
      this.token.encryptAesGcm(this.key, iv, secretBoxAad(this.header, context), Buffer.from(plaintext)),
    );
    return `${this.header}.${iv.toString('base64url')}.${body.toString('base64url')}`;
  }

  open(sealed: string, context: string): Buffer {
    const { iv, body } = requireSealedBy(this, sealed);
    return this.callToken(() => {
      try {
        return this.token.decryptAesGcm(this.key, iv, secretBoxAad(this.header, context), body);
      } catch (err) {
        // Tokens differ in what a tag that does not verify returns (SoftHSM: CKR_GENERAL_ERROR): when
        // the token still computes this key's check value, it is working and the record is at fault.
        if ((err instanceof Error && AUTHENTICATION_FAILURES.test(err.message)) || this.stillAnswers()) {
          throw decryptFailed('authentication failed (wrong key, wrong record or altered data)', err);
        }
        throw err;
      }
    });
  }
}

/**
 * The AES key a pkcs11: URI names, opened (once per process per token) with the PIN from the URI's
 * pin-source, SIMCRED_PKCS11_PIN_FILE or SIMCRED_PKCS11_PIN. A bad URI is SIMCRED_CONFIG_INVALID; a
 * token that cannot be opened, a wrong PIN or a missing or exportable key SIMCRED_KEY_STORE_UNAVAILABLE;
 * messages name the setting and URI, never the PIN.
 *
 * @example
 *   const kek = tokenKek('pkcs11:token=simcred;object=simcred-hss-kek', 'hss.kek');
 */
export function tokenKek(
  uri: string,
  setting: string,
  env: NodeJS.ProcessEnv = process.env,
): KeyEncryptionKey {
  return inTokenSetting(setting, () => {
    const parsed = parseSettingUri(uri);
    if (parsed.type !== undefined && parsed.type !== 'secret-key') {
      throw new Pkcs11UriError(`type=${parsed.type} does not name a secret key`);
    }
    const token = Pkcs11Token.open(parsed, env);
    return new TokenKek(token, formatPkcs11Uri({ ...parsed, modulePath: undefined, pinSource: undefined }));
  });
}

/**
 * The key-encryption key a setting holds: a pkcs11: URI (a token key) or 32 bytes in hex/base64.
 *
 * @example
 *   const kek = loadKeyEncryptionKey(config.phlr.kek ?? generatedHex, 'phlr.kek');
 */
export function loadKeyEncryptionKey(
  value: string,
  setting: string,
  env: NodeJS.ProcessEnv = process.env,
): KeyEncryptionKey {
  return isPkcs11Uri(value.trim())
    ? tokenKek(value.trim(), setting, env)
    : memoryKek(parseKek(value, setting));
}

/**
 * The operator's OP from a setting: 32 hex digits, or a pkcs11: URI naming a private data object
 * (CKO_DATA, CKA_PRIVATE) of 16 bytes, read once at start (docs/crypto.md §7 says why it is read,
 * not used in the token).
 *
 * @example
 *   const op = loadOperatorVariant('pkcs11:token=simcred;object=simcred-hss-op;type=data', 'hss.op');
 */
export function loadOperatorVariant(
  value: string,
  setting: string,
  env: NodeJS.ProcessEnv = process.env,
): Buffer {
  const text = value.trim();
  if (!isPkcs11Uri(text)) {
    if (!/^[0-9a-fA-F]{32}$/.test(text)) {
      throw new SimcredError('SIMCRED_CONFIG_INVALID', `${setting} must be 32 hex digits or a pkcs11: URI`);
    }
    return Buffer.from(text, 'hex');
  }
  const op = inTokenSetting(setting, () => {
    const parsed = parseSettingUri(text);
    if (parsed.type !== undefined && parsed.type !== 'data') {
      throw new Pkcs11UriError(`type=${parsed.type} does not name a data object`);
    }
    return Pkcs11Token.open(parsed, env).dataObject(parsed);
  });
  if (op.length !== 16) {
    throw new SimcredError('SIMCRED_CONFIG_INVALID', `${setting}: the token's data object is not 16 bytes`);
  }
  return op;
}

/** Parses a setting's URI; a pin-value is refused even when the token is open already. */
function parseSettingUri(uri: string): Pkcs11Uri {
  const parsed = parsePkcs11Uri(uri);
  if (parsed.pinValue !== undefined) {
    throw new Pkcs11UriError('pin-value is not accepted; set SIMCRED_PKCS11_PIN or pin-source=file:PATH');
  }
  return parsed;
}

function inTokenSetting<T>(setting: string, open: () => T): T {
  try {
    return open();
  } catch (err) {
    if (err instanceof SimcredError) throw err;
    if (err instanceof Pkcs11UriError) {
      throw new SimcredError('SIMCRED_CONFIG_INVALID', `${setting}: ${err.message}`);
    }
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new SimcredError('SIMCRED_KEY_STORE_UNAVAILABLE', `${setting}: ${reason}`, {
      retryAfter: KEY_STORE_RETRY_SECONDS,
    });
  }
}

/** The key that sealed a record, as its header says ("sb1.<id>" / "sb2.<id>"), or undefined. */
export function sealedBy(sealed: string): string | undefined {
  return parseSealedSecret(sealed)?.header;
}
