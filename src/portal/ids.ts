import { createHash, randomBytes } from 'node:crypto';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * A random id: a one-letter prefix and 12 Crockford base-32 characters (60 random bits), e.g. a
 * contract id `C8W3K0Q2ZP7RM`.
 *
 * @example
 *   newId('C'); // 'C…' (13 characters)
 */
export function newId(prefix: string): string {
  const bytes = randomBytes(12);
  let out = prefix;
  for (const byte of bytes) out += CROCKFORD[byte & 31];
  return out;
}

/** A fresh secret token (32 random bytes, base64url): session ids and CSRF tokens. */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** What is stored for a session id: its SHA-256, so the table alone signs no one in. */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}
