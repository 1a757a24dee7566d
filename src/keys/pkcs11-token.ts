import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import graphene from 'graphene-pk11';
import { formatPkcs11Uri, parsePkcs11Uri, Pkcs11UriError, type Pkcs11Uri } from './pkcs11-uri.js';

const { Module, ObjectClass, KeyType, MechanismEnum, SessionFlag, AesGcm240Params } = graphene;
type Session = graphene.Session;
type Key = graphene.Key;

/** The PKCS#11 library when neither the URI's module-path nor SIMCRED_PKCS11_MODULE names one: Debian's SoftHSM. */
export const DEFAULT_PKCS11_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
/** Environment variables that carry the token's user PIN or the file holding it. */
export const PIN_ENV = 'SIMCRED_PKCS11_PIN';
export const PIN_FILE_ENV = 'SIMCRED_PKCS11_PIN_FILE';
export const MODULE_ENV = 'SIMCRED_PKCS11_MODULE';

/** DER of the P-256 curve OID (CKA_EC_PARAMS). */
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');
/** SPKI DER of a P-256 key up to the BIT STRING's content: the 65-byte uncompressed point follows. */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');

/** A token fault (library, login, missing key): its message names the URI, never the PIN. */
export class Pkcs11Error extends Error {}

/** A PKCS#11 library is initialised once per process; every token on it shares that. */
const modules = new Map<string, graphene.Module>();
/** One logged-in session per token per process: sign and encrypt calls are synchronous, so it is never shared mid-operation. */
const tokens = new Map<string, Pkcs11Token>();

function loadModule(path: string): graphene.Module {
  let mod = modules.get(path);
  if (!mod) {
    try {
      mod = Module.load(path);
      mod.initialize();
    } catch (err) {
      throw new Pkcs11Error(`cannot load the PKCS#11 library ${path}: ${(err as Error).message}`);
    }
    modules.set(path, mod);
  }
  return mod;
}

/**
 * The user PIN: the URI's pin-source (RFC 7512 `file:` or a path), else SIMCRED_PKCS11_PIN_FILE,
 * else SIMCRED_PKCS11_PIN. A pin-value in the URI is refused: config files get copied and logged.
 */
export function resolvePin(uri: Pkcs11Uri, env: NodeJS.ProcessEnv = process.env): string {
  if (uri.pinValue !== undefined) {
    throw new Pkcs11UriError(
      `pkcs11: URI: pin-value is not accepted; set ${PIN_ENV} or pin-source=file:PATH`,
    );
  }
  const file = uri.pinSource ?? env[PIN_FILE_ENV];
  if (file !== undefined) {
    const path = file.startsWith('file:')
      ? decodeURI(file.slice('file:'.length).replace(/^\/\/(?=\/)/, ''))
      : file;
    try {
      return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new Pkcs11Error(
        `cannot read the PKCS#11 PIN file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
  }
  const pin = env[PIN_ENV];
  if (pin === undefined || pin === '')
    throw new Pkcs11Error(`no PKCS#11 PIN: set ${PIN_ENV}, ${PIN_FILE_ENV} or pin-source`);
  return pin;
}

/** The uncompressed EC point from CKA_EC_POINT, which PKCS#11 v2.40 stores as a DER OCTET STRING. */
function ecPoint(value: Buffer): Buffer {
  if (value.length === 65 && value[0] === 0x04) return value;
  if (value.length === 67 && value[0] === 0x04 && value[1] === 65 && value[2] === 0x04)
    return value.subarray(2);
  throw new Pkcs11Error('the token returned an EC point that is not an uncompressed P-256 point');
}

/**
 * A logged-in session on one PKCS#11 token. Keys are found by the RFC 7512 URI's object label and/or
 * id; signatures and AES-GCM are computed in the token, whose private and secret keys are created
 * sensitive and non-extractable.
 *
 * @example
 *   const token = Pkcs11Token.open('pkcs11:token=simcred');
 *   const key = token.privateKey('pkcs11:token=simcred;object=package-signer;type=private');
 *   const signature = token.signEcdsaSha256(key, data); // r‖s
 */
export class Pkcs11Token {
  private constructor(
    /** The token's own URI (token attributes and module only): printed in logs and errors. */
    readonly uri: string,
    private readonly session: Session,
    /** Logs in again with the same PIN source (after the token logged the application out). */
    private readonly login: () => void,
  ) {}

  /** Opens (once per process) the token a URI names and logs in with its PIN. */
  static open(uriText: string | Pkcs11Uri, env: NodeJS.ProcessEnv = process.env): Pkcs11Token {
    const uri = typeof uriText === 'string' ? parsePkcs11Uri(uriText) : uriText;
    const modulePath = uri.modulePath ?? env[MODULE_ENV] ?? DEFAULT_PKCS11_MODULE;
    const tokenUri = formatPkcs11Uri({
      token: uri.token,
      serial: uri.serial,
      manufacturer: uri.manufacturer,
      model: uri.model,
      modulePath,
    });
    const cached = tokens.get(tokenUri);
    if (cached) return cached;
    const mod = loadModule(modulePath);
    const slots = mod.getSlots(true);
    const matches: graphene.Slot[] = [];
    for (let i = 0; i < slots.length; i++) {
      const slot = slots.items(i);
      const info = slot.getToken();
      const same = (want: string | undefined, have: string) => want === undefined || want === have.trim();
      if (
        same(uri.token, info.label) &&
        same(uri.serial, info.serialNumber) &&
        same(uri.manufacturer, info.manufacturerID) &&
        same(uri.model, info.model)
      ) {
        matches.push(slot);
      }
    }
    if (matches.length === 0) throw new Pkcs11Error(`no PKCS#11 token matches ${tokenUri}`);
    if (matches.length > 1)
      throw new Pkcs11Error(
        `${matches.length} PKCS#11 tokens match ${tokenUri}; name one by token= or serial=`,
      );
    const session = matches[0]!.open(SessionFlag.SERIAL_SESSION | SessionFlag.RW_SESSION);
    const login = () => {
      try {
        session.login(resolvePin(uri, env));
      } catch (err) {
        if (err instanceof Pkcs11Error || err instanceof Pkcs11UriError) throw err;
        // Another session of this process logged in already: the login state is the application's.
        if (/CKR_USER_ALREADY_LOGGED_IN/.test((err as Error).message)) return;
        // CKR_PIN_INCORRECT and friends: the code only, never what was tried.
        throw new Pkcs11Error(`cannot log in to ${tokenUri}: ${(err as Error).message.split('\n')[0]}`);
      }
    };
    try {
      login();
    } catch (err) {
      session.close();
      throw err;
    }
    const token = new Pkcs11Token(tokenUri, session, login);
    tokens.set(tokenUri, token);
    return token;
  }

  private template(uri: Pkcs11Uri, objectClass: number): graphene.ITemplate {
    if (uri.object === undefined && uri.id === undefined) {
      throw new Pkcs11UriError(`pkcs11: URI ${formatPkcs11Uri(uri)} names no key (object= or id=)`);
    }
    const template: graphene.ITemplate = { class: objectClass };
    if (uri.object !== undefined) template.label = uri.object;
    if (uri.id !== undefined) template.id = uri.id;
    return template;
  }

  private findOne(uriText: string | Pkcs11Uri, objectClass: number, what: string): Key {
    const uri = typeof uriText === 'string' ? parsePkcs11Uri(uriText) : uriText;
    const found = this.session.find(this.template(uri, objectClass));
    if (found.length !== 1) {
      throw new Pkcs11Error(
        `${found.length === 0 ? 'no' : found.length} ${what} in ${this.uri} matches ${formatPkcs11Uri(uri)}`,
      );
    }
    return found.items(0).toType<Key>();
  }

  /** The private key a URI names (its type=, if any, must be private). */
  privateKey(uri: string | Pkcs11Uri): Key {
    return this.findOne(uri, ObjectClass.PRIVATE_KEY, 'private key');
  }

  /**
   * Logs in again (a token that was reset, or a session whose login the token dropped); a login
   * that still holds is kept. Throws Pkcs11Error when the token refuses.
   */
  relogin(): void {
    this.login();
  }

  /** The value of the private data object (CKO_DATA) a URI names, e.g. the operator's OP. */
  dataObject(uri: string | Pkcs11Uri): Buffer {
    const found = this.findOne(uri, ObjectClass.DATA, 'data object');
    if (found.getAttribute({ private: null }).private !== true) {
      const named = typeof uri === 'string' ? uri : formatPkcs11Uri(uri);
      throw new Pkcs11Error(`the data object ${named} is not private (CKA_PRIVATE): refused`);
    }
    return found.getAttribute({ value: null }).value as Buffer;
  }

  /**
   * Stores a private data object (readable only after login), found by its label: data objects
   * have no CKA_ID in PKCS#11.
   */
  createDataObject(label: string, value: Buffer): void {
    if (this.session.find({ label }).length > 0) {
      throw new Pkcs11Error(`${this.uri} already holds an object labelled "${label}"`);
    }
    this.session.create({
      class: ObjectClass.DATA,
      token: true,
      private: true,
      modifiable: false,
      label,
      application: 'simcred',
      value,
    });
  }

  /** The secret (AES) key a URI names. */
  secretKey(uri: string | Pkcs11Uri): Key {
    return this.findOne(uri, ObjectClass.SECRET_KEY, 'secret key');
  }

  /** The public half of a P-256 key pair, from the token's public key object with the same label/id. */
  publicKey(uri: string | Pkcs11Uri): KeyObject {
    const key = this.findOne(uri, ObjectClass.PUBLIC_KEY, 'public key');
    const point = ecPoint(key.getAttribute({ pointEC: null }).pointEC as Buffer);
    return createPublicKey({ key: Buffer.concat([P256_SPKI_PREFIX, point]), format: 'der', type: 'spki' });
  }

  /**
   * Creates a P-256 key pair in the token: the private key sensitive, non-extractable and for
   * signing (and ECDH derivation) only. Refuses when the label or id is taken.
   */
  generateEcP256KeyPair(label: string, id: Buffer): { publicKey: KeyObject } {
    this.refuseTaken(label, id);
    const common = { keyType: KeyType.EC, token: true, label, id };
    this.session.generateKeyPair(
      MechanismEnum.EC_KEY_PAIR_GEN,
      { ...common, paramsEC: P256_PARAMS, verify: true, private: false },
      { ...common, private: true, sensitive: true, extractable: false, sign: true, derive: true },
    );
    return { publicKey: this.publicKey({ object: label, id }) };
  }

  /** Creates an AES-256 key in the token for encryption and key wrapping only, never extractable. */
  generateAes256Key(label: string, id: Buffer): void {
    this.refuseTaken(label, id);
    this.session.generateKey(MechanismEnum.AES_KEY_GEN, {
      keyType: KeyType.AES,
      class: ObjectClass.SECRET_KEY,
      valueLen: 32,
      token: true,
      private: true,
      sensitive: true,
      extractable: false,
      encrypt: true,
      decrypt: true,
      wrap: true,
      unwrap: true,
      label,
      id,
    });
  }

  private refuseTaken(label: string, id: Buffer): void {
    if (this.session.find({ label }).length > 0 || this.session.find({ id }).length > 0) {
      throw new Pkcs11Error(`${this.uri} already holds an object labelled "${label}" or with that id`);
    }
  }

  /** ECDSA P-256 over SHA-256(data), made in the token; the signature is IEEE P1363 r‖s (64 bytes). */
  signEcdsaSha256(key: Key, data: Uint8Array): Buffer {
    const digest = createHash('sha256').update(data).digest();
    return this.session.createSign(MechanismEnum.ECDSA, key).once(digest);
  }

  /** AES-256-GCM encryption in the token: ciphertext ‖ 16-byte tag. */
  encryptAesGcm(key: Key, iv: Buffer, aad: Buffer, plaintext: Buffer): Buffer {
    const cipher = this.session.createCipher(
      { name: 'AES_GCM', params: new AesGcm240Params(iv, aad, 128) },
      key,
    );
    return Buffer.concat([cipher.update(plaintext), cipher.final()]);
  }

  /** AES-256-GCM decryption in the token; throws when the tag does not verify. */
  decryptAesGcm(key: Key, iv: Buffer, aad: Buffer, sealed: Buffer): Buffer {
    const decipher = this.session.createDecipher(
      { name: 'AES_GCM', params: new AesGcm240Params(iv, aad, 128) },
      key,
    );
    return Buffer.concat([decipher.update(sealed), decipher.final()]);
  }

  /** The labels and classes of the token's objects (no values): what `pkcs11-tool -O` would list. */
  objects(): { label: string; class: 'private' | 'public' | 'secret' | 'other' }[] {
    const found = this.session.find();
    const out: { label: string; class: 'private' | 'public' | 'secret' | 'other' }[] = [];
    for (let i = 0; i < found.length; i++) {
      const object = found.items(i);
      const kind = object.class;
      out.push({
        label: object.getAttribute({ label: null }).label as string,
        class:
          kind === ObjectClass.PRIVATE_KEY
            ? 'private'
            : kind === ObjectClass.PUBLIC_KEY
              ? 'public'
              : kind === ObjectClass.SECRET_KEY
                ? 'secret'
                : 'other',
      });
    }
    return out;
  }
}
