import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** SHA-256 of a base64url token, base64url: what servers keep instead of a bearer ticket itself. */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('base64url');
}

/** Constant-time comparison of two base64url strings (false when lengths differ). */
export function sameToken(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  return left.length === right.length && timingSafeEqual(left, right);
}

/** 32 random bytes, base64url: registration nonces, challenges, tickets. */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}
