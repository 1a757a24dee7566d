/**
 * RFC 7512 `pkcs11:` URIs: how config names a key in a PKCS#11 token. Only the attributes simcred
 * acts on are kept; any other path attribute is refused rather than ignored, so a URI that means
 * more than simcred understands never silently matches the wrong key.
 *
 * @example
 *   parsePkcs11Uri('pkcs11:token=simcred;object=package-signer;type=private?pin-source=file:/etc/simcred/pin')
 */

export interface Pkcs11Uri {
  /** Token label (CKA_LABEL of the token), serial, manufacturer and model: which token. */
  token?: string;
  serial?: string;
  manufacturer?: string;
  model?: string;
  /** Object label (CKA_LABEL) and id (CKA_ID): which key in the token. */
  object?: string;
  id?: Buffer;
  type?: 'private' | 'public' | 'secret-key' | 'cert' | 'data';
  /** Query attributes: the PKCS#11 library to load and where the PIN comes from. */
  modulePath?: string;
  pinSource?: string;
  pinValue?: string;
}

const PATH_ATTRIBUTES = ['token', 'serial', 'manufacturer', 'model', 'object', 'id', 'type'] as const;
const QUERY_ATTRIBUTES = ['module-path', 'pin-source', 'pin-value'] as const;
const TYPES = ['private', 'public', 'secret-key', 'cert', 'data'] as const;

export class Pkcs11UriError extends Error {}

/** Percent-decodes one attribute value to bytes (RFC 7512 §2.3: values are octets). */
function decodeBytes(value: string, attribute: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    if (ch === '%') {
      const hex = value.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex))
        throw new Pkcs11UriError(`pkcs11: URI: bad percent-encoding in ${attribute}`);
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(ch, 'utf8'));
    }
  }
  return Buffer.from(bytes);
}

function splitAttributes(part: string, separator: string, allowed: readonly string[], where: string) {
  const seen = new Map<string, string>();
  if (part === '') return seen;
  for (const pair of part.split(separator)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Pkcs11UriError(`pkcs11: URI: "${pair}" in the ${where} is not name=value`);
    const name = pair.slice(0, eq).toLowerCase();
    if (!allowed.includes(name))
      throw new Pkcs11UriError(`pkcs11: URI: attribute "${name}" is not supported`);
    if (seen.has(name)) throw new Pkcs11UriError(`pkcs11: URI: attribute "${name}" appears twice`);
    seen.set(name, pair.slice(eq + 1));
  }
  return seen;
}

/** Parses a `pkcs11:` URI; throws Pkcs11UriError (never echoing a pin-value) when it is malformed. */
export function parsePkcs11Uri(uri: string): Pkcs11Uri {
  if (!/^pkcs11:/i.test(uri)) throw new Pkcs11UriError('not a pkcs11: URI');
  const body = uri.slice('pkcs11:'.length);
  const q = body.indexOf('?');
  const path = splitAttributes(q < 0 ? body : body.slice(0, q), ';', PATH_ATTRIBUTES, 'path');
  const query = splitAttributes(q < 0 ? '' : body.slice(q + 1), '&', QUERY_ATTRIBUTES, 'query');
  const text = (name: string, from: Map<string, string>) => {
    const value = from.get(name);
    return value === undefined ? undefined : decodeBytes(value, name).toString('utf8');
  };
  const type = text('type', path);
  if (type !== undefined && !(TYPES as readonly string[]).includes(type)) {
    throw new Pkcs11UriError(`pkcs11: URI: type "${type}" is not one of ${TYPES.join(', ')}`);
  }
  const parsed: Pkcs11Uri = {
    token: text('token', path),
    serial: text('serial', path),
    manufacturer: text('manufacturer', path),
    model: text('model', path),
    object: text('object', path),
    id: path.has('id') ? decodeBytes(path.get('id')!, 'id') : undefined,
    type: type as Pkcs11Uri['type'],
    modulePath: text('module-path', query),
    pinSource: text('pin-source', query),
    pinValue: text('pin-value', query),
  };
  for (const key of Object.keys(parsed) as (keyof Pkcs11Uri)[])
    if (parsed[key] === undefined) delete parsed[key];
  return parsed;
}

function encode(value: string | Buffer, inQuery = false): string {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  let out = '';
  // RFC 7512 §2.3: the unreserved set stays (and '/' in the query); separators and the rest are %XX.
  for (const byte of bytes) {
    const ch = String.fromCharCode(byte);
    out +=
      /[A-Za-z0-9\-._~:[\]@!$'()*+,=]/.test(ch) || (inQuery && ch === '/')
        ? ch
        : `%${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/**
 * Writes a URI back (never a pin-value: a URI that is logged or printed must not carry the PIN).
 *
 * @example
 *   formatPkcs11Uri({ token: 'simcred', object: 'package-signer', type: 'private' })
 */
export function formatPkcs11Uri(uri: Pkcs11Uri): string {
  const path: string[] = [];
  if (uri.token !== undefined) path.push(`token=${encode(uri.token)}`);
  if (uri.serial !== undefined) path.push(`serial=${encode(uri.serial)}`);
  if (uri.manufacturer !== undefined) path.push(`manufacturer=${encode(uri.manufacturer)}`);
  if (uri.model !== undefined) path.push(`model=${encode(uri.model)}`);
  if (uri.object !== undefined) path.push(`object=${encode(uri.object)}`);
  if (uri.id !== undefined)
    path.push(`id=${[...uri.id].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')}`);
  if (uri.type !== undefined) path.push(`type=${uri.type}`);
  const query: string[] = [];
  if (uri.modulePath !== undefined) query.push(`module-path=${encode(uri.modulePath, true)}`);
  if (uri.pinSource !== undefined) query.push(`pin-source=${encode(uri.pinSource, true)}`);
  return `pkcs11:${path.join(';')}${query.length ? `?${query.join('&')}` : ''}`;
}

/** Whether a config value names a token key rather than a file. */
export function isPkcs11Uri(value: string): boolean {
  return /^pkcs11:/i.test(value);
}
