import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header every notification carries: `t=<unix seconds>,v1=<hex HMAC-SHA-256 over "<t>.<body>">`. */
export const SIGNATURE_HEADER = 'simcred-signature';

/**
 * The Simcred-Signature header value for a body sent at `timestamp` (unix seconds), with the webhook's
 * secret: the HMAC covers the timestamp and the exact body bytes, so neither can be changed or the
 * body replayed under a fresh time (Stripe's scheme).
 *
 * @example
 *   signatureHeader(secret, Math.floor(Date.now() / 1000), body); // 't=1767225600,v1=5f1c…'
 */
export function signatureHeader(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${sign(secret, timestamp, body)}`;
}

function sign(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.`, 'utf8').update(body, 'utf8').digest('hex');
}

/** The header's parts, or undefined when it is not `t=<digits>,v1=<64 hex>[,v1=…]`. */
export function parseSignatureHeader(
  header: string,
): { timestamp: number; signatures: string[] } | undefined {
  let timestamp: number | undefined;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const [key, value] = part.trim().split('=', 2);
    if (key === 't' && value !== undefined && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    else if (key === 'v1' && value !== undefined && /^[0-9a-f]{64}$/.test(value)) signatures.push(value);
    else return undefined;
  }
  return timestamp === undefined || signatures.length === 0 ? undefined : { timestamp, signatures };
}

/** True when one of the header's v1 signatures is the HMAC of this body and timestamp (constant time). */
export function signatureMatches(
  secret: string,
  timestamp: number,
  body: string,
  signatures: string[],
): boolean {
  const expected = Buffer.from(sign(secret, timestamp, body), 'hex');
  let match = false;
  // Every candidate is compared, so the time does not tell which one matched.
  for (const candidate of signatures) {
    if (timingSafeEqual(expected, Buffer.from(candidate, 'hex'))) match = true;
  }
  return match;
}
